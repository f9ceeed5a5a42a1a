"""What the API-server processes do before a request reaches a worker, and to every response.

A pure ASGI middleware: request counts and latencies for Prometheus, a 415 for bodies the endpoint
cannot read, `text/csv` batch bodies turned into JSON records, and `?explain=true` carried into the body
(LitServe hands workers the body only). Validation errors become 422s that name row and field, or a 413
when a batch is over the limit.
"""

import csv
import io
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from serving import metrics

SCORING_PATHS = {"/predict", "/batch-predict"}
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class EdgeMiddleware:
    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        endpoint = (
            path if path in SCORING_PATHS or path in {"/health", "/model-info", "/metrics"} else "other"
        )
        started = time.perf_counter()
        status = {"code": 500}

        async def send_and_record(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            if path in SCORING_PATHS and scope["method"] == "POST":
                scope, receive, refusal = await _prepare_body(scope, receive)
                if refusal is not None:
                    await refusal(scope, receive, send_and_record)
                    return
            await self.app(scope, receive, send_and_record)
        finally:
            metrics.REQUESTS.labels(endpoint, str(status["code"])).inc()
            metrics.LATENCY.labels(endpoint).observe(time.perf_counter() - started)


async def _prepare_body(scope: Scope, receive: Receive):
    headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    explain = parse_qs(scope.get("query_string", b"").decode()).get("explain", ["false"])[0].lower() == "true"
    is_batch = scope["path"] == "/batch-predict"
    accepted = {"application/json", "text/csv"} if is_batch else {"application/json"}
    if content_type not in accepted:
        return (
            scope,
            receive,
            _error(415, f"Content-Type must be one of {sorted(accepted)}, got '{content_type or 'none'}'"),
        )
    if content_type == "application/json" and not explain:
        return scope, receive, None
    body = await _read_body(receive)
    try:
        payload = _csv_records(body) if content_type == "text/csv" else json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return scope, receive, _error(400, f"unreadable {content_type} body: {exc}")
    if explain:
        for record in payload if isinstance(payload, list) else [payload]:
            if isinstance(record, dict):
                record["explain"] = True
    new_body = json.dumps(payload).encode()
    new_headers = [
        (k, v) for k, v in scope["headers"] if k.lower() not in (b"content-type", b"content-length")
    ]
    new_headers += [(b"content-type", b"application/json"), (b"content-length", str(len(new_body)).encode())]
    return {**scope, "headers": new_headers}, _replay(new_body), None


def _csv_records(body: bytes) -> list[dict[str, str]]:
    """Rows of a CSV export with the data set's header; the label column, if present, is dropped."""
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    for row in rows:
        row.pop("Churn", None)
        if None in row:
            raise ValueError("a row has more fields than the header")
    return rows


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def _error(status: int, message: str):
    return JSONResponse({"detail": message}, status_code=status)


def validation_error_handler(batch_limit: int):
    async def handle(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "too_long" and tuple(e.get("loc", ())) == ("body",) for e in errors):
            return _error(
                413, f"batch over the limit of {batch_limit} records; split it into smaller batches"
            )
        details = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in errors]
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
