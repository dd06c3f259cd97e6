"""Thresholds count keys, not key ids. One holder lists their key twice, spelt two ways
(the hex of an ed25519 key in upper and in lower case, a PEM with other line breaks):
each spelling has its own, valid, TUF key id, and one signature filed under both ids
would meet a threshold of two. The server refuses a root, a signer delegation or the
hash bins listing one key twice, and a role no one could ever sign: a key id with no key
behind it, a threshold above the number of keys. A key under an id that is not its TUF
key id (the same id in upper case, another key's id) was refused before and still is.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from securesystemslib.signer import CryptoSigner, Key, Signature, SSlibKey
from tuf.api.metadata import DelegatedRole, Delegations, Metadata, Targets

from tests.support.hand_made import FUTURE, A, HandMadeRepository, assert_refused, releases_role
from tests.support.harness import ServerProcess
from trustkit.bins import BINS_ROLE, lay_out_bins
from trustkit.metadata import COMPACT_JSON, key_id_of, sign_with


@pytest.fixture
def repo(server: ServerProcess, gun: str) -> HandMadeRepository:
    return HandMadeRepository(server, gun)


def _other_spelling(key: Key) -> SSlibKey:
    """KEY with its hex in upper case: the same public key under another valid key id."""
    keyval = {"public": key.keyval["public"].upper()}
    respelt = SSlibKey("", key.keytype, key.scheme, keyval)
    return SSlibKey(key_id_of(respelt), key.keytype, key.scheme, keyval)


def _signed_twice(signed: Any, signer: CryptoSigner, twin: Key) -> bytes:
    """SIGNED signed once by SIGNER, the signature filed under its key id and TWIN's."""
    metadata: Metadata[Any] = Metadata(signed)
    signature = metadata.sign(signer)
    metadata.signatures[twin.keyid] = Signature(twin.keyid, signature.signature)
    return metadata.to_bytes(COMPACT_JSON)


def test_root_listing_its_key_twice_to_meet_a_threshold_of_two_is_refused(
    repo: HandMadeRepository,
):
    twin = _other_spelling(repo.root_key.public_key)
    root = repo.root()
    root.add_key(twin, "root")
    root.roles["root"].threshold = 2

    response = repo.upload(
        root=_signed_twice(root, repo.root_key, twin),
        targets=sign_with(repo.targets(), [repo.targets_key]),
    )

    assert_refused(response, 400, "duplicate_key", "root", "one public key under two key ids")
    assert repo.stored_rows() == []


def test_root_listing_the_targets_key_twice_is_refused(repo: HandMadeRepository):
    twin = _other_spelling(repo.targets_key.public_key)
    root = repo.root()
    root.add_key(twin, "targets")
    root.roles["targets"].threshold = 2

    response = repo.upload(
        root=sign_with(root, [repo.root_key]),
        targets=_signed_twice(repo.targets(), repo.targets_key, twin),
    )

    assert_refused(response, 400, "duplicate_key", "root", "thresholds count keys")
    assert repo.stored_rows() == []


def test_a_signer_delegation_listing_one_key_twice_is_refused(repo: HandMadeRepository):
    repo.create()
    releaser = CryptoSigner.generate_ed25519()
    twin = _other_spelling(releaser.public_key)
    targets = repo.targets(2)
    targets.delegations = Delegations({}, roles={})
    assert targets.delegations.roles is not None
    targets.delegations.roles["releases"] = DelegatedRole("releases", [], 2, False, ["*"])
    targets.add_key(releaser.public_key, "releases")
    targets.add_key(twin, "releases")
    before = repo.stored_rows()

    response = repo.upload(
        targets=sign_with(targets, [repo.targets_key]),
        releases=_signed_twice(releases_role(1, evil=A(6)), releaser, twin),
    )

    assert_refused(response, 400, "duplicate_key", "targets", "one public key under two key ids")
    assert repo.stored_rows() == before


def test_hash_bins_listing_one_key_twice_are_refused(repo: HandMadeRepository):
    repo.create()
    twin = _other_spelling(repo.targets_key.public_key)
    targets = repo.targets(2)
    bins = lay_out_bins(targets, [repo.targets_key.public_key], 1, 4, FUTURE)
    assert bins.delegations is not None and bins.delegations.succinct_roles is not None
    bins.delegations.keys[twin.keyid] = twin
    bins.delegations.succinct_roles.keyids.append(twin.keyid)
    bins.delegations.succinct_roles.threshold = 2
    evil = releases_role(1, evil=A(6))
    home = bins.delegations.succinct_roles.get_role_for_target("evil")
    before = repo.stored_rows()

    response = repo.upload(
        targets=sign_with(targets, [repo.targets_key]),
        **{
            BINS_ROLE: sign_with(bins, [repo.targets_key]),
            home: _signed_twice(evil, repo.targets_key, twin),
        },
    )

    assert_refused(response, 400, "duplicate_key", BINS_ROLE, "one public key under two key ids")
    assert repo.stored_rows() == before


def test_one_ecdsa_key_in_two_pem_spellings_is_refused(repo: HandMadeRepository):
    repo.create()
    releaser = CryptoSigner.generate_ecdsa()
    key = releaser.public_key
    respelt = {"public": key.keyval["public"].replace("\n", "\n\n", 1)}  # a blank line more
    twin = SSlibKey(
        key_id_of(SSlibKey("", key.keytype, key.scheme, respelt)), key.keytype, key.scheme, respelt
    )
    assert twin.keyid != key.keyid
    targets = repo.targets(2)
    targets.delegations = Delegations({}, roles={})
    assert targets.delegations.roles is not None
    targets.delegations.roles["releases"] = DelegatedRole("releases", [], 2, False, ["*"])
    targets.add_key(key, "releases")
    targets.add_key(twin, "releases")

    response = repo.upload(targets=sign_with(targets, [repo.targets_key]))

    assert_refused(response, 400, "duplicate_key", "targets", "list each key once")


@pytest.mark.parametrize("how", ["upper-case id", "another key's id"])
def test_a_key_under_an_id_that_is_not_its_own_is_refused(repo: HandMadeRepository, how: str):
    """The server has required TUF's key ids all along; this keeps it so."""
    repo.create()
    releaser = CryptoSigner.generate_ed25519()
    keyid = releaser.public_key.keyid
    claimed = keyid.upper() if how == "upper-case id" else repo.targets_key.public_key.keyid
    key = SSlibKey(claimed, "ed25519", "ed25519", releaser.public_key.keyval)
    targets = repo.targets(2)
    targets.delegations = Delegations(
        {claimed: key}, roles={"releases": DelegatedRole("releases", [claimed], 1, False, ["*"])}
    )

    response = repo.upload(targets=sign_with(targets, [repo.targets_key]))

    assert_refused(response, 400, "key_id_mismatch", "targets", "which is not that key's id")


def test_a_key_id_listed_twice_in_one_role_is_refused(repo: HandMadeRepository):
    """python-tuf refuses it while parsing; this keeps it so."""
    repo.create()
    releaser = CryptoSigner.generate_ed25519()
    keyid = releaser.public_key.keyid
    document = json.loads(sign_with(repo.targets(2), [repo.targets_key]))
    document["signed"]["delegations"] = {
        "keys": {keyid: releaser.public_key.to_dict()},
        "roles": [
            {"name": "releases", "keyids": [keyid, keyid], "threshold": 2, "paths": ["*"],
             "terminating": False}
        ],
    }  # fmt: skip

    response = repo.upload(targets=json.dumps(document).encode())

    assert_refused(response, 400, "malformed", "targets", "Nonunique keyids")


def _signer_with(repo: HandMadeRepository, keyids: list[str], threshold: int) -> Targets:
    releaser = CryptoSigner.generate_ed25519()
    targets = repo.targets(2)
    role = DelegatedRole("releases", [releaser.public_key.keyid, *keyids], threshold, False, ["*"])
    targets.delegations = Delegations(
        {releaser.public_key.keyid: releaser.public_key}, roles={"releases": role}
    )
    return targets


def test_a_threshold_above_the_number_of_keys_is_refused(repo: HandMadeRepository):
    repo.create()

    response = repo.upload(targets=sign_with(_signer_with(repo, [], 2), [repo.targets_key]))

    assert_refused(response, 400, "threshold_unreachable", "targets", "threshold 2 with 1 key(s)")


def test_a_key_id_with_no_key_behind_it_is_refused(repo: HandMadeRepository):
    """python-tuf skips such an id when it counts signatures: a threshold of two over
    one real key and one phantom can never be met, and reads as two signers."""
    repo.create()
    phantom = "ab" * 32

    response = repo.upload(targets=sign_with(_signer_with(repo, [phantom], 2), [repo.targets_key]))

    assert_refused(response, 400, "unknown_key", "targets", f"the key id '{phantom}'")


def test_a_root_whose_targets_threshold_cannot_be_met_is_refused(repo: HandMadeRepository):
    root = repo.root()
    root.roles["targets"].threshold = 2

    response = repo.upload(
        root=sign_with(root, [repo.root_key]),
        targets=sign_with(repo.targets(), [repo.targets_key]),
    )

    assert_refused(response, 400, "threshold_unreachable", "root", "gives targets the threshold 2")
    assert repo.stored_rows() == []
