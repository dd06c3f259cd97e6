"""The metadata server as an ASGI app: its routes (``server.routes``, on Notary's URL
layout), the state they share, and the middleware around them.

Writes need a bearer token whose scope covers the repository (``push``; ``admin`` to
rotate server keys or delete); reads need ``pull`` only when the server is told so.

Every refusal is a JSON body ``{"error": CODE, "role": ROLE, "detail": TEXT}``
(``trustkit.wire.ErrorBody``). No request body is read past ``--max-upload-bytes``
(``server.middleware.BodyLimit``); request-given values go into the log quoted. There
are no /docs or /redoc pages (they load CDN scripts), and under read auth
/openapi.json and the metrics need a token.

Metadata of 1 KiB or more goes gzip-compressed to a client that accepts gzip, when
``settings.gzip`` (``TRUSTKIT_SERVER_GZIP``, read by ``server.main``); see
``server.http_cache``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from server.auth import Gatekeeper, install_token_file
from server.http_cache import GZIP_DEFAULT, GZIP_ENV, GZIP_MIN_BYTES, Compression
from server.master_key import MasterKey
from server.metrics import Metrics
from server.middleware import BodyLimit, CountRequests, FreshTimestamp
from server.online_keys import OnlineKeys
from server.publishing import MetadataService
from server.refusals import Refusal, error_response, quoted
from server.routes import router
from server.settings import ServerSettings
from server.state import ServerState
from server.storage.opening import open_storage
from trustkit import __version__

__all__ = ["GZIP_DEFAULT", "GZIP_ENV", "GZIP_MIN_BYTES", "create_app"]

log = logging.getLogger("trustkit.server")


def create_app(settings: ServerSettings) -> FastAPI:
    state = _server_state(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_keep_fresh(state.service, settings.refresh_interval))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        state.storage.close()

    # No /docs or /redoc: their pages load scripts from a CDN. The API description is
    # served by a route of ours (``server.routes.openapi``), behind read auth when reads
    # need a token.
    app = FastAPI(
        title="trustkit metadata server",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.trustkit = state
    app.state.service = state.service
    app.state.metrics = state.metrics
    app.add_exception_handler(Refusal, _refused)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid_request)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _internal_error)
    app.include_router(router)
    if state.gate.reads_open:
        app.add_middleware(FreshTimestamp, service=state.service, compression=state.compression)
    app.add_middleware(
        BodyLimit, max_bytes=settings.max_upload_bytes, timeout=settings.body_timeout
    )
    app.add_middleware(CountRequests, metrics=state.metrics)  # outermost: counts every answer
    return app


def _server_state(settings: ServerSettings) -> ServerState:
    """Open the storage and the master key, install the admin token file: the state
    the routes share."""
    storage = open_storage(settings.database_url, settings.database_path)
    master_key = MasterKey.load_or_create(settings.master_key_file)
    service = MetadataService(storage, OnlineKeys(storage, master_key), settings)
    metrics = Metrics()
    if settings.admin_token_file is not None:
        install_token_file(storage, settings.admin_token_file)
    gate = Gatekeeper(storage, require_auth=settings.require_auth, open_reads=settings.open_reads)
    compression = Compression(enabled=settings.gzip, metrics=metrics)
    return ServerState(settings, storage, service, metrics, gate, compression)


async def _refused(_: Request, refusal: Refusal) -> JSONResponse:
    return refusal.response()


async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
    # Starlette's own answers (a path no route takes, a method not allowed) in the
    # same JSON shape as every other refusal.
    code = "not_found" if error.status_code == 404 else "http_error"
    return error_response(error.status_code, code, f"{error.detail}: {request.url.path}")


async def _invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
    # A query parameter that is not what the route takes (the changefeed's ``after`` or
    # ``limit`` not an integer): a refusal in the same JSON shape as every other, not
    # FastAPI's own 422 body, which no client reads as ``trustkit.wire.ErrorBody``.
    wrong = ", ".join(
        str(problem.get("loc", ("?",))[-1]) for problem in error.errors() if problem.get("loc")
    )
    detail = f"{wrong or 'a parameter'} is not what {request.url.path} takes"
    return error_response(400, "malformed", f"{detail}: an integer, e.g. ?after=0&limit=100")


async def _internal_error(request: Request, error: Exception) -> JSONResponse:
    # A bug, not bad input: keep the details in the server log, not in the answer.
    log.exception("internal error on %s %s", request.method, quoted(request.url.path))
    return error_response(500, "internal_error", "internal server error; see the server log")


async def _keep_fresh(service: MetadataService, interval: float) -> None:
    while True:
        try:
            refreshed = await run_in_threadpool(service.refresh_all)
            if refreshed:
                log.info("re-signed online metadata of %d repositories", refreshed)
        except Exception:
            log.exception("background refresh failed; will retry")
        await asyncio.sleep(interval)
