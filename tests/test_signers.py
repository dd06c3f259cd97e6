"""Signers, end to end through the CLI and the real server: the repository owner lets
other people (or pipelines) sign some tags with keys of their own — TUF delegations —
and hosts verify what they sign, follow the order of trust, and stop trusting a signer
the moment the owner takes it out.

A signer is a separate keystore (``trustkit key generate``); the owner holds the root
and targets keys. Tags are signed with ``--digest`` and ``--size`` and verified with
``--offline``: no registry is needed.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from securesystemslib.signer import Signer
from tuf.api.metadata import Metadata, Snapshot, Targets, Timestamp

from keys.keystore import Keystore
from keys.passphrase import PassphraseSource
from tests.support.docker_recorder import Recorder, write_recorder
from tests.support.harness import (
    DIGEST_A,
    DIGEST_B,
    ServerProcess,
    TamperingProxy,
    Trustkit,
    assert_verifies,
    role_of,
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

DIGEST_C = "sha256:" + "c" * 64
FORGED = "sha256:" + "f" * 64
SIGNER_PASSPHRASE = "signer passphrase for tests"
SIGNER_FIELDS = {
    "name",
    "keys",
    "threshold",
    "paths",
    "path_hash_prefixes",
    "terminating",
    "published",
    "tags",
}


# --- helpers ------------------------------------------------------------------------


def _init(publisher: Trustkit, gun: str) -> None:
    result = publisher("init", gun)
    assert result.code == 0, result.err


def _person(tmp_path: Path, server_url: str, name: str) -> Trustkit:
    """Someone with a keystore of their own, e.g. a release pipeline or a colleague."""
    return Trustkit(
        tmp_path / name / ".trustkit",
        server_url,
        {"TRUSTKIT_DELEGATION_PASSPHRASE": SIGNER_PASSPHRASE},
    )


def _generate(tk: Trustkit, name: str, out: Path, env: dict[str, str] | None = None) -> str:
    """``key generate NAME --out OUT``; returns the key id."""
    result = tk("key", "generate", name, "--out", str(out), "--json", env=env)
    assert result.code == 0, result.err
    assert result.json["public_key_file"] == str(out)
    assert out.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    keyid: str = result.json["keyid"]
    return keyid


def _add(publisher: Trustkit, name: str, gun: str, *args: str) -> dict[str, Any]:
    result = publisher("signer", "add", name, gun, *args, "--json")
    assert result.code == 0, result.err
    data: dict[str, Any] = result.json
    return data


def _sign(tk: Trustkit, gun: str, tag: str, digest: str, *args: str) -> dict[str, Any]:
    result = tk("sign", f"{gun}:{tag}", "--digest", digest, "--size", "100", "--json", *args)
    assert result.code == 0, result.err
    data: dict[str, Any] = result.json
    return data


def _not_signed(host: Trustkit, gun: str, tag: str) -> None:
    result = host("verify", f"{gun}:{tag}", "--offline")
    assert result.code == 1, result.out
    assert f"no signed tag {tag} in {gun}" in result.err
    assert result.out == ""
    assert "Traceback" not in result.err


def _signer_of_tags(host: Trustkit, gun: str) -> dict[str, tuple[str, str]]:
    """``inspect --json``: tag -> (digest, signer)."""
    result = host("inspect", gun, "--json")
    assert result.code == 0, result.err
    return {t["tag"]: (t["digest"], t["signer"]) for t in result.json["tags"]}


def _signers(tk: Trustkit, gun: str) -> dict[str, dict[str, Any]]:
    result = tk("signer", "list", gun, "--json")
    assert result.code == 0, result.err
    assert result.json["repository"] == gun
    return {s["name"]: s for s in result.json["signers"]}


def _status_of(tk: Trustkit, gun: str) -> dict[str, dict[str, Any]]:
    result = tk("status", gun, "--json")
    assert result.code == 0, result.err
    return {role["role"]: role for role in result.json["roles"]}


def _is_served(server: ServerProcess, gun: str, filename: str) -> bool:
    status = httpx.get(server.metadata_url(gun, filename), timeout=30).status_code
    assert status in (200, 404), status
    return status == 200


def _snapshot_roles(server: ServerProcess, gun: str) -> dict[str, int]:
    snapshot: Snapshot = served_metadata(server, gun, "snapshot.json").signed
    return {name.removesuffix(".json"): info.version for name, info in snapshot.meta.items()}


def _key_signer(tk: Trustkit, keyid: str) -> Signer:
    """A signer's private key, opened by the test as its holder would."""
    keystore = Keystore(tk.home)
    [record] = [r for r in keystore.records() if r.keyid == keyid]
    return keystore.signer(record, PassphraseSource(tk.env))


def _alice_signs_releases(
    publisher: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
) -> tuple[Trustkit, str]:
    """The usual start: the owner signed 1.0 (A); alice may sign release-*, and signed
    release-1 (B). Returns alice and her key id."""
    _init(publisher, gun)
    _sign(publisher, gun, "1.0", DIGEST_A)
    alice = _person(tmp_path, server.url, "alice")
    keyid = _generate(alice, "alice", tmp_path / "alice.pub")
    _add(publisher, "alice", gun, "--key", str(tmp_path / "alice.pub"), "--paths", "release-*")
    _sign(alice, gun, "release-1", DIGEST_B)
    return alice, keyid


# --- a signer signs, hosts verify ---------------------------------------------------


def test_a_signer_signs_tags_within_its_paths_and_hosts_verify_them(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    """The owner lets alice sign release tags. Her first signature makes her role's
    first version; hosts verify the tag and say who signed what."""
    _init(publisher, gun)
    _sign(publisher, gun, "1.0", DIGEST_A)
    alice = _person(tmp_path, server.url, "alice")
    keyid = _generate(alice, "alice", tmp_path / "alice.pub")
    targets_before = served_version(server, gun, "targets")

    added = _add(
        publisher, "alice", gun, "--key", str(tmp_path / "alice.pub"), "--paths", "release-*"
    )

    assert added["signer"] == "alice"
    assert added["keys"] == [keyid]
    assert added["paths"] == ["release-*"]
    assert added["published"] is False  # alice's key is not in the owner's keystore
    assert added["targets_version"] == targets_before + 1
    assert served_version(server, gun, "targets") == targets_before + 1
    assert not _is_served(server, gun, "alice.json")

    signed = _sign(alice, gun, "release-1", DIGEST_B)

    assert (signed["role"], signed["targets_version"]) == ("alice", 1)
    role: Metadata[Targets] = served_metadata(server, gun, "alice.json")
    assert role.signed.version == 1
    assert set(role.signed.targets) == {"release-1"}
    assert set(role.signatures) == {keyid}
    assert _is_served(server, gun, "1.alice.json")
    assert _snapshot_roles(server, gun)["alice"] == 1
    assert served_version(server, gun, "targets") == targets_before + 1  # untouched by alice
    assert_verifies(host, gun, "release-1", DIGEST_B)
    assert_verifies(host, gun, "1.0", DIGEST_A)
    assert _signer_of_tags(host, gun) == {
        "1.0": (DIGEST_A, "targets"),
        "release-1": (DIGEST_B, "alice"),
    }
    text = host("inspect", gun)
    [line] = [line for line in text.out.splitlines() if line.startswith("release-1 ")]
    assert "alice" in line.split()
    signers = _signers(host, gun)
    assert set(signers) == {"alice"}
    assert set(signers["alice"]) == SIGNER_FIELDS
    assert signers["alice"] == {
        "name": "alice",
        "keys": [keyid],
        "threshold": 1,
        "paths": ["release-*"],
        "path_hash_prefixes": [],
        "terminating": False,
        "published": True,
        "tags": ["release-1"],
    }
    status = _status_of(host, gun)
    assert list(status) == ["root", "targets", "snapshot", "timestamp", "alice"]
    assert status["alice"]["version"] == 1
    assert status["alice"]["keys"] == [keyid]
    assert status["alice"]["threshold"] == 1
    assert status["alice"]["warning"] is False
    # alice signs on: her role's versions go up, the owner's targets stay as they are.
    assert _sign(alice, gun, "release-2", DIGEST_C)["targets_version"] == 2
    assert_verifies(host, gun, "release-2", DIGEST_C)
    assert _signers(host, gun)["alice"]["tags"] == ["release-1", "release-2"]
    assert served_version(server, gun, "targets") == targets_before + 1


def test_key_generate_writes_name_pub_and_keeps_the_private_key_encrypted(
    server: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    alice = _person(tmp_path, server.url, "alice")
    monkeypatch.chdir(tmp_path)

    result = alice("key", "generate", "alice", "--json")

    assert result.code == 0, result.err
    assert result.json["public_key_file"] == "alice.pub"
    pem = (tmp_path / "alice.pub").read_bytes()
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    listed = alice("key", "list", "--json").json["keys"]
    assert [(k["keyid"], k["role"], k["repository"]) for k in listed] == [
        (result.json["keyid"], "alice", "*")
    ]
    assert SIGNER_PASSPHRASE not in result.out + result.err
    assert b"PRIVATE" not in pem
    # Without a passphrase (and no terminal to ask) no key is made.
    again = alice(
        "key", "generate", "bob", "--out", str(tmp_path / "bob.pub"),
        env={"TRUSTKIT_DELEGATION_PASSPHRASE": ""},
    )  # fmt: skip
    assert again.code == 2
    assert not (tmp_path / "bob.pub").exists()
    assert len(alice("key", "list", "--json").json["keys"]) == 1


# --- a signer's paths ---------------------------------------------------------------


def test_a_signer_cannot_sign_outside_its_paths(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    """alice may sign release-*: the CLI refuses anything else before uploading, and a
    hand-made upload of her role with another tag is refused by the server."""
    alice, keyid = _alice_signs_releases(publisher, server, gun, tmp_path)
    snapshot_before = served_version(server, gun, "snapshot")

    automatic = alice("sign", f"{gun}:latest", "--digest", FORGED, "--size", "10")
    named = alice("sign", f"{gun}:latest", "--digest", FORGED, "--size", "10", "--signer", "alice")

    assert automatic.code == 2, automatic.out
    assert "holds no key that may sign latest" in automatic.err
    assert named.code == 2, named.out
    assert f"the signer alice of {gun} may not sign latest" in named.err
    assert "release-*" in named.err
    assert served_version(server, gun, "snapshot") == snapshot_before
    assert served_version(server, gun, "alice") == 1

    # alice builds the upload herself, signed with her key.
    served: Metadata[Targets] = served_metadata(server, gun, "alice.json")
    role = served.signed
    role.version = 2
    role.targets["latest"] = image_target("latest", parse_digest(FORGED), 10, None)
    response = post_upload(server, gun, alice=sign_with(role, [_key_signer(alice, keyid)]))

    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "outside_delegated_paths"
    assert body["role"] == "alice"
    assert "'latest'" in body["detail"]
    assert "release-*" in body["detail"]
    assert served_version(server, gun, "alice") == 1
    assert not _is_served(server, gun, "2.alice.json")
    assert served_version(server, gun, "snapshot") == snapshot_before
    _not_signed(host, gun, "latest")
    # Nothing of the refused signing was staged: her next tag publishes alone.
    assert _sign(alice, gun, "release-2", DIGEST_C)["targets_version"] == 2
    assert set(served_metadata(server, gun, "alice.json").signed.targets) == {
        "release-1",
        "release-2",
    }
    assert_verifies(host, gun, "release-2", DIGEST_C)
    _not_signed(host, gun, "latest")


@pytest.mark.parametrize(
    "online_keys_stolen",
    [False, True],
    ids=["mirror-swaps-the-role", "compromised-server-re-signs-snapshot"],
)
def test_hosts_ignore_a_tag_outside_the_paths_of_the_role_that_holds_it(
    online_keys_stolen: bool,
    publisher: Trustkit,
    server: ServerProcess,
    proxy: TamperingProxy,
    gun: str,
    tmp_path: Path,
):
    """alice's key is stolen. The thief re-signs her role with her tags and a tag outside
    her paths (latest-00 where release-2 was: the file keeps its length) and serves it.

    * a mirror that swaps only alice's role is caught by the snapshot, which pins the
      sha256 of the role it lists: the host refuses the whole repository;
    * a compromised server also re-signs snapshot and timestamp to pin the forged role.
      Its signatures all check out; what is left is the delegation: the host looks a tag
      up only in roles whose paths cover it, so latest-00 is not signed. (release-2,
      gone from the forged role, is not signed either: proof the forged role was used.)
    """
    alice, keyid = _alice_signs_releases(publisher, server, gun, tmp_path)
    _sign(alice, gun, "release-2", DIGEST_A)
    served: Metadata[Targets] = served_metadata(server, gun, "alice.json")
    forged_role = served.signed
    del forged_role.targets["release-2"]
    forged_role.targets["latest-00"] = image_target("latest-00", parse_digest(FORGED), 100, None)
    alice_bytes = sign_with(forged_role, [_key_signer(alice, keyid)])
    assert len(alice_bytes) == len(served.to_bytes())  # only a hash can tell
    forged = {"alice": alice_bytes}
    if online_keys_stolen:
        online = stolen_online_signers(server, gun)
        snapshot: Snapshot = served_metadata(server, gun, "snapshot.json").signed
        snapshot.meta["alice.json"] = meta_for(alice_bytes, forged_role.version)
        forged["snapshot"] = sign_with(snapshot, [online["snapshot"]])
        timestamp: Timestamp = served_metadata(server, gun, "timestamp.json").signed
        timestamp.snapshot_meta = meta_for(forged["snapshot"], snapshot.version)
        timestamp.expires = utc_now() + timedelta(days=1)
        forged["timestamp"] = sign_with(timestamp, [online["timestamp"]])

    def serve_forged(path: str, status: int, body: bytes) -> tuple[int, bytes]:
        role = role_of(path)
        return (200, forged[role]) if role in forged else (status, body)

    proxy.rewrite = serve_forged
    host = Trustkit(tmp_path / "fooled" / ".trustkit", proxy.url)
    evil = host("verify", f"{gun}:latest-00", "--offline")
    inspected = host("inspect", gun, "--json")

    assert any(role_of(path) == "alice" for path in proxy.requests)
    assert evil.code == 1, evil.out
    assert "f" * 64 not in evil.out + evil.err + inspected.out + inspected.err
    if not online_keys_stolen:
        assert "does not match what was signed" in evil.err
        assert inspected.code == 1
        assert host("verify", f"{gun}:release-1", "--offline").code == 1
    else:
        assert f"no signed tag latest-00 in {gun}" in evil.err
        assert inspected.code == 0, inspected.err
        tags = {t["tag"]: t["signer"] for t in inspected.json["tags"]}
        assert tags == {"1.0": "targets", "release-1": "alice"}
        assert_verifies(host, gun, "release-1", DIGEST_B)
        _not_signed(host, gun, "release-2")
    # What the server serves is untouched.
    fresh = Trustkit(tmp_path / "fresh" / ".trustkit", server.url)
    assert_verifies(fresh, gun, "release-2", DIGEST_A)
    _not_signed(fresh, gun, "latest-00")


# --- order of trust -----------------------------------------------------------------


def test_the_first_signer_whose_paths_cover_a_tag_wins(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    """alice and bob may both sign release-*. bob signs release-1 first, alice later,
    with another digest: hosts take alice's, because she was delegated first."""
    _init(publisher, gun)
    alice = _person(tmp_path, server.url, "alice")
    bob = _person(tmp_path, server.url, "bob")
    _generate(alice, "alice", tmp_path / "alice.pub")
    _generate(bob, "bob", tmp_path / "bob.pub")
    _add(publisher, "alice", gun, "--key", str(tmp_path / "alice.pub"), "--paths", "release-*")
    _add(publisher, "bob", gun, "--key", str(tmp_path / "bob.pub"), "--paths", "release-*")

    assert _sign(bob, gun, "release-1", DIGEST_A)["role"] == "bob"
    assert_verifies(host, gun, "release-1", DIGEST_A)  # only bob signed it so far
    assert _sign(bob, gun, "release-2", DIGEST_A)["role"] == "bob"
    assert _sign(alice, gun, "release-1", DIGEST_B)["role"] == "alice"

    assert_verifies(host, gun, "release-1", DIGEST_B)
    assert_verifies(host, gun, "release-2", DIGEST_A)
    assert _signer_of_tags(host, gun) == {
        "release-1": (DIGEST_B, "alice"),
        "release-2": (DIGEST_A, "bob"),
    }
    signers = _signers(host, gun)
    assert list(signers) == ["alice", "bob"]
    assert signers["alice"]["tags"] == ["release-1"]
    assert signers["bob"]["tags"] == ["release-2"]


@pytest.mark.parametrize("terminating", [True, False], ids=["terminating", "not-terminating"])
def test_a_terminating_signer_keeps_later_signers_from_its_paths(
    terminating: bool,
    publisher: Trustkit,
    host: Trustkit,
    server: ServerProcess,
    gun: str,
    tmp_path: Path,
):
    """carol signs rc-*, dave everything. With carol terminating, a host never looks
    for an rc tag beyond carol: dave's rc-2 does not verify, his other tags do."""
    _init(publisher, gun)
    carol = _person(tmp_path, server.url, "carol")
    dave = _person(tmp_path, server.url, "dave")
    _generate(carol, "carol", tmp_path / "carol.pub")
    _generate(dave, "dave", tmp_path / "dave.pub")
    extra = ["--terminating"] if terminating else []
    _add(publisher, "carol", gun, "--key", str(tmp_path / "carol.pub"), "--paths", "rc-*", *extra)
    _add(publisher, "dave", gun, "--key", str(tmp_path / "dave.pub"))  # paths: '*'
    _sign(carol, gun, "rc-1", DIGEST_A)
    _sign(dave, gun, "rc-2", DIGEST_B)
    _sign(dave, gun, "nightly", DIGEST_C)

    assert_verifies(host, gun, "rc-1", DIGEST_A)
    assert_verifies(host, gun, "nightly", DIGEST_C)
    signers = _signers(host, gun)
    assert signers["carol"]["terminating"] is terminating
    assert signers["dave"]["paths"] == ["*"]
    if terminating:
        _not_signed(host, gun, "rc-2")
        assert signers["dave"]["tags"] == ["nightly"]
        assert "rc-2" not in _signer_of_tags(host, gun)
    else:
        assert_verifies(host, gun, "rc-2", DIGEST_B)
        assert signers["dave"]["tags"] == ["nightly", "rc-2"]
        assert _signer_of_tags(host, gun)["rc-2"] == (DIGEST_B, "dave")


# --- the owner signs ----------------------------------------------------------------


def test_the_owner_signs_any_tag_and_as_a_signer_when_asked(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    """The targets key signs any tag, release-* included. With a signer key in the same
    keystore, --signer alice signs as alice (sign, sign-file, publish and revoke)."""
    _init(publisher, gun)
    with_signer_key = {"TRUSTKIT_DELEGATION_PASSPHRASE": SIGNER_PASSPHRASE}
    keyid = _generate(publisher, "alice", tmp_path / "alice.pub", env=with_signer_key)
    owner = Trustkit(publisher.home, publisher.server_url, {**publisher.env, **with_signer_key})

    added = _add(owner, "alice", gun, "--key", str(tmp_path / "alice.pub"), "--paths", "release-*")

    assert added["published"] is True  # the key is here: the first version goes up too
    assert served_version(server, gun, "alice") == 1
    assert served_metadata(server, gun, "alice.json").signed.targets == {}
    assert _sign(owner, gun, "release-1", DIGEST_A)["role"] == "targets"  # default
    assert _sign(owner, gun, "latest", DIGEST_A)["role"] == "targets"
    as_alice = _sign(owner, gun, "release-2", DIGEST_B, "--signer", "alice")
    assert (as_alice["role"], as_alice["targets_version"]) == ("alice", 2)
    assert _sign(owner, gun, "release-3", DIGEST_B, "--signer", "targets")["role"] == "targets"
    outside = owner(
        "sign", f"{gun}:latest", "--digest", DIGEST_C, "--size", "1", "--signer", "alice"
    )
    assert outside.code == 2
    assert "may not sign latest" in outside.err
    unknown = owner("sign", f"{gun}:x", "--digest", DIGEST_C, "--size", "1", "--signer", "bob")
    assert unknown.code == 2
    assert f"{gun} has no signer bob" in unknown.err
    # A staged change published as alice; a file signed as alice.
    staged = owner("sign", f"{gun}:release-4", "--digest", DIGEST_C, "--size", "5", "--no-publish")
    assert staged.code == 0, staged.err
    published = owner("publish", gun, "--signer", "alice", "--json")
    assert published.code == 0, published.err
    assert (published.json["role"], published.json["targets_version"]) == ("alice", 3)
    notes = tmp_path / "notes.txt"
    notes.write_text("release notes\n")
    signed_file = owner("sign-file", gun, "release-notes", str(notes), "--signer", "alice")
    assert signed_file.code == 0, signed_file.err

    assert _signer_of_tags(host, gun) == {
        "latest": (DIGEST_A, "targets"),
        "release-1": (DIGEST_A, "targets"),
        "release-2": (DIGEST_B, "alice"),
        "release-3": (DIGEST_B, "targets"),
        "release-4": (DIGEST_C, "alice"),
    }
    # The signed file is listed as a file, not among the image tags.
    [notes_file] = host("inspect", gun, "--json").json["files"]
    assert notes_file == {
        "name": "release-notes",
        "sha256": served_metadata(server, gun, "alice.json")
        .signed.targets["release-notes"]
        .hashes["sha256"],
        "size": len("release notes\n"),
        "signer": "alice",
    }
    checked = host("verify-file", gun, "release-notes", str(notes))
    assert checked.code == 0, checked.err
    assert set(served_metadata(server, gun, "alice.json").signed.targets) == {
        "release-2",
        "release-4",
        "release-notes",
    }
    assert _signers(host, gun)["alice"]["keys"] == [keyid]

    revoked = owner("revoke", f"{gun}:release-2", "--signer", "alice")
    assert revoked.code == 0, revoked.err
    _not_signed(host, gun, "release-2")
    assert_verifies(host, gun, "release-3", DIGEST_B)


# --- removing a signer --------------------------------------------------------------


def test_a_removed_signer_s_tags_stop_verifying_and_the_name_can_be_reused(
    publisher: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    alice, old_keyid = _alice_signs_releases(publisher, server, gun, tmp_path)
    early = Trustkit(tmp_path / "early" / ".trustkit", server.url)
    assert_verifies(early, gun, "release-1", DIGEST_B)

    removed = publisher("signer", "remove", "alice", gun, "--json")

    assert removed.code == 0, removed.err
    assert removed.json["signer"] == "alice"
    assert removed.json["targets_version"] == served_version(server, gun, "targets")
    assert served_metadata(server, gun, "targets.json").signed.delegations is None
    assert _snapshot_roles(server, gun)["alice"] == 1  # kept: versions only go up
    fresh = Trustkit(tmp_path / "fresh" / ".trustkit", server.url)
    for host in (early, fresh):
        _not_signed(host, gun, "release-1")
        assert_verifies(host, gun, "1.0", DIGEST_A)
        assert _signer_of_tags(host, gun) == {"1.0": (DIGEST_A, "targets")}
        listed = host("signer", "list", gun)
        assert listed.code == 0, listed.err
        assert f"{gun} has no signers" in listed.out
        assert "alice" not in _status_of(host, gun)
    refused = alice("sign", f"{gun}:release-2", "--digest", DIGEST_C, "--size", "10")
    assert refused.code == 2
    assert "holds no key that may sign release-2" in refused.err

    # The owner adds alice again, with a new key it holds: her role starts over, empty,
    # at the version after the old one.
    with_signer_key = {"TRUSTKIT_DELEGATION_PASSPHRASE": "the new alice passphrase"}
    owner = Trustkit(publisher.home, publisher.server_url, {**publisher.env, **with_signer_key})
    new_keyid = _generate(owner, "alice", tmp_path / "alice-new.pub")
    assert new_keyid != old_keyid
    readded = _add(
        owner, "alice", gun, "--key", str(tmp_path / "alice-new.pub"), "--paths", "release-*"
    )

    assert readded["published"] is True
    role: Metadata[Targets] = served_metadata(server, gun, "alice.json")
    assert (role.signed.version, role.signed.targets) == (2, {})
    assert set(role.signatures) == {new_keyid}
    for host in (early, fresh):
        _not_signed(host, gun, "release-1")  # the old role does not come back
        assert _signers(host, gun)["alice"]["keys"] == [new_keyid]
    assert _sign(owner, gun, "release-1", DIGEST_C, "--signer", "alice")["targets_version"] == 3
    for host in (early, fresh):
        assert_verifies(host, gun, "release-1", DIGEST_C)
        assert _signer_of_tags(host, gun)["release-1"] == (DIGEST_C, "alice")
    # alice's old key signs nothing any more.
    old = alice("sign", f"{gun}:release-9", "--digest", DIGEST_A, "--size", "10")
    assert old.code == 2
    served: Metadata[Targets] = served_metadata(server, gun, "alice.json")
    served.signed.version += 1
    served.signed.targets["release-9"] = image_target("release-9", parse_digest(FORGED), 1, None)
    response = post_upload(
        server, gun, alice=sign_with(served.signed, [_key_signer(alice, old_keyid)])
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "threshold_not_met"
    _not_signed(early, gun, "release-9")


def test_re_adding_a_signer_with_a_new_key_the_owner_lacks_is_refused_and_changes_nothing(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    """alice's old role is still on the server, signed by her old key. A new key the
    owner does not hold cannot re-sign it, so the delegation to the new key cannot go
    up (the server would serve a role its delegator's keys do not sign)."""
    alice, _ = _alice_signs_releases(publisher, server, gun, tmp_path)
    assert publisher("signer", "remove", "alice", gun).code == 0
    new_pub = tmp_path / "alice-new.pub"
    assert alice("key", "generate", "alice", "--out", str(new_pub)).code == 0
    versions = _snapshot_roles(server, gun)

    result = publisher("signer", "add", "alice", gun, "--key", str(new_pub))

    assert result.code != 0, result.out
    assert "alice" in result.err
    assert "Traceback" not in result.err
    assert _snapshot_roles(server, gun) == versions
    _not_signed(host, gun, "release-1")
    assert _signers(host, gun) == {}


def test_a_removed_signer_cannot_come_back_with_its_old_signatures(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    """alice is removed; adding her again without a fresh first version of her role would
    make what she signed before count again, so it is refused and changes nothing."""
    _alice_signs_releases(publisher, server, gun, tmp_path)
    assert publisher("signer", "remove", "alice", gun).code == 0
    targets_version = served_metadata(server, gun, "targets.json").signed.version

    for paths in ("release-*", "beta-*"):
        again = publisher(
            "signer", "add", "alice", gun, "--key", str(tmp_path / "alice.pub"), "--paths", paths
        )

        assert again.code == 2
        assert "was removed from" in again.err
        assert "choose another name" in again.err
    assert served_metadata(server, gun, "targets.json").signed.version == targets_version
    _not_signed(host, gun, "release-1")


def test_a_signer_whose_key_the_owner_lacks_appears_once_it_signs(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    _init(publisher, gun)
    _sign(publisher, gun, "1.0", DIGEST_A)
    alice = _person(tmp_path, server.url, "alice")
    _generate(alice, "alice", tmp_path / "alice.pub")

    added = publisher("signer", "add", "alice", gun, "--key", str(tmp_path / "alice.pub"))

    assert added.code == 0, added.err
    assert "its role appears once alice first signs" in added.out
    assert "alice" not in _snapshot_roles(server, gun)
    assert_verifies(host, gun, "1.0", DIGEST_A)
    _not_signed(host, gun, "release-1")
    assert _signers(host, gun)["alice"]["published"] is False
    assert _signers(host, gun)["alice"]["paths"] == ["*"]
    listed = host("signer", "list", gun)
    assert "(not published yet)" in listed.out
    assert "alice" not in _status_of(host, gun)

    _sign(alice, gun, "release-1", DIGEST_B)

    assert_verifies(host, gun, "release-1", DIGEST_B)
    assert _signers(host, gun)["alice"]["published"] is True
    assert "(not published yet)" not in host("signer", "list", gun).out
    assert _status_of(host, gun)["alice"]["version"] == 1


# --- host policy --------------------------------------------------------------------


@pytest.fixture
def recorder(tmp_path: Path) -> Recorder:
    bindir = tmp_path / "bin"
    write_recorder(bindir / "docker")
    return Recorder(bindir, tmp_path / "docker-calls.jsonl")


def test_a_policy_naming_a_signer_lets_only_its_tags_through_the_docker_gate(
    publisher: Trustkit,
    host: Trustkit,
    server: ServerProcess,
    recorder: Recorder,
    gun: str,
    tmp_path: Path,
):
    _alice_signs_releases(publisher, server, gun, tmp_path)
    policy = tmp_path / "policy.toml"
    policy.write_text(f'[[rule]]\nrepositories = ["{gun}"]\nsigners = ["alice"]\n')

    refused = host.process("run", "--policy", str(policy), "--rm", f"{gun}:1.0", env=recorder.env())

    assert refused.code == 1, refused.err
    assert f"{gun}:1.0 is signed by 'targets'" in refused.err
    assert "accepts only alice" in refused.err
    assert not recorder.invoked

    allowed = host.process(
        "run", "--policy", str(policy), "--rm", f"{gun}:release-1", env=recorder.env()
    )

    assert allowed.code == 0, allowed.err
    assert recorder.calls() == [["docker", "run", "--rm", f"{gun}@{DIGEST_B}"]]


# --- mistakes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Bad Name"], "'Bad Name' is not a valid signer name"),
        (["targets"], "'targets' is not a valid signer name"),
        (["bob", "--threshold", "2"], "--threshold 2 must be between 1 and 1"),
        (["alice"], "already has a signer alice"),
        (["bob", "--key", "PRIVATE"], "is not a public key TUF metadata can use"),
    ],
    ids=["bad-name", "role-name", "threshold", "existing", "not-a-public-key"],
)
def test_signer_add_mistakes_change_nothing(
    args: list[str],
    message: str,
    publisher: Trustkit,
    server: ServerProcess,
    gun: str,
    tmp_path: Path,
):
    """Each is a usage error (exit 2) before anything is uploaded. ``PRIVATE`` is a PEM
    private key, handed over by mistake instead of the public one."""
    _alice_signs_releases(publisher, server, gun, tmp_path)
    private = tmp_path / "bob.key"
    private.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        )
    )
    name, *rest = [str(private) if arg == "PRIVATE" else arg for arg in args]
    versions = _snapshot_roles(server, gun)

    result = publisher("signer", "add", name, gun, "--key", str(tmp_path / "alice.pub"), *rest)

    assert result.code == 2, result.out
    assert message in result.err
    assert "Traceback" not in result.err
    assert _snapshot_roles(server, gun) == versions
    assert list(_signers(publisher, gun)) == ["alice"]


def test_signer_remove_and_list_mistakes(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str
):
    _init(publisher, gun)
    _sign(publisher, gun, "1.0", DIGEST_A)
    targets = served_version(server, gun, "targets")

    unknown = publisher("signer", "remove", "alice", gun)
    listed = host("signer", "list", gun)
    as_json = host("signer", "list", gun, "--json")

    assert unknown.code == 2
    assert f"{gun} has no signer alice" in unknown.err
    assert served_version(server, gun, "targets") == targets
    assert listed.code == 0, listed.err
    assert listed.out.strip() == f"{gun} has no signers: only the targets key signs"
    assert as_json.json == {"repository": gun, "signers": []}


def test_key_generate_refuses_a_bad_name_and_an_existing_file(
    server: ServerProcess, tmp_path: Path
):
    alice = _person(tmp_path, server.url, "alice")
    existing = tmp_path / "alice.pub"
    existing.write_text("someone else's key\n")

    overwrite = alice("key", "generate", "alice", "--out", str(existing))
    bad_name = alice("key", "generate", "Alice Smith", "--out", str(tmp_path / "a.pub"))
    role_name = alice("key", "generate", "root", "--out", str(tmp_path / "r.pub"))

    assert overwrite.code == 2
    assert f"{existing} already exists" in overwrite.err
    assert existing.read_text() == "someone else's key\n"
    for result in (bad_name, role_name):
        assert result.code == 2
        assert "is not a valid signer name" in result.err
    assert not (tmp_path / "a.pub").exists() and not (tmp_path / "r.pub").exists()
    listed = alice("key", "list", "--json")
    assert listed.json["keys"] == []
    assert not os.path.exists(alice.home / "private") or not any((alice.home / "private").iterdir())
