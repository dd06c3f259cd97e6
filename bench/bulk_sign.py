"""Bulk signing: N tags signed and published in one command, side by side with Notary.

    python bench/bulk_sign.py [--tags 1000]

trustkit: ``trustkit sign REPO --from tags.txt`` (one process: read the list, open the
targets key, verify, sign, one upload). Notary 0.7 (Debian's notary CLI and
notary-server, both on 127.0.0.1): ``notary addhash`` once per tag without ``-p`` (what a
script has to do: one process per tag), then one ``notary publish``. Also shown:
trustkit the old way, one ``trustkit sign --no-publish`` process per tag plus one
publish, timed on a sample of tags and scaled. Prints tags per second for each and
writes bench/results/bulk_sign.json. Never run by the tests.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.harness import ServerProcess, publisher_cli  # noqa: E402
from tests.support.notary_server import NotaryCLI, NotaryServer, image_target  # noqa: E402

GUN = "registry.bench/team/app"
SAMPLE = 20  # tags timed one process each for the per-tag rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=1000)
    args = parser.parse_args()
    targets = {f"1.{n}": image_target(f"app 1.{n}") for n in range(args.tags)}
    rows: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch)
        server = ServerProcess(base / "trustkit").start()
        notary = NotaryServer(base / "notary").start()
        try:
            tk = publisher_cli(base / "publisher" / ".trustkit", server.url)
            for gun in (GUN, GUN + "-one-by-one"):
                if tk.process("init", gun).code != 0:
                    raise RuntimeError("trustkit init failed")
            listing = base / "tags.txt"
            listing.write_text(
                "".join(f"{tag} sha256:{t.digest} {t.size}\n" for tag, t in targets.items())
            )
            start = time.perf_counter()
            result = tk.process("sign", GUN, "--from", str(listing), timeout=900)
            rows["trustkit sign --from (one command)"] = time.perf_counter() - start
            if result.code != 0:
                raise RuntimeError(result.err)

            sample = dict(list(targets.items())[:SAMPLE])
            start = time.perf_counter()
            for tag, target in sample.items():
                staged = tk.process(
                    "sign", f"{GUN}-one-by-one:{tag}", "--digest", target.reference,
                    "--size", str(target.size), "--no-publish",
                )  # fmt: skip
                if staged.code != 0:
                    raise RuntimeError(staged.err)
            per_tag = (time.perf_counter() - start) / len(sample)
            start = time.perf_counter()
            tk.process("publish", GUN + "-one-by-one", timeout=900)
            rows["trustkit sign --no-publish per tag + publish"] = (
                per_tag * args.tags + time.perf_counter() - start
            )

            owner = NotaryCLI(notary, base / "owner" / "trust")
            owner.init(GUN)
            start = time.perf_counter()
            for tag, target in sample.items():
                owner.add(GUN, tag, target, publish=False)
            per_tag = (time.perf_counter() - start) / len(sample)
            owner.stage_many(GUN, dict(list(targets.items())[SAMPLE:]))
            start = time.perf_counter()
            owner.publish(GUN)
            rows["notary addhash per tag + publish"] = (
                per_tag * args.tags + time.perf_counter() - start
            )
        finally:
            notary.stop()
            server.stop()
    notary_seconds = rows["notary addhash per tag + publish"]
    print(f"{args.tags} tags signed and published")
    print(f"{'how':48} {'seconds':>8} {'tags/s':>8} {'vs notary':>10}")
    for name, seconds in rows.items():
        speed = f"{notary_seconds / seconds:.1f}x"
        print(f"{name:48} {seconds:>8.2f} {args.tags / seconds:>8.0f} {speed:>10}")
    out = REPO / "bench" / "results" / "bulk_sign.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"tags": args.tags, "seconds": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
