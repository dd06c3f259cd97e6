"""Hash bins are signed by the targets keys with the targets threshold. In a repository
whose targets need 2 of 2 keys (alice's and bob's), alice alone tries to hand the bins
to her own key: a ``bins`` role (or a targets role and a ``bins`` role) whose
delegation lists only her key with threshold 1. Kept pending, bob would approve what
his tools show as a re-signing with "no tag changes", and from then on alice alone
signs every tag. The server refuses it outright: nothing is kept pending, nothing is
served. A ``bins`` role that delegates to more bins than hosts can list (every host
would hang listing 2**32 of them) is refused too, as are hash bins hung anywhere else.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from securesystemslib.signer import Signer
from tuf.api.metadata import SuccinctRoles, Targets

from keys.keystore import Keystore
from keys.passphrase import PassphraseSource
from tests.attacks.common import FORGED, assert_not_signed, generate, ok, person, sign
from tests.support.harness import DIGEST_A, ServerProcess, Trustkit, assert_verifies
from tests.support.server_side import post_upload, served_metadata
from trustkit.bins import BINS_ROLE, MAX_BIT_LENGTH
from trustkit.expiry import utc_now
from trustkit.metadata import image_target, new_targets, sign_with
from trustkit.names import parse_digest


def _targets_key(tk: Trustkit, server: ServerProcess, gun: str) -> Signer:
    """TK's targets key that root lists now, opened as its holder opens it."""
    listed = served_metadata(server, gun, "root.json").signed.roles["targets"].keyids
    keystore = Keystore(tk.home)
    [record] = [r for r in keystore.records() if r.role == "targets" and r.keyid in listed]
    return keystore.signer(record, PassphraseSource(tk.env))


def _pending(server: ServerProcess, gun: str) -> list[dict[str, Any]]:
    response = httpx.get(server.metadata_url(gun, "pending"), timeout=30)
    assert response.status_code == 200, response.text
    changes: list[dict[str, Any]] = response.json()["pending"]
    return changes


def _version_in_snapshot(server: ServerProcess, gun: str, role: str) -> int:
    meta = served_metadata(server, gun, "snapshot.json").signed.meta.get(f"{role}.json")
    return meta.version if meta is not None else 0


def _two_of_two_bins(
    publisher: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
) -> tuple[Signer, Trustkit]:
    """A repository in 4 hash bins with 1.0 signed, whose targets (and so bins) need
    alice's (the publisher's) and bob's keys. Returns alice's targets key and bob."""
    ok(publisher("init", gun, "--bins", "4"))
    sign(publisher, gun, "1.0", DIGEST_A)
    bob = person(tmp_path, server.url, "bob")
    generate(bob, "bob", tmp_path / "bob.pub")
    rotated = ok(
        publisher(
            "key", "rotate", gun, "targets", "--key", str(tmp_path / "bob.pub"),
            "--threshold", "2", "--json",
        )
    )  # fmt: skip
    assert rotated["published"] is False
    ok(bob("approve", gun, "--yes"))
    return _targets_key(publisher, server, gun), bob


def _bins_for_alice_alone(server: ServerProcess, gun: str, alice: Signer) -> Targets:
    """The served ``bins`` role, one version up, delegating every bin to alice's key."""
    bins: Targets = served_metadata(server, gun, "bins.json").signed
    assert bins.delegations is not None and bins.delegations.succinct_roles is not None
    succinct = bins.delegations.succinct_roles
    assert succinct.threshold == 2
    keyid = alice.public_key.keyid
    bins.delegations.keys = {keyid: alice.public_key}
    bins.delegations.succinct_roles = SuccinctRoles([keyid], 1, succinct.bit_length, BINS_ROLE)
    bins.version += 1
    return bins


def _forged_bin(server: ServerProcess, gun: str, bins: Targets, tag: str) -> tuple[str, Targets]:
    assert bins.delegations is not None and bins.delegations.succinct_roles is not None
    name = bins.delegations.succinct_roles.get_role_for_target(tag)
    forged = new_targets(utc_now() + timedelta(days=30))
    forged.version = _version_in_snapshot(server, gun, name) + 1
    forged.targets[tag] = image_target(tag, parse_digest(FORGED), 100, None)
    return name, forged


def test_bins_delegated_to_one_holder_of_a_two_of_two_targets_key_are_refused(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    alice, _ = _two_of_two_bins(publisher, server, gun, tmp_path)
    bins = _bins_for_alice_alone(server, gun, alice)
    name, forged = _forged_bin(server, gun, bins, "evil")

    response = post_upload(
        server, gun, bins=sign_with(bins, [alice]), **{name: sign_with(forged, [alice])}
    )

    assert response.status_code == 400, response.text
    body = response.json()
    assert (body["error"], body["role"]) == ("bins_keys_differ", "bins")
    assert "signed by the targets keys with the targets threshold" in body["detail"]
    assert "threshold 2" in body["detail"]
    assert _pending(server, gun) == []  # nothing for bob to approve unawares
    assert_not_signed(host, gun, "evil")
    assert_verifies(host, gun, "1.0", DIGEST_A)


def test_targets_delegating_bins_to_one_holder_of_a_two_of_two_key_is_refused(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    alice, _ = _two_of_two_bins(publisher, server, gun, tmp_path)
    targets: Targets = served_metadata(server, gun, "targets.json").signed
    assert targets.delegations is not None and targets.delegations.roles is not None
    keyid = alice.public_key.keyid
    delegation = targets.delegations.roles[BINS_ROLE]
    delegation.keyids, delegation.threshold = [keyid], 1
    targets.delegations.keys = {keyid: alice.public_key}
    targets.version += 1
    bins = _bins_for_alice_alone(server, gun, alice)
    name, forged = _forged_bin(server, gun, bins, "evil")

    response = post_upload(
        server,
        gun,
        targets=sign_with(targets, [alice]),
        bins=sign_with(bins, [alice]),
        **{name: sign_with(forged, [alice])},
    )

    assert response.status_code == 400, response.text
    body = response.json()
    assert (body["error"], body["role"]) == ("bins_keys_differ", "targets")
    assert "1 key(s) with threshold 1" in body["detail"]
    assert _pending(server, gun) == []
    assert_not_signed(host, gun, "evil")
    assert_verifies(host, gun, "1.0", DIGEST_A)


def test_bins_that_sign_a_tag_themselves_are_refused(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str
):
    """A tag signed in ``bins`` itself is found by hosts before any bin, yet a co-signer
    sees ``bins`` as a re-signing with no tag changes."""
    ok(publisher("init", gun, "--bins", "4"))
    sign(publisher, gun, "1.0", DIGEST_A)
    bins: Targets = served_metadata(server, gun, "bins.json").signed
    bins.version += 1
    bins.targets["evil"] = image_target("evil", parse_digest(FORGED), 100, None)

    response = post_upload(
        server, gun, bins=sign_with(bins, [_targets_key(publisher, server, gun)])
    )

    assert response.status_code == 400, response.text
    assert (response.json()["error"], response.json()["role"]) == ("bins_signs_tags", "bins")
    assert_not_signed(host, gun, "evil")


@pytest.mark.parametrize("bit_length", [MAX_BIT_LENGTH + 1, 32])
def test_bins_beyond_the_number_hosts_can_list_are_refused(
    bit_length: int, publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str
):
    ok(publisher("init", gun, "--bins", "4"))
    sign(publisher, gun, "1.0", DIGEST_A)
    bins: Targets = served_metadata(server, gun, "bins.json").signed
    assert bins.delegations is not None and bins.delegations.succinct_roles is not None
    bins.delegations.succinct_roles.bit_length = bit_length
    bins.version += 1

    response = post_upload(
        server, gun, bins=sign_with(bins, [_targets_key(publisher, server, gun)])
    )

    assert response.status_code == 400, response.text
    body = response.json()
    assert (body["error"], body["role"]) == ("too_many_bins", "bins")
    assert f"bit_length must be from 1 to {MAX_BIT_LENGTH} (2 to 16384 bins)" in body["detail"]
    assert_verifies(host, gun, "1.0", DIGEST_A)


@pytest.mark.parametrize("bit_length", [0, 33])
def test_bins_outside_what_tuf_allows_are_refused(
    bit_length: int, publisher: Trustkit, server: ServerProcess, gun: str
):
    ok(publisher("init", gun, "--bins", "4"))
    document = served_metadata(server, gun, "bins.json").to_dict()
    document["signed"]["delegations"]["succinct_roles"]["bit_length"] = bit_length

    response = post_upload(server, gun, bins=json.dumps(document).encode())

    assert response.status_code == 400, response.text
    assert (response.json()["error"], response.json()["role"]) == ("malformed", "bins")
    assert "bit_length must be between 1 and 32" in response.json()["detail"]


def test_hash_bins_hung_off_a_role_other_than_bins_are_refused(
    publisher: Trustkit, server: ServerProcess, gun: str
):
    """Only ``bins`` delegates to hash bins, named ``bins-…``: bins elsewhere would be
    seen by hosts as targets' own bins while signed by other keys."""
    ok(publisher("init", gun, "--bins", "4"))
    targets_key = _targets_key(publisher, server, gun)
    bins: Targets = served_metadata(server, gun, "bins.json").signed
    assert bins.delegations is not None and bins.delegations.succinct_roles is not None
    bins.delegations.succinct_roles.name_prefix = "other"
    bins.version += 1
    targets: Targets = served_metadata(server, gun, "targets.json").signed
    targets.delegations = bins.delegations
    targets.version += 1

    renamed = post_upload(server, gun, bins=sign_with(bins, [targets_key]))
    in_targets = post_upload(server, gun, targets=sign_with(targets, [targets_key]))

    assert renamed.status_code == 400, renamed.text
    assert (renamed.json()["error"], renamed.json()["role"]) == ("misplaced_bins", "bins")
    assert in_targets.status_code == 400, in_targets.text
    assert (in_targets.json()["error"], in_targets.json()["role"]) == (
        "misplaced_bins",
        "targets",
    )
