"""The host agent: what a decision costs through it, side by side in one run.

    python bench/agent.py [--repeat 20] [--repositories 200]

1. Warm verify, whole process: ``trustkit resolve`` asking the agent, ``trustkit resolve
   --no-agent`` (verifies in-process) and Notary 0.7's ``notary lookup`` against
   Debian's notary-server, each of a tag already seen once.
2. Docker authorization plugin decisions, straight to the plugin socket as the daemon
   sends them, from 50 concurrent clients: a request that needs no verification
   (``GET /containers/json``) and a container create of a signed image (the daemon's
   image lookup included). p50 and p99.
3. ``docker run --rm IMAGE true`` x N on a real daemon, with and without the plugin.
4. The agent's resident memory with ``--repositories`` repositories verified.

Prints a table per part and writes bench/results/agent.json. Needs root (dockerd).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.agent_process import AgentProcess  # noqa: E402
from tests.support.docker_daemon import DockerDaemon, docker_client  # noqa: E402
from tests.support.harness import ServerProcess, Trustkit, publisher_cli  # noqa: E402
from tests.support.notary_server import NotaryCLI, NotaryServer, image_target  # noqa: E402
from tests.support.registry import RegistryProcess  # noqa: E402

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--repositories", type=int, default=200)
    args = parser.parse_args()
    report: dict[str, object] = {}
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

            # 4. memory with many repositories verified
            for number in range(args.repositories):
                many = f"registry.bench/many/app{number}"
                if publisher.process("init", many).code != 0:
                    raise RuntimeError("init failed")
                publisher.process("sign", f"{many}:1.0", "--digest", digest, "--size", "10")
            before = rss_kib(agent.process.pid)  # type: ignore[union-attr]
            for number in range(args.repositories):
                subprocess.run(
                    [*trustkit[:-1], f"registry.bench/many/app{number}:1.0"],
                    env=via_agent,
                    capture_output=True,
                    check=True,
                )
            after = rss_kib(agent.process.pid)  # type: ignore[union-attr]
            report["agent_rss_kib"] = {"one repository": before, "all": after}
            print(
                f"\nAgent memory: {before / 1024:.1f} MiB with 1 repository, "
                f"{after / 1024:.1f} MiB with {args.repositories + 1} "
                f"({(after - before) / max(args.repositories, 1):.0f} KiB each)"
            )
        finally:
            agent.stop()
            daemon.stop()
            notary.stop()
            registry.stop()
            server.stop()
    out = REPO / "bench" / "results" / "agent.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
