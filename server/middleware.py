"""The server's ASGI middleware: what runs around every request, before routing.

``CountRequests`` counts answers; ``BodyLimit`` bounds how much of a request body is
read and for how long; ``FreshTimestamp`` answers the hot path (a repository's newest
timestamp.json, where reads need no token) without a thread hop.
"""

from __future__ import annotations

import asyncio

from fastapi import Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.http_cache import Compression, cacheable
from server.metrics import Metrics
from server.paths import split_trust_path
from server.publishing import MetadataService
from server.refusals import Refusal, error_response

__all__ = ["BodyLimit", "CountRequests", "FreshTimestamp"]

_METHODS = ("GET", "HEAD", "POST", "DELETE")

_TIMESTAMP_PATH = "/_trust/tuf/timestamp.json"


class FreshTimestamp:
    """The hot path: every host asks for a repository's newest timestamp.json first.

    Where reads need no token, it is answered here, on the event loop, before routing:
    one indexed read, no thread hop. A timestamp due for renewal (which means signing
    and a lock) and everything else go on to the routes."""

    def __init__(self, app: ASGIApp, service: MetadataService, compression: Compression) -> None:
        self._app = app
        self._service = service
        self._compression = compression

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "") if scope["type"] == "http" else ""
        if scope["type"] == "http" and scope["method"] == "GET" and path.endswith(_TIMESTAMP_PATH):
            data = None
            if path.startswith("/v2/"):
                try:
                    where = split_trust_path(path.removeprefix("/v2/"))
                except Refusal:
                    where = None
                # The routes take the GUN up to the *first* /_trust/tuf/, so
                # ".../_trust/tuf/x/_trust/tuf/timestamp.json" is the role
                # "x/_trust/tuf/timestamp", not this repository's timestamp.
                gun = where.gun if where and where.filename == "timestamp.json" else None
                if gun is not None:
                    data = self._service.fresh_timestamp(gun)
            if data is not None:
                request = Request(scope)
                answer = cacheable(data, request, self._compression, immutable=False, private=False)
                await answer(scope, receive, send)
                return
        await self._app(scope, receive, send)


class CountRequests:
    """Counts every HTTP answer by method and status: a plain ASGI middleware, which
    costs a hot GET far less than a request/response-wrapping one."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        method = scope["method"] if scope["method"] in _METHODS else "other"

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._metrics.count(
                    "trustkit_http_requests_total", method=method, status=str(message["status"])
                )
            await send(message)

        await self._app(scope, receive, counting_send)


class BodyLimit:
    """No request body is read past ``max_bytes``, however it is sent (a Content-Length,
    chunked, or one that never ends): the bytes are counted as they arrive, and the
    moment they pass the limit the caller gets 413 and the connection is closed; the
    route reading it sees the client gone. A Content-Length over the limit is refused
    before any of the body is read. A body that takes longer than ``timeout`` seconds
    to arrive, however slowly it trickles, gets 408 the same way."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float) -> None:
        self._app = app
        self._max_bytes = max_bytes
        self._timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = Request(scope).headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self._max_bytes):
            await self._too_large(send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        received = 0
        body_done = refused = started = False

        async def counted_receive() -> Message:
            nonlocal received, body_done, refused
            if refused:
                return {"type": "http.disconnect"}
            if body_done:  # e.g. a streaming answer listening for a disconnect
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                refused = True
                if not started:
                    await self._too_slow(send)
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if received > self._max_bytes:
                    refused = True
                    if not started:
                        await self._too_large(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the refusal went instead
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self._app(scope, counted_receive, guarded_send)

    async def _too_large(self, send: Send) -> None:
        detail = f"the request body is larger than {self._max_bytes} bytes"
        await _refuse_and_close(send, error_response(413, "too_large", detail))

    async def _too_slow(self, send: Send) -> None:
        detail = f"the request body did not arrive within {self._timeout:g} seconds"
        await _refuse_and_close(send, error_response(408, "request_timeout", detail))


async def _refuse_and_close(send: Send, answer: Response) -> None:
    answer.headers["Connection"] = "close"  # the rest of the body is never read
    await answer({"type": "http"}, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.disconnect"}
