"""What the API-server processes do before a request reaches a worker, and to every response.

A pure ASGI middleware, in this order for the scoring endpoints:

1. the API key, before a byte of the body is read (401 missing, 403 wrong); `/model-info` needs it too;
2. the content type (415), then the body, read with a size limit (413 on `Content-Length` alone, or as
   soon as the bytes read pass it) and a deadline for the whole body (408: a body shorter than its
   `Content-Length`, or a trickle, cannot hold a connection; after a 408 or 413 the connection closes);
3. a deadline for the answer (504): LitServe only drops requests that waited too long in its queue, so a
   request taken by a worker that then died would otherwise wait forever.

The body is handed on as it came: the model workers parse and validate it (`serving.payload`,
`serving.validation`). Request counts and latencies of every request go to Prometheus.

`HeaderTimeoutProtocol` closes connections that do not finish sending their request headers in time (uvicorn
has a keep-alive timeout for idle connections, but none for a request that has started).
"""

import asyncio
import hmac
import time
from typing import Any

from pydantic import SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from serving import metrics
from serving.payload import Refused, media_type

SCORING_PATHS = {"/predict", "/batch-predict"}
KEYED_PATHS = SCORING_PATHS | {"/model-info"}


class EdgeMiddleware:
    def __init__(
        self,
        app: ASGIApp,
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

        async def send_and_record(message: Message) -> None:
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

    async def _answer_in_time(
        self, scope: Scope, receive: Receive, send: Send, status: dict[str, Any]
    ) -> None:
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
        content_type = media_type(headers.get("content-type", ""))
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
        return scope, _replay(await self._read_body(receive))

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


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
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
