"""The embedded default engine: one SQLite file, WAL mode, one connection per thread.

Writers take SQLite's write lock up front (``BEGIN IMMEDIATE``), so a publish reads
the state it validates against under the same lock it writes with.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from server.storage.base import (
    OnlineKeyRecord,
    PendingUpload,
    Storage,
    StoredMetadata,
    VersionConflict,
    WriteTransaction,
)

__all__ = ["SQLiteStorage"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS metadata (
    gun TEXT NOT NULL,
    role TEXT NOT NULL,
    version INTEGER NOT NULL,
    data BLOB NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (gun, role, version)
);
CREATE TABLE IF NOT EXISTS online_keys (
    gun TEXT NOT NULL,
    role TEXT NOT NULL,
    keyid TEXT NOT NULL,
    public TEXT NOT NULL,
    sealed BLOB NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (gun, role)
);
CREATE TABLE IF NOT EXISTS pending (
    gun TEXT NOT NULL,
    id TEXT NOT NULL,
    created TEXT NOT NULL,
    expires TEXT NOT NULL,
    parts TEXT NOT NULL,
    PRIMARY KEY (gun, id)
);
CREATE TABLE IF NOT EXISTS next_online_keys (
    gun TEXT NOT NULL,
    role TEXT NOT NULL,
    keyid TEXT NOT NULL,
    public TEXT NOT NULL,
    sealed BLOB NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (gun, role)
);
"""

_LATEST_ALL = """
SELECT role, version, data FROM metadata AS m
WHERE gun = ? AND version = (
    SELECT MAX(version) FROM metadata WHERE gun = m.gun AND role = m.role
)
"""


def _now() -> str:
    return datetime.now(UTC).isoformat()


class _SQLiteTransaction(WriteTransaction):
    def __init__(self, connection: sqlite3.Connection, gun: str) -> None:
        self._connection = connection
        self._gun = gun

    def latest(self) -> dict[str, StoredMetadata]:
        rows = self._connection.execute(_LATEST_ALL, (self._gun,)).fetchall()
        return {role: StoredMetadata(role, version, bytes(data)) for role, version, data in rows}

    def put(self, role: str, version: int, data: bytes) -> None:
        try:
            self._connection.execute(
                "INSERT INTO metadata (gun, role, version, data, created) VALUES (?, ?, ?, ?, ?)",
                (self._gun, role, version, data, _now()),
            )
        except sqlite3.IntegrityError:
            raise VersionConflict(f"{role} version {version} already exists") from None

    def promote_online_key(self, role: str) -> OnlineKeyRecord:
        row = self._connection.execute(
            "SELECT keyid, public, sealed FROM next_online_keys WHERE gun = ? AND role = ?",
            (self._gun, role),
        ).fetchone()
        if row is None:
            raise LookupError(f"no next {role} key for {self._gun}")
        self._connection.execute(
            "INSERT OR REPLACE INTO online_keys (gun, role, keyid, public, sealed, created) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (self._gun, role, row[0], row[1], row[2], _now()),
        )
        self._connection.execute(
            "DELETE FROM next_online_keys WHERE gun = ? AND role = ?", (self._gun, role)
        )
        return OnlineKeyRecord(role, row[0], row[1], bytes(row[2]))

    def pending(self) -> list[PendingUpload]:
        rows = self._connection.execute(
            "SELECT id, created, expires, parts FROM pending WHERE gun = ? ORDER BY created, id",
            (self._gun,),
        ).fetchall()
        return [
            PendingUpload(
                upload_id,
                datetime.fromisoformat(created),
                datetime.fromisoformat(expires),
                {role: base64.b64decode(text) for role, text in json.loads(parts).items()},
            )
            for upload_id, created, expires, parts in rows
        ]

    def put_pending(self, upload: PendingUpload) -> None:
        parts = json.dumps(
            {role: base64.b64encode(data).decode() for role, data in upload.parts.items()}
        )
        self._connection.execute(
            "INSERT OR REPLACE INTO pending (gun, id, created, expires, parts) "
            "VALUES (?, ?, ?, ?, ?)",
            (self._gun, upload.id, upload.created.isoformat(), upload.expires.isoformat(), parts),
        )

    def delete_pending(self, upload_id: str) -> None:
        self._connection.execute(
            "DELETE FROM pending WHERE gun = ? AND id = ?", (self._gun, upload_id)
        )


class SQLiteStorage(Storage):
    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        connection = self._connection()
        connection.execute("PRAGMA journal_mode=WAL")
        connection.executescript(_SCHEMA)

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                self.path, timeout=60, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA busy_timeout=60000")
            self._local.connection = connection
        return connection

    def latest(self, gun: str, role: str) -> StoredMetadata | None:
        row = (
            self._connection()
            .execute(
                "SELECT version, data FROM metadata WHERE gun = ? AND role = ? "
                "ORDER BY version DESC LIMIT 1",
                (gun, role),
            )
            .fetchone()
        )
        return StoredMetadata(role, row[0], bytes(row[1])) if row else None

    def version(self, gun: str, role: str, version: int) -> StoredMetadata | None:
        row = (
            self._connection()
            .execute(
                "SELECT data FROM metadata WHERE gun = ? AND role = ? AND version = ?",
                (gun, role, version),
            )
            .fetchone()
        )
        return StoredMetadata(role, version, bytes(row[0])) if row else None

    @contextmanager
    def write(self, gun: str) -> Iterator[WriteTransaction]:
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield _SQLiteTransaction(connection, gun)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def delete_repository(self, gun: str) -> bool:
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            deleted = connection.execute("DELETE FROM metadata WHERE gun = ?", (gun,)).rowcount
            connection.execute("DELETE FROM online_keys WHERE gun = ?", (gun,))
            connection.execute("DELETE FROM next_online_keys WHERE gun = ?", (gun,))
            connection.execute("DELETE FROM pending WHERE gun = ?", (gun,))
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        return deleted > 0

    def repositories(self) -> Iterator[str]:
        rows = self._connection().execute("SELECT DISTINCT gun FROM metadata").fetchall()
        return iter([row[0] for row in rows])

    def online_key(self, gun: str, role: str) -> OnlineKeyRecord | None:
        return self._key_in("online_keys", gun, role)

    def _key_in(self, table: str, gun: str, role: str) -> OnlineKeyRecord | None:
        row = (
            self._connection()
            .execute(
                f"SELECT keyid, public, sealed FROM {table} WHERE gun = ? AND role = ?",  # noqa: S608 - table is ours
                (gun, role),
            )
            .fetchone()
        )
        return OnlineKeyRecord(role, row[0], row[1], bytes(row[2])) if row else None

    def add_online_key(self, gun: str, record: OnlineKeyRecord) -> OnlineKeyRecord:
        self._connection().execute(
            "INSERT OR IGNORE INTO online_keys (gun, role, keyid, public, sealed, created) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (gun, record.role, record.keyid, record.public_json, record.sealed_private, _now()),
        )
        stored = self.online_key(gun, record.role)
        assert stored is not None  # inserted above or already there
        return stored

    def next_online_key(self, gun: str, role: str) -> OnlineKeyRecord | None:
        return self._key_in("next_online_keys", gun, role)

    def set_next_online_key(self, gun: str, record: OnlineKeyRecord) -> None:
        self._connection().execute(
            "INSERT OR REPLACE INTO next_online_keys (gun, role, keyid, public, sealed, created) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (gun, record.role, record.keyid, record.public_json, record.sealed_private, _now()),
        )

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
