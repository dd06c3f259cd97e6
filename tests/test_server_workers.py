"""``trustkit-server --workers N``: several processes serve one port and one SQLite
database; publishes through them verify and none is lost, and stopping the server stops
every worker."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support.harness import ServerProcess, Trustkit, assert_verifies, publisher_cli


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path / "data", "--workers", "2").start()
    yield server
    server.stop()


def _server_pids(data_dir: Path) -> tuple[int, set[int]]:
    """The server's parent process (found by its command line) and its worker processes."""
    parents = [pid for pid, argv in _processes().items() if str(data_dir) in argv]
    assert len(parents) == 1, parents
    parent = parents[0]
    return parent, {pid for pid in _processes() if _parent_of(pid) == parent}


def _processes() -> dict[int, str]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:  # gone, or not ours
                continue
    return {pid: argv.decode(errors="replace") for pid, argv in found.items()}


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[1])  # the field after the state


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def _socket_owners(server_port: int, client_ports: set[int], pids: set[int]) -> set[int]:
    """Which of ``pids`` hold the server side of the connections from ``client_ports``."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
        if (
            state == "01"  # established
            and int(local.split(":")[1], 16) == server_port
            and int(remote.split(":")[1], 16) in client_ports
        ):
            inodes.add(f"socket:[{inode}]")
    owners = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if fd.readlink().name in inodes:
                    owners.add(pid)
            except OSError:
                continue
    return owners


def _answered_by(port: int, workers: set[int]) -> int:
    """The worker that accepts a new connection and answers a request on it."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/_trustkit/health")
        response = connection.getresponse()
        assert response.status == 200
        response.read()
        owners = _socket_owners(port, {connection.sock.getsockname()[1]}, workers)
    finally:
        connection.close()
    assert len(owners) == 1, owners
    return owners.pop()


def test_two_worker_processes_answer_and_stop_with_the_server(two_workers: ServerProcess):
    parent, children = _server_pids(two_workers.data_dir)
    workers = {pid for pid in children if "multiprocessing.spawn" in _processes()[pid]}
    assert len(workers) == 2

    # Whichever worker answers first, pause it: the other one must take the next
    # connection; then the other way round.
    first = _answered_by(two_workers.port, workers)
    (second,) = workers - {first}
    for paused, expected in ((first, second), (second, first)):
        os.kill(paused, signal.SIGSTOP)
        try:
            assert _answered_by(two_workers.port, workers) == expected
        finally:
            os.kill(paused, signal.SIGCONT)

    two_workers.stop()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in workers | {parent})


def test_a_publish_through_two_workers_verifies(
    two_workers: ServerProcess, tmp_path: Path, gun: str
):
    owner = publisher_cli(tmp_path / "owner" / ".trustkit", two_workers.url)
    assert owner("init", gun).code == 0
    signed = owner.process("sign", f"{gun}:1.0", "--digest", "sha256:" + "a" * 64, "--size", "9")
    assert signed.code == 0, signed.err

    for n in range(4):  # new connections: each worker may answer any of these hosts
        host = Trustkit(tmp_path / f"host{n}" / ".trustkit", two_workers.url)
        assert_verifies(host, gun, "1.0", "sha256:" + "a" * 64)


def test_concurrent_publishes_through_two_workers_lose_nothing(
    two_workers: ServerProcess, tmp_path: Path, gun: str
):
    owner = publisher_cli(tmp_path / "owner" / ".trustkit", two_workers.url)
    assert owner("init", gun).code == 0
    homes = []
    for n in range(10):  # ten release pipelines, each with a copy of the targets key
        home = tmp_path / f"pipeline{n}" / ".trustkit"
        shutil.copytree(owner.home, home)
        homes.append(home)

    def sign(n: int) -> int:
        tk = Trustkit(homes[n], two_workers.url, dict(owner.env))
        digest = "sha256:" + f"{n:x}" * 64
        result = tk.process("sign", f"{gun}:1.{n}", "--digest", digest, "--size", "1")
        assert result.code == 0, result.err
        return n

    with ThreadPoolExecutor(10) as pool:
        assert sorted(pool.map(sign, range(10))) == list(range(10))

    host = Trustkit(tmp_path / "host" / ".trustkit", two_workers.url)
    inspected = host("inspect", gun, "--json")
    assert inspected.code == 0, inspected.err
    tags = {t["tag"]: t["digest"] for t in inspected.json["tags"]}
    assert tags == {f"1.{n}": "sha256:" + f"{n:x}" * 64 for n in range(10)}


def test_the_background_renewal_of_both_workers_keeps_a_repository_fresh(tmp_path: Path, gun: str):
    # Timestamps live 6 s: each worker's background task renews them once 3 s are left.
    server = ServerProcess(tmp_path / "data", "--workers", "2", "--expiry", "timestamp=6s")
    server.start()
    try:
        owner = publisher_cli(tmp_path / "owner" / ".trustkit", server.url)
        assert owner("init", gun).code == 0
        signed = owner("sign", f"{gun}:1.0", "--digest", "sha256:" + "b" * 64, "--size", "9")
        assert signed.code == 0, signed.err
        published = httpx.get(server.metadata_url(gun, "timestamp.json"), timeout=10)
        version = json.loads(published.content)["signed"]["version"]

        # Versioned reads never renew anything: only the background tasks make these.
        wanted = server.metadata_url(gun, f"{version + 2}.timestamp.json")
        deadline = time.monotonic() + 60
        while httpx.get(wanted, timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "no renewal in 60 s"
            time.sleep(0.2)

        host = Trustkit(tmp_path / "host" / ".trustkit", server.url)
        assert_verifies(host, gun, "1.0", "sha256:" + "b" * 64)
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert "refresh failed" not in log
    assert "database is locked" not in log


def test_zero_workers_is_a_usage_error(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "server", "--data-dir", str(tmp_path), "--workers", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "'0' is not a positive whole number" in done.stderr
