"""What the routes work with, built once by ``server.app.create_app`` and handed to each
route as a FastAPI dependency (``State``), so a route is a plain function of its
request and this, and can be called alone."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from server.auth import Action, AuthFailure, Gatekeeper
from server.http_cache import Compression
from server.metrics import Metrics
from server.publishing import MetadataService
from server.refusals import BEARER_CHALLENGE, Refusal, quoted
from server.settings import ServerSettings
from server.storage import Storage

__all__ = ["ServerState", "State", "server_state"]

log = logging.getLogger("trustkit.server")


@dataclass(frozen=True)
class ServerState:
    settings: ServerSettings
    storage: Storage
    service: MetadataService
    metrics: Metrics
    gate: Gatekeeper
    compression: Compression

    def check_reader(self, request: Request) -> None:
        """Whether the caller may read what belongs to no repository; else a 401."""
        try:
            self.gate.check_reader(request.headers.get("authorization"))
        except AuthFailure as failure:
            raise Refusal(
                failure.status, failure.error, failure.detail, headers=BEARER_CHALLENGE
            ) from None

    def caller(self, request: Request, action: Action, gun: str) -> str | None:
        """The caller's token name (None without auth), if it may do ``action`` to
        ``gun``; else a 401 or 403."""
        try:
            return self.gate.check(request.headers.get("authorization"), action, gun)
        except AuthFailure as failure:
            log.info("refused %s %s: %s", request.method, quoted(gun or "-"), failure.error)
            challenge = BEARER_CHALLENGE if failure.status == 401 else None
            raise Refusal(
                failure.status, failure.error, failure.detail, headers=challenge
            ) from None


async def server_state(request: Request) -> ServerState:
    found: ServerState = request.app.state.trustkit
    return found


State = Annotated[ServerState, Depends(server_state)]
