"""Multi-signature approval, end to end through the CLI and the real server.

A role whose threshold is more than one key is published only once enough of its
holders signed: the first holder's upload is kept pending (hosts never see it),
``trustkit approve`` shows each pending change as its effect and adds a signature, and
the approval that completes the threshold publishes. Root changes work the same way,
through the server or through a file for holders who stay offline.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import CryptoSigner, SSlibKey
from tuf.api.metadata import DelegatedRole, Delegations, Metadata, Root, Targets

from client.approval import PendingChange, describe_change
from client.verify import TrustedRepository
from keys.keystore import Keystore
from keys.passphrase import PassphraseSource
from server.publishing import MAX_PENDING
from tests.support.harness import (
    DIGEST_A,
    DIGEST_B,
    ServerProcess,
    Trustkit,
    assert_verifies,
    publisher_cli,
)
from tests.support.server_side import post_upload, served_metadata, served_version
from trustkit.bins import BINS_ROLE, bins_of, lay_out_bins
from trustkit.expiry import utc_now
from trustkit.metadata import TOP_LEVEL_ROLES, image_target, new_root, new_targets, sign_with
from trustkit.names import parse_digest

PASSPHRASE = "co-holder passphrase for tests"


def _person(tmp_path: Path, server_url: str, name: str) -> Trustkit:
    """A key holder with a keystore of their own."""
    return Trustkit(
        tmp_path / name / ".trustkit",
        server_url,
        {"TRUSTKIT_DELEGATION_PASSPHRASE": PASSPHRASE, "TRUSTKIT_ROOT_PASSPHRASE": PASSPHRASE},
    )


def _ok(result: Any) -> dict[str, Any]:
    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    data: dict[str, Any] = result.json
    return data


def _generate(tk: Trustkit, name: str, out: Path) -> str:
    keyid: str = _ok(tk("key", "generate", name, "--out", str(out), "--json"))["keyid"]
    return keyid


def _sign(tk: Trustkit, gun: str, tag: str, digest: str, *args: str) -> dict[str, Any]:
    return _ok(tk("sign", f"{gun}:{tag}", "--digest", digest, "--size", "100", "--json", *args))


def _not_signed(host: Trustkit, gun: str, tag: str) -> None:
    result = host("verify", f"{gun}:{tag}", "--offline")
    assert result.code == 1, result.out
    assert f"no signed tag {tag} in {gun}" in result.err


def _pending_ids(tk: Trustkit, gun: str) -> list[str]:
    """The ids of the changes the server holds pending for ``gun``."""
    response = httpx.get(f"{tk.server_url}/v2/{gun}/_trust/tuf/pending", timeout=30)
    assert response.status_code == 200
    return [change["id"] for change in response.json()["pending"]]


def _share(
    tk: Trustkit, gun: str, role: str, *others: Path, threshold: int, out: Path | None = None
) -> dict[str, Any]:
    """``key rotate REPO ROLE --key OTHER… --threshold N [--out FILE]``, which succeeds."""
    args = [arg for other in others for arg in ("--key", str(other))]
    args += ["--out", str(out)] if out else []
    return _ok(tk("key", "rotate", gun, role, *args, "--threshold", str(threshold), "--json"))


def _two_of_two_signer(
    publisher: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
) -> tuple[Trustkit, Trustkit]:
    """The owner signed 1.0; release-* tags need both alice and bob."""
    _ok(publisher("init", gun, "--json"))
    _sign(publisher, gun, "1.0", DIGEST_A)
    alice = _person(tmp_path, server.url, "alice")
    bob = _person(tmp_path, server.url, "bob")
    _generate(alice, "alice", tmp_path / "alice.pub")
    _generate(bob, "bob", tmp_path / "bob.pub")
    keys = ["--key", str(tmp_path / "alice.pub"), "--key", str(tmp_path / "bob.pub")]
    _ok(
        publisher(
            "signer",
            "add",
            "release",
            gun,
            *keys,
            "--paths",
            "release-*",
            "--threshold",
            "2",
            "--json",
        )
    )
    return alice, bob


# --- a signer role with threshold 2 ---------------------------------------------------


def test_a_tag_needing_two_signers_is_published_only_when_the_second_approves(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    alice, bob = _two_of_two_signer(publisher, server, gun, tmp_path)
    assert_verifies(host, gun, "1.0", DIGEST_A)
    release_url = server.metadata_url(gun, "release.json")
    assert httpx.get(release_url, timeout=30).status_code == 404  # nobody signed yet

    first = _sign(alice, gun, "release-1", DIGEST_B)
    assert first["published"] is False
    pending = first["pending"]
    [need] = pending["needs"]
    assert need["role"] == "release"
    assert need["threshold"] == 2 and len(need["signed"]) == 1
    # Not served: hosts see no release-1, and the role did not move.
    _not_signed(host, gun, "release-1")
    assert httpx.get(release_url, timeout=30).status_code == 404
    assert _pending_ids(host, gun) == [pending["id"]]
    status = host("status", gun)
    assert status.code == 0, status.err
    assert f"1 change(s) waiting for co-signers: trustkit approve {gun}" in status.out

    review = bob("approve", gun, "--yes", "--json")
    data = _ok(review)
    # bob was shown the change as its effect before signing it.
    assert f"release-1: (new) -> {DIGEST_B}" in review.err
    assert "release needs 1 more signature" in review.err
    [outcome] = data["results"]
    assert outcome["id"] == pending["id"]
    assert outcome["published"] is True
    assert len(outcome["signed_with"]) == 1

    assert_verifies(host, gun, "release-1", DIGEST_B)
    assert _pending_ids(host, gun) == []
    signatures = served_metadata(server, gun, "release.json").signatures
    assert len(signatures) == 2


def test_approve_without_yes_off_a_terminal_signs_nothing(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    alice, bob = _two_of_two_signer(publisher, server, gun, tmp_path)
    pending_id = _sign(alice, gun, "release-1", DIGEST_B)["pending"]["id"]

    result = bob("approve", gun)
    assert result.code == 2
    assert "needs a confirmation" in result.err and "--yes" in result.err
    assert f"release-1: (new) -> {DIGEST_B}" in result.err
    assert _pending_ids(host, gun) == [pending_id]
    _not_signed(host, gun, "release-1")


def test_a_holder_cannot_approve_twice_or_without_a_key_that_may_sign(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    alice, _ = _two_of_two_signer(publisher, server, gun, tmp_path)
    pending_id = _sign(alice, gun, "release-1", DIGEST_B)["pending"]["id"]

    again = alice("approve", gun, "--yes")
    assert again.code == 2
    assert "holds none of the keys that may still sign" in again.err
    assert pending_id in again.err
    stranger = _person(tmp_path, server.url, "mallory")
    _generate(stranger, "mallory", tmp_path / "mallory.pub")
    refused = stranger("approve", gun, "--yes")
    assert refused.code == 2
    assert "holds none of the keys that may still sign" in refused.err
    assert _pending_ids(host, gun) == [pending_id]
    _not_signed(host, gun, "release-1")


def test_the_server_refuses_an_approval_of_other_content_or_without_a_new_signature(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    """Someone who posts to a pending change directly: what they sign must be exactly
    what is pending, and must add a valid signature."""
    alice, _ = _two_of_two_signer(publisher, server, gun, tmp_path)
    first = _sign(alice, gun, "release-1", DIGEST_B)["pending"]
    url = f"{server.url}/v2/{gun}/_trust/tuf/pending/{first['id']}"
    held = httpx.get(f"{server.url}/v2/{gun}/_trust/tuf/pending", timeout=30).json()
    metadata = held["pending"][0]["roles"]["release"]

    same = json.dumps(metadata).encode()
    files = {"files": ("release.json", same, "application/json")}
    answer = httpx.post(url, files=files, headers=server.auth_headers(), timeout=30)
    assert answer.status_code == 400
    assert answer.json()["error"] == "no_new_signature"

    metadata["signed"]["targets"]["release-1"]["hashes"]["sha256"] = "f" * 64
    files = {"files": ("release.json", json.dumps(metadata).encode(), "application/json")}
    answer = httpx.post(url, files=files, headers=server.auth_headers(), timeout=30)
    assert answer.status_code == 400
    assert answer.json()["error"] == "changed_content"
    assert _pending_ids(host, gun) == [first["id"]]


def test_a_pending_change_made_stale_by_a_later_publish_is_dropped(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    alice, bob = _two_of_two_signer(publisher, server, gun, tmp_path)
    older = _sign(alice, gun, "release-1", DIGEST_A)["pending"]["id"]
    newer = _sign(bob, gun, "release-2", DIGEST_B)["pending"]["id"]
    assert set(_pending_ids(host, gun)) == {older, newer}

    _ok(alice("approve", gun, "--id", newer, "--yes", "--json"))
    assert_verifies(host, gun, "release-2", DIGEST_B)
    # Both were release v1: once one is published, the other can never be.
    assert _pending_ids(host, gun) == []
    late = bob("approve", gun, "--id", older, "--yes")
    assert late.code == 2
    assert f"no pending change {older}" in late.err
    _not_signed(host, gun, "release-1")


def test_a_reviewer_can_withdraw_a_pending_change(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    alice, bob = _two_of_two_signer(publisher, server, gun, tmp_path)
    pending_id = _sign(alice, gun, "release-1", DIGEST_B)["pending"]["id"]
    data = _ok(bob("approve", gun, "--reject", "--yes", "--json"))
    assert data["results"] == [{"id": pending_id, "withdrawn": True}]
    assert _pending_ids(host, gun) == []
    _not_signed(host, gun, "release-1")


def test_pending_changes_expire(start_server: Any, tmp_path: Path, gun: str):
    server: ServerProcess = start_server("--expiry", "pending=2s")
    publisher = publisher_cli(tmp_path / "owner" / ".trustkit", server.url)
    host = Trustkit(tmp_path / "host" / ".trustkit", server.url)
    alice, bob = _two_of_two_signer(publisher, server, gun, tmp_path)
    pending = _sign(alice, gun, "release-1", DIGEST_B)["pending"]
    assert _pending_ids(host, gun) == [pending["id"]]

    time.sleep(3)
    assert _pending_ids(host, gun) == []
    late = bob("approve", gun, "--yes", "--json")
    assert _ok(late)["results"] == []
    assert "nothing of" in late.out or late.json["results"] == []
    _not_signed(host, gun, "release-1")


# --- several targets keys -------------------------------------------------------------


def test_targets_with_two_holders_publish_each_release_after_the_second_approves(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    _ok(publisher("init", gun, "--json"))
    _sign(publisher, gun, "1.0", DIGEST_A)
    assert_verifies(host, gun, "1.0", DIGEST_A)
    bob = _person(tmp_path, server.url, "bob")
    bob_key = _generate(bob, "bob", tmp_path / "bob.pub")

    data = _share(publisher, gun, "targets", tmp_path / "bob.pub", threshold=2)
    assert data["published"] is False
    assert bob_key in data["new_keys"]
    assert_verifies(host, gun, "1.0", DIGEST_A)  # nothing changed for hosts yet
    _ok(bob("approve", gun, "--yes", "--json"))
    status = {r["role"]: r for r in _ok(host("status", gun, "--json"))["roles"]}
    assert status["targets"]["threshold"] == 2
    assert bob_key in status["targets"]["keys"]
    assert_verifies(host, gun, "1.0", DIGEST_A)  # re-signed tags survived the rotation

    assert _sign(publisher, gun, "2.0", DIGEST_B)["published"] is False
    _not_signed(host, gun, "2.0")
    _ok(bob("approve", gun, "--yes", "--json"))
    assert_verifies(host, gun, "2.0", DIGEST_B)


# --- root ceremonies ------------------------------------------------------------------


def _root_keys(server: ServerProcess, gun: str) -> tuple[set[str], int]:
    root = served_metadata(server, gun, "root.json").signed
    return set(root.roles["root"].keyids), root.roles["root"].threshold


def test_a_two_of_three_root_through_the_server_and_recovery_from_a_lost_root_key(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    """The owner shares root with bob and carol (2 of 3); later the owner's root key is
    lost, and bob and carol replace it without it. A host that trusted root v1 follows
    every step; a root signed with the lost key alone is refused afterwards."""
    _ok(publisher("init", gun, "--json"))
    _sign(publisher, gun, "1.0", DIGEST_A)
    assert_verifies(host, gun, "1.0", DIGEST_A)  # the host pins root v1 here
    bob = _person(tmp_path, server.url, "bob")
    carol = _person(tmp_path, server.url, "carol")
    bob_key = _generate(bob, "bob-root", tmp_path / "bob.pub")
    carol_key = _generate(carol, "carol-root", tmp_path / "carol.pub")

    data = _share(publisher, gun, "root", tmp_path / "bob.pub", tmp_path / "carol.pub", threshold=2)
    assert data["published"] is False
    owner_key = data["new_keys"][0]
    assert served_version(server, gun, "root") == 1
    review = bob("approve", gun, "--yes", "--json")
    _ok(review)
    assert f"+{bob_key[:12]}" in review.err and "threshold 1 -> 2" in review.err
    assert _root_keys(server, gun) == ({owner_key, bob_key, carol_key}, 2)
    assert_verifies(host, gun, "1.0", DIGEST_A)

    # The owner's keystore is lost. Bob replaces the owner's key with a new one of his.
    lost = publisher.home
    data = _share(bob, gun, "root", tmp_path / "carol.pub", threshold=2)
    assert data["published"] is False
    bob_new = data["new_keys"][0]
    _ok(carol("approve", gun, "--yes", "--json"))
    assert _root_keys(server, gun) == ({bob_new, carol_key}, 2)
    assert served_version(server, gun, "root") == 3

    # A host that trusted root v1 walks v2 and v3 and keeps verifying.
    assert_verifies(host, gun, "1.0", DIGEST_A)
    # The lost key, found by someone else, can no longer sign a root.
    thief = Trustkit(lost, server.url, publisher.env)
    stolen = thief("key", "rotate", gun, "root")
    assert stolen.code != 0
    assert "Traceback" not in stolen.err
    assert served_version(server, gun, "root") == 3


def test_a_root_ceremony_through_a_file_for_an_offline_holder(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    _ok(publisher("init", gun, "--json"))
    _sign(publisher, gun, "1.0", DIGEST_A)
    assert_verifies(host, gun, "1.0", DIGEST_A)
    # Bob never goes online: his trustkit points at a server that does not exist.
    bob = _person(tmp_path, "http://127.0.0.1:9", "bob")
    bob_key = _generate(bob, "bob-root", tmp_path / "bob.pub")
    change = tmp_path / "root-change.json"

    data = _share(publisher, gun, "root", tmp_path / "bob.pub", threshold=2, out=change)
    assert data["published"] is False
    assert served_version(server, gun, "root") == 1
    before = change.read_bytes()

    signing = bob("approve", gun, "--file", str(change), "--yes", "--json")
    assert _ok(signing)["signed_with"] == [bob_key]
    # Offline, bob sees the root he signs in full: its root keys and threshold, and
    # that it is not compared with anything (his machine never verified the repository).
    assert "never verified" in signing.err
    assert f"root: keys {data['new_keys'][0][:12]}, {bob_key[:12]}; threshold 2" in signing.err
    assert change.read_bytes() != before

    _ok(publisher("submit", gun, str(change), "--json"))
    assert _root_keys(server, gun) == ({data["new_keys"][0], bob_key}, 2)
    assert_verifies(host, gun, "1.0", DIGEST_A)


def test_an_incompletely_signed_root_file_goes_pending_when_submitted(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    _ok(publisher("init", gun, "--json"))
    bob = _person(tmp_path, server.url, "bob")
    _generate(bob, "bob-root", tmp_path / "bob.pub")
    change = tmp_path / "root-change.json"
    _share(publisher, gun, "root", tmp_path / "bob.pub", threshold=2, out=change)
    submitted = _ok(publisher("submit", gun, str(change), "--json"))
    assert submitted["published"] is False
    assert submitted["pending"]["needs"][0]["role"] == "root"
    assert served_version(server, gun, "root") == 1
    _ok(bob("approve", gun, "--yes", "--json"))
    assert served_version(server, gun, "root") == 2


def test_a_root_signed_only_by_keys_it_lists_itself_is_refused_not_kept_pending(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    """Pending is for co-signers of the trusted root: anyone can sign a root that lists
    their own key, and such a root must not even be kept."""
    _ok(publisher("init", gun, "--json"))
    mallory = _person(tmp_path, server.url, "mallory")
    _generate(mallory, "mallory", tmp_path / "mallory.pub")
    change = tmp_path / "root-change.json"
    _share(publisher, gun, "root", tmp_path / "mallory.pub", threshold=1, out=change)
    # Mallory takes the owner's signature off: her root carries hers alone.
    data = json.loads(change.read_text())
    data["roles"]["root"]["signatures"] = []
    change.write_text(json.dumps(data))
    _ok(mallory("approve", gun, "--file", str(change), "--yes", "--json"))
    refused = mallory("submit", gun, str(change))
    assert refused.code != 0
    assert "previous root keys" in refused.err
    assert _pending_ids(publisher, gun) == []
    assert served_version(server, gun, "root") == 1


# --- what the review of pending changes guards against -------------------------------


def _targets_two_of_two(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
) -> Trustkit:
    """Targets needs the owner and bob; returns bob."""
    _ok(publisher("init", gun, "--json"))
    _sign(publisher, gun, "1.0", DIGEST_A)
    assert_verifies(host, gun, "1.0", DIGEST_A)
    bob = _person(tmp_path, server.url, "bob")
    _generate(bob, "bob", tmp_path / "bob.pub")
    _share(publisher, gun, "targets", tmp_path / "bob.pub", threshold=2)
    _ok(bob("approve", gun, "--yes", "--json"))
    return bob


def test_a_second_release_while_the_first_awaits_approval_carries_both(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    bob = _targets_two_of_two(publisher, host, server, gun, tmp_path)
    first = _sign(publisher, gun, "2.0", DIGEST_A)["pending"]["id"]
    second = publisher("sign", f"{gun}:2.1", "--digest", DIGEST_B, "--size", "100", "--json")
    data = _ok(second)
    assert f"carries the 1 change(s) of your pending change {first}" in second.err
    # One pending change, holding both releases; the first was withdrawn.
    assert _pending_ids(host, gun) == [data["pending"]["id"]]
    _ok(bob("approve", gun, "--yes", "--json"))
    assert_verifies(host, gun, "2.0", DIGEST_A)
    assert_verifies(host, gun, "2.1", DIGEST_B)


def test_changes_of_an_expired_pending_change_go_up_only_when_sent_again(
    start_server: Any, tmp_path: Path, gun: str
):
    server: ServerProcess = start_server("--expiry", "pending=2s")
    publisher = publisher_cli(tmp_path / "owner" / ".trustkit", server.url)
    host = Trustkit(tmp_path / "host" / ".trustkit", server.url)
    bob = _targets_two_of_two(publisher, host, server, gun, tmp_path)
    _sign(publisher, gun, "2.0", DIGEST_A)
    time.sleep(3)  # nobody approved 2.0 in time

    second = publisher("sign", f"{gun}:2.1", "--digest", DIGEST_B, "--size", "100", "--json")

    _ok(second)
    assert "1 change(s) of your pending change lapsed" in second.err
    assert f"trustkit publish {gun} --resend" in second.err
    status = publisher("status", gun)
    assert "1 change(s) lapsed (rejected, withdrawn or expired)" in status.out
    assert "  sign 2.0 -> sha256:" in status.out
    _ok(bob("approve", gun, "--yes", "--json"))
    assert_verifies(host, gun, "2.1", DIGEST_B)
    _not_signed(host, gun, "2.0")  # lapsed: not sent again on its own
    resent = publisher("publish", gun, "--resend", "--json")
    _ok(resent)
    _ok(bob("approve", gun, "--yes", "--json"))
    assert_verifies(host, gun, "2.0", DIGEST_A)


def test_a_change_a_co_signer_rejected_is_never_sent_again_silently(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    bob = _targets_two_of_two(publisher, host, server, gun, tmp_path)
    _sign(publisher, gun, "bad", DIGEST_A)
    [change_id] = _pending_ids(publisher, gun)
    rejected = bob("approve", gun, "--reject", "--id", change_id, "--yes")
    assert rejected.code == 0, rejected.err

    later = publisher("sign", f"{gun}:good", "--digest", DIGEST_B, "--size", "100")
    _ok(bob("approve", gun, "--yes", "--json"))

    assert later.code == 0, later.err
    assert "1 change(s) of your pending change lapsed" in later.err
    assert_verifies(host, gun, "good", DIGEST_B)
    _not_signed(host, gun, "bad")
    dropped = publisher("reset", gun, "--json")
    assert dropped.code == 0 and dropped.json["dropped"] == 1
    nothing = publisher("publish", gun, "--resend")
    assert nothing.code == 0 and "nothing to publish" in nothing.out


def test_reset_drops_staged_changes_of_the_tags_named(publisher: Trustkit, gun: str):
    publisher("init", gun)
    for tag in ("a", "b", "c"):
        staged = publisher(
            "sign", f"{gun}:{tag}", "--digest", DIGEST_A, "--size", "1", "--no-publish"
        )
        assert staged.code == 0, staged.err

    dropped = publisher("reset", gun, "a", "c", "--json")
    status = publisher("status", gun)

    assert dropped.json == {"repository": gun, "dropped": 2}
    assert "1 staged change(s) here" in status.out
    assert "  sign b -> sha256:" in status.out
    published = publisher("publish", gun, "--json")
    assert published.json["changes"] == 1


def test_the_same_change_sent_again_joins_its_pending_change_without_junk_signatures(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    alice, _ = _two_of_two_signer(publisher, server, gun, tmp_path)
    first = _sign(alice, gun, "release-1", DIGEST_B)["pending"]
    listed = httpx.get(f"{server.url}/v2/{gun}/_trust/tuf/pending", timeout=30).json()
    metadata = listed["pending"][0]["roles"]["release"]
    metadata["signatures"].append({"keyid": "e" * 64, "sig": "00" * 64})  # junk
    answer = post_upload(server, gun, release=json.dumps(metadata).encode())
    assert answer.status_code == 202, answer.text
    assert answer.json()["pending"]["id"] == first["id"]
    listed = httpx.get(f"{server.url}/v2/{gun}/_trust/tuf/pending", timeout=30).json()
    [held] = listed["pending"]
    assert [s["keyid"] for s in held["roles"]["release"]["signatures"]] == first["needs"][0][
        "signed"
    ]


def test_a_repository_holds_a_bounded_number_of_pending_changes(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    alice, _ = _two_of_two_signer(publisher, server, gun, tmp_path)
    keystore = Keystore(alice.home)
    [record] = keystore.records()
    signer = keystore.signer(record, PassphraseSource(alice.env))
    for number in range(MAX_PENDING + 1):
        role = new_targets(utc_now() + timedelta(days=30))
        role.targets[f"release-{number}"] = image_target(
            f"release-{number}", parse_digest(DIGEST_A), 100, None
        )
        answer = post_upload(server, gun, release=sign_with(role, [signer]))
        if number < MAX_PENDING:
            assert answer.status_code == 202, answer.text
        else:
            assert answer.status_code == 429
            assert answer.json()["error"] == "too_many_pending"
    assert len(_pending_ids(host, gun)) == MAX_PENDING


def test_a_key_listed_under_another_key_s_id_is_refused(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    """A root holder who swaps the targets key's material behind its id would show a
    co-signer "no change" and hand targets to someone else: the server refuses it."""
    _ok(publisher("init", gun, "--json"))
    root: Root = served_metadata(server, gun, "root.json").signed
    keystore = Keystore(publisher.home)
    [root_record] = keystore.find(gun, "root")
    attacker = SSlibKey.from_crypto(Ed25519PrivateKey.generate().public_key())
    targets_id = root.roles["targets"].keyids[0]
    root.keys[targets_id] = SSlibKey(targets_id, attacker.keytype, attacker.scheme, attacker.keyval)
    root.version += 1
    signed = sign_with(root, [keystore.signer(root_record, PassphraseSource(publisher.env))])
    answer = post_upload(server, gun, root=signed)
    assert answer.status_code == 400
    assert answer.json()["error"] == "key_id_mismatch"
    assert served_version(server, gun, "root") == 1


def test_approval_mistakes_are_usage_errors_that_change_nothing(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    alice, bob = _two_of_two_signer(publisher, server, gun, tmp_path)
    _sign(alice, gun, "release-1", DIGEST_A)
    _sign(bob, gun, "release-2", DIGEST_B)  # two holders, two pending changes
    pending = sorted(_pending_ids(host, gun))
    assert len(pending) == 2
    change = tmp_path / "change.json"
    several = bob("approve", gun, "--export", str(change))
    assert several.code == 2 and "--export writes one" in several.err
    assert not change.exists()
    _ok(bob("approve", gun, "--export", str(change), "--id", pending[0], "--json"))
    mixed = bob("approve", gun, "--file", str(change), "--reject", "--yes")
    assert mixed.code == 2 and "--file signs the change in a file" in mixed.err
    unknown = bob("approve", "registry.test/no-such-repository", "--yes")
    assert unknown.code != 0 and "no repository" in unknown.err
    [targets_key] = [r.keyid for r in Keystore(publisher.home).find(gun, "targets")]
    wrong_key = publisher("key", "rotate", gun, "root", "--use", targets_key)
    assert wrong_key.code == 2 and "--use takes a key kept for the root" in wrong_key.err
    assert served_version(server, gun, "root") == 1
    assert sorted(_pending_ids(host, gun)) == pending


# --- what a review shows: every change of trust, anywhere in the delegation tree -----


def _key() -> SSlibKey:
    public = CryptoSigner.generate_ed25519().public_key
    assert isinstance(public, SSlibKey)
    return public


def _trusted_with_bins() -> tuple[TrustedRepository, SSlibKey]:
    """A repository as a host trusts it: targets (key OWNER) signs a signer, release,
    and delegates everything else to four hash bins, signed by OWNER too."""
    owner, release_key = _key(), _key()
    expires = utc_now() + timedelta(days=365)
    root = new_root({role: [_key()] for role in TOP_LEVEL_ROLES}, expires)
    targets = new_targets(expires)
    targets.delegations = Delegations(
        keys={release_key.keyid: release_key},
        roles={"release": DelegatedRole("release", [release_key.keyid], 1, False, ["release-*"])},
    )
    bins = lay_out_bins(targets, [owner], 1, 4, expires)
    delegated: dict[str, Targets] = {BINS_ROLE: bins}
    for name in bins_of(bins).get_roles():  # type: ignore[union-attr]
        delegated[name] = new_targets(expires)
    delegated["bins-0"].targets["1.0"] = image_target("1.0", parse_digest(DIGEST_A), 100, None)
    trusted = TrustedRepository("registry.test/app", root, targets, [], False, delegated)
    return trusted, owner


def _edited(signed: Any, edit: Any) -> Metadata[Any]:
    """SIGNED one version up, with EDIT applied to its dict form (as an author who
    writes metadata by hand can)."""
    data = signed.to_dict()
    data["version"] += 1
    edit(data)
    return Metadata.from_dict({"signed": data, "signatures": []})


def _review(trusted: TrustedRepository, roles: dict[str, Metadata[Any]]) -> str:
    change = PendingChange(trusted.gun, roles, "change-1")
    return "\n".join(describe_change(change, trusted))


ATTACKER = "a" * 64


def _a_delegation() -> dict[str, Any]:
    """Delegations a bin should never hold: its tags handed on to the attacker."""
    role = DelegatedRole("elsewhere", [ATTACKER], 1, True, ["*"])
    return {"keys": {}, "roles": [role.to_dict()]}


def _bins_to(key: str, threshold: int = 1) -> Any:
    def edit(data: dict[str, Any]) -> None:
        succinct = data["delegations"]["succinct_roles"]
        succinct["keyids"], succinct["threshold"] = [key], threshold
        data["delegations"]["keys"][key] = {
            "keytype": "ed25519",
            "scheme": "ed25519",
            "keyval": {"public": "b" * 64},
        }

    return edit


def test_review_shows_bins_handed_to_another_key_not_a_re_signing():
    """The upload of ``bins`` that lists the proposer's key alone for every bin: once
    approved, the proposer alone signs any tag. It must read as what it is."""
    trusted, owner = _trusted_with_bins()
    shown = _review(trusted, {"bins": _edited(trusted.delegated[BINS_ROLE], _bins_to(ATTACKER))})
    assert f"hash bins: keys +{ATTACKER[:12]} -{owner.keyid[:12]} (now {ATTACKER[:12]})" in shown
    assert f"delegated key {ATTACKER[:12]}: added" in shown
    assert "re-signed" not in shown


@pytest.mark.parametrize(
    ("role", "edit", "shown"),
    [
        (
            "bins",
            lambda d: d["delegations"]["succinct_roles"].update(threshold=2),
            "threshold 1 -> 2",
        ),
        (
            "bins",
            lambda d: d["delegations"]["succinct_roles"].update(bit_length=4),
            "bit_length 2 -> 4",
        ),
        (
            "bins",
            lambda d: d["delegations"]["succinct_roles"].update(name_prefix="evil"),
            "hash bins: name_prefix bins -> evil",
        ),
        (
            "targets",
            lambda d: d["delegations"]["roles"][-1].update(keyids=[ATTACKER]),
            f"delegation to bins: keys +{ATTACKER[:12]}",
        ),
        (
            "targets",
            lambda d: d["delegations"]["roles"][-1].update(threshold=2),
            "delegation to bins: threshold 1 -> 2",
        ),
        (
            "targets",
            lambda d: d["delegations"]["roles"][0].update(paths=["*"]),
            "signer release: paths +* -release-* (now *)",
        ),
        (
            "targets",
            lambda d: d["delegations"]["roles"][0].update(paths=None, path_hash_prefixes=["0"]),
            "signer release: path_hash_prefixes (none) -> 0; paths release-* -> (none)",
        ),
        (
            "targets",
            lambda d: d["delegations"]["roles"][0].update(terminating=True),
            "signer release: terminating false -> true",
        ),
        (
            "targets",
            lambda d: d["delegations"]["roles"].reverse(),
            "signer release: trust order 1 -> 2",
        ),
        (
            "targets",
            lambda d: d["delegations"]["keys"][next(iter(d["delegations"]["keys"]))].update(
                keyval={"public": "c" * 64}
            ),
            " -> ed25519:",
        ),
        (
            "targets",
            lambda d: d["delegations"].update(x_unknown="y"),
            "delegations: added (x_unknown y)",
        ),
        ("targets", lambda d: d.update(x_unknown={"a": 1}), "x_unknown: added (a 1)"),
        ("targets", lambda d: d.update(expires="2099-01-01T00:00:00Z"), "expires "),
        (
            "root",
            lambda d: d.update(consistent_snapshot=False),
            "consistent_snapshot: true -> false",
        ),
        ("root", lambda d: d["roles"]["targets"].update(threshold=2), "targets: threshold 1 -> 2"),
        ("bins-0", lambda d: d.update(delegations=_a_delegation()), "signer elsewhere: added"),
    ],
)
def test_review_shows_every_change_of_trust(role: str, edit: Any, shown: str):
    trusted, _ = _trusted_with_bins()
    old = {"root": trusted.root, "targets": trusted.targets}.get(role) or trusted.delegated[role]
    review = _review(trusted, {role: _edited(old, edit)})
    assert shown in review, review
    assert "re-signed" not in review, review


def test_review_of_a_bare_re_signing_says_so():
    trusted, _ = _trusted_with_bins()
    review = _review(
        trusted,
        {
            "targets": _edited(trusted.targets, lambda d: None),
            "bins-0": _edited(trusted.delegated["bins-0"], lambda d: None),
        },
    )
    assert "targets v2" in review and "no change but its version (re-signed)" in review
    assert "hash bins: 1 signed" in review and "no tag changes (re-signed)" in review


def test_a_co_holder_is_shown_the_new_keys_and_threshold_of_the_hash_bins(
    publisher: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    """Sharing targets in a repository with bins hands every bin to the new keys: the
    co-holder must see that of ``bins`` too, not "re-signed"."""
    _ok(publisher("init", gun, "--bins", "4", "--json"))
    _sign(publisher, gun, "1.0", DIGEST_A)
    [owner_keyid] = served_metadata(
        server, gun, "bins.json"
    ).signed.delegations.succinct_roles.keyids
    bob = _person(tmp_path, server.url, "bob")
    bob_key = _generate(bob, "bob", tmp_path / "bob.pub")
    _share(publisher, gun, "targets", tmp_path / "bob.pub", threshold=2)

    review = bob("approve", gun, "--yes", "--json")
    _ok(review)
    [bins_line] = [line for line in review.err.splitlines() if line.startswith("  hash bins:")]
    assert f"+{bob_key[:12]}" in bins_line and "threshold 1 -> 2" in bins_line
    assert f"-{owner_keyid[:12]}" in bins_line
    [delegation] = [line for line in review.err.splitlines() if "delegation to bins" in line]
    assert f"+{bob_key[:12]}" in delegation and "threshold 1 -> 2" in delegation


def test_a_co_holder_is_shown_a_change_of_expiry(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    bob = _targets_two_of_two(publisher, host, server, gun, tmp_path)
    before = served_metadata(server, gun, "targets.json").signed.expires
    refreshed = _ok(
        publisher("refresh", gun, "--within", "20y", "--expiry", "targets=1y", "--json")
    )
    assert refreshed["published"] is False
    review = bob("approve", gun, "--yes", "--json")
    _ok(review)
    after = served_metadata(server, gun, "targets.json").signed.expires
    assert after != before
    as_signed = "%Y-%m-%dT%H:%M:%SZ"
    shown = f"expires: {before.strftime(as_signed)} -> {after.strftime(as_signed)}"
    assert shown in review.err


def test_review_of_a_move_into_more_bins_shows_the_new_count_and_no_tag_change():
    trusted, owner = _trusted_with_bins()
    expires = utc_now() + timedelta(days=365)
    targets = Metadata(trusted.targets)
    bins = lay_out_bins(targets.signed, [owner], 1, 8, expires, version=2)
    roles: dict[str, Metadata[Any]] = {BINS_ROLE: Metadata(bins)}
    for name in bins_of(bins).get_roles():  # type: ignore[union-attr]
        roles[name] = Metadata(new_targets(expires))
    moved_to = bins_of(bins).get_role_for_target("1.0")  # type: ignore[union-attr]
    roles[moved_to].signed.targets["1.0"] = trusted.delegated["bins-0"].targets["1.0"]

    review = _review(trusted, roles)
    assert "hash bins: 8 signed" in review
    assert "no tag changes (re-signed)" in review
    assert "hash bins: bit_length 2 -> 3" in review


def test_a_rotation_a_co_holder_completes_retires_the_old_key_as_a_one_step_rotation_does(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    old_targets = _ok(publisher("key", "list", "--json"))
    _targets_two_of_two(publisher, host, server, gun, tmp_path)  # bob approves the rotation
    before = {k["keyid"] for k in old_targets["keys"] if k["role"] == "targets"}

    status = publisher("status", gun)
    after = {k["keyid"]: k for k in _ok(publisher("key", "list", "--json"))["keys"]}

    assert status.code == 0, status.err
    assert "removed the retired targets key" in status.err
    assert not before & set(after)  # the retired targets key is gone
    assert [k for k in after.values() if k["role"] == "targets" and k["listed"] == "yes"]
    _sign(publisher, gun, "3.0", DIGEST_B)  # the new key signs (pending for bob)


def test_key_list_marks_keys_the_repository_no_longer_lists(
    publisher: Trustkit, gun: str, tmp_path: Path
):
    import shutil

    _ok(publisher("init", gun, "--json"))
    backup = tmp_path / "backup" / ".trustkit"
    shutil.copytree(publisher.home, backup)  # a copy of the keystore, made before
    _ok(publisher("key", "rotate", gun, "targets", "--json"))  # one step: retired here
    stale = Trustkit(backup, publisher.server_url, publisher.env)
    _ok(stale("status", gun, "--json"))  # this copy sees the new root

    listed = stale("key", "list")

    retired = [line for line in listed.out.splitlines() if "retired" in line]
    assert len(retired) == 1 and retired[0].startswith("targets"), listed.out
    assert "the repository no longer lists it" in retired[0]
