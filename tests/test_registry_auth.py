"""One registry-auth module (``client.registry_auth``) for registries and Notary servers.

The registry client and the Notary reader each had their own token flow, with different
rules; they now share one, taking the stricter rule wherever the two differed. One test
per difference, over real HTTP servers on 127.0.0.1 where a server is involved.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest

from client.docker_config import Credentials
from client.registry import Registry, RegistrySettings
from client.registry_auth import (
    Challenge,
    TokenRequest,
    basic_authorization,
    checked_realm,
    choose_challenge,
    fetch_token,
    parse_challenges,
)
from migrate.notary import (
    NotaryAuthError,
    NotaryNotFoundError,
    NotaryVerificationError,
    read_notary_repository,
)
from tests.support.local_http import LocalHTTPServer
from trustkit.errors import ServerRefusedError, ServerUnreachableError, VerificationError
from trustkit.names import ImageReference

GUN = "registry.test/team/app"
CREDS = Credentials("ci", "ci-secret")
BASIC = "Basic " + base64.b64encode(b"ci:ci-secret").decode()

Answer = Callable[[BaseHTTPRequestHandler], None]


class Recorder:
    """A local server that records (method, path, Authorization) and answers with ``answer``."""

    def __init__(self, answer: Answer) -> None:
        self.requests: list[tuple[str, str, str | None]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                recorder.requests.append(
                    (self.command, self.path, self.headers.get("Authorization"))
                )
                answer(self)

            do_GET = do_HEAD = do_POST = _handle

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = LocalHTTPServer(Handler)
        self.url = self.server.url
        self.host = self.url.removeprefix("http://")

    def __enter__(self) -> Recorder:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)


def send(handler: BaseHTTPRequestHandler, status: int, body: bytes = b"", **headers: str) -> None:
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


def token_answer(handler: BaseHTTPRequestHandler) -> None:
    send(handler, 200, json.dumps({"token": "t0ken"}).encode(), Content_Type="application/json")


def loopback_only(host: str) -> bool:
    return False


@pytest.fixture
def token_service() -> Iterator[Recorder]:
    with Recorder(token_answer) as service:
        yield service


# --- parsing: several challenges, several headers, quoted values with escapes --------


def test_challenges_are_parsed_in_every_header_with_quoted_escaped_values() -> None:
    """The registry client read only the first header's first challenge, and its values
    stopped at a backslash-escaped quote; now every challenge of every header counts."""
    challenges = parse_challenges(
        [
            'Basic realm="the \\"registry\\"", Bearer realm="https://auth.example/token",'
            'service="registry.example", scope="repository:team/app:pull,push"',
            "Bearer  error-description = unquoted",
        ]
    )
    assert challenges == [
        Challenge("basic", {"realm": 'the "registry"'}),
        Challenge(
            "bearer",
            {
                "realm": "https://auth.example/token",
                "service": "registry.example",
                "scope": "repository:team/app:pull,push",
            },
        ),
        Challenge("bearer", {"error-description": "unquoted"}),
    ]


def test_bearer_is_answered_before_basic_whatever_the_order() -> None:
    """The Notary reader answered the first challenge it could, the registry client the
    first one only; both now answer Bearer first (as Docker), Basic only with a user."""
    basic, bearer = parse_challenges(['Basic realm="r", Bearer realm="https://auth/token"'])
    assert choose_challenge([basic, bearer], CREDS) == bearer
    assert choose_challenge([basic, bearer], None) == bearer
    assert choose_challenge([basic], CREDS) == basic
    assert choose_challenge([basic], None) is None
    assert choose_challenge([basic], Credentials(identity_token="refresh")) is None


def test_the_registry_client_answers_a_bearer_challenge_after_a_basic_one(
    token_service: Recorder, tmp_path: Path
) -> None:
    manifest = b'{"schemaVersion":2}'

    def registry_answer(handler: BaseHTTPRequestHandler) -> None:
        if handler.headers.get("Authorization") != "Bearer t0ken":
            handler.send_response(401)
            handler.send_header("WWW-Authenticate", 'Basic realm="registry"')
            handler.send_header("WWW-Authenticate", f'Bearer realm="{token_service.url}/token"')
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        send(handler, 200, manifest, Content_Type="application/vnd.oci.image.manifest.v1+json")

    config = tmp_path / "config.json"
    with Recorder(registry_answer) as registry:
        config.write_text(json.dumps({"auths": {registry.host: {"auth": BASIC.split()[1]}}}))
        settings = RegistrySettings(docker_config=config)
        with Registry(settings) as client:
            found = client.resolve(
                ImageReference(f"{registry.host}/team/app", "1.0", None), read_body=True
            )
    assert str(found.digest) == "sha256:" + hashlib.sha256(manifest).hexdigest()
    [(_, path, authorization)] = token_service.requests
    assert path == "/token?scope=repository%3Ateam%2Fapp%3Apull"
    assert authorization == BASIC
    assert registry.requests[-1][2] == "Bearer t0ken"


# --- the realm: where a token request may go ----------------------------------------


def test_a_plain_http_realm_elsewhere_is_refused_even_without_credentials() -> None:
    """The Notary reader refused a plain-http realm only when it had credentials to send;
    the registry client always (the token it gets back is a credential too)."""

    def challenge(handler: BaseHTTPRequestHandler) -> None:
        send(handler, 401, WWW_Authenticate='Bearer realm="http://token.invalid/token"')

    with Recorder(challenge) as notary, pytest.raises(NotaryAuthError, match="over plain http"):
        read_notary_repository(notary.url, GUN)
    with pytest.raises(ServerRefusedError, match="refusing to send credentials there"):
        checked_realm("http://token.invalid/token", who="x", allows_plain_http=loopback_only)
    assert checked_realm("http://127.0.0.1:5001/t", who="x", allows_plain_http=loopback_only)


def test_a_realm_with_a_user_name_is_refused() -> None:
    """``https://localhost:1@evil.example/`` goes to evil.example: the registry client
    refused such realms, the Notary reader did not look."""

    def challenge(handler: BaseHTTPRequestHandler) -> None:
        realm = "https://localhost:1@evil.invalid/token"
        send(handler, 401, WWW_Authenticate=f'Bearer realm="{realm}"')

    with Recorder(challenge) as notary, pytest.raises(NotaryAuthError, match="user name"):
        read_notary_repository(notary.url, GUN, credentials=("ci", "ci-secret"))


def test_an_insecure_host_covers_its_own_port_only() -> None:
    """The registry client let a plain-http realm on the same host name as an insecure
    registry through on any port; now the realm's own host:port must be allowed."""
    insecure = {"registry.internal:5000"}

    def allowed(host: str) -> bool:
        return host in insecure

    assert (
        checked_realm("http://registry.internal:5000/token", who="x", allows_plain_http=allowed)
        == "registry.internal:5000"
    )
    with pytest.raises(ServerRefusedError, match="over plain http") as refused:
        checked_realm("http://registry.internal:5001/token", who="x", allows_plain_http=allowed)
    assert refused.value.hint == "if you trust this network, add --insecure-registry " + (
        "registry.internal:5001"
    )
    with pytest.raises(ServerRefusedError, match="over plain http"):
        checked_realm("http://registry.internal/token", who="x", allows_plain_http=allowed)


INSECURE = frozenset({"registry.internal:5000"})


def test_basic_credentials_go_over_plain_http_only_to_allowed_hosts() -> None:
    """The Notary reader refused Basic over plain http to a non-loopback server; the
    registry client relied on reaching only allowed hosts over http. One rule for both."""
    assert (
        basic_authorization(
            CREDS, "http://127.0.0.1:4443", who="x", allows_plain_http=loopback_only
        )
        == BASIC
    )
    assert (
        basic_authorization(
            CREDS, "https://notary.example", who="x", allows_plain_http=loopback_only
        )
        == BASIC
    )
    with pytest.raises(ServerRefusedError, match="over plain http"):
        basic_authorization(
            CREDS, "http://notary.example", who="x", allows_plain_http=loopback_only
        )
    assert (
        basic_authorization(
            CREDS,
            "http://registry.internal:5000",
            who="x",
            allows_plain_http=INSECURE.__contains__,
        )
        == BASIC
    )


# --- the token request ----------------------------------------------------------------


def _request(realm: str, credentials: Credentials | None = CREDS) -> TokenRequest:
    return TokenRequest(
        Challenge("bearer", {"realm": realm, "service": "svc"}),
        default_scope="repository:team/app:pull",
        who="the Notary server https://notary.example",
        credentials=credentials,
    )


def test_a_token_request_never_follows_a_redirect(token_service: Recorder) -> None:
    """The Notary reader followed redirects when its HTTP client did; the credentials
    could be led anywhere. Neither client follows one now."""

    def redirect(handler: BaseHTTPRequestHandler) -> None:
        send(handler, 302, Location=f"{token_service.url}/token")

    with (
        Recorder(redirect) as realm,
        httpx.Client(follow_redirects=True) as http,
        pytest.raises(ServerRefusedError, match=r"gave no token \(302\)"),
    ):
        fetch_token(http, _request(f"{realm.url}/token"), allows_plain_http=loopback_only)
    assert token_service.requests == []


def test_a_token_answer_is_bounded_in_size() -> None:
    """The Notary reader read a token answer of any size."""

    def endless(handler: BaseHTTPRequestHandler) -> None:
        send(handler, 200, b"x" * (5 * 1024 * 1024))

    with (
        Recorder(endless) as realm,
        httpx.Client() as http,
        pytest.raises(VerificationError, match="bytes a token answer may have"),
    ):
        fetch_token(http, _request(f"{realm.url}/token"), allows_plain_http=loopback_only)


def test_a_token_answer_is_bounded_in_time() -> None:
    """The Notary reader waited as long as each read stayed under its timeout."""
    release = threading.Event()

    def dribble(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "100")
        handler.end_headers()
        for _ in range(100):
            if release.wait(0.2):
                return
            handler.wfile.write(b" ")
            handler.wfile.flush()

    started = time.monotonic()
    try:
        with (
            Recorder(dribble) as realm,
            httpx.Client() as http,
            pytest.raises(ServerUnreachableError, match="took longer than 1 s"),
        ):
            fetch_token(
                http,
                _request(f"{realm.url}/token"),
                allows_plain_http=loopback_only,
                deadline=1.0,
            )
    finally:
        release.set()
    assert time.monotonic() - started < 5


def test_the_notary_reader_uses_the_shared_flow_with_its_own_error_types(
    token_service: Recorder,
) -> None:
    """Errors of the shared flow reach Notary callers as Notary errors."""

    def notary_answer(handler: BaseHTTPRequestHandler) -> None:
        if handler.headers.get("Authorization") == "Bearer t0ken":
            send(handler, 404)
            return
        realm = f"{token_service.url}/token"
        send(handler, 401, WWW_Authenticate=f'Bearer realm="{realm}",service="notary"')

    with Recorder(notary_answer) as notary, pytest.raises(NotaryNotFoundError):
        read_notary_repository(notary.url, GUN, credentials=("ci", "ci-secret"))
    [(_, path, authorization)] = token_service.requests
    assert path == f"/token?scope=repository%3A{GUN.replace('/', '%2F')}%3Apull&service=notary"
    assert authorization == BASIC

    def too_big(handler: BaseHTTPRequestHandler) -> None:
        send(handler, 200, b"x" * (5 * 1024 * 1024))

    with Recorder(too_big) as realm:

        def challenge(handler: BaseHTTPRequestHandler) -> None:
            send(handler, 401, WWW_Authenticate=f'Bearer realm="{realm.url}/token"')

        with Recorder(challenge) as notary, pytest.raises(NotaryVerificationError):
            read_notary_repository(notary.url, GUN)
