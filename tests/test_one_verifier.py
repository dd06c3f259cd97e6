"""One verifier: ``trustkit verify`` (a tag by name), a repository verified whole (the
agent, a digest reference, listings) and the conformance adapter decide alike, and in
each python-tuf's ``Updater.get_targetinfo`` decides.

The repository lives in memory (tests/support/memory_repository.py); the verifier is
trustkit's own, over it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tuf.ngclient import Updater

from client.lookup import UnpublishedSignerError, decide_target
from client.settings import ClientSettings
from client.verify import Verifier
from tests.support.memory_repository import (
    TREE_NAMES,
    TREE_SIGNERS,
    MemoryRepository,
    build_tree,
)
from trustkit.errors import VerificationError

GUN = "registry.test/app"


def _verifier(tmp_path: Path, repository: MemoryRepository) -> Verifier:
    settings = ClientSettings(home=tmp_path / "home", server_url="https://server.test")
    return Verifier(settings, repository)


def _found(found: Any) -> tuple[Any, str | None]:
    return (None, None) if found is None else (found[0], found[1])


def test_a_tag_by_name_a_whole_repository_and_the_adapter_decide_alike(
    tmp_path: Path,
) -> None:
    repository = MemoryRepository()
    build_tree(repository)
    verifier = _verifier(tmp_path, repository)
    whole = verifier.trusted_repository(GUN)
    adapter = repository.updater(tmp_path / "adapter")
    for name in TREE_NAMES:
        by_name = verifier.trusted_repository(GUN, tags=[name])
        expected = decide_target(adapter, tmp_path / "adapter", name)
        assert _found(by_name.lookup(name)) == (expected.target, expected.signer), name
        assert _found(whole.lookup(name)) == (expected.target, expected.signer), name
        assert expected.signer == TREE_SIGNERS.get(name)


def test_python_tuf_decides_every_tag_of_a_repository_verified_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repository = MemoryRepository()
    build_tree(repository)
    asked: list[str] = []
    get_targetinfo = Updater.get_targetinfo

    def recording(self: Updater, name: str) -> Any:
        asked.append(name)
        return get_targetinfo(self, name)

    monkeypatch.setattr(Updater, "get_targetinfo", recording)
    whole = _verifier(tmp_path, repository).trusted_repository(GUN)
    held = {
        name
        for role in (repository.targets, *repository.delegated.values())
        for name in role.targets
    }
    assert whole.every_tag_decided
    assert held <= set(asked)
    assert whole.signed_tags() == sorted(TREE_SIGNERS)


def test_a_signer_role_not_published_yet_is_stepped_over_alike(tmp_path: Path) -> None:
    repository = MemoryRepository()
    repository.delegate("targets", "late", ["app/*"])
    repository.delegate("targets", "team", ["app/*"])
    repository.unpublished.add("late")
    repository.sign_target("team", "app/1.0")
    repository.publish()
    verifier = _verifier(tmp_path, repository)
    by_name = verifier.trusted_repository(GUN, tags=["app/1.0"])
    whole = verifier.trusted_repository(GUN)
    assert by_name.signer("app/1.0") == whole.signer("app/1.0") == "team"
    assert by_name.unpublished == whole.unpublished == ("late",)
    # python-tuf itself refuses the lookup (TUF: a delegated role missing from snapshot).
    adapter = repository.updater(tmp_path / "adapter")
    with pytest.raises(UnpublishedSignerError):
        decide_target(adapter, tmp_path / "adapter", "app/1.0")


def test_a_lookup_past_the_bound_is_refused_alike_and_alone(tmp_path: Path) -> None:
    repository = MemoryRepository()
    for number in range(40):
        repository.delegate("targets", f"fan-{number:02}", ["app/*"])
    repository.sign_target("fan-39", "app/1.0")
    repository.sign_target("fan-00", "app/0.9")
    repository.publish()
    verifier = _verifier(tmp_path, repository)
    reason = "looking up app/1.0 visits more than 32 delegated roles"
    with pytest.raises(VerificationError, match=reason):
        verifier.trusted_repository(GUN, tags=["app/1.0"])
    whole = verifier.trusted_repository(GUN)  # the other tags stay usable
    with pytest.raises(VerificationError, match=reason):
        whole.lookup("app/1.0")
    assert whole.signed_tags() == ["app/0.9"]
