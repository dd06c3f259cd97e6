"""What trustkit relies on in python-tuf's internals (client.tuf_internals), pinned.

Each test fails if a python-tuf release changes the behaviour trustkit depends on, so
that an upgrade is looked at rather than silently deciding differently. The repository
here lives in memory and is served by an in-memory fetcher: no network.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

import pytest
from securesystemslib.signer import CryptoSigner
from tuf.api import exceptions
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Signed,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.ngclient import FetcherInterface, Updater

from client.lookup import MAX_DELEGATIONS, build_updater, decide_loaded, decide_target, walk
from client.tuf_internals import (
    FlatRootUpdater,
    TufInternalsChanged,
    ignore_expiry,
    is_unpublished_role_error,
    load_delegated_role,
    require_flat_root_internals,
)

IN_A_MONTH = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
YESTERDAY = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
URL = "https://repository.test/metadata/"
TOP_LEVEL = ("root", "timestamp", "snapshot", "targets")


class MemoryRepository(FetcherInterface):
    """A TUF repository (no consistent snapshots) and the fetcher that serves it."""

    def __init__(self) -> None:
        self.signers = {role: CryptoSigner.generate_ed25519() for role in TOP_LEVEL}
        self.root = Root(expires=IN_A_MONTH, consistent_snapshot=False)
        for role, signer in self.signers.items():
            self.root.add_key(signer.public_key, role)
        self.targets = Targets(expires=IN_A_MONTH)
        self.delegated: dict[str, Targets] = {}
        self.delegated_signers: dict[str, CryptoSigner] = {}
        self.unpublished: set[str] = set()
        self.files: dict[str, bytes] = {}
        self.publish()

    def _sign(self, signed: Signed, signer: CryptoSigner) -> bytes:
        metadata = Metadata(signed)
        metadata.sign(signer)
        return metadata.to_bytes()

    def delegate(
        self, parent: str, name: str, paths: list[str], terminating: bool = False
    ) -> Targets:
        delegator = self.targets if parent == "targets" else self.delegated[parent]
        if delegator.delegations is None:
            delegator.delegations = Delegations(keys={}, roles={})
        assert delegator.delegations.roles is not None
        signer = CryptoSigner.generate_ed25519()
        delegator.delegations.roles[name] = DelegatedRole(name, [], 1, terminating, paths)
        delegator.add_key(signer.public_key, name)
        self.delegated[name] = role = Targets(expires=IN_A_MONTH)
        self.delegated_signers[name] = signer
        return role

    def sign_target(self, role: str, path: str) -> TargetFile:
        target = TargetFile.from_data(path, path.encode(), ["sha256"])
        (self.targets if role == "targets" else self.delegated[role]).targets[path] = target
        return target

    def publish(self) -> None:
        snapshot = Snapshot(expires=IN_A_MONTH)
        for name, role in self.delegated.items():
            if name not in self.unpublished:
                self.files[f"{name}.json"] = self._sign(role, self.delegated_signers[name])
                snapshot.meta[f"{name}.json"] = MetaFile(role.version)
        self.files["targets.json"] = self._sign(self.targets, self.signers["targets"])
        snapshot.meta["targets.json"] = MetaFile(self.targets.version)
        self.files["snapshot.json"] = self._sign(snapshot, self.signers["snapshot"])
        timestamp = Timestamp(expires=IN_A_MONTH, snapshot_meta=MetaFile(snapshot.version))
        self.files["timestamp.json"] = self._sign(timestamp, self.signers["timestamp"])
        self.files[f"{self.root.version}.root.json"] = self._sign(self.root, self.signers["root"])

    def _fetch(self, url: str) -> Iterator[bytes]:
        name = unquote(url.removeprefix(URL))
        if name not in self.files:
            raise exceptions.DownloadHTTPError(f"{name} not found", 404)
        yield self.files[name]

    def updater(self, directory: Path, updater_class: type[Updater] = Updater) -> Updater:
        return build_updater(
            directory,
            URL,
            self,
            bootstrap=self.files["1.root.json"],
            updater_class=updater_class,
        )


@pytest.fixture
def repository() -> MemoryRepository:
    return MemoryRepository()


def test_ignore_expiry_lets_expired_metadata_through(
    repository: MemoryRepository, tmp_path: Path
) -> None:
    repository.targets.expires = YESTERDAY
    repository.publish()
    with pytest.raises(exceptions.ExpiredMetadataError):
        repository.updater(tmp_path / "strict").refresh()
    renewing = repository.updater(tmp_path / "renewing")
    ignore_expiry(renewing)
    renewing.refresh()


def test_ignore_expiry_keeps_every_other_check(
    repository: MemoryRepository, tmp_path: Path
) -> None:
    repository.targets.expires = YESTERDAY
    repository.files["targets.json"] = repository._sign(
        repository.targets, CryptoSigner.generate_ed25519()
    )
    renewing = repository.updater(tmp_path)
    ignore_expiry(renewing)
    with pytest.raises(exceptions.UnsignedMetadataError):
        renewing.refresh()


def test_load_delegated_role_verifies_it_against_its_delegator(
    repository: MemoryRepository, tmp_path: Path
) -> None:
    repository.delegate("targets", "team", ["app/*"])
    target = repository.sign_target("team", "app/1.0")
    repository.publish()
    updater = repository.updater(tmp_path / "good")
    updater.refresh()
    assert load_delegated_role(updater, "team", "targets").targets == {"app/1.0": target}

    repository.files["team.json"] = repository._sign(
        repository.delegated["team"], CryptoSigner.generate_ed25519()
    )
    tampered = repository.updater(tmp_path / "tampered")
    tampered.refresh()
    with pytest.raises(exceptions.UnsignedMetadataError):
        load_delegated_role(tampered, "team", "targets")


def test_a_lookup_reaching_an_unpublished_role_is_told_apart(
    repository: MemoryRepository, tmp_path: Path
) -> None:
    repository.delegate("targets", "team", ["app/*"])
    repository.unpublished.add("team")
    repository.publish()
    updater = repository.updater(tmp_path)
    with pytest.raises(exceptions.RepositoryError) as refused:
        updater.get_targetinfo("app/1.0")
    assert is_unpublished_role_error(refused.value)
    with pytest.raises(exceptions.RepositoryError) as unpublished:
        load_delegated_role(updater, "team", "targets")
    assert is_unpublished_role_error(unpublished.value)
    assert not is_unpublished_role_error(exceptions.ExpiredMetadataError("targets.json"))


def test_the_flat_root_updater_keeps_one_plain_root_json(
    repository: MemoryRepository, tmp_path: Path
) -> None:
    repository.root.version = 2
    repository.publish()
    updater = repository.updater(tmp_path, FlatRootUpdater)
    updater.refresh()
    stored = tmp_path / "root.json"
    assert stored.is_file() and not stored.is_symlink()
    assert not (tmp_path / "root_history").exists()
    assert Metadata[Root].from_file(str(stored)).signed.version == 2


def test_missing_internals_fail_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TufInternalsChanged, match="_trusted_set"):
        ignore_expiry(object())  # type: ignore[arg-type]
    with pytest.raises(TufInternalsChanged, match="_load_targets"):
        load_delegated_role(object(), "team", "targets")  # type: ignore[arg-type]
    monkeypatch.delattr(Updater, "_update_root_symlink")
    with pytest.raises(TufInternalsChanged, match="_update_root_symlink"):
        require_flat_root_internals()


def _tree(repository: MemoryRepository) -> None:
    """Delegations where the order of trust decides: nested, overlapping, terminating."""
    repository.delegate("targets", "first", ["app/*"])
    repository.delegate("first", "nested", ["app/1.*"])
    repository.delegate("targets", "stop", ["app/*", "web/*"], terminating=True)
    repository.delegate("targets", "after", ["*/*"])
    repository.sign_target("nested", "app/1.0")
    repository.sign_target("stop", "app/1.0")  # shadowed by nested, found first
    repository.sign_target("stop", "app/2.0")
    repository.sign_target("after", "app/2.0")  # shadowed by stop
    repository.sign_target("after", "web/1.0")  # behind the terminating stop: unsigned
    repository.sign_target("after", "other/1.0")
    repository.sign_target("targets", "top")
    repository.publish()


NAMES = ["app/1.0", "app/2.0", "web/1.0", "other/1.0", "top", "missing"]
SIGNERS = {"app/1.0": "nested", "app/2.0": "stop", "other/1.0": "after", "top": "targets"}


def test_trustkits_replay_walks_as_python_tuf_does(
    repository: MemoryRepository, tmp_path: Path
) -> None:
    _tree(repository)
    updater = repository.updater(tmp_path)
    for name in NAMES:
        decided = decide_target(updater, tmp_path, name)
        assert decided.target == updater.get_targetinfo(name)
        assert decided.signer == SIGNERS.get(name), name


def test_a_repository_loaded_whole_is_decided_alike(
    repository: MemoryRepository, tmp_path: Path
) -> None:
    _tree(repository)
    by_file = repository.updater(tmp_path / "by-file")
    loaded = repository.updater(tmp_path / "loaded")
    loaded.refresh()
    roles = {"targets": repository.targets, **repository.delegated}
    for name in NAMES:
        decided = decide_loaded(loaded, name, roles.get)
        assert decided.target == decide_target(by_file, tmp_path / "by-file", name).target
        assert decided.signer == SIGNERS.get(name), name


def test_the_walk_stops_at_python_tufs_bound(repository: MemoryRepository) -> None:
    parent = "targets"
    for level in range(MAX_DELEGATIONS + 2):
        name = f"level-{level}"
        repository.delegate(parent, name, ["*"])
        parent = name
    repository.sign_target(parent, "deep")
    roles = {"targets": repository.targets, **repository.delegated}
    found = walk("deep", roles.get, MAX_DELEGATIONS)
    assert found.target is None and found.cut_short
