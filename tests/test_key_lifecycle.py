"""Key lifecycle, end to end through the CLI and the real server: a publisher rotates
keys, watches expiry and refreshes; hosts keep verifying and refuse what rotated-out
keys sign."""

from __future__ import annotations

import base64
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from securesystemslib.signer import Signer
from tuf.api.metadata import Metadata, Root, Snapshot, Targets, Timestamp

from keys.keystore import Keystore, unseal
from keys.passphrase import PassphraseSource
from tests.support.harness import (
    DIGEST_A,
    DIGEST_B,
    ROOT_PASSPHRASE,
    TARGETS_PASSPHRASE,
    ServerProcess,
    TamperingProxy,
    Trustkit,
    assert_verifies,
    publisher_cli,
    role_of,
    sign_many,
)
from tests.support.server_side import (
    post_upload,
    served_metadata,
    served_version,
    stolen_online_signers,
)
from trustkit.expiry import utc_now
from trustkit.metadata import image_target, meta_for, new_snapshot, new_timestamp, sign_with
from trustkit.names import parse_digest

FORGED = "sha256:" + "f" * 64
ROLES = ["root", "targets", "snapshot", "timestamp"]
RECORD_FIELDS = {"keyid", "repository", "role", "keytype", "kept", "listed"}
STATUS_FIELDS = {"role", "version", "expires", "days_left", "keys", "threshold", "warning"}


# --- helpers ------------------------------------------------------------------------


def _init(publisher: Trustkit, gun: str) -> dict[str, str]:
    """``trustkit init``; returns the root and targets key ids."""
    result = publisher("init", gun, "--json")
    assert result.code == 0, result.err
    return {role: ids[0] for role, ids in result.json["keys"].items()}


def _rotate(publisher: Trustkit, gun: str, role: str, *extra: str) -> dict[str, Any]:
    result = publisher("key", "rotate", gun, role, *extra, "--json")
    assert result.code == 0, result.err
    data: dict[str, Any] = result.json
    return data


def _status(tk: Trustkit, gun: str, *args: str) -> dict[str, Any]:
    result = tk("status", gun, "--json", *args)
    assert result.code == 0, result.err
    data: dict[str, Any] = result.json
    return data


def _status_of(tk: Trustkit, gun: str) -> dict[str, dict[str, Any]]:
    return {role["role"]: role for role in _status(tk, gun)["roles"]}


def _listed_keys(tk: Trustkit, gun: str) -> dict[str, str]:
    """``key list --json`` for one repository: key id -> role."""
    result = tk("key", "list", "--json")
    assert result.code == 0, result.err
    return {k["keyid"]: k["role"] for k in result.json["keys"] if k["repository"] == gun}


def _sign(tk: Trustkit, gun: str, tag: str, digest: str) -> None:
    result = tk("sign", f"{gun}:{tag}", "--digest", digest, "--size", "100")
    assert result.code == 0, result.err


def _keystore_files(tk: Trustkit) -> dict[str, bytes]:
    """Every file of the keystore, byte for byte."""
    return {path.name: path.read_bytes() for path in sorted((tk.home / "private").iterdir())}


def _key_files(tk: Trustkit, keyid: str) -> list[Path]:
    return [tk.home / "private" / f"{keyid}.{ext}" for ext in ("p12", "json")]


def _signer_of(tk: Trustkit, gun: str, role: str) -> Signer:
    """The publisher's private key for ROLE, opened now, kept in memory by the test."""
    keystore = Keystore(tk.home)
    [record] = keystore.find(gun, role)
    return keystore.signer(record, PassphraseSource(tk.env))


def _forged(targets: Targets, version: int, *, new_tag: bool = True) -> Targets:
    """TARGETS with 1.0 pointed at FORGED and, unless told not to, a new tag ``evil``."""
    targets.version = version
    targets.targets["1.0"] = image_target("1.0", parse_digest(FORGED), 10, None)
    if new_tag:
        targets.targets["evil"] = image_target("evil", parse_digest(FORGED), 10, None)
    return targets


# --- rotating the targets key -------------------------------------------------------


def test_rotating_the_targets_key_keeps_every_signed_tag_verifying(
    publisher: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    """The targets key may have leaked: the publisher rotates it. Hosts that trusted the
    old root and hosts that never saw the repository both keep verifying every tag, the
    new root lists only the new key, and the old key is gone from the keystore."""
    keys = _init(publisher, gun)
    sign_many(publisher, gun, ["1.0", "1.1", "2.0"])
    early = Trustkit(tmp_path / "early" / ".trustkit", server.url)
    assert_verifies(early, gun, "1.0", DIGEST_A)  # trusts root v1 on first use

    rotated = _rotate(publisher, gun, "targets")

    new_key = rotated["new_keys"][0]
    assert rotated["role"] == "targets"
    assert rotated["old_keys"] == [keys["targets"]]
    assert new_key != keys["targets"]
    assert rotated["root_version"] == 2
    root: Root = served_metadata(server, gun, "root.json").signed
    assert root.version == 2
    assert root.roles["targets"].keyids == [new_key]
    assert keys["targets"] not in root.keys
    assert root.roles["root"].keyids == [keys["root"]]
    fresh = Trustkit(tmp_path / "fresh" / ".trustkit", server.url)
    for host in (early, fresh):
        for tag in ("1.0", "1.1", "2.0"):
            assert_verifies(host, gun, tag, DIGEST_A)
        inspected = {r["role"]: r for r in host("inspect", gun, "--json").json["roles"]}
        assert inspected["root"]["version"] == 2
        assert inspected["targets"]["signed_by"] == [new_key]
        status = _status_of(host, gun)
        assert status["targets"]["keys"] == [new_key]
        assert status["root"]["keys"] == [keys["root"]]
    assert _listed_keys(publisher, gun) == {keys["root"]: "root", new_key: "targets"}
    assert not any(path.exists() for path in _key_files(publisher, keys["targets"]))
    assert all(path.exists() for path in _key_files(publisher, new_key))
    # Work goes on with the new key.
    signed = publisher("sign", f"{gun}:3.0", "--digest", DIGEST_B, "--size", "10")
    assert signed.code == 0, signed.err
    for host in (early, fresh):
        assert_verifies(host, gun, "3.0", DIGEST_B)


def test_targets_signed_by_the_rotated_out_key_are_refused_by_the_server(
    publisher: Trustkit, server: ServerProcess, gun: str
):
    """Whoever stole the old targets key uploads a new targets version with it."""
    _init(publisher, gun)
    sign_many(publisher, gun, ["1.0"])
    stolen = _signer_of(publisher, gun, "targets")
    _rotate(publisher, gun, "targets")
    version = served_version(server, gun, "targets")
    snapshot_version = served_version(server, gun, "snapshot")
    forged = _forged(served_metadata(server, gun, "targets.json").signed, version + 1)

    response = post_upload(server, gun, targets=sign_with(forged, [stolen]))

    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "threshold_not_met"
    assert body["role"] == "targets"
    assert "signed by 0 of the 1 keys" in body["detail"]
    assert served_version(server, gun, "targets") == version
    assert served_version(server, gun, "snapshot") == snapshot_version
    url = server.metadata_url(gun, f"{version + 1}.targets.json")
    assert httpx.get(url, timeout=30).status_code == 404


@pytest.mark.parametrize(
    "online_keys_stolen",
    [False, True],
    ids=["mirror-swaps-targets", "compromised-server-re-signs-snapshot"],
)
def test_targets_signed_by_the_rotated_out_key_are_refused_by_hosts(
    online_keys_stolen: bool,
    publisher: Trustkit,
    server: ServerProcess,
    proxy: TamperingProxy,
    gun: str,
    tmp_path: Path,
):
    """A host that last saw the repository when the old targets key was still valid is
    served targets signed by that (stolen) key. It refuses them, either way:

    * a mirror that swaps only targets.json is caught by the snapshot, which pins the
      length and sha256 of the targets file it lists (``does not match what was signed``);
    * a compromised server also holds the snapshot and timestamp keys, so it can sign a
      snapshot and timestamp that pin the forged file. Then only the signature check is
      left, and it refuses: the host first walks to root v2, which lists only the new
      targets key (``bad signatures``).
    """
    _init(publisher, gun)
    sign_many(publisher, gun, ["1.0"])
    host = Trustkit(tmp_path / "host" / ".trustkit", proxy.url)
    assert_verifies(host, gun, "1.0", DIGEST_A)  # trusts root v1, where the old key is valid
    stolen = _signer_of(publisher, gun, "targets")
    _rotate(publisher, gun, "targets")
    version = served_version(server, gun, "targets")
    forged: dict[str, bytes] = {}
    if not online_keys_stolen:
        # Same version and same length (only a digest changes): what differs is the hash.
        served = served_metadata(server, gun, "targets.json").signed
        forged["targets"] = sign_with(_forged(served, version, new_tag=False), [stolen])
        expected = "does not match what was signed"
    else:
        online = stolen_online_signers(server, gun)
        forged_targets = _forged(served_metadata(server, gun, "targets.json").signed, version + 1)
        targets_bytes = sign_with(forged_targets, [stolen])
        snapshot_version = served_version(server, gun, "snapshot") + 1
        snapshot: Snapshot = new_snapshot(
            snapshot_version,
            {"targets": meta_for(targets_bytes, version + 1)},
            utc_now() + timedelta(days=30),
        )
        snapshot_bytes = sign_with(snapshot, [online["snapshot"]])
        timestamp: Timestamp = new_timestamp(
            served_version(server, gun, "timestamp") + 1,
            meta_for(snapshot_bytes, snapshot_version),
            utc_now() + timedelta(days=30),
        )
        forged = {
            f"{version + 1}.targets.json": targets_bytes,
            f"{snapshot_version}.snapshot.json": snapshot_bytes,
            "timestamp.json": sign_with(timestamp, [online["timestamp"]]),
        }
        expected = "bad signatures"

    def serve_forged(path: str, status: int, body: bytes) -> tuple[int, bytes]:
        name = path.rsplit("/", 1)[-1]
        if name in forged:
            return 200, forged[name]
        if role_of(path) in forged:
            return 200, forged[str(role_of(path))]
        return status, body

    proxy.rewrite = serve_forged
    result = host("verify", f"{gun}:1.0", "--offline")
    evil = host("verify", f"{gun}:evil", "--offline")

    assert result.code == 1, result.out
    assert expected in result.err
    assert evil.code == 1
    for attempt in (result, evil):
        assert "f" * 64 not in attempt.out + attempt.err
    # The repository itself is untouched: hosts that ask the server verify as before.
    assert_verifies(Trustkit(tmp_path / "fresh" / ".trustkit", server.url), gun, "1.0", DIGEST_A)


# --- rotating the root key ----------------------------------------------------------


def test_rotating_the_root_key_is_followed_by_hosts_that_trusted_root_v1(
    publisher: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    """The root key is replaced. Hosts that trusted root v1 — on first use or pinned
    from a file handed out long ago — walk the chain of roots and keep verifying."""
    keys = _init(publisher, gun)
    sign_many(publisher, gun, ["1.0"])
    early = Trustkit(tmp_path / "early" / ".trustkit", server.url)
    assert_verifies(early, gun, "1.0", DIGEST_A)
    root_v1 = tmp_path / "root-v1.json"
    root_v1.write_bytes(httpx.get(server.metadata_url(gun, "1.root.json"), timeout=30).content)

    rotated = _rotate(publisher, gun, "root")

    new_key = rotated["new_keys"][0]
    assert rotated["old_keys"] == [keys["root"]]
    assert rotated["root_version"] == 2
    served = served_metadata(server, gun, "2.root.json")
    assert served.signed.roles["root"].keyids == [new_key]
    assert set(served.signatures) == {keys["root"], new_key}  # old and new: a chain
    assert_verifies(early, gun, "1.0", DIGEST_A)
    early_root = _status_of(early, gun)["root"]
    assert (early_root["version"], early_root["keys"]) == (2, [new_key])
    pinned = Trustkit(tmp_path / "pinned" / ".trustkit", server.url)
    pin = pinned("trust", "pin", gun, str(root_v1))
    assert pin.code == 0, pin.err
    assert "pinned root v1" in pin.out
    verified = pinned("verify", f"{gun}:1.0", "--offline")
    assert verified.code == 0, verified.err
    assert verified.out.strip() == DIGEST_A
    assert "first use" not in verified.err
    assert _listed_keys(publisher, gun) == {new_key: "root", keys["targets"]: "targets"}
    assert not any(path.exists() for path in _key_files(publisher, keys["root"]))
    # The targets key was not touched: signing goes on.
    assert publisher("sign", f"{gun}:2.0", "--digest", DIGEST_B, "--size", "10").code == 0
    for host in (early, pinned):
        assert_verifies(host, gun, "2.0", DIGEST_B)


def test_root_signed_only_by_the_rotated_out_root_key_is_refused(
    publisher: Trustkit, server: ServerProcess, proxy: TamperingProxy, gun: str, tmp_path: Path
):
    """Whoever stole the old root key signs root v3 that puts it back in charge. The
    server refuses the upload; a host that still trusts root v1 — where that key was
    valid — refuses the same root when a mirror serves it."""
    keys = _init(publisher, gun)
    sign_many(publisher, gun, ["1.0"])
    host = Trustkit(tmp_path / "host" / ".trustkit", proxy.url)
    assert_verifies(host, gun, "1.0", DIGEST_A)  # trusts root v1
    stolen = _signer_of(publisher, gun, "root")
    assert stolen.public_key.keyid == keys["root"]
    new_key = _rotate(publisher, gun, "root")["new_keys"][0]
    usurping: Root = served_metadata(server, gun, "root.json").signed
    usurping.version = 3
    usurping.revoke_key(new_key, "root")
    usurping.add_key(stolen.public_key, "root")
    forged = sign_with(usurping, [stolen])

    response = post_upload(server, gun, root=forged)

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "root_not_chained"
    assert response.json()["role"] == "root"
    assert "previous root keys" in response.json()["detail"]
    assert served_version(server, gun, "root") == 2
    proxy.rewrite = lambda path, status, body: (
        (200, forged) if path.endswith("/3.root.json") else (status, body)
    )
    refused = host("verify", f"{gun}:1.0", "--offline")
    assert refused.code == 1
    assert "bad signatures" in refused.err
    assert refused.out == ""


def test_three_rotations_are_followed_by_a_host_that_saw_none_of_them(
    publisher: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    """Targets, then root, then targets again (the last two to ECDSA keys): a host that
    last verified before all of them follows the whole chain in one go."""
    keys = _init(publisher, gun)
    sign_many(publisher, gun, ["1.0", "2.0"])
    host = Trustkit(tmp_path / "host" / ".trustkit", server.url)
    assert_verifies(host, gun, "2.0", DIGEST_A)

    first = _rotate(publisher, gun, "targets")
    second = _rotate(publisher, gun, "root", "--key-type", "ecdsa")
    third = _rotate(publisher, gun, "targets", "--key-type", "ecdsa")

    assert [first["root_version"], second["root_version"], third["root_version"]] == [2, 3, 4]
    assert third["old_keys"] == first["new_keys"]
    root_key, targets_key = second["new_keys"][0], third["new_keys"][0]
    for tag in ("1.0", "2.0"):
        assert_verifies(host, gun, tag, DIGEST_A)
    status = _status_of(host, gun)
    assert status["root"]["version"] == 4
    assert status["root"]["keys"] == [root_key]
    assert status["targets"]["keys"] == [targets_key]
    listed = publisher("key", "list", "--json").json["keys"]
    mine = sorted((k["role"], k["keyid"], k["keytype"]) for k in listed if k["repository"] == gun)
    assert mine == [("root", root_key, "ecdsa"), ("targets", targets_key, "ecdsa")]
    assert keys["root"] not in {k["keyid"] for k in listed}
    assert publisher("sign", f"{gun}:3.0", "--digest", DIGEST_B, "--size", "10").code == 0
    assert_verifies(host, gun, "3.0", DIGEST_B)
    assert_verifies(Trustkit(tmp_path / "fresh" / ".trustkit", server.url), gun, "3.0", DIGEST_B)


# --- rotations that fail ------------------------------------------------------------


@pytest.mark.parametrize("role", ["root", "targets"])
def test_rotation_with_a_wrong_root_passphrase_changes_nothing(
    role: str, publisher: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    """Both rotations need the root key (the new root must chain): a mistyped root
    passphrase stops them before any key is made or anything is uploaded."""
    _init(publisher, gun)
    sign_many(publisher, gun, ["1.0"])
    keystore = _keystore_files(publisher)
    versions = {r: served_version(server, gun, r) for r in ("root", "targets")}

    result = publisher(
        "key", "rotate", gun, role, env={"TRUSTKIT_ROOT_PASSPHRASE": "not the root passphrase"}
    )

    assert result.code == 2
    assert "wrong passphrase for the root key" in result.err
    assert "$TRUSTKIT_ROOT_PASSPHRASE" in result.err
    assert _keystore_files(publisher) == keystore
    assert {r: served_version(server, gun, r) for r in ("root", "targets")} == versions
    assert_verifies(Trustkit(tmp_path / "fresh" / ".trustkit", server.url), gun, "1.0", DIGEST_A)


def test_rotation_with_the_server_down_changes_nothing(start_server, tmp_path: Path):
    """The server is down for maintenance: the rotation stops with exit 3 (unreachable)
    and the keystore is exactly as it was."""
    own = start_server()
    gun = "registry.test/server-down"
    publisher = publisher_cli(tmp_path / "pub" / ".trustkit", own.url)
    _init(publisher, gun)
    sign_many(publisher, gun, ["1.0"])
    keystore = _keystore_files(publisher)
    own.stop()

    result = publisher.process("key", "rotate", gun, "targets")

    assert result.code == 3
    assert own.url in result.err
    assert "Traceback" not in result.err
    assert _keystore_files(publisher) == keystore


def test_rotation_whose_upload_fails_leaves_no_new_key_behind(
    publisher: Trustkit, server: ServerProcess, proxy: TamperingProxy, gun: str
):
    """The new key is made before the upload; when the upload fails (here a proxy that
    passes reads but answers every POST with 501), it is removed again."""
    _init(publisher, gun)
    sign_many(publisher, gun, ["1.0"])
    keystore = _keystore_files(publisher)
    through_proxy = Trustkit(publisher.home, proxy.url, publisher.env)

    result = through_proxy("key", "rotate", gun, "root")

    assert result.code == 3, result.err
    assert _keystore_files(publisher) == keystore
    assert served_version(server, gun, "root") == 1
    # Nothing was left half done: the same rotation succeeds directly afterwards.
    assert _rotate(publisher, gun, "root")["root_version"] == 2
    assert len(_listed_keys(publisher, gun)) == 2


@pytest.mark.parametrize("role", ["snapshot", "timestamp"])
def test_rotating_a_server_key_is_followed_by_hosts_and_the_old_key_stops_counting(
    publisher: Trustkit,
    host: Trustkit,
    server: ServerProcess,
    proxy: TamperingProxy,
    tmp_path: Path,
    gun: str,
    role: str,
):
    _init(publisher, gun)
    _sign(publisher, gun, "1.0", DIGEST_A)
    assert_verifies(host, gun, "1.0", DIGEST_A)  # this host trusts root v1 and the old keys
    thief = stolen_online_signers(server, gun)  # what someone who broke into the server has
    stolen = thief[role]
    keystore = _keystore_files(publisher)

    rotated = publisher("key", "rotate", gun, role, "--json")

    assert rotated.code == 0, rotated.err
    [new_keyid] = rotated.json["new_keys"]
    assert rotated.json["old_keys"] == [stolen.public_key.keyid]
    assert _status_of(publisher, gun)[role]["keys"] == [new_keyid]
    assert httpx.get(server.metadata_url(gun, f"{role}.key")).json()["keyid"] == new_keyid
    assert served_metadata(server, gun, f"{role}.json").signatures.keys() == {new_keyid}
    assert _keystore_files(publisher) == keystore  # server keys never touch the keystore
    assert_verifies(host, gun, "1.0", DIGEST_A)  # walked root v1 -> v2
    _sign(publisher, gun, "2.0", DIGEST_B)
    assert_verifies(host, gun, "2.0", DIGEST_B)

    # The thief re-signs what the server serves with the rotated-out key (and, for a
    # forged snapshot, a timestamp that pins it, with the timestamp key it also stole,
    # which still counts: so only the signature on the snapshot can give it away).
    def resigned_snapshot(version: int) -> bytes:
        served = served_metadata(server, gun, f"{version}.snapshot.json")
        return sign_with(served.signed, [thief["snapshot"]])

    def resign_with_stolen_key(path: str, status: int, body: bytes) -> tuple[int, bytes]:
        served_role = role_of(path)
        if status != 200 or served_role not in ("snapshot", "timestamp"):
            return status, body
        signed = Metadata.from_bytes(body).signed
        if role == "timestamp" and served_role == "timestamp":
            return status, sign_with(signed, [stolen])
        if role == "snapshot" and served_role == "snapshot":
            return status, resigned_snapshot(signed.version)
        if role == "snapshot" and served_role == "timestamp":
            version = signed.snapshot_meta.version
            signed.snapshot_meta = meta_for(resigned_snapshot(version), version)
            return status, sign_with(signed, [thief["timestamp"]])
        return status, body

    proxy.rewrite = resign_with_stolen_key
    fooled = Trustkit(tmp_path / "fooled" / ".trustkit", proxy.url)
    refused = fooled("verify", "--offline", f"{gun}:2.0")

    assert refused.code == 1
    assert "bad signatures" in refused.err


def test_a_server_key_rotation_without_the_root_key_changes_nothing(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str
):
    _init(publisher, gun)
    _sign(publisher, gun, "1.0", DIGEST_A)
    before = httpx.get(server.metadata_url(gun, "timestamp.key")).json()["keyid"]

    result = publisher("key", "rotate", gun, "timestamp", env={"TRUSTKIT_ROOT_PASSPHRASE": "wrong"})

    assert result.code == 2
    assert "wrong passphrase" in result.err
    assert httpx.get(server.metadata_url(gun, "timestamp.key")).json()["keyid"] == before
    assert served_version(server, gun, "root") == 1
    assert_verifies(host, gun, "1.0", DIGEST_A)


def test_asking_the_server_for_a_next_key_alone_changes_no_trust(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str
):
    """Anyone may ask for a next key; it signs nothing until a root lists it."""
    _init(publisher, gun)
    _sign(publisher, gun, "1.0", DIGEST_A)
    before = httpx.get(server.metadata_url(gun, "snapshot.key")).json()["keyid"]

    admin = server.auth_headers()
    asked = httpx.post(server.metadata_url(gun, "snapshot.key"), headers=admin)
    not_online = httpx.post(server.metadata_url(gun, "targets.key"), headers=admin)
    unknown = httpx.post(
        server.metadata_url("registry.test/nothing-here", "snapshot.key"), headers=admin
    )
    _sign(publisher, gun, "2.0", DIGEST_B)

    assert asked.status_code == 200 and asked.json()["keyid"] != before
    assert (not_online.status_code, not_online.json()["error"]) == (404, "not_server_key")
    assert unknown.status_code == 404
    assert httpx.get(server.metadata_url(gun, "snapshot.key")).json()["keyid"] == before
    assert served_metadata(server, gun, "snapshot.json").signatures.keys() == {before}
    assert_verifies(host, gun, "2.0", DIGEST_B)


# --- status -------------------------------------------------------------------------


def test_status_shows_every_role_with_its_version_and_keys(
    publisher: Trustkit, host: Trustkit, gun: str
):
    keys = _init(publisher, gun)
    sign_many(publisher, gun, ["1.0"])

    table = host("status", gun)
    data = _status(host, gun)
    check = host("status", gun, "--check")

    assert table.code == 0, table.err
    assert set(data) == {"repository", "roles", "warnings", "pending_changes", "staged", "lapsed"}
    assert data["pending_changes"] == 0
    assert data["staged"] == data["lapsed"] == []
    assert data["repository"] == gun
    assert data["warnings"] == []
    assert [r["role"] for r in data["roles"]] == ROLES
    for role in data["roles"]:
        assert set(role) == STATUS_FIELDS
        assert role["threshold"] == 1
        assert role["warning"] is False
        assert len(role["keys"]) == 1
        [line] = [line for line in table.out.splitlines() if line.startswith(role["role"] + " ")]
        assert line.split()[1] == str(role["version"])
        assert f"{role['keys'][0][:12]} (threshold 1)" in line
        assert "<-" not in line
    roles = {r["role"]: r for r in data["roles"]}
    assert roles["root"]["keys"] == [keys["root"]]
    assert roles["targets"]["keys"] == [keys["targets"]]
    assert roles["targets"]["version"] == 2
    assert 3649 <= roles["root"]["days_left"] <= 3651
    assert 1094 <= roles["targets"]["days_left"] <= 1096
    assert check.code == 0, check.err


@pytest.mark.parametrize("placement", ["after-command", "before-command"])
def test_status_check_warns_when_targets_expire_within_the_window(
    placement: str, publisher: Trustkit, host: Trustkit, gun: str
):
    """The publisher signed with a short targets lifetime (the global ``--expiry``
    option, given after or before the command): ``status --check`` — a cron job —
    exits 1 and names targets; the timestamp, renewed by the server, is not warned about."""
    _init(publisher, gun)
    sign = ["sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "10"]
    expiry = ["--expiry", "targets=10d"]
    signed = publisher(*(sign + expiry if placement == "after-command" else expiry + sign))
    assert signed.code == 0, signed.err

    check = host.process("status", gun, "--check")
    data = _status(host, gun)

    assert check.code == 1, check.out
    assert f"targets of {gun} expire(s) soon" in check.err
    [targets_line] = [line for line in check.out.splitlines() if line.startswith("targets ")]
    assert "expires soon: run trustkit refresh" in targets_line
    assert data["warnings"] == ["targets"]
    roles = {r["role"]: r for r in data["roles"]}
    assert roles["targets"]["warning"] is True
    assert 9 <= roles["targets"]["days_left"] <= 10
    assert roles["timestamp"]["warning"] is False
    assert roles["root"]["warning"] is False
    assert host("status", gun, "--check", "--warn-within", "5d").code == 0


# --- refresh ------------------------------------------------------------------------


def test_refresh_re_signs_what_expires_soon_and_hosts_keep_verifying(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str
):
    _init(publisher, gun)
    for tag, digest in (("1.0", DIGEST_A), ("2.0", DIGEST_B)):
        signed = publisher(
            "sign", f"{gun}:{tag}", "--digest", digest, "--size", "10", "--expiry", "targets=10d"
        )
        assert signed.code == 0, signed.err
    assert_verifies(host, gun, "1.0", DIGEST_A)
    before = _status_of(host, gun)
    assert before["targets"]["warning"] is True

    # Re-signing targets needs only the targets key: the root key can stay offline.
    refreshed = publisher("refresh", gun, "--json", env={"TRUSTKIT_ROOT_PASSPHRASE": ""})

    assert refreshed.code == 0, refreshed.err
    assert refreshed.json["renewed"] == {"targets": before["targets"]["version"] + 1}
    after = _status_of(host, gun)
    assert after["targets"]["version"] == before["targets"]["version"] + 1
    assert 1094 <= after["targets"]["days_left"] <= 1096
    assert after["targets"]["warning"] is False
    assert after["root"]["version"] == before["root"]["version"] == 1
    for tag, digest in (("1.0", DIGEST_A), ("2.0", DIGEST_B)):
        assert_verifies(host, gun, tag, digest)

    again = publisher("refresh", gun)
    assert again.code == 0, again.err
    assert "nothing re-signed" in again.out
    assert publisher("refresh", gun, "--json").json["renewed"] == {}
    assert served_version(server, gun, "targets") == after["targets"]["version"]

    # Re-signing root needs the root key.
    no_root = publisher("refresh", gun, "--within", "20y", env={"TRUSTKIT_ROOT_PASSPHRASE": ""})
    assert no_root.code == 2
    assert "TRUSTKIT_ROOT_PASSPHRASE" in no_root.err
    assert served_version(server, gun, "root") == 1
    everything = publisher("refresh", gun, "--within", "20y", "--json")
    assert everything.code == 0, everything.err
    assert everything.json["renewed"] == {"root": 2, "targets": after["targets"]["version"] + 1}
    assert _status_of(host, gun)["root"]["version"] == 2
    for tag, digest in (("1.0", DIGEST_A), ("2.0", DIGEST_B)):
        assert_verifies(host, gun, tag, digest)


def test_key_list_never_shows_anything_secret(publisher: Trustkit, gun: str):
    keys = _init(publisher, gun)
    secrets: list[str] = [ROOT_PASSPHRASE, TARGETS_PASSPHRASE, "PRIVATE KEY"]
    for keyid in keys.values():
        sealed = (publisher.home / "private" / f"{keyid}.p12").read_bytes()
        secrets += [base64.b64encode(sealed).decode()[:40], sealed.hex()[:40]]
        secrets.append(sealed.splitlines()[-2].decode())  # the encrypted end of the PEM body
        passphrase = ROOT_PASSPHRASE if keyid == keys["root"] else TARGETS_PASSPHRASE
        private_key = unseal(sealed, passphrase)
        raw = private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        secrets += [raw.hex(), base64.b64encode(raw).decode()]

    text = publisher("key", "list")
    as_json = publisher("key", "list", "--json")
    without_passphrases = publisher(
        "key",
        "list",
        env={"TRUSTKIT_ROOT_PASSPHRASE": "", "TRUSTKIT_TARGETS_PASSPHRASE": ""},
    )

    for result in (text, as_json, without_passphrases):
        assert result.code == 0, result.err
        for secret in secrets:
            assert secret.lower() not in (result.out + result.err).lower()
    assert without_passphrases.out == text.out
    assert set(as_json.json) == {"keys"}
    listed = as_json.json["keys"]
    assert all(set(record) == RECORD_FIELDS for record in listed)
    assert sorted((k["role"], k["keyid"]) for k in listed) == [
        ("root", keys["root"]),
        ("targets", keys["targets"]),
    ]
    assert {k["kept"] for k in listed} == {"keystore (encrypted file)"}
    assert {k["keytype"] for k in listed} == {"ed25519"}
    for role, keyid in keys.items():
        [line] = [line for line in text.out.splitlines() if keyid[:12] in line]
        assert line.split()[0] == role
        assert gun in line


def test_expired_targets_tell_the_host_to_have_the_key_holder_refresh_which_works(
    publisher: Trustkit, host: Trustkit, gun: str
):
    assert publisher("init", gun).code == 0
    signed = publisher(
        "sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "5", "--expiry", "targets=1s"
    )
    assert signed.code == 0, signed.err
    time.sleep(1.5)  # let the one-second targets lifetime run out

    result = host("verify", "--offline", f"{gun}:1.0")

    assert result.code == 1
    assert "expired" in result.err
    assert "trustkit refresh" in result.err
    assert "the server is not refreshing it" not in result.err

    # The key holder does as told: expired targets are verified in every other way,
    # signed again, and hosts verify the tag again.
    renewed = publisher("refresh", gun, "--json")
    assert renewed.code == 0, renewed.err
    assert renewed.json["renewed"] == {"targets": 3}
    assert_verifies(host, gun, "1.0", DIGEST_A)
