"""Images benchmark: signing straight from a registry, and the Docker gate on a host.

    python bench/images.py [--repeat 10]

Every number is a whole `trustkit` process (wall clock, median of --repeat runs) against
a real trustkit-server (SQLite) and a real docker-registry, both on 127.0.0.1. Prints a
table and writes bench/results/images.json. Never run by the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scripts.oci_layout import build_image  # noqa: E402
from tests.support.harness import ROOT_PASSPHRASE, TARGETS_PASSPHRASE, ServerProcess, Trustkit  # noqa: E402
from tests.support.registry import RegistryProcess, push  # noqa: E402


def timed(tk: Trustkit, *args: str, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    result = tk.process(*args, env=env)
    elapsed = time.perf_counter() - start
    if result.code != 0:
        raise RuntimeError(f"trustkit {' '.join(args)} failed: {result.err}")
    return elapsed * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    repeat = args.repeat

    work = Path(tempfile.mkdtemp(prefix="trustkit-bench-images-"))
    server = ServerProcess(work / "server", "--log-level", "warning").start()
    registry = RegistryProcess(work / "registry").start()
    try:
        gun = f"{registry.host}/bench/app"
        push(build_image(work / "oci", "1.0", b"benchmark image"), registry, "bench/app")
        env = {
            "TRUSTKIT_ROOT_PASSPHRASE": ROOT_PASSPHRASE,
            "TRUSTKIT_TARGETS_PASSPHRASE": TARGETS_PASSPHRASE,
        }
        publisher = Trustkit(work / "publisher", server.url, env)
        timed(publisher, "init", gun)
        sign_registry = [timed(publisher, "sign", f"{gun}:1.0") for _ in range(repeat)]
        sign_digest = [
            timed(publisher, "sign", f"{gun}:1.0", "--digest", "sha256:" + "a" * 64, "--size", "9")
            for _ in range(repeat)
        ]
        timed(publisher, "sign", f"{gun}:1.0")

        host = Trustkit(work / "host", server.url)
        timed(host, "resolve", f"{gun}:1.0")  # first use: trust the root, fill the cache
        resolve = [timed(host, "resolve", f"{gun}:1.0") for _ in range(repeat)]
        verify = [timed(host, "verify", f"{gun}:1.0") for _ in range(repeat)]
        offline = [timed(host, "verify", "--offline", f"{gun}:1.0") for _ in range(repeat)]
        gate_env = {"TRUSTKIT_DOCKER": "true", "PATH": os.environ["PATH"]}
        gate = [timed(host, "run", "--rm", f"{gun}:1.0", env=gate_env) for _ in range(repeat)]
    finally:
        registry.stop()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    rows = {
        "sign IMAGE:TAG (registry round trip, publish)": statistics.median(sign_registry),
        "sign IMAGE:TAG --digest --size (no registry)": statistics.median(sign_digest),
        "resolve, warm": statistics.median(resolve),
        "verify, warm (with registry check)": statistics.median(verify),
        "verify --offline, warm": statistics.median(offline),
        "run gate, warm (docker = true)": statistics.median(gate),
    }
    print(f"\ntrustkit images benchmark (median of {repeat}, whole processes)\n")
    for name, ms in rows.items():
        print(f"  {name:<48} {ms:>7.0f} ms")
    results = REPO / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "images.json").write_text(json.dumps({"repeat": repeat, "ms": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
