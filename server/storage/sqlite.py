"""The embedded default engine: one SQLite file, WAL mode, one connection per thread.

Writers take SQLite's write lock up front (``BEGIN IMMEDIATE``), so a publish reads
the state it validates against under the same lock it writes with. The statements are
``server.storage.sql``'s, shared with PostgreSQL; times are stored as ISO 8601 text.

The database holds token hashes and sealed online keys: its directory is made 0700
(one that others may write to is refused) and its files 0600 — the database, made
before SQLite opens it, and the -wal, -shm and -journal files, which SQLite creates
with the database's permissions.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from server.storage.sql import ADDED_COLUMNS, Dialect, SQLStorage, schema
from trustkit.errors import UsageError

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
        _private_directory(path.parent)
        _private_files(path)
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


_SIDE_FILES = ("-wal", "-shm", "-journal")


def _private_directory(directory: Path) -> None:
    """Make ``directory`` (0700), or take it private: group and others lose their
    access when the directory holds nothing but this database; one that others may
    write to is refused."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = stat.S_IMODE(directory.stat().st_mode)
    if mode & 0o022:
        raise UsageError(
            f"the data dir {directory} may be written by other users (mode {mode:o}): "
            "they could replace or remove the database",
            hint=f"chmod 700 {directory}, or give a data dir of the server's own",
        )
    if mode & 0o077 and _holds_only_server_files(directory):
        directory.chmod(0o700)


def _holds_only_server_files(directory: Path) -> bool:
    """Whether every entry of ``directory`` is the server's (so taking it private
    takes nothing from anyone else)."""
    return all(
        entry.name.startswith("trustkit.db") or entry.name.endswith((".key", ".token"))
        for entry in directory.iterdir()
    )


def _private_files(path: Path) -> None:
    """Make the database file 0600 before SQLite opens it; tighten the files an
    older server left readable."""
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    for name in ("", *_SIDE_FILES):
        existing = path.with_name(path.name + name)
        if existing.exists() and stat.S_IMODE(existing.stat().st_mode) & 0o077:
            existing.chmod(0o600)
