"""Requests that would hold the server: bodies past the upload limit (chunked, or that
never end), huge headers, headers dribbled a byte at a time.

Everything goes over raw sockets to a real server on 127.0.0.1, bounded in bytes and
time: a sender stops after ``CAP`` bytes, a dribbler after a few seconds.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.harness import ServerProcess

LIMIT = 1024 * 1024  # --max-upload-bytes of these servers
CAP = 96 * 1024 * 1024  # what a sender sends at most: far past the limit
# The server stops reading at LIMIT; what the sender still got out sat in the socket
# buffers of both ends (a few MiB on loopback).
READ_AT_MOST = LIMIT + 32 * 1024 * 1024
PREAMBLE = (
    b'--b\r\nContent-Disposition: form-data; name="files"; filename="root.json"\r\n'
    b"Content-Type: application/json\r\n\r\n"
)


def _start(start_server: Any, *args: str) -> ServerProcess:
    server: ServerProcess = start_server("--max-upload-bytes", str(LIMIT), *args)
    return server


@dataclass
class Sent:
    bytes_sent: int = 0
    answer: bytes = b""
    chunks: list[bytes] = field(default_factory=list)

    @property
    def status(self) -> int | None:
        """The status of the answer read back, or None when the connection was cut
        before one could be read."""
        if not self.answer.startswith(b"HTTP/1.1 "):
            return None
        return int(self.answer[9:12])


def _send_endless(server: ServerProcess, head: bytes, *, chunked: bool) -> Sent:
    """Send HEAD, then a multipart body that does not end (up to CAP), while reading
    what the server answers. Returns what got out before the server cut it off."""
    sent = Sent()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:

        def read() -> None:
            with contextlib.suppress(OSError):
                while data := sock.recv(65536):
                    sent.chunks.append(data)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        piece = b"x" * 65536
        try:
            sock.sendall(head)
            sock.sendall(_chunk(PREAMBLE) if chunked else PREAMBLE)
            while sent.bytes_sent < CAP:
                sock.sendall(_chunk(piece) if chunked else piece)
                sent.bytes_sent += len(piece)
        except OSError:
            pass  # the server hung up: what this test wants
        reader.join(30)
    sent.answer = b"".join(sent.chunks)
    return sent


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


def _upload_head(gun: str, framing: bytes, token: str | None = None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n".encode() if token else b""
    return (
        f"POST /v2/{gun}/_trust/tuf/ HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
        + auth
        + b"Content-Type: multipart/form-data; boundary=b\r\n"
        + framing
        + b"\r\n"
    )


def test_an_endless_chunked_upload_is_refused_at_the_limit_and_cut_off(start_server: Any, gun: str):
    server = _start(start_server)
    sent = _send_endless(
        server, _upload_head(gun, b"Transfer-Encoding: chunked\r\n", server.token), chunked=True
    )
    assert sent.bytes_sent < READ_AT_MOST, "the server read on past the upload limit"
    assert sent.status in (413, None), sent.answer[:200]
    if sent.status == 413:
        assert b'"error":"too_large"' in sent.answer
        assert b"connection: close" in sent.answer.lower()
    assert httpx.get(f"{server.url}/_trustkit/health", timeout=10).status_code == 200


def test_a_chunked_upload_just_over_the_limit_gets_413(start_server: Any, gun: str):
    """A finite chunked body a little over the limit: the client is told 413, with the
    usual JSON refusal, not a cut connection only."""
    server = _start(start_server)
    body = PREAMBLE + b"x" * (LIMIT + 1)

    def chunks() -> Any:
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    with httpx.Client(timeout=30) as client:
        try:
            response = client.post(
                server.metadata_url(gun),
                content=chunks(),
                headers={
                    **server.auth_headers(),
                    "Content-Type": "multipart/form-data; boundary=b",
                },
            )
        except httpx.TransportError:
            response = None  # cut while still sending: acceptable, and bounded
    if response is not None:
        assert response.status_code == 413, response.text
        assert response.json()["error"] == "too_large"


def test_an_endless_body_after_a_refusal_is_not_read_on(start_server: Any, gun: str):
    """An upload without a token is refused before its body is read; the body, endless,
    must not then be read (and dropped) for ever."""
    server = _start(start_server)
    sent = _send_endless(server, _upload_head(gun, b"Transfer-Encoding: chunked\r\n"), chunked=True)
    assert sent.bytes_sent < READ_AT_MOST, "the server read on after answering"
    assert sent.status in (401, None), sent.answer[:200]


def test_a_body_longer_than_its_content_length_is_not_read_past_the_limit(
    start_server: Any, gun: str
):
    server = _start(start_server)
    framing = f"Content-Length: {LIMIT - 1000}\r\n".encode()
    sent = _send_endless(server, _upload_head(gun, framing, server.token), chunked=False)
    assert sent.bytes_sent < READ_AT_MOST
    too_long = _upload_head(gun, f"Content-Length: {LIMIT + 1}\r\n".encode(), server.token)
    sent = _send_endless(server, too_long, chunked=False)
    assert sent.bytes_sent < READ_AT_MOST
    assert sent.status in (413, None), sent.answer[:200]


def test_a_huge_request_header_is_refused(start_server: Any):
    server = _start(start_server)
    head = b"GET /_trustkit/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Filler: "
    answer = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        try:
            sock.sendall(head + b"a" * (8 * 1024 * 1024) + b"\r\n\r\n")
            answer = sock.recv(65536)
        except OSError:
            pass  # cut off: refused
    assert not answer.startswith(b"HTTP/1.1 200"), answer[:200]
    if answer:
        assert answer.startswith((b"HTTP/1.1 400", b"HTTP/1.1 431")), answer[:200]
    assert httpx.get(f"{server.url}/_trustkit/health", timeout=10).status_code == 200


def test_slow_header_dribblers_neither_stop_health_nor_stay_connected(start_server: Any):
    """200 clients each send their headers a byte now and then: the server still
    answers, and cuts each of them once the header timeout passes."""
    server = _start(start_server, "--header-timeout", "2")
    dribblers: list[socket.socket] = []
    try:
        for _ in range(200):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(b"GET /_trustkit/health HTTP/1.1\r\n")
            dribblers.append(sock)
        assert httpx.get(f"{server.url}/_trustkit/health", timeout=10).status_code == 200
        deadline = time.monotonic() + 20
        open_ones = list(dribblers)
        while open_ones and time.monotonic() < deadline:
            still = []
            for sock in open_ones:
                try:
                    sock.sendall(b"X")  # one more byte of a header that never ends
                    still.append(sock)
                except OSError:
                    pass  # cut off
            open_ones = still
            time.sleep(0.5)
        assert open_ones == [], f"{len(open_ones)} dribblers still connected after 20 s"
        assert httpx.get(f"{server.url}/_trustkit/health", timeout=10).status_code == 200
    finally:
        for sock in dribblers:
            sock.close()


def test_connection_bounds_are_server_options(start_server: Any):
    server = _start(
        start_server,
        "--max-header-bytes",
        "8192",
        "--header-timeout",
        "5",
        "--keep-alive-timeout",
        "3",
        "--max-connections",
        "50",
    )
    filler = b"a" * 16384
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        answer = b""
        try:
            sock.sendall(
                b"GET /_trustkit/health HTTP/1.1\r\nHost: x\r\nX-F: " + filler + b"\r\n\r\n"
            )
            answer = sock.recv(65536)
        except OSError:
            pass
    assert not answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert httpx.get(f"{server.url}/_trustkit/health", timeout=10).status_code == 200


def test_a_body_dribbled_past_the_body_timeout_gets_408_and_is_cut_off(start_server: Any, gun: str):
    server = _start(start_server, "--body-timeout", "2")
    head = _upload_head(gun, b"Transfer-Encoding: chunked\r\n", server.token)
    answer = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head + _chunk(PREAMBLE))
        deadline = time.monotonic() + 20
        try:
            while time.monotonic() < deadline:
                sock.sendall(_chunk(b"x"))  # a byte every half second, for ever
                time.sleep(0.5)
                sock.setblocking(False)
                try:
                    answer += sock.recv(65536)
                except BlockingIOError:
                    pass
                finally:
                    sock.setblocking(True)
                if answer:
                    break
        except OSError:
            pass  # cut off
        assert time.monotonic() < deadline, "the server waited on a body that never came"
    if answer:
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b'"error":"request_timeout"' in answer
