"""GETs of one Notary repository's metadata, bounded in size, with Docker's token flow."""

from __future__ import annotations

import base64
import ipaddress
import re
import ssl
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx

from migrate.notary.errors import (
    NotaryAuthError,
    NotaryNotFoundError,
    NotaryServerError,
    NotaryUnreachableError,
    NotaryVerificationError,
)
from migrate.notary.model import ROOT, TIMESTAMP


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


_CHALLENGE_PARAM = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)')


def _parse_challenges(headers: Sequence[str]) -> list[tuple[str, dict[str, str]]]:
    """``WWW-Authenticate`` values as (scheme, parameters), schemes lower-cased."""
    challenges = []
    for header in headers:
        for part in re.split(r",\s*(?=[A-Za-z][A-Za-z0-9_-]*\s+[A-Za-z])", header.strip()):
            scheme, _, rest = part.strip().partition(" ")
            params = {}
            for name, value in _CHALLENGE_PARAM.findall(rest):
                if value.startswith('"'):
                    value = re.sub(r"\\(.)", r"\1", value[1:-1])
                params[name.lower()] = value
            if scheme:
                challenges.append((scheme.lower(), params))
    return challenges


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
        self._credentials = credentials
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
        """Answer a 401's challenge; False when there is nothing to answer it with."""
        for scheme, params in _parse_challenges(response.headers.get_list("WWW-Authenticate")):
            if scheme == "bearer" and params.get("realm"):
                self._authorization = "Bearer " + self._token(params)
                return True
            if scheme == "basic" and self._credentials:
                server = urlsplit(self.server)
                if server.scheme != "https" and not _is_loopback(server.hostname):
                    raise NotaryAuthError(
                        f"refusing to send credentials to {self.server} over plain http",
                        status=401,
                        error="insecure_server",
                    )
                user, password = self._credentials
                encoded = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
                self._authorization = f"Basic {encoded}"
                return True
        return False

    def _token(self, params: Mapping[str, str]) -> str:
        """Docker's token flow: GET the realm (basic auth, if given) for a bearer token."""
        realm = params["realm"]
        parts = urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise NotaryAuthError(
                f"the server's token realm {realm!r} is not an http(s) URL",
                status=401,
                error="bad_realm",
            )
        auth = None
        if self._credentials:
            if parts.scheme != "https" and not _is_loopback(parts.hostname):
                raise NotaryAuthError(
                    f"refusing to send credentials to the token realm {realm} over plain http",
                    status=401,
                    error="insecure_realm",
                )
            auth = httpx.BasicAuth(*self._credentials)
        query = {"service": params.get("service", ""), "scope": params.get("scope", "")}
        if not query["scope"]:
            query["scope"] = f"repository:{self.gun}:pull"
        try:
            answer = self._client.get(
                realm, params={k: v for k, v in query.items() if v}, auth=auth
            )
        except httpx.HTTPError as error:
            raise NotaryUnreachableError(f"cannot reach the token realm {realm}: {error}") from None
        if answer.status_code != 200:
            raise NotaryAuthError(
                f"the token realm {realm} answered {answer.status_code}"
                + ("" if self._credentials else " (no credentials were given)"),
                status=answer.status_code,
                error="unauthorized",
                hint="give the Notary server's username and password",
            )
        try:
            body = answer.json()
            token = body.get("token") or body.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise NotaryAuthError(
                f"the token realm {realm} answered without a token", status=401, error="no_token"
            )
        return token
