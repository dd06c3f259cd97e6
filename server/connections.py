"""Bounds on HTTP connections, below the application: header size, header read time and
the number of open connections.

uvicorn's httptools protocol reads a request's head with no deadline and of any size
(a header value is buffered whole, however long); a client that dribbles its headers
a byte at a time holds a connection for ever. ``GuardedHttpToolsProtocol`` is that
protocol (uvicorn's fast C parser) with these bounds:

- the request line and headers together are at most ``max_header_bytes``: past it the
  client gets 400 and the connection is closed, before the parser buffers more;
- they must arrive within ``header_timeout`` seconds of the connection opening, or of
  the previous answer on a kept-alive connection, however slowly they trickle in:
  else the connection is closed;
- a body that goes on after the answer (a refusal that did not read it) is dropped
  for at most ``DRAIN_BYTES`` and ``header_timeout`` seconds, then the connection is
  closed: a body that never ends is never read for ever;
- at most ``max_connections`` connections are open at once; one more is closed as
  soon as it is accepted (and uvicorn answers 503 to requests past that number).

The body of a request is bounded in size and time by the application
(``server.app``'s ``_BodyLimit``). uvicorn builds the protocol itself, in each worker
process, so the bounds are module settings, set by ``configure`` before it starts.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["PROTOCOL", "ConnectionLimits", "GuardedHttpToolsProtocol", "configure", "limits"]

log = logging.getLogger("trustkit.server")

PROTOCOL = f"{__name__}:GuardedHttpToolsProtocol"  # uvicorn's ``http`` option


@dataclass(frozen=True)
class ConnectionLimits:
    max_header_bytes: int = 64 * 1024
    header_timeout: float = 10.0
    keep_alive_timeout: float = 5.0
    max_connections: int = 1000


_limits = ConnectionLimits()


def configure(new: ConnectionLimits) -> None:
    global _limits
    _limits = new


def limits() -> ConnectionLimits:
    return _limits


def uvicorn_options(bounds: ConnectionLimits) -> dict[str, Any]:
    """What uvicorn is told of the bounds (the rest this protocol enforces)."""
    return {
        "http": PROTOCOL,
        "limit_concurrency": bounds.max_connections,
        "timeout_keep_alive": bounds.keep_alive_timeout,
    }


DRAIN_BYTES = 1024 * 1024  # of a body left unread by an answer, read and dropped at most


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (its fast C parser) with the bounds above.

    A connection is *awaiting a head* from when it opens, and again from when a request
    ends, until that request's headers are complete: while it is, at most
    ``max_header_bytes`` are fed to the parser (which would otherwise buffer a header
    value of any length) and the header timer runs."""

    _awaiting_head = True
    _head_bytes = 0
    _draining: int | None = None  # bytes of an unread body dropped since the answer
    _timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        if len(self.connections) > _limits.max_connections:
            log.warning("refused a connection: %d are open already", len(self.connections) - 1)
            self.transport.close()
            return
        self._arm_timer()

    def data_received(self, data: bytes) -> None:
        step = max(1024, _limits.max_header_bytes // 2)
        for start in range(0, len(data), step):
            if self.transport.is_closing():
                return
            if self._awaiting_head:
                if self._head_bytes >= _limits.max_header_bytes:
                    self._refuse_head()
                    return
                self._head_bytes += min(step, len(data) - start)
            super().data_received(data[start : start + step])

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        self._cancel_timer()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._draining is not None:
            self._draining += len(body)
            if self._draining > DRAIN_BYTES:
                self.transport.close()  # a body that goes on after its answer
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._draining = None
        self._awaiting_head = True  # the next request's head
        self._head_bytes = 0

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self.cycle is not None and self.cycle.more_body:
            # Answered before the body was read (a refusal): what is left of it is
            # dropped, but only so much and for so long.
            self._draining = 0
        if self._awaiting_head or self._draining is not None:
            self._arm_timer()  # the next head has the same deadline as the first

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        super().connection_lost(exc)

    def _refuse_head(self) -> None:
        message = "Request headers too large."
        self.logger.warning(message)
        self.send_400_response(message)

    def _arm_timer(self) -> None:
        self._cancel_timer()
        self._timer = self.loop.call_later(_limits.header_timeout, self._too_slow)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _too_slow(self) -> None:
        self._timer = None
        waiting = self._awaiting_head or self._draining is not None
        if waiting and not self.transport.is_closing():
            self.transport.close()
