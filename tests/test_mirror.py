"""A static mirror (``trustkit-server export --to DIR``) served by a plain file server:
hosts verify from it with ``--mirror URL``, never sending it the server's token."""

from __future__ import annotations

import functools
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.support.harness import DIGEST_A, DIGEST_B, ServerProcess, Trustkit, publisher_cli


class _Recording(SimpleHTTPRequestHandler):
    seen_headers: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _Recording.seen_headers.append(self.headers.get("Authorization") or "")
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "mirror"
    root.mkdir()
    handler = functools.partial(_Recording, directory=str(root))
    http = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_address[1]}", root
    http.shutdown()
    http.server_close()


def _export(server: ServerProcess, directory: Path, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "server", "export", "--to", str(directory),
         "--data-dir", str(server.data_dir), *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_hosts_verify_from_a_static_mirror_and_follow_it_across_exports(
    start_server: Any, file_server: tuple[str, Path], tmp_path: Path, gun: str
):
    server: ServerProcess = start_server()
    mirror_url, mirror_dir = file_server
    publisher = publisher_cli(tmp_path / "publisher" / ".trustkit", server.url)
    assert publisher("init", gun).code == 0
    assert publisher("sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "1").code == 0
    _export(server, mirror_dir)
    files = {p.name for p in mirror_dir.rglob("*.json")}
    assert {"1.root.json", "root.json", "timestamp.json", "1.targets.json"} <= files

    _Recording.seen_headers.clear()
    host = Trustkit(tmp_path / "host" / ".trustkit", "http://127.0.0.1:9")  # no server
    host.env["TRUSTKIT_TOKEN"] = "a token the mirror must never see"
    verified = host("verify", f"{gun}:1.0", "--offline", "--mirror", mirror_url, "--json")
    assert verified.code == 0, verified.err
    assert verified.json["digest"] == DIGEST_A
    assert _Recording.seen_headers and not any(_Recording.seen_headers)

    assert publisher("sign", f"{gun}:2.0", "--digest", DIGEST_B, "--size", "1").code == 0
    missing = host("verify", f"{gun}:2.0", "--offline", "--mirror", mirror_url)
    assert missing.code == 1  # the mirror is behind until the next export
    _export(server, mirror_dir, "--repository", gun)
    caught_up = host("verify", f"{gun}:2.0", "--offline", "--mirror", mirror_url, "--json")
    assert caught_up.code == 0, caught_up.err
    assert caught_up.json["digest"] == DIGEST_B


def test_a_tampered_mirror_is_refused(
    start_server: Any, file_server: tuple[str, Path], tmp_path: Path, gun: str
):
    server: ServerProcess = start_server()
    mirror_url, mirror_dir = file_server
    publisher = publisher_cli(tmp_path / "publisher" / ".trustkit", server.url)
    assert publisher("init", gun).code == 0
    assert publisher("sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "1").code == 0
    _export(server, mirror_dir)
    for path in mirror_dir.rglob("*targets.json"):
        path.write_bytes(path.read_bytes().replace(b"a" * 64, b"f" * 64))
    host = Trustkit(tmp_path / "host" / ".trustkit", "http://127.0.0.1:9")
    refused = host("verify", f"{gun}:1.0", "--offline", "--mirror", mirror_url)
    assert refused.code == 1
    assert "f" * 64 not in refused.out
