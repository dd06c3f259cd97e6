"""Fast-forward: someone with the server's online keys serves a timestamp (or a
snapshot) with a huge version. Hosts accept it — it is validly signed — and from then
on refuse everything the real server signs as a rollback: frozen. The owner recovers
by rotating the key: python-tuf stops trusting the fast-forwarded file once the key
that signed it is out of root, and hosts move on to what the server signs."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from tuf.api.metadata import MetaFile, Snapshot, Timestamp

from tests.attacks.common import (
    assert_host_refuses,
    ok,
    online_signed,
    passthrough,
    pinned_host,
    serve,
    served_bytes,
    sign,
)
from tests.support.harness import (
    DIGEST_A,
    DIGEST_B,
    ServerProcess,
    TamperingProxy,
    Trustkit,
    assert_verifies,
)
from tests.support.server_side import served_metadata, served_version, stolen_online_signers
from trustkit.expiry import utc_now
from trustkit.metadata import sign_with

HUGE = 1_000_000_000


def _rotate(publisher: Trustkit, gun: str, role: str, stolen: Any) -> None:
    rotated = ok(publisher("key", "rotate", gun, role, "--json"))
    assert rotated["old_keys"] == [stolen.public_key.keyid]


def _trusted_versions(host: Trustkit, gun: str) -> dict[str, int]:
    status = ok(host("status", gun, "--json"))
    return {role["role"]: role["version"] for role in status["roles"]}


def test_hosts_frozen_by_a_fast_forwarded_timestamp_recover_after_a_timestamp_rotation(
    publisher: Trustkit, server: ServerProcess, proxy: TamperingProxy, gun: str, tmp_path: Path
):
    ok(publisher("init", gun))
    sign(publisher, gun, "1.0", DIGEST_A)
    host = pinned_host(server, gun, tmp_path / "host", proxy.url)
    assert_verifies(host, gun, "1.0", DIGEST_A)
    online = stolen_online_signers(server, gun)
    timestamp: Timestamp = served_metadata(server, gun, "timestamp.json").signed
    timestamp.version = HUGE
    timestamp.expires = utc_now() + timedelta(days=30)
    serve(proxy, {"timestamp.json": sign_with(timestamp, [online["timestamp"]])})
    assert_verifies(host, gun, "1.0", DIGEST_A)  # accepted: it is validly signed
    passthrough(proxy)  # the thief is gone
    sign(publisher, gun, "2.0", DIGEST_B)
    now = served_version(server, gun, "timestamp")

    assert_host_refuses(
        host,
        gun,
        "2.0",
        f"rollback refused for {gun}: New timestamp version {now} must be >= {HUGE}",
    )

    _rotate(publisher, gun, "timestamp", online["timestamp"])
    assert_verifies(host, gun, "2.0", DIGEST_B)
    assert_verifies(host, gun, "1.0", DIGEST_A)
    assert _trusted_versions(host, gun)["timestamp"] == served_version(server, gun, "timestamp")
    assert served_version(server, gun, "timestamp") < HUGE
    # The rotated-out key fast-forwards no more.
    timestamp.version = HUGE + 1
    serve(proxy, {"timestamp.json": sign_with(timestamp, [online["timestamp"]])})
    assert_host_refuses(
        host, gun, "2.0", f"bad signatures on metadata for {gun}: timestamp was signed by 0/1 keys"
    )


def test_hosts_frozen_by_a_fast_forwarded_snapshot_recover_after_both_online_key_rotations(
    publisher: Trustkit, server: ServerProcess, proxy: TamperingProxy, gun: str, tmp_path: Path
):
    """The snapshot names targets at a huge version: a host that took it refuses every
    real snapshot as a rollback of targets. A new timestamp key alone does not free it
    (its snapshot still verifies); a new snapshot key does."""
    ok(publisher("init", gun))
    sign(publisher, gun, "1.0", DIGEST_A)
    host = pinned_host(server, gun, tmp_path / "host", proxy.url)
    assert_verifies(host, gun, "1.0", DIGEST_A)
    online = stolen_online_signers(server, gun)
    snapshot: Snapshot = served_metadata(server, gun, "snapshot.json").signed
    snapshot.meta["targets.json"] = MetaFile(HUGE)
    files = online_signed(
        server, gun, online, {}, snapshot=snapshot, snapshot_version=HUGE, timestamp_version=HUGE
    )
    targets = served_version(server, gun, "targets")
    files[f"{HUGE}.targets.json"] = served_bytes(server, gun, f"{targets}.targets.json")
    serve(proxy, files)
    assert_host_refuses(
        host, gun, "1.0", f"rollback refused for {gun}: Expected targets v{HUGE}, got v{targets}."
    )
    passthrough(proxy)
    sign(publisher, gun, "2.0", DIGEST_B)
    now = served_version(server, gun, "timestamp")
    frozen = f"rollback refused for {gun}: New timestamp version {now} must be >= {HUGE}"
    assert_host_refuses(host, gun, "2.0", frozen)

    _rotate(publisher, gun, "timestamp", online["timestamp"])
    assert_host_refuses(
        host,
        gun,
        "2.0",
        f"rollback refused for {gun}: Expected targets.json version "
        f"{served_version(server, gun, 'targets')}, got {HUGE}",
    )
    _rotate(publisher, gun, "snapshot", online["snapshot"])
    assert_verifies(host, gun, "2.0", DIGEST_B)
    assert_verifies(host, gun, "1.0", DIGEST_A)
    trusted = _trusted_versions(host, gun)
    assert trusted["snapshot"] == served_version(server, gun, "snapshot") < HUGE
    assert trusted["root"] == 3
