"""Starting the server: bad settings are refused with a clear line, not a trace."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _server(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_bad_expiry_setting_is_refused(tmp_path: Path):
    result = _server("--data-dir", str(tmp_path), "--expiry", "timestamp=soon")

    assert result.returncode == 2
    assert "'soon' is not a duration" in result.stderr
    assert "Traceback" not in result.stderr


def test_master_key_of_the_wrong_size_is_refused(tmp_path: Path):
    master = tmp_path / "master.key"
    master.write_bytes(b"too short")
    master.chmod(0o600)

    result = _server("--data-dir", str(tmp_path), "--master-key-file", str(master))

    assert result.returncode == 2
    assert "holds 9 bytes, not 32" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_database_url_that_is_not_postgresql_is_a_usage_error(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "server", "--data-dir", str(tmp_path),
         "--database", "mysql://user:secret@db/trustkit"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "is not a PostgreSQL URL" in done.stderr
    assert "secret" not in done.stderr  # the URL's password is never echoed
