"""Verification of a repository on a host, through python-tuf's ngclient updater.

The updater runs the whole TUF client workflow: walk the root chain from the root
this host trusts, then timestamp, snapshot and targets, checking signatures,
thresholds, versions (no rollback), hashes and lengths (no mix-and-match, no endless
data) and expiry (no freeze). Only then is a tag's digest returned.

The trust anchor of a repository is the root this host first trusted: pinned ahead
of time (``trustkit trust pin``) or taken on first use and recorded. A later root
that does not chain from it is refused.
"""

from __future__ import annotations

import fcntl
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tuf.api import exceptions
from tuf.api.metadata import Metadata, Root, Targets
from tuf.ngclient import Updater, UpdaterConfig

from client.fetcher import HttpxFetcher
from client.settings import ClientSettings
from keys.files import ensure_private_dir
from trustkit.errors import (
    KeystoreError,
    NotFoundError,
    ServerUnreachableError,
    TrustkitError,
    UsageError,
    VerificationError,
)
from trustkit.metadata import ImageTarget, describe_target

__all__ = ["RoleStatus", "TrustedRepository", "Verifier"]

UPDATER_CONFIG = UpdaterConfig(
    max_root_rotations=256,
    root_max_length=512 * 1024,
    timestamp_max_length=16 * 1024,
    snapshot_max_length=16 * 1024 * 1024,
    targets_max_length=64 * 1024 * 1024,
    app_user_agent="trustkit",
)


@dataclass(frozen=True)
class RoleStatus:
    role: str
    version: int
    expires: datetime
    keyids: list[str]


@dataclass(frozen=True)
class TrustedRepository:
    """A repository's metadata after a full, successful verification."""

    gun: str
    root: Root
    targets: Targets
    roles: list[RoleStatus]
    trusted_on_first_use: bool

    def signed_tags(self) -> list[str]:
        return sorted(self.targets.targets)

    def target(self, name: str) -> ImageTarget:
        info = self.targets.targets.get(name)
        if info is None:
            raise self.not_signed(name)
        return describe_target(info)

    def signer(self, name: str) -> str:
        """The role that signed ``name``: the top-level targets role."""
        return "targets"

    def tags_with_digest(self, digest: str) -> list[str]:
        """Signed tags whose manifest is ``digest`` (``sha256:…``)."""
        hex_digest = digest.removeprefix("sha256:")
        return sorted(
            name
            for name, info in self.targets.targets.items()
            if info.hashes.get("sha256") == hex_digest
        )

    def not_signed(self, name: str) -> NotFoundError:
        tags = self.signed_tags()
        listed = ", ".join(tags[:20]) + (", …" if len(tags) > 20 else "") if tags else "none"
        return NotFoundError(f"no signed tag {name} in {self.gun} (signed tags: {listed})")


class Verifier:
    """Runs the TUF client workflow for one repository at a time."""

    def __init__(self, settings: ClientSettings, fetcher: HttpxFetcher) -> None:
        self._settings = settings
        self._fetcher = fetcher

    @contextmanager
    def _exclusive(self, gun: str) -> Iterator[None]:
        """One verification of ``gun`` at a time on this host: python-tuf's cache is
        single-writer, and hosts often start many containers at once."""
        directory = self._settings.trust_dir(gun)
        ensure_private_dir(directory.parent)
        with open(directory.with_name(directory.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            except OSError as error:
                raise KeystoreError(
                    f"cannot use the trust store {directory}: {error}",
                    hint="check TRUSTKIT_HOME's permissions and free space",
                ) from None
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def has_anchor(self, gun: str) -> bool:
        return (self._settings.trust_dir(gun) / "root.json").exists()

    def pin(self, gun: str, root_bytes: bytes) -> Root:
        """Make ``root_bytes`` the trust anchor of ``gun``, forgetting what was trusted."""
        with self._exclusive(gun):
            return self._pin(gun, root_bytes)

    def _pin(self, gun: str, root_bytes: bytes) -> Root:
        try:
            root: Root = Metadata[Root].from_bytes(root_bytes).signed
        except Exception as error:
            raise UsageError(f"not a TUF root metadata file: {error}") from None
        directory = self._settings.trust_dir(gun)
        staging = directory.with_name(directory.name + ".pinning")
        shutil.rmtree(staging, ignore_errors=True)
        ensure_private_dir(staging)
        try:
            self._updater(gun, staging, root_bytes)
        except exceptions.RepositoryError as error:
            shutil.rmtree(staging, ignore_errors=True)
            raise VerificationError(f"refusing to pin this root: {error}") from None
        shutil.rmtree(directory, ignore_errors=True)
        staging.rename(directory)
        return root

    def forget(self, gun: str) -> bool:
        directory = self._settings.trust_dir(gun)
        with self._exclusive(gun):
            existed = directory.exists()
            shutil.rmtree(directory, ignore_errors=True)
        return existed

    def trusted_repository(self, gun: str) -> TrustedRepository:
        """Refresh and verify all top-level metadata of ``gun``; raise on any failure."""
        with self._exclusive(gun):
            return self._trusted_repository(gun)

    def _trusted_repository(self, gun: str) -> TrustedRepository:
        directory = self._settings.trust_dir(gun)
        first_use = not self.has_anchor(gun)
        try:
            if first_use:
                updater = self._first_use(gun, directory)
            else:
                updater = self._updater(gun, directory, None)
            updater.refresh()
        except exceptions.RepositoryError as error:
            if first_use:
                shutil.rmtree(directory, ignore_errors=True)
            raise self._explain(gun, error) from None
        except exceptions.DownloadError as error:
            if first_use:
                shutil.rmtree(directory, ignore_errors=True)
            raise self._explain_download(gun, error) from None
        return self._read_trusted(gun, directory, first_use)

    def _first_use(self, gun: str, directory: Path) -> Updater:
        url = f"{self._settings.metadata_url(gun)}1.root.json"
        try:
            root_bytes = self._fetcher.download_bytes(url, UPDATER_CONFIG.root_max_length)
        except exceptions.DownloadHTTPError as error:
            if error.status_code != 404:
                raise
            raise NotFoundError(
                f"{gun} is not signed: the server {self._settings.server_url} has no trust "
                "data for it",
                hint=f"publishers run: trustkit init {gun}",
            ) from None
        ensure_private_dir(directory)
        return self._updater(gun, directory, root_bytes)

    def _updater(self, gun: str, directory: Path, bootstrap: bytes | None) -> Updater:
        ensure_private_dir(directory)
        return Updater(
            metadata_dir=str(directory),
            metadata_base_url=self._settings.metadata_url(gun),
            fetcher=self._fetcher,
            config=UPDATER_CONFIG,
            bootstrap=bootstrap,
        )

    def _read_trusted(self, gun: str, directory: Path, first_use: bool) -> TrustedRepository:
        roles = []
        loaded: dict[str, Any] = {}
        for role in ("root", "targets", "snapshot", "timestamp"):
            metadata: Metadata[Any] = Metadata.from_file(str(directory / f"{role}.json"))
            signed = metadata.signed
            keyids = sorted(metadata.signatures)
            roles.append(RoleStatus(role, signed.version, signed.expires, keyids))
            loaded[role] = signed
        return TrustedRepository(gun, loaded["root"], loaded["targets"], roles, first_use)

    def _explain(self, gun: str, error: exceptions.RepositoryError) -> TrustkitError:
        text = str(error) or type(error).__name__
        if isinstance(error, exceptions.ExpiredMetadataError) and (
            "root" in text or "targets" in text
        ):
            return VerificationError(
                f"metadata for {gun} expired ({text})",
                hint="root and targets are re-signed by their key holders: run trustkit "
                "status to see when, and trustkit refresh before they expire",
            )
        if isinstance(error, exceptions.ExpiredMetadataError):
            when = self._served_timestamp_expiry(gun) if "timestamp" in text else None
            at = f" at {when}" if when else ""
            return VerificationError(
                f"metadata for {gun} expired{at} ({text}); the server is not refreshing it",
                hint="a stale or frozen server, a replayed response, or a wrong host clock",
            )
        if isinstance(error, exceptions.BadVersionNumberError):
            return VerificationError(
                f"rollback refused for {gun}: {text}",
                hint="the server served older metadata than this host already trusts",
            )
        if isinstance(error, exceptions.LengthOrHashMismatchError):
            return VerificationError(
                f"metadata for {gun} does not match what was signed for it: {text}",
                hint="the server or something between is serving tampered or mixed metadata",
            )
        if isinstance(error, exceptions.UnsignedMetadataError):
            return VerificationError(
                f"bad signatures on metadata for {gun}: {text}",
                hint="the metadata is not signed by the keys this host trusts "
                "(tampering, or a root that does not chain from the trusted one)",
            )
        return VerificationError(f"metadata for {gun} failed verification: {text}")

    def _explain_download(self, gun: str, error: exceptions.DownloadError) -> TrustkitError:
        text = str(error) or type(error).__name__
        if isinstance(error, exceptions.DownloadLengthMismatchError):
            return VerificationError(
                f"the server sent more metadata for {gun} than allowed: {text}",
                hint="the served metadata is larger than what was signed for it: it was "
                "tampered with, or this is an endless-data attack",
            )
        if isinstance(error, exceptions.DownloadHTTPError) and error.status_code == 404:
            return NotFoundError(
                f"{gun} has no complete trust data on {self._settings.server_url}: {text}",
                hint=f"publishers run: trustkit init {gun}",
            )
        return ServerUnreachableError(
            f"cannot fetch trust data for {gun} from {self._settings.server_url}: {text}",
            hint="check --server / TRUSTKIT_SERVER and the network",
        )

    def _served_timestamp_expiry(self, gun: str) -> str | None:
        """When the served timestamp expired, for the message only (it is not trusted)."""
        url = f"{self._settings.metadata_url(gun)}timestamp.json"
        try:
            data = self._fetcher.download_bytes(url, UPDATER_CONFIG.timestamp_max_length)
            return str(json.loads(data)["signed"]["expires"])
        except (exceptions.DownloadError, ValueError, KeyError, TypeError):
            return None
