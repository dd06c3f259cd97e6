"""Rollback: an attacker serves metadata older than what a host already trusts, to bring
back a tag's old, vulnerable image after the publisher moved the tag to a fixed one.

Every file served here carries valid signatures. A mirror can only replay old files;
someone who stole the server's online keys can also sign a new timestamp or snapshot
that pins old ones. Either way the host refuses: versions never go backwards for it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from tuf.api.metadata import Snapshot, Timestamp

from tests.attacks.common import (
    assert_host_refuses,
    fetched,
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
from tests.support.server_side import (
    post_upload,
    served_metadata,
    served_version,
    stolen_online_signers,
)
from trustkit.metadata import meta_for, sign_with


@dataclass
class Versions:
    timestamp: int
    snapshot: int
    targets: int


def _versions(server: ServerProcess, gun: str) -> Versions:
    return Versions(*(served_version(server, gun, r) for r in ("timestamp", "snapshot", "targets")))


def _fixed_after_the_host_saw_the_vulnerable_image(
    publisher: Trustkit, server: ServerProcess, proxy: TamperingProxy, gun: str, tmp_path: Path
) -> tuple[Trustkit, Versions, bytes]:
    """1.0 was DIGEST_A (vulnerable), then DIGEST_B (fixed); the host verified both.
    Returns the host, the versions of the old state and its timestamp's bytes."""
    ok(publisher("init", gun))
    sign(publisher, gun, "1.0", DIGEST_A)
    host = pinned_host(server, gun, tmp_path / "host", proxy.url)
    assert_verifies(host, gun, "1.0", DIGEST_A)
    old, old_timestamp = _versions(server, gun), served_bytes(server, gun, "timestamp.json")
    sign(publisher, gun, "1.0", DIGEST_B)
    assert_verifies(host, gun, "1.0", DIGEST_B)
    return host, old, old_timestamp


@pytest.mark.parametrize("rolled_back", ["timestamp", "snapshot", "targets"])
def test_a_host_refuses_metadata_older_than_it_trusts(
    rolled_back: str,
    publisher: Trustkit,
    server: ServerProcess,
    proxy: TamperingProxy,
    gun: str,
    tmp_path: Path,
):
    host, old, old_timestamp = _fixed_after_the_host_saw_the_vulnerable_image(
        publisher, server, proxy, gun, tmp_path
    )
    new = _versions(server, gun)
    assert (new.timestamp, new.snapshot, new.targets) > (old.timestamp, old.snapshot, old.targets)
    online = stolen_online_signers(server, gun)
    if rolled_back == "timestamp":
        # A mirror replays the old timestamp (whose snapshot and targets it still has).
        files = {"timestamp.json": old_timestamp}
        reason = f"New timestamp version {old.timestamp} must be >= {new.timestamp}"
    elif rolled_back == "snapshot":
        # A new timestamp that pins the old snapshot.
        timestamp: Timestamp = served_metadata(server, gun, "timestamp.json").signed
        timestamp.version += 1
        old_snapshot = served_bytes(server, gun, f"{old.snapshot}.snapshot.json")
        timestamp.snapshot_meta = meta_for(old_snapshot, old.snapshot)
        files = {"timestamp.json": sign_with(timestamp, [online["timestamp"]])}
        reason = f"New snapshot version must be >= {new.snapshot}, got version {old.snapshot}"
    else:
        # A new snapshot (and timestamp) that pins the old targets.
        old_targets = served_bytes(server, gun, f"{old.targets}.targets.json")
        files = online_signed(server, gun, online, {"targets": old_targets})
        snapshot: Snapshot = served_metadata(server, gun, "snapshot.json").signed
        assert snapshot.meta["targets.json"].version == new.targets
        # python-tuf names the served version first, then the trusted one.
        reason = f"Expected targets.json version {old.targets}, got {new.targets}"
    serve(proxy, files)

    assert_host_refuses(host, gun, "1.0", f"rollback refused for {gun}: {reason}")
    assert fetched(proxy, "timestamp.json")

    passthrough(proxy)
    if rolled_back == "targets":
        # The host took the thief's timestamp (one version up) before it refused the
        # snapshot that timestamp pins: it waits until the server's timestamp passes it.
        held = f"New timestamp version {new.timestamp} must be >= {new.timestamp + 1}"
        assert_host_refuses(host, gun, "1.0", f"rollback refused for {gun}: {held}")
        sign(publisher, gun, "1.1", DIGEST_B)
        sign(publisher, gun, "1.2", DIGEST_B)
        assert served_version(server, gun, "timestamp") > new.timestamp + 1
        assert_verifies(host, gun, "1.2", DIGEST_B)
    assert_verifies(host, gun, "1.0", DIGEST_B)


def test_the_server_refuses_an_upload_that_brings_back_older_targets(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str
):
    """The old targets, still validly signed by the targets key, uploaded again."""
    ok(publisher("init", gun))
    sign(publisher, gun, "1.0", DIGEST_A)
    old_version = served_version(server, gun, "targets")
    old_targets = served_bytes(server, gun, f"{old_version}.targets.json")
    sign(publisher, gun, "1.0", DIGEST_B)
    new_version = served_version(server, gun, "targets")

    response = post_upload(server, gun, targets=old_targets)

    assert response.status_code == 409, response.text
    body = response.json()
    assert (body["error"], body["role"]) == ("version_conflict", "targets")
    assert body["detail"].startswith(
        f"targets version {old_version} is not newer than stored version {new_version}"
    )
    assert served_version(server, gun, "targets") == new_version
    assert_verifies(host, gun, "1.0", DIGEST_B)
