"""The scoring endpoints as a LitServe spec: the request body goes to a model worker as bytes.

LitServe's default endpoint validates the body into a request model in the API-server process and pickles
that object to the worker; for a 1,000-record batch that costs more than scoring it. A `LitSpec` is
LitServe's way to own an endpoint: this one hands the worker the body as it came (one `bytes` pickle),
the worker parses and validates it column by column, and answers with the response body already encoded
(`Answer`), which is returned as is. Queueing, worker restarts and timeouts stay LitServe's.

The server documents these routes with the request and response models of `serving.schemas`.
"""

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request, Response
from litserve.specs.base import LitSpec
from litserve.utils import LitAPIStatus, ResponseBufferItem

from serving.payload import media_type


@dataclass(frozen=True)
class Body:
    """A scoring request as the worker receives it."""

    content: bytes
    content_type: str  # application/json or text/csv (the edge refused any other)
    explain: bool  # ?explain=true


@dataclass(frozen=True)
class Answer:
    """A response body encoded by the worker."""

    content: bytes
    status: int = 200
    media_type: str = "application/json"


class ScoringSpec(LitSpec):
    """One POST endpoint at `api_path` whose body reaches the worker unparsed."""

    def __init__(self, api_path: str) -> None:
        super().__init__()
        self.api_path = api_path
        self.add_endpoint(api_path, self.handle, ["POST"])

    async def handle(self, request: Request) -> Response:
        body = Body(
            await request.body(),
            media_type(request.headers.get("content-type", "")),
            request.query_params.get("explain", "false").lower() == "true",
        )
        uid = uuid.uuid4()
        event = asyncio.Event()
        self.response_buffer[uid] = ResponseBufferItem(event=event)
        self.request_queue.put_nowait((self.response_queue_id, uid, time.monotonic(), body))
        await event.wait()
        response, status = self.response_buffer.pop(uid).response
        if status == LitAPIStatus.ERROR:
            raise _error(response)
        return Response(response.content, status_code=response.status, media_type=response.media_type)

    def decode_request(self, request: Body, context_kwargs: dict | None = None) -> Body:
        return request

    def encode_response(self, output: Answer, context_kwargs: dict | None = None) -> Answer:
        return output


def _error(response: Any) -> HTTPException:
    """A worker's HTTPException as sent; anything else (logged by LitServe in the worker) a 500."""
    if isinstance(response, HTTPException):
        return HTTPException(response.status_code, response.detail)
    return HTTPException(500, "Internal server error")
