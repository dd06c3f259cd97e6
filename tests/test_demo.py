"""The README's first command tells the whole story; keep it true."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_demo_signs_verifies_and_refuses(tmp_path: Path):
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
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "docker would now be given exactly: docker pull registry.example.com/team/app@sha256:"
        in (result.stdout)
    )
    assert "no signed tag 9.9.9" in result.stderr
    assert "does not match what was signed" in result.stderr
    assert result.stdout.count("refused with exit code 1") == 2
    assert "Traceback" not in result.stderr
