"""``trustkit migrate notary``: a repository built with the real notary CLI on Debian's
notary-server moves to trustkit with every tag, digest and signer, and is refused when
it does not verify."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from keys.keystore import Keystore, public_key_from_pem
from tests.support.harness import ServerProcess, Trustkit, publisher_cli
from tests.support.notary_server import (
    PASSPHRASES,
    DelegateKey,
    NotaryCLI,
    NotaryProxy,
    NotaryServer,
    flip_byte,
    image_target,
    make_delegate_key,
    role_of,
)
from trustkit.bins import AUTO_BINS_AT

GUN = "registry.test/team/app"
OTHER = "registry.test/team/web"
RELEASES = "targets/releases"
TAGS = {"1.0": "app 1.0", "1.1": "app 1.1", "latest": "app 1.1"}
CI_TAGS = {"2.0": "app 2.0"}


@dataclass(frozen=True)
class Notary:
    server: NotaryServer
    owner: NotaryCLI
    ci: NotaryCLI
    releases: DelegateKey


@pytest.fixture(scope="module")
def notary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Notary]:
    """One notary-server; APP with owner tags and a targets/releases signer (CI), WEB
    with one tag."""
    server = NotaryServer(tmp_path_factory.mktemp("notary-server")).start()
    base = tmp_path_factory.mktemp("notary-clients")
    owner = NotaryCLI(server, base / "owner" / "trust")
    owner.init(GUN)
    owner.add_many(GUN, {tag: image_target(label) for tag, label in TAGS.items()})
    owner.rotate(GUN, "snapshot", server_managed=True)
    releases = make_delegate_key(base / "keys", "releases")
    owner.add_delegation(GUN, RELEASES, [releases.cert_path], all_paths=True, publish=True)
    ci = NotaryCLI(server, base / "ci" / "trust")
    ci.import_key(releases.key_path, RELEASES)
    ci.add_many(GUN, {t: image_target(label) for t, label in CI_TAGS.items()}, role=RELEASES)
    owner.init(OTHER)
    owner.add(OTHER, "3.0", image_target("web 3.0"))
    yield Notary(server, owner, ci, releases)
    server.stop()


@pytest.fixture
def server(start_server: Any) -> ServerProcess:
    """A trustkit server of the test's own: migration keeps Notary's repository names."""
    own: ServerProcess = start_server()
    return own


def _migrate(tk: Trustkit, notary: Notary, *args: str) -> Any:
    return tk(
        "migrate", "notary", *args, "--from", notary.server.url,
        "--from-ca", str(notary.server.ca_path), "--json",
    )  # fmt: skip


def _host(tmp_path: Path, server: ServerProcess, name: str = "host") -> Trustkit:
    return Trustkit(tmp_path / name / ".trustkit", server.url)


def _verified(host: Trustkit, gun: str, tag: str) -> tuple[str, str]:
    result = host("verify", f"{gun}:{tag}", "--offline", "--json")
    assert result.code == 0, result.err
    inspected = host("inspect", f"{gun}", "--json")
    signer = {t["tag"]: t["signer"] for t in inspected.json["tags"]}[tag]
    return result.json["digest"], signer


def test_every_tag_and_signer_moves_over_and_a_rerun_changes_nothing(
    notary: Notary, server: ServerProcess, tmp_path: Path
):
    owner = publisher_cli(tmp_path / "owner" / ".trustkit", server.url)
    dry = _migrate(owner, notary, GUN, "--dry-run")
    assert dry.code == 0, dry.err
    assert "trusted on first use" in dry.err  # no Docker trust dir here: loud warning
    assert dry.json["dry_run"] is True and dry.json["published_changes"] == 0
    assert set(dry.json["tags"]) == {*TAGS, *CI_TAGS}
    assert owner("status", GUN).code != 0  # a dry run creates nothing

    migrated = _migrate(owner, notary, GUN, "--trust-dir", str(notary.owner.trust_dir))
    assert migrated.code == 0, migrated.err
    assert migrated.json["root"] == "pinned"  # the owner's Docker trust dir pins the root
    assert migrated.json["published_changes"] == len(TAGS) + len(CI_TAGS)
    assert migrated.json["signers"] == ["releases"]
    assert migrated.json["under_targets"] == {RELEASES: len(CI_TAGS)}

    host = _host(tmp_path, server)
    listed = notary.owner.list(GUN)
    assert set(listed) == {*TAGS, *CI_TAGS}
    for tag, row in listed.items():
        digest, _ = _verified(host, GUN, tag)
        assert digest == f"sha256:{row.digest}"
    signers = {s["name"]: s for s in host("signer", "list", GUN, "--json").json["signers"]}
    releases_key = public_key_from_pem(notary.releases.public_path.read_bytes(), "releases")
    assert signers["releases"]["keys"] == [releases_key.keyid]
    assert signers["releases"]["paths"] == ["*"]

    again = _migrate(owner, notary, GUN)
    assert again.code == 0, again.err
    assert again.json["published_changes"] == 0
    assert again.json["unchanged"] == len(TAGS) + len(CI_TAGS)


def test_with_the_signer_s_key_imported_its_tags_move_into_its_role(
    notary: Notary, server: ServerProcess, tmp_path: Path
):
    owner = publisher_cli(tmp_path / "owner" / ".trustkit", server.url)
    owner.env.update(PASSPHRASES)
    owner.env["TRUSTKIT_DELEGATION_PASSPHRASE"] = "trustkit delegation"
    assert _migrate(owner, notary, GUN).code == 0  # releases' tags under targets first
    imported = owner("key", "import", "--from-docker-trust", str(notary.ci.trust_dir))
    assert imported.code == 0, imported.err
    moved = _migrate(owner, notary, GUN)
    assert moved.code == 0, moved.err
    assert moved.json["published_changes"] == 2 * len(CI_TAGS)  # into releases, out of targets
    host = _host(tmp_path, server)
    for tag, label in CI_TAGS.items():
        assert _verified(host, GUN, tag) == (f"sha256:{image_target(label).digest}", "releases")
    for tag, label in TAGS.items():
        assert _verified(host, GUN, tag) == (f"sha256:{image_target(label).digest}", "targets")


def test_a_tampered_repository_is_refused_and_nothing_is_published(
    notary: Notary, server: ServerProcess, tmp_path: Path
):
    proxy = NotaryProxy(notary.server)

    def tamper(path: str, status: int, body: bytes) -> tuple[int, bytes]:
        if role_of(path) == "targets" and status == 200:
            return status, flip_byte(body, b'"1.0":{"hashes":{"sha256":"')
        return status, body

    proxy.rewrite = tamper
    proxy.start()
    try:
        owner = publisher_cli(tmp_path / "owner" / ".trustkit", server.url)
        result = owner("migrate", "notary", GUN, "--from", proxy.url, "--json")
    finally:
        proxy.stop()
    assert result.code == 1
    assert "targets" in result.err and "Traceback" not in result.err
    assert owner("status", GUN).code != 0
    assert Keystore(owner.home).records() == []


def test_all_repositories_of_a_list(notary: Notary, server: ServerProcess, tmp_path: Path):
    listing = tmp_path / "repositories.txt"
    listing.write_text(f"# from our notary\n{GUN}\n{OTHER}\nregistry.test/team/missing\n")
    owner = publisher_cli(tmp_path / "owner" / ".trustkit", server.url)
    result = owner(
        "migrate", "notary", "--all", "--list", str(listing), "--from", notary.server.url,
        "--from-ca", str(notary.server.ca_path), "--json",
    )  # fmt: skip
    assert result.code == 1  # one of three is missing on the Notary server
    assert result.json["migrated"] == 2 and result.json["failed"] == 1
    host = _host(tmp_path, server)
    assert _verified(host, OTHER, "3.0")[0] == f"sha256:{image_target('web 3.0').digest}"
    assert "registry.test/team/missing not migrated" in result.err


def test_a_repository_of_more_than_1024_tags_moves_into_hash_bins_and_reruns_see_them(
    notary: Notary, server: ServerProcess, tmp_path: Path
):
    gun = "registry.test/team/big"
    tags = {f"v{n}": image_target(f"big {n}") for n in range(AUTO_BINS_AT + 76)}
    notary.owner.init(gun)
    notary.owner.stage_many(gun, tags)
    notary.owner.publish(gun)
    owner = publisher_cli(tmp_path / "owner" / ".trustkit", server.url)

    migrated = _migrate(owner, notary, gun)
    assert migrated.code == 0, migrated.err
    assert migrated.json["published_changes"] == len(tags)
    host = _host(tmp_path, server)
    for tag in ("v0", "v512", f"v{len(tags) - 1}"):
        digest, signer = _verified(host, gun, tag)
        assert digest == f"sha256:{tags[tag].digest}"
        assert signer.startswith("bins-"), "the tags are signed in hash bins"

    again = _migrate(owner, notary, gun)
    assert again.code == 0, again.err
    assert again.json["published_changes"] == 0
    assert again.json["unchanged"] == len(tags)
