"""A gzip bomb: a mirror answers a metadata request with a small gzip body that decodes
to far more than the host may accept for the file. The host counts what it decodes,
not what came over the wire, against the length signed for the file (snapshot,
targets) or the fixed ceiling (root, timestamp), and refuses the file.

The host runs as its own process under a timeout, as for endless data."""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.attacks.common import assert_refused, ok, pinned_host, sign
from tests.attacks.test_endless_data import _endless_file_and_limit
from tests.support.harness import DIGEST_A, ServerProcess, Trustkit, assert_verifies
from tests.support.local_http import LocalHTTPServer

EXPANSION = 64  # the bomb decodes to this many times the host's limit


def gzip_bomb(decoded_size: int) -> bytes:
    """A gzip body of about a thousandth of ``decoded_size`` that decodes to that many
    spaces."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # 16+: gzip framing
    chunk = b" " * (1024 * 1024)
    parts = [packer.compress(chunk) for _ in range(decoded_size // len(chunk))]
    parts.append(packer.compress(b" " * (decoded_size % len(chunk))))
    parts.append(packer.flush())
    return b"".join(parts)


class BombProxy(LocalHTTPServer):
    """A mirror that answers the file ``bombed(path)`` picks with ``bomb`` as a gzip body
    (Content-Encoding: gzip, its true Content-Length) and forwards everything else."""

    def __init__(self, upstream: str, bombed: Callable[[str], bool], bomb: bytes) -> None:
        self.served: list[str] = []
        served = self.served

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                headers = {"Content-Type": "application/json"}
                if bombed(self.path):
                    status, body = 200, bomb
                    headers["Content-Encoding"] = "gzip"
                    served.append(self.path)
                else:
                    response = httpx.get(upstream + self.path, timeout=30)
                    status, body = response.status_code, response.content
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        super().__init__(Handler)


@pytest.mark.parametrize("role", ["root", "timestamp", "snapshot", "targets"])
def test_a_host_refuses_metadata_that_decodes_past_its_limit(
    role: str, publisher: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
) -> None:
    ok(publisher("init", gun))
    sign(publisher, gun, "1.0", DIGEST_A)
    name, limit = _endless_file_and_limit(server, gun, role)
    bomb = gzip_bomb(EXPANSION * limit)
    assert len(bomb) < limit  # over the wire, it is within the limit

    proxy = BombProxy(server.url, lambda path: path.endswith(f"/{name}"), bomb)
    with proxy as proxy_url:
        host = pinned_host(server, gun, tmp_path / "host", proxy_url)
        result = host.process("verify", f"{gun}:1.0", "--offline", timeout=60)

        assert proxy.served, "the host never asked for the bombed file"
        assert_refused(
            result,
            f"the server sent more metadata for {gun} than allowed: Downloaded ",
            f"exceeding the maximum allowed length of {limit}",
        )
    assert_verifies(Trustkit(host.home, server.url), gun, "1.0", DIGEST_A)
