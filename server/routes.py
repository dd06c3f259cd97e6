"""The server's routes, on Notary's URL layout (paths: ``trustkit.wire``).

    GET    /v2/{gun}/_trust/tuf/{role}.json            newest version of a role
    GET    /v2/{gun}/_trust/tuf/{version}.{role}.json  one version, forever
    GET    /v2/{gun}/_trust/tuf/{role}.key             a server-held public key
    POST   /v2/{gun}/_trust/tuf/{role}.key             the role's next server key (admin)
    POST   /v2/{gun}/_trust/tuf/                       upload metadata (multipart): 200
                                                       published, 202 kept pending
    GET    /v2/{gun}/_trust/tuf/pending                uploads waiting for co-signers
    POST   /v2/{gun}/_trust/tuf/pending/{id}           add signatures (multipart, as upload)
    DELETE /v2/{gun}/_trust/tuf/pending/{id}           withdraw a pending upload (admin, or
                                                       a key holder's signature: see
                                                       ``server.publishing``)
    DELETE /v2/{gun}/_trust/tuf/                       delete the repository (admin)
    GET    /v2/_trust/changefeed?after=SEQ&limit=N     audit log (admin)
    GET    /_trustkit/health, /_trustkit/metrics       liveness; Prometheus counters

Every route under ``/v2/{gun}/`` checks the repository name first (``server.paths``),
then the caller's token, then does its work through ``MetadataService``. A path under
``/v2/`` that no route takes is answered by ``unmatched``, in the same order.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from server.auth import AuthFailure
from server.http_cache import cacheable
from server.paths import CHANGE, GUN, ROLE, VERSION, checked_gun, split_trust_path
from server.publishing import PublishResult
from server.refusals import error_response, quoted
from server.request_bodies import read_roles, read_withdraw_proof
from server.state import ServerState, State
from server.storage import ChangeRecord
from server.validation import UploadRejected
from trustkit import __version__
from trustkit.metadata import ONLINE_ROLES, public_key_to_dict
from trustkit.wire import (
    CHANGEFEED_PATH,
    HEALTH_PATH,
    MAX_FEED_LIMIT,
    METRICS_PATH,
    OPENAPI_PATH,
    PENDING,
    ChangefeedEntry,
    ChangefeedPage,
    PendingList,
    UploadAnswer,
)

__all__ = ["MAX_FEED_SCAN", "router"]

log = logging.getLogger("trustkit.server")

MAX_FEED_SCAN = 10_000  # changefeed lines one request reads at most
TUF = f"/v2/{GUN}/_trust/tuf/"

router = APIRouter()


@router.get(HEALTH_PATH)
def health() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


@router.get(METRICS_PATH)
def prometheus_metrics(request: Request, state: State) -> Response:
    state.check_reader(request)
    return Response(state.metrics.render(), media_type="text/plain; version=0.0.4")


@router.get(OPENAPI_PATH, include_in_schema=False)
def openapi(request: Request, state: State) -> Response:
    """The API description: a route of ours, so that it is behind read auth when reads
    need a token (there are no /docs or /redoc pages: they load scripts from a CDN)."""
    state.check_reader(request)
    return JSONResponse(request.app.openapi())


@router.get(CHANGEFEED_PATH)
def changefeed(request: Request, state: State, after: int = 0, limit: int = 100) -> Response:
    """Every publish, pending change, approval, key request and deletion, oldest
    first; ``after`` is the last ``seq`` seen. Only repositories the token may
    administer are listed."""
    try:
        allowed = state.gate.feed_filter(request.headers.get("authorization"))
    except AuthFailure as failure:
        return error_response(failure.status, failure.error, failure.detail)
    limit = max(1, min(limit, MAX_FEED_LIMIT))
    entries: list[ChangeRecord] = []
    seq = max(0, min(after, 2**62))  # sequence numbers are 64-bit in storage
    scanned = 0
    # A token that administers few repositories reads a sparse feed: each request
    # scans at most MAX_FEED_SCAN lines, and ``next`` says where it stopped.
    while len(entries) < limit and scanned < MAX_FEED_SCAN:
        batch = state.storage.changes(seq, limit)
        if not batch:
            break
        scanned += len(batch)
        seq = batch[-1].seq
        entries += [change for change in batch if allowed(change.gun)]
    if len(entries) > limit:
        entries = entries[:limit]
        seq = entries[-1].seq
    page = ChangefeedPage([_feed_entry(change) for change in entries], seq)
    return JSONResponse(page.to_dict())


def _feed_entry(change: ChangeRecord) -> ChangefeedEntry:
    return ChangefeedEntry(
        seq=change.seq,
        time=change.time,
        repository=change.gun,
        action=change.action,
        versions=change.versions,
        token=change.actor,
        detail=change.detail,
    )


@router.get(TUF + PENDING)
def list_pending(gun: str, request: Request, state: State) -> Response:
    """The uploads waiting for co-signers (``trustkit.wire.PendingList``)."""
    gun = checked_gun(gun)
    state.caller(request, "pull", gun)
    try:
        changes = state.service.pending(gun)
    except UploadRejected as rejected:
        return error_response(rejected.status, rejected.error, rejected.detail, rejected.role)
    listing = PendingList(gun, [change.to_wire() for change in changes])
    return Response(listing.to_json(), media_type="application/json")


@router.get(TUF + f"{VERSION}.{ROLE}.json")
def get_role_version(gun: str, version: int, role: str, request: Request, state: State) -> Response:
    """One version of a role: it never changes, so caches may keep it for a year."""
    return _metadata(checked_gun(gun), role, version, request, state)


@router.get(TUF + f"{ROLE}.json")
def get_role(gun: str, role: str, request: Request, state: State) -> Response:
    """The newest version of a role."""
    return _metadata(checked_gun(gun), role, None, request, state)


def _metadata(gun: str, role: str, version: int | None, request: Request, state: State) -> Response:
    caller = state.caller(request, "pull", gun)
    data = state.service.metadata(gun, role, version)
    if data is None:
        wanted = role if version is None else f"{version}.{role}"
        return error_response(404, "not_found", f"{gun} has no {wanted}.json", role)
    return cacheable(
        data,
        request,
        state.compression,
        immutable=version is not None,
        private=caller is not None,
    )


@router.get(TUF + f"{VERSION}.{ROLE}.key", include_in_schema=False)
def get_versioned_key(gun: str, version: int, role: str) -> Response:
    """Server keys have no versions to ask for."""
    checked_gun(gun)
    return error_response(404, "not_server_key", f"the server holds no {role} key", role)


@router.get(TUF + f"{ROLE}.key")
def get_server_key(gun: str, role: str, request: Request, state: State) -> Response:
    """The server's public key for an online role, made on the first request."""
    gun = checked_gun(gun)
    if role not in ONLINE_ROLES:
        return error_response(404, "not_server_key", f"the server holds no {role} key", role)
    # Reading a key is a read; making one (the first request) is a write. The read is
    # checked before the key is looked up: a refusal that named the write would tell a
    # caller who may not read the repository that it has no key yet (that it does not
    # exist), under --read-auth too.
    state.caller(request, "pull", gun)
    existing = state.service.online_keys.existing_public_key(gun, role)
    if existing is None:
        state.caller(request, "push", gun)
    key = existing or state.service.online_keys.public_key(gun, role)
    return JSONResponse(public_key_to_dict(key))


@router.post(TUF)
async def upload(gun: str, request: Request, state: State) -> Response:
    """Upload metadata (a multipart form, a file per role): ``trustkit.wire.UploadAnswer``."""
    return await _publish(checked_gun(gun), None, request, state)


@router.post(TUF + f"{PENDING}/{CHANGE}")
async def approve(gun: str, change_id: str, request: Request, state: State) -> Response:
    """Add signatures to a pending change (a form as for an upload); the same answer."""
    return await _publish(checked_gun(gun), change_id, request, state)


async def _publish(gun: str, change_id: str | None, request: Request, state: State) -> Response:
    caller = state.caller(request, "push", gun)
    parts = await read_roles(request, state.settings)
    if isinstance(parts, JSONResponse):
        return parts
    service = state.service
    try:
        if change_id is not None:
            result = await run_in_threadpool(service.approve, gun, change_id, parts, caller)
        else:
            result = await run_in_threadpool(service.publish, gun, parts, caller)
    except UploadRejected as rejected:
        log.info(
            "refused upload to %s: %s role=%s",
            quoted(gun),
            rejected.error,
            # Already escaped where the refusal was made (the role name is shown
            # to a terminal too); quoting it again would double every backslash.
            rejected.role or "-",
        )
        state.metrics.count("trustkit_refusals_total", error=rejected.error)
        return error_response(rejected.status, rejected.error, rejected.detail, rejected.role)
    state.metrics.count("trustkit_pending_total" if result.pending else "trustkit_publishes_total")
    return _published(gun, result)


def _published(gun: str, result: PublishResult) -> Response:
    if result.pending is not None:
        change = result.pending.to_wire()
        log.info("kept %s pending for co-signers: %s", quoted(gun), change.id)
        answer = UploadAnswer(gun, pending=change)
        return Response(answer.to_json(), status_code=202, media_type="application/json")
    log.info("published %s: %s", quoted(gun), result.versions)
    return JSONResponse(UploadAnswer(gun, versions=result.versions).to_dict())


@router.post(TUF + f"{VERSION}.{ROLE}.key", include_in_schema=False)
def post_versioned_key(
    gun: str, version: int, role: str, request: Request, state: State
) -> Response:
    """Server keys have no versions: answered as any path no route takes."""
    return _not_allowed(checked_gun(gun), request, state)


@router.post(TUF + f"{ROLE}.key")
def next_server_key(gun: str, role: str, request: Request, state: State) -> Response:
    """Make the role's next key. It signs nothing until the root holder uploads a root
    that lists it, so asking for one changes no trust."""
    gun = checked_gun(gun)
    caller = state.caller(request, "admin", gun)
    if role not in ONLINE_ROLES:
        return error_response(404, "not_server_key", f"the server holds no {role} key", role)
    if state.service.metadata(gun, "root", 1) is None:
        return error_response(404, "not_found", f"no repository {gun}")
    key = state.service.online_keys.make_next(gun, role)
    state.storage.record_change(gun, "next_key", {}, caller, f"{role} {key.keyid}")
    log.info("made the next %s key of %s: %s", role, quoted(gun), key.keyid)
    return JSONResponse(public_key_to_dict(key))


@router.delete(TUF)
async def delete_repository(gun: str, request: Request, state: State) -> Response:
    """Delete the repository: every version of every role, its keys and its history."""
    gun = checked_gun(gun)
    caller = state.caller(request, "admin", gun)
    if not await run_in_threadpool(state.service.delete, gun, caller):
        return error_response(404, "not_found", f"no repository {gun}")
    log.info("deleted repository %s", quoted(gun))
    return JSONResponse({"deleted": gun})


@router.delete(TUF + f"{PENDING}/{CHANGE}")
async def withdraw(gun: str, change_id: str, request: Request, state: State) -> Response:
    """Withdraw a pending change: an admin token, or a push token and a body
    ``trustkit.wire.WithdrawRequest`` signing ``withdraw_statement(gun, id)`` with a key
    of the change's roles (see ``MetadataService.withdraw``)."""
    gun = checked_gun(gun)
    caller = state.caller(request, "push", gun)
    proof = await read_withdraw_proof(request)
    if isinstance(proof, JSONResponse):
        return proof
    admin = state.gate.allows(request.headers.get("authorization"), "admin", gun)
    try:
        await run_in_threadpool(
            state.service.withdraw, gun, change_id, caller, proof=proof, admin=admin
        )
    except UploadRejected as rejected:
        log.info("refused withdrawing %s of %s: %s", change_id, quoted(gun), rejected.error)
        return error_response(rejected.status, rejected.error, rejected.detail, rejected.role)
    log.info("withdrew pending change %s of %s", change_id, quoted(gun))
    return JSONResponse({"withdrawn": change_id})


@router.api_route("/v2/{path:path}", methods=["GET", "POST", "DELETE"], include_in_schema=False)
def unmatched(path: str, request: Request, state: State) -> Response:
    """A path under /v2/ that no route above takes: a 404 if it names no repository's
    metadata (or a 400 for a bad name); otherwise, for a write, the admin's 403/401
    first (as for any write that is not an upload), then 405."""
    where = split_trust_path(path)
    if request.method == "GET":
        return error_response(404, "not_found", f"no such metadata file: {where.filename}")
    return _not_allowed(where.gun, request, state)


def _not_allowed(gun: str, request: Request, state: ServerState) -> Response:
    state.caller(request, "admin", gun)
    if request.method == "POST":
        return error_response(405, "method_not_allowed", "upload to /v2/{gun}/_trust/tuf/")
    return error_response(405, "method_not_allowed", "delete /v2/{gun}/_trust/tuf/")
