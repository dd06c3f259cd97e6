"""Docker's registry authentication, once: for OCI registries and for Notary servers.

A server that wants credentials answers 401 with ``WWW-Authenticate`` challenges. A
``Bearer`` challenge names a token service (its ``realm``): the client sends the user's
credentials there and the token it gets back to the server. A ``Basic`` challenge asks
for the credentials themselves. Docker prefers the token flow when both are offered.

Where credentials may go (each rule holds whether or not credentials are given):

* A realm must be an http(s) URL naming a host and no user: in
  ``http://localhost:1@evil.example/`` the host is evil.example, not localhost.
* Over plain http only to a loopback host or to a ``host[:port]`` the caller allows
  plain http for (a registry the user marked insecure), the port included: marking
  ``registry:5000`` insecure does not make ``http://registry:5001/token`` safe.
  The same holds for ``Basic`` credentials sent to the server itself.
* The token request never follows a redirect (it could lead the credentials anywhere),
  and its answer is bounded in size and in time.

Errors name the server through ``who`` (e.g. "the registry registry.example.com"), and
are ``ServerRefusedError`` / ``ServerUnreachableError``; callers may re-raise them as
their own subclasses.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from tuf.api import exceptions

from client.docker_config import Credentials
from client.fetcher import DEFAULT_DEADLINE, decoded_body, too_slow
from trustkit.errors import ServerRefusedError, ServerUnreachableError, VerificationError

__all__ = [
    "MAX_TOKEN_BYTES",
    "Challenge",
    "TokenRequest",
    "basic_authorization",
    "checked_realm",
    "choose_challenge",
    "fetch_token",
    "is_loopback",
    "parse_challenges",
]

MAX_TOKEN_BYTES = 4 * 1024 * 1024  # a token answer is a few KB; this bounds a hostile one

_CHALLENGE_START = re.compile(r",\s*(?=[A-Za-z][A-Za-z0-9_-]*\s+[A-Za-z])")
_CHALLENGE_PARAM = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)')


def is_loopback(host: str) -> bool:
    """``localhost``, ``127.0.0.0/8`` and ``::1``, with or without a port."""
    name = host
    if name.startswith("["):
        name = name[1 : name.find("]")]
    elif name.count(":") == 1:
        name = name.partition(":")[0]
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: its scheme and parameters, names lower-cased."""

    scheme: str
    params: Mapping[str, str]


def parse_challenges(headers: Iterable[str]) -> list[Challenge]:
    """Every challenge of every ``WWW-Authenticate`` header, in order.

    One header may hold several challenges (``Basic realm="x", Bearer realm="y"``);
    parameter values may be quoted, with backslash escapes.
    """
    challenges = []
    for header in headers:
        for part in _CHALLENGE_START.split(header.strip()):
            scheme, _, rest = part.strip().partition(" ")
            params = {}
            for name, value in _CHALLENGE_PARAM.findall(rest):
                if value.startswith('"'):
                    value = re.sub(r"\\(.)", r"\1", value[1:-1])
                params[name.lower()] = value
            if scheme:
                challenges.append(Challenge(scheme.lower(), params))
    return challenges


def choose_challenge(
    challenges: Iterable[Challenge], credentials: Credentials | None
) -> Challenge | None:
    """The challenge to answer: a ``Bearer`` one naming a realm (as Docker, whatever the
    order), else ``Basic`` when there is a user name to answer it with, else none."""
    listed = list(challenges)
    for challenge in listed:
        if challenge.scheme == "bearer" and "realm" in challenge.params:
            return challenge
    if credentials is not None and credentials.username:
        for challenge in listed:
            if challenge.scheme == "basic":
                return challenge
    return None


def checked_realm(realm: str, *, who: str, allows_plain_http: Callable[[str], bool]) -> str:
    """The ``host[:port]`` of the token service ``realm``, if a client may go there.

    ``allows_plain_http(host_and_port)`` says which hosts besides loopback the caller
    reaches over plain http (for registries: those the user marked insecure).
    """
    invalid = ServerRefusedError(
        f"{who} names an invalid token service ({realm!r})", status=401, error="registry_token"
    )
    try:
        parts = urlsplit(realm)
        hostname, port = parts.hostname, parts.port
    except ValueError:
        raise invalid from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise invalid
    if "@" in parts.netloc:
        raise ServerRefusedError(
            f"{who} names a token service with a user name in its URL ({realm!r}); "
            "refusing to send credentials there",
            status=401,
            error="registry_token",
            hint="a token service URL never carries credentials: the server or something "
            "between is misconfigured or hostile",
        )
    realm_host = hostname if port is None else f"{hostname}:{port}"
    if parts.scheme != "https" and not (is_loopback(hostname) or allows_plain_http(realm_host)):
        raise ServerRefusedError(
            f"{who} sends clients to a token service over plain http ({realm}); "
            "refusing to send credentials there",
            status=401,
            error="insecure_realm",
            hint=f"if you trust this network, add --insecure-registry {realm_host}",
        )
    return realm_host


def basic_authorization(
    credentials: Credentials, server_url: str, *, who: str, allows_plain_http: Callable[[str], bool]
) -> str:
    """The ``Authorization`` value answering a ``Basic`` challenge of ``server_url``;
    refused over plain http to a host that is neither loopback nor allowed plain http."""
    parts = urlsplit(server_url)
    host = parts.netloc.rpartition("@")[2]
    if parts.scheme != "https" and not (
        is_loopback(parts.hostname or "") or allows_plain_http(host)
    ):
        raise ServerRefusedError(
            f"refusing to send credentials to {who} over plain http",
            status=401,
            error="insecure_server",
        )
    pair = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


@dataclass(frozen=True)
class TokenRequest:
    """What to ask a token service for, and how to word what goes wrong."""

    challenge: Challenge
    default_scope: str  # e.g. ``repository:team/app:pull``, when the challenge names none
    who: str  # the server, as errors name it: "the registry registry.example.com"
    credentials: Credentials | None = None
    credentials_origin: str = "the credentials given"  # "the credentials in Docker's config"
    login_hint: str | None = None  # how to give (other) credentials


def fetch_token(
    http: httpx.Client,
    request: TokenRequest,
    *,
    allows_plain_http: Callable[[str], bool],
    timeout: float = 30.0,
    deadline: float = DEFAULT_DEADLINE,
) -> str:
    """A bearer token from the realm of ``request.challenge``: GET with the credentials
    as Basic auth (or POST an identity token's refresh grant), never following a redirect."""
    realm = request.challenge.params["realm"]
    who = request.who
    realm_host = checked_realm(realm, who=who, allows_plain_http=allows_plain_http)
    try:
        outgoing = _token_request(http, realm, request)
    except (httpx.InvalidURL, ValueError):  # UnicodeError is a ValueError
        raise ServerRefusedError(
            f"{who} names an invalid token service ({realm!r})", status=401, error="registry_token"
        ) from None
    outgoing.extensions["timeout"] = httpx.Timeout(min(timeout, deadline)).as_dict()
    status, body = _bounded(http, outgoing, f"the token service of {who}", deadline)
    if status in (401, 403):
        refused = (request.credentials_origin if request.credentials else "anonymous access") + (
            "" if request.credentials else " (no credentials were given)"
        )
        raise ServerRefusedError(
            f"the token service of {who} ({realm_host}) answered {status}: it refused {refused}",
            status=status,
            error="registry_denied",
            hint=request.login_hint,
        )
    try:
        answer = json.loads(body)
        token = answer.get("token") or answer.get("access_token")
    except (ValueError, AttributeError):
        token = None
    if status != 200 or not isinstance(token, str) or not token:
        raise ServerRefusedError(
            f"the token service of {who} ({realm_host}) gave no token ({status})",
            status=status,
            error="registry_token",
        )
    return token


def _token_request(http: httpx.Client, realm: str, request: TokenRequest) -> httpx.Request:
    params = request.challenge.params
    query = {"scope": params.get("scope") or request.default_scope}
    if params.get("service"):
        query["service"] = params["service"]
    credentials = request.credentials
    if credentials is not None and credentials.identity_token:
        return http.build_request(
            "POST",
            realm,
            data={
                **query,
                "grant_type": "refresh_token",
                "refresh_token": credentials.identity_token,
                "client_id": "trustkit",
            },
        )
    outgoing = http.build_request("GET", realm, params=query)
    if credentials is not None and credentials.username:
        pair = f"{credentials.username}:{credentials.password}".encode()
        outgoing.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    return outgoing


def _bounded(
    http: httpx.Client, outgoing: httpx.Request, what: str, deadline: float
) -> tuple[int, bytes]:
    """Status and body of the answer, within ``deadline`` seconds and ``MAX_TOKEN_BYTES``."""
    ends_at = time.monotonic() + deadline
    url = f"{outgoing.url.scheme}://{outgoing.url.netloc.decode()}{outgoing.url.path}"
    try:
        response = http.send(outgoing, stream=True, follow_redirects=False)
    except httpx.TimeoutException:
        raise ServerUnreachableError(f"{what}: {too_slow(url, deadline)}") from None
    except httpx.HTTPError as error:
        raise ServerUnreachableError(f"cannot reach {what} ({url}): {error}") from None
    body = bytearray()
    # An answer already in memory (a custom transport's) is checked as it is.
    pieces = [response.content] if response.is_stream_consumed else None
    try:
        for chunk in pieces or decoded_body(response, url, ends_at, deadline):
            body += chunk
            if len(body) > MAX_TOKEN_BYTES:
                raise VerificationError(
                    f"{what} sent more than the {MAX_TOKEN_BYTES} bytes a token answer may have",
                    hint="the server or something between is sending endless data",
                )
    except (httpx.TimeoutException, exceptions.SlowRetrievalError):
        raise ServerUnreachableError(f"{what}: {too_slow(url, deadline)}") from None
    except (httpx.HTTPError, exceptions.DownloadError) as error:
        raise ServerUnreachableError(f"cannot reach {what} ({url}): {error}") from None
    finally:
        response.close()
    return response.status_code, bytes(body)
