"""Which storage engine a server uses: SQLite in its data dir unless told a database."""

from __future__ import annotations

from pathlib import Path

from server.storage.base import Storage
from server.storage.sqlite import SQLiteStorage
from trustkit.errors import UsageError

__all__ = ["open_storage"]

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def open_storage(database_url: str | None, sqlite_path: Path) -> Storage:
    """``postgresql://…`` opens PostgreSQL (shared by several server replicas); without a
    URL, the embedded SQLite file."""
    if database_url is None:
        return SQLiteStorage(sqlite_path)
    if not database_url.startswith(POSTGRES_SCHEMES):
        raise UsageError(
            f"--database '{database_url.split('@')[-1]}' is not a PostgreSQL URL",
            hint="e.g. postgresql://trustkit@db.example.com/trustkit (or leave it out for "
            "the embedded SQLite)",
        )
    from server.storage.postgres import PostgresStorage  # psycopg only when asked for

    return PostgresStorage(database_url)
