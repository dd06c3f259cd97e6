"""Hosts refuse what an attacker serves: each TUF attack, through a tampering proxy or
by editing the server's database, with the exit code and the reason asserted."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import httpx

from tests.support.harness import (
    DIGEST_A,
    DIGEST_B,
    ServerProcess,
    TamperingProxy,
    Trustkit,
    edit_json,
    role_of,
)


def _host_via(proxy: TamperingProxy, tmp_path: Path, name: str = "host") -> Trustkit:
    return Trustkit(tmp_path / name / ".trustkit", proxy.url)


def _signed_repository(publisher: Trustkit, gun: str) -> None:
    assert publisher("init", gun).code == 0
    assert publisher("sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "10").code == 0


def test_digest_changed_in_served_targets_is_refused(
    publisher: Trustkit, proxy: TamperingProxy, gun: str, tmp_path: Path
):
    _signed_repository(publisher, gun)

    def repoint(path: str, status: int, body: bytes) -> tuple[int, bytes]:
        if role_of(path) != "targets":
            return status, body
        return status, edit_json(
            body, lambda d: d["signed"]["targets"]["1.0"]["hashes"].update(sha256="b" * 64)
        )

    proxy.rewrite = repoint
    result = _host_via(proxy, tmp_path)("verify", f"{gun}:1.0")

    assert result.code == 1
    assert "does not match what was signed" in result.err or "bad signatures" in result.err
    assert "b" * 64 not in result.out


def test_targets_forged_with_matching_length_and_hash_are_refused_by_signature(
    publisher: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    """An attacker who controls the database rewrites targets and the snapshot entry."""
    _signed_repository(publisher, gun)
    with sqlite3.connect(server.database) as db:
        version, data = db.execute(
            "SELECT version, data FROM metadata WHERE gun=? AND role='targets' "
            "ORDER BY version DESC LIMIT 1",
            (gun,),
        ).fetchone()
        forged = json.loads(data)
        forged["signed"]["targets"]["1.0"]["hashes"]["sha256"] = "e" * 64
        db.execute(
            "UPDATE metadata SET data=? WHERE gun=? AND role='targets' AND version=?",
            (json.dumps(forged, separators=(",", ":")).encode(), gun, version),
        )
    host = Trustkit(tmp_path / "fresh" / ".trustkit", server.url)

    result = host("verify", f"{gun}:1.0")

    assert result.code == 1
    assert "does not match what was signed" in result.err
    assert result.out == ""


def test_rollback_to_an_older_timestamp_is_refused(
    publisher: Trustkit, server: ServerProcess, proxy: TamperingProxy, gun: str, tmp_path: Path
):
    _signed_repository(publisher, gun)
    old_timestamp = httpx.get(server.metadata_url(gun, "1.timestamp.json")).content
    host = _host_via(proxy, tmp_path)
    assert host("verify", f"{gun}:1.0").code == 0  # the host now trusts timestamp v2

    proxy.rewrite = lambda path, status, body: (
        (200, old_timestamp) if path.endswith("/timestamp.json") else (status, body)
    )
    result = host("verify", f"{gun}:1.0")

    assert result.code == 1
    assert "rollback refused" in result.err
    assert "timestamp version 1 must be >= 2" in result.err


def test_rollback_of_snapshot_is_refused(
    publisher: Trustkit, server: ServerProcess, proxy: TamperingProxy, gun: str, tmp_path: Path
):
    _signed_repository(publisher, gun)
    host = _host_via(proxy, tmp_path)
    assert host("verify", f"{gun}:1.0").code == 0
    publisher("sign", f"{gun}:2.0", "--digest", DIGEST_B, "--size", "10")
    old_snapshot = httpx.get(server.metadata_url(gun, "2.snapshot.json")).content

    proxy.rewrite = lambda path, status, body: (
        (200, old_snapshot) if role_of(path) == "snapshot" else (status, body)
    )
    result = host("verify", f"{gun}:2.0")

    assert result.code == 1
    assert "does not match what was signed" in result.err  # timestamp pins the snapshot hash


def test_rollback_of_targets_is_refused(
    publisher: Trustkit, server: ServerProcess, proxy: TamperingProxy, gun: str, tmp_path: Path
):
    _signed_repository(publisher, gun)
    publisher("sign", f"{gun}:2.0", "--digest", DIGEST_B, "--size", "10")
    old_targets = httpx.get(server.metadata_url(gun, "2.targets.json")).content

    proxy.rewrite = lambda path, status, body: (
        (200, old_targets) if role_of(path) == "targets" else (status, body)
    )
    result = _host_via(proxy, tmp_path)("verify", f"{gun}:2.0")

    assert result.code == 1
    assert "does not match what was signed" in result.err or "more metadata" in result.err
    assert DIGEST_B not in result.out


def test_mix_and_match_of_snapshot_and_targets_is_refused(
    publisher: Trustkit, server: ServerProcess, proxy: TamperingProxy, gun: str, tmp_path: Path
):
    """Old snapshot + old targets, both validly signed, under a new timestamp."""
    _signed_repository(publisher, gun)
    publisher("revoke", f"{gun}:1.0")
    old = {
        "snapshot": httpx.get(server.metadata_url(gun, "2.snapshot.json")).content,
        "targets": httpx.get(server.metadata_url(gun, "2.targets.json")).content,
    }

    def mix(path: str, status: int, body: bytes) -> tuple[int, bytes]:
        role = role_of(path)
        return (200, old[role]) if role in old else (status, body)

    proxy.rewrite = mix
    result = _host_via(proxy, tmp_path)("verify", f"{gun}:1.0")

    assert result.code == 1
    assert DIGEST_A not in result.out


def test_endless_data_is_refused(
    publisher: Trustkit, proxy: TamperingProxy, gun: str, tmp_path: Path
):
    _signed_repository(publisher, gun)
    proxy.rewrite = lambda path, status, body: (
        (200, b" " * (20 * 1024 * 1024)) if path.endswith("/timestamp.json") else (status, body)
    )

    result = _host_via(proxy, tmp_path)("verify", f"{gun}:1.0")

    assert result.code == 1
    assert "more metadata" in result.err and "than allowed" in result.err


def test_frozen_expired_timestamp_is_refused(start_server, tmp_path: Path):
    """A mirror keeps serving the same timestamp: once it expires, hosts refuse."""
    own = start_server("--expiry", "timestamp=3s")
    gun = "registry.test/frozen"
    publisher = Trustkit(
        tmp_path / "pub" / ".trustkit",
        own.url,
        {"TRUSTKIT_ROOT_PASSPHRASE": "r", "TRUSTKIT_TARGETS_PASSPHRASE": "t"},
    )
    _signed_repository(publisher, gun)
    frozen = httpx.get(own.metadata_url(gun, "timestamp.json")).content
    proxy = TamperingProxy(own.url).start()
    try:
        proxy.rewrite = lambda path, status, body: (
            (200, frozen) if path.endswith("/timestamp.json") else (status, body)
        )
        expires = json.loads(frozen)["signed"]["expires"]
        time.sleep(4)
        result = _host_via(proxy, tmp_path)("verify", f"{gun}:1.0")
    finally:
        proxy.stop()

    assert result.code == 1
    assert f"metadata for {gun} expired at {expires}" in result.err
    assert "the server is not refreshing it" in result.err


def test_endless_root_on_first_use_is_refused(
    publisher: Trustkit, proxy: TamperingProxy, gun: str, tmp_path: Path
):
    _signed_repository(publisher, gun)
    proxy.rewrite = lambda path, status, body: (
        (200, b" " * (20 * 1024 * 1024)) if path.endswith("/1.root.json") else (status, body)
    )
    host = _host_via(proxy, tmp_path)

    result = host("verify", f"{gun}:1.0")

    assert result.code == 1
    assert "than allowed" in result.err
    assert not (host.home / "tuf").exists() or not any((host.home / "tuf").glob("*/root.json"))
