"""Hash bins, end to end through the CLI and the real server: a repository whose tags
are signed in hash bins (``init --bins N``, ``trustkit bins``, or by itself once it
grows past 1,024 tags) re-signs one bin per tag, a fresh host downloads one bin to
verify one tag, and revoke, inspect, signers, thresholds and rotation keep working.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import CryptoSigner, Signer, SSlibKey
from tuf.api.metadata import DelegatedRole, Delegations, Snapshot, SuccinctRoles, Targets

from keys.keystore import Keystore
from keys.passphrase import PassphraseSource
from tests.support.harness import (
    DIGEST_A,
    DIGEST_B,
    ServerProcess,
    TamperingProxy,
    Trustkit,
    assert_verifies,
    gun_for,
    publisher_cli,
    role_of,
    sign_many,
)
from tests.support.server_side import post_upload, served_metadata, served_version
from trustkit.bins import AUTO_BINS_AT, bin_count_for
from trustkit.metadata import sign_with

SIGNER_PASSPHRASE = "signer passphrase for bins tests"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("bins-server")).start()
    yield process
    process.stop()


@pytest.fixture
def publisher(tmp_path: Path, server: ServerProcess) -> Trustkit:
    return publisher_cli(tmp_path / "publisher", server.url)


def _host(tmp_path: Path, url: str, name: str = "host") -> Trustkit:
    return Trustkit(tmp_path / name, url)


def _host_at(server: ServerProcess) -> Trustkit:
    return Trustkit(Path(tempfile.mkdtemp()) / "host", server.url)


def _person(tmp_path: Path, server_url: str, name: str) -> Trustkit:
    """A key holder with a keystore of their own."""
    return Trustkit(
        tmp_path / name / ".trustkit",
        server_url,
        {"TRUSTKIT_DELEGATION_PASSPHRASE": SIGNER_PASSPHRASE},
    )


def _ok(result: Any) -> dict[str, Any]:
    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    data: dict[str, Any] = result.json
    return data


def _targets_signer(publisher: Trustkit) -> Signer:
    """The publisher's targets key, opened as trustkit opens it."""
    keystore = Keystore(publisher.home)
    [record] = [r for r in keystore.records() if r.role == "targets"]
    return keystore.signer(record, PassphraseSource(publisher.env))


def _signer_of(private: Ed25519PrivateKey) -> Signer:
    return CryptoSigner(private)


def _bins_of(server: ServerProcess, gun: str) -> SuccinctRoles:
    bins = served_metadata(server, gun, "bins.json").signed.delegations
    assert bins is not None and bins.succinct_roles is not None
    return bins.succinct_roles


def _sign(tk: Trustkit, gun: str, tag: str, digest: str = DIGEST_A) -> dict[str, Any]:
    return _ok(tk("sign", f"{gun}:{tag}", "--digest", digest, "--size", "100", "--json"))


def _snapshot_roles(server: ServerProcess, gun: str) -> dict[str, int]:
    snapshot: Snapshot = served_metadata(server, gun, "snapshot.json").signed
    return {name.removesuffix(".json"): meta.version for name, meta in snapshot.meta.items()}


# --- layout and the cost of one tag --------------------------------------------------


def test_signing_one_tag_re_signs_one_bin_and_snapshot_grows_by_one_small_entry(
    publisher: Trustkit, server: ServerProcess, request: pytest.FixtureRequest
) -> None:
    gun = gun_for(request.node.name)
    assert publisher("init", gun, "--bins", "16").code == 0
    targets_before = served_version(server, gun, "targets")
    sign_many(publisher, gun, [f"1.{n}" for n in range(40)])
    before = _snapshot_roles(server, gun)

    data = _sign(publisher, gun, "2.0")

    bins = _bins_of(server, gun)
    home = bins.get_role_for_target("2.0")
    after = _snapshot_roles(server, gun)
    changed = {role for role in after if after[role] != before.get(role)}
    assert changed == {home}, "only the tag's bin changes"
    assert data["role"] == home
    assert served_version(server, gun, "targets") == targets_before, "targets is not re-signed"
    bin_metadata: Targets = served_metadata(server, gun, f"{home}.json").signed
    assert "2.0" in bin_metadata.targets
    assert all(bins.get_role_for_target(tag) == home for tag in bin_metadata.targets)
    snapshot = json.loads(httpx.get(server.metadata_url(gun, "snapshot.json")).content)
    assert snapshot["signed"]["meta"][f"{home}.json"] == {"version": after[home]}


def test_a_fresh_host_downloads_only_the_bin_of_the_tag_it_verifies(
    publisher: Trustkit, server: ServerProcess, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    gun = gun_for(request.node.name)
    assert publisher("init", gun, "--bins", "32").code == 0
    sign_many(publisher, gun, [f"1.{n}" for n in range(100)])
    proxy = TamperingProxy(server.url).start()
    try:
        host = _host(tmp_path, proxy.url)
        assert_verifies(host, gun, "1.7", DIGEST_A)
        fetched = {role_of(path) for path in proxy.requests}
    finally:
        proxy.stop()
    home = _bins_of(server, gun).get_role_for_target("1.7")
    assert fetched == {"root", "timestamp", "snapshot", "targets", "bins", home}


def test_a_tag_in_an_empty_bin_is_not_signed(
    publisher: Trustkit, tmp_path: Path, server: ServerProcess, request: pytest.FixtureRequest
) -> None:
    gun = gun_for(request.node.name)
    assert publisher("init", gun, "--bins", "64").code == 0
    _sign(publisher, gun, "1.0")
    result = _host(tmp_path, server.url)("verify", f"{gun}:nope", "--offline")
    assert result.code != 0
    assert f"no signed tag nope in {gun}" in result.err
    assert "Traceback" not in result.err


# --- every feature keeps working -------------------------------------------------------


def test_revoke_inspect_and_re_sign_in_a_binned_repository(
    publisher: Trustkit, server: ServerProcess, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    gun = gun_for(request.node.name)
    assert publisher("init", gun, "--bins", "8").code == 0
    sign_many(publisher, gun, ["a", "b", "c"])
    host = _host(tmp_path, server.url)
    assert_verifies(host, gun, "b", DIGEST_A)

    assert publisher("revoke", f"{gun}:b").code == 0
    refused = host("verify", f"{gun}:b", "--offline")
    assert refused.code != 0 and "no signed tag b" in refused.err
    _sign(publisher, gun, "a", DIGEST_B)
    assert_verifies(host, gun, "a", DIGEST_B)

    data = _ok(host("inspect", gun, "--json"))
    assert {t["tag"]: t["digest"] for t in data["tags"]} == {"a": DIGEST_B, "c": DIGEST_A}
    assert {t["signer"] for t in data["tags"]} <= {f"bins-{n}" for n in range(8)}
    assert data["bins"]["count"] == 8
    assert [r["role"] for r in data["roles"]].count("bins-*") == 1
    revoke_missing = publisher("revoke", f"{gun}:b")
    assert revoke_missing.code != 0 and "no signed tag b" in revoke_missing.err


def test_signers_come_before_the_bins_and_hosts_see_who_signed(
    publisher: Trustkit, server: ServerProcess, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    gun = gun_for(request.node.name)
    assert publisher("init", gun, "--bins", "8").code == 0
    _sign(publisher, gun, "1.0")
    alice = _person(tmp_path, server.url, "alice")
    public = tmp_path / "alice.pub"
    _ok(alice("key", "generate", "alice", "--out", str(public), "--json"))
    _ok(
        publisher(
            "signer", "add", "alice", gun, "--key", str(public), "--paths", "release-*", "--json"
        )
    )
    targets: Targets = served_metadata(server, gun, "targets.json").signed
    assert targets.delegations is not None and targets.delegations.roles is not None
    assert list(targets.delegations.roles) == ["alice", "bins"], "bins stay last"

    _sign(alice, gun, "release-2", DIGEST_B)
    host = _host(tmp_path, server.url)
    assert_verifies(host, gun, "release-2", DIGEST_B)
    assert_verifies(host, gun, "1.0", DIGEST_A)
    signers = _ok(host("signer", "list", gun, "--json"))["signers"]
    assert [s["name"] for s in signers] == ["alice"]
    assert signers[0]["tags"] == ["release-2"]
    tags = {t["tag"]: t["signer"] for t in _ok(host("inspect", gun, "--json"))["tags"]}
    assert tags["release-2"] == "alice"
    assert tags["1.0"] == _bins_of(server, gun).get_role_for_target("1.0")
    outside = alice("sign", f"{gun}:latest", "--digest", DIGEST_B, "--size", "100")
    assert outside.code != 0 and "Traceback" not in outside.err
    for reserved in ("bins", "bins-3"):
        refused = publisher("signer", "add", reserved, gun, "--key", str(public), "--paths", "x")
        assert refused.code != 0 and "not a valid signer name" in refused.err


def test_rotating_the_targets_key_re_signs_every_bin(
    publisher: Trustkit, server: ServerProcess, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    gun = gun_for(request.node.name)
    assert publisher("init", gun, "--bins", "4").code == 0
    sign_many(publisher, gun, [f"t{n}" for n in range(12)])
    host = _host(tmp_path, server.url)
    assert_verifies(host, gun, "t3", DIGEST_A)
    old_keys = _bins_of(server, gun).keyids

    rotated = publisher("key", "rotate", gun, "targets")
    assert rotated.code == 0, rotated.err

    bins = _bins_of(server, gun)
    assert bins.keyids != old_keys
    for name in bins.get_roles():
        stored = served_metadata(server, gun, f"{name}.json")
        assert set(stored.signatures) == set(bins.keyids), f"{name} signed by the new key"
    for n in range(12):
        assert_verifies(host, gun, f"t{n}", DIGEST_A)
    _sign(publisher, gun, "after", DIGEST_B)
    assert_verifies(_host(tmp_path, server.url, "fresh"), gun, "after", DIGEST_B)


def test_a_targets_threshold_of_two_holds_a_tag_until_approved(
    publisher: Trustkit, server: ServerProcess, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    gun = gun_for(request.node.name)
    assert publisher("init", gun, "--bins", "4").code == 0
    _sign(publisher, gun, "1.0")
    bob = _person(tmp_path, server.url, "bob")
    _ok(bob("key", "generate", "bob", "--out", str(tmp_path / "bob.pub"), "--json"))
    args = ["--key", str(tmp_path / "bob.pub"), "--threshold", "2", "--json"]
    assert _ok(publisher("key", "rotate", gun, "targets", *args))["published"] is False
    rotation = bob("approve", gun, "--yes", "--json")
    _ok(rotation)
    assert "no tag changes (re-signed)" in rotation.err  # bins are shown as one change
    assert _bins_of(server, gun).threshold == 2
    host = _host(tmp_path, server.url)
    assert_verifies(host, gun, "1.0", DIGEST_A)

    assert _sign(publisher, gun, "v1")["published"] is False
    refused = host("verify", f"{gun}:v1", "--offline")
    assert refused.code != 0 and "no signed tag v1" in refused.err
    release = bob("approve", gun, "--yes", "--json")
    _ok(release)
    assert "hash bins: 1 signed" in release.err
    assert f"v1: (new) -> {DIGEST_A}" in release.err
    assert_verifies(host, gun, "v1", DIGEST_A)


def test_status_and_refresh_cover_the_bins(
    publisher: Trustkit, server: ServerProcess, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    gun = gun_for(request.node.name)
    assert publisher("init", gun, "--bins", "4").code == 0
    sign_many(publisher, gun, [f"s{n}" for n in range(8)])
    host = _host(tmp_path, server.url)
    assert_verifies(host, gun, "s1", DIGEST_A)
    published = {r for r in _snapshot_roles(server, gun) if r.startswith("bins-")}

    status = {r["role"]: r for r in _ok(publisher("status", gun, "--json"))["roles"]}
    [folded] = [name for name in status if name.startswith("bins-*")]
    assert f"({len(published)} published)" in folded
    assert status[folded]["threshold"] == 1
    assert "bins" in status

    renewed = _ok(publisher("refresh", gun, "--within", "20y", "--json"))["renewed"]
    assert published | {"bins", "targets", "root"} <= set(renewed)
    after = _snapshot_roles(server, gun)
    assert all(after[name] == renewed[name] for name in published | {"bins"})
    for n in range(8):
        assert_verifies(host, gun, f"s{n}", DIGEST_A)


def test_an_offline_co_holder_signs_the_bins_of_a_targets_rotation_through_a_file(
    publisher: Trustkit, server: ServerProcess, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    gun = gun_for(request.node.name)
    assert publisher("init", gun, "--bins", "4").code == 0
    sign_many(publisher, gun, [f"f{n}" for n in range(6)])
    bob = _person(tmp_path, "http://127.0.0.1:9", "bob")  # never online
    bob_key = _ok(bob("key", "generate", "bob", "--out", str(tmp_path / "bob.pub"), "--json"))[
        "keyid"
    ]
    change = tmp_path / "targets-change.json"
    args = ["--key", str(tmp_path / "bob.pub"), "--threshold", "2", "--out", str(change)]
    _ok(publisher("key", "rotate", gun, "targets", *args, "--json"))
    roles = set(json.loads(change.read_text())["roles"])
    assert {"targets", "bins"} < roles and any(r.startswith("bins-") for r in roles)

    assert (
        bob_key in _ok(bob("approve", gun, "--file", str(change), "--yes", "--json"))["signed_with"]
    )
    signed = json.loads(change.read_text())["roles"]
    for role in roles - {"root"}:
        assert bob_key in {s["keyid"] for s in signed[role]["signatures"]}, role
    _ok(publisher("submit", gun, str(change), "--json"))
    assert _bins_of(server, gun).threshold == 2
    assert bob_key in _bins_of(server, gun).keyids
    host = _host(tmp_path, server.url)
    for n in range(6):
        assert_verifies(host, gun, f"f{n}", DIGEST_A)


# --- moving into bins ----------------------------------------------------------------


def test_trustkit_bins_moves_an_existing_repository_and_hosts_follow(
    publisher: Trustkit, server: ServerProcess, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    gun = gun_for(request.node.name)
    assert publisher("init", gun).code == 0
    sign_many(publisher, gun, [f"v{n}" for n in range(30)])
    host = _host(tmp_path, server.url)
    assert_verifies(host, gun, "v5", DIGEST_A)

    assert _ok(publisher("bins", gun, "--count", "8", "--json"))["tags"] == 30

    targets: Targets = served_metadata(server, gun, "targets.json").signed
    assert targets.targets == {}, "targets signs no tag itself any more"
    assert _bins_of(server, gun).number_of_bins == 8
    for n in range(30):
        assert_verifies(host, gun, f"v{n}", DIGEST_A)  # the host that knew it before
    assert_verifies(_host(tmp_path, server.url, "fresh"), gun, "v29", DIGEST_A)

    assert _ok(publisher("bins", gun, "--count", "32", "--json"))["tags"] == 30  # more bins
    assert _bins_of(server, gun).number_of_bins == 32
    for n in range(30):
        assert_verifies(host, gun, f"v{n}", DIGEST_A)


def test_a_repository_moves_into_bins_by_itself_once_it_grows_large(
    publisher: Trustkit, server: ServerProcess, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    gun = gun_for(request.node.name)
    assert publisher("init", gun).code == 0
    tags = [f"b{n}" for n in range(AUTO_BINS_AT + 1)]
    sign_many(publisher, gun, tags[:-1])
    assert served_metadata(server, gun, "targets.json").signed.delegations is None
    _sign(publisher, gun, tags[-1])
    assert _bins_of(server, gun).number_of_bins == bin_count_for(len(tags))
    host = _host(tmp_path, server.url)
    for tag in (tags[0], tags[500], tags[-1]):
        assert_verifies(host, gun, tag, DIGEST_A)


def test_trustkit_auto_bins_off_keeps_a_large_repository_flat(
    publisher: Trustkit, server: ServerProcess, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    gun = gun_for(request.node.name)
    flat = Trustkit(
        publisher.home, publisher.server_url, {**publisher.env, "TRUSTKIT_AUTO_BINS": "off"}
    )
    assert flat("init", gun).code == 0
    sign_many(flat, gun, [f"b{n}" for n in range(AUTO_BINS_AT + 1)])
    targets: Targets = served_metadata(server, gun, "targets.json").signed
    assert targets.delegations is None and len(targets.targets) == AUTO_BINS_AT + 1
    assert_verifies(_host(tmp_path, server.url), gun, "b7", DIGEST_A)
    wrong = Trustkit(
        publisher.home, publisher.server_url, {**publisher.env, "TRUSTKIT_AUTO_BINS": "0"}
    )
    refused = wrong("sign", f"{gun}:b", "--digest", DIGEST_A, "--size", "100")
    assert refused.code == 2 and "TRUSTKIT_AUTO_BINS is '0'; use on or off" in refused.err


def test_bins_outgrown_four_times_over_are_replaced_by_more_in_the_same_publish(
    publisher: Trustkit, server: ServerProcess, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    gun = gun_for(request.node.name)
    assert publisher("init", gun, "--bins", "2").code == 0
    host = _host(tmp_path, server.url)
    sign_many(publisher, gun, [f"r{n}" for n in range(40)])
    grown = _bins_of(server, gun).number_of_bins
    assert grown == bin_count_for(40) >= 8
    for n in range(40):
        assert_verifies(host, gun, f"r{n}", DIGEST_A)
    before = _snapshot_roles(server, gun)
    _sign(publisher, gun, "r40")  # one more tag: one bin, no new layout
    after = _snapshot_roles(server, gun)
    assert {role for role in after if after[role] != before.get(role)} == {
        _bins_of(server, gun).get_role_for_target("r40")
    }
    assert _bins_of(server, gun).number_of_bins == grown


def test_a_signer_already_named_bins_stops_the_move_and_changes_nothing(
    publisher: Trustkit, server: ServerProcess, request: pytest.FixtureRequest
) -> None:
    """A repository from before bins may have a signer named ``bins``."""
    gun = gun_for(request.node.name)
    assert publisher("init", gun).code == 0
    _sign(publisher, gun, "1.0")
    targets: Targets = served_metadata(server, gun, "targets.json").signed
    signer_key = SSlibKey.from_crypto(Ed25519PrivateKey.generate().public_key())
    targets.delegations = Delegations(
        keys={signer_key.keyid: signer_key},
        roles={"bins": DelegatedRole("bins", [signer_key.keyid], 1, False, ["x*"])},
    )
    targets.version += 1
    uploaded = post_upload(server, gun, targets=sign_with(targets, [_targets_signer(publisher)]))
    assert uploaded.status_code == 200, uploaded.text
    before = _snapshot_roles(server, gun)

    refused = publisher("bins", gun)
    assert refused.code == 2
    assert f"{gun} has a signer named bins" in refused.err
    assert "trustkit signer remove bins" in refused.err
    assert _snapshot_roles(server, gun) == before


def test_bad_bin_counts_are_refused_with_the_rule(
    publisher: Trustkit, request: pytest.FixtureRequest
) -> None:
    gun = gun_for(request.node.name)
    for count in ("3", "1", "32768", "many"):
        result = publisher("init", gun, "--bins", count)
        assert result.code != 0
        assert "power of two from 2 to 16384" in result.err
        assert "Traceback" not in result.err


# --- what the server refuses ---------------------------------------------------------


def test_the_server_refuses_a_tag_in_the_wrong_bin_and_a_bin_that_delegates(
    publisher: Trustkit, server: ServerProcess, request: pytest.FixtureRequest
) -> None:
    gun = gun_for(request.node.name)
    assert publisher("init", gun, "--bins", "4").code == 0
    _sign(publisher, gun, "x")
    bins = _bins_of(server, gun)
    home = bins.get_role_for_target("x")
    other = next(name for name in bins.get_roles() if name != home)
    targets_key = _targets_signer(publisher)
    wrong: Targets = served_metadata(server, gun, f"{home}.json").signed
    wrong.version = _snapshot_roles(server, gun).get(other, 0) + 1
    response = post_upload(server, gun, **{other: sign_with(wrong, [targets_key])})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "outside_delegated_paths"
    assert f"belongs in the hash bin {home}" in response.json()["detail"]

    delegating: Targets = served_metadata(server, gun, f"{home}.json").signed
    delegating.version += 1
    delegating.delegations = Delegations(keys={}, roles={})
    response = post_upload(server, gun, **{home: sign_with(delegating, [targets_key])})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "bin_delegates"

    forged: Targets = served_metadata(server, gun, f"{home}.json").signed
    forged.version += 1
    alien = Ed25519PrivateKey.generate()
    response = post_upload(server, gun, **{home: sign_with(forged, [_signer_of(alien)])})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "threshold_not_met"
    assert_verifies(_host_at(server), gun, "x", DIGEST_A)
