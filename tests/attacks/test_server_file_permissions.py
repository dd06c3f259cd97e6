"""The server's database holds token hashes and sealed online keys: its files are for
the server's user alone (0600, in a 0700 directory), also when the data dir existed
before with the usual umask, and a data dir others may write to is refused."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.support.harness import ServerProcess


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_database_files_are_private_in_a_data_dir_made_beforehand(
    start_server: Any, tmp_path: Path
):
    data_dir = tmp_path / "server0"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)  # as made by a plain mkdir under umask 022
    server: ServerProcess = start_server()
    assert server.data_dir == data_dir
    httpx.get(f"{server.url}/v2/registry.test/x/_trust/tuf/root.json", timeout=30)
    files = [server.database, *(data_dir / f"trustkit.db{s}" for s in ("-wal", "-shm"))]
    for path in files:
        assert path.exists(), path
        assert _mode(path) == 0o600, (path, oct(_mode(path)))
    assert _mode(data_dir) == 0o700


def test_files_an_older_server_left_readable_are_made_private(start_server: Any, tmp_path: Path):
    server: ServerProcess = start_server()
    server.stop()
    for path in server.data_dir.glob("trustkit.db*"):
        path.chmod(0o644)
    server.data_dir.chmod(0o755)
    server.start()
    for path in server.data_dir.glob("trustkit.db*"):
        assert _mode(path) == 0o600, (path, oct(_mode(path)))
    assert _mode(server.data_dir) == 0o700


def test_a_data_dir_others_may_write_to_is_refused(tmp_path: Path):
    data_dir = tmp_path / "shared"
    data_dir.mkdir()
    data_dir.chmod(0o777)
    done = subprocess.run(
        [sys.executable, "-m", "server", "--no-auth", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "may be written by other users" in done.stderr
    assert f"chmod 700 {data_dir}" in done.stderr
    assert not (data_dir / "trustkit.db").exists()
