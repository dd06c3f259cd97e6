"""Install size and time of trustkit's default install (what an app host gets) and of
the ``server`` extra, each into a new virtual environment from this source tree.

    python bench/install.py [--no-cache]

Prints one row per variant: wall time of ``pip install``, the venv's size on disk and its
number of distributions. With the machine's pip cache warm (the default) the time is
mostly unpacking and byte-compiling; ``--no-cache`` downloads everything again.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = {"default (app host)": ".", "[server]": ".[server]"}


def directory_bytes(path: Path) -> int:
    return sum(entry.stat().st_size for entry in path.rglob("*") if entry.is_file())


def measure(spec: str, no_cache: bool) -> dict[str, float | int]:
    with tempfile.TemporaryDirectory() as work:
        venv = Path(work) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        baseline = directory_bytes(venv)
        python = str(venv / "bin" / "python")
        command = [python, "-m", "pip", "install", "--quiet", spec.replace(".", str(ROOT), 1)]
        if no_cache:
            command.append("--no-cache-dir")
        start = time.perf_counter()
        subprocess.run(command, check=True, cwd=work)
        seconds = time.perf_counter() - start
        listed = subprocess.run(
            [python, "-m", "pip", "list", "--format=json"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return {
            "seconds": round(seconds, 1),
            "megabytes": round((directory_bytes(venv) - baseline) / 1e6, 1),
            "distributions": len(json.loads(listed)) - 2,  # less pip and setuptools
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-cache", action="store_true", help="download every package")
    args = parser.parse_args()
    print(f"{'install':22} {'seconds':>8} {'MB':>7} {'packages':>9}")
    for name, spec in VARIANTS.items():
        row = measure(spec, args.no_cache)
        print(f"{name:22} {row['seconds']:>8} {row['megabytes']:>7} {row['distributions']:>9}")


if __name__ == "__main__":
    main()
