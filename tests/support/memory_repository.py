"""A TUF repository built in memory, and the fetcher that serves it (no network).

Roles are signed as they are published; delegated roles may be left out of snapshot
(``unpublished``), as a signer that has not published yet. Any URL is served by the
file name after its last ``/_trust/tuf/`` (trustkit's layout) or after ``URL``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

from securesystemslib.signer import CryptoSigner
from tuf.api import exceptions
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Signed,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.ngclient import FetcherInterface, Updater

from client.lookup import build_updater

IN_A_MONTH = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
YESTERDAY = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
URL = "https://repository.test/metadata/"
TOP_LEVEL = ("root", "timestamp", "snapshot", "targets")


class MemoryRepository(FetcherInterface):
    """A TUF repository (no consistent snapshots) and the fetcher that serves it."""

    def __init__(self) -> None:
        self.signers = {role: CryptoSigner.generate_ed25519() for role in TOP_LEVEL}
        self.root = Root(expires=IN_A_MONTH, consistent_snapshot=False)
        for role, signer in self.signers.items():
            self.root.add_key(signer.public_key, role)
        self.targets = Targets(expires=IN_A_MONTH)
        self.delegated: dict[str, Targets] = {}
        self.delegated_signers: dict[str, CryptoSigner] = {}
        self.unpublished: set[str] = set()
        self.files: dict[str, bytes] = {}
        self.publish()

    def _sign(self, signed: Signed, signer: CryptoSigner) -> bytes:
        metadata = Metadata(signed)
        metadata.sign(signer)
        return metadata.to_bytes()

    def delegate(
        self, parent: str, name: str, paths: list[str], terminating: bool = False
    ) -> Targets:
        delegator = self.targets if parent == "targets" else self.delegated[parent]
        if delegator.delegations is None:
            delegator.delegations = Delegations(keys={}, roles={})
        assert delegator.delegations.roles is not None
        signer = CryptoSigner.generate_ed25519()
        delegator.delegations.roles[name] = DelegatedRole(name, [], 1, terminating, paths)
        delegator.add_key(signer.public_key, name)
        self.delegated[name] = role = Targets(expires=IN_A_MONTH)
        self.delegated_signers[name] = signer
        return role

    def sign_target(self, role: str, path: str) -> TargetFile:
        target = TargetFile.from_data(path, path.encode(), ["sha256"])
        (self.targets if role == "targets" else self.delegated[role]).targets[path] = target
        return target

    def publish(self) -> None:
        snapshot = Snapshot(expires=IN_A_MONTH)
        for name, role in self.delegated.items():
            if name not in self.unpublished:
                self.files[f"{name}.json"] = self._sign(role, self.delegated_signers[name])
                snapshot.meta[f"{name}.json"] = MetaFile(role.version)
        self.files["targets.json"] = self._sign(self.targets, self.signers["targets"])
        snapshot.meta["targets.json"] = MetaFile(self.targets.version)
        self.files["snapshot.json"] = self._sign(snapshot, self.signers["snapshot"])
        timestamp = Timestamp(expires=IN_A_MONTH, snapshot_meta=MetaFile(snapshot.version))
        self.files["timestamp.json"] = self._sign(timestamp, self.signers["timestamp"])
        self.files[f"{self.root.version}.root.json"] = self._sign(self.root, self.signers["root"])

    def _fetch(self, url: str) -> Iterator[bytes]:
        name = unquote(url.removeprefix(URL).rpartition("/_trust/tuf/")[2])
        if name not in self.files:
            raise exceptions.DownloadHTTPError(f"{name} not found", 404)
        yield self.files[name]

    def updater(self, directory: Path, updater_class: type[Updater] = Updater) -> Updater:
        return build_updater(
            directory,
            URL,
            self,
            bootstrap=self.files["1.root.json"],
            updater_class=updater_class,
        )


def build_tree(repository: MemoryRepository) -> None:
    """Delegations where the order of trust decides: nested, overlapping, terminating."""
    repository.delegate("targets", "first", ["app/*"])
    repository.delegate("first", "nested", ["app/1.*"])
    repository.delegate("targets", "stop", ["app/*", "web/*"], terminating=True)
    repository.delegate("targets", "after", ["*/*"])
    repository.sign_target("nested", "app/1.0")
    repository.sign_target("stop", "app/1.0")  # shadowed by nested, found first
    repository.sign_target("stop", "app/2.0")
    repository.sign_target("after", "app/2.0")  # shadowed by stop
    repository.sign_target("after", "web/1.0")  # behind the terminating stop: unsigned
    repository.sign_target("after", "other/1.0")
    repository.sign_target("targets", "top")
    repository.publish()


TREE_NAMES = ["app/1.0", "app/2.0", "web/1.0", "other/1.0", "top", "missing"]
TREE_SIGNERS = {"app/1.0": "nested", "app/2.0": "stop", "other/1.0": "after", "top": "targets"}
