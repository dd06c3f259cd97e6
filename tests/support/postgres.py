"""A throwaway PostgreSQL for tests: Debian's server binaries, a temporary cluster.

``initdb`` refuses to run as root, so under root every server command runs as the
``postgres`` user (``runuser``) in a directory handed to it. The cluster listens on a
free port of 127.0.0.1 and a unix socket in the same temporary directory, with trust
authentication; ``create_database`` gives each test a database of its own.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

__all__ = ["PostgresCluster", "find_bindir", "postgresql_cluster"]

STEP_TIMEOUT = 60  # seconds, for each of initdb, pg_ctl start and stop


def find_bindir() -> Path | None:
    """The newest Debian ``/usr/lib/postgresql/N/bin`` with an initdb, or None."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parent.parent.name),
    )
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresCluster:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.base = Path(tempfile.mkdtemp(prefix="trustkit-pg-"))
        self.data = self.base / "data"
        self.socket_dir = self.base / "socket"
        self.log = self.base / "postgres.log"
        self.port = _free_port()
        self.user = "postgres"
        self._names = itertools.count(1)
        self._running = False
        self._as_postgres = os.geteuid() == 0

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=STEP_TIMEOUT, check=False
        )
        if result.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{args[0]} failed: {result.stdout}{result.stderr}\n{log}")

    def start(self) -> PostgresCluster:
        self.socket_dir.mkdir()
        if self._as_postgres:
            postgres = pwd.getpwnam("postgres")
            for path in (self.base, self.socket_dir):
                os.chown(path, postgres.pw_uid, postgres.pw_gid)
        else:
            self.user = pwd.getpwuid(os.geteuid()).pw_name
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", self.user, "-E", "UTF8")
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
            "-w", "-t", str(STEP_TIMEOUT), "start",
        )  # fmt: skip
        self._running = True
        return self

    def dsn(self, dbname: str = "postgres") -> str:
        return (
            f"host=127.0.0.1 port={self.port} user={self.user} dbname={dbname} connect_timeout=10"
        )

    def create_database(self) -> str:
        """A new empty database; returns its DSN."""
        name = f"test_{next(self._names)}"
        with psycopg.connect(self.dsn(), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        return self.dsn(name)

    def drop_database(self, dsn: str) -> None:
        name = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
        with psycopg.connect(self.dsn(), autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        try:
            if self._running:
                self._run(
                    "pg_ctl", "-D", str(self.data), "-m", "fast", "-w",
                    "-t", str(STEP_TIMEOUT), "stop",
                )  # fmt: skip
                self._running = False
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgresql_cluster() -> Iterator[PostgresCluster]:
    """One PostgreSQL for the session (Debian's postgresql, which scripts/system-packages
    installs: without it the tests fail, they are not skipped)."""
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed: run scripts/system-packages")
    cluster = PostgresCluster(bindir)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    yield cluster
    cluster.stop()
