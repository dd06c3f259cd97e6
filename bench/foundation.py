"""Foundation benchmark: sign + publish, cold and warm verify, fresh-host bytes.

    python bench/foundation.py [--sizes 10,1000,10000] [--repeat 5]

Every number is a whole `trustkit` process (wall clock, median of --repeat runs)
against a real trustkit-server on 127.0.0.1 with SQLite, as a user would run it.
Prints a table and writes bench/results/foundation.json. Never run by the tests.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from client.changelist import Change, Changelist  # noqa: E402
from client.settings import ClientSettings  # noqa: E402
from tests.support.harness import (  # noqa: E402
    ROOT_PASSPHRASE,
    TARGETS_PASSPHRASE,
    ServerProcess,
    TamperingProxy,
    Trustkit,
)
from trustkit.metadata import image_target  # noqa: E402
from trustkit.names import parse_digest  # noqa: E402


def digest_for(i: int) -> str:
    return "sha256:" + f"{i:064x}"


def timed(tk: Trustkit, *args: str) -> float:
    start = time.perf_counter()
    result = tk.process(*args)
    elapsed = time.perf_counter() - start
    if result.code != 0:
        raise RuntimeError(f"trustkit {' '.join(args)} failed: {result.err}")
    return elapsed * 1000


def fill(publisher: Trustkit, gun: str, tags: int) -> None:
    """Stage tags-1 changes in one changelist and publish them in one go."""
    changelist = Changelist(ClientSettings(home=publisher.home).changelist_path(gun))
    changelist.save(
        [
            Change.add(image_target(f"tag-{i}", parse_digest(digest_for(i)), 1000 + i, None))
            for i in range(1, tags)
        ]
    )
    result = publisher.process("publish", gun, timeout=1800)
    if result.code != 0:
        raise RuntimeError(result.err)


def measure(server: ServerProcess, work: Path, tags: int, repeat: int) -> dict[str, float]:
    gun = f"registry.bench/app-{tags}"
    env = {
        "TRUSTKIT_ROOT_PASSPHRASE": ROOT_PASSPHRASE,
        "TRUSTKIT_TARGETS_PASSPHRASE": TARGETS_PASSPHRASE,
    }
    publisher = Trustkit(work / f"publisher-{tags}", server.url, env)
    if publisher.process("init", gun).code != 0:
        raise RuntimeError("init failed")
    publisher.process("sign", f"{gun}:tag-0", "--digest", digest_for(0), "--size", "1000")
    if tags > 1:
        fill(publisher, gun, tags)

    sign = [
        timed(publisher, "sign", f"{gun}:new-{i}", "--digest", digest_for(10**9 + i), "--size", "7")
        for i in range(repeat)
    ]
    cold, warm = [], []
    for i in range(repeat):
        host = Trustkit(work / f"host-{tags}-{i}", server.url)
        cold.append(timed(host, "verify", f"{gun}:tag-0"))
        warm.append(timed(host, "verify", f"{gun}:tag-0"))

    downloaded = 0
    proxy = TamperingProxy(server.url).start()
    try:

        def count(path: str, status: int, body: bytes) -> tuple[int, bytes]:
            nonlocal downloaded
            downloaded += len(body)
            return status, body

        proxy.rewrite = count
        timed(Trustkit(work / f"counted-{tags}", proxy.url), "verify", f"{gun}:tag-0")
    finally:
        proxy.stop()
    return {
        "tags": tags,
        "sign_publish_ms": statistics.median(sign),
        "cold_verify_ms": statistics.median(cold),
        "warm_verify_ms": statistics.median(warm),
        "fresh_host_bytes": downloaded,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,1000,10000")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]

    work = Path(tempfile.mkdtemp(prefix="trustkit-bench-"))
    server = ServerProcess(work / "server", "--log-level", "warning").start()
    try:
        rows = [measure(server, work, tags, args.repeat) for tags in sizes]
        startup = statistics.median(
            timed(Trustkit(work / "startup", server.url), "--version") for _ in range(args.repeat)
        )
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    print(f"\ntrustkit foundation benchmark (median of {args.repeat}, whole processes)\n")
    print(
        f"{'tags':>8} {'sign+publish ms':>16} {'cold verify ms':>15} {'warm verify ms':>15} "
        f"{'fresh-host bytes':>17}"
    )
    for row in rows:
        print(
            f"{row['tags']:>8} {row['sign_publish_ms']:>16.0f} {row['cold_verify_ms']:>15.0f} "
            f"{row['warm_verify_ms']:>15.0f} {row['fresh_host_bytes']:>17,}"
        )
    print(f"\ntrustkit --version: {startup:.0f} ms")
    print(
        "fresh-host bytes: every response body a new host downloads for one verify, "
        "counted by a proxy"
    )

    results = REPO / "bench" / "results"
    results.mkdir(exist_ok=True)
    document = {"repeat": args.repeat, "rows": rows, "startup_ms": startup}
    (results / "foundation.json").write_text(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
