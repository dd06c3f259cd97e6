"""What trustkit relies on in python-tuf's internals (client.tuf_internals), pinned.

Each test fails if a python-tuf release changes the behaviour trustkit depends on, so
that an upgrade is looked at rather than silently deciding differently. The repository
here lives in memory and is served by an in-memory fetcher: no network.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from securesystemslib.signer import CryptoSigner
from tuf.api import exceptions
from tuf.api.metadata import Metadata, Root
from tuf.ngclient import Updater

from client.lookup import MAX_DELEGATIONS, decide_loaded, decide_target, walk
from client.tuf_internals import (
    FlatRootUpdater,
    TufInternalsChanged,
    ignore_expiry,
    is_unpublished_role_error,
    load_delegated_role,
    require_flat_root_internals,
)
from tests.support.memory_repository import (
    TREE_NAMES,
    TREE_SIGNERS,
    YESTERDAY,
    MemoryRepository,
    build_tree,
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


def test_trustkits_replay_walks_as_python_tuf_does(
    repository: MemoryRepository, tmp_path: Path
) -> None:
    build_tree(repository)
    updater = repository.updater(tmp_path)
    for name in TREE_NAMES:
        decided = decide_target(updater, tmp_path, name)
        assert decided.target == updater.get_targetinfo(name)
        assert decided.signer == TREE_SIGNERS.get(name), name


def test_a_repository_loaded_whole_is_decided_alike(
    repository: MemoryRepository, tmp_path: Path
) -> None:
    build_tree(repository)
    by_file = repository.updater(tmp_path / "by-file")
    loaded = repository.updater(tmp_path / "loaded")
    loaded.refresh()
    roles = {"targets": repository.targets, **repository.delegated}
    for name in TREE_NAMES:
        decided = decide_loaded(loaded, name, roles.get)
        assert decided.target == decide_target(by_file, tmp_path / "by-file", name).target
        assert decided.signer == TREE_SIGNERS.get(name), name


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
