"""The changelist: signing changes staged locally and applied at publish time.

Because a change is "add this tag → digest" or "remove this tag", not a finished
targets file, it can be applied again on top of whatever another publisher just
published; that is what makes retrying after a 409 safe.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tuf.api.metadata import TargetFile, Targets

from keys.files import write_private_file
from trustkit.errors import KeystoreError

__all__ = ["AwaitingApproval", "Change", "Changelist", "apply_changes"]

Action = Literal["add", "remove"]


@dataclass(frozen=True)
class Change:
    action: Action
    path: str
    target: dict[str, Any] | None = None

    @classmethod
    def add(cls, target: TargetFile) -> Change:
        return cls("add", target.path, target.to_dict())

    @classmethod
    def remove(cls, path: str) -> Change:
        return cls("remove", path)

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "path": self.path, "target": self.target}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Change:
        action = data["action"]
        if action not in ("add", "remove"):
            raise ValueError(f"unknown change {action}")
        return cls(action, str(data["path"]), data.get("target"))


def apply_changes(targets: Targets, changes: list[Change]) -> None:
    """Apply changes in order; removing an absent tag is a no-op (someone beat us to it)."""
    for change in changes:
        if change.action == "add":
            assert change.target is not None
            targets.targets[change.path] = TargetFile.from_dict(dict(change.target), change.path)
        else:
            targets.targets.pop(change.path, None)


@dataclass(frozen=True)
class AwaitingApproval:
    """Changes this machine published that the server keeps pending for co-signers."""

    id: str
    changes: list[Change]


class Changelist:
    """The staged changes of one repository, kept in a 0600 JSON file, and beside it the
    changes of this machine's last upload still waiting for co-signers: a later publish
    folds them in (replacing that pending change) so that none is lost."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.awaiting_path = path.with_suffix(".pending.json")
        # Changes of a pending upload of this machine that lapsed on the server
        # (rejected, withdrawn or expired): never sent again unless asked (--resend).
        self.lapsed_path = path.with_suffix(".lapsed.json")

    def load_lapsed(self) -> list[Change]:
        return self._load_changes(self.lapsed_path, "the lapsed changes")

    def save_lapsed(self, changes: list[Change]) -> None:
        if not changes:
            self.clear_lapsed()
            return
        document = {"changes": [change.to_dict() for change in changes]}
        write_private_file(self.lapsed_path, json.dumps(document, indent=2).encode())

    def clear_lapsed(self) -> None:
        self.lapsed_path.unlink(missing_ok=True)

    def load_awaiting(self) -> AwaitingApproval | None:
        try:
            data = json.loads(self.awaiting_path.read_bytes())
            return AwaitingApproval(
                str(data["id"]), [Change.from_dict(item) for item in data["changes"]]
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise KeystoreError(
                f"the record of changes awaiting approval {self.awaiting_path} is damaged: {error}",
                hint="inspect or delete it (see the pending changes: trustkit approve REPO)",
            ) from None

    def save_awaiting(self, awaiting: AwaitingApproval) -> None:
        document = {
            "id": awaiting.id,
            "changes": [change.to_dict() for change in awaiting.changes],
        }
        write_private_file(self.awaiting_path, json.dumps(document, indent=2).encode())

    def clear_awaiting(self) -> None:
        self.awaiting_path.unlink(missing_ok=True)

    def load(self) -> list[Change]:
        return self._load_changes(self.path, "the changelist")

    @staticmethod
    def _load_changes(path: Path, what: str) -> list[Change]:
        try:
            data = json.loads(path.read_bytes())
            return [Change.from_dict(item) for item in data["changes"]]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise KeystoreError(
                f"{what} {path} is damaged: {error}",
                hint="inspect or delete it, then stage the changes again",
            ) from None

    def save(self, changes: list[Change]) -> None:
        document = {"changes": [change.to_dict() for change in changes]}
        write_private_file(self.path, json.dumps(document, indent=2).encode())

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
