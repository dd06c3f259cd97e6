"""Storage of metadata and online keys: one interface, interchangeable engines."""

from server.storage.base import (
    ChangeRecord,
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
    "OnlineKeyRecord",
    "PendingUpload",
    "SQLiteStorage",
    "Storage",
    "StoredMetadata",
    "TokenRecord",
    "VersionConflict",
    "WriteTransaction",
]
