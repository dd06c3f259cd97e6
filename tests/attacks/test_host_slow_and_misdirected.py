"""A server, mirror or registry that never finishes answering, and a registry that
sends credentials somewhere else.

Slow retrieval: one byte at a time, each well within any timeout per read, so only a
deadline on the whole request ends it. Hosts run with ``TRUSTKIT_DEADLINE=2`` here; the
tests' own timeouts are only safety nets.

A misdirected token realm: ``http://localhost:1@evil.example/token`` names the host
evil.example (``localhost:1`` is a user name and password), so plain http there would
send the user's registry credentials in the clear to someone else.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.attacks.common import ok, pinned_host, sign
from tests.support.harness import DIGEST_A, ServerProcess, Trustkit

DEADLINE = {"TRUSTKIT_DEADLINE": "2"}
SAFETY_NET = 90  # seconds; a host without a deadline would wait far longer
STALLED = "took longer than 2 s; the server or mirror is too slow or stalled"


class Loopback:
    """A tiny HTTP server on 127.0.0.1 whose GET and HEAD answers ``answer`` writes."""

    def __init__(self, answer: Callable[[BaseHTTPRequestHandler], None]) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                owner.requests.append(("GET", self.path, dict(self.headers)))
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    answer(self)

            do_HEAD = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def dribble(handler: BaseHTTPRequestHandler, body: bytes, every: float = 0.25) -> None:
    """Answer 200 with BODY, one byte every EVERY seconds."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    for byte in body:
        handler.wfile.write(bytes([byte]))
        handler.wfile.flush()
        time.sleep(every)


@pytest.fixture
def stalling_mirror(server: ServerProcess) -> Iterator[Loopback]:
    """A mirror of the real server that dribbles ``timestamp.json``."""

    def answer(handler: BaseHTTPRequestHandler) -> None:
        upstream = httpx.get(server.url + handler.path, timeout=30)
        if handler.path.endswith("/timestamp.json") and upstream.status_code == 200:
            dribble(handler, upstream.content)
            return
        handler.send_response(upstream.status_code)
        handler.send_header("Content-Length", str(len(upstream.content)))
        handler.end_headers()
        handler.wfile.write(upstream.content)

    mirror = Loopback(answer)
    yield mirror
    threading.Thread(target=mirror.stop, daemon=True).start()


def test_a_mirror_dribbling_metadata_is_given_up_on_at_the_deadline(
    publisher: Trustkit,
    server: ServerProcess,
    stalling_mirror: Loopback,
    gun: str,
    tmp_path: Path,
):
    ok(publisher("init", gun))
    sign(publisher, gun, "1.0", DIGEST_A)
    host = pinned_host(server, gun, tmp_path / "host", stalling_mirror.url)
    result = host.process("verify", f"{gun}:1.0", "--offline", env=DEADLINE, timeout=SAFETY_NET)
    assert result.code == 3, result.err
    assert result.out == ""
    assert "Traceback" not in result.err
    assert "timestamp.json" in result.err and STALLED in result.err


@pytest.fixture
def stalling_registry() -> Iterator[Loopback]:
    """A registry that answers every manifest request one byte at a time."""
    # Long enough that, a byte every quarter second, it takes minutes.
    manifest = json.dumps({"schemaVersion": 2, "annotations": {"pad": "x" * 1024}}).encode()

    def answer(handler: BaseHTTPRequestHandler) -> None:
        dribble(handler, manifest if handler.command == "GET" else b"")

    registry = Loopback(answer)
    yield registry
    threading.Thread(target=registry.stop, daemon=True).start()


def test_a_registry_dribbling_a_manifest_is_given_up_on_at_the_deadline(
    publisher: Trustkit, stalling_registry: Loopback
):
    gun = f"127.0.0.1:{stalling_registry.port}/team/app"
    result = publisher.process("sign", f"{gun}:1.0", env=DEADLINE, timeout=SAFETY_NET)
    assert result.code == 3, result.err
    assert "Traceback" not in result.err
    assert f"the registry 127.0.0.1:{stalling_registry.port}" in result.err
    assert STALLED in result.err


# --- the token realm -----------------------------------------------------------------

CREDENTIALS = ("ci", "ci-secret")


def docker_login(user: Trustkit, registry: str) -> None:
    """What ``docker login REGISTRY`` saves (trustkit reads Docker's config)."""
    auth = base64.b64encode(":".join(CREDENTIALS).encode()).decode()
    config = user.home.parent / ".docker" / "config.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps({"auths": {registry: {"auth": auth}}}))


@pytest.mark.parametrize(
    "realm",
    ["http://localhost:1@evil.example/token", "http://evil.example/token"],
    ids=["userinfo-looks-like-loopback", "plain-http-elsewhere"],
)
def test_credentials_never_go_over_plain_http_to_a_token_service_elsewhere(
    publisher: Trustkit, realm: str
):
    """The registry is on loopback (plain http is fine there); its token service is
    not. Requests to evil.example go through a loopback proxy, which stands for the
    network between the host and evil.example and sees what would be sent."""
    wiretap = Loopback(lambda handler: handler.send_error(404))

    def challenge(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(401)
        handler.send_header("WWW-Authenticate", f'Bearer realm="{realm}",service="registry"')
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    registry = Loopback(challenge)
    try:
        host = f"127.0.0.1:{registry.port}"
        docker_login(publisher, host)
        network = {
            **DEADLINE,
            "HTTP_PROXY": wiretap.url,
            "http_proxy": wiretap.url,
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
        result = publisher.process("sign", f"{host}/team/app:1.0", env=network, timeout=60)
    finally:
        registry.stop()
        wiretap.stop()
    assert registry.requests, "the registry was never asked"
    assert wiretap.requests == [], "credentials went over plain http to evil.example"
    assert result.code == 1, result.err
    assert "Traceback" not in result.err
    assert "refusing to send credentials there" in result.err


def test_a_mirror_slow_on_every_file_cannot_stretch_one_verification_past_its_window(
    publisher: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    """Each file arrives just within the 2 s deadline, but a fresh host walking a chain
    of roots needs many files: one verification still ends within 4 deadlines."""
    from tests.support.harness import TamperingProxy

    ok(publisher("init", gun))
    sign(publisher, gun, "1.0", DIGEST_A)
    for _ in range(3):  # roots v2..v4: a longer chain for the host to walk
        ok(publisher("key", "rotate", gun, "root"))
    proxy = TamperingProxy(server.url)

    def slowly(path: str, status: int, body: bytes) -> tuple[int, bytes]:
        time.sleep(1.5)  # within the per-file deadline
        return status, body

    proxy.rewrite = slowly
    proxy.start()
    try:
        host = pinned_host(server, gun, tmp_path / "host", proxy.url)
        result = host.process("verify", f"{gun}:1.0", "--offline", env=DEADLINE, timeout=SAFETY_NET)
    finally:
        proxy.stop()

    assert result.code == 3, result.err
    assert "Traceback" not in result.err
    assert STALLED.split(";")[1].strip() in result.err
    assert len(proxy.requests) < 7  # cut before the last file it needed
