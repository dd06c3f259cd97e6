"""The embedded default engine: one SQLite file, WAL mode, one connection per thread.

Writers take SQLite's write lock up front (``BEGIN IMMEDIATE``), so a publish reads
the state it validates against under the same lock it writes with. The statements are
``server.storage.sql``'s, shared with PostgreSQL; times are stored as ISO 8601 text.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from server.storage.sql import ADDED_COLUMNS, Dialect, SQLStorage, schema

__all__ = ["SQLiteStorage"]

_DIALECT = Dialect(
    placeholder="?",
    types={
        "integer": "INTEGER",
        "blob": "BLOB",
        "time": "TEXT",
        "serial": "INTEGER PRIMARY KEY AUTOINCREMENT",
    },
    unique_violation=sqlite3.IntegrityError,
    store_time=datetime.isoformat,
    load_time=datetime.fromisoformat,
)


class SQLiteStorage(SQLStorage[sqlite3.Connection]):
    dialect = _DIALECT

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        connection = self._connection()
        connection.execute("PRAGMA journal_mode=WAL")
        for statement in schema(self.dialect):
            connection.execute(statement)
        for table, column, kind in ADDED_COLUMNS:
            columns = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
            if column not in columns:
                connection.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

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

    @contextmanager
    def _atomic(self, gun: str | None) -> Iterator[sqlite3.Connection]:
        # SQLite's one write lock serves every repository (and the changefeed).
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
