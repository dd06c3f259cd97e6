"""Test harness: a real trustkit-server on 127.0.0.1, the real CLI, and a tampering proxy."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import secrets
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from trustkit import cli

ROOT_PASSPHRASE = "root passphrase for tests"
TARGETS_PASSPHRASE = "targets passphrase for tests"
SNAPSHOT_PASSPHRASE = "snapshot passphrase for tests"
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


# The admin token of every server a test started, by URL: the CLI runs of a test send
# it as a pipeline would (TRUSTKIT_TOKEN), unless the test says otherwise.
SERVER_TOKENS: dict[str, str] = {}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``python -m server`` with its own data dir, started and stopped by a test."""

    def __init__(self, data_dir: Path, *extra_args: str, ca_file: Path | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.ca_file = ca_file  # set when the server serves TLS
        self.url = f"{'https' if ca_file else 'http'}://127.0.0.1:{self.port}"
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"
        self.token = "tkt_test_" + secrets.token_urlsafe(32)
        self.token_file = data_dir.parent / f"{data_dir.name}-admin.token"
        self._args = extra_args
        if "--no-auth" not in extra_args:
            self._args = ("--admin-token-file", str(self.token_file), *extra_args)
            SERVER_TOKENS[self.url] = self.token
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def database(self) -> Path:
        return self.data_dir / "trustkit.db"

    def auth_headers(self) -> dict[str, str]:
        """What a client holding the server's admin token sends."""
        return {"Authorization": f"Bearer {self.token}"}

    def start(self) -> ServerProcess:
        self.token_file.parent.mkdir(parents=True, exist_ok=True)
        self.token_file.write_text(self.token)
        log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "server",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                *self._args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        verify: Any = False
        if self.ca_file is not None:
            verify = ssl.create_default_context(cafile=str(self.ca_file))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                health = httpx.get(f"{self.url}/_trustkit/health", timeout=1, verify=verify)
                if health.status_code == 200:
                    return self
            time.sleep(0.05)
        raise RuntimeError("server did not start in 30 s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def metadata_url(self, gun: str, filename: str = "") -> str:
        return f"{self.url}/v2/{gun}/_trust/tuf/{filename}"


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Trustkit:
    """The ``trustkit`` CLI for one user: its own keystore (TRUSTKIT_HOME) and server URL."""

    home: Path
    server_url: str
    env: dict[str, str] = field(default_factory=dict)

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.home.parent),
            "TRUSTKIT_HOME": str(self.home),
            "TRUSTKIT_SERVER": self.server_url,
            **self.env,
        }
        if "TRUSTKIT_TOKEN" not in env and self.server_url in SERVER_TOKENS:
            env["TRUSTKIT_TOKEN"] = SERVER_TOKENS[self.server_url]
        env.update(extra or {})
        return env

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Result:
        """Run the CLI in this process (fast); stdin is not a TTY, as in a pipeline."""
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(list(args), self.environment(env))
            except SystemExit as exit_:  # argparse usage errors
                code = int(exit_.code or 0)
        return Result(code, out.getvalue(), err.getvalue())

    def process(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> Result:
        """Run the installed CLI as its own process, exactly as a user would."""
        completed = subprocess.run(
            [sys.executable, "-m", "trustkit", *args],
            env=self.environment(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        return Result(completed.returncode, completed.stdout, completed.stderr)


def publisher_cli(home: Path, server_url: str) -> Trustkit:
    return Trustkit(
        home,
        server_url,
        {
            "TRUSTKIT_ROOT_PASSPHRASE": ROOT_PASSPHRASE,
            "TRUSTKIT_TARGETS_PASSPHRASE": TARGETS_PASSPHRASE,
            "TRUSTKIT_SNAPSHOT_PASSPHRASE": SNAPSHOT_PASSPHRASE,
        },
    )


def gun_for(name: str) -> str:
    """A repository name of its own for each test."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:80].strip("-")
    return f"registry.test/{slug}"


Rewrite = Callable[[str, int, bytes], tuple[int, bytes]]


class TamperingProxy:
    """An HTTP proxy between a host and the server that can rewrite any response.

    ``rewrite(path, status, body) -> (status, body)`` sees every GET; by default
    responses pass through untouched. This is the malicious mirror / man in the middle.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.rewrite: Rewrite = lambda path, status, body: (status, body)
        self.requests: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                proxy.requests.append(self.path)
                response = httpx.get(proxy.upstream + self.path, timeout=30)
                status, body = proxy.rewrite(self.path, response.status_code, response.content)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)  # a host that refuses endless data hangs up

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> TamperingProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def edit_json(body: bytes, edit: Callable[[dict[str, Any]], None]) -> bytes:
    document = json.loads(body)
    edit(document)
    return json.dumps(document, separators=(",", ":")).encode()


def role_of(path: str) -> str | None:
    """``/v2/…/_trust/tuf/3.targets.json`` → ``targets``."""
    match = re.search(r"/_trust/tuf/(?:[0-9]+\.)?([^/]+)\.json$", path)
    return match.group(1) if match else None


def assert_verifies(host: Trustkit, gun: str, tag: str, digest: str) -> None:
    """The host verifies TAG and gets DIGEST (``--offline``: no registry is asked)."""
    result = host("verify", f"{gun}:{tag}", "--offline")
    assert result.code == 0, result.err
    assert result.out.strip() == digest


def sign_many(tk: Trustkit, gun: str, tags: Sequence[str], digest: str = DIGEST_A) -> None:
    for tag in tags:
        result = tk("sign", f"{gun}:{tag}", "--digest", digest, "--size", "100", "--no-publish")
        assert result.code == 0, result.err
    published = tk("publish", gun)
    assert published.code == 0, published.err
