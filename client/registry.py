"""The OCI distribution API, for one job: which manifest does ``IMAGE:TAG`` name now?

A publisher signs the digest and size of exactly the bytes the registry serves for a
tag. Registries answer by Accept header: without the OCI types an OCI manifest is
"unknown", without the Docker v2 type a v2 manifest may be converted to schema 1 (whose
digest matches nothing), and with only the single-platform types a manifest list
resolves to one platform. So every request lists all four types, and a multi-arch image
resolves to its index.

Authentication follows Docker (``client.registry_auth``, shared with the Notary reader):
a 401 with ``WWW-Authenticate: Bearer realm=…`` sends the user's credentials (from
Docker's config) to the token realm for a token scoped to the repository; ``Basic``
sends them to the registry itself. TLS is verified (a custom CA
can be given); plain http is used only for loopback registries and those the user marks
insecure, and only after https fails, as Docker does.

This module never trusts what the registry says: the verified digest comes from TUF
metadata. It only tells a publisher what to sign and a host what the registry serves.
"""

from __future__ import annotations

import hashlib
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tuf.api import exceptions

from client.docker_config import Credentials, DockerConfig
from client.fetcher import DEFAULT_DEADLINE, decoded_body, too_slow
from client.registry_auth import (
    TokenRequest,
    basic_authorization,
    choose_challenge,
    fetch_token,
    is_loopback,
    parse_challenges,
)
from trustkit.errors import (
    NotFoundError,
    ServerRefusedError,
    ServerUnreachableError,
    UsageError,
    VerificationError,
)
from trustkit.names import (
    DEFAULT_REGISTRY,
    DOCKER_HUB_ENDPOINT,
    Digest,
    ImageReference,
    parse_digest,
)

__all__ = [
    "MANIFEST_MEDIA_TYPES",
    "Manifest",
    "Registry",
    "RegistrySettings",
    "insecure_hosts",
    "is_loopback",
    "registry_endpoint",
]

MANIFEST_MEDIA_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
ACCEPT = ", ".join(MANIFEST_MEDIA_TYPES)
SCHEMA1_MEDIA_TYPES = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)
MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # the distribution spec's limit for manifests


@dataclass(frozen=True)
class Manifest:
    """What a registry serves for a reference: the manifest's digest, size and type."""

    digest: Digest
    size: int
    media_type: str | None


@dataclass(frozen=True)
class RegistrySettings:
    """How to reach registries; built at the edge from flags and the environment."""

    docker_config: Path
    insecure: frozenset[str] = frozenset()
    ca_file: Path | None = None
    timeout: float = 30.0  # seconds any one wait (connect, read) may take
    deadline: float = DEFAULT_DEADLINE  # seconds a whole request may take

    def allows_plain_http(self, host: str) -> bool:
        return is_loopback(host) or host.lower() in self.insecure


def registry_endpoint(gun: str) -> tuple[str, str]:
    """Split a GUN into the registry host to talk to and the repository path on it."""
    host, _, path = gun.partition("/")
    return (DOCKER_HUB_ENDPOINT if host == DEFAULT_REGISTRY else host), path


@dataclass
class _Session:
    """Per-host state for one command: the scheme that worked and the tokens got."""

    scheme: str = "https"
    tokens: dict[str, str] = field(default_factory=dict, repr=False)


class Registry:
    """Resolves references against OCI registries, reusing one HTTP client."""

    def __init__(self, settings: RegistrySettings) -> None:
        self._settings = settings
        self._http = httpx.Client(
            timeout=settings.timeout,
            follow_redirects=True,
            verify=self._tls_context(settings.ca_file),
            headers={"User-Agent": "trustkit"},
        )
        self._sessions: dict[str, _Session] = {}
        self._config: DockerConfig | None = None

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    @staticmethod
    def _tls_context(ca_file: Path | None) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if ca_file is not None:
            try:
                context.load_verify_locations(cafile=str(ca_file))
            except (OSError, ssl.SSLError) as error:
                raise UsageError(
                    f"cannot use {ca_file} as the registry CA: {error}",
                    hint="give a PEM file of CA certificates",
                ) from None
        return context

    def resolve(self, reference: ImageReference, *, read_body: bool = False) -> Manifest:
        """The manifest the registry serves for the reference's tag (or digest) now.

        With ``read_body`` the manifest itself is fetched and hashed, so what is
        returned is the digest and size of exactly the bytes served (what a publisher
        signs); otherwise a HEAD is enough when the registry names digest and length.
        """
        host, path = registry_endpoint(reference.gun)
        name = str(reference.digest) if reference.digest and not reference.tag else reference.tag
        if name is None:
            raise UsageError(f"'{reference.gun}' names no tag or digest to resolve")
        url_path = f"/v2/{path}/manifests/{name}"
        if not read_body:
            head, _ = self._request("HEAD", host, path, url_path)
            if head.status_code == 200:
                manifest = self._from_headers(head)
                if manifest is not None:
                    return self._checked_against_reference(manifest, reference, host)
            elif head.status_code not in (405, 501):  # some registries serve no HEAD
                self._raise_for(head, reference, host)
        response, body = self._request("GET", host, path, url_path)
        if response.status_code != 200:
            self._raise_for(response, reference, host)
        manifest = self._from_body(response, body, host)
        return self._checked_against_reference(manifest, reference, host)

    @staticmethod
    def _from_headers(response: httpx.Response) -> Manifest | None:
        digest_header = response.headers.get("Docker-Content-Digest")
        length_header = response.headers.get("Content-Length")
        if not digest_header or not length_header or not length_header.isdigit():
            return None
        try:
            digest = parse_digest(digest_header)
        except UsageError:
            return None
        return Manifest(digest, int(length_header), _media_type(response))

    @staticmethod
    def _from_body(response: httpx.Response, body: bytes, host: str) -> Manifest:
        digest = Digest("sha256", hashlib.sha256(body).hexdigest())
        named = response.headers.get("Docker-Content-Digest", "")
        # Only a sha256 name can be compared; registries may name other algorithms.
        if named.startswith("sha256:") and named != str(digest):
            raise VerificationError(
                f"the registry {host} names the manifest {named}, but the bytes it served "
                f"hash to {digest}",
                hint="the registry or something between is serving tampered content",
            )
        return Manifest(digest, len(body), _media_type(response))

    @staticmethod
    def _checked_against_reference(
        manifest: Manifest, reference: ImageReference, host: str
    ) -> Manifest:
        if manifest.media_type in SCHEMA1_MEDIA_TYPES:
            raise UsageError(
                f"the registry {host} serves {reference.gun}:{reference.tag} as a Docker "
                "schema 1 manifest, which cannot be signed",
                hint="push the image again with a current docker, buildah or skopeo",
            )
        if (
            reference.digest is not None
            and not reference.tag
            and manifest.digest != (reference.digest)
        ):
            raise VerificationError(
                f"the registry {host} answered {manifest.digest} for {reference.digest}",
                hint="the registry or something between is serving tampered content",
            )
        return manifest

    def _raise_for(self, response: httpx.Response, reference: ImageReference, host: str) -> None:
        what = f"{reference.gun}:{reference.tag}" if reference.tag else str(reference.digest)
        status = response.status_code
        if status == 404:
            raise NotFoundError(
                f"the registry {host} has no {what}",
                hint="push the image first, or check the name and tag",
            )
        if status in (401, 403):
            raise ServerRefusedError(
                f"the registry {host} refused access to {reference.gun} ({status})",
                status=status,
                error="registry_denied",
                hint=f"log in with: docker login {host}  (trustkit reads Docker's config.json)",
            )
        if status >= 500:
            raise ServerUnreachableError(
                f"the registry {host} failed ({status}) on {what}", hint="try again later"
            )
        hint = "the registry limits requests: try again later" if status == 429 else None
        raise ServerRefusedError(
            f"the registry {host} answered {status} for {what}",
            status=status,
            error="registry",
            hint=hint or "check the image name, and the registry's documentation for the status",
        )

    # --- transport and authentication ------------------------------------------------

    def _request(
        self, method: str, host: str, path: str, url_path: str
    ) -> tuple[httpx.Response, bytes]:
        session = self._sessions.setdefault(host, _Session())
        scope = f"repository:{path}:pull"
        answer = self._send(method, host, url_path, session, session.tokens.get(scope))
        if answer[0].status_code != 401:
            return answer
        credentials = self._credentials(host)
        challenges = parse_challenges(answer[0].headers.get_list("WWW-Authenticate"))
        challenge = choose_challenge(challenges, credentials)
        if challenge is None:
            return answer
        who = f"the registry {host}"
        if challenge.scheme == "bearer":
            token = fetch_token(
                self._http,
                TokenRequest(
                    challenge,
                    default_scope=scope,
                    who=who,
                    credentials=credentials,
                    credentials_origin="the credentials in Docker's config",
                    login_hint=f"log in with: docker login {host}",
                ),
                allows_plain_http=self._settings.allows_plain_http,
                timeout=self._settings.timeout,
                deadline=self._settings.deadline,
            )
            session.tokens[scope] = token
            return self._send(method, host, url_path, session, token)
        assert credentials is not None  # choose_challenge answers Basic only with a user
        basic = basic_authorization(
            credentials,
            f"{session.scheme}://{host}",
            who=who,
            allows_plain_http=self._settings.allows_plain_http,
        )
        return self._send(method, host, url_path, session, None, basic)

    def _send(
        self,
        method: str,
        host: str,
        url_path: str,
        session: _Session,
        token: str | None,
        authorization: str | None = None,
    ) -> tuple[httpx.Response, bytes]:
        # Identity encoding: the digest and size signed are those of the bytes as stored.
        headers = {"Accept": ACCEPT, "Accept-Encoding": "identity"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif authorization:
            headers["Authorization"] = authorization
        url = f"{session.scheme}://{host}{url_path}"
        try:
            return self._read(self._http.build_request(method, url, headers=headers), host)
        except httpx.ConnectError as error:
            if (
                session.scheme == "https"
                and self._settings.allows_plain_http(host)
                and not _untrusted_certificate(error)
            ):
                # Docker's fallback for insecure and loopback hosts. Not when the host
                # answered TLS with a certificate we do not trust: it speaks https, and
                # plain http would only get "400 client sent an HTTP request to an HTTPS
                # server" instead of the hint to give its CA.
                session.scheme = "http"
                return self._send(method, host, url_path, session, token, authorization)
            raise self._unreachable(host, error) from None
        except httpx.HTTPError as error:
            raise self._unreachable(host, error) from None

    def _read(
        self, request: httpx.Request, host: str, *, follow_redirects: bool = True
    ) -> tuple[httpx.Response, bytes]:
        """Send and read the answer, refusing one larger than any manifest may be or
        slower than the whole-request deadline (a registry dribbling bytes)."""
        deadline = self._settings.deadline
        ends_at = time.monotonic() + deadline
        # No single wait (connect, each read) may outlast the whole deadline.
        request.extensions["timeout"] = httpx.Timeout(
            min(self._settings.timeout, deadline)
        ).as_dict()
        url = f"{request.url.scheme}://{request.url.netloc.decode()}{request.url.path}"
        try:
            response = self._http.send(request, stream=True, follow_redirects=follow_redirects)
        except httpx.TimeoutException:
            raise self._too_slow(host, url, deadline) from None
        if time.monotonic() > ends_at:  # redirects, each answered just in time
            response.close()
            raise self._too_slow(host, url, deadline)
        body = bytearray()
        try:
            for chunk in decoded_body(response, url, ends_at, deadline):
                body += chunk
                if len(body) > MAX_MANIFEST_BYTES:
                    raise VerificationError(
                        f"the registry {host} sent more than the {MAX_MANIFEST_BYTES} bytes a "
                        "manifest may have",
                        hint="the registry or something between is sending endless data",
                    )
        except (httpx.TimeoutException, exceptions.SlowRetrievalError):
            raise self._too_slow(host, url, deadline) from None
        except exceptions.DownloadError as error:
            raise ServerUnreachableError(f"the registry {host}: {error}") from None
        finally:
            response.close()
        return response, bytes(body)

    @staticmethod
    def _too_slow(host: str, url: str, deadline: float) -> ServerUnreachableError:
        return ServerUnreachableError(
            f"the registry {host}: {too_slow(url, deadline)}",
            hint="try again later; TRUSTKIT_DEADLINE sets the seconds a request may take",
        )

    def _unreachable(self, host: str, error: httpx.HTTPError) -> ServerUnreachableError:
        text = str(error) or type(error).__name__
        hint = "check the registry's name and that it is up"
        if "CERTIFICATE_VERIFY_FAILED" in text:
            hint = "the registry's TLS certificate is not trusted: give its CA with --registry-ca"
        elif not self._settings.allows_plain_http(host):
            hint += f"; for a plain-http registry add --insecure-registry {host}"
        return ServerUnreachableError(f"cannot reach the registry {host}: {text}", hint=hint)

    def _credentials(self, host: str) -> Credentials | None:
        if self._config is None:
            self._config = DockerConfig.load(self._settings.docker_config)
        return self._config.credentials(host)


def _untrusted_certificate(error: BaseException) -> bool:
    """Whether the TLS handshake failed on the server's certificate (not on no TLS)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(error)


def _media_type(response: httpx.Response) -> str | None:
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
    return content_type or None


def insecure_hosts(values: Iterable[str]) -> frozenset[str]:
    """``--insecure-registry`` values and ``TRUSTKIT_INSECURE_REGISTRIES`` entries."""
    return frozenset(
        value.strip().lower().split("://", 1)[-1].rstrip("/") for value in values if value.strip()
    )
