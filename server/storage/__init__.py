"""Storage of metadata and online keys: one interface, interchangeable engines.

``server.storage.postgres.PostgresStorage`` is imported only where it is used (see
``server.storage.opening``), so the embedded SQLite server never loads psycopg."""

from server.storage.base import (
    ChangeRecord,
    LatestRoles,
    OnlineKeyRecord,
    PendingUpload,
    Storage,
    StoredMetadata,
    TokenRecord,
    VersionConflict,
    WriteTransaction,
)
from server.storage.sqlite import SQLiteStorage

__all__ = [
    "ChangeRecord",
    "LatestRoles",
    "OnlineKeyRecord",
    "PendingUpload",
    "SQLiteStorage",
    "Storage",
    "StoredMetadata",
    "TokenRecord",
    "VersionConflict",
    "WriteTransaction",
]
