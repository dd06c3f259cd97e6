"""Bounds on HTTP connections, below the application: header size, header read time and
the number of open connections.

uvicorn reads a request's head with no deadline and, through httptools, of any size; a
client that dribbles its headers a byte at a time holds a connection for ever. This
protocol is uvicorn's h11 one with three bounds:

- the request line and headers together are at most ``max_header_bytes`` (h11's
  incomplete-event limit; data is fed to h11 in slices so that one large read cannot
  pass it whole): past it, uvicorn answers 400 and closes;
- they must arrive within ``header_timeout`` seconds of the connection opening, or of
  the previous answer on a kept-alive connection, however slowly they trickle in:
  else the connection is closed;
- at most ``max_connections`` connections are open at once; one more is closed as
  soon as it is accepted (and uvicorn answers 503 to requests past that number).

uvicorn builds the protocol itself (in each worker process), so the bounds are module
settings, set by ``configure`` before the server starts.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["PROTOCOL", "ConnectionLimits", "GuardedH11Protocol", "configure", "limits"]

log = logging.getLogger("trustkit.server")

PROTOCOL = f"{__name__}:GuardedH11Protocol"  # uvicorn's ``http`` option


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
        "h11_max_incomplete_event_size": bounds.max_header_bytes,
        "limit_concurrency": bounds.max_connections,
        "timeout_keep_alive": bounds.keep_alive_timeout,
    }


DRAIN_BYTES = 1024 * 1024  # of a body left unread by an answer, read and dropped at most
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


class _StrictConnection(h11.Connection):
    """h11 takes control characters in header values and the request target; HTTP does
    not (RFC 9110, 5.5), and uvicorn's other parser refuses them: so do we, with the
    400 uvicorn answers to any request it cannot parse."""

    def next_event(self) -> Any:
        event = super().next_event()
        if isinstance(event, h11.Request) and (
            _CONTROL.search(event.target) or any(_CONTROL.search(v) for _, v in event.headers)
        ):
            raise h11.RemoteProtocolError("a control character in the request head", 400)
        return event


class GuardedH11Protocol(H11Protocol):
    _header_timer: asyncio.TimerHandle | None = None
    _draining: int | None = None  # bytes of an unread body dropped since the answer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = _StrictConnection(h11.SERVER, _limits.max_header_bytes)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        if len(self.connections) > _limits.max_connections:
            log.warning("refused a connection: %d are open already", len(self.connections) - 1)
            self.transport.close()
            return
        self._arm_timer()

    def data_received(self, data: bytes) -> None:
        if self._draining is not None:
            self._draining += len(data)
            if self._draining > DRAIN_BYTES:
                self.transport.close()  # a body that goes on after its answer
                return
        step = max(1024, _limits.max_header_bytes // 2)
        for start in range(0, len(data), step):
            if self.transport.is_closing():
                return
            super().data_received(data[start : start + step])
        state = self.conn.their_state
        if self._draining is not None:
            if state is not h11.SEND_BODY:
                self._draining = None  # the unread body ended; the next head may come
        elif state is not h11.IDLE:
            self._cancel_timer()  # the head is in

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self.conn.their_state is not h11.IDLE:
            # Answered before the body was read (a refusal): what is left of it is
            # dropped, but only so much and for so long.
            self._draining = 0
        # The next request's head has the same deadline as the first.
        self._arm_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        super().connection_lost(exc)

    def _arm_timer(self) -> None:
        self._cancel_timer()
        self._header_timer = self.loop.call_later(_limits.header_timeout, self._too_slow)

    def _cancel_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        waiting = self.conn.their_state is h11.IDLE or self._draining is not None
        if waiting and not self.transport.is_closing():
            self.transport.close()
