"""GETs of one Notary repository's metadata, bounded in size, with Docker's token flow
(``client.registry_auth``, the same rules as for registries)."""

from __future__ import annotations

import ssl
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx

from client.docker_config import Credentials
from client.registry_auth import (
    TokenRequest,
    basic_authorization,
    choose_challenge,
    fetch_token,
    parse_challenges,
)
from migrate.notary.errors import (
    NotaryAuthError,
    NotaryNotFoundError,
    NotaryServerError,
    NotaryUnreachableError,
    NotaryVerificationError,
)
from migrate.notary.model import ROOT, TIMESTAMP
from trustkit.errors import ServerRefusedError, ServerUnreachableError, VerificationError


def _loopback_only(host: str) -> bool:
    """No host beyond loopback is reached over plain http with credentials: a Notary
    server has no "insecure" marking."""
    return False


class Remote:
    """GETs of one repository's metadata, with Docker's token flow on a 401."""

    def __init__(
        self,
        server: str,
        gun: str,
        *,
        ca_file: str | Path | None,
        credentials: tuple[str, str] | None,
        timeout: float,
        client: httpx.Client | None,
    ) -> None:
        parts = urlsplit(server)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise NotaryServerError(
                f"{server!r} is not an http(s) URL of a Notary server",
                status=0,
                error="bad_url",
                hint="give the server as https://notary.example.com[:PORT]",
            )
        self.server = server.rstrip("/")
        self.gun = gun
        self._base = f"{self.server}/v2/{quote(gun, safe='/:@')}/_trust/tuf/"
        self._credentials = Credentials(*credentials) if credentials else None
        self._timeout = timeout
        self._authorization: str | None = None
        self._own_client = client is None
        if client is None:
            verify: ssl.SSLContext | bool = (
                ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
            )
            client = httpx.Client(verify=verify, timeout=timeout, follow_redirects=False)
        self._client = client

    def close(self) -> None:
        if self._own_client:
            self._client.close()

    def url(self, name: str) -> str:
        return self._base + quote(name, safe="/") + ".json"

    def get(self, name: str, limit: int, role: str) -> tuple[bytes, str]:
        """The bytes of ``{name}.json``, refused beyond ``limit`` bytes."""
        url = self.url(name)
        for attempt in range(2):
            headers = {"Accept": "application/json"}
            if self._authorization:
                headers["Authorization"] = self._authorization
            try:
                with self._client.stream("GET", url, headers=headers) as response:
                    if (
                        response.status_code == 401
                        and attempt == 0
                        and self._authenticate(response)
                    ):
                        continue
                    if response.status_code == 200:
                        return self._read(response, url, limit, role), url
                    self._refuse(response, url, name, role)
            except httpx.TimeoutException as error:
                raise NotaryUnreachableError(f"timed out fetching {url}: {error}") from None
            except httpx.HTTPError as error:
                raise NotaryUnreachableError(f"cannot fetch {url}: {error}") from None
        raise NotaryAuthError(  # pragma: no cover - the loop returns or raises
            f"{url} still wants authentication", status=401, error="unauthorized"
        )

    @staticmethod
    def _read(response: httpx.Response, url: str, limit: int, role: str) -> bytes:
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise NotaryVerificationError(
                f"{role} metadata at {url} is {declared} bytes, more than the {limit} allowed",
                role=role,
                source=url,
            )
        chunks, size = [], 0
        for chunk in response.iter_bytes(64 * 1024):
            size += len(chunk)
            if size > limit:
                raise NotaryVerificationError(
                    f"{role} metadata at {url} is more than the {limit} bytes allowed",
                    role=role,
                    source=url,
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _refuse(self, response: httpx.Response, url: str, name: str, role: str) -> None:
        status = response.status_code
        response.read()
        detail = response.text[:300].strip()
        if status == 404:
            if name in (ROOT, TIMESTAMP):
                raise NotaryNotFoundError(
                    f"{self.server} has no trust data for {self.gun} ({url} answered 404)",
                    hint="check the repository name and the server; "
                    "is it signed with Docker Content Trust?",
                )
            raise NotaryVerificationError(
                f"{url} answered 404, but the repository's metadata lists {role}",
                role=role,
                source=url,
            )
        if status in (401, 403):
            raise NotaryAuthError(
                f"{url} answered {status}: "
                + ("credentials were refused" if self._credentials else "credentials are needed"),
                status=status,
                error="unauthorized" if status == 401 else "denied",
                hint="give the Notary server's username and password",
            )
        if status >= 500:
            raise NotaryUnreachableError(f"{url} answered {status}: {detail}")
        raise NotaryServerError(
            f"{url} answered {status}: {detail}", status=status, error="refused"
        )

    def _authenticate(self, response: httpx.Response) -> bool:
        """Answer a 401's challenge (``client.registry_auth``, as for registries); False
        when there is nothing to answer it with."""
        challenges = parse_challenges(response.headers.get_list("WWW-Authenticate"))
        challenge = choose_challenge(challenges, self._credentials)
        if challenge is None:
            return False
        who = f"the Notary server {self.server}"
        try:
            if challenge.scheme == "bearer":
                request = TokenRequest(
                    challenge,
                    default_scope=f"repository:{self.gun}:pull",
                    who=who,
                    credentials=self._credentials,
                    login_hint="give the Notary server's username and password",
                )
                token = fetch_token(
                    self._client, request, allows_plain_http=_loopback_only, timeout=self._timeout
                )
                self._authorization = f"Bearer {token}"
            else:
                assert self._credentials is not None  # Basic is chosen only with a user
                self._authorization = basic_authorization(
                    self._credentials, self.server, who=who, allows_plain_http=_loopback_only
                )
        except ServerUnreachableError as error:
            raise NotaryUnreachableError(error.message, hint=error.hint) from None
        except ServerRefusedError as error:
            raise NotaryAuthError(
                error.message, status=error.status, error=error.error, hint=error.hint
            ) from None
        except VerificationError as error:
            raise NotaryVerificationError(error.message, hint=error.hint) from None
        return True
