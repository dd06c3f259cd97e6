"""Storage of metadata and online keys: one interface, interchangeable engines."""

from server.storage.base import (
    OnlineKeyRecord,
    Storage,
    StoredMetadata,
    VersionConflict,
    WriteTransaction,
)
from server.storage.sqlite import SQLiteStorage

__all__ = [
    "OnlineKeyRecord",
    "SQLiteStorage",
    "Storage",
    "StoredMetadata",
    "VersionConflict",
    "WriteTransaction",
]
