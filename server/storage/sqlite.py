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
    ChangeRecord,
    OnlineKeyRecord,
    PendingUpload,
    Storage,
    StoredMetadata,
    TokenRecord,
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
CREATE TABLE IF NOT EXISTS changefeed (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    gun TEXT NOT NULL,
    action TEXT NOT NULL,
    versions TEXT NOT NULL,
    actor TEXT,
    detail TEXT
);
CREATE TABLE IF NOT EXISTS tokens (
    lookup TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created TEXT NOT NULL,
    revoked TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS live_token_names ON tokens (name) WHERE revoked IS NULL;
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


def _append_change(
    connection: sqlite3.Connection,
    gun: str,
    action: str,
    versions: dict[str, int],
    actor: str | None,
    detail: str | None,
) -> None:
    connection.execute(
        "INSERT INTO changefeed (time, gun, action, versions, actor, detail) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (_now(), gun, action, json.dumps(versions, sort_keys=True), actor, detail),
    )


def _token_from(row: tuple[str, str, str, str, str, str | None]) -> TokenRecord:
    lookup, digest, name, scopes, created, revoked = row
    return TokenRecord(
        lookup,
        digest,
        name,
        tuple(json.loads(scopes)),
        datetime.fromisoformat(created),
        datetime.fromisoformat(revoked) if revoked else None,
    )


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

    def record_change(
        self, action: str, versions: dict[str, int], actor: str | None, detail: str | None = None
    ) -> None:
        _append_change(self._connection, self._gun, action, versions, actor, detail)


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

    def delete_repository(self, gun: str, actor: str | None = None) -> bool:
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            deleted = connection.execute("DELETE FROM metadata WHERE gun = ?", (gun,)).rowcount
            connection.execute("DELETE FROM online_keys WHERE gun = ?", (gun,))
            connection.execute("DELETE FROM next_online_keys WHERE gun = ?", (gun,))
            connection.execute("DELETE FROM pending WHERE gun = ?", (gun,))
            if deleted:
                _append_change(connection, gun, "delete", {}, actor, None)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        return deleted > 0

    def repositories(self) -> Iterator[str]:
        rows = self._connection().execute("SELECT DISTINCT gun FROM metadata").fetchall()
        return iter([row[0] for row in rows])

    def all_versions(self, gun: str) -> Iterator[StoredMetadata]:
        cursor = self._connection().execute(
            "SELECT role, version, data FROM metadata WHERE gun = ? ORDER BY role, version",
            (gun,),
        )
        for role, version, data in cursor:
            yield StoredMetadata(role, version, bytes(data))

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

    def record_change(
        self,
        gun: str,
        action: str,
        versions: dict[str, int],
        actor: str | None,
        detail: str | None = None,
    ) -> None:
        _append_change(self._connection(), gun, action, versions, actor, detail)

    def changes(self, after: int, limit: int) -> list[ChangeRecord]:
        rows = (
            self._connection()
            .execute(
                "SELECT seq, time, gun, action, versions, actor, detail FROM changefeed "
                "WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, limit),
            )
            .fetchall()
        )
        return [
            ChangeRecord(
                seq, datetime.fromisoformat(time), gun, action, json.loads(versions), actor, detail
            )
            for seq, time, gun, action, versions, actor, detail in rows
        ]

    def add_token(self, record: TokenRecord) -> None:
        try:
            self._connection().execute(
                "INSERT INTO tokens (lookup, digest, name, scopes, created, revoked) "
                "VALUES (?, ?, ?, ?, ?, NULL)",
                (
                    record.lookup,
                    record.digest,
                    record.name,
                    json.dumps(list(record.scopes)),
                    record.created.isoformat(),
                ),
            )
        except sqlite3.IntegrityError:
            raise ValueError(f"a token named {record.name} exists already") from None

    def token(self, lookup: str) -> TokenRecord | None:
        row = (
            self._connection()
            .execute(
                "SELECT lookup, digest, name, scopes, created, revoked FROM tokens "
                "WHERE lookup = ?",
                (lookup,),
            )
            .fetchone()
        )
        return _token_from(row) if row else None

    def tokens(self) -> list[TokenRecord]:
        rows = (
            self._connection()
            .execute(
                "SELECT lookup, digest, name, scopes, created, revoked FROM tokens "
                "ORDER BY created, name"
            )
            .fetchall()
        )
        return [_token_from(row) for row in rows]

    def revoke_token(self, name: str) -> bool:
        cursor = self._connection().execute(
            "UPDATE tokens SET revoked = ? WHERE name = ? AND revoked IS NULL", (_now(), name)
        )
        return cursor.rowcount > 0

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
