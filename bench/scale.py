"""Scale benchmark: trustkit against Notary 0.7, side by side on one machine in one run.

    python bench/scale.py                  # the full run: 100 to 1,000,000 tags (~10 min)
    python bench/scale.py --quick          # 100 and 5,000 tags, short load runs (< 2 min)
    python bench/scale.py --sizes 100,10000 --bins 0,auto,256 --repeat 3

Every time is a whole process, as a user runs it (median of --repeat, fewer when one
measurement would take longer than --measure-budget seconds):

1. sign + publish one tag into a repository of N tags: ``trustkit sign`` against
   ``notary addhash -p``, per hash-bin layout (``--bins``: 0 is one flat targets file,
   ``init`` without ``--bins`` and ``TRUSTKIT_AUTO_BINS=off``; auto is the count trustkit
   chooses for N tags; or a number);
2. ``trustkit verify --offline`` cold (a new host) and warm (again) against ``notary
   lookup``, and the bytes a new host downloads, counted by a proxy: response bodies as
   received on the wire (compressed, if the server compressed them) and decoded;
3. GET timestamp.json throughput under wrk (trustkit-server with 1 and 2 workers, and
   notary-server) and publishes per second with concurrent publishers (whole sign
   processes, to repositories of their own and to one repository; and uploads signed in
   advance, the server's own rate);
4. ``trustkit --version`` start-up.

Repositories are built fast: every tag staged in one changelist and published once (for
Notary: its changelist files written directly, then one ``notary publish``). Sizes
whose build would take longer than the budget, judged by the rate measured at the
previous size, are reported "not run" with that estimate. Prints one table (trustkit,
Notary, ratio, the tracker's target) and writes bench/results/scale.json. Needs wrk for
the GET throughput rows (apt-get install wrk). Never run by the tests.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from tuf.api.metadata import Metadata, Targets

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import tests.support.notary_server as notary_harness  # noqa: E402
from client.changelist import Change, Changelist  # noqa: E402
from client.settings import ClientSettings  # noqa: E402
from keys.keystore import Keystore  # noqa: E402
from keys.passphrase import PassphraseSource  # noqa: E402
from tests.support.harness import ServerProcess, Trustkit, publisher_cli  # noqa: E402
from tests.support.notary_server import ImageTarget, NotaryCLI, NotaryServer  # noqa: E402
from trustkit.bins import bin_count_for  # noqa: E402
from trustkit.metadata import image_target, sign_with  # noqa: E402
from trustkit.names import parse_digest  # noqa: E402

RESULTS = REPO / "bench" / "results" / "scale.json"
DEFAULT_SIZES = "100,5000,10000,100000,1000000"
QUICK_SIZES = "100,5000"
MIB = 1024 * 1024
FLAT_BYTES_PER_TAG = 112  # a tag in a targets file, compact JSON
FLAT_LIMIT_BYTES = 20 * MIB  # the server's default --max-role-bytes
# A repository of a million tags moved into bins is one upload of about 130 MB.
SERVER_FLAGS = ("--log-level", "warning", "--max-upload-bytes", str(512 * MIB))
COMMAND_TIMEOUT = 600  # seconds, for any one build step (publish of every tag)
STEP_TIMEOUT = 120  # seconds, for any one measured command
GZIP_ENV = "TRUSTKIT_SERVER_GZIP"  # trustkit-server compresses metadata when "1"

# --------------------------------------------------------------------------- tags


def tag_digest(n: int) -> str:
    """The sha256 (hex) tag number ``n`` is signed with, the same for both systems."""
    return hashlib.sha256(f"bench-tag-{n}".encode()).hexdigest()


def tag_size(n: int) -> int:
    return 1000 + n % 1000


# --------------------------------------------------------------------------- rows


@dataclass
class Row:
    """One line of the table: a measurement of both systems, and its target."""

    group: str
    measurement: str
    unit: str  # ms, bytes, req/s, publishes/s, s
    trustkit: float | None = None
    notary: float | None = None
    trustkit_note: str | None = None  # "not run: …" / why a value is missing
    notary_note: str | None = None
    target: str = ""
    target_kind: str = ""  # below (trustkit < value), ratio_max, ratio_min
    target_value: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.trustkit is None or not self.notary:
            return None
        return self.trustkit / self.notary

    @property
    def met(self) -> bool | None:
        if not self.target_kind or self.trustkit is None:
            return None
        if self.target_kind == "below":
            return self.trustkit < self.target_value
        ratio = self.ratio
        if ratio is None:
            return None
        if self.target_kind == "ratio_max":
            return ratio <= self.target_value
        return ratio >= self.target_value

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio"] = None if self.ratio is None else round(self.ratio, 4)
        data["met"] = self.met
        for key in ("trustkit", "notary"):
            if isinstance(data[key], float):
                data[key] = round(data[key], 3)
        return data


def with_target(row: Row, text: str, kind: str, value: float) -> Row:
    row.target, row.target_kind, row.target_value = text, kind, value
    return row


def sample(run: Callable[[int], float], repeat: int, budget: float) -> list[float]:
    """Up to ``repeat`` results of ``run(i)``; fewer (at least one) once ``budget``
    seconds are spent."""
    results: list[float] = []
    start = time.monotonic()
    for i in range(repeat):
        results.append(run(i))
        if time.monotonic() - start > budget:
            break
    return results


def elapsed_ms(command: Callable[[], object]) -> float:
    start = time.perf_counter()
    command()
    return (time.perf_counter() - start) * 1000


def not_run(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"not run: {text[:300]}"


# --------------------------------------------------------------------------- proxy


class CountingProxy:
    """A plain-HTTP proxy that passes GETs through byte for byte (Content-Encoding too)
    and counts the response bodies a client receives: on the wire and decoded."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.wire = 0
        self.decoded = 0
        self.gzip_estimate = 0  # what the bodies would be gzipped (-6) from 1 KiB up
        self.undecodable: set[str] = set()
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=STEP_TIMEOUT)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                forwarded = {
                    name: value
                    for name, value in self.headers.items()
                    if name.lower()
                    in ("accept", "authorization", "if-none-match", "user-agent", "accept-encoding")
                }
                # Without this httpx would ask for gzip on the client's behalf.
                forwarded.setdefault("Accept-Encoding", "identity")
                with proxy._client.stream(
                    "GET", proxy.upstream + self.path, headers=forwarded
                ) as answer:
                    raw = b"".join(answer.iter_raw())
                    headers = answer.headers
                    status = answer.status_code
                encoding = headers.get("content-encoding", "identity").lower()
                proxy.count(self.path, status, raw, encoding)
                self.send_response(status)
                for name in ("content-type", "content-encoding", "etag", "cache-control", "vary"):
                    if name in headers:
                        self.send_header(name, headers[name])
                for challenge in headers.get_list("www-authenticate"):
                    self.send_header("WWW-Authenticate", challenge)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                with suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(raw)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    def count(self, path: str, status: int, raw: bytes, encoding: str) -> None:
        decoded = _decoded_length(raw, encoding)
        plain = raw if encoding in ("", "identity") else None
        estimate = len(raw)
        if plain is not None and len(plain) >= 1024:
            estimate = len(gzip.compress(plain, compresslevel=6, mtime=0))
        with self._lock:
            self.wire += len(raw)
            self.gzip_estimate += estimate
            if decoded is None:
                self.undecodable.add(encoding)
            else:
                self.decoded += decoded
            self.requests.append(
                {"path": path, "status": status, "wire": len(raw), "encoding": encoding}
            )

    def counted(self) -> dict[str, Any]:
        return {
            "wire": self.wire,
            "decoded": None if self.undecodable else self.decoded,
            "gzip_estimate": self.gzip_estimate,
            "requests": self.requests,
        }

    def __enter__(self) -> CountingProxy:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._client.close()


def _decoded_length(raw: bytes, encoding: str) -> int | None:
    try:
        if encoding in ("", "identity"):
            return len(raw)
        if encoding in ("gzip", "x-gzip"):
            return len(gzip.decompress(raw))
        if encoding == "deflate":
            try:
                return len(zlib.decompress(raw))
            except zlib.error:
                return len(zlib.decompress(raw, -zlib.MAX_WBITS))
    except (OSError, zlib.error):
        return None
    return None


# --------------------------------------------------------------------------- Notary


class PlainNotaryServer(NotaryServer):
    """notary-server as tests/support/notary_server.py runs it (memory store, local signer), on
    plain HTTP as trustkit-server is here, and logging only warnings, as trustkit is."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.url = f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        config = super().config()
        del config["server"]["tls_cert_file"], config["server"]["tls_key_file"]
        config["logging"] = {"level": "warn"}
        return config

    def tls(self) -> Any:
        return False


def notary_via(server: NotaryServer, url: str) -> NotaryServer:
    """The same server as the notary CLI sees it through ``url`` (a proxy)."""
    seen = copy.copy(server)
    seen.url = url
    return seen


def notary_build(cli: NotaryCLI, gun: str, tags: int) -> dict[str, float]:
    """init, then every tag as a change file in the CLI's changelist, then one publish
    (what ``notary addhash`` without -p leaves behind, written directly)."""
    cli.init(gun)
    start = time.perf_counter()
    cli.stage_many(gun, {f"1.{n}": ImageTarget(tag_digest(n), tag_size(n)) for n in range(tags)})
    staged = time.perf_counter()
    cli.publish(gun)
    return {"stage_s": staged - start, "publish_s": time.perf_counter() - staged}


# --------------------------------------------------------------------------- trustkit


def trustkit_build(tk: Trustkit, gun: str, tags: int, bins: int | None) -> dict[str, float]:
    """init (with --bins N when asked), every tag staged in one changelist, one publish."""
    init = tk.process("init", gun, *(["--bins", str(bins)] if bins else []))
    if init.code != 0:
        raise RuntimeError(f"trustkit init failed: {init.err.strip()}")
    start = time.perf_counter()
    Changelist(ClientSettings(home=tk.home).changelist_path(gun)).save(
        [
            Change.add(
                image_target(f"1.{n}", parse_digest(f"sha256:{tag_digest(n)}"), tag_size(n), None)
            )
            for n in range(tags)
        ]
    )
    staged = time.perf_counter()
    published = tk.process("publish", gun, timeout=COMMAND_TIMEOUT)
    if published.code != 0:
        raise RuntimeError(f"trustkit publish of {tags} tags failed: {published.err.strip()}")
    return {"stage_s": staged - start, "publish_s": time.perf_counter() - staged}


def bin_layout(server_url: str, gun: str) -> int:
    """How many hash bins the repository's tags are in (0: one targets file)."""
    base = f"{server_url}/v2/{gun}/_trust/tuf"
    targets = httpx.get(f"{base}/targets.json", timeout=STEP_TIMEOUT).json()["signed"]
    roles = (targets.get("delegations") or {}).get("roles") or []
    if not any(role.get("name") == "bins" for role in roles):
        return 0
    bins = httpx.get(f"{base}/bins.json", timeout=STEP_TIMEOUT).json()["signed"]
    succinct = (bins.get("delegations") or {}).get("succinct_roles")
    return 2 ** int(succinct["bit_length"]) if succinct else 0


def auto_bins(tags: int) -> int:
    """The number of bins trustkit itself chooses for ``tags`` tags."""
    return bin_count_for(tags)


def has_bins_option() -> bool:
    usage = subprocess.run(
        [sys.executable, "-m", "trustkit", "init", "--help"],
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT,
        check=False,
    )
    return "--bins" in usage.stdout


# --------------------------------------------------------------------------- scale


@dataclass
class Scale:
    """Builds and measures repositories of every size on one trustkit-server and one
    notary-server."""

    base: Path
    server: ServerProcess
    notary: NotaryServer
    repeat: int
    measure_budget: float
    build_budget: float
    notary_budget: float
    rows: list[Row] = field(default_factory=list)
    builds: list[dict[str, Any]] = field(default_factory=list)
    _rates: dict[str, float] = field(default_factory=dict)  # seconds per tag, last build

    def too_slow(self, system: str, tags: int, budget: float) -> str | None:
        per_tag = self._rates.get(system)
        if per_tag is None or per_tag * tags <= budget:
            return None
        return (
            f"not run: building {tags:,} tags would take about {per_tag * tags:.0f} s "
            f"(measured {1 / per_tag:,.0f} tags/s at the previous size; budget {budget:.0f} s)"
        )

    def notary_size(self, tags: int) -> dict[str, Any]:
        """Build and measure Notary at ``tags``: values by name, and a note on why the
        rest is missing, if anything failed."""
        skip = self.too_slow("notary", tags, self.notary_budget)
        if skip:
            print(f"  notary {tags:,}: {skip}", flush=True)
            return {"note": skip}
        gun = f"registry.bench/notary/app{tags}"
        cli = NotaryCLI(self.notary, self.base / f"notary-{tags}" / "trust")
        found: dict[str, Any] = {}
        try:
            build = notary_build(cli, gun, tags)
            found["build_s"] = build["stage_s"] + build["publish_s"]
            self._rates["notary"] = found["build_s"] / max(tags, 1)
            self.builds.append({"system": "notary", "tags": tags, **build})
            found["publish_ms"] = sample(
                lambda i: elapsed_ms(
                    lambda: cli.add(gun, f"2.{i}", ImageTarget(tag_digest(10**9 + i), 100))
                ),
                self.repeat,
                self.measure_budget,
            )
            found["cold_ms"], found["warm_ms"] = self._notary_lookups(gun, tags)
            with CountingProxy(self.notary.url) as proxy:
                fresh = NotaryCLI(
                    notary_via(self.notary, proxy.url), self.base / f"nb-{tags}" / "trust"
                )
                assert tag_digest(0) in fresh("lookup", gun, "1.0").stdout
            found.update(proxy.counted())
        except Exception as error:  # the row says why; the run goes on
            found["note"] = not_run(error)
        return found

    def _notary_lookups(self, gun: str, tags: int) -> tuple[list[float], list[float]]:
        cold: list[float] = []
        warm: list[float] = []

        def one(i: int) -> float:
            host = NotaryCLI(self.notary, self.base / f"nh-{tags}-{i}" / "trust")
            cold.append(elapsed_ms(lambda: host("lookup", gun, "1.0")))
            warm.append(elapsed_ms(lambda: host("lookup", gun, "1.0")))
            return cold[-1]

        sample(one, self.repeat, self.measure_budget)
        return cold, warm

    def trustkit_size(self, tags: int, bins: int | None) -> dict[str, Any]:
        """Build and measure trustkit at ``tags`` with ``init --bins`` (None: without):
        values by name, and a note on why the rest is missing, if anything failed."""
        system = "trustkit" if bins is None else "trustkit --bins"
        skip = self.too_slow(system, tags, self.build_budget)
        if skip:
            print(f"  trustkit {tags:,} ({_mode(bins)}): {skip}", flush=True)
            return {"note": skip}
        if bins is None and tags * FLAT_BYTES_PER_TAG > FLAT_LIMIT_BYTES:
            size = tags * FLAT_BYTES_PER_TAG // MIB
            skip = (
                f"not run: a flat targets file of {tags:,} tags (~{size} MiB) is over the "
                "server's role limit (20 MiB) and what hosts download for targets (64 MiB): "
                "that is what bins are for"
            )
            print(f"  trustkit {tags:,} ({_mode(bins)}): {skip}", flush=True)
            return {"note": skip}
        gun = f"registry.bench/trustkit/app{tags}-bins{bins or 0}"
        tk = publisher_cli(self.base / f"tk-{tags}-{bins or 0}" / ".trustkit", self.server.url)
        if bins is None:  # flat: measure one targets file, not the automatic move into bins
            tk.env["TRUSTKIT_AUTO_BINS"] = "off"

        def publish(i: int) -> float:
            args = ("sign", f"{gun}:2.{i}", "--digest", f"sha256:{tag_digest(10**9 + i)}")
            start = time.perf_counter()
            result = tk.process(*args, "--size", "100", timeout=STEP_TIMEOUT)
            if result.code != 0:
                raise RuntimeError(f"trustkit sign failed: {result.err.strip()}")
            return (time.perf_counter() - start) * 1000

        cold: list[float] = []
        warm: list[float] = []

        def verify(i: int) -> float:
            host = Trustkit(self.base / f"th-{tags}-{bins or 0}-{i}" / ".trustkit", self.server.url)
            for times in (cold, warm):
                start = time.perf_counter()
                result = host.process("verify", f"{gun}:1.0", "--offline", timeout=STEP_TIMEOUT)
                if result.code != 0 or tag_digest(0) not in result.out:
                    raise RuntimeError(f"trustkit verify failed: {result.err.strip()}")
                times.append((time.perf_counter() - start) * 1000)
            return cold[-1]

        found: dict[str, Any] = {}
        try:
            build = trustkit_build(tk, gun, tags, bins)
            found["build_s"] = build["stage_s"] + build["publish_s"]
            self._rates[system] = found["build_s"] / max(tags, 1)
            found["layout"] = bin_layout(self.server.url, gun)
            self.builds.append(
                {"system": "trustkit", "tags": tags, "bins": found["layout"], **build}
            )
            found["publish_ms"] = sample(publish, self.repeat, self.measure_budget)
            sample(verify, self.repeat, self.measure_budget)
            found["cold_ms"], found["warm_ms"] = cold, warm
            with CountingProxy(self.server.url) as proxy:
                host = Trustkit(self.base / f"tb-{tags}-{bins or 0}" / ".trustkit", proxy.url)
                result = host.process("verify", f"{gun}:1.0", "--offline", timeout=STEP_TIMEOUT)
                if result.code != 0:
                    raise RuntimeError(f"trustkit verify via the proxy failed: {result.err}")
            found.update(proxy.counted())
        except Exception as error:  # the row says why; the run goes on
            found["note"] = not_run(error)
        return found

    def measure(self, tags: int, modes: Sequence[str], bins_supported: bool) -> None:
        print(f"{tags:,} tags", flush=True)
        notary = self.notary_size(tags)
        for mode in modes:
            bins = None if mode == "0" else auto_bins(tags) if mode == "auto" else int(mode)
            if bins is not None and not bins_supported:
                result = {"note": "not run: this trustkit has no init --bins yet"}
            else:
                result = self.trustkit_size(tags, bins)
            self.add_rows(tags, mode, bins, result, notary)

    def add_rows(
        self,
        tags: int,
        mode: str,
        bins: int | None,
        tk: dict[str, Any],
        notary: dict[str, Any],
    ) -> None:
        layout = _layout_label(mode, bins, tk.get("layout"))
        where = f"{tags:,} tags, {layout}"

        def row(group: str, what: str, unit: str, key: str, summary: Callable[[Any], float]) -> Row:
            made = Row(group, f"{what}, {where}", unit)
            for system, found in (("trustkit", tk), ("notary", notary)):
                if found.get(key) is None:
                    note = found.get("note") or "not measured (no decoder for the encoding)"
                    setattr(made, f"{system}_note", note)
                else:
                    setattr(made, system, summary(found[key]))
            made.detail = {
                "tags": tags,
                "bins_option": mode,
                "bins": tk.get("layout"),
                "trustkit_samples": tk.get(key) if isinstance(tk.get(key), list) else None,
                "notary_samples": notary.get(key) if isinstance(notary.get(key), list) else None,
            }
            return made

        median = statistics.median
        publish = row("publish", "sign+publish 1 tag", "ms", "publish_ms", median)
        wire = row("bytes", "fresh-host bytes on the wire", "bytes", "wire", float)
        for system, found in (("trustkit", tk), ("notary", notary)):
            wire.detail[f"{system}_requests"] = found.get("requests")
            # Bodies of 1 KiB or more that came uncompressed, as gzip -6 would make them.
            wire.detail[f"{system}_if_gzipped"] = found.get("gzip_estimate")
        if tags == 1_000_000:
            with_target(publish, "< 1 s", "below", 1000)
            with_target(wire, "< 100 KB", "below", 100_000)
        elif tags == 5_000:
            with_target(publish, "<= 1/4 of Notary", "ratio_max", 0.25)
            with_target(wire, "<= 1/20 of Notary", "ratio_max", 0.05)
        self.rows += [
            publish,
            row("verify", "verify cold", "ms", "cold_ms", median),
            with_target(
                row("verify", "verify warm", "ms", "warm_ms", median), "< 100 ms", "below", 100
            ),
            wire,
            row("bytes", "fresh-host bytes decoded", "bytes", "decoded", float),
            row("build", "build (one publish of every tag)", "s", "build_s", float),
        ]


def _mode(bins: int | None) -> str:
    return f"--bins {bins}" if bins else "flat"


def _layout_label(mode: str, bins: int | None, layout: int | None) -> str:
    if bins is None:
        return "flat (no bins: TRUSTKIT_AUTO_BINS=off)"
    return f"--bins {bins}" + (" (auto)" if mode == "auto" else "")


# --------------------------------------------------------------------------- throughput


def wrk(url: str, seconds: float) -> dict[str, Any]:
    """``wrk -t2 -c4`` for ``seconds`` against ``url``: requests per second and errors."""
    command = ["wrk", "-t2", "-c4", f"-d{max(1, round(seconds))}s", "--timeout", "10s", url]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr.strip() or done.stdout.strip()}")
    rate = re.search(r"Requests/sec:\s*([0-9.]+)", done.stdout)
    if rate is None:
        raise RuntimeError(f"wrk printed no rate: {done.stdout}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", done.stdout)
    errors = re.search(r"Socket errors:.*", done.stdout)
    latency = re.search(r"Latency\s+(\S+)", done.stdout)
    return {
        "per_second": float(rate.group(1)),
        "mean_latency": latency.group(1) if latency else None,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": errors.group(0) if errors else None,
        "command": " ".join(command),
    }


def publish_rate(
    publishers: Sequence[Callable[[int], bool | None]], seconds: float
) -> dict[str, float | int]:
    """Each publisher publishes again and again until ``seconds`` are up (each publish
    bounded in time; None from a publisher: it has nothing left to publish); publishes
    per second over the time until the last one ended."""
    start = time.monotonic()
    deadline = start + seconds

    def loop(publisher: Callable[[int], bool | None]) -> tuple[int, int, float]:
        done = failed = 0
        while time.monotonic() < deadline:
            published = publisher(done + failed)
            if published is None:
                break
            if published:
                done += 1
            else:
                failed += 1
        return done, failed, time.monotonic()

    with ThreadPoolExecutor(len(publishers)) as pool:
        results = list(pool.map(loop, publishers))
    elapsed = max(end for _, _, end in results) - start
    published = sum(done for done, _, _ in results)
    return {
        "publishes": published,
        "failed": sum(failed for _, failed, _ in results),
        "seconds": round(elapsed, 2),
        "per_second": published / elapsed,
    }


def presigned_uploaders(
    server: ServerProcess, base: Path, count: int, one_repository: bool, *, uploads: int
) -> list[Callable[[int], bool | None]]:
    """``count`` clients, each with a repository of its own and ``uploads`` new versions
    of its targets signed in advance: the timed part is only the server's work (POST,
    validate, sign snapshot and timestamp, commit), not a client's start-up or signing.
    A client that runs out of versions stops early (the rate is over the time taken)."""
    assert not one_repository, "pre-signed versions of one repository would collide"
    clients: list[Callable[[int], bool | None]] = []
    for p in range(count):
        gun = f"registry.bench/throughput/presigned{p}"
        tk = publisher_cli(base / f"uploader{p}" / ".trustkit", server.url)
        if tk.process("init", gun).code != 0:
            raise RuntimeError("trustkit init failed")
        signers = Keystore(tk.home).signers(gun, "targets", PassphraseSource(tk.environment()))
        targets = (
            Metadata[Targets]
            .from_bytes(
                httpx.get(server.metadata_url(gun, "targets.json"), timeout=STEP_TIMEOUT).content
            )
            .signed
        )
        signed = []
        for i in range(uploads):
            targets.version += 1
            digest = parse_digest(f"sha256:{tag_digest(p * 10**6 + i)}")
            targets.targets = {"latest": image_target("latest", digest, 1, None)}
            signed.append(sign_with(targets, signers))
        http = httpx.Client(timeout=STEP_TIMEOUT, headers=server.auth_headers())
        url = server.metadata_url(gun)

        def upload(
            i: int, signed: list[bytes] = signed, http: httpx.Client = http, url: str = url
        ) -> bool | None:
            if i >= len(signed):
                return None
            files = [("files", ("targets.json", signed[i], "application/json"))]
            return http.post(url, files=files).status_code == 200

        clients.append(upload)
    return clients


def trustkit_publishers(
    server: ServerProcess, base: Path, count: int, one_repository: bool
) -> list[Callable[[int], bool | None]]:
    """``count`` pipelines that each sign a new tag per call: to a repository of their
    own, or all to one repository (copies of its keystore)."""
    owner = publisher_cli(base / "owner" / ".trustkit", server.url)
    shared = "registry.bench/throughput/shared"
    if one_repository and owner.process("init", shared).code != 0:
        raise RuntimeError("trustkit init failed")
    publishers: list[Callable[[int], bool | None]] = []
    for p in range(count):
        home = base / f"publisher{p}" / ".trustkit"
        if one_repository:
            shutil.copytree(owner.home, home)
            gun = shared
        else:
            gun = f"registry.bench/throughput/own{p}"
        tk = Trustkit(home, server.url, dict(owner.env))
        if not one_repository and tk.process("init", gun).code != 0:
            raise RuntimeError("trustkit init failed")

        def publish(i: int, tk: Trustkit = tk, gun: str = gun, p: int = p) -> bool:
            digest = f"sha256:{tag_digest(p * 10**6 + i)}"
            args = ("sign", f"{gun}:p{p}-{i}", "--digest", digest, "--size", "1")
            return tk.process(*args, timeout=STEP_TIMEOUT).code == 0

        publishers.append(publish)
    return publishers


def notary_publishers(
    notary: NotaryServer, base: Path, count: int, one_repository: bool
) -> list[Callable[[int], bool | None]]:
    shared = "registry.bench/throughput/shared"
    owner = NotaryCLI(notary, base / "owner" / "trust")
    if one_repository:
        owner.init(shared)
    publishers: list[Callable[[int], bool | None]] = []
    for p in range(count):
        trust = base / f"publisher{p}" / "trust"
        if one_repository:
            shutil.copytree(owner.trust_dir, trust)
        cli = NotaryCLI(notary, trust)
        gun = shared if one_repository else f"registry.bench/throughput/own{p}"
        if not one_repository:
            cli.init(gun)

        def publish(i: int, cli: NotaryCLI = cli, gun: str = gun, p: int = p) -> bool:
            target = ImageTarget(tag_digest(p * 10**6 + i), 1)
            args = ["addhash", gun, f"p{p}-{i}", "1", "--sha256", target.digest, "-p"]
            return cli(*args, check=False).returncode == 0

        publishers.append(publish)
    return publishers


def throughput(
    base: Path, notary: NotaryServer, seconds: float, publishers: int
) -> tuple[list[Row], dict[str, Any]]:
    """GET timestamp.json under wrk and concurrent publishes: trustkit-server with 1 and
    2 workers (one at a time, on fresh data dirs) and notary-server."""
    found: dict[str, Any] = {}
    if shutil.which("wrk") is None:
        print("wrk is not installed: the GET throughput rows are not run (apt-get install wrk)")
    get_gun = "registry.bench/throughput/get"

    def load(system: str, get_url: str, loads: dict[str, tuple[MakePublishers, bool]]) -> None:
        found[f"{system}/get"] = _attempt(lambda: _get_rate(get_url, seconds))
        for key, (make, one) in loads.items():
            found[f"{system}/{key}"] = _attempt(
                partial(_publish_load, make, base / f"{system}-{key}", publishers, one, seconds)
            )

    for workers in (1, 2):
        print(f"throughput: trustkit-server --workers {workers}", flush=True)
        name = f"trustkit-{workers}w"
        server = ServerProcess(base / name, *SERVER_FLAGS, "--workers", str(workers))
        try:
            server.start()
            tk = publisher_cli(base / f"{name}-get" / ".trustkit", server.url)
            digest = f"sha256:{tag_digest(1)}"
            if tk.process("init", get_gun).code != 0 or (
                tk.process("sign", f"{get_gun}:1", "--digest", digest, "--size", "1").code != 0
            ):
                raise RuntimeError("cannot make the repository to read")
            processes = partial(trustkit_publishers, server)
            load(
                name,
                server.metadata_url(get_gun, "timestamp.json"),
                {
                    "publish-distinct": (processes, False),
                    "publish-one": (processes, True),
                    "upload-distinct": (
                        partial(presigned_uploaders, server, uploads=int(seconds * 250) + 100),
                        False,
                    ),
                },
            )
        except Exception as error:  # its rows say why
            for key in LOAD_KEYS:
                found.setdefault(f"{name}/{key}", {"note": not_run(error)})
        finally:
            server.stop()
    print("throughput: notary-server", flush=True)
    try:
        owner = NotaryCLI(notary, base / "notary-get" / "trust")
        owner.init(get_gun)
        owner.add(get_gun, "1", ImageTarget(tag_digest(1), 1))
        processes = partial(notary_publishers, notary)
        load(
            "notary",
            notary.metadata_url(get_gun, "timestamp"),
            {"publish-distinct": (processes, False), "publish-one": (processes, True)},
        )
    except Exception as error:
        for key in LOAD_KEYS[:3]:
            found.setdefault(f"notary/{key}", {"note": not_run(error)})

    rows = []
    for workers in (1, 2):
        plural = "s" if workers > 1 else ""
        mine = f"trustkit-{workers}w"
        get = _pair(
            Row("throughput", f"GET timestamp.json (wrk), {workers} worker{plural}", "req/s"),
            found[f"{mine}/get"],
            found["notary/get"],
        )
        rows.append(with_target(get, ">= notary-server", "ratio_min", 1.0))
        for key, label in (
            ("publish-distinct", "sign processes, own repositories"),
            ("publish-one", "sign processes, one repository"),
            ("upload-distinct", "pre-signed uploads, own repositories"),
        ):
            rows.append(
                _pair(
                    Row(
                        "throughput",
                        f"publishes, {publishers} {label}, {workers} worker{plural}",
                        "publishes/s",
                    ),
                    found[f"{mine}/{key}"],
                    found.get(f"notary/{key}", {"note": None}),
                )
            )
    return rows, found


LOAD_KEYS = ("get", "publish-distinct", "publish-one", "upload-distinct")
MakePublishers = Callable[[Path, int, bool], Sequence[Callable[[int], bool | None]]]


def _publish_load(
    make: MakePublishers, where: Path, count: int, one: bool, seconds: float
) -> dict[str, Any]:
    return publish_rate(make(where, count, one), seconds)


def _get_rate(url: str, seconds: float) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        return {"note": "not run: wrk is not installed (apt-get install wrk)"}
    httpx.get(url, timeout=STEP_TIMEOUT).raise_for_status()
    return wrk(url, seconds)


def _attempt(run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``run()``, or a "not run" note saying why it failed: one failing measurement
    (a trustkit change mid-run, a missing tool) costs its row, not the whole run."""
    try:
        return run()
    except Exception as error:
        return {"note": not_run(error)}


def _pair(row: Row, trustkit: dict[str, Any], notary: dict[str, Any]) -> Row:
    for system, found in (("trustkit", trustkit), ("notary", notary)):
        if "per_second" in found:
            setattr(row, system, float(found["per_second"]))
        else:
            setattr(row, f"{system}_note", found.get("note"))
    row.detail = {"trustkit": trustkit, "notary": notary}
    return row


# --------------------------------------------------------------------------- start-up


def startup(base: Path, server: ServerProcess, notary: NotaryServer, repeat: int) -> Row:
    tk = Trustkit(base / "startup" / ".trustkit", server.url)
    cli = NotaryCLI(notary, base / "startup-notary" / "trust")
    mine = [elapsed_ms(lambda: tk.process("--version")) for _ in range(repeat)]
    theirs = [elapsed_ms(lambda: cli("version")) for _ in range(repeat)]
    row = Row("startup", "trustkit --version (notary version)", "ms")
    row.trustkit, row.notary = statistics.median(mine), statistics.median(theirs)
    row.detail = {"trustkit_samples": mine, "notary_samples": theirs}
    return with_target(row, "< 150 ms", "below", 150)


# --------------------------------------------------------------------------- output


def formatted(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return f"{value:,.0f} ms"
    if unit == "bytes":
        return f"{value / 1000:,.1f} KB"
    if unit == "s":
        return f"{value:,.1f} s"
    return f"{value:,.1f}/s"


def print_table(rows: Sequence[Row], machine: dict[str, Any]) -> None:
    notes: dict[str, int] = {}

    def cell(value: float | None, unit: str, note: str | None) -> str:
        if value is not None or note is None:
            return formatted(value, unit)
        number = notes.setdefault(note, len(notes) + 1)
        return f"[{number}]"

    width = max(len(row.measurement) for row in rows) + 2
    print()
    print(
        f"trustkit vs Notary 0.7 on {machine['cpus']} CPUs ({machine['platform']}, load "
        f"average {machine['load_average'][0]} at the start); 1 KB = 1000 bytes; "
        "ratio = trustkit / Notary"
    )
    header = f"{'measurement':<{width}} {'trustkit':>12} {'Notary':>12} {'ratio':>8}  target"
    print(header)
    print("-" * (len(header) + 24))
    group = None
    for row in rows:
        if group is not None and row.group != group:
            print()
        group = row.group
        ratio = "-" if row.ratio is None else f"{row.ratio:.3g}x"
        verdict = {True: "met", False: "MISSED", None: ""}[row.met] if row.target else ""
        target = f"{row.target} {verdict}".strip()
        print(
            f"{row.measurement:<{width}} {cell(row.trustkit, row.unit, row.trustkit_note):>12} "
            f"{cell(row.notary, row.unit, row.notary_note):>12} {ratio:>8}  {target}"
        )
    if notes:
        print()
        for note, number in notes.items():
            print(f"[{number}] {note}")
    if any("flat" in row.measurement for row in rows):
        print(
            "flat: one targets file, with trustkit's automatic move into bins (past 1,024 "
            "tags) turned off by TRUSTKIT_AUTO_BINS=off"
        )


def machine_info() -> dict[str, Any]:
    def version(*command: str) -> str | None:
        if shutil.which(command[0]) is None:
            return None
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        text = " ".join((done.stdout + done.stderr).split())
        return re.split(r" (?:Copyright|Usage:)", text)[0] or None  # wrk adds its usage

    return {
        "load_average": [round(load, 2) for load in os.getloadavg()],
        "cpus": os.cpu_count(),
        "platform": platform.platform(terse=True),
        "python": platform.python_version(),
        "notary": version(notary_harness.NOTARY_BINARY, "version"),
        "wrk": version("wrk", "--version"),
    }


# --------------------------------------------------------------------------- main


@contextmanager
def started(base: Path) -> Iterator[tuple[ServerProcess, NotaryServer]]:
    server = ServerProcess(base / "trustkit", *SERVER_FLAGS).start()
    notary = PlainNotaryServer(base / "notary")
    try:
        notary.start()
        yield server, notary
    finally:
        notary.stop()
        server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", help=f"numbers of tags (default {DEFAULT_SIZES})")
    parser.add_argument(
        "--bins",
        default="0,auto",
        help="bin layouts to measure: 0 (flat: no --bins, TRUSTKIT_AUTO_BINS=off), auto "
        "(the count trustkit chooses for the number of tags) or a number (default 0,auto)",
    )
    parser.add_argument("--repeat", type=int, help="runs per measurement (default 5)")
    parser.add_argument(
        "--measure-budget",
        type=float,
        default=60,
        help="seconds one measurement may take; fewer runs past it (default 60)",
    )
    parser.add_argument(
        "--build-budget", type=float, default=300, help="seconds to build one trustkit size"
    )
    parser.add_argument(
        "--notary-budget", type=float, default=120, help="seconds to build one Notary size"
    )
    parser.add_argument("--seconds", type=float, help="length of each load run (default 10)")
    parser.add_argument("--publishers", type=int, default=4, help="concurrent publishers (4)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"sizes {QUICK_SIZES}, 3 runs each, 3 s load runs: under 2 minutes",
    )
    parser.add_argument(
        "--gzip",
        choices=["default", "on", "off"],
        default="default",
        help=f"set {GZIP_ENV} for the trustkit servers: on, off, or leave the server's "
        "default (default)",
    )
    parser.add_argument("--no-throughput", action="store_true", help="skip the load runs")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON file ({RESULTS})")
    args = parser.parse_args(argv)
    sizes = [
        int(size)
        for size in (args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES)).split(",")
    ]
    modes = [mode.strip() for mode in args.bins.split(",")]
    for mode in modes:
        if mode not in ("0", "auto") and not mode.isdigit():
            parser.error(f"--bins: '{mode}' is not 0, auto or a number")
    repeat = args.repeat or (3 if args.quick else 5)
    seconds = args.seconds or (3 if args.quick else 10)
    notary_harness.COMMAND_TIMEOUT = COMMAND_TIMEOUT  # one publish of every tag is slow
    if args.gzip != "default":  # the servers started here inherit it
        os.environ[GZIP_ENV] = "1" if args.gzip == "on" else "0"
    if not notary_harness.notary_installed():
        print("Notary 0.7 is not installed: apt-get install notary notary-server", file=sys.stderr)
        return 2
    bins_supported = has_bins_option()
    machine = machine_info()
    started_at = time.monotonic()

    with tempfile.TemporaryDirectory(prefix="trustkit-scale-") as scratch:
        base = Path(scratch)
        with started(base) as (server, notary):
            scale = Scale(
                base,
                server,
                notary,
                repeat,
                args.measure_budget,
                args.build_budget,
                args.notary_budget,
            )
            for tags in sizes:
                scale.measure(tags, modes, bins_supported)
            rows = scale.rows
            found: dict[str, Any] = {}
            if not args.no_throughput:
                load_rows, found = throughput(base / "load", notary, seconds, args.publishers)
                rows += load_rows
            rows.append(startup(base, server, notary, repeat))

    rows.sort(key=lambda row: _GROUPS.index(row.group))
    print_table(rows, machine)
    document = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started_at),
        "machine": machine,
        "settings": {
            "sizes": sizes,
            "bins": modes,
            "init_bins_supported": bins_supported,
            "repeat": repeat,
            "measure_budget_s": args.measure_budget,
            "build_budget_s": args.build_budget,
            "notary_budget_s": args.notary_budget,
            "load_seconds": seconds,
            "publishers": args.publishers,
            "trustkit_server_flags": list(SERVER_FLAGS),
            "trustkit_server_gzip": os.environ.get(GZIP_ENV, "server default"),
            "notary_server": "notary-server 0.7, memory storage, local signer, plain HTTP",
        },
        "rows": [row.to_json() for row in rows],
        "builds": scale.builds,
        "throughput": found,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwrote {args.out} ({document['seconds']} s)")
    return 0


_GROUPS = ["publish", "verify", "bytes", "build", "throughput", "startup"]


if __name__ == "__main__":
    sys.exit(main())
