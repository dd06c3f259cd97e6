"""A newcomer's checkout: the repository's files with nothing built, and a PATH without
this test run's virtual environment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def fresh_copy(destination: Path) -> Path:
    """The files a clone would hold (tracked and new, not ignored), nothing built."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def newcomer_env(home: Path) -> dict[str, str]:
    """PATH without this run's venv, a HOME of its own, and the machine's package index
    settings and download cache, as a newcomer has them."""
    venv_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join(
        entry for entry in os.environ.get("PATH", "").split(os.pathsep) if entry != venv_bin
    )
    return {
        "PATH": path,
        "HOME": str(home),
        "XDG_CACHE_HOME": os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache")),
        **{name: value for name, value in os.environ.items() if name.startswith("PIP_")},
    }
