"""Access tokens made with trustkit-server, and a CLI user holding one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.harness import (
    ServerProcess,
    Trustkit,
    publisher_cli,
)


def issue_token(server: ServerProcess, name: str, *scopes: str) -> str:
    """``trustkit-server token create``, as the operator runs it next to the server."""
    args = [sys.executable, "-m", "server", "token", "create", "--name", name]
    args += [arg for scope in scopes for arg in ("--scope", scope)]
    done = subprocess.run(
        [*args, "--data-dir", str(server.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "shown only now" in done.stderr
    return done.stdout.strip()


def cli_as(tmp_path: Path, server: ServerProcess, who: str, token: str | None) -> Trustkit:
    """A publisher with keys of its own and the given token (or none at all)."""
    tk = publisher_cli(tmp_path / who / ".trustkit", server.url)
    tk.env["TRUSTKIT_TOKEN"] = token or ""
    return tk
