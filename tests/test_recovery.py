"""The recovery runbook, end to end: a key is stolen, the attacker uses it, the security
officer recovers with the CLI, and from then on the thief's signatures count nowhere —
not at the server, not on hosts fed by a malicious server — while hosts that trusted
root v1 long before keep verifying every legitimate tag.

A "malicious server" is the tampering proxy serving what the thief signs, with the
server's snapshot and timestamp keys as well (the worst case: every check but the one
on the stolen key's signature passes).
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from securesystemslib.signer import CryptoSigner, Signer
from tuf.api.metadata import Metadata, Snapshot, Targets, Timestamp

from keys.keystore import unseal
from tests.support.harness import (
    DIGEST_A,
    DIGEST_B,
    TARGETS_PASSPHRASE,
    ServerProcess,
    TamperingProxy,
    Trustkit,
    assert_verifies,
    sign_many,
)
from tests.support.server_side import (
    post_upload,
    served_metadata,
    served_version,
    stolen_online_signers,
)
from trustkit.expiry import utc_now
from trustkit.metadata import image_target, meta_for, sign_with
from trustkit.names import parse_digest

FORGED = "sha256:" + "f" * 64
SIGNER_PASSPHRASE = "signer passphrase for tests"


# --- helpers ------------------------------------------------------------------------


def _ok(result: Any) -> Any:
    assert result.code == 0, result.err
    return result.json if result.out.startswith("{") else result.out


def _sign(tk: Trustkit, gun: str, tag: str, digest: str) -> dict[str, Any]:
    data: dict[str, Any] = _ok(
        tk("sign", f"{gun}:{tag}", "--digest", digest, "--size", "100", "--json")
    )
    return data


def _not_signed(host: Trustkit, gun: str, tag: str) -> None:
    result = host("verify", f"{gun}:{tag}", "--offline")
    assert result.code == 1, result.out
    assert f"no signed tag {tag} in {gun}" in result.err
    assert "f" * 64 not in result.out + result.err


def _refused(host: Trustkit, gun: str, tag: str, *reasons: str) -> None:
    result = host("verify", f"{gun}:{tag}", "--offline")
    assert result.code == 1, result.out
    assert result.out == ""
    for reason in reasons:
        assert reason in result.err


def _trusting_root_v1(server: ServerProcess, gun: str, home: Path, url: str) -> Trustkit:
    """A host provisioned with root v1 long ago (``trust pin``), talking to URL."""
    root_v1 = home.parent / "root-v1.json"
    root_v1.write_bytes(httpx.get(server.metadata_url(gun, "1.root.json"), timeout=30).content)
    host = Trustkit(home / ".trustkit", url)
    _ok(host("trust", "pin", gun, str(root_v1)))
    return host


def _opened(p12: Path, passphrase: str) -> tuple[CryptoSigner, bytes]:
    """What a thief holding a key file and its passphrase has: the key, and its PEM."""
    private_key = unseal(p12.read_bytes(), passphrase)
    pem = private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    return CryptoSigner(private_key), pem


def _with_tag(role: Targets, tag: str, digest: str) -> Targets:
    """ROLE, one version up, with TAG pointed at DIGEST."""
    role.version += 1
    role.targets[tag] = image_target(tag, parse_digest(digest), 100, None)
    return role


def _serve(proxy: TamperingProxy, files: dict[str, bytes]) -> None:
    """The proxy answers these file names (``timestamp.json``, ``7.targets.json``, …)
    with the given bytes, everything else as the server does."""

    def rewrite(path: str, status: int, body: bytes) -> tuple[int, bytes]:
        name = path.rsplit("/", 1)[-1]
        return (200, files[name]) if name in files else (status, body)

    proxy.rewrite = rewrite


def _malicious_server(
    proxy: TamperingProxy,
    server: ServerProcess,
    gun: str,
    online: dict[str, Signer],
    roles: dict[str, bytes],
) -> str:
    """The proxy serves ROLES (name -> metadata) in a new snapshot and timestamp that pin
    them, signed with ONLINE, the server's snapshot and timestamp keys. Returns the
    snapshot's file name."""
    snapshot: Snapshot = served_metadata(server, gun, "snapshot.json").signed
    files: dict[str, bytes] = {}
    for role, data in roles.items():
        version = Metadata.from_bytes(data).signed.version
        snapshot.meta[f"{role}.json"] = meta_for(data, version)
        files[f"{version}.{role}.json"] = data
    snapshot.version += 1
    snapshot.expires = utc_now() + timedelta(days=30)
    files[f"{snapshot.version}.snapshot.json"] = sign_with(snapshot, [online["snapshot"]])
    timestamp: Timestamp = served_metadata(server, gun, "timestamp.json").signed
    timestamp.version += 1
    timestamp.snapshot_meta = meta_for(files[f"{snapshot.version}.snapshot.json"], snapshot.version)
    timestamp.expires = utc_now() + timedelta(days=30)
    files["timestamp.json"] = sign_with(timestamp, [online["timestamp"]])
    _serve(proxy, files)
    return f"{snapshot.version}.snapshot.json"


def _fetched(proxy: TamperingProxy, name: str) -> bool:
    return any(path.endswith(f"/{name}") for path in proxy.requests)


# --- 1. the targets key is stolen ---------------------------------------------------


def test_after_a_targets_key_theft_rotation_and_revoke_hosts_refuse_the_thiefs_tags_and_metadata(
    publisher: Trustkit, server: ServerProcess, proxy: TamperingProxy, gun: str, tmp_path: Path
):
    """The thief copied the targets key's file and learnt its passphrase, and publishes a
    tag with it. The root holder rotates the targets key and revokes the tag."""
    init = _ok(publisher("init", gun, "--json"))
    old_targets_key = init["keys"]["targets"][0]
    sign_many(publisher, gun, ["1.0", "1.1"])
    early = Trustkit(tmp_path / "early" / ".trustkit", server.url)
    assert_verifies(early, gun, "1.0", DIGEST_A)  # trusts root v1 from now on
    stolen, pem = _opened(publisher.home / "private" / f"{old_targets_key}.p12", TARGETS_PASSPHRASE)
    (tmp_path / "stolen.pem").write_bytes(pem)
    thief = Trustkit(
        tmp_path / "thief" / ".trustkit", server.url, {"TRUSTKIT_TARGETS_PASSPHRASE": "thief's"}
    )
    imported = _ok(
        thief("key", "import", str(tmp_path / "stolen.pem"), "--repository", gun, "--role",
              "targets", "--json")
    )  # fmt: skip
    assert imported["keyid"] == old_targets_key

    # The compromise: the server takes the thief's tag, and hosts believe it.
    assert _sign(thief, gun, "2.0", FORGED)["role"] == "targets"
    assert_verifies(early, gun, "2.0", FORGED)

    # Recovery, where the root key is.
    rotated = _ok(publisher("key", "rotate", gun, "targets", "--json"))
    assert rotated["old_keys"] == [old_targets_key]
    # A rotation re-signs everything targets holds, the thief's tag too: revoke it.
    assert_verifies(early, gun, "2.0", FORGED)
    _ok(publisher("revoke", f"{gun}:2.0"))

    pinned = _trusting_root_v1(server, gun, tmp_path / "pinned", server.url)
    for host in (early, pinned):
        _not_signed(host, gun, "2.0")
        for tag in ("1.0", "1.1"):
            assert_verifies(host, gun, tag, DIGEST_A)
    # The thief signs again: the CLI follows the new root and knows the key is out; an
    # upload made by hand is refused by the server.
    targets_version = served_version(server, gun, "targets")
    again = thief("sign", f"{gun}:2.0", "--digest", FORGED, "--size", "100")
    assert again.code == 2, again.out
    assert "holds no key that may sign 2.0" in again.err
    forged = sign_with(
        _with_tag(served_metadata(server, gun, "targets.json").signed, "2.0", FORGED), [stolen]
    )
    response = post_upload(server, gun, targets=forged)
    assert response.status_code == 400, response.text
    assert (response.json()["error"], response.json()["role"]) == ("threshold_not_met", "targets")
    assert "signed by 0 of the 1 keys" in response.json()["detail"]
    assert served_version(server, gun, "targets") == targets_version
    # A malicious server serves the forged targets to a host that still trusts root v1,
    # in which the stolen key signs targets: the host walks to the new root first.
    _malicious_server(proxy, server, gun, stolen_online_signers(server, gun), {"targets": forged})
    stale = _trusting_root_v1(server, gun, tmp_path / "stale", proxy.url)
    _refused(stale, gun, "2.0", "bad signatures", "targets was signed by 0/1 keys")
    assert _fetched(proxy, f"{targets_version + 1}.targets.json")


# --- 2. a signer's key is stolen ----------------------------------------------------


def test_after_a_signers_key_theft_and_re_adding_with_a_new_key_only_the_new_key_counts(
    publisher: Trustkit, server: ServerProcess, proxy: TamperingProxy, gun: str, tmp_path: Path
):
    """alice signs release-*. The thief copied her keystore and knows her passphrase, and
    signs release-2. The owner removes alice; she makes a new key; the owner adds it as
    alice2 (the old name is refused while her old role is on the server); she re-signs."""
    _ok(publisher("init", gun))
    _sign(publisher, gun, "1.0", DIGEST_A)
    alice = Trustkit(
        tmp_path / "alice" / ".trustkit",
        server.url,
        {"TRUSTKIT_DELEGATION_PASSPHRASE": SIGNER_PASSPHRASE},
    )
    old_key = _ok(alice("key", "generate", "alice", "--out", str(tmp_path / "alice.pub"), "--json"))
    add = ["--key", str(tmp_path / "alice.pub"), "--paths", "release-*"]
    _ok(publisher("signer", "add", "alice", gun, *add))
    _sign(alice, gun, "release-1", DIGEST_B)
    early = Trustkit(tmp_path / "early" / ".trustkit", server.url)
    assert_verifies(early, gun, "release-1", DIGEST_B)
    thief = Trustkit(tmp_path / "thief" / ".trustkit", server.url, alice.env)
    shutil.copytree(alice.home / "private", thief.home / "private")
    stolen, _ = _opened(thief.home / "private" / f"{old_key['keyid']}.p12", SIGNER_PASSPHRASE)

    # The compromise: a tag within alice's paths, signed as alice.
    assert _sign(thief, gun, "release-2", FORGED)["role"] == "alice"
    assert_verifies(early, gun, "release-2", FORGED)

    # Recovery.
    _ok(publisher("signer", "remove", "alice", gun))
    new_key = _ok(
        alice("key", "generate", "alice2", "--out", str(tmp_path / "alice2.pub"), "--json")
    )
    _ok(alice("key", "remove", old_key["keyid"], "--yes"))
    add = ["--key", str(tmp_path / "alice2.pub"), "--paths", "release-*"]
    same_name = publisher("signer", "add", "alice", gun, *add)
    assert same_name.code == 2
    assert "choose another name" in same_name.err
    _ok(publisher("signer", "add", "alice2", gun, *add))
    assert _sign(alice, gun, "release-1", DIGEST_B)["role"] == "alice2"

    pinned = _trusting_root_v1(server, gun, tmp_path / "pinned", server.url)
    for host in (early, pinned):
        _not_signed(host, gun, "release-2")
        assert_verifies(host, gun, "release-1", DIGEST_B)
        assert_verifies(host, gun, "1.0", DIGEST_A)
        tags = {t["tag"]: t["signer"] for t in _ok(host("inspect", gun, "--json"))["tags"]}
        assert tags == {"1.0": "targets", "release-1": "alice2"}
        signers = {
            s["name"]: s["keys"] for s in _ok(host("signer", "list", gun, "--json"))["signers"]
        }
        assert signers == {"alice2": [new_key["keyid"]]}
    # The thief uploads roles signed with the stolen key: the old one and the new one.
    old_role = _with_tag(served_metadata(server, gun, "alice.json").signed, "release-3", FORGED)
    new_role = _with_tag(served_metadata(server, gun, "alice2.json").signed, "release-3", FORGED)
    forged = {"alice": sign_with(old_role, [stolen]), "alice2": sign_with(new_role, [stolen])}
    for role, expected in (("alice", "unknown_role"), ("alice2", "threshold_not_met")):
        response = post_upload(server, gun, **{role: forged[role]})
        assert response.status_code == 400, response.text
        assert (response.json()["error"], response.json()["role"]) == (expected, role)
    assert served_version(server, gun, "alice2") == new_role.version - 1
    # A malicious server serves them to hosts that trust root v1: the old role is no
    # longer delegated and is never read; the new one is refused for its signature.
    online = stolen_online_signers(server, gun)
    snapshot = _malicious_server(proxy, server, gun, online, {"alice": forged["alice"]})
    ignoring = _trusting_root_v1(server, gun, tmp_path / "ignoring", proxy.url)
    _not_signed(ignoring, gun, "release-3")
    assert _fetched(proxy, snapshot)
    assert not any(path.endswith(".alice.json") for path in proxy.requests)
    assert_verifies(ignoring, gun, "release-1", DIGEST_B)
    _malicious_server(proxy, server, gun, online, {"alice2": forged["alice2"]})
    refusing = _trusting_root_v1(server, gun, tmp_path / "refusing", proxy.url)
    _refused(refusing, gun, "release-3", "bad signatures", "alice2 was signed by 0/1 keys")


# --- 3. the server's online keys are stolen -----------------------------------------


def test_after_the_online_keys_are_stolen_and_rotated_hosts_refuse_what_the_thief_signs(
    publisher: Trustkit, server: ServerProcess, proxy: TamperingProxy, gun: str, tmp_path: Path
):
    """Someone broke into the server and holds its snapshot and timestamp keys. They
    cannot sign a tag, but they can freeze a host. The root holder rotates both keys."""
    _ok(publisher("init", gun))
    _sign(publisher, gun, "1.0", DIGEST_A)
    host = _trusting_root_v1(server, gun, tmp_path / "host", proxy.url)
    assert_verifies(host, gun, "1.0", DIGEST_A)
    online = stolen_online_signers(server, gun)

    # Never a tag: targets signed with the stolen keys, pinned by snapshot and timestamp.
    targets = _with_tag(served_metadata(server, gun, "targets.json").signed, "evil", FORGED)
    _malicious_server(proxy, server, gun, online, {"targets": sign_with(targets, online.values())})
    victim = Trustkit(tmp_path / "victim" / ".trustkit", proxy.url)
    _refused(victim, gun, "evil", "bad signatures", "targets was signed by 0/1 keys")
    # But a freeze: a timestamp far ahead keeps the host on what it has, and hides 2.0.
    frozen: Timestamp = served_metadata(server, gun, "timestamp.json").signed
    frozen.version = 10_000
    frozen.expires = utc_now() + timedelta(days=365)
    _serve(proxy, {"timestamp.json": sign_with(frozen, [online["timestamp"]])})
    assert_verifies(host, gun, "1.0", DIGEST_A)
    _sign(publisher, gun, "2.0", DIGEST_B)
    _not_signed(host, gun, "2.0")
    proxy.rewrite = lambda path, status, body: (status, body)  # the thief is gone...
    _refused(host, gun, "2.0", "rollback refused", "must be >= 10000")  # ...the host is stuck

    # Recovery, where the root key is: snapshot first.
    rotated = _ok(publisher("key", "rotate", gun, "snapshot", "--json"))
    assert rotated["old_keys"] == [online["snapshot"].public_key.keyid]
    _malicious_server(proxy, server, gun, online, {})
    snapshot_victim = _trusting_root_v1(server, gun, tmp_path / "snapshot-victim", proxy.url)
    _refused(snapshot_victim, gun, "1.0", "bad signatures", "snapshot was signed by 0/1 keys")
    proxy.rewrite = lambda path, status, body: (status, body)
    _refused(host, gun, "2.0", "rollback refused")  # its timestamp key still counts
    rotated = _ok(publisher("key", "rotate", gun, "timestamp", "--json"))
    assert rotated["old_keys"] == [online["timestamp"].public_key.keyid]

    # The frozen host is free again: the thief's timestamp no longer verifies.
    assert_verifies(host, gun, "2.0", DIGEST_B)
    assert_verifies(host, gun, "1.0", DIGEST_A)
    status = {r["role"]: r for r in _ok(host("status", gun, "--json"))["roles"]}
    assert status["root"]["version"] == 3
    for role in ("snapshot", "timestamp"):
        assert online[role].public_key.keyid not in status[role]["keys"]
    frozen.version = 20_000
    _serve(proxy, {"timestamp.json": sign_with(frozen, [online["timestamp"]])})
    _refused(host, gun, "2.0", "bad signatures", "timestamp was signed by 0/1 keys")
    _malicious_server(proxy, server, gun, online, {})
    fresh = _trusting_root_v1(server, gun, tmp_path / "fresh", proxy.url)
    _refused(fresh, gun, "1.0", "bad signatures", "timestamp was signed by 0/1 keys")
