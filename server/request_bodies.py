"""Reading request bodies: an upload's multipart form of roles, and a withdraw
request's signatures (``trustkit.wire.WithdrawRequest``). Each is bounded by the
server's limits before it is read whole, and a body that is not what it should be
gets the refusal answer in place of what was read."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse
from securesystemslib.signer import Signature
from starlette.datastructures import UploadFile

from server.refusals import error_response
from server.settings import ServerSettings
from trustkit.wire import WithdrawRequest, loads

__all__ = ["MAX_WITHDRAW_BODY", "read_roles", "read_withdraw_proof"]

MAX_WITHDRAW_BODY = 64 * 1024  # a few signatures


async def read_roles(request: Request, settings: ServerSettings) -> dict[str, bytes] | JSONResponse:
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > settings.max_upload_bytes):
        return error_response(
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
            return error_response(
                413,
                "too_many_roles",
                f"the upload holds more than {limits.max_roles_per_upload} roles (the limit)",
            )
        return error_response(
            400, "malformed", f"the upload is not a valid multipart form: {error}"
        )
    parts: dict[str, bytes] = {}
    for field, value in form.multi_items():
        if not isinstance(value, UploadFile):
            return error_response(400, "malformed", f"form field '{field}' is not a file")
        role = (value.filename or field).removesuffix(".json")
        if role in parts:
            return error_response(
                400, "duplicate_role", f"{role} appears twice in the upload", role
            )
        data = await value.read()
        if len(data) > limits.max_role_bytes:
            return error_response(
                413, "too_large", f"{role} is larger than {limits.max_role_bytes} bytes", role
            )
        parts[role] = data
    return parts


async def read_withdraw_proof(request: Request) -> list[Signature] | JSONResponse:
    """The signatures of a withdraw request's body (none without a body)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_WITHDRAW_BODY:
            return error_response(
                413, "too_large", f"a withdraw request holds at most {MAX_WITHDRAW_BODY} bytes"
            )
    if not body.strip():
        return []
    try:
        # The wire's reading: a key twice is refused, and so is JSON nested too deeply
        # (a RecursionError, which would otherwise be a 500).
        return list(WithdrawRequest.from_dict(loads(bytes(body))).signatures)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        return error_response(
            400,
            "malformed",
            f'a withdraw request\'s body is {{"signatures": [{{"keyid": …, "sig": …}}]}}: {error}',
        )
