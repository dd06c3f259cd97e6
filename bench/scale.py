"""Scale benchmark, side by side with Notary 0.7 on the same machine in the same run.

    python bench/scale.py [--sizes 100,1000,5000] [--repeat 5]

For each repository size: the whole-process time to sign and publish one more tag
(trustkit: ``trustkit sign``; Notary: ``notary addhash -p``), and the metadata bytes a
fresh host downloads to look one tag up (trustkit: what ``trustkit verify`` fetched;
Notary: root, timestamp, snapshot and targets as served). Also ``trustkit --version``.
Prints a table and writes bench/results/scale.json. Never run by the tests.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from client.changelist import Change  # noqa: E402
from tests.harness import ServerProcess, Trustkit, publisher_cli  # noqa: E402
from tests.notary_server import NotaryCLI, NotaryServer, image_target  # noqa: E402
from trustkit.metadata import image_target as trustkit_target  # noqa: E402
from trustkit.names import parse_digest  # noqa: E402


def _timed(run: Callable[..., object], *args: object) -> float:
    start = time.perf_counter()
    run(*args)
    return (time.perf_counter() - start) * 1000


def _digest(label: str) -> str:
    return f"sha256:{image_target(label).digest}"


def _trustkit_repository(tk: Trustkit, gun: str, tags: int) -> None:
    """init, then every tag in one publish (how a repository grows does not matter)."""
    assert tk("init", gun).code == 0
    from client.changelist import Changelist

    changes = [
        Change.add(
            trustkit_target(
                f"1.{n}", parse_digest(f"sha256:{image_target(str(n)).digest}"), 100, None
            )
        )
        for n in range(tags)
    ]
    path = tk.home / "changelists"
    path.mkdir(parents=True, exist_ok=True)
    from urllib.parse import quote

    Changelist(path / f"{quote(gun, safe='')}.json").save(changes)
    result = tk("publish", gun)
    assert result.code == 0, result.err


def _notary_repository(cli: NotaryCLI, gun: str, tags: int) -> None:
    cli.init(gun)
    with ThreadPoolExecutor(4) as pool:
        list(
            pool.map(
                lambda n: cli.add(gun, f"1.{n}", image_target(str(n)), publish=False), range(tags)
            )
        )
    cli.publish(gun)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,5000")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch)
        server = ServerProcess(base / "trustkit").start()
        notary = NotaryServer(base / "notary").start()
        try:
            for size in sizes:
                gun = f"registry.bench/scale/app{size}"
                tk = publisher_cli(base / f"tk{size}" / ".trustkit", server.url)
                _trustkit_repository(tk, gun, size)
                publish = [
                    _timed(
                        tk.process,
                        "sign",
                        f"{gun}:2.{n}",
                        "--digest",
                        _digest(f"x{n}"),
                        "--size",
                        "100",
                    )
                    for n in range(args.repeat)
                ]
                host = Trustkit(base / f"host{size}" / ".trustkit", server.url)
                assert host.process("verify", f"{gun}:1.0", "--offline").code == 0
                trust_dir = host.home / "tuf"
                fresh_bytes = sum(
                    p.stat().st_size
                    for p in trust_dir.rglob("*.json")
                    if p.is_file() and not p.is_symlink()
                )

                cli = NotaryCLI(notary, base / f"notary{size}" / "trust")
                _notary_repository(cli, gun, size)
                notary_publish = [
                    _timed(cli.add, gun, f"2.{n}", image_target(f"x{n}"))
                    for n in range(args.repeat)
                ]
                notary_bytes = sum(
                    len(notary.metadata(gun, role))
                    for role in ("root", "timestamp", "snapshot", "targets")
                )
                rows.append(
                    {
                        "tags": size,
                        "trustkit_publish_ms": round(statistics.median(publish)),
                        "notary_publish_ms": round(statistics.median(notary_publish)),
                        "trustkit_fresh_host_bytes": fresh_bytes,
                        "notary_fresh_host_bytes": notary_bytes,
                    }
                )
            startup = [
                _timed(Trustkit(base / "v" / ".trustkit", server.url).process, "--version")
                for _ in range(args.repeat)
            ]
        finally:
            notary.stop()
            server.stop()
    header = ("tags", "publish tk", "notary", "ratio", "bytes tk", "notary", "ratio")
    print("{:>7} {:>11} {:>8} {:>6} {:>10} {:>10} {:>6}".format(*header))
    for row in rows:
        print(
            f"{row['tags']:>7} {row['trustkit_publish_ms']:>9}ms {row['notary_publish_ms']:>6}ms "
            f"{row['trustkit_publish_ms'] / row['notary_publish_ms']:>6.2f} "
            f"{row['trustkit_fresh_host_bytes']:>10} {row['notary_fresh_host_bytes']:>10} "
            f"{row['trustkit_fresh_host_bytes'] / row['notary_fresh_host_bytes']:>6.2f}"
        )
    print(f"trustkit --version: {statistics.median(startup):.0f} ms (whole process, median)")
    out = REPO / "bench" / "results" / "scale.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps({"rows": rows, "version_ms": round(statistics.median(startup))}, indent=2) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
