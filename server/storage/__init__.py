"""Storage of metadata and online keys: one interface, interchangeable engines."""

from server.storage.base import (
    OnlineKeyRecord,
    PendingUpload,
    Storage,
    StoredMetadata,
    VersionConflict,
    WriteTransaction,
)
from server.storage.sqlite import SQLiteStorage

__all__ = [
    "OnlineKeyRecord",
    "PendingUpload",
    "SQLiteStorage",
    "Storage",
    "StoredMetadata",
    "VersionConflict",
    "WriteTransaction",
]
