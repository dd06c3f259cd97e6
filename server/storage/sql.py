"""What the SQL engines share: the schema, every statement and the rows-to-records code.

Statements are written once, with ``?`` placeholders that ``Dialect.sql`` turns into the
engine's own; the few column types that differ are named in the schema and filled in
by the dialect. Each engine keeps what is its own: its connections, how a transaction
begins and locks its repository, and PostgreSQL's changefeed lock and savepoints
(``SQLStorage``'s hooks).

Upserts use ``ON CONFLICT`` and the key promotion ``DELETE … RETURNING``, which both
engines speak (SQLite since 3.35).
"""

from __future__ import annotations

import base64
import json
from abc import abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

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

__all__ = ["ADDED_COLUMNS", "Connection", "Cursor", "Dialect", "SQLStorage", "schema"]


class Cursor(Protocol):
    """What the engines' cursors (``sqlite3``, ``psycopg``) have in common."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    def execute(self, query: str, params: Sequence[Any] = ..., /) -> Cursor: ...


C = TypeVar("C", bound=Connection)


@dataclass(frozen=True)
class Dialect:
    """How one engine spells what the shared statements leave open."""

    placeholder: str  # "?" (sqlite3) or "%s" (psycopg)
    types: Mapping[str, str]  # the schema's {integer}, {blob}, {time} and {serial}
    unique_violation: type[Exception]  # what the driver raises for a duplicate key
    store_time: Callable[[datetime], Any]  # a datetime as the time column takes it
    load_time: Callable[[Any], datetime]  # and back

    def sql(self, statement: str) -> str:
        return statement if self.placeholder == "?" else statement.replace("?", self.placeholder)


_KEY_TABLE = """CREATE TABLE IF NOT EXISTS {table} (
    gun TEXT NOT NULL,
    role TEXT NOT NULL,
    keyid TEXT NOT NULL,
    public TEXT NOT NULL,
    sealed {blob} NOT NULL,
    created {time} NOT NULL,
    PRIMARY KEY (gun, role)
)"""

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS metadata (
    gun TEXT NOT NULL,
    role TEXT NOT NULL,
    version {integer} NOT NULL,
    data {blob} NOT NULL,
    created {time} NOT NULL,
    PRIMARY KEY (gun, role, version)
)""",
    _KEY_TABLE.replace("{table}", "online_keys"),
    _KEY_TABLE.replace("{table}", "next_online_keys"),
    """CREATE TABLE IF NOT EXISTS pending (
    gun TEXT NOT NULL,
    id TEXT NOT NULL,
    created {time} NOT NULL,
    expires {time} NOT NULL,
    parts TEXT NOT NULL,
    PRIMARY KEY (gun, id)
)""",
    """CREATE TABLE IF NOT EXISTS retired_pending (
    gun TEXT NOT NULL,
    digest TEXT NOT NULL,
    retired {time} NOT NULL,
    PRIMARY KEY (gun, digest)
)""",
    """CREATE TABLE IF NOT EXISTS changefeed (
    seq {serial},
    time {time} NOT NULL,
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
    created {time} NOT NULL,
    revoked {time}
)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS live_token_names ON tokens (name) WHERE revoked IS NULL",
]


def schema(dialect: Dialect) -> list[str]:
    """The statements that make the tables (each ``IF NOT EXISTS``), in the dialect."""
    return [statement.format_map(dialect.types) for statement in _SCHEMA]


# Columns added to tables after their first release: (table, column, type). An engine
# adds each one that an older database lacks (``SQLStorage._add_missing_columns``).
ADDED_COLUMNS = [("pending", "needs", "TEXT")]


_KEY_COLUMNS = "(gun, role, keyid, public, sealed, created) VALUES (?, ?, ?, ?, ?, ?)"
_REPLACE_KEY = (
    " ON CONFLICT (gun, role) DO UPDATE SET keyid = EXCLUDED.keyid, "
    "public = EXCLUDED.public, sealed = EXCLUDED.sealed, created = EXCLUDED.created"
)
_SELECT_TOKENS = "SELECT lookup, digest, name, scopes, created, revoked FROM tokens"
_SELECT_PENDING = (
    "SELECT id, created, expires, parts, needs FROM pending WHERE gun = ? ORDER BY created, id"
)


def _key_values(record: OnlineKeyRecord) -> tuple[str, str, bytes]:
    return record.keyid, record.public_json, record.sealed_private


def _key_from(role: str, row: Sequence[Any]) -> OnlineKeyRecord:
    keyid, public, sealed = row
    return OnlineKeyRecord(role, keyid, public, bytes(sealed))


class _Transaction(WriteTransaction, Generic[C]):
    def __init__(self, storage: SQLStorage[C], connection: C, gun: str) -> None:
        self._storage = storage
        self._connection = connection
        self._gun = gun
        self._open = True

    def _execute(self, statement: str, params: Sequence[Any] = ()) -> Cursor:
        return self._connection.execute(self._storage.dialect.sql(statement), params)

    def latest(self) -> LatestRoles:
        rows = self._execute(
            "SELECT role, MAX(version) FROM metadata WHERE gun = ? GROUP BY role ORDER BY role",
            (self._gun,),
        ).fetchall()
        return LatestRoles({role: version for role, version in rows}, self._read)

    def _read(self, role: str, version: int) -> bytes:
        """A role's bytes for ``LatestRoles``: only while this transaction is open, so
        they are read under its lock."""
        if not self._open:
            raise RuntimeError(f"{role} of {self._gun} asked for after its transaction ended")
        row = self._execute(
            "SELECT data FROM metadata WHERE gun = ? AND role = ? AND version = ?",
            (self._gun, role, version),
        ).fetchone()
        if row is None:  # versions are never removed, except with the whole repository
            raise LookupError(f"{role} version {version} of {self._gun} is gone")
        return bytes(row[0])

    def close(self) -> None:
        self._open = False

    def put(self, role: str, version: int, data: bytes) -> None:
        try:
            with self._storage._statement_savepoint(self._connection):
                self._execute(
                    "INSERT INTO metadata (gun, role, version, data, created) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (self._gun, role, version, data, self._storage._now()),
                )
        except self._storage.dialect.unique_violation:
            raise VersionConflict(f"{role} version {version} already exists") from None

    def promote_online_key(self, role: str) -> OnlineKeyRecord:
        rows = self._execute(
            "DELETE FROM next_online_keys WHERE gun = ? AND role = ? "
            "RETURNING keyid, public, sealed",
            (self._gun, role),
        ).fetchall()
        if not rows:
            raise LookupError(f"no next {role} key for {self._gun}")
        record = _key_from(role, rows[0])
        self._execute(
            f"INSERT INTO online_keys {_KEY_COLUMNS}{_REPLACE_KEY}",
            (self._gun, role, *_key_values(record), self._storage._now()),
        )
        return record

    def pending(self) -> list[PendingUpload]:
        rows = self._execute(_SELECT_PENDING, (self._gun,)).fetchall()
        return [self._storage._pending_from(row) for row in rows]

    def put_pending(self, upload: PendingUpload) -> None:
        store_time = self._storage.dialect.store_time
        parts = json.dumps(
            {role: base64.b64encode(data).decode() for role, data in upload.parts.items()}
        )
        needs = json.dumps(upload.needs) if upload.needs is not None else None
        self._execute(
            "INSERT INTO pending (gun, id, created, expires, parts, needs) "
            "VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (gun, id) DO UPDATE SET created = EXCLUDED.created, "
            "expires = EXCLUDED.expires, parts = EXCLUDED.parts, needs = EXCLUDED.needs",
            (
                self._gun,
                upload.id,
                store_time(upload.created),
                store_time(upload.expires),
                parts,
                needs,
            ),
        )

    def delete_pending(self, upload_id: str) -> None:
        self._execute("DELETE FROM pending WHERE gun = ? AND id = ?", (self._gun, upload_id))

    def retire_content(self, digest: str) -> None:
        self._execute(
            "INSERT INTO retired_pending (gun, digest, retired) VALUES (?, ?, ?) "
            "ON CONFLICT (gun, digest) DO NOTHING",
            (self._gun, digest, self._storage._now()),
        )

    def is_retired(self, digest: str) -> bool:
        row = self._execute(
            "SELECT 1 FROM retired_pending WHERE gun = ? AND digest = ?", (self._gun, digest)
        ).fetchone()
        return row is not None

    def record_change(
        self, action: str, versions: dict[str, int], actor: str | None, detail: str | None = None
    ) -> None:
        self._storage._append_change(self._connection, self._gun, action, versions, actor, detail)


class SQLStorage(Storage, Generic[C]):
    """The storage contract in SQL; an engine gives its dialect, connections and locks."""

    dialect: Dialect

    @abstractmethod
    def _connection(self) -> C:
        """This thread's connection, in autocommit mode between transactions."""

    @abstractmethod
    def _atomic(self, gun: str | None) -> AbstractContextManager[C]:
        """One transaction on this thread's connection, committed on normal exit; with
        ``gun``, holding that repository's write lock until then."""

    def _statement_savepoint(self, connection: C) -> AbstractContextManager[object]:
        """Around a statement that may fail inside a transaction, so that its failure
        leaves the transaction usable (SQLite undoes just the failed statement)."""
        return nullcontext()

    def _lock_changefeed(self, connection: C) -> None:
        """Called in a transaction before it appends a changefeed line."""

    def _now(self) -> Any:
        return self.dialect.store_time(datetime.now(UTC))

    def _pending_from(self, row: Sequence[Any]) -> PendingUpload:
        upload_id, created, expires, parts, needs = row
        return PendingUpload(
            upload_id,
            self.dialect.load_time(created),
            self.dialect.load_time(expires),
            {role: base64.b64decode(text) for role, text in json.loads(parts).items()},
            json.loads(needs) if needs is not None else None,
        )

    def pending(self, gun: str) -> list[PendingUpload]:
        rows = self._execute(_SELECT_PENDING, (gun,)).fetchall()
        return [self._pending_from(row) for row in rows]

    def _execute(self, statement: str, params: Sequence[Any] = ()) -> Cursor:
        return self._connection().execute(self.dialect.sql(statement), params)

    def _append_change(
        self,
        connection: C,
        gun: str,
        action: str,
        versions: dict[str, int],
        actor: str | None,
        detail: str | None,
    ) -> None:
        self._lock_changefeed(connection)
        connection.execute(
            self.dialect.sql(
                "INSERT INTO changefeed (time, gun, action, versions, actor, detail) "
                "VALUES (?, ?, ?, ?, ?, ?)"
            ),
            (self._now(), gun, action, json.dumps(versions, sort_keys=True), actor, detail),
        )

    def latest(self, gun: str, role: str) -> StoredMetadata | None:
        row = self._execute(
            "SELECT version, data FROM metadata WHERE gun = ? AND role = ? "
            "ORDER BY version DESC LIMIT 1",
            (gun, role),
        ).fetchone()
        return StoredMetadata(role, row[0], bytes(row[1])) if row else None

    def version(self, gun: str, role: str, version: int) -> StoredMetadata | None:
        row = self._execute(
            "SELECT data FROM metadata WHERE gun = ? AND role = ? AND version = ?",
            (gun, role, version),
        ).fetchone()
        return StoredMetadata(role, version, bytes(row[0])) if row else None

    @contextmanager
    def write(self, gun: str) -> Iterator[WriteTransaction]:
        with self._atomic(gun) as connection:
            transaction = _Transaction(self, connection, gun)
            try:
                yield transaction
            finally:
                transaction.close()

    def delete_repository(self, gun: str, actor: str | None = None) -> bool:
        with self._atomic(gun) as connection:
            deleted = connection.execute(
                self.dialect.sql("DELETE FROM metadata WHERE gun = ?"), (gun,)
            ).rowcount
            # retired_pending stays: a repository made again with the same keys must
            # still refuse a replay of what was withdrawn from the first one.
            for table in ("online_keys", "next_online_keys", "pending"):
                connection.execute(
                    self.dialect.sql(f"DELETE FROM {table} WHERE gun = ?"),  # noqa: S608 - ours
                    (gun,),
                )
            if deleted:
                self._append_change(connection, gun, "delete", {}, actor, None)
        return deleted > 0

    def repositories(self) -> Iterator[str]:
        rows = self._execute("SELECT DISTINCT gun FROM metadata").fetchall()
        return iter([row[0] for row in rows])

    def all_versions(self, gun: str) -> Iterator[StoredMetadata]:
        cursor = self._execute(
            "SELECT role, version, data FROM metadata WHERE gun = ? ORDER BY role, version",
            (gun,),
        )
        for role, version, data in cursor:
            yield StoredMetadata(role, version, bytes(data))

    def online_key(self, gun: str, role: str) -> OnlineKeyRecord | None:
        return self._key_in("online_keys", gun, role)

    def next_online_key(self, gun: str, role: str) -> OnlineKeyRecord | None:
        return self._key_in("next_online_keys", gun, role)

    def _key_in(self, table: str, gun: str, role: str) -> OnlineKeyRecord | None:
        row = self._execute(
            f"SELECT keyid, public, sealed FROM {table} WHERE gun = ? AND role = ?",  # noqa: S608 - table is ours
            (gun, role),
        ).fetchone()
        return _key_from(role, row) if row else None

    def add_online_key(self, gun: str, record: OnlineKeyRecord) -> OnlineKeyRecord:
        self._execute(
            f"INSERT INTO online_keys {_KEY_COLUMNS} ON CONFLICT (gun, role) DO NOTHING",
            (gun, record.role, *_key_values(record), self._now()),
        )
        stored = self.online_key(gun, record.role)
        assert stored is not None  # inserted above or already there
        return stored

    def set_next_online_key(self, gun: str, record: OnlineKeyRecord) -> None:
        self._execute(
            f"INSERT INTO next_online_keys {_KEY_COLUMNS}{_REPLACE_KEY}",
            (gun, record.role, *_key_values(record), self._now()),
        )

    def record_change(
        self,
        gun: str,
        action: str,
        versions: dict[str, int],
        actor: str | None,
        detail: str | None = None,
    ) -> None:
        with self._atomic(None) as connection:
            self._append_change(connection, gun, action, versions, actor, detail)

    def changes(self, after: int, limit: int) -> list[ChangeRecord]:
        rows = self._execute(
            "SELECT seq, time, gun, action, versions, actor, detail FROM changefeed "
            "WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, limit),
        ).fetchall()
        return [
            ChangeRecord(
                seq, self.dialect.load_time(time), gun, action, json.loads(versions), actor, detail
            )
            for seq, time, gun, action, versions, actor, detail in rows
        ]

    def _token_from(self, row: Sequence[Any]) -> TokenRecord:
        lookup, digest, name, scopes, created, revoked = row
        load_time = self.dialect.load_time
        return TokenRecord(
            lookup,
            digest,
            name,
            tuple(json.loads(scopes)),
            load_time(created),
            load_time(revoked) if revoked is not None else None,
        )

    def add_token(self, record: TokenRecord) -> None:
        try:
            self._execute(
                "INSERT INTO tokens (lookup, digest, name, scopes, created, revoked) "
                "VALUES (?, ?, ?, ?, ?, NULL)",
                (
                    record.lookup,
                    record.digest,
                    record.name,
                    json.dumps(list(record.scopes)),
                    self.dialect.store_time(record.created),
                ),
            )
        except self.dialect.unique_violation:
            raise ValueError(f"a token named {record.name} exists already") from None

    def token(self, lookup: str) -> TokenRecord | None:
        row = self._execute(f"{_SELECT_TOKENS} WHERE lookup = ?", (lookup,)).fetchone()
        return self._token_from(row) if row else None

    def tokens(self) -> list[TokenRecord]:
        rows = self._execute(f"{_SELECT_TOKENS} ORDER BY created, name").fetchall()
        return [self._token_from(row) for row in rows]

    def revoke_token(self, name: str) -> bool:
        cursor = self._execute(
            "UPDATE tokens SET revoked = ? WHERE name = ? AND revoked IS NULL", (self._now(), name)
        )
        return cursor.rowcount > 0
