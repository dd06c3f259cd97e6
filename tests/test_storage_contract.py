"""The storage contract every engine must meet (run against each engine)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.storage import (
    OnlineKeyRecord,
    SQLiteStorage,
    Storage,
    VersionConflict,
)
from server.storage.postgres import PostgresStorage
from tests.postgres import PostgresCluster, postgresql_cluster  # noqa: F401 - a fixture

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


def test_a_committed_write_is_read_back(storage: Storage):
    with storage.write(GUN) as transaction:
        transaction.put("targets", 1, b"one")
        transaction.put("targets", 2, b"two")

    latest = storage.latest(GUN, "targets")
    assert latest is not None and (latest.version, latest.data) == (2, b"two")
    first = storage.version(GUN, "targets", 1)
    assert first is not None and first.data == b"one"
    assert storage.version(GUN, "targets", 3) is None
    assert list(storage.repositories()) == [GUN]


def test_a_failed_transaction_writes_nothing(storage: Storage):
    with pytest.raises(RuntimeError), storage.write(GUN) as transaction:
        transaction.put("targets", 1, b"one")
        raise RuntimeError("validation failed half-way")

    assert storage.latest(GUN, "targets") is None


def test_a_version_is_written_once(storage: Storage):
    with storage.write(GUN) as transaction:
        transaction.put("targets", 1, b"one")

    with pytest.raises(VersionConflict), storage.write(GUN) as transaction:
        transaction.put("snapshot", 1, b"snap")
        transaction.put("targets", 1, b"other")

    stored = storage.latest(GUN, "targets")
    assert stored is not None and stored.data == b"one"
    assert storage.latest(GUN, "snapshot") is None  # the whole transaction rolled back


def test_latest_of_every_role_inside_a_transaction(storage: Storage):
    with storage.write(GUN) as transaction:
        transaction.put("root", 1, b"r1")
        transaction.put("targets", 1, b"t1")
        transaction.put("targets", 2, b"t2")
    with storage.write(GUN) as transaction:
        latest = transaction.latest()

    assert {role: (m.version, m.data) for role, m in latest.items()} == {
        "root": (1, b"r1"),
        "targets": (2, b"t2"),
    }


def test_repositories_do_not_see_each_other(storage: Storage):
    with storage.write(GUN) as transaction:
        transaction.put("targets", 1, b"mine")

    assert storage.latest("registry.test/other", "targets") is None


def test_online_key_is_created_once(storage: Storage):
    first = OnlineKeyRecord("timestamp", "key-1", "{}", b"sealed-1")
    second = OnlineKeyRecord("timestamp", "key-2", "{}", b"sealed-2")

    assert storage.add_online_key(GUN, first) == first
    assert storage.add_online_key(GUN, second) == first  # a racing creator gets the first
    assert storage.online_key(GUN, "timestamp") == first
    assert storage.online_key(GUN, "snapshot") is None


def test_delete_removes_metadata_and_online_keys(storage: Storage):
    with storage.write(GUN) as transaction:
        transaction.put("targets", 1, b"one")
    storage.add_online_key(GUN, OnlineKeyRecord("timestamp", "k", "{}", b"s"))
    storage.set_next_online_key(GUN, OnlineKeyRecord("timestamp", "n", "{}", b"s"))

    assert storage.delete_repository(GUN) is True
    assert storage.latest(GUN, "targets") is None
    assert storage.online_key(GUN, "timestamp") is None
    assert storage.next_online_key(GUN, "timestamp") is None
    assert storage.delete_repository(GUN) is False


def test_a_next_online_key_waits_until_a_transaction_promotes_it(storage: Storage):
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


def test_a_promotion_in_a_failed_transaction_is_undone(storage: Storage):
    current = OnlineKeyRecord("timestamp", "key-1", "{}", b"sealed-1")
    upcoming = OnlineKeyRecord("timestamp", "key-2", "{}", b"sealed-2")
    storage.add_online_key(GUN, current)
    storage.set_next_online_key(GUN, upcoming)

    with pytest.raises(RuntimeError), storage.write(GUN) as transaction:
        transaction.promote_online_key("timestamp")
        raise RuntimeError("the root upload was refused")

    assert storage.online_key(GUN, "timestamp") == current
    assert storage.next_online_key(GUN, "timestamp") == upcoming


def test_a_duplicate_version_in_one_transaction_is_a_version_conflict(storage: Storage):
    with pytest.raises(VersionConflict), storage.write(GUN) as transaction:
        transaction.put("targets", 1, b"one")
        transaction.put("targets", 1, b"again")

    assert storage.latest(GUN, "targets") is None


def test_two_writes_on_one_repository_serialise(storage: Storage):
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
