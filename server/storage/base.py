"""The storage contract every engine meets.

Metadata is append-only: each (repository, role, version) is written once and never
changed, which is what lets ``N.role.json`` be served forever. All the writes of one
publish happen in one ``WriteTransaction``: either every row lands or none does, and
two transactions on one repository never interleave.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "ChangeRecord",
    "LatestRoles",
    "OnlineKeyRecord",
    "PendingUpload",
    "Storage",
    "StoredMetadata",
    "TokenRecord",
    "VersionConflict",
    "WriteTransaction",
]


class VersionConflict(Exception):
    """A version of a role was already written by a concurrent publish."""


@dataclass(frozen=True)
class StoredMetadata:
    role: str
    version: int
    data: bytes


class LatestRoles(Mapping[str, StoredMetadata]):
    """The newest stored version of every role of a repository, read inside a write
    transaction.

    Which roles exist and their versions come from one query; a role's bytes are read
    only when its item is asked for (``latest[role]``, ``latest.get(role)``), once per
    transaction. ``in``, ``len``, ``versions()`` and iterating over the roles read no
    bytes, so a publish that touches a few roles of a repository of thousands reads only
    those. Iterating over items or values reads every role's bytes.

    The roles and versions are those of when ``latest()`` was called: a ``put`` later in
    the transaction does not change them (call ``latest()`` again to see it).
    """

    def __init__(self, versions: Mapping[str, int], read: Callable[[str, int], bytes]) -> None:
        self._versions = dict(versions)
        self._read = read
        self._read_already: dict[str, StoredMetadata] = {}

    def versions(self) -> dict[str, int]:
        """Role -> newest version, without reading any role's bytes."""
        return dict(self._versions)

    def __getitem__(self, role: str) -> StoredMetadata:
        stored = self._read_already.get(role)
        if stored is None:
            version = self._versions[role]  # KeyError for a role never stored
            stored = StoredMetadata(role, version, self._read(role, version))
            self._read_already[role] = stored
        return stored

    def __contains__(self, role: object) -> bool:
        return role in self._versions

    def __iter__(self) -> Iterator[str]:
        return iter(self._versions)

    def __len__(self) -> int:
        return len(self._versions)

    def __repr__(self) -> str:
        return f"LatestRoles({self._versions!r})"


@dataclass(frozen=True)
class OnlineKeyRecord:
    """A server-held key: its public half as TUF JSON and its private half sealed."""

    role: str
    keyid: str
    public_json: str
    sealed_private: bytes


@dataclass(frozen=True)
class PendingUpload:
    """An upload waiting for co-signers: never served to hosts, dropped when it expires.

    ``needs`` is what it lacks, as validation found it when it was last written (a write
    to the repository brings it up to date), so listing pending changes validates
    nothing; None for a change stored before the server kept it."""

    id: str
    created: datetime
    expires: datetime
    parts: dict[str, bytes]
    needs: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class TokenRecord:
    """What the server keeps of an access token: its hash, never the token."""

    lookup: str  # first 16 hex digits of the sha256, to find it by
    digest: str  # the whole sha256, compared in constant time
    name: str
    scopes: tuple[str, ...]
    created: datetime
    revoked: datetime | None = None


@dataclass(frozen=True)
class ChangeRecord:
    """One line of the audit changefeed."""

    seq: int
    time: datetime
    gun: str
    action: str  # publish, pending, approve, withdraw, next_key, delete
    versions: dict[str, int]
    actor: str | None  # the token's name; None on a server without auth
    detail: str | None = None


class WriteTransaction(ABC):
    """Reads and writes of one repository inside one atomic transaction."""

    @abstractmethod
    def latest(self) -> LatestRoles:
        """The newest stored version of every role of the repository, each role's bytes
        read from this transaction when first asked for (see ``LatestRoles``)."""

    @abstractmethod
    def put(self, role: str, version: int, data: bytes) -> None:
        """Add a version of a role; raises ``VersionConflict`` if it exists."""

    @abstractmethod
    def promote_online_key(self, role: str) -> OnlineKeyRecord:
        """Make the role's next key its key, in this transaction (a key rotation)."""

    @abstractmethod
    def pending(self) -> list[PendingUpload]:
        """Every pending upload of the repository, oldest first (expired ones too)."""

    @abstractmethod
    def put_pending(self, upload: PendingUpload) -> None:
        """Store a pending upload, replacing the one with the same id."""

    @abstractmethod
    def delete_pending(self, upload_id: str) -> None: ...

    @abstractmethod
    def retire_content(self, digest: str) -> None:
        """Remember that content (``digest`` of a pending change's signed roles) was
        withdrawn, expired or dropped, so that a re-upload of it is refused."""

    @abstractmethod
    def is_retired(self, digest: str) -> bool: ...

    @abstractmethod
    def record_change(
        self, action: str, versions: dict[str, int], actor: str | None, detail: str | None = None
    ) -> None:
        """Append a line to the changefeed, committed with this transaction."""


class Storage(ABC):
    """What the server needs from a database."""

    @abstractmethod
    def latest(self, gun: str, role: str) -> StoredMetadata | None: ...

    @abstractmethod
    def version(self, gun: str, role: str, version: int) -> StoredMetadata | None: ...

    @abstractmethod
    def pending(self, gun: str) -> list[PendingUpload]:
        """Every pending upload of ``gun``, oldest first (expired ones too), read
        outside any write transaction."""

    @abstractmethod
    def write(self, gun: str) -> AbstractContextManager[WriteTransaction]:
        """Open the one write transaction of ``gun``; commits on normal exit."""

    @abstractmethod
    def delete_repository(self, gun: str, actor: str | None = None) -> bool:
        """Remove every version of every role, the online keys and pending uploads; False
        if no metadata existed."""

    @abstractmethod
    def repositories(self) -> Iterator[str]: ...

    @abstractmethod
    def all_versions(self, gun: str) -> Iterator[StoredMetadata]:
        """Every stored version of every role of ``gun`` (for a static mirror)."""

    @abstractmethod
    def online_key(self, gun: str, role: str) -> OnlineKeyRecord | None: ...

    @abstractmethod
    def add_online_key(self, gun: str, record: OnlineKeyRecord) -> OnlineKeyRecord:
        """Store ``record`` unless the role already has a key; return the one stored."""

    @abstractmethod
    def next_online_key(self, gun: str, role: str) -> OnlineKeyRecord | None:
        """The key made for a rotation, waiting for a root that lists it."""

    @abstractmethod
    def set_next_online_key(self, gun: str, record: OnlineKeyRecord) -> None:
        """Make ``record`` the role's next key, replacing any earlier one."""

    @abstractmethod
    def record_change(
        self,
        gun: str,
        action: str,
        versions: dict[str, int],
        actor: str | None,
        detail: str | None = None,
    ) -> None:
        """Append a line to the changefeed on its own."""

    @abstractmethod
    def changes(self, after: int, limit: int) -> list[ChangeRecord]:
        """Changefeed lines with ``seq`` above ``after``, oldest first, at most ``limit``."""

    @abstractmethod
    def add_token(self, record: TokenRecord) -> None:
        """Store a token; ``ValueError`` if a live token has the same name."""

    @abstractmethod
    def token(self, lookup: str) -> TokenRecord | None: ...

    @abstractmethod
    def tokens(self) -> list[TokenRecord]: ...

    @abstractmethod
    def revoke_token(self, name: str) -> bool:
        """Revoke the live token named ``name``; False if there is none."""

    @abstractmethod
    def close(self) -> None: ...
