"""What the API-server processes do before a request reaches a worker, and to every response.

A pure ASGI middleware, in this order for the scoring endpoints:

1. the API key, before a byte of the body is read (401 missing, 403 wrong); `/model-info` needs it too;
2. the content type (415), then the body, read with a size limit (413 on `Content-Length` alone, or as
   soon as the bytes read pass it) and a deadline for the whole body (408: a body shorter than its
   `Content-Length`, or a trickle, cannot hold a connection; after a 408 or 413 the connection closes);
3. the body parsed once here: JSON with duplicate keys refused (422 naming row and field), nesting that
   would exhaust the parser refused, `text/csv` read record by record as a CSV reader does (quoted newlines
   are data; any line ending), a repeated header column refused, and a row with more or fewer fields than
   the header refused by its number — never padded with blanks;
4. `?explain=true` carried into the records (LitServe hands workers the body only);
5. a deadline for the answer (504): LitServe only drops requests that waited too long in its queue, so a
   request taken by a worker that then died would otherwise wait forever.

Every parse failure is a 4xx with a message; request counts and latencies go to Prometheus. Validation
errors become 422s that name row and field, or a 413 when a batch is over the limit.

`HeaderTimeoutProtocol` closes connections that do not finish sending their request headers in time (uvicorn
has a keep-alive timeout for idle connections, but none for a request that has started).
"""

import asyncio
import csv
import hmac
import io
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import SecretStr
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from serving import metrics

SCORING_PATHS = {"/predict", "/batch-predict"}
KEYED_PATHS = SCORING_PATHS | {"/model-info"}
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class Refused(Exception):
    """A request answered here, before it reaches the application."""

    def __init__(self, status: int, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.details = status, message, details

    def response(self) -> JSONResponse:
        # After a refused body the rest of it may still be on the wire: do not keep that connection.
        headers = {"connection": "close"} if self.status in (408, 413) else None
        if self.details is None:
            return JSONResponse({"detail": self.message}, status_code=self.status, headers=headers)
        body = {"detail": self.details, "message": self.message}
        return JSONResponse(body, status_code=self.status, headers=headers)


class EdgeMiddleware:
    def __init__(
        self,
        app: App,
        api_key: SecretStr | None,
        max_body_bytes: int,
        body_timeout_s: float,
        answer_timeout_s: float,
    ) -> None:
        self.app = app
        self.api_key = api_key.get_secret_value().encode() if api_key else None
        self.max_body_bytes, self.body_timeout_s = max_body_bytes, body_timeout_s
        self.answer_timeout_s = answer_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        endpoint = (
            path if path in SCORING_PATHS or path in {"/health", "/model-info", "/metrics"} else "other"
        )
        started = time.perf_counter()
        status: dict[str, Any] = {"code": 500, "started": False}

        async def send_and_record(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["started"] = message["status"], True
            await send(message)

        try:
            if path in KEYED_PATHS:
                self._authenticate(scope)
            if path in SCORING_PATHS and scope["method"] == "POST":
                scope, receive = await self._prepare_body(scope, receive)
                await self._answer_in_time(scope, receive, send_and_record, status)
            else:
                await self.app(scope, receive, send_and_record)
        except Refused as refused:
            await refused.response()(scope, receive, send_and_record)
        finally:
            metrics.REQUESTS.labels(endpoint, str(status["code"])).inc()
            metrics.LATENCY.labels(endpoint).observe(time.perf_counter() - started)

    async def _answer_in_time(self, scope: Scope, receive: Receive, send: Send, status: dict) -> None:
        try:
            async with asyncio.timeout(self.answer_timeout_s):  # no extra task, unlike wait_for
                await self.app(scope, receive, send)
        except TimeoutError:
            if status["started"]:  # too late for another answer
                raise
            raise Refused(
                504, f"no answer from a model worker within {self.answer_timeout_s:g} s; retry the request"
            ) from None

    def _authenticate(self, scope: Scope) -> None:
        if self.api_key is None:
            return
        headers = _headers(scope)
        bearer = headers.get("authorization", "")
        given = headers.get("x-api-key") or (bearer[7:] if bearer.startswith("Bearer ") else None)
        if not given:
            raise Refused(401, "API key required: send it as X-API-Key or Authorization: Bearer")
        if not hmac.compare_digest(given.encode(), self.api_key):
            raise Refused(403, "API key not accepted")

    async def _prepare_body(self, scope: Scope, receive: Receive) -> tuple[Scope, Receive]:
        headers = _headers(scope)
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        is_batch = scope["path"] == "/batch-predict"
        accepted = {"application/json", "text/csv"} if is_batch else {"application/json"}
        if content_type not in accepted:
            raise Refused(
                415, f"Content-Type must be one of {sorted(accepted)}, got '{content_type or 'none'}'"
            )
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            raise Refused(
                413, f"body over the limit of {self.max_body_bytes} bytes (Content-Length {declared})"
            )
        body = await self._read_body(receive)
        try:
            text = body.decode("utf-8-sig" if content_type == "text/csv" else "utf-8")
        except UnicodeDecodeError as exc:
            raise Refused(400, f"unreadable {content_type} body: not UTF-8 (byte {exc.start})") from exc
        explain = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("explain", ["false"])[0]
        if content_type == "text/csv":
            payload: Any = csv_records(text)
        else:
            payload = json_payload(text)
        if explain.lower() == "true":
            for record in payload if isinstance(payload, list) else [payload]:
                if isinstance(record, dict):
                    record["explain"] = True
        elif content_type == "application/json":
            return scope, _replay(body)
        new_body = json.dumps(payload).encode()
        new_headers = [
            (k, v) for k, v in scope["headers"] if k.lower() not in (b"content-type", b"content-length")
        ]
        new_headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(new_body)).encode()),
        ]
        return {**scope, "headers": new_headers}, _replay(new_body)

    async def _read_body(self, receive: Receive) -> bytes:
        """The whole body within `body_timeout_s` of its first read (a trickle cannot hold it open)."""
        chunks, size = [], 0
        deadline = asyncio.get_running_loop().time() + self.body_timeout_s
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError as exc:
                raise Refused(408, f"request body not received within {self.body_timeout_s:g} s") from exc
            if message["type"] == "http.disconnect":
                raise Refused(400, "client disconnected before sending the whole body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise Refused(413, f"body over the limit of {self.max_body_bytes} bytes")
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


class _Record(dict):
    """A JSON object, remembering the keys it held more than once."""

    repeated: tuple[str, ...] = ()


def printable(text: str) -> str:
    """`text` safe to put in a JSON answer: lone surrogates (valid in JSON escapes, not in UTF-8) escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _object(pairs: list[tuple[str, Any]]) -> _Record:
    record = _Record(pairs)
    if len(record) != len(pairs):
        seen: set[str] = set()
        record.repeated = tuple(k for k, _ in pairs if k in seen or seen.add(k))
    return record


def json_payload(text: str) -> Any:
    """The JSON body, or Refused(422) for invalid JSON, nesting too deep to parse, or a repeated key."""
    try:
        payload = json.loads(text, object_pairs_hook=_object)
    except RecursionError as exc:
        raise _invalid("body is not valid JSON: nested too deeply") from exc
    except ValueError as exc:
        raise _invalid(f"body is not valid JSON ({exc})") from exc
    rows = enumerate(payload) if isinstance(payload, list) else [(None, payload)]
    errors = [
        {
            "loc": ["body", *([] if row is None else [row]), printable(key)],
            "msg": f"key '{printable(key)}' appears more than once",
            "type": "duplicate_key",
        }
        for row, record in rows
        if isinstance(record, _Record)
        for key in record.repeated
    ]
    if errors:
        raise Refused(422, "; ".join(_describe(e) for e in errors[:10]), errors)
    return payload


def _invalid(message: str) -> Refused:
    return Refused(422, message, [{"loc": ["body"], "msg": message, "type": "json_invalid"}])


def csv_records(text: str) -> list[dict[str, str]]:
    """Rows of a CSV export with the data set's header; the label column, if present, is dropped.

    Read as ingestion reads a landed file: records (newline="": quoted newlines are data; \\n, \\r\\n and
    \\r end a record), strict quoting, header names without surrounding spaces, blank records skipped. A
    repeated header column is a 422; a record with more or fewer fields than the header (rows count
    records from 0, the header not counted), or text the reader cannot parse, is a 400 naming it.
    """
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    # A blank record (an empty or whitespace-only line) is not a row, as in ingestion.
    records = (fields for fields in reader if len(fields) > 1 or (fields and fields[0].strip()))
    try:
        header = [h.strip(" ") for h in next(records, [])]
        if not header:
            raise Refused(400, "unreadable text/csv body: it is empty")
        repeated = sorted({c for c in header if header.count(c) > 1})
        if repeated:
            errors = [
                {
                    "loc": ["body", c],
                    "msg": "column appears more than once in the header",
                    "type": "duplicate_key",
                }
                for c in repeated
            ]
            raise Refused(422, f"CSV header repeats columns {repeated}", errors)
        rows = []
        for row, fields in enumerate(records):
            if len(fields) != len(header):
                raise Refused(
                    400,
                    f"unreadable text/csv body: row {row} has {len(fields)} fields, the header has {len(header)}",
                )
            record = dict(zip(header, fields, strict=True))
            record.pop("Churn", None)
            rows.append(record)
    except csv.Error as exc:
        raise Refused(400, f"unreadable text/csv body: line {reader.line_num}: {exc}") from exc
    return rows


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for each request's headers (answered 408, then closed).

    The deadline starts when the connection opens or a new request begins, and ends with its headers.
    """

    header_timeout_s = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._arm_header_deadline()

    def _arm_header_deadline(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header_deadline()

    def on_headers_complete(self) -> None:
        self._disarm_header_deadline()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                b"connection: close\r\ncontent-length: 29\r\n\r\nrequest headers not received"
                b"\n"
            )
            self.transport.close()


def header_timeout_protocol(timeout_s: float) -> type[HeaderTimeoutProtocol]:
    return type("HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout_s": timeout_s})


def validation_error_handler(batch_limit: int):
    async def handle(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "too_long" and tuple(e.get("loc", ())) == ("body",) for e in errors):
            return Refused(
                413, f"batch over the limit of {batch_limit} records; split it into smaller batches"
            ).response()
        details = [
            {
                "loc": [printable(p) if isinstance(p, str) else p for p in e.get("loc", ())],
                "msg": printable(str(e.get("msg", ""))),
                "type": e.get("type"),
            }
            for e in errors
        ]
        summary = "; ".join(_describe(e) for e in details[:10])
        return JSONResponse({"detail": details, "message": summary}, status_code=422)

    return handle


def _describe(error: dict[str, Any]) -> str:
    if error.get("type") == "json_invalid":
        return f"body is not valid JSON ({error.get('msg')})"
    loc = [str(p) for p in error.get("loc", ()) if p != "body"]
    if loc and loc[0].isdigit():
        where = f"row {loc[0]}" + (f", field {'.'.join(loc[1:])}" if len(loc) > 1 else "")
    else:
        where = f"field {'.'.join(loc)}" if loc else "body"
    return f"{where}: {error.get('msg')}"
