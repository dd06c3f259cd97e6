"""The storage contract every engine must meet (run against each engine)."""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from server.storage import (
    OnlineKeyRecord,
    SQLiteStorage,
    Storage,
    StoredMetadata,
    VersionConflict,
)
from server.storage.postgres import PostgresStorage
from tests.support.postgres import PostgresCluster, postgresql_cluster  # noqa: F401 - a fixture

GUN = "registry.test/contract"


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    engine: Storage
    if request.param == "sqlite":
        engine = SQLiteStorage(tmp_path / "trustkit.db")
        yield engine
        engine.close()
        return
    cluster: PostgresCluster = request.getfixturevalue("postgresql_cluster")
    dsn = cluster.create_database()
    engine = PostgresStorage(dsn)
    yield engine
    engine.close()
    cluster.drop_database(dsn)


def test_a_committed_write_is_read_back(storage: Storage) -> None:
    with storage.write(GUN) as transaction:
        transaction.put("targets", 1, b"one")
        transaction.put("targets", 2, b"two")

    latest = storage.latest(GUN, "targets")
    assert latest is not None and (latest.version, latest.data) == (2, b"two")
    first = storage.version(GUN, "targets", 1)
    assert first is not None and first.data == b"one"
    assert storage.version(GUN, "targets", 3) is None
    assert list(storage.repositories()) == [GUN]


def test_a_failed_transaction_writes_nothing(storage: Storage) -> None:
    with pytest.raises(RuntimeError), storage.write(GUN) as transaction:
        transaction.put("targets", 1, b"one")
        raise RuntimeError("validation failed half-way")

    assert storage.latest(GUN, "targets") is None


def test_a_version_is_written_once(storage: Storage) -> None:
    with storage.write(GUN) as transaction:
        transaction.put("targets", 1, b"one")

    with pytest.raises(VersionConflict), storage.write(GUN) as transaction:
        transaction.put("snapshot", 1, b"snap")
        transaction.put("targets", 1, b"other")

    stored = storage.latest(GUN, "targets")
    assert stored is not None and stored.data == b"one"
    assert storage.latest(GUN, "snapshot") is None  # the whole transaction rolled back


def test_latest_of_every_role_inside_a_transaction(storage: Storage) -> None:
    with storage.write(GUN) as transaction:
        transaction.put("root", 1, b"r1")
        transaction.put("targets", 1, b"t1")
        transaction.put("targets", 2, b"t2")
    with storage.write(GUN) as transaction:
        latest = {role: (m.version, m.data) for role, m in transaction.latest().items()}

    assert latest == {"root": (1, b"r1"), "targets": (2, b"t2")}


@contextmanager
def statements_run(storage: Storage) -> Iterator[list[str]]:
    """The SQL this thread's connection of STORAGE runs meanwhile, as the driver sends it:
    SQLite's trace callback, or a psycopg cursor class that notes each query."""
    seen: list[str] = []
    connection = storage._connection()  # type: ignore[attr-defined]
    if isinstance(connection, sqlite3.Connection):
        connection.set_trace_callback(seen.append)
        try:
            yield seen
        finally:
            connection.set_trace_callback(None)
        return

    class Noting(psycopg.Cursor[Any]):
        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            seen.append(str(query))
            return super().execute(query, params, **kwargs)

    assert isinstance(connection, psycopg.Connection)
    connection.cursor_factory = Noting
    try:
        yield seen
    finally:
        connection.cursor_factory = psycopg.Cursor


def reads_of_bytes(statements: list[str]) -> int:
    """How many of STATEMENTS select the ``data`` column of metadata."""
    return sum(
        1 for sql in statements if sql.lstrip().startswith("SELECT") and re.search(r"\bdata\b", sql)
    )


def test_latest_reads_a_role_s_bytes_only_when_it_is_asked_for(storage: Storage) -> None:
    bins = {f"bins-{n:02x}": f"bin {n}".encode() for n in range(40)}
    with storage.write(GUN) as transaction:
        transaction.put("root", 1, b"r1")
        for version in (1, 2, 3):
            transaction.put("targets", version, f"t{version}".encode())
        for role, data in bins.items():
            transaction.put(role, 1, data)
    with storage.write("registry.test/other") as transaction:
        transaction.put("elsewhere", 7, b"not ours")

    with storage.write(GUN) as transaction, statements_run(storage) as seen:
        latest = transaction.latest()
        assert len(latest) == 42
        assert "root" in latest and "bins-27" in latest
        assert "elsewhere" not in latest and "snapshot" not in latest
        assert sorted(latest) == sorted(["root", "targets", *bins])
        assert latest.versions() == {"root": 1, "targets": 3, **dict.fromkeys(bins, 1)}
        assert latest.get("snapshot") is None
        with pytest.raises(KeyError):
            latest["snapshot"]
        assert reads_of_bytes(seen) == 0  # the roles and versions cost one small query

        assert latest["targets"] == StoredMetadata("targets", 3, b"t3")
        assert latest.get("bins-05") == StoredMetadata("bins-05", 1, b"bin 5")
        assert latest["targets"].version == 3 and latest["bins-05"].data == b"bin 5"
        assert reads_of_bytes(seen) == 2  # each role read once, when first asked for

        assert {role: m.data for role, m in latest.items()} == {
            "root": b"r1",
            "targets": b"t3",
            **bins,
        }
        assert reads_of_bytes(seen) == 42

    with storage.write(GUN) as again:
        late = again.latest()
    with pytest.raises(RuntimeError, match="after its transaction ended"):
        late["root"]  # never read outside the transaction and its lock
    assert latest["targets"].data == b"t3"  # what was read stays readable


def test_latest_lists_the_puts_made_before_it_in_the_transaction(storage: Storage) -> None:
    with storage.write(GUN) as transaction:
        transaction.put("targets", 1, b"t1")

    with storage.write(GUN) as transaction:
        before = transaction.latest()
        transaction.put("targets", 2, b"t2")
        transaction.put("snapshot", 1, b"s1")
        after = transaction.latest()

        assert before.versions() == {"targets": 1}  # as of when it was asked for
        assert "snapshot" not in before
        assert before["targets"] == StoredMetadata("targets", 1, b"t1")  # read after the put
        assert after.versions() == {"snapshot": 1, "targets": 2}
        assert after["targets"].data == b"t2" and after["snapshot"].data == b"s1"


def test_repositories_do_not_see_each_other(storage: Storage) -> None:
    with storage.write(GUN) as transaction:
        transaction.put("targets", 1, b"mine")

    assert storage.latest("registry.test/other", "targets") is None


def test_online_key_is_created_once(storage: Storage) -> None:
    first = OnlineKeyRecord("timestamp", "key-1", "{}", b"sealed-1")
    second = OnlineKeyRecord("timestamp", "key-2", "{}", b"sealed-2")

    assert storage.add_online_key(GUN, first) == first
    assert storage.add_online_key(GUN, second) == first  # a racing creator gets the first
    assert storage.online_key(GUN, "timestamp") == first
    assert storage.online_key(GUN, "snapshot") is None


def test_delete_removes_metadata_and_online_keys(storage: Storage) -> None:
    with storage.write(GUN) as transaction:
        transaction.put("targets", 1, b"one")
    storage.add_online_key(GUN, OnlineKeyRecord("timestamp", "k", "{}", b"s"))
    storage.set_next_online_key(GUN, OnlineKeyRecord("timestamp", "n", "{}", b"s"))

    assert storage.delete_repository(GUN) is True
    assert storage.latest(GUN, "targets") is None
    assert storage.online_key(GUN, "timestamp") is None
    assert storage.next_online_key(GUN, "timestamp") is None
    assert storage.delete_repository(GUN) is False


def test_a_next_online_key_waits_until_a_transaction_promotes_it(storage: Storage) -> None:
    current = OnlineKeyRecord("snapshot", "key-1", "{}", b"sealed-1")
    storage.add_online_key(GUN, current)
    storage.set_next_online_key(GUN, OnlineKeyRecord("snapshot", "key-2", "{}", b"sealed-2"))
    upcoming = OnlineKeyRecord("snapshot", "key-3", "{}", b"sealed-3")
    storage.set_next_online_key(GUN, upcoming)  # asking again replaces the earlier one

    assert storage.online_key(GUN, "snapshot") == current
    assert storage.next_online_key(GUN, "snapshot") == upcoming

    with storage.write(GUN) as transaction:
        assert transaction.promote_online_key("snapshot") == upcoming

    assert storage.online_key(GUN, "snapshot") == upcoming
    assert storage.next_online_key(GUN, "snapshot") is None


def test_a_promotion_in_a_failed_transaction_is_undone(storage: Storage) -> None:
    current = OnlineKeyRecord("timestamp", "key-1", "{}", b"sealed-1")
    upcoming = OnlineKeyRecord("timestamp", "key-2", "{}", b"sealed-2")
    storage.add_online_key(GUN, current)
    storage.set_next_online_key(GUN, upcoming)

    with pytest.raises(RuntimeError), storage.write(GUN) as transaction:
        transaction.promote_online_key("timestamp")
        raise RuntimeError("the root upload was refused")

    assert storage.online_key(GUN, "timestamp") == current
    assert storage.next_online_key(GUN, "timestamp") == upcoming


def test_a_duplicate_version_in_one_transaction_is_a_version_conflict(storage: Storage) -> None:
    with pytest.raises(VersionConflict), storage.write(GUN) as transaction:
        transaction.put("targets", 1, b"one")
        transaction.put("targets", 1, b"again")

    assert storage.latest(GUN, "targets") is None


def test_two_writes_on_one_repository_serialise(storage: Storage) -> None:
    """The second transaction waits for the first to commit, then sees its rows."""
    events: list[str] = []
    second_is_trying = threading.Event()
    seen: dict[str, int] = {}
    failures: list[BaseException] = []

    def first() -> None:
        try:
            with storage.write(GUN) as transaction:
                transaction.put("targets", 1, b"one")
                events.append("first in")
                assert second_is_trying.wait(10)
                threading.Event().wait(0.5)  # the second is blocked meanwhile
                events.append("first done")
        except BaseException as error:
            failures.append(error)

    thread = threading.Thread(target=first)
    thread.start()
    try:
        while not events and thread.is_alive():
            threading.Event().wait(0.01)
        second_is_trying.set()
        with storage.write(GUN) as transaction:
            events.append("second in")
            seen = {role: m.version for role, m in transaction.latest().items()}
            transaction.put("targets", seen.get("targets", 0) + 1, b"two")
    finally:
        thread.join(30)
    assert not failures
    assert events == ["first in", "first done", "second in"]
    assert seen == {"targets": 1}
    latest = storage.latest(GUN, "targets")
    assert latest is not None and (latest.version, latest.data) == (2, b"two")


def test_pending_uploads_keep_what_they_lack_and_are_read_outside_a_transaction(
    storage: Storage,
) -> None:
    from datetime import UTC, datetime, timedelta

    from server.storage import PendingUpload

    now = datetime.now(UTC).replace(microsecond=0)
    needs = [{"role": "root", "checked_by": "root v2", "signed": ["a"], "threshold": 2}]
    upload = PendingUpload("0123456789abcdef", now, now + timedelta(days=7), {"root": b"{}"}, needs)
    with storage.write(GUN) as transaction:
        transaction.put_pending(upload)
    [read] = storage.pending(GUN)
    assert (read.id, read.parts, read.needs) == (upload.id, upload.parts, needs)
    assert read.expires == upload.expires
    assert storage.pending("registry.test/other") == []


def test_retired_content_is_remembered_per_repository_and_outlives_deletion(
    storage: Storage,
) -> None:
    with storage.write(GUN) as transaction:
        transaction.put("root", 1, b"root")
        transaction.retire_content("digest-1")
        assert transaction.is_retired("digest-1")
    storage.delete_repository(GUN)
    with storage.write(GUN) as transaction:
        assert transaction.is_retired("digest-1")
        assert not transaction.is_retired("digest-2")
    with storage.write("registry.test/other") as transaction:
        assert not transaction.is_retired("digest-1")
