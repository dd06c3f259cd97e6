"""A PostgreSQL engine, for several server processes sharing one database.

One connection per thread (the server calls storage from a thread pool), in autocommit
mode; ``write(gun)`` opens one transaction and first takes a transaction-scoped advisory
lock on the repository, so two publishes of one repository — from any process on the
database — never interleave, and each reads the state it validates against under the
lock it writes with.

Changefeed lines are appended under a second, database-wide advisory lock held to
commit, so ``seq`` values become visible in order and a reader paging with ``after``
never skips a line committed late.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import psycopg
from psycopg import errors
from psycopg.rows import TupleRow

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

__all__ = ["PostgresStorage"]

# The first key of the two-key advisory locks: keeps trustkit's locks apart from any
# other user of the database. The second key is hashtext(gun), or 0 for the changefeed.
_LOCK_SPACE = 0x7472_7573  # "trus"
_REPOSITORY_LOCK = "SELECT pg_advisory_xact_lock(%s, hashtext(%s))"
_CHANGEFEED_LOCK = "SELECT pg_advisory_xact_lock(%s, 0)"
# A namespace of its own for the changefeed and schema locks, apart from repositories'.
_CHANGEFEED_SPACE = _LOCK_SPACE + 1
_SCHEMA_LOCK = "SELECT pg_advisory_xact_lock(%s, 1)"

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS metadata (
        gun TEXT NOT NULL,
        role TEXT NOT NULL,
        version BIGINT NOT NULL,
        data BYTEA NOT NULL,
        created TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (gun, role, version)
    )""",
    """CREATE TABLE IF NOT EXISTS online_keys (
        gun TEXT NOT NULL,
        role TEXT NOT NULL,
        keyid TEXT NOT NULL,
        public TEXT NOT NULL,
        sealed BYTEA NOT NULL,
        created TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (gun, role)
    )""",
    """CREATE TABLE IF NOT EXISTS next_online_keys (
        gun TEXT NOT NULL,
        role TEXT NOT NULL,
        keyid TEXT NOT NULL,
        public TEXT NOT NULL,
        sealed BYTEA NOT NULL,
        created TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (gun, role)
    )""",
    """CREATE TABLE IF NOT EXISTS pending (
        gun TEXT NOT NULL,
        id TEXT NOT NULL,
        created TIMESTAMPTZ NOT NULL,
        expires TIMESTAMPTZ NOT NULL,
        parts TEXT NOT NULL,
        PRIMARY KEY (gun, id)
    )""",
    """CREATE TABLE IF NOT EXISTS changefeed (
        seq BIGSERIAL PRIMARY KEY,
        time TIMESTAMPTZ NOT NULL,
        gun TEXT NOT NULL,
        action TEXT NOT NULL,
        versions TEXT NOT NULL,
        actor TEXT,
        detail TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS tokens (
        lookup TEXT PRIMARY KEY,
        digest TEXT NOT NULL,
        name TEXT NOT NULL,
        scopes TEXT NOT NULL,
        created TIMESTAMPTZ NOT NULL,
        revoked TIMESTAMPTZ
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS live_token_names ON tokens (name) WHERE revoked IS NULL",
]

_LATEST_ALL = """
SELECT DISTINCT ON (role) role, version, data FROM metadata
WHERE gun = %s ORDER BY role, version DESC
"""

_Connection = psycopg.Connection[TupleRow]


def _now() -> datetime:
    return datetime.now(UTC)


def _append_change(
    connection: _Connection,
    gun: str,
    action: str,
    versions: dict[str, int],
    actor: str | None,
    detail: str | None,
) -> None:
    """Append a changefeed line; call inside a transaction (the lock is held to commit)."""
    connection.execute(_CHANGEFEED_LOCK, (_CHANGEFEED_SPACE,))
    connection.execute(
        "INSERT INTO changefeed (time, gun, action, versions, actor, detail) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        (_now(), gun, action, json.dumps(versions, sort_keys=True), actor, detail),
    )


def _token_from(row: tuple[object, ...]) -> TokenRecord:
    lookup, digest, name, scopes, created, revoked = row
    assert isinstance(created, datetime)
    assert revoked is None or isinstance(revoked, datetime)
    return TokenRecord(
        str(lookup), str(digest), str(name), tuple(json.loads(str(scopes))), created, revoked
    )


def _key_from(role: str, row: tuple[object, ...]) -> OnlineKeyRecord:
    keyid, public, sealed = row
    assert isinstance(sealed, bytes)
    return OnlineKeyRecord(role, str(keyid), str(public), sealed)


class _PostgresTransaction(WriteTransaction):
    def __init__(self, connection: _Connection, gun: str) -> None:
        self._connection = connection
        self._gun = gun

    def latest(self) -> dict[str, StoredMetadata]:
        rows = self._connection.execute(_LATEST_ALL, (self._gun,)).fetchall()
        result: dict[str, StoredMetadata] = {}
        for role, version, data in rows:
            assert isinstance(role, str) and isinstance(version, int)
            assert isinstance(data, bytes)
            result[role] = StoredMetadata(role, version, data)
        return result

    def put(self, role: str, version: int, data: bytes) -> None:
        try:
            # A savepoint: a conflict leaves the transaction usable, as with SQLite.
            with self._connection.transaction():
                self._connection.execute(
                    "INSERT INTO metadata (gun, role, version, data, created) "
                    "VALUES (%s, %s, %s, %s, %s)",
                    (self._gun, role, version, data, _now()),
                )
        except errors.UniqueViolation:
            raise VersionConflict(f"{role} version {version} already exists") from None

    def promote_online_key(self, role: str) -> OnlineKeyRecord:
        row = self._connection.execute(
            "DELETE FROM next_online_keys WHERE gun = %s AND role = %s "
            "RETURNING keyid, public, sealed",
            (self._gun, role),
        ).fetchone()
        if row is None:
            raise LookupError(f"no next {role} key for {self._gun}")
        record = _key_from(role, row)
        self._connection.execute(
            "INSERT INTO online_keys (gun, role, keyid, public, sealed, created) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (gun, role) DO UPDATE SET "
            "keyid = EXCLUDED.keyid, public = EXCLUDED.public, sealed = EXCLUDED.sealed, "
            "created = EXCLUDED.created",
            (self._gun, role, record.keyid, record.public_json, record.sealed_private, _now()),
        )
        return record

    def pending(self) -> list[PendingUpload]:
        rows = self._connection.execute(
            "SELECT id, created, expires, parts FROM pending WHERE gun = %s ORDER BY created, id",
            (self._gun,),
        ).fetchall()
        uploads = []
        for upload_id, created, expires, parts in rows:
            assert isinstance(created, datetime) and isinstance(expires, datetime)
            uploads.append(
                PendingUpload(
                    str(upload_id),
                    created,
                    expires,
                    {role: base64.b64decode(text) for role, text in json.loads(str(parts)).items()},
                )
            )
        return uploads

    def put_pending(self, upload: PendingUpload) -> None:
        parts = json.dumps(
            {role: base64.b64encode(data).decode() for role, data in upload.parts.items()}
        )
        self._connection.execute(
            "INSERT INTO pending (gun, id, created, expires, parts) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (gun, id) DO UPDATE SET created = EXCLUDED.created, "
            "expires = EXCLUDED.expires, parts = EXCLUDED.parts",
            (self._gun, upload.id, upload.created, upload.expires, parts),
        )

    def delete_pending(self, upload_id: str) -> None:
        self._connection.execute(
            "DELETE FROM pending WHERE gun = %s AND id = %s", (self._gun, upload_id)
        )

    def record_change(
        self, action: str, versions: dict[str, int], actor: str | None, detail: str | None = None
    ) -> None:
        _append_change(self._connection, self._gun, action, versions, actor, detail)


class PostgresStorage(Storage):
    """Storage in a PostgreSQL database named by a libpq ``dsn``; tables made if missing."""

    def __init__(self, dsn: str, connect_timeout: int = 30) -> None:
        self.dsn = dsn
        self._connect_timeout = connect_timeout
        self._local = threading.local()
        self._opened: list[_Connection] = []
        self._opened_lock = threading.Lock()
        connection = self._connection()
        with connection.transaction():
            # Two servers starting together would race on CREATE ... IF NOT EXISTS.
            connection.execute(_SCHEMA_LOCK, (_CHANGEFEED_SPACE,))
            for statement in _SCHEMA:
                connection.execute(statement)

    def _connection(self) -> _Connection:
        connection: _Connection | None = getattr(self._local, "connection", None)
        if connection is None or connection.closed:
            connection = psycopg.connect(
                self.dsn,
                autocommit=True,
                connect_timeout=self._connect_timeout,
                options="-c TimeZone=UTC",
            )
            self._local.connection = connection
            with self._opened_lock:
                self._opened.append(connection)
        return connection

    def latest(self, gun: str, role: str) -> StoredMetadata | None:
        row = (
            self._connection()
            .execute(
                "SELECT version, data FROM metadata WHERE gun = %s AND role = %s "
                "ORDER BY version DESC LIMIT 1",
                (gun, role),
            )
            .fetchone()
        )
        if row is None:
            return None
        version, data = row
        assert isinstance(version, int) and isinstance(data, bytes)
        return StoredMetadata(role, version, data)

    def version(self, gun: str, role: str, version: int) -> StoredMetadata | None:
        row = (
            self._connection()
            .execute(
                "SELECT data FROM metadata WHERE gun = %s AND role = %s AND version = %s",
                (gun, role, version),
            )
            .fetchone()
        )
        if row is None:
            return None
        assert isinstance(row[0], bytes)
        return StoredMetadata(role, version, row[0])

    @contextmanager
    def write(self, gun: str) -> Iterator[WriteTransaction]:
        connection = self._connection()
        with connection.transaction():
            connection.execute(_REPOSITORY_LOCK, (_LOCK_SPACE, gun))
            yield _PostgresTransaction(connection, gun)

    def delete_repository(self, gun: str, actor: str | None = None) -> bool:
        connection = self._connection()
        with connection.transaction():
            connection.execute(_REPOSITORY_LOCK, (_LOCK_SPACE, gun))
            deleted = connection.execute("DELETE FROM metadata WHERE gun = %s", (gun,)).rowcount
            connection.execute("DELETE FROM online_keys WHERE gun = %s", (gun,))
            connection.execute("DELETE FROM next_online_keys WHERE gun = %s", (gun,))
            connection.execute("DELETE FROM pending WHERE gun = %s", (gun,))
            if deleted:
                _append_change(connection, gun, "delete", {}, actor, None)
        return deleted > 0

    def repositories(self) -> Iterator[str]:
        rows = self._connection().execute("SELECT DISTINCT gun FROM metadata").fetchall()
        return iter([str(row[0]) for row in rows])

    def all_versions(self, gun: str) -> Iterator[StoredMetadata]:
        rows = (
            self._connection()
            .execute(
                "SELECT role, version, data FROM metadata WHERE gun = %s ORDER BY role, version",
                (gun,),
            )
            .fetchall()
        )
        for role, version, data in rows:
            assert isinstance(role, str) and isinstance(version, int)
            assert isinstance(data, bytes)
            yield StoredMetadata(role, version, data)

    def online_key(self, gun: str, role: str) -> OnlineKeyRecord | None:
        return self._key_in("online_keys", gun, role)

    def _key_in(self, table: str, gun: str, role: str) -> OnlineKeyRecord | None:
        row = (
            self._connection()
            .execute(
                f"SELECT keyid, public, sealed FROM {table} WHERE gun = %s AND role = %s",  # noqa: S608 - table is ours
                (gun, role),
            )
            .fetchone()
        )
        return _key_from(role, row) if row else None

    def add_online_key(self, gun: str, record: OnlineKeyRecord) -> OnlineKeyRecord:
        self._connection().execute(
            "INSERT INTO online_keys (gun, role, keyid, public, sealed, created) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (gun, role) DO NOTHING",
            (gun, record.role, record.keyid, record.public_json, record.sealed_private, _now()),
        )
        stored = self.online_key(gun, record.role)
        assert stored is not None  # inserted above or already there
        return stored

    def next_online_key(self, gun: str, role: str) -> OnlineKeyRecord | None:
        return self._key_in("next_online_keys", gun, role)

    def set_next_online_key(self, gun: str, record: OnlineKeyRecord) -> None:
        self._connection().execute(
            "INSERT INTO next_online_keys (gun, role, keyid, public, sealed, created) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (gun, role) DO UPDATE SET "
            "keyid = EXCLUDED.keyid, public = EXCLUDED.public, sealed = EXCLUDED.sealed, "
            "created = EXCLUDED.created",
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
        connection = self._connection()
        with connection.transaction():
            _append_change(connection, gun, action, versions, actor, detail)

    def changes(self, after: int, limit: int) -> list[ChangeRecord]:
        rows = (
            self._connection()
            .execute(
                "SELECT seq, time, gun, action, versions, actor, detail FROM changefeed "
                "WHERE seq > %s ORDER BY seq LIMIT %s",
                (after, limit),
            )
            .fetchall()
        )
        records = []
        for seq, time, gun, action, versions, actor, detail in rows:
            assert isinstance(seq, int) and isinstance(time, datetime)
            assert actor is None or isinstance(actor, str)
            assert detail is None or isinstance(detail, str)
            records.append(
                ChangeRecord(
                    seq, time, str(gun), str(action), json.loads(str(versions)), actor, detail
                )
            )
        return records

    def add_token(self, record: TokenRecord) -> None:
        try:
            self._connection().execute(
                "INSERT INTO tokens (lookup, digest, name, scopes, created, revoked) "
                "VALUES (%s, %s, %s, %s, %s, NULL)",
                (
                    record.lookup,
                    record.digest,
                    record.name,
                    json.dumps(list(record.scopes)),
                    record.created,
                ),
            )
        except errors.UniqueViolation:
            raise ValueError(f"a token named {record.name} exists already") from None

    def token(self, lookup: str) -> TokenRecord | None:
        row = (
            self._connection()
            .execute(
                "SELECT lookup, digest, name, scopes, created, revoked FROM tokens "
                "WHERE lookup = %s",
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
            "UPDATE tokens SET revoked = %s WHERE name = %s AND revoked IS NULL", (_now(), name)
        )
        return cursor.rowcount > 0

    def close(self) -> None:
        """Close every connection this storage opened, from any thread."""
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for connection in opened:
            connection.close()
        self._local = threading.local()
