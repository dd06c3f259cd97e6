"""The host agent: what a decision costs through it, side by side in one run.

    python bench/agent.py [--repeat 20] [--repositories 1000] [--memory-only]

1. Warm verify, whole process: ``trustkit resolve`` asking the agent, ``trustkit resolve
   --no-agent`` (verifies in-process) and Notary 0.7's ``notary lookup`` against
   Debian's notary-server, each of a tag already seen once.
2. Docker authorization plugin decisions, straight to the plugin socket as the daemon
   sends them, from 50 concurrent clients: a request that needs no verification
   (``GET /containers/json``) and a container create of a signed image (the daemon's
   image lookup included). p50 and p99.
3. ``docker run --rm IMAGE true`` x N on a real daemon, with and without the plugin.
4. The agent's resident memory holding ``--repositories`` repositories (default 1,000):
   its RSS idle, with one held and with all held. Each is a repository of its own to
   the agent (its own name, trust store and verified state), all served by one fan-out
   server in front of a real trustkit-server that answers every name with one signed
   repository's metadata (TUF metadata names no repository), so that signing 1,000
   repositories does not dominate the run. ``--memory-only`` runs this part alone
   (no root, no dockerd).

Prints a table per part and writes bench/results/agent.json. Needs root (dockerd),
except with ``--memory-only``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.agent_process import AgentProcess  # noqa: E402
from tests.support.docker_daemon import DockerDaemon, docker_client  # noqa: E402
from tests.support.harness import ServerProcess, Trustkit, publisher_cli  # noqa: E402
from tests.support.notary_server import NotaryCLI, NotaryServer, image_target  # noqa: E402
from tests.support.registry import RegistryProcess  # noqa: E402
from trustkit.agent_wire import AgentDecision, AgentRequest, ask  # noqa: E402

PLUGIN_DIR = Path("/etc/docker/plugins")


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, env=env, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed: {done.stderr.decode()[-400:]}")
    return elapsed


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 1)


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("plugin")
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(self.path))


def plugin_latencies(socket_path: Path, body: dict[str, object], count: int) -> list[float]:
    """``count`` AuthZReq round trips from 50 clients, each on its own connection."""
    payload = json.dumps(body).encode()

    def one(_: int) -> float:
        connection = UnixHTTP(socket_path)
        start = time.perf_counter()
        connection.request("POST", "/AuthZPlugin.AuthZReq", payload)
        answer = json.loads(connection.getresponse().read())
        elapsed = time.perf_counter() - start
        connection.close()
        if not answer.get("Allow"):
            raise RuntimeError(f"plugin refused: {answer}")
        return elapsed

    with ThreadPoolExecutor(50) as pool:
        return list(pool.map(one, range(count)))


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return round(statistics.median(ordered) * 1000, 2), round(p99 * 1000, 2)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@contextlib.contextmanager
def fan_out(upstream: str, gun: str) -> Iterator[str]:
    """An HTTP server answering every repository's metadata with ``gun``'s, from
    ``upstream`` (fetched once per file)."""
    cache: dict[str, tuple[int, bytes]] = {}
    lock = threading.Lock()
    path = re.compile(r"^/v2/.+/_trust/tuf/([^/]+)$")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            match = path.match(self.path)
            status, body = 404, b"{}"
            if match:
                name = match.group(1)
                with lock:
                    if name not in cache:
                        url = f"{upstream}/v2/{gun}/_trust/tuf/{name}"
                        with contextlib.suppress(Exception):
                            import httpx

                            answer = httpx.get(url, timeout=30)
                            cache[name] = (answer.status_code, answer.content)
                    status, body = cache.get(name, (502, b"{}"))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def agent_memory(base: Path, server: ServerProcess, held: int) -> dict[str, int]:
    """The agent's RSS idle, with one repository held and with ``held`` held."""
    publisher = publisher_cli(base / "memory-publisher" / ".trustkit", server.url)
    gun = "registry.bench/memory/app"
    for step in (("init", gun), ("sign", f"{gun}:1.0", "--digest", "sha256:" + "a" * 64)):
        done = publisher(*step, *(("--size", "10") if step[0] == "sign" else ()))
        if done.code != 0:
            raise RuntimeError(f"{step[0]} failed: {done.err}")
    with fan_out(server.url, gun) as url:
        agent = AgentProcess(base / "memory-agent", url, ("--freshness", "3600")).start()
        try:
            pid = agent.process.pid  # type: ignore[union-attr]

            def decide(number: int) -> None:
                request = AgentRequest(f"registry.bench/many/app{number}:1.0", url)
                answer = ask(agent.socket, request, timeout=60)
                if not isinstance(answer, AgentDecision):
                    raise RuntimeError(f"the agent refused: {answer}")

            time.sleep(0.5)
            idle = rss_kib(pid)
            decide(0)
            one = rss_kib(pid)
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(decide, range(1, held)))
            decide(held - 1)  # held, from memory: asked again, verified no more
            every = rss_kib(pid)
        finally:
            agent.stop()
    return {"idle": idle, "one repository": one, f"{held} repositories": every}


def print_memory(rss: dict[str, int], held: int) -> None:
    one, every = rss["one repository"], rss[f"{held} repositories"]
    print(f"\nAgent memory (RSS), {held} repositories held")
    print(f"{'held':34} {'MiB':>8}")
    for name, kib in rss.items():
        print(f"{name:34} {kib / 1024:>8.1f}")
    print(f"{'each repository':34} {(every - one) / max(held - 1, 1):>8.1f} KiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--repositories", type=int, default=1000)
    parser.add_argument(
        "--memory-only", action="store_true", help="only part 4 (no root, no dockerd)"
    )
    args = parser.parse_args()
    report: dict[str, object] = {}
    if args.memory_only:
        with tempfile.TemporaryDirectory() as scratch:
            server = ServerProcess(Path(scratch) / "server").start()
            try:
                rss = agent_memory(Path(scratch), server, args.repositories)
            finally:
                server.stop()
        report["agent_rss_kib"] = rss
        print_memory(rss, args.repositories)
        write_report(report, "agent-memory.json")
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch)
        server = ServerProcess(base / "server").start()
        registry = RegistryProcess(base / "registry").start()
        notary = NotaryServer(base / "notary").start()
        daemon = DockerDaemon(base / "dockerd").start()
        agent = AgentProcess(base / "agent", server.url, ("--freshness", "10")).start()
        try:
            publisher = publisher_cli(base / "publisher" / ".trustkit", server.url)
            gun = f"{registry.host}/bench/app"
            daemon.import_busybox(f"{gun}:1.0", "bench")
            digest = daemon.push(f"{gun}:1.0")
            for step in (("init", gun), ("sign", f"{gun}:1.0")):
                if publisher.process(*step).code != 0:
                    raise RuntimeError(f"{step} failed")
            host = Trustkit(base / "host" / ".trustkit", server.url)
            trustkit = [sys.executable, "-m", "trustkit", "resolve", f"{gun}:1.0"]
            via_agent = host.environment(agent.cli_env)
            in_process = host.environment({"TRUSTKIT_AGENT": "off"})
            owner = NotaryCLI(notary, base / "notary-owner" / "trust")
            owner.init("registry.bench/app")
            owner.add("registry.bench/app", "1.0", image_target("app 1.0"))
            lookup = [
                "notary", "-s", notary.url, "--tlscacert", str(notary.ca_path),
                "-d", str(owner.trust_dir), "lookup", "registry.bench/app", "1.0",
            ]  # fmt: skip
            rows = {}
            for name, command, env in (
                ("trustkit resolve via the agent", trustkit, via_agent),
                ("trustkit resolve in-process", trustkit, in_process),
                ("notary lookup", lookup, owner.env()),
            ):
                timed(command, env)  # warm: the tag seen once
                rows[name] = median_ms([timed(command, env) for _ in range(args.repeat)])
            report["warm_verify_ms"] = rows
            notary_ms = rows["notary lookup"]
            print(f"\nWarm verify, whole process, median of {args.repeat}")
            print(f"{'how':34} {'ms':>8} {'vs notary':>10}")
            for name, ms in rows.items():
                print(f"{name:34} {ms:>8} {ms / notary_ms:>9.2f}x")

            # 2. plugin decisions (an agent with the plugin socket, judging this daemon)
            plugin_agent = AgentProcess(
                base / "plugin-agent",
                server.url,
                ("--freshness", "10", "--docker-socket", str(daemon.socket)),
                plugin=True,
            ).start()
            try:
                assert daemon.docker("pull", f"{gun}:1.0").returncode == 0
                listing = {"RequestMethod": "GET", "RequestUri": "/v1.41/containers/json"}
                create = {
                    "RequestMethod": "POST",
                    "RequestUri": "/v1.41/containers/create",
                    "RequestBody": base64.b64encode(
                        json.dumps({"Image": f"{gun}:1.0"}).encode()
                    ).decode(),
                }
                plugin_latencies(plugin_agent.plugin_socket, create, 10)  # warm
                decisions = {
                    "non-image request (GET)": percentiles(
                        plugin_latencies(plugin_agent.plugin_socket, listing, 2000)
                    ),
                    "container create, signed image": percentiles(
                        plugin_latencies(plugin_agent.plugin_socket, create, 1000)
                    ),
                }
                report["plugin_decision_ms"] = decisions
                print("\nAuthorization plugin decisions, 50 concurrent clients")
                print(f"{'request':34} {'p50 ms':>8} {'p99 ms':>8}")
                for name, (p50, p99) in decisions.items():
                    print(f"{name:34} {p50:>8} {p99:>8}")

                # 3. docker run with and without the plugin
                name = f"trustkit-bench-{secrets.token_hex(4)}"
                spec = PLUGIN_DIR / f"{name}.spec"
                PLUGIN_DIR.mkdir(parents=True, exist_ok=True)
                spec.write_text(f"unix://{plugin_agent.plugin_socket}\n")
                guarded = DockerDaemon(base / "guarded", (name,))
                runs = {}
                try:
                    for label, each in (("without the plugin", daemon), ("with the plugin", None)):
                        target = each or guarded.start()
                        target.docker("pull", f"{gun}@{digest}")
                        target.docker("pull", f"{gun}:1.0")
                        command = [
                            docker_client(), "run", "--rm", "--network", "none",
                            f"{gun}:1.0", "true",
                        ]  # fmt: skip
                        env = {"PATH": "/usr/bin:/bin:/usr/local/bin", **target.env}
                        runs[label] = median_ms([timed(command, env) for _ in range(args.repeat)])
                finally:
                    guarded.stop()
                    spec.unlink(missing_ok=True)
                report["docker_run_ms"] = runs
                print(f"\ndocker run --rm IMAGE true, median of {args.repeat}")
                for label, ms in runs.items():
                    print(f"{label:34} {ms:>8} ms")
            finally:
                plugin_agent.stop()

            # 4. memory with many repositories held
            rss = agent_memory(base, server, args.repositories)
            report["agent_rss_kib"] = rss
            print_memory(rss, args.repositories)
        finally:
            agent.stop()
            daemon.stop()
            notary.stop()
            registry.stop()
            server.stop()
    write_report(report, "agent.json")
    return 0


def write_report(report: dict[str, object], name: str) -> None:
    out = REPO / "bench" / "results" / name
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
