"""The README's first command tells the whole story; keep it true."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_demo_signs_pulls_and_refuses(tmp_path: Path):
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(tmp_path),
        "TRUSTKIT_DEMO_NO_SETUP": "1",
    }

    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "demo")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=REPO,
    )

    out = result.stdout
    assert result.returncode == 0, out + result.stderr
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
