"""The README's first command tells the whole story; keep it true for a newcomer.

The demo runs as a newcomer runs it: in a fresh copy of the repository (tracked files
only, no ``.venv``), with no virtual environment on PATH, so it must set itself up from
nothing and must not lean on test-only packages or test code.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.support.fresh_clone import fresh_copy, newcomer_env


def test_demo_on_a_fresh_clone_signs_pulls_and_refuses(tmp_path: Path):
    clone = fresh_copy(tmp_path / "trustkit")
    assert not (clone / ".venv").exists()
    env = newcomer_env(tmp_path / "home")

    result = subprocess.run(
        ["bash", "scripts/demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        cwd=clone,
    )

    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert (clone / ".venv" / "bin" / "trustkit").exists()
    signed = re.search(r"signed (\S+):1\.4\.2 -> (sha256:[0-9a-f]{64})", out)
    assert signed, out
    gun, digest = signed.groups()
    assert "(pulled into " in out and f": {digest})" in out
    assert f"run --rm -p 8080:80 {gun}@{digest}" in out
    assert f"docker would still be given exactly: docker pull {gun}@{digest}" in out
    assert "no signed tag 9.9.9" in result.stderr
    assert f"but it is signed as {digest}" in result.stderr
    assert "does not match what was signed" in result.stderr
    assert out.count("refused with exit code 1") == 3
    assert "Traceback" not in result.stderr
