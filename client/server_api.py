"""The metadata server's HTTP API, for publishers: keys, uploads and deletion.

Verification does not go through here: hosts fetch metadata through python-tuf's
updater with ``client.fetcher``. Every failure becomes a ``TrustkitError``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import httpx
from securesystemslib.signer import Key, Signer
from tuf.api import exceptions

from client.fetcher import DEFAULT_DEADLINE, decoded_body
from trustkit.errors import (
    NotFoundError,
    PublishConflictError,
    ServerRefusedError,
    ServerUnreachableError,
)
from trustkit.metadata import public_key_from_dict, withdraw_statement
from trustkit.wire import (
    CHANGEFEED_PATH,
    ChangefeedPage,
    ErrorBody,
    PendingList,
    UploadAnswer,
    WithdrawRequest,
    key_path,
    loads,
    pending_path,
    repository_path,
)

__all__ = ["MAX_ANSWER_BYTES", "ServerAPI"]

T = TypeVar("T")

# The largest answer the server API gives is a list of pending changes, each holding
# the roles it would publish; nothing legitimate comes near this.
MAX_ANSWER_BYTES = 64 * 1024 * 1024


# What to do about the refusals a user can mend on their side.
_REFUSAL_HINTS = {
    "unauthorized": "give a token this server made (TRUSTKIT_TOKEN or --token-file); tokens "
    "live in one server database: 'trustkit-server token list --data-dir DIR' on the "
    "server shows them",
    "forbidden": "the token's scope does not cover this: ask the server's operator for a "
    "token with that scope (server keys and deletions need admin:…)",
}
_FEED_HINT = (
    "the changefeed needs a token with an admin scope (it lists the repositories that "
    "scope covers), given with TRUSTKIT_TOKEN or --token-file; the server's operator "
    "makes one with: trustkit-server token create --name audit --scope 'admin:**'"
)


class ServerAPI:
    def __init__(
        self, server_url: str, http: httpx.Client, *, deadline: float = DEFAULT_DEADLINE
    ) -> None:
        self.server_url = server_url.rstrip("/")
        self._http = http
        self._deadline = deadline  # seconds an answer may take to arrive, whole

    def _url(self, gun: str, filename: str = "") -> str:
        return f"{self.server_url}{repository_path(gun)}{filename}"

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """The server's answer, read whole: at most ``MAX_ANSWER_BYTES`` (decoded) and
        within the deadline once the request is sent, so a hostile or broken server
        can neither fill memory nor hold the command with an endless, dribbled body."""
        try:
            request = self._http.build_request(method, url, **kwargs)
            request.headers["Accept-Encoding"] = "gzip"
            streamed = self._http.send(request, stream=True)
            try:
                body = self._body(streamed, method, url, time.monotonic() + self._deadline)
            finally:
                streamed.close()
        except httpx.HTTPError as error:
            raise self._unreachable(error) from None
        headers = [
            (name, value)
            for name, value in streamed.headers.items()
            if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        response = httpx.Response(
            streamed.status_code, headers=headers, content=body, request=request
        )
        if response.status_code >= 500:
            raise ServerUnreachableError(
                f"the trustkit server at {self.server_url} failed ({response.status_code}) "
                f"on {method} {url}",
                hint="see the server's log; try again later",
            )
        return response

    def _body(self, response: httpx.Response, method: str, url: str, ends_at: float) -> bytes:
        parts: list[bytes] = []
        size = 0
        try:
            for chunk in decoded_body(response, url, ends_at, self._deadline):
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    raise ServerUnreachableError(
                        f"the trustkit server at {self.server_url} sent more than "
                        f"{MAX_ANSWER_BYTES // (1024 * 1024)} MiB for {method} {url}; "
                        "refusing the answer",
                        hint="the server (or something in front of it) is broken or "
                        "hostile; check --server / TRUSTKIT_SERVER",
                    )
                parts.append(chunk)
        except exceptions.DownloadError as error:  # too slow, or not gzip/identity
            raise ServerUnreachableError(
                f"the trustkit server at {self.server_url}: {error}",
                hint="try again later; TRUSTKIT_DEADLINE sets the seconds an answer may take",
            ) from None
        return b"".join(parts)

    def _unreachable(self, error: httpx.HTTPError) -> ServerUnreachableError:
        return ServerUnreachableError(
            f"cannot reach the trustkit server at {self.server_url}: {error}",
            hint="check --server / TRUSTKIT_SERVER and that the server is running",
        )

    @staticmethod
    def _refusal(response: httpx.Response) -> ServerRefusedError:
        try:
            body = ErrorBody.from_dict(loads(response.content))
            error, detail = body.error, str(body.detail)
        except ValueError:  # not JSON, or not an error body (a proxy's page, say)
            error, detail = "http_error", response.text[:200]
        kind = PublishConflictError if response.status_code == 409 else ServerRefusedError
        return kind(
            f"the server refused: {detail}",
            status=response.status_code,
            error=error,
            hint=_REFUSAL_HINTS.get(error),
        )

    def public_key(self, gun: str, role: str) -> Key:
        """The server's public key for an online role (created on first request)."""
        response = self._send("GET", self.server_url + key_path(gun, role))
        if response.status_code != 200:
            raise self._refusal(response)
        return self._key_from(response, role)

    @staticmethod
    def _key_from(response: httpx.Response, role: str) -> Key:
        try:
            return public_key_from_dict(response.json())
        except (ValueError, KeyError, TypeError, RecursionError) as error:
            raise ServerRefusedError(
                f"the server sent an unreadable {role} key: {error}",
                status=response.status_code,
                error="bad_key",
            ) from None

    def next_server_key(self, gun: str, role: str) -> Key:
        """Ask the server for a new key for an online role (a rotation's first half)."""
        response = self._send("POST", self.server_url + key_path(gun, role))
        if response.status_code != 200:
            raise self._refusal(response)
        return self._key_from(response, role)

    def metadata(self, gun: str, filename: str) -> bytes:
        """A metadata file as served (not verified here: the caller verifies it)."""
        response = self._send("GET", self._url(gun, filename))
        if response.status_code != 200:
            raise self._refusal(response)
        return response.content

    def has_metadata(self, gun: str, filename: str) -> bool:
        """Whether the server has this metadata file (its content is not read)."""
        try:
            with self._http.stream("GET", self._url(gun, filename)) as response:
                status = response.status_code
        except httpx.HTTPError as error:
            raise self._unreachable(error) from None
        if status not in (200, 404):
            raise ServerUnreachableError(
                f"the trustkit server at {self.server_url} answered {status} for {filename}"
            )
        return status == 200

    def upload(self, gun: str, roles: Mapping[str, bytes]) -> dict[str, Any]:
        """Upload metadata; the answer holds ``versions`` if published, or ``pending``
        if the server keeps it waiting for co-signers."""
        return self._post_roles(self._url(gun), roles)

    def pending(self, gun: str) -> list[dict[str, Any]]:
        """The uploads of ``gun`` waiting for co-signers."""
        response = self._send("GET", self.server_url + pending_path(gun))
        if response.status_code != 200:
            raise self._refusal(response)
        listing = _read(response, PendingList.from_dict, "list of pending changes")
        return [change.to_dict() for change in listing.pending]

    def approve(self, gun: str, change_id: str, roles: Mapping[str, bytes]) -> dict[str, Any]:
        """Add signatures to a pending change; same answer as ``upload``."""
        return self._post_roles(self.server_url + pending_path(gun, change_id), roles)

    def withdraw(self, gun: str, change_id: str, signers: Sequence[Signer] = ()) -> None:
        """Withdraw a pending change. The server takes it from an admin token, or from a
        push token with a signature by a key that may sign the change: each of
        ``signers`` signs ``withdraw_statement(gun, change_id)``."""
        statement = withdraw_statement(gun, change_id)
        proof = WithdrawRequest([signer.sign(statement) for signer in signers])
        response = self._send(
            "DELETE",
            self.server_url + pending_path(gun, change_id),
            json=proof.to_dict() if proof.signatures else None,
        )
        if response.status_code != 200:
            raise self._refusal(response)

    def _post_roles(self, url: str, roles: Mapping[str, bytes]) -> dict[str, Any]:
        files = [
            ("files", (f"{role}.json", data, "application/json")) for role, data in roles.items()
        ]
        response = self._send("POST", url, files=files)
        if response.status_code not in (200, 202):
            raise self._refusal(response)
        return _read(response, _upload_answer, "answer to an upload")

    def changefeed(self, after: int, limit: int) -> ChangefeedPage:
        """The audit changefeed's entries after ``after`` (at most ``limit``), as far as
        the token's admin scopes reach; refused unless the token has one."""
        response = self._send(
            "GET", self.server_url + CHANGEFEED_PATH, params={"after": after, "limit": limit}
        )
        if response.status_code != 200:
            refusal = self._refusal(response)
            if response.status_code in (401, 403):
                refusal.hint = _FEED_HINT
            raise refusal
        return _read(
            response, lambda data: ChangefeedPage.from_dict(data).follows(after), "changefeed page"
        )

    def delete(self, gun: str) -> None:
        response = self._send("DELETE", self._url(gun))
        if response.status_code == 404:
            raise NotFoundError(f"the server has no repository {gun}")
        if response.status_code != 200:
            raise self._refusal(response)


def _read(response: httpx.Response, parse: Callable[[Any], T], what: str) -> T:
    """``parse`` of the JSON answer (``trustkit.wire.loads``: no key twice); an answer
    that is not JSON, or that ``parse`` refuses, is the server's fault: ``bad_answer``."""
    try:
        return parse(loads(response.content))
    except ValueError as error:
        raise ServerRefusedError(
            f"the server sent an unreadable {what}: {error}",
            status=response.status_code,
            error="bad_answer",
        ) from None


def _upload_answer(data: Any) -> dict[str, Any]:
    """The answer to an upload as the plain document callers read, once it is checked
    to be an ``UploadAnswer``."""
    UploadAnswer.from_dict(data)
    result: dict[str, Any] = data
    return result
