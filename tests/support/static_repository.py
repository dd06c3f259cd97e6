"""A TUF repository made with python-tuf, served as static files on 127.0.0.1, and
the conformance adapter run against it as a client."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

CLIENT = str(Path(sys.executable).with_name("trustkit-conformance-client"))


TOP_LEVEL = ("root", "timestamp", "snapshot", "targets")


IN_A_MONTH = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)


_Role = TypeVar("_Role", Root, Timestamp, Snapshot, Targets)


class StaticRepository:
    """A TUF repository as files under ``base``: ``metadata/`` and ``targets/``."""

    def __init__(self, base: Path) -> None:
        self.metadata_dir = base / "metadata"
        self.targets_dir = base / "targets"
        self.metadata_dir.mkdir(parents=True)
        self.targets_dir.mkdir()
        self.signers = {role: CryptoSigner.generate_ed25519() for role in TOP_LEVEL}
        self.root = Root(expires=IN_A_MONTH, consistent_snapshot=True)
        for role, signer in self.signers.items():
            self.root.add_key(signer.public_key, role)
        self.targets = Targets(expires=IN_A_MONTH)
        self.snapshot = Snapshot(expires=IN_A_MONTH)
        self.timestamp = Timestamp(expires=IN_A_MONTH)
        self.delegated: dict[str, Targets] = {}
        self.delegated_signers: dict[str, CryptoSigner] = {}
        self.initial_root = self.publish_root()
        self.publish()

    @staticmethod
    def signed_bytes(signed: _Role, signers: Sequence[CryptoSigner]) -> bytes:
        metadata = Metadata(signed)
        for signer in signers:
            metadata.sign(signer, append=True)
        return metadata.to_bytes(JSONSerializer(compact=False))

    def write(self, name: str, data: bytes) -> bytes:
        (self.metadata_dir / name).write_bytes(data)
        return data

    def served(self, name: str) -> bytes:
        return (self.metadata_dir / name).read_bytes()

    def publish_root(self, signers: Sequence[CryptoSigner] | None = None) -> bytes:
        data = self.signed_bytes(self.root, signers or [self.signers["root"]])
        return self.write(f"{self.root.version}.root.json", data)

    def delegate(self, name: str, paths: list[str]) -> None:
        signer = CryptoSigner.generate_ed25519()
        if self.targets.delegations is None:
            self.targets.delegations = Delegations(keys={}, roles={})
        assert self.targets.delegations.roles is not None
        self.targets.delegations.roles[name] = DelegatedRole(name, [], 1, False, paths)
        self.targets.add_key(signer.public_key, name)
        self.delegated[name] = Targets(expires=IN_A_MONTH)
        self.delegated_signers[name] = signer

    def add_target(self, path: str, content: bytes, role: str = "targets") -> TargetFile:
        target = TargetFile.from_data(path, content, ["sha256"])
        (self.targets if role == "targets" else self.delegated[role]).targets[path] = target
        self.target_file(target).parent.mkdir(parents=True, exist_ok=True)
        self.target_file(target).write_bytes(content)
        return target

    def target_file(self, target: TargetFile) -> Path:
        directory, _, name = target.path.rpartition("/")
        return self.targets_dir / directory / f"{target.hashes['sha256']}.{name}"

    def publish(self) -> None:
        """Write targets, the delegated roles, snapshot and timestamp at their versions."""
        for name, role in self.delegated.items():
            data = self.signed_bytes(role, [self.delegated_signers[name]])
            self.write(f"{role.version}.{quote(name, safe='')}.json", data)
            self.snapshot.meta[f"{name}.json"] = MetaFile(role.version)
        targets = self.signed_bytes(self.targets, [self.signers["targets"]])
        self.write(f"{self.targets.version}.targets.json", targets)
        self.snapshot.meta["targets.json"] = MetaFile(self.targets.version)
        snapshot = self.signed_bytes(self.snapshot, [self.signers["snapshot"]])
        self.write(f"{self.snapshot.version}.snapshot.json", snapshot)
        self.timestamp.snapshot_meta = MetaFile(self.snapshot.version)
        self.publish_timestamp()

    def publish_timestamp(self) -> bytes:
        data = self.signed_bytes(self.timestamp, [self.signers["timestamp"]])
        return self.write("timestamp.json", data)

    def release(self) -> None:
        """A new version of every role that changes when targets change."""
        self.targets.version += 1
        for role in self.delegated.values():
            role.version += 1
        self.snapshot.version += 1
        self.timestamp.version += 1
        self.publish()


class _Handler(BaseHTTPRequestHandler):
    server: RepositoryServer

    def do_GET(self) -> None:
        raw = self.path.split("?", 1)[0]
        parts = [part for part in raw.split("/") if part]
        path = self.server.base.joinpath(*parts)
        found = not {".", ".."} & set(parts) and path.is_file()
        with self.server.lock:
            self.server.requests.append(raw)
        if not found:
            self.send_error(404)
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


class RepositoryServer(ThreadingHTTPServer):
    """Serves ``base`` as is (no unquoting: a URL segment names a file), logging paths."""

    daemon_threads = True

    def __init__(self, base: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.base = base
        self.lock = threading.Lock()
        self.requests: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def take_requests(self) -> list[str]:
        with self.lock:
            taken, self.requests = self.requests, []
        return taken


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


@dataclass
class Client:
    """The console script, with the directories of one test."""

    workdir: Path
    server: RepositoryServer

    @property
    def metadata_dir(self) -> Path:
        return self.workdir / "metadata"

    @property
    def target_dir(self) -> Path:
        return self.workdir / "targets"

    def run(self, *args: str) -> Run:
        env = dict(os.environ)
        for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "ALL_PROXY"):
            env.pop(name, None)
        done = subprocess.run(
            [CLIENT, *args], capture_output=True, text=True, env=env, timeout=120, check=False
        )
        return Run(done.returncode, done.stdout, done.stderr)

    def init(self, root: bytes) -> Run:
        root_file = self.workdir / "initial_root.json"
        root_file.write_bytes(root)
        return self.run("--metadata-dir", str(self.metadata_dir), "init", str(root_file))

    def refresh(self) -> Run:
        return self.run(
            "--metadata-url",
            f"{self.server.url}/metadata",
            "--metadata-dir",
            str(self.metadata_dir),
            "refresh",
        )

    def download(self, *names: str) -> Run:
        named = [arg for name in names for arg in ("--target-name", name)]
        return self.run(
            "--metadata-url",
            f"{self.server.url}/metadata",
            "--metadata-dir",
            str(self.metadata_dir),
            *named,
            "--target-dir",
            str(self.target_dir),
            "--target-base-url",
            f"{self.server.url}/targets",
            "download",
        )

    def trusted_files(self) -> list[str]:
        return sorted(os.listdir(self.metadata_dir))

    def version(self, role: str) -> int:
        return Metadata.from_file(str(self.metadata_dir / f"{role}.json")).signed.version

    def downloaded(self) -> dict[str, bytes]:
        return {path.name: path.read_bytes() for path in self.target_dir.iterdir()}
