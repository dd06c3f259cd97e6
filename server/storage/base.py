"""The storage contract every engine meets.

Metadata is append-only: each (repository, role, version) is written once and never
changed, which is what lets ``N.role.json`` be served forever. All the writes of one
publish happen in one ``WriteTransaction``: either every row lands or none does, and
two transactions on one repository never interleave.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "OnlineKeyRecord",
    "PendingUpload",
    "Storage",
    "StoredMetadata",
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


@dataclass(frozen=True)
class OnlineKeyRecord:
    """A server-held key: its public half as TUF JSON and its private half sealed."""

    role: str
    keyid: str
    public_json: str
    sealed_private: bytes


@dataclass(frozen=True)
class PendingUpload:
    """An upload waiting for co-signers: never served to hosts, dropped when it expires."""

    id: str
    created: datetime
    expires: datetime
    parts: dict[str, bytes]


class WriteTransaction(ABC):
    """Reads and writes of one repository inside one atomic transaction."""

    @abstractmethod
    def latest(self) -> dict[str, StoredMetadata]:
        """The newest stored version of every role of the repository."""

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


class Storage(ABC):
    """What the server needs from a database."""

    @abstractmethod
    def latest(self, gun: str, role: str) -> StoredMetadata | None: ...

    @abstractmethod
    def version(self, gun: str, role: str, version: int) -> StoredMetadata | None: ...

    @abstractmethod
    def write(self, gun: str) -> AbstractContextManager[WriteTransaction]:
        """Open the one write transaction of ``gun``; commits on normal exit."""

    @abstractmethod
    def delete_repository(self, gun: str) -> bool:
        """Remove every version of every role, the online keys and pending uploads; False
        if no metadata existed."""

    @abstractmethod
    def repositories(self) -> Iterator[str]: ...

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
    def close(self) -> None: ...
