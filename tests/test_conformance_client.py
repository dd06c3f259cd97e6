"""trustkit-conformance-client against static TUF repositories that these tests build,
serve on 127.0.0.1 and attack.

The repository uses consistent snapshots, as the tuf-conformance suite's does: versioned
``N.root.json``, ``N.snapshot.json``, ``N.targets.json`` and ``N.ROLE.json`` (the role's
name percent-encoded), an unversioned ``timestamp.json``, and target files at
``DIR/HASH.NAME``. The server logs every request path, so the tests can check what the
client fetched, in what order.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
    MetaFile,
)

from tests.support.static_repository import (
    TOP_LEVEL,
    Client,
    RepositoryServer,
    Run,
    StaticRepository,
)

DELEGATED = "team/a b"  # a name that must be percent-encoded, in URLs and file names
YESTERDAY = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)


@pytest.fixture
def repo(tmp_path: Path) -> StaticRepository:
    return StaticRepository(tmp_path / "repo")


@pytest.fixture
def server(repo: StaticRepository) -> Iterator[RepositoryServer]:
    started = RepositoryServer(repo.metadata_dir.parent)
    thread = threading.Thread(target=started.serve_forever, daemon=True)
    thread.start()
    yield started
    started.shutdown()
    started.server_close()
    thread.join()


@pytest.fixture
def client(tmp_path: Path, server: RepositoryServer) -> Client:
    workdir = tmp_path / "client"
    (workdir / "metadata").mkdir(parents=True)
    (workdir / "targets").mkdir()
    return Client(workdir, server)


def top_level_files() -> list[str]:
    return sorted(f"{role}.json" for role in TOP_LEVEL)


def assert_refused(run: Run) -> None:
    assert run.code == 1, run
    assert "Traceback" not in run.stderr


def test_init_makes_no_request_and_refresh_stores_exactly_the_top_level_roles(
    repo: StaticRepository, server: RepositoryServer, client: Client
) -> None:
    init = client.init(repo.initial_root)
    assert init.code == 0, init
    assert server.take_requests() == []
    assert client.trusted_files() == ["root.json"]

    refreshed = client.refresh()

    assert refreshed.code == 0, refreshed
    assert server.take_requests() == [
        "/metadata/2.root.json",
        "/metadata/timestamp.json",
        "/metadata/1.snapshot.json",
        "/metadata/1.targets.json",
    ]
    assert client.trusted_files() == top_level_files()
    # Flat files holding the bytes received: no root_history/, no symlink.
    for role, served in [
        ("root", "1.root.json"),
        ("timestamp", "timestamp.json"),
        ("snapshot", "1.snapshot.json"),
        ("targets", "1.targets.json"),
    ]:
        path = client.metadata_dir / f"{role}.json"
        assert path.is_file() and not path.is_symlink()
        assert path.read_bytes() == repo.served(served)


def test_second_refresh_with_nothing_new_fetches_only_root_and_timestamp(
    repo: StaticRepository, server: RepositoryServer, client: Client
) -> None:
    assert client.init(repo.initial_root).code == 0
    assert client.refresh().code == 0
    server.take_requests()

    again = client.refresh()

    assert again.code == 0, again
    assert server.take_requests() == ["/metadata/2.root.json", "/metadata/timestamp.json"]
    assert client.trusted_files() == top_level_files()


def test_refresh_after_a_release_fetches_the_new_versions(
    repo: StaticRepository, server: RepositoryServer, client: Client
) -> None:
    assert client.init(repo.initial_root).code == 0
    assert client.refresh().code == 0
    server.take_requests()
    repo.release()

    assert client.refresh().code == 0

    assert server.take_requests() == [
        "/metadata/2.root.json",
        "/metadata/timestamp.json",
        "/metadata/2.snapshot.json",
        "/metadata/2.targets.json",
    ]
    assert [client.version(role) for role in TOP_LEVEL] == [1, 2, 2, 2]


@pytest.mark.parametrize("delegated", [DELEGATED, "../escape", "?", "#"])
def test_download_of_a_top_level_and_a_delegated_target(
    repo: StaticRepository, server: RepositoryServer, client: Client, delegated: str
) -> None:
    quoted = quote(delegated, safe="")
    repo.delegate(delegated, ["team/*"])
    repo.add_target("app.txt", b"top-level target")
    repo.add_target("team/tool.bin", b"delegated target", role=delegated)
    repo.release()
    assert client.init(repo.initial_root).code == 0

    downloaded = client.download("app.txt", "team/tool.bin")

    assert downloaded.code == 0, downloaded
    assert client.downloaded() == {
        "app.txt": b"top-level target",
        quote("team/tool.bin", safe=""): b"delegated target",
    }
    assert client.trusted_files() == sorted([*top_level_files(), f"{quoted}.json"])
    served = repo.served(f"2.{quoted}.json")
    assert (client.metadata_dir / f"{quoted}.json").read_bytes() == served
    assert sorted(os.listdir(client.workdir)) == ["initial_root.json", "metadata", "targets"]
    requests = server.take_requests()
    # One updater: one refresh (one timestamp request) for both targets, hash-prefixed
    # target URLs (consistent snapshots) and the delegated role's quoted name.
    assert requests.count("/metadata/timestamp.json") == 1
    assert f"/metadata/2.{quoted}.json" in requests
    app = repo.targets.targets["app.txt"]
    assert f"/targets/{app.hashes['sha256']}.app.txt" in requests


def test_download_right_after_init_refreshes_even_when_the_target_is_unknown(
    repo: StaticRepository, server: RepositoryServer, client: Client
) -> None:
    assert client.init(repo.initial_root).code == 0

    assert_refused(client.download("nonexistent artifact"))

    assert server.take_requests() == [
        "/metadata/2.root.json",
        "/metadata/timestamp.json",
        "/metadata/1.snapshot.json",
        "/metadata/1.targets.json",
    ]
    assert client.trusted_files() == top_level_files()
    assert os.listdir(client.target_dir) == []


def test_timestamp_with_new_content_but_the_same_version_is_not_stored(
    repo: StaticRepository, client: Client
) -> None:
    assert client.init(repo.initial_root).code == 0
    assert client.refresh().code == 0
    trusted = (client.metadata_dir / "timestamp.json").read_bytes()
    repo.timestamp.snapshot_meta = MetaFile(100)
    repo.publish_timestamp()

    assert client.refresh().code == 0

    assert (client.metadata_dir / "timestamp.json").read_bytes() == trusted


def test_download_keeps_a_verified_target_instead_of_fetching_it_again(
    repo: StaticRepository, server: RepositoryServer, client: Client
) -> None:
    target = repo.add_target("app.txt", b"top-level target")
    repo.release()
    assert client.init(repo.initial_root).code == 0
    assert client.download("app.txt").code == 0
    server.take_requests()

    again = client.download("app.txt")

    assert again.code == 0, again
    assert not any(path.startswith("/targets/") for path in server.take_requests())
    assert client.downloaded() == {"app.txt": b"top-level target"}
    # A new signed version of the same path replaces the same file.
    repo.add_target(target.path, b"second version")
    repo.release()
    assert client.download("app.txt").code == 0
    assert client.downloaded() == {"app.txt": b"second version"}


def test_download_stops_at_the_first_target_that_fails(
    repo: StaticRepository, server: RepositoryServer, client: Client
) -> None:
    repo.add_target("first.txt", b"first")
    last = repo.add_target("last.txt", b"last")
    repo.release()
    assert client.init(repo.initial_root).code == 0

    run = client.download("first.txt", "not-signed.txt", "last.txt")

    assert_refused(run)
    assert "not-signed.txt" in run.stderr
    assert client.downloaded() == {"first.txt": b"first"}
    assert f"/targets/{last.hashes['sha256']}.last.txt" not in server.take_requests()


@pytest.mark.parametrize("served", [b"evil bytes!!!!", b"evil bytes that are longer"])
def test_tampered_target_is_refused_and_nothing_is_left(
    repo: StaticRepository, client: Client, served: bytes
) -> None:
    target = repo.add_target("app.txt", b"the real bytes")
    repo.release()
    repo.target_file(target).write_bytes(served)
    assert client.init(repo.initial_root).code == 0

    run = client.download("app.txt")

    assert_refused(run)
    assert os.listdir(client.target_dir) == []


def test_tampered_new_version_leaves_the_verified_old_file_alone(
    repo: StaticRepository, client: Client
) -> None:
    repo.add_target("app.txt", b"version one")
    repo.release()
    assert client.init(repo.initial_root).code == 0
    assert client.download("app.txt").code == 0
    target = repo.add_target("app.txt", b"version two")
    repo.release()
    repo.target_file(target).write_bytes(b"version 2!!")

    assert_refused(client.download("app.txt"))

    assert sorted(os.listdir(client.target_dir)) == ["app.txt"]
    assert client.downloaded() == {"app.txt": b"version one"}


def test_root_rotation_signed_by_old_and_new_keys_is_followed(
    repo: StaticRepository, server: RepositoryServer, client: Client
) -> None:
    assert client.init(repo.initial_root).code == 0
    assert client.refresh().code == 0
    server.take_requests()
    old_root_signer = repo.signers["root"]
    new_root_signer = CryptoSigner.generate_ed25519()
    new_timestamp_signer = CryptoSigner.generate_ed25519()
    repo.root.revoke_key(old_root_signer.public_key.keyid, "root")
    repo.root.add_key(new_root_signer.public_key, "root")
    repo.root.revoke_key(repo.signers["timestamp"].public_key.keyid, "timestamp")
    repo.root.add_key(new_timestamp_signer.public_key, "timestamp")
    repo.root.version = 2
    repo.signers.update(root=new_root_signer, timestamp=new_timestamp_signer)
    repo.publish_root([old_root_signer, new_root_signer])
    repo.timestamp.version += 1
    repo.publish_timestamp()

    rotated = client.refresh()

    assert rotated.code == 0, rotated
    assert server.take_requests()[:3] == [
        "/metadata/2.root.json",
        "/metadata/3.root.json",
        "/metadata/timestamp.json",
    ]
    assert (client.metadata_dir / "root.json").read_bytes() == repo.served("2.root.json")
    assert client.version("timestamp") == 2
    assert client.trusted_files() == top_level_files()


def test_root_not_signed_by_the_trusted_root_keys_is_refused(
    repo: StaticRepository, client: Client
) -> None:
    assert client.init(repo.initial_root).code == 0
    assert client.refresh().code == 0
    attacker = CryptoSigner.generate_ed25519()
    repo.root.revoke_key(repo.signers["root"].public_key.keyid, "root")
    repo.root.add_key(attacker.public_key, "root")
    repo.root.version = 2
    repo.publish_root([attacker])

    assert_refused(client.refresh())

    assert (client.metadata_dir / "root.json").read_bytes() == repo.initial_root


def test_timestamp_rollback_is_refused(
    repo: StaticRepository, server: RepositoryServer, client: Client
) -> None:
    repo.timestamp.version = 2
    repo.publish()
    newer = repo.served("timestamp.json")
    assert client.init(repo.initial_root).code == 0
    assert client.refresh().code == 0
    assert client.version("timestamp") == 2
    repo.timestamp.version = 1
    repo.publish_timestamp()  # validly signed, but older than what the client trusts

    run = client.refresh()

    assert_refused(run)
    assert "BadVersionNumberError" in run.stderr
    assert (client.metadata_dir / "timestamp.json").read_bytes() == newer


def test_expired_timestamp_is_refused(repo: StaticRepository, client: Client) -> None:
    repo.timestamp.expires = YESTERDAY
    repo.publish_timestamp()
    assert client.init(repo.initial_root).code == 0

    run = client.refresh()

    assert_refused(run)
    assert "ExpiredMetadataError" in run.stderr
    assert client.trusted_files() == ["root.json"]


def test_init_with_garbage_root_fails_and_refresh_then_makes_no_request(
    server: RepositoryServer, client: Client
) -> None:
    assert_refused(client.init(b"this is not json"))
    assert client.trusted_files() == []

    assert_refused(client.refresh())
    assert server.take_requests() == []


def test_init_with_a_root_not_signed_by_its_own_keys_fails(
    repo: StaticRepository, server: RepositoryServer, client: Client
) -> None:
    tampered = json.loads(repo.initial_root)
    tampered["signed"]["expires"] = "2099-01-01T00:00:00Z"  # the signature no longer holds

    assert_refused(client.init(json.dumps(tampered).encode()))

    assert client.trusted_files() == []
    assert_refused(client.refresh())
    assert server.take_requests() == []


def test_init_forgets_what_was_trusted_under_the_previous_root(
    repo: StaticRepository, client: Client
) -> None:
    assert client.init(repo.initial_root).code == 0
    assert client.refresh().code == 0

    assert client.init(repo.initial_root).code == 0

    assert client.trusted_files() == ["root.json"]


@pytest.mark.parametrize(
    "args",
    [
        ["--bogus", "refresh"],
        ["--metadata-dir"],
        [],
        ["--metadata-dir", "DIR", "frobnicate"],
        ["--metadata-dir", "DIR", "refresh"],  # no --metadata-url
        ["--metadata-dir", "DIR", "--metadata-url", "http://127.0.0.1:9/", "download"],
        ["--metadata-dir", "DIR", "refresh", "--metadata-url", "http://127.0.0.1:9/"],
    ],
)
def test_usage_errors_exit_1_not_2(client: Client, args: list[str]) -> None:
    args = [str(client.metadata_dir) if arg == "DIR" else arg for arg in args]

    run = client.run(*args)

    assert_refused(run)
    assert "usage error" in run.stderr
    assert client.trusted_files() == []


def test_unreachable_repository_exits_1(repo: StaticRepository, client: Client) -> None:
    assert client.init(repo.initial_root).code == 0

    run = client.run(
        "--metadata-url",
        "http://127.0.0.1:9/metadata",
        "--metadata-dir",
        str(client.metadata_dir),
        "refresh",
    )

    assert_refused(run)


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("app.txt", "app.txt"),
        ("dir/sub/app.txt", "dir%2Fsub%2Fapp.txt"),
        ("a b?#", "a%20b%3F%23"),
        (".", "%2E"),
        ("..", "%2E%2E"),
        ("../up", "..%2Fup"),
    ],
)
def test_each_target_path_has_one_file_name_in_the_target_dir(path: str, name: str) -> None:
    from client.conformance import target_filename

    assert target_filename(path) == name
