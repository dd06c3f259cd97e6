"""Migration benchmark: a Notary repository of N tags, made with the real notary CLI on
Debian's notary-server, moved to trustkit with ``trustkit migrate notary``.

    python bench/migrate.py [--tags 5000]

Prints tags per second of the whole ``trustkit migrate notary`` process (read, verify as
Notary does, init, publish), of a re-run (nothing to change), and of a dry run; writes
bench/results/migrate.json. Never run by the tests.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.harness import ServerProcess, publisher_cli  # noqa: E402
from tests.support.notary_server import NotaryCLI, NotaryServer, image_target  # noqa: E402

GUN = "registry.bench/team/app"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch)
        notary = NotaryServer(base / "notary").start()
        server = ServerProcess(base / "trustkit").start()
        try:
            owner = NotaryCLI(notary, base / "owner" / "trust")
            owner.init(GUN)
            started = time.perf_counter()
            with ThreadPoolExecutor(4) as pool:  # staging is one notary process per tag
                list(
                    pool.map(
                        lambda n: owner.add(
                            GUN, f"1.{n}", image_target(f"app 1.{n}"), publish=False
                        ),
                        range(args.tags),
                    )
                )
            owner.publish(GUN)
            built = time.perf_counter() - started
            tk = publisher_cli(base / "publisher" / ".trustkit", server.url)
            source = ["--from", notary.url, "--from-ca", str(notary.ca_path), "--json"]
            runs = {}
            for name, extra in (("migrate", []), ("rerun", []), ("dry_run", ["--dry-run"])):
                start = time.perf_counter()
                result = tk.process("migrate", "notary", GUN, *source, *extra, timeout=900)
                elapsed = time.perf_counter() - start
                if result.code != 0:
                    raise RuntimeError(f"migrate failed: {result.err}")
                data = json.loads(result.out)
                runs[name] = {
                    "seconds": round(elapsed, 2),
                    "tags": len(data["tags"]),
                    "tags_per_second": round(len(data["tags"]) / elapsed, 1),
                    "published_changes": data["published_changes"],
                }
        finally:
            server.stop()
            notary.stop()
    report = {"tags": args.tags, "notary_build_seconds": round(built, 1), "runs": runs}
    print(f"Notary repository of {args.tags} tags built in {built:.1f} s")
    print(f"{'run':<10} {'seconds':>8} {'tags/s':>9} {'published':>10}")
    for name, run in runs.items():
        print(
            f"{name:<10} {run['seconds']:>8} {run['tags_per_second']:>9} "
            f"{run['published_changes']:>10}"
        )
    out = REPO / "bench" / "results" / "migrate.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
