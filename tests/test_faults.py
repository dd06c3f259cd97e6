"""Faults: the server killed with SIGKILL in the middle of publishes, again and again,
and twenty publishers racing on one repository.

After every kill the server is started again on the same data dir and port, and the
repository must be whole: the database passes SQLite's integrity check, a fresh host
verifies it (timestamp -> snapshot -> targets), every tag whose ``sign`` succeeded
before the kill is there with its digest, and a publish cut off half-way is either
all there or not at all.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from client.publisher import MAX_ATTEMPTS
from client.server_api import ServerAPI
from tests.support.harness import DIGEST_A, Result, ServerProcess, Trustkit, publisher_cli

KILL_ROUNDS = 30
CONCURRENT_PUBLISHERS = 20


def _digest(number: int) -> str:
    """A digest of its own for each tag, so a tag can only be there with its own."""
    return f"sha256:{number:064x}"


def _sigkill(server: ServerProcess) -> None:
    """SIGKILL the server process this test started (by its pid) and reap it."""
    process = server._process
    assert process is not None and process.poll() is None, "the server is not running"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def _fresh_host(directory: Path, server: ServerProcess) -> Trustkit:
    """A host that has never seen the repository: it trusts its root on first use."""
    return Trustkit(directory / ".trustkit", server.url)


def _signed_tags(host: Trustkit, gun: str) -> dict[str, str]:
    """Every tag the repository signs, with its digest, as a fresh host verifies it."""
    inspected = host("inspect", gun, "--json")
    assert inspected.code == 0, f"a fresh host cannot verify {gun}: {inspected.err}"
    return {tag["tag"]: tag["digest"] for tag in inspected.json["tags"]}


@dataclass
class _Sign:
    tag: str
    digest: str
    started: float
    ended: float = 0.0
    uploaded: float | None = None  # when its upload was sent
    result: Result | None = None

    @property
    def succeeded(self) -> bool:
        return self.result is not None and self.result.code == 0


@dataclass
class _Publisher:
    """Signs one new tag after another until told to stop (one background thread).

    It runs the CLI in this process: ``Trustkit.__call__`` swaps ``sys.stdout``, so
    nothing else may run the CLI in this process while it signs; the test's main
    thread only sleeps and kills meanwhile, and checks after ``join``.
    """

    cli: Trustkit
    gun: str
    signs: list[_Sign] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(60)
        assert not self._thread.is_alive(), "a sign did not return after the server died"

    def _run(self) -> None:
        while not self._stop.is_set():
            number = len(self.signs) + 1
            sign = _Sign(f"t{number}", _digest(number), time.monotonic())
            self.signs.append(sign)
            sign.result = self.cli(
                "sign", f"{self.gun}:{sign.tag}", "--digest", sign.digest, "--size", "100"
            )
            sign.ended = time.monotonic()


def _check_database(database: Path, gun: str) -> None:
    """The file is sound and every publish is whole: versions without gaps, every
    version the change feed says a publish stored is there, and every targets version
    stored came with its change-feed record (the same transaction)."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        stored: dict[str, set[int]] = {}
        for role, version in connection.execute(
            "SELECT role, version FROM metadata WHERE gun = ?", (gun,)
        ):
            stored.setdefault(role, set()).add(version)
        for role in ("root", "targets", "snapshot", "timestamp"):
            versions = stored.get(role, set())
            assert versions == set(range(1, max(versions) + 1)), f"{role} versions: {versions}"
        recorded: dict[str, set[int]] = {}
        for (versions_json,) in connection.execute(
            "SELECT versions FROM changefeed WHERE gun = ? AND action = 'publish'", (gun,)
        ):
            for role, version in json.loads(versions_json).items():
                recorded.setdefault(role, set()).add(version)
        for role, versions in recorded.items():
            assert versions <= stored[role], f"recorded but not stored: {role} {versions}"
        assert stored["targets"] == recorded["targets"], "targets stored without its record"
    finally:
        connection.close()


def test_sigkill_in_the_middle_of_publishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Odd rounds kill at a random moment of the publisher's work (mostly while it
    fetches and verifies); even rounds kill within 8 ms of an upload being sent, while
    the server validates, signs and commits it."""
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    uploading = threading.Event()
    upload = ServerAPI.upload

    def upload_and_tell(self: ServerAPI, gun: str, roles: Any) -> dict[str, Any]:
        if publisher.signs:
            publisher.signs[-1].uploaded = time.monotonic()
        uploading.set()
        return upload(self, gun, roles)

    monkeypatch.setattr(ServerAPI, "upload", upload_and_tell)
    server = ServerProcess(tmp_path / "server" / "data").start()
    port = server.port
    gun = "registry.test/faults/sigkill"
    publisher = _Publisher(publisher_cli(tmp_path / "publisher" / ".trustkit", server.url), gun)
    assert publisher.cli("init", gun).code == 0
    first = publisher.cli("sign", f"{gun}:t0", "--digest", DIGEST_A, "--size", "100")
    assert first.code == 0, first.err
    expected = {"t0": DIGEST_A}  # every tag whose sign succeeded
    cut_off_total = cut_off_uploading = landed_anyway = 0
    try:
        for round_ in range(1, KILL_ROUNDS + 1):
            begun_before = len(publisher.signs)
            uploading.clear()
            publisher.start()
            if round_ % 2 == 0:
                assert uploading.wait(30), "the publisher sent no upload"
                time.sleep(rng.uniform(0, 0.008))  # an upload takes about 5 ms here
            else:
                time.sleep(rng.uniform(0.02, 0.5))
            killed_at = time.monotonic()
            _sigkill(server)
            publisher.stop()

            server.start()  # the same data dir, port and admin token
            assert server.port == port
            context = f"round {round_} (seed {seed}), server log {server.log_path}"
            _check_database(server.database, gun)
            host = _fresh_host(tmp_path / f"host{round_}", server)
            tags = _signed_tags(host, gun)
            verified = host("verify", f"{gun}:t0", "--offline")
            assert verified.code == 0, f"{context}: {verified.err}"
            assert verified.out.strip() == DIGEST_A

            for sign in publisher.signs:
                if sign.succeeded:
                    expected[sign.tag] = sign.digest
            missing = {t: d for t, d in expected.items() if tags.get(t) != d}
            assert not missing, f"{context}: signed tags lost or changed: {missing}"
            tried = {sign.tag: sign for sign in publisher.signs}
            for tag, digest in tags.items():
                assert tag == "t0" or tag in tried, f"{context}: unknown tag {tag}"
                assert tag == "t0" or digest == tried[tag].digest, f"{context}: {tag}"
            for sign in publisher.signs:
                if sign.started > killed_at:  # began when the server was already dead
                    assert sign.tag not in tags, f"{context}: {sign.tag} began after the kill"
            this_round = publisher.signs[begun_before:]
            cut_off = [s for s in this_round if not s.succeeded and s.started < killed_at]
            assert len(cut_off) <= 1, f"{context}: more than one sign in flight at the kill"
            sent = [s for s in this_round if s.uploaded is not None and s.uploaded < killed_at]
            for sign in this_round:
                assert sign in sent or sign.tag not in tags, f"{context}: {sign.tag} not sent"
            cut_off_total += len(cut_off)
            cut_off_uploading += sum(1 for s in cut_off if s in sent)
            landed_anyway += sum(1 for s in cut_off if s.tag in tags)
            for sign in cut_off:  # ended with "cannot reach the server", not anything else
                assert sign.result is not None and sign.result.code == 3, sign.result

        # The publisher is not wedged: it signs again, and a fresh host sees everything.
        last = publisher.cli("sign", f"{gun}:final", "--digest", DIGEST_A, "--size", "100")
        assert last.code == 0, last.err
        tags = _signed_tags(_fresh_host(tmp_path / "host-final", server), gun)
        assert {t: tags.get(t) for t in expected} == expected
        assert tags["final"] == DIGEST_A
    finally:
        server.stop()
    succeeded = sum(1 for sign in publisher.signs if sign.succeeded)
    print(
        f"\nsigkill: {KILL_ROUNDS} kills (seed {seed}); {len(publisher.signs)} signs begun, "
        f"{succeeded} succeeded; {cut_off_total} cut off by a kill, {cut_off_uploading} of "
        f"them with their upload sent to the live server: {landed_anyway} committed before "
        f"the kill (answer lost), {cut_off_uploading - landed_anyway} left nothing behind"
    )


def _conflicts(server: ServerProcess) -> int:
    """How many uploads the server has refused with 409 version_conflict so far."""
    text = httpx.get(f"{server.url}/_trustkit/metrics", timeout=30).text
    match = re.search(r'^trustkit_refusals_total\{error="version_conflict"\} (\d+)', text, re.M)
    return int(match.group(1)) if match else 0


def test_twenty_publishers_at_once_on_one_repository(tmp_path: Path, server: ServerProcess) -> None:
    gun = "registry.test/faults/twenty-publishers"
    first = publisher_cli(tmp_path / "publisher" / ".trustkit", server.url)
    assert first("init", gun).code == 0
    signed = first("sign", f"{gun}:base", "--digest", DIGEST_A, "--size", "100")
    assert signed.code == 0, signed.err
    # Every publisher holds the targets key: the keystore copied after init.
    publishers = []
    for number in range(CONCURRENT_PUBLISHERS):
        home = tmp_path / f"publisher{number}" / ".trustkit"
        shutil.copytree(first.home, home)
        publishers.append(publisher_cli(home, server.url))
    conflicts_before = _conflicts(server)

    start = threading.Barrier(CONCURRENT_PUBLISHERS)
    results: dict[int, Result] = {}

    def sign(number: int) -> None:
        start.wait()
        results[number] = publishers[number].process(
            "sign",
            f"{gun}:p{number}",
            "--digest",
            _digest(number + 1),
            "--size",
            "100",
            "--json",
        )

    threads = [threading.Thread(target=sign, args=(n,)) for n in range(CONCURRENT_PUBLISHERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)

    assert len(results) == CONCURRENT_PUBLISHERS
    failed = {n: r.err.strip() for n, r in results.items() if r.code != 0}
    succeeded = {n: r.json for n, r in results.items() if r.code == 0}
    conflicts = _conflicts(server) - conflicts_before
    attempts = [outcome["attempts"] for outcome in succeeded.values()]
    print(
        f"\n{CONCURRENT_PUBLISHERS} publishers: {len(succeeded)} succeeded, {len(failed)} "
        f"failed; the server refused {conflicts} uploads with 409; attempts of those that "
        f"succeeded: {sorted(attempts)} ({sum(attempts) - len(attempts)} retries)"
    )
    # Whatever happened, the repository holds exactly the tags whose sign succeeded.
    tags = _signed_tags(_fresh_host(tmp_path / "host", server), gun)
    assert tags == {"base": DIGEST_A, **{f"p{n}": _digest(n + 1) for n in succeeded}}
    versions = sorted(outcome["targets_version"] for outcome in succeeded.values())
    assert versions == list(range(3, 3 + len(succeeded)))  # one publish each, no gaps
    # Every retry follows a 409, and one that gave up met a 409 on each of its attempts.
    assert conflicts == sum(attempts) - len(attempts) + MAX_ATTEMPTS * len(failed)
    assert not failed, (
        f"{len(failed)} of {CONCURRENT_PUBLISHERS} publishers gave up after {MAX_ATTEMPTS} "
        f"attempts: {failed}"
    )
