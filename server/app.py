"""HTTP routes of the metadata server, on Notary's URL layout.

    GET    /v2/{gun}/_trust/tuf/{role}.json            newest version of a role
    GET    /v2/{gun}/_trust/tuf/{version}.{role}.json  one version, forever
    GET    /v2/{gun}/_trust/tuf/{role}.key             a server-held public key
    POST   /v2/{gun}/_trust/tuf/                       upload metadata (multipart): 200
                                                       published, 202 kept pending
    GET    /v2/{gun}/_trust/tuf/pending                uploads waiting for co-signers
    POST   /v2/{gun}/_trust/tuf/pending/{id}           add signatures (multipart, as upload)
    DELETE /v2/{gun}/_trust/tuf/pending/{id}           withdraw a pending upload (admin, or
                                                       a key holder's signature: see
                                                       ``server.publishing``)
    DELETE /v2/{gun}/_trust/tuf/                       delete the repository
    GET    /v2/_trust/changefeed?after=SEQ&limit=N     audit log (admin)
    GET    /_trustkit/health, /_trustkit/metrics       liveness; Prometheus counters

Writes need a bearer token whose scope covers the repository (``push``; ``admin`` to
rotate server keys or delete); reads need ``pull`` only when the server is told so.

Every refusal is a JSON body ``{"error": CODE, "role": ROLE, "detail": TEXT}``. No
request body is read past ``--max-upload-bytes`` (``_BodyLimit``); request-given values
go into the log quoted. There are no /docs or /redoc pages (they load CDN scripts), and
under read auth /openapi.json and the metrics need a token.

Metadata of 1 KiB or more goes gzip-compressed to a client that accepts gzip, when
``TRUSTKIT_SERVER_GZIP=1`` (see ``_Compression``); smaller files (timestamp.json, the
hot path) always go as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import json
import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from securesystemslib.signer import Signature
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.auth import Action, AuthFailure, Gatekeeper, install_token_file
from server.master_key import MasterKey
from server.metrics import Metrics
from server.online_keys import OnlineKeys
from server.publishing import MetadataService, PublishResult
from server.settings import ServerSettings
from server.storage import ChangeRecord
from server.storage.opening import open_storage
from server.validation import UploadRejected
from trustkit import __version__
from trustkit.errors import UsageError
from trustkit.metadata import ONLINE_ROLES, public_key_to_dict
from trustkit.names import parse_gun

__all__ = ["create_app"]

log = logging.getLogger("trustkit.server")

TRUST_SEGMENT = "/_trust/tuf/"
_METHODS = ("GET", "HEAD", "POST", "DELETE")
_PENDING = re.compile(r"^pending(?:/(?P<id>[0-9a-f]{16}))?$")
_METADATA_FILE = re.compile(r"^(?:(?P<version>[0-9]{1,18})\.)?(?P<role>.+)\.(?P<ext>json|key)$")


@dataclass(frozen=True)
class _TrustPath:
    gun: str
    filename: str


def _printable(text: str | None) -> str | None:
    """Text quoted from an upload, safe to encode: a lone surrogate becomes ``\\ud800``."""
    return None if text is None else text.encode("utf-8", "backslashreplace").decode()


def _quoted(text: object) -> str:
    """A request-provided value as it goes into a log line: JSON-quoted, so a newline or
    a terminal escape in it shows as ``\\n`` or ``\\u001b`` and cannot forge a line."""
    return json.dumps(str(text))


def _error(status: int, error: str, detail: str, role: str | None = None) -> JSONResponse:
    body = {"error": error, "role": _printable(role), "detail": _printable(detail)}
    return JSONResponse(body, status_code=status)


def _split(path: str) -> _TrustPath | JSONResponse:
    gun_text, found, filename = f"/{path}".partition(TRUST_SEGMENT)
    if not found:
        return _error(404, "not_found", f"no such resource: /v2/{path}")
    try:
        gun = parse_gun(gun_text.lstrip("/"))
    except UsageError as error:
        return _error(400, "bad_repository_name", error.message)
    if gun != gun_text.lstrip("/"):
        return _error(400, "bad_repository_name", f"use the full repository name {gun}")
    return _TrustPath(gun, filename)


def create_app(settings: ServerSettings) -> FastAPI:
    storage = open_storage(settings.database_url, settings.database_path)
    master_key = MasterKey.load_or_create(settings.master_key_file)
    service = MetadataService(storage, OnlineKeys(storage, master_key), settings)
    metrics = Metrics()
    compression = _Compression(
        enabled=os.environ.get(GZIP_ENV, GZIP_DEFAULT) == "1", metrics=metrics
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_keep_fresh(service, settings.refresh_interval))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        storage.close()

    # No /docs or /redoc: their pages load scripts from a CDN. The API description is
    # served by a route of ours, behind read auth when reads need a token.
    app = FastAPI(
        title="trustkit metadata server",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.service = service

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        # Starlette's own answers (a path no route takes, a method not allowed) in the
        # same JSON shape as every other refusal.
        code = "not_found" if error.status_code == 404 else "http_error"
        return _error(error.status_code, code, f"{error.detail}: {request.url.path}")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        # A bug, not bad input: keep the details in the server log, not in the answer.
        log.exception("internal error on %s %s", request.method, _quoted(request.url.path))
        return _error(500, "internal_error", "internal server error; see the server log")

    app.state.metrics = metrics

    @app.get("/_trustkit/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    if settings.admin_token_file is not None:
        install_token_file(storage, settings.admin_token_file)
    gate = Gatekeeper(storage, require_auth=settings.require_auth, open_reads=settings.open_reads)

    def reader(request: Request) -> JSONResponse | None:
        """None if the caller may read what belongs to no repository; else the 401."""
        try:
            gate.check_reader(request.headers.get("authorization"))
        except AuthFailure as failure:
            answer = _error(failure.status, failure.error, failure.detail)
            answer.headers["WWW-Authenticate"] = 'Bearer realm="trustkit"'
            return answer
        return None

    @app.get("/_trustkit/metrics")
    def prometheus_metrics(request: Request) -> Response:
        return reader(request) or Response(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(request: Request) -> Response:
        return reader(request) or JSONResponse(app.openapi())

    def who(request: Request, action: Action, gun: str) -> str | JSONResponse | None:
        """The caller's token name (None without auth), or the 401/403 answer."""
        try:
            return gate.check(request.headers.get("authorization"), action, gun)
        except AuthFailure as failure:
            log.info("refused %s %s: %s", request.method, _quoted(gun or "-"), failure.error)
            answer = _error(failure.status, failure.error, failure.detail)
            if failure.status == 401:
                answer.headers["WWW-Authenticate"] = 'Bearer realm="trustkit"'
            return answer

    @app.get("/v2/_trust/changefeed")
    def changefeed(request: Request, after: int = 0, limit: int = 100) -> Response:
        """Every publish, pending change, approval, key request and deletion, oldest
        first; ``after`` is the last ``seq`` seen. Only repositories the token may
        administer are listed."""
        try:
            allowed = gate.feed_filter(request.headers.get("authorization"))
        except AuthFailure as failure:
            return _error(failure.status, failure.error, failure.detail)
        limit = max(1, min(limit, 1000))
        entries: list[ChangeRecord] = []
        seq = max(0, min(after, 2**62))  # sequence numbers are 64-bit in storage
        scanned = 0
        # A token that administers few repositories reads a sparse feed: each request
        # scans at most MAX_FEED_SCAN lines, and ``next`` says where it stopped.
        while len(entries) < limit and scanned < MAX_FEED_SCAN:
            batch = storage.changes(seq, limit)
            if not batch:
                break
            scanned += len(batch)
            seq = batch[-1].seq
            entries += [change for change in batch if allowed(change.gun)]
        if len(entries) > limit:
            entries = entries[:limit]
            seq = entries[-1].seq
        return JSONResponse(
            {
                "entries": [
                    {
                        "seq": change.seq,
                        "time": change.time.isoformat(),
                        "repository": change.gun,
                        "action": change.action,
                        "versions": change.versions,
                        "token": change.actor,
                        "detail": change.detail,
                    }
                    for change in entries
                ],
                "next": seq,
            }
        )

    if gate.reads_open:
        app.add_middleware(_FreshTimestamp, service=service, compression=compression)

    @app.get("/v2/{path:path}")
    def get_metadata(path: str, request: Request) -> Response:
        where = _split(path)
        if isinstance(where, JSONResponse):
            return where
        if where.filename == "pending":
            caller = who(request, "pull", where.gun)
            if isinstance(caller, JSONResponse):
                return caller
            try:
                changes = service.pending(where.gun)
            except UploadRejected as rejected:
                return _error(rejected.status, rejected.error, rejected.detail, rejected.role)
            listed = b",".join(change.to_json() for change in changes)
            body = json.dumps({"gun": where.gun}).encode()[:-1] + b', "pending": [' + listed
            return Response(body + b"]}", media_type="application/json")
        match = _METADATA_FILE.fullmatch(where.filename)
        if not match:
            return _error(404, "not_found", f"no such metadata file: {where.filename}")
        role, version = match["role"], match["version"]
        if match["ext"] == "key":
            if role not in ONLINE_ROLES or version is not None:
                return _error(404, "not_server_key", f"the server holds no {role} key", role)
            # Reading a key is a read; making one (the first request) is a write.
            existing = service.online_keys.existing_public_key(where.gun, role)
            caller = who(request, "pull" if existing else "push", where.gun)
            if isinstance(caller, JSONResponse):
                return caller
            key = existing or service.online_keys.public_key(where.gun, role)
            return JSONResponse(public_key_to_dict(key))
        caller = who(request, "pull", where.gun)
        if isinstance(caller, JSONResponse):
            return caller
        data = service.metadata(where.gun, role, int(version) if version else None)
        if data is None:
            wanted = f"{version}.{role}" if version else role
            return _error(404, "not_found", f"{where.gun} has no {wanted}.json", role)
        return _cacheable(
            data,
            request,
            compression,
            immutable=version is not None,
            private=caller is not None,
        )

    @app.post("/v2/{path:path}")
    async def upload(path: str, request: Request) -> Response:
        where = _split(path)
        if isinstance(where, JSONResponse):
            return where
        pending = _PENDING.fullmatch(where.filename)
        rotating = bool(where.filename) and not (pending and pending["id"])
        caller = who(request, "admin" if rotating else "push", where.gun)
        if isinstance(caller, JSONResponse):
            return caller
        if rotating:
            return rotate_server_key(where.gun, where.filename, caller)
        parts = await _read_parts(request, settings)
        if isinstance(parts, JSONResponse):
            return parts
        try:
            if pending:
                result = await run_in_threadpool(
                    service.approve, where.gun, pending["id"], parts, caller
                )
            else:
                result = await run_in_threadpool(service.publish, where.gun, parts, caller)
        except UploadRejected as rejected:
            log.info(
                "refused upload to %s: %s role=%s",
                _quoted(where.gun),
                rejected.error,
                # Already escaped where the refusal was made (the role name is shown
                # to a terminal too); quoting it again would double every backslash.
                rejected.role or "-",
            )
            metrics.count("trustkit_refusals_total", error=rejected.error)
            return _error(rejected.status, rejected.error, rejected.detail, rejected.role)
        metrics.count("trustkit_pending_total" if result.pending else "trustkit_publishes_total")
        return _published(where.gun, result)

    def rotate_server_key(gun: str, filename: str, caller: str | None) -> Response:
        """``POST {role}.key``: make the role's next key. It signs nothing until the root
        holder uploads a root that lists it, so asking for one changes no trust."""
        match = _METADATA_FILE.fullmatch(filename)
        if not match or match["ext"] != "key" or match["version"] is not None:
            return _error(405, "method_not_allowed", "upload to /v2/{gun}/_trust/tuf/")
        role = match["role"]
        if role not in ONLINE_ROLES:
            return _error(404, "not_server_key", f"the server holds no {role} key", role)
        if service.metadata(gun, "root", 1) is None:
            return _error(404, "not_found", f"no repository {gun}")
        key = service.online_keys.make_next(gun, role)
        storage.record_change(gun, "next_key", {}, caller, f"{role} {key.keyid}")
        log.info("made the next %s key of %s: %s", role, _quoted(gun), key.keyid)
        return JSONResponse(public_key_to_dict(key))

    @app.delete("/v2/{path:path}")
    async def delete_repository(path: str, request: Request) -> Response:
        where = _split(path)
        if isinstance(where, JSONResponse):
            return where
        pending = _PENDING.fullmatch(where.filename)
        withdrawing = bool(pending and pending["id"])
        caller = who(request, "push" if withdrawing else "admin", where.gun)
        if isinstance(caller, JSONResponse):
            return caller
        if pending and pending["id"]:
            return await withdraw(request, where.gun, pending["id"], caller)
        if where.filename:
            return _error(405, "method_not_allowed", "delete /v2/{gun}/_trust/tuf/")
        if not await run_in_threadpool(service.delete, where.gun, caller):
            return _error(404, "not_found", f"no repository {where.gun}")
        log.info("deleted repository %s", _quoted(where.gun))
        return JSONResponse({"deleted": where.gun})

    async def withdraw(request: Request, gun: str, change_id: str, caller: str | None) -> Response:
        """``DELETE pending/{id}``: an admin token, or a push token and a body
        ``{"signatures": [...]}`` signing ``withdraw_statement(gun, id)`` with a key of
        the change's roles (see ``MetadataService.withdraw``)."""
        proof = await _read_withdraw_proof(request)
        if isinstance(proof, JSONResponse):
            return proof
        admin = gate.allows(request.headers.get("authorization"), "admin", gun)
        try:
            await run_in_threadpool(
                service.withdraw, gun, change_id, caller, proof=proof, admin=admin
            )
        except UploadRejected as rejected:
            log.info("refused withdrawing %s of %s: %s", change_id, _quoted(gun), rejected.error)
            return _error(rejected.status, rejected.error, rejected.detail, rejected.role)
        log.info("withdrew pending change %s of %s", change_id, _quoted(gun))
        return JSONResponse({"withdrawn": change_id})

    app.add_middleware(
        _BodyLimit, max_bytes=settings.max_upload_bytes, timeout=settings.body_timeout
    )
    app.add_middleware(_CountRequests, metrics=metrics)  # outermost: counts every answer
    return app


MAX_FEED_SCAN = 10_000  # changefeed lines one request reads at most
LATEST_MAX_AGE = 5  # seconds a cache may serve a role's newest version without asking
GZIP_MIN_BYTES = 1024  # smaller metadata (timestamp.json) is not worth compressing
GZIP_ENV = "TRUSTKIT_SERVER_GZIP"  # "1" (default): compress; "0": never
GZIP_DEFAULT = "1"


class _Compression:
    """gzip bodies of metadata, kept by the sha256 of what they compress.

    Keyed by content, an entry is never stale: ``N.role.json`` never changes, and a
    role's newest version is served under its own digest until a publish replaces it.
    So a file many hosts ask for is compressed once, not once per host — however large:
    bodies of more than an eighth of the budget are kept apart, in a budget of their
    own, so one huge role neither flushes the many small ones nor is compressed again
    for every anonymous request. Requests for a body being compressed wait for it
    rather than compress it too.
    """

    def __init__(
        self, *, enabled: bool, max_bytes: int = 32 * 1024 * 1024, metrics: Metrics | None = None
    ) -> None:
        self.enabled = enabled
        self._small = _ByteBudgetLRU(max_bytes)
        self._large = _ByteBudgetLRU(2 * max_bytes)
        self._small_at_most = max_bytes // 8
        self._metrics = metrics
        self._lock = threading.Lock()  # routes run in a thread pool
        self._in_progress: dict[str, threading.Lock] = {}

    def wanted(self, data: bytes, request: Request) -> bool:
        return (
            self.enabled
            and len(data) >= GZIP_MIN_BYTES
            and _accepts_gzip(request.headers.get("accept-encoding"))
        )

    def compressed(self, digest: str, data: bytes) -> bytes:
        body = self._cached(digest)
        if body is not None:
            return body
        with self._lock:
            working = self._in_progress.setdefault(digest, threading.Lock())
        with working:  # one compression per body at a time; the others wait for it
            body = self._cached(digest)
            if body is None:
                # mtime=0: the same content always compresses to the same bytes.
                body = gzip.compress(data, compresslevel=6, mtime=0)
                if self._metrics is not None:
                    self._metrics.count("trustkit_gzip_compressions_total")
                with self._lock:
                    cache = self._small if len(body) <= self._small_at_most else self._large
                    cache.put(digest, body)
        with self._lock:
            self._in_progress.pop(digest, None)
        return body

    def _cached(self, digest: str) -> bytes | None:
        with self._lock:
            return self._small.get(digest) or self._large.get(digest)


class _ByteBudgetLRU:
    """Bodies by key, the least recently used dropped once they pass ``max_bytes``; a
    body larger than the whole budget is not kept. Not thread-safe on its own."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._bodies: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0

    def get(self, key: str) -> bytes | None:
        body = self._bodies.get(key)
        if body is not None:
            self._bodies.move_to_end(key)
        return body

    def put(self, key: str, body: bytes) -> None:
        if key in self._bodies or len(body) > self._max_bytes:
            return
        self._bodies[key] = body
        self._size += len(body)
        while self._size > self._max_bytes:
            _, dropped = self._bodies.popitem(last=False)
            self._size -= len(dropped)


def _accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an Accept-Encoding header takes gzip: listed (or ``*`` without gzip
    listed) with a q-value above 0."""
    gzip_q: float | None = None
    any_q: float | None = None
    for item in (accept_encoding or "").split(","):
        coding, *parameters = (part.strip() for part in item.split(";"))
        q = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        coding = coding.lower()
        if coding in ("gzip", "x-gzip"):
            gzip_q = max(q, gzip_q or 0.0)
        elif coding == "*":
            any_q = q
    if gzip_q is not None:
        return gzip_q > 0
    return any_q is not None and any_q > 0


def _none_match(etag: str, if_none_match: str) -> bool:
    """If-None-Match's weak comparison: whether the header lists ``etag`` (W/ or not)
    or is ``*``."""
    opaque = etag.removeprefix("W/")
    return any(
        tag == "*" or tag.removeprefix("W/") == opaque
        for tag in (tag.strip() for tag in if_none_match.split(","))
    )


def _cacheable(
    data: bytes, request: Request, compression: _Compression, *, immutable: bool, private: bool
) -> Response:
    """Metadata with an ETag: ``N.role.json`` never changes, so caches and CDNs keep it
    for a year; a role's newest version only briefly. Answers 304 to a matching
    If-None-Match. Reads behind a token are cached by the client only.

    The gzip representation has an ETag of its own, weak (``W/"<sha256>-gzip"``: the
    same content, though not necessarily the same bytes from another server's zlib),
    and every answer says ``Vary: Accept-Encoding``, so a cache keeps the two apart."""
    digest = hashlib.sha256(data).hexdigest()
    compressed = compression.wanted(data, request)
    etag = f'W/"{digest}-gzip"' if compressed else f'"{digest}"'
    scope = "private" if private else "public"
    policy = (
        f"{scope}, max-age=31536000, immutable"
        if immutable
        else f"{scope}, max-age={LATEST_MAX_AGE}"
    )
    headers = {"ETag": etag, "Cache-Control": policy, "Vary": "Accept-Encoding"}
    if _none_match(etag, request.headers.get("if-none-match", "")):
        return Response(status_code=304, headers=headers)
    if compressed:
        headers["Content-Encoding"] = "gzip"
        data = compression.compressed(digest, data)
    return Response(data, media_type="application/json", headers=headers)


def _published(gun: str, result: PublishResult) -> Response:
    if result.pending is not None:
        change = result.pending
        log.info("kept %s pending for co-signers: %s", _quoted(gun), change.upload.id)
        body = json.dumps({"gun": gun}).encode()[:-1] + b', "pending": ' + change.to_json()
        return Response(body + b"}", status_code=202, media_type="application/json")
    log.info("published %s: %s", _quoted(gun), result.versions)
    return JSONResponse({"gun": gun, "versions": result.versions})


_TIMESTAMP_PATH = "/_trust/tuf/timestamp.json"


class _FreshTimestamp:
    """The hot path: every host asks for a repository's newest timestamp.json first.

    Where reads need no token, it is answered here, on the event loop, before routing:
    one indexed read, no thread hop. A timestamp due for renewal (which means signing
    and a lock) and everything else go on to the routes."""

    def __init__(self, app: ASGIApp, service: MetadataService, compression: _Compression) -> None:
        self._app = app
        self._service = service
        self._compression = compression

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "") if scope["type"] == "http" else ""
        if scope["type"] == "http" and scope["method"] == "GET" and path.endswith(_TIMESTAMP_PATH):
            where = _split(path.removeprefix("/v2/"))
            data = None
            if path.startswith("/v2/") and not isinstance(where, JSONResponse):
                data = self._service.fresh_timestamp(where.gun)
            if data is not None:
                request = Request(scope)
                answer = _cacheable(
                    data, request, self._compression, immutable=False, private=False
                )
                await answer(scope, receive, send)
                return
        await self._app(scope, receive, send)


class _CountRequests:
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


class _BodyLimit:
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
        await _refuse_and_close(send, _error(413, "too_large", detail))

    async def _too_slow(self, send: Send) -> None:
        detail = f"the request body did not arrive within {self._timeout:g} seconds"
        await _refuse_and_close(send, _error(408, "request_timeout", detail))


async def _refuse_and_close(send: Send, answer: Response) -> None:
    answer.headers["Connection"] = "close"  # the rest of the body is never read
    await answer({"type": "http"}, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.disconnect"}


async def _read_parts(
    request: Request, settings: ServerSettings
) -> dict[str, bytes] | JSONResponse:
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > settings.max_upload_bytes):
        return _error(
            413, "too_large", f"the upload is larger than {settings.max_upload_bytes} bytes"
        )
    limits = settings.limits
    try:
        form = await request.form(
            max_files=limits.max_roles_per_upload,
            max_fields=limits.max_roles_per_upload,
            max_part_size=limits.max_role_bytes,
        )
    except Exception as error:  # starlette raises several types for a broken form
        if "too many" in str(error).lower():
            return _error(
                413,
                "too_many_roles",
                f"the upload holds more than {limits.max_roles_per_upload} roles (the limit)",
            )
        return _error(400, "malformed", f"the upload is not a valid multipart form: {error}")
    parts: dict[str, bytes] = {}
    for field, value in form.multi_items():
        if not isinstance(value, UploadFile):
            return _error(400, "malformed", f"form field '{field}' is not a file")
        role = (value.filename or field).removesuffix(".json")
        if role in parts:
            return _error(400, "duplicate_role", f"{role} appears twice in the upload", role)
        data = await value.read()
        if len(data) > limits.max_role_bytes:
            return _error(
                413, "too_large", f"{role} is larger than {limits.max_role_bytes} bytes", role
            )
        parts[role] = data
    return parts


async def _keep_fresh(service: MetadataService, interval: float) -> None:
    while True:
        try:
            refreshed = await run_in_threadpool(service.refresh_all)
            if refreshed:
                log.info("re-signed online metadata of %d repositories", refreshed)
        except Exception:
            log.exception("background refresh failed; will retry")
        await asyncio.sleep(interval)


MAX_WITHDRAW_BODY = 64 * 1024  # a few signatures


async def _read_withdraw_proof(request: Request) -> list[Signature] | JSONResponse:
    """The signatures of a withdraw request's body (none without a body)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_WITHDRAW_BODY:
            return _error(
                413, "too_large", f"a withdraw request holds at most {MAX_WITHDRAW_BODY} bytes"
            )
    if not body.strip():
        return []
    try:
        signatures = json.loads(body)["signatures"]
        if not isinstance(signatures, list) or len(signatures) > 64:
            raise ValueError("signatures is not a list of at most 64")
        proof = [Signature.from_dict(dict(signature)) for signature in signatures]
        if not all(isinstance(s.keyid, str) and isinstance(s.signature, str) for s in proof):
            raise ValueError("a keyid or sig is not a string")
        return proof
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        return _error(
            400,
            "malformed",
            f'a withdraw request\'s body is {{"signatures": [{{"keyid": …, "sig": …}}]}}: {error}',
        )
