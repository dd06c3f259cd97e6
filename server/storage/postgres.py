"""A PostgreSQL engine, for several server processes sharing one database.

One connection per thread (the server calls storage from a thread pool), in autocommit
mode; ``write(gun)`` opens one transaction and first takes a transaction-scoped advisory
lock on the repository, so two publishes of one repository — from any process on the
database — never interleave, and each reads the state it validates against under the
lock it writes with.

Changefeed lines are appended under a second, database-wide advisory lock held to
commit, so ``seq`` values become visible in order and a reader paging with ``after``
never skips a line committed late.

The statements are ``server.storage.sql``'s, shared with SQLite.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime

import psycopg
from psycopg import errors
from psycopg.rows import TupleRow

from server.storage.sql import ADDED_COLUMNS, Dialect, SQLStorage, schema

__all__ = ["PostgresStorage"]

# The first key of the two-key advisory locks: keeps trustkit's locks apart from any
# other user of the database. The second key is hashtext(gun), or 0 for the changefeed.
_LOCK_SPACE = 0x7472_7573  # "trus"
_REPOSITORY_LOCK = "SELECT pg_advisory_xact_lock(%s, hashtext(%s))"
_CHANGEFEED_LOCK = "SELECT pg_advisory_xact_lock(%s, 0)"
# A namespace of its own for the changefeed and schema locks, apart from repositories'.
_CHANGEFEED_SPACE = _LOCK_SPACE + 1
_SCHEMA_LOCK = "SELECT pg_advisory_xact_lock(%s, 1)"


def _as_is(time: datetime) -> datetime:
    return time


_DIALECT = Dialect(
    placeholder="%s",
    types={
        "integer": "BIGINT",
        "blob": "BYTEA",
        "time": "TIMESTAMPTZ",
        "serial": "BIGSERIAL PRIMARY KEY",
    },
    unique_violation=errors.UniqueViolation,
    store_time=_as_is,
    load_time=_as_is,
)

_Connection = psycopg.Connection[TupleRow]


class PostgresStorage(SQLStorage[_Connection]):
    """Storage in a PostgreSQL database named by a libpq ``dsn``; tables made if missing."""

    dialect = _DIALECT

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
            for statement in schema(self.dialect):
                connection.execute(statement)
            for table, column, kind in ADDED_COLUMNS:
                connection.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {kind}")

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

    @contextmanager
    def _atomic(self, gun: str | None) -> Iterator[_Connection]:
        connection = self._connection()
        with connection.transaction():
            if gun is not None:
                connection.execute(_REPOSITORY_LOCK, (_LOCK_SPACE, gun))
            yield connection

    def _statement_savepoint(self, connection: _Connection) -> AbstractContextManager[object]:
        # A failed statement aborts a PostgreSQL transaction; one in a savepoint, only it.
        return connection.transaction()

    def _lock_changefeed(self, connection: _Connection) -> None:
        connection.execute(_CHANGEFEED_LOCK, (_CHANGEFEED_SPACE,))

    def close(self) -> None:
        """Close every connection this storage opened, from any thread."""
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for connection in opened:
            connection.close()
        self._local = threading.local()
