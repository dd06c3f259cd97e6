"""Several server replicas on one PostgreSQL database: publishers talking to either one
lose nothing and interleave nothing, and hosts read the same trust from both."""

from __future__ import annotations

import secrets
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from psycopg.conninfo import conninfo_to_dict

from tests.support.harness import DIGEST_A, ServerProcess, Trustkit, publisher_cli
from tests.support.postgres import PostgresCluster, postgresql_cluster  # noqa: F401 - a fixture


@pytest.fixture
def replicas(postgresql_cluster: PostgresCluster, tmp_path: Path) -> Any:  # noqa: F811
    dsn = postgresql_cluster.create_database()
    parts = conninfo_to_dict(dsn)
    url = f"postgresql://{parts['user']}@{parts['host']}:{parts['port']}/{parts['dbname']}"
    master = tmp_path / "master.key"  # every replica seals online keys with the same key
    master.write_bytes(secrets.token_bytes(32))
    master.chmod(0o600)
    started = [
        ServerProcess(
            tmp_path / f"replica{n}", "--database", url, "--master-key-file", str(master)
        ).start()
        for n in range(2)
    ]
    yield started
    for server in started:
        server.stop()
    postgresql_cluster.drop_database(dsn)


def test_publishers_on_two_replicas_lose_nothing_and_hosts_see_one_repository(
    replicas: list[ServerProcess], tmp_path: Path, gun: str
):
    first, second = replicas
    owner = publisher_cli(tmp_path / "owner" / ".trustkit", first.url)
    assert owner("init", gun).code == 0, "init through the first replica"

    homes = []
    for n in range(10):  # ten release pipelines, each with a copy of the targets key
        home = tmp_path / f"pipeline{n}" / ".trustkit"
        shutil.copytree(owner.home, home)
        homes.append(home)

    def sign(n: int) -> int:
        server = replicas[n % 2]
        tk = Trustkit(homes[n], server.url, dict(owner.env))
        digest = "sha256:" + f"{n:x}" * 64 if n < 16 else DIGEST_A
        result = tk.process("sign", f"{gun}:1.{n}", "--digest", digest, "--size", "1")
        assert result.code == 0, result.err
        return n

    with ThreadPoolExecutor(10) as pool:
        assert sorted(pool.map(sign, range(10))) == list(range(10))

    for server in (first, second):
        host = Trustkit(tmp_path / f"host-{server.port}" / ".trustkit", server.url)
        inspected = host("inspect", gun, "--json")
        assert inspected.code == 0, inspected.err
        tags = {t["tag"]: t["digest"] for t in inspected.json["tags"]}
        assert tags == {f"1.{n}": "sha256:" + f"{n:x}" * 64 for n in range(10)}
    # The online keys are shared, not made twice: both replicas sign with the same one.
    for role in ("snapshot", "timestamp"):
        keys = {
            Trustkit(tmp_path / "probe" / ".trustkit", s.url)("status", gun, "--json").json[
                "roles"
            ][["root", "targets", "snapshot", "timestamp"].index(role)]["keys"][0]
            for s in replicas
        }
        assert len(keys) == 1
