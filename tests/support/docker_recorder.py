"""A stand-in docker CLI that records its argv, for the gate tests that check what
trustkit hands Docker."""

from __future__ import annotations

import json
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RECORDER = """\
#!{python}
import json, os, sys
args = sys.argv[1:]
record = {{"argv": [os.path.basename(sys.argv[0]), *args], "dockerfile": None}}
if "--file" in args:  # the gate's temporary Dockerfile is gone once the build returns
    path = args[args.index("--file") + 1]
    with open(path, encoding="utf-8", newline="") as dockerfile:  # byte for byte
        record["dockerfile"] = dockerfile.read()
    if os.path.exists(path + ".dockerignore"):
        with open(path + ".dockerignore") as ignore:
            record["dockerignore"] = ignore.read()
with open(os.environ["DOCKER_RECORD"], "a") as log:
    log.write(json.dumps(record) + "\\n")
sys.exit(int(os.environ.get("DOCKER_RECORD_EXIT", "0")))
"""


@dataclass
class Recorder:
    """Stand-ins for docker and podman that record how they were called."""

    bindir: Path
    log: Path

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "PATH": f"{self.bindir}:{os.environ['PATH']}",
            "DOCKER_RECORD": str(self.log),
            **extra,
        }

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def calls(self) -> list[list[str]]:
        return [record["argv"] for record in self.records()]

    @property
    def invoked(self) -> bool:
        return self.log.exists()


def write_recorder(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(RECORDER.format(python=sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path
