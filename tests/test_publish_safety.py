"""Publishing loses nothing: failures leave keystore, changelist and server as they were,
and concurrent publishers all land."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import httpx

from tests.support.harness import DIGEST_A, DIGEST_B, ServerProcess, Trustkit, publisher_cli

DEAD_SERVER = "http://127.0.0.1:9"


def _targets_version(server: ServerProcess, gun: str) -> int:
    return int(httpx.get(server.metadata_url(gun, "targets.json")).json()["signed"]["version"])


def test_wrong_passphrase_changes_nothing(publisher: Trustkit, server: ServerProcess, gun: str):
    publisher("init", gun)
    publisher("sign", f"{gun}:staged", "--digest", DIGEST_A, "--size", "1", "--no-publish")
    changelist = (publisher.home / "changelists").iterdir().__next__().read_bytes()
    version = _targets_version(server, gun)

    result = publisher(
        "sign", f"{gun}:1.0", "--digest", DIGEST_B, "--size", "10",
        env={"TRUSTKIT_TARGETS_PASSPHRASE": "not it"},
    )  # fmt: skip

    assert result.code == 2
    assert "wrong passphrase for the targets key" in result.err
    assert "$TRUSTKIT_TARGETS_PASSPHRASE" in result.err
    assert _targets_version(server, gun) == version
    assert (publisher.home / "changelists").iterdir().__next__().read_bytes() == changelist


def test_missing_passphrase_without_terminal_names_the_variable(publisher: Trustkit, gun: str):
    publisher("init", gun)

    result = publisher.process(
        "sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "10",
        env={"TRUSTKIT_TARGETS_PASSPHRASE": ""},
    )  # fmt: skip

    assert result.code == 2
    assert "TRUSTKIT_TARGETS_PASSPHRASE" in result.err
    assert "Traceback" not in result.err


def test_passphrase_file_works_for_pipelines(publisher: Trustkit, gun: str, tmp_path: Path):
    publisher("init", gun)
    secret = tmp_path / "targets_passphrase"
    secret.write_text(publisher.env["TRUSTKIT_TARGETS_PASSPHRASE"] + "\n")

    result = publisher(
        "sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "10",
        "--passphrase-file", str(secret), env={"TRUSTKIT_TARGETS_PASSPHRASE": ""},
    )  # fmt: skip

    assert result.code == 0, result.err


def test_failed_publish_keeps_the_changelist_as_it_was(publisher: Trustkit, gun: str):
    publisher("init", gun)

    failed = publisher(
        "sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "10", "--server", DEAD_SERVER
    )
    nothing_staged = publisher("publish", gun)

    assert failed.code == 3
    assert "cannot" in failed.err
    assert nothing_staged.code == 0, nothing_staged.err
    assert "nothing to publish" in nothing_staged.out


def test_failed_init_leaves_no_keys_behind(publisher: Trustkit, gun: str):
    result = publisher("init", gun, "--server", DEAD_SERVER)

    assert result.code == 3
    assert not list(publisher.home.rglob("*.p12"))


def test_init_refused_by_the_server_removes_the_keys_it_made(
    publisher: Trustkit, gun: str, tmp_path: Path, server: ServerProcess
):
    publisher("init", gun)
    other = publisher_cli(tmp_path / "other" / ".trustkit", server.url)

    result = other("init", gun)

    assert result.code == 2
    assert "already exists" in result.err
    assert not list(other.home.rglob("*.p12"))


def test_concurrent_publishers_all_land(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    publisher("init", gun)
    pipelines = []
    for i in range(6):
        home = tmp_path / f"pipeline{i}" / ".trustkit"
        shutil.copytree(publisher.home, home)
        pipelines.append(publisher_cli(home, server.url))
    results: dict[int, int] = {}

    def sign(i: int) -> None:
        result = pipelines[i].process(
            "sign", f"{gun}:build-{i}", "--digest", DIGEST_A, "--size", str(100 + i)
        )
        results[i] = result.code

    threads = [threading.Thread(target=sign, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == dict.fromkeys(range(6), 0)
    tags = {t["tag"]: t["size"] for t in host("inspect", gun, "--json").json["tags"]}
    assert tags == {f"build-{i}": 100 + i for i in range(6)}
