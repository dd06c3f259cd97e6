"""Key holders edit copies, never the repository this host verified.

python-tuf's ``tuf/repository`` ``edit()`` pattern: ``Verifier.trusted_repository``
hands out what it verified, and every change a key holder makes (sign, revoke, rotate a
key, add a signer, move tags into bins) is made on copies. A publish the server refuses
leaves each verified repository exactly as it was verified.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tuf.api.metadata import Targets

from client.server_api import ServerAPI
from client.trusted import TrustedRepository
from client.verify import Verifier
from tests.support.harness import DIGEST_A, DIGEST_B, Trustkit
from trustkit.errors import ServerRefusedError
from trustkit.expiry import utc_now
from trustkit.metadata import new_targets


def _state(repository: TrustedRepository) -> dict[str, Any]:
    """Everything a key holder could edit, as plain data."""
    return {
        "root": repository.root.to_dict(),
        "targets": repository.targets.to_dict(),
        "snapshot": None if repository.snapshot is None else repository.snapshot.to_dict(),
        "delegated": {name: role.to_dict() for name, role in repository.delegated.items()},
    }


@pytest.fixture
def verified(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[TrustedRepository, Any]]]:
    """Every repository verified in this test, with its state as it was verified."""
    seen: list[tuple[TrustedRepository, Any]] = []
    original = Verifier.trusted_repository

    def recording(self: Verifier, gun: str, **options: Any) -> TrustedRepository:
        repository = original(self, gun, **options)
        seen.append((repository, _state(repository)))
        return repository

    monkeypatch.setattr(Verifier, "trusted_repository", recording)
    yield seen


def _refuse_uploads(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: ServerAPI, gun: str, roles: Any) -> dict[str, Any]:
        raise ServerRefusedError("refused by the test", status=400, error="invalid")

    monkeypatch.setattr(ServerAPI, "upload", refuse)


def _ok(result: Any) -> None:
    assert result.code == 0, result.err


def _assert_unchanged(seen: list[tuple[TrustedRepository, Any]]) -> None:
    assert seen, "nothing was verified"
    for repository, state in seen:
        assert _state(repository) == state


@pytest.mark.parametrize(
    "command",
    [
        ["sign", "{gun}:2.0", "--digest", DIGEST_B, "--size", "100"],
        ["revoke", "{gun}:1.0"],
        ["key", "rotate", "{gun}", "targets"],
        ["key", "rotate", "{gun}", "root"],
        ["key", "rotate", "{gun}", "snapshot", "--local"],
        ["refresh", "{gun}", "--within", "36500d"],
        ["bins", "{gun}", "--count", "4"],
    ],
    ids=lambda command: "-".join(part for part in command[:2] if "{" not in part),
)
def test_a_refused_publish_leaves_the_verified_repository_as_it_was(
    publisher: Trustkit,
    gun: str,
    verified: list[tuple[TrustedRepository, Any]],
    monkeypatch: pytest.MonkeyPatch,
    command: list[str],
) -> None:
    _ok(publisher("init", gun))
    _ok(publisher("sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "100"))
    _refuse_uploads(monkeypatch)
    verified.clear()
    result = publisher(*(part.format(gun=gun) for part in command))
    assert result.code != 0
    assert "refused by the test" in result.err
    _assert_unchanged(verified)


def test_a_refused_publish_into_bins_leaves_the_verified_bins_as_they_were(
    publisher: Trustkit,
    gun: str,
    verified: list[tuple[TrustedRepository, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _ok(publisher("init", gun, "--bins", "4"))
    _ok(publisher("sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "100"))
    _refuse_uploads(monkeypatch)
    verified.clear()
    for command in (
        ["sign", f"{gun}:2.0", "--digest", DIGEST_B, "--size", "100"],
        ["key", "rotate", gun, "targets"],
        ["bins", gun, "--count", "8"],
    ):
        result = publisher(*command)
        assert result.code != 0 and "refused by the test" in result.err, command
    _assert_unchanged(verified)


def test_a_verified_repository_hands_out_copies_to_edit() -> None:
    targets = new_targets(utc_now())
    role: Targets = new_targets(utc_now())
    repository = TrustedRepository("registry.test/app", None, targets, [], False, {"a": role})  # type: ignore[arg-type]
    edited = repository.edit_targets()
    edited.version += 1
    assert repository.targets.version == targets.version
    copy_of_a = repository.edit_role("a")
    assert copy_of_a is not None and copy_of_a is not role
    assert repository.edit_role("b") is None
    with pytest.raises(TypeError):
        repository.delegated["b"] = role  # type: ignore[index]
