"""Arbitrary installation: an attacker makes a host run an image of their choice by
serving targets signed with a key of their own — a key that root does not list."""

from __future__ import annotations

from pathlib import Path

import pytest
from securesystemslib.signer import Signer

from tests.attacks.common import (
    FORGED,
    assert_host_refuses,
    assert_not_signed,
    attacker_key,
    fetched,
    forged_snapshot_and_timestamp,
    ok,
    passthrough,
    pinned_host,
    relabelled,
    serve,
    sign,
    with_tag,
)
from tests.support.harness import DIGEST_A, ServerProcess, TamperingProxy, Trustkit, assert_verifies
from tests.support.server_side import post_upload, served_metadata, served_version
from trustkit.metadata import sign_with


def _forged_targets(
    server: ServerProcess, gun: str, key: Signer, *, bump: int, new_tag: bool = True
) -> bytes:
    """The served targets, BUMP versions up, with 1.0 (and, with NEW_TAG, a new tag
    ``evil``) pointed at the attacker's image, signed by the attacker's KEY."""
    targets = with_tag(
        served_metadata(server, gun, "targets.json").signed, "1.0", FORGED, bump=bump
    )
    if new_tag:
        targets = with_tag(targets, "evil", FORGED, bump=0)
    return sign_with(targets, [key])


@pytest.mark.parametrize("claimed_keyid", ["its-own", "the-targets-keys"])
def test_the_server_refuses_targets_signed_by_a_key_root_does_not_list(
    claimed_keyid: str, publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str
):
    """Uploaded with the admin token, so only the signature check stands in the way; the
    attacker's signature may even claim the id of the real targets key."""
    targets_keyid = ok(publisher("init", gun, "--json"))["keys"]["targets"][0]
    sign(publisher, gun, "1.0", DIGEST_A)
    version = served_version(server, gun, "targets")
    forged = _forged_targets(server, gun, attacker_key(), bump=1)
    if claimed_keyid == "the-targets-keys":
        forged = relabelled(forged, targets_keyid)

    response = post_upload(server, gun, targets=forged)

    assert response.status_code == 400, response.text
    body = response.json()
    assert (body["error"], body["role"]) == ("threshold_not_met", "targets")
    assert body["detail"] == "targets is signed by 0 of the 1 keys its delegator lists"
    assert served_version(server, gun, "targets") == version
    assert_not_signed(host, gun, "evil")
    assert_verifies(host, gun, "1.0", DIGEST_A)


@pytest.mark.parametrize(
    "forgery",
    ["same-length-targets", "longer-targets", "targets-snapshot-and-timestamp"],
)
def test_a_mirror_serving_targets_signed_by_the_attackers_key_is_refused(
    forgery: str,
    publisher: Trustkit,
    server: ServerProcess,
    proxy: TamperingProxy,
    gun: str,
    tmp_path: Path,
):
    """A mirror that cannot sign a timestamp hosts accept serves forged targets under the
    name the real snapshot makes the host ask for: the snapshot pins its length and
    hash. Forging snapshot and timestamp too, with the attacker's key, fails on the
    timestamp's signature."""
    ok(publisher("init", gun))
    sign(publisher, gun, "1.0", DIGEST_A)
    host = pinned_host(server, gun, tmp_path / "host", proxy.url)
    targets_name = f"{served_version(server, gun, 'targets')}.targets.json"
    signed_length = served_metadata(server, gun, "snapshot.json").signed.meta["targets.json"].length
    key = attacker_key()
    if forgery == "same-length-targets":
        forged = _forged_targets(server, gun, key, bump=0, new_tag=False)
        assert len(forged) == signed_length  # only the hash can tell
        files = {targets_name: forged}
        reasons = [f"metadata for {gun} does not match what was signed for it"]
    elif forgery == "longer-targets":
        forged = _forged_targets(server, gun, key, bump=0)
        files = {targets_name: forged}
        reasons = [
            f"the server sent more metadata for {gun} than allowed",
            f"exceeding the maximum allowed length of {signed_length}",
        ]
    else:
        files = forged_snapshot_and_timestamp(
            server,
            gun,
            {"targets": _forged_targets(server, gun, key, bump=1)},
            snapshot_signers=[key],
            timestamp_signers=[key],
        )
        reasons = [f"bad signatures on metadata for {gun}: timestamp was signed by 0/1 keys"]
    serve(proxy, files)

    assert_host_refuses(host, gun, "1.0", *reasons)
    # Refused at the outermost forgery: a forged timestamp's snapshot is never fetched.
    assert [fetched(proxy, name) for name in files] == [
        name in (targets_name, "timestamp.json") for name in files
    ]
    assert_host_refuses(host, gun, "evil", *reasons)

    passthrough(proxy)
    assert_verifies(host, gun, "1.0", DIGEST_A)
    assert_not_signed(host, gun, "evil")
