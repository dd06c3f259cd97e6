"""What upload validation works with: the refusal it raises, the limits it applies,
and the repository as it will be after an upload (``RepositoryAfterUpload``), with
the signatures its roles still lack (``Shortfall``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tuf.api.metadata import (
    DelegatedRole,
    Metadata,
    Root,
    SuccinctRoles,
    Targets,
)

from server.storage import StoredMetadata
from trustkit.bins import (
    BINS_ROLE,
    MAX_BINS,
    is_bin_name,
)

MAX_VERSION = 2**62  # versions are stored as 64-bit integers
Delegation = DelegatedRole | SuccinctRoles
ROLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,127}$")
MAX_MEDIA_TYPE_LENGTH = 255


class UploadRejected(Exception):
    """An upload broke a rule; becomes a 4xx with ``{"error", "role", "detail"}``."""

    def __init__(self, status: int, error: str, role: str | None, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.role = role
        self.detail = detail


@dataclass(frozen=True)
class Limits:
    max_role_bytes: int = 20 * 1024 * 1024
    max_roles_per_upload: int = MAX_BINS + 64  # a move into bins is one upload
    max_json_depth: int = 32  # TUF metadata needs about 6; deeper only hides tricks
    max_targets_per_role: int = 1_000_000


def json_depth(value: Any) -> int:
    """How deeply ``value`` nests objects and arrays (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest


@dataclass(frozen=True)
class Shortfall:
    """An uploaded role signed by fewer keys than ``checked_by`` requires."""

    role: str
    checked_by: str  # "previous root", "root" or the delegating role
    signed: list[str]  # key ids whose signatures verify
    threshold: int
    keyids: list[str]  # every key id that may sign

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "checked_by": self.checked_by,
            "signed": self.signed,
            "threshold": self.threshold,
            "keyids": self.keyids,
        }


class RepositoryAfterUpload:
    """The repository as it would be after the upload: uploaded roles over stored ones."""

    def __init__(
        self, uploaded: Mapping[str, Metadata[Any]], stored: Mapping[str, StoredMetadata]
    ) -> None:
        self.uploaded = uploaded
        self._stored = stored
        self._parsed: dict[str, Metadata[Any]] = dict(uploaded)
        self.shortfalls: list[Shortfall] = []
        # Per uploaded role, the key ids whose signatures count (an approval must add one).
        self.valid_signers: dict[str, set[str]] = {}

    def get_stored(self, role: str) -> Metadata[Any] | None:
        """The stored version of ``role``, before the upload."""
        stored = self._stored.get(role)
        return Metadata.from_bytes(stored.data) if stored is not None else None

    def stored_bytes(self, role: str) -> bytes | None:
        stored = self._stored.get(role)
        return stored.data if stored is not None else None

    def get(self, role: str) -> Metadata[Any] | None:
        if role not in self._parsed:
            if role not in self._stored:
                return None
            self._parsed[role] = Metadata.from_bytes(self._stored[role].data)
        return self._parsed[role]

    @property
    def root(self) -> Root:
        root = self.get("root")
        assert root is not None  # check_repository_exists ran first
        signed: Root = root.signed
        return signed

    def delegated_roles(self) -> list[str]:
        """Every delegated role reachable from targets, in delegation order."""
        found: list[str] = []
        queue = ["targets"]
        while queue:
            metadata = self.get(queue.pop(0))
            if metadata is None:
                continue
            delegations = metadata.signed.delegations
            if delegations is None or delegations.roles is None:
                continue
            for name in delegations.roles:
                if name not in found:
                    found.append(name)
                    queue.append(name)
        return found

    def delegator(self, role: str) -> tuple[str, Targets, Delegation] | None:
        """The role that delegates ``role``: its name, its metadata and the delegation
        (a hash bin's is the succinct delegation of all bins)."""
        for parent_name in ["targets", *self.delegated_roles()]:
            parent = self.get(parent_name)
            if parent is None or parent_name == role:
                continue
            delegations = parent.signed.delegations
            if delegations is None:
                continue
            if delegations.roles and role in delegations.roles:
                return parent_name, parent.signed, delegations.roles[role]
            bins = delegations.succinct_roles
            if bins is not None and bins.is_delegated_role(role):
                return parent_name, parent.signed, bins
        return None

    def bin_roles(self) -> list[str]:
        """Hash bins uploaded, or stored and delegated by an uploaded ``bins`` role
        (whose keys they must then be signed by)."""
        names = [role for role in self.uploaded if self._is_bin(role)]
        if BINS_ROLE in self.uploaded:
            names += [r for r in self._stored if r not in self.uploaded and self._is_bin(r)]
        return names

    def _is_bin(self, role: str) -> bool:
        found = self.delegator(role) if is_bin_name(role) else None
        return found is not None and isinstance(found[2], SuccinctRoles)


def shown(text: str) -> str:
    """``text`` quoted for a message: escapes for what is not printable, and cut short."""
    return repr(text[:80]) + ("…" if len(text) > 80 else "")
