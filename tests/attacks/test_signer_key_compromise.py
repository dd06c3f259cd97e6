"""A signer's key is stolen, and the thief tries to reach beyond the signer's paths: the
signer's role delegates on to a role of the thief's own with paths ``*``, which signs a
tag nobody signed, another signer's tag, and one within the signer's paths.

The thief also holds the server's online keys (the worst case: snapshot and timestamp
pin whatever they serve). A host walks delegations from targets and enters a role only
for tags its delegator's paths cover: what the stolen key reaches is the signer's
paths, and nothing else."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from tuf.api.metadata import DelegatedRole, Delegations

from tests.attacks.common import (
    DIGEST_C,
    FORGED,
    assert_not_signed,
    attacker_key,
    fetched,
    key_of,
    online_signed,
    pinned_host,
    serve,
    sign,
    with_signers,
    with_tag,
)
from tests.support.harness import (
    DIGEST_A,
    DIGEST_B,
    ServerProcess,
    TamperingProxy,
    Trustkit,
    assert_verifies,
)
from tests.support.server_side import post_upload, served_metadata, stolen_online_signers
from trustkit.expiry import utc_now
from trustkit.metadata import new_targets, sign_with


def test_a_stolen_signer_key_reaches_no_tag_outside_the_signers_paths(
    publisher: Trustkit, server: ServerProcess, proxy: TamperingProxy, gun: str, tmp_path: Path
):
    people = with_signers(
        publisher, server, gun, tmp_path, {"alice": "release-*", "bob": "nightly-*"}
    )
    alice, alice_keyid = people["alice"]
    sign(alice, gun, "release-1", DIGEST_B)
    sign(people["bob"][0], gun, "nightly-1", DIGEST_C)
    stolen = key_of(alice, alice_keyid)  # the thief copied alice's keystore and passphrase
    thief = attacker_key()
    alice_role = served_metadata(server, gun, "alice.json").signed
    alice_role.version += 1
    alice_role.delegations = Delegations(
        keys={thief.public_key.keyid: thief.public_key},
        roles={"mallory": DelegatedRole("mallory", [thief.public_key.keyid], 1, False, ["*"])},
    )
    mallory = new_targets(utc_now() + timedelta(days=30))
    for tag in ("latest", "nightly-1", "1.0", "release-9"):
        mallory = with_tag(mallory, tag, FORGED, bump=0)
    files = online_signed(
        server,
        gun,
        stolen_online_signers(server, gun),
        {"alice": sign_with(alice_role, [stolen]), "mallory": sign_with(mallory, [thief])},
    )
    serve(proxy, files)
    host = pinned_host(server, gun, tmp_path / "host", proxy.url)

    assert_not_signed(host, gun, "latest")
    assert fetched(proxy, "1.mallory.json")  # the thief's role was read, and verified
    assert_verifies(host, gun, "nightly-1", DIGEST_C)
    assert_verifies(host, gun, "1.0", DIGEST_A)
    assert_verifies(host, gun, "release-1", DIGEST_B)
    # Within alice's paths the stolen key does sign: that is what a signer key is for,
    # and why the owner removes a signer whose key is stolen (tests/test_recovery.py).
    assert_verifies(host, gun, "release-9", FORGED)
    inspected = host("inspect", gun, "--json")
    assert inspected.code == 0, inspected.err
    tags = {t["tag"]: (t["digest"], t["signer"]) for t in inspected.json["tags"]}
    assert tags == {
        "1.0": (DIGEST_A, "targets"),
        "nightly-1": (DIGEST_C, "bob"),
        "release-1": (DIGEST_B, "alice"),
        "release-9": (FORGED, "mallory"),
    }


def test_the_server_refuses_a_signer_widening_its_paths_through_a_role_of_its_own(
    publisher: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    """The same stolen key, uploading to the real server: a sub-role may sign only what
    every delegation above it allows, so ``latest`` (outside alice's ``release-*``) is
    refused, and nothing of the upload is stored."""
    people = with_signers(publisher, server, gun, tmp_path, {"alice": "release-*"})
    alice, alice_keyid = people["alice"]
    sign(alice, gun, "release-1", DIGEST_B)
    stolen = key_of(alice, alice_keyid)
    thief = attacker_key()
    alice_role = served_metadata(server, gun, "alice.json").signed
    before = alice_role.version
    alice_role.version += 1
    alice_role.delegations = Delegations(
        keys={thief.public_key.keyid: thief.public_key},
        roles={"mallory": DelegatedRole("mallory", [thief.public_key.keyid], 1, False, ["*"])},
    )
    mallory = with_tag(new_targets(utc_now() + timedelta(days=30)), "latest", FORGED, bump=0)
    answer = post_upload(
        server,
        gun,
        alice=sign_with(alice_role, [stolen]),
        mallory=sign_with(mallory, [thief]),
    )
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["error"] == "outside_delegated_paths"
    assert body["role"] == "mallory"
    assert "outside its delegator alice's delegated paths (release-*)" in body["detail"]
    assert served_metadata(server, gun, "alice.json").signed.version == before
