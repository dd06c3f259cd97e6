"""A snapshot key held by the publisher instead of the server, and handed back.

With the snapshot key in the publisher's keystore, a thief of the server's online keys
can no longer make a snapshot hosts accept: the server only adds a timestamp. Every
publish then carries a snapshot signed here, and the server checks it names every role
at its new version.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tuf.api.metadata import MetaFile, Snapshot, Targets

from keys.keystore import Keystore
from keys.passphrase import PassphraseSource
from tests.support.harness import (
    DIGEST_A,
    DIGEST_B,
    ServerProcess,
    Trustkit,
    assert_verifies,
)
from tests.support.server_side import post_upload, served_metadata, stolen_online_signers
from trustkit.expiry import utc_now
from trustkit.metadata import image_target, sign_with
from trustkit.names import parse_digest


def _ok(result: Any) -> dict[str, Any]:
    assert result.code == 0, result.err
    data: dict[str, Any] = result.json
    return data


def _sign(tk: Trustkit, gun: str, tag: str, digest: str) -> Any:
    return tk("sign", f"{gun}:{tag}", "--digest", digest, "--size", "100", "--json")


def _snapshot_signers(server: ServerProcess, gun: str) -> tuple[set[str], set[str]]:
    """Key ids root lists for snapshot, and key ids that signed the served snapshot."""
    root = served_metadata(server, gun, "root.json").signed
    snapshot = served_metadata(server, gun, "snapshot.json")
    return set(root.roles["snapshot"].keyids), set(snapshot.signatures)


def _take_over(publisher: Trustkit, host: Trustkit, gun: str) -> str:
    """init, sign 1.0 (the host trusts root v1 from here), move snapshot here."""
    _ok(publisher("init", gun, "--json"))
    _ok(_sign(publisher, gun, "1.0", DIGEST_A))
    assert_verifies(host, gun, "1.0", DIGEST_A)
    data = _ok(publisher("key", "rotate", gun, "snapshot", "--local", "--json"))
    [keyid] = data["new_keys"]
    return keyid


def _local_signer(tk: Trustkit, keyid: str) -> Any:
    keystore = Keystore(tk.home)
    [record] = [r for r in keystore.records() if r.keyid == keyid]
    return keystore.signer(record, PassphraseSource(tk.env))


def test_the_publisher_takes_over_snapshot_and_hosts_keep_verifying(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str
):
    keyid = _take_over(publisher, host, gun)
    assert _snapshot_signers(server, gun) == ({keyid}, {keyid})
    records = [r for r in Keystore(publisher.home).records() if r.keyid == keyid]
    assert [r.role for r in records] == ["snapshot"]

    before = served_metadata(server, gun, "snapshot.json").signed.version
    _ok(_sign(publisher, gun, "2.0", DIGEST_B))
    snapshot = served_metadata(server, gun, "snapshot.json")
    assert snapshot.signed.version == before + 1
    assert set(snapshot.signatures) == {keyid}
    targets_version = served_metadata(server, gun, "targets.json").signed.version
    assert snapshot.signed.meta["targets.json"].version == targets_version
    # The host that trusted root v1 follows the new root and the publisher's snapshots.
    assert_verifies(host, gun, "2.0", DIGEST_B)
    assert_verifies(host, gun, "1.0", DIGEST_A)


def test_with_the_snapshot_key_here_a_thief_of_the_server_keys_cannot_make_a_snapshot(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, proxy: Any
):
    _take_over(publisher, host, gun)
    stolen = stolen_online_signers(server, gun)["snapshot"]
    snapshot: Snapshot = served_metadata(server, gun, "snapshot.json").signed
    snapshot.version += 1
    forged = sign_with(snapshot, [stolen])
    answer = post_upload(server, gun, snapshot=forged)
    assert answer.status_code == 400
    assert answer.json()["error"] == "threshold_not_met"
    assert "snapshot is signed by 0 of the 1 snapshot keys" in answer.json()["detail"]
    assert_verifies(host, gun, "1.0", DIGEST_A)


def test_an_upload_without_the_snapshot_or_with_a_lying_one_is_refused(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    keyid = _take_over(publisher, host, gun)
    # A second release machine with the targets key but not the snapshot key.
    other_home = tmp_path / "other" / ".trustkit"
    shutil.copytree(publisher.home, other_home)
    for path in (other_home / "private").glob(f"{keyid}.*"):
        path.unlink()
    other = Trustkit(other_home, publisher.server_url, publisher.env)
    refused = _sign(other, gun, "2.0", DIGEST_B)
    assert refused.code == 1, refused.err
    assert "the publisher holds the snapshot key" in refused.err

    # A snapshot that names targets at the wrong version.
    targets: Targets = served_metadata(server, gun, "targets.json").signed
    digest = parse_digest(DIGEST_B)
    targets.targets["2.0"] = image_target("2.0", digest, 100, None)
    targets.version += 1
    keystore = Keystore(publisher.home)
    [targets_record] = keystore.find(gun, "targets")
    targets_bytes = sign_with(targets, [_local_signer(publisher, targets_record.keyid)])
    snapshot: Snapshot = served_metadata(server, gun, "snapshot.json").signed
    snapshot.version += 1
    snapshot.meta["targets.json"] = MetaFile(targets.version - 1)
    lying = sign_with(snapshot, [_local_signer(publisher, keyid)])
    answer = post_upload(server, gun, targets=targets_bytes, snapshot=lying)
    assert answer.status_code == 400
    assert answer.json()["error"] == "snapshot_mismatch"
    host_result = host("verify", f"{gun}:2.0", "--offline")
    assert host_result.code == 1
    assert f"no signed tag 2.0 in {gun}" in host_result.err


def test_snapshot_signing_goes_back_to_the_server(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str
):
    local = _take_over(publisher, host, gun)
    old_signer = _local_signer(publisher, local)
    data = _ok(publisher("key", "rotate", gun, "snapshot", "--server-managed", "--json"))
    [server_key] = data["new_keys"]
    assert server_key != local
    assert _snapshot_signers(server, gun) == ({server_key}, {server_key})
    assert not [r for r in Keystore(publisher.home).records() if r.keyid == local]

    _ok(_sign(publisher, gun, "2.0", DIGEST_B))
    assert _snapshot_signers(server, gun) == ({server_key}, {server_key})
    assert_verifies(host, gun, "2.0", DIGEST_B)
    # The key that used to sign snapshot here counts for nothing now.
    snapshot: Snapshot = served_metadata(server, gun, "snapshot.json").signed
    snapshot.version += 1
    answer = post_upload(server, gun, snapshot=sign_with(snapshot, [old_signer]))
    assert answer.status_code == 400
    assert answer.json()["error"] == "server_signed_role"


def test_rotating_a_snapshot_key_held_here_makes_another_one_here(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str
):
    first = _take_over(publisher, host, gun)
    data = _ok(publisher("key", "rotate", gun, "snapshot", "--json"))
    [second] = data["new_keys"]
    assert second != first
    assert _snapshot_signers(server, gun) == ({second}, {second})
    held = {r.keyid for r in Keystore(publisher.home).records() if r.role == "snapshot"}
    assert held == {second}
    assert_verifies(host, gun, "1.0", DIGEST_A)


def test_refresh_re_signs_a_snapshot_held_here_before_it_expires(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str
):
    _ok(publisher("init", gun, "--json"))
    _ok(_sign(publisher, gun, "1.0", DIGEST_A))
    _ok(
        publisher("key", "rotate", gun, "snapshot", "--local", "--expiry", "snapshot=20d", "--json")
    )
    before: Snapshot = served_metadata(server, gun, "snapshot.json").signed
    assert (before.expires - utc_now()).days < 21

    unchanged = _ok(publisher("refresh", gun, "--within", "10d", "--json"))
    assert unchanged["renewed"] == {}
    renewed = _ok(publisher("refresh", gun, "--within", "30d", "--json"))
    assert renewed["renewed"] == {"snapshot": before.version + 1}
    after = served_metadata(server, gun, "snapshot.json").signed
    assert after.version == before.version + 1
    assert (after.expires - utc_now()).days > 365
    assert_verifies(host, gun, "1.0", DIGEST_A)


def test_the_timestamp_key_cannot_leave_the_server(publisher: Trustkit, gun: str):
    _ok(publisher("init", gun, "--json"))
    result = publisher("key", "rotate", gun, "timestamp", "--local")
    assert result.code == 2
    assert "the timestamp key is always the server's" in result.err
    unrelated = publisher("key", "rotate", gun, "targets", "--server-managed")
    assert unrelated.code == 2
    assert "only the snapshot key can move" in unrelated.err
