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
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tuf.api import exceptions
from tuf.api.metadata import Metadata, Root, Snapshot, SuccinctRoles, TargetFile, Targets
from tuf.ngclient import FetcherInterface, Updater, UpdaterConfig

from client.settings import ClientSettings
from keys.files import ensure_private_dir
from trustkit.bins import BINS_ROLE, bins_of
from trustkit.errors import (
    KeystoreError,
    NotFoundError,
    ServerRefusedError,
    ServerUnreachableError,
    TrustkitError,
    UsageError,
    VerificationError,
)
from trustkit.metadata import ImageTarget, describe_target

__all__ = ["RoleStatus", "TrustedRepository", "Verifier"]

_BEFORE_ANY_EXPIRY = datetime(1970, 1, 1, tzinfo=UTC)

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
    """A repository's metadata after a full, successful verification.

    ``delegated`` holds every signer role (delegated targets role) reachable from
    targets, each verified against its delegator; ``unpublished`` names delegated
    roles whose signers have not published yet (they sign nothing).

    In a repository with hash bins, ``delegated`` holds only the bins of the tags in
    ``bins_for`` (every published bin when it is None): looking up any other tag is a
    programming error, not a missing tag.
    """

    gun: str
    root: Root
    targets: Targets
    roles: list[RoleStatus]
    trusted_on_first_use: bool
    delegated: dict[str, Targets] = field(default_factory=dict)
    unpublished: tuple[str, ...] = ()
    # Version of every role in snapshot, including signer roles no longer delegated
    # (their names are taken: a role's versions only ever go up).
    snapshot_versions: dict[str, int] = field(default_factory=dict)
    snapshot: Snapshot | None = None
    bins_for: frozenset[str] | None = None

    @property
    def bins(self) -> SuccinctRoles | None:
        """The hash bins of the repository, if it has them."""
        return bins_of(self.delegated.get(BINS_ROLE))

    @property
    def complete(self) -> bool:
        """Whether every role that signs tags was loaded (so listings are whole)."""
        return self.bins_for is None or self.bins is None

    def lookup(self, name: str) -> tuple[TargetFile, str] | None:
        """The target ``name`` and the role that signed it, in TUF's order of trust:
        pre-order depth first through the delegations whose paths match, stopping at
        a terminating one (python-tuf's ``get_roles_for_target`` applies both)."""
        to_visit: list[str] = ["targets"]
        visited: set[str] = set()
        while to_visit:
            role = to_visit.pop()
            metadata = self.targets if role == "targets" else self.delegated.get(role)
            if metadata is None and self._unloaded_bin(role, name):
                raise RuntimeError(f"the bin {role} of {name} was not loaded")
            if metadata is None or role in visited:
                continue  # an unpublished signer role holds nothing
            visited.add(role)
            found = metadata.targets.get(name)
            if found is not None:
                return found, role
            children: list[str] = []
            if metadata.delegations is not None:
                for child, terminating in metadata.delegations.get_roles_for_target(name):
                    children.append(child)
                    if terminating:
                        to_visit.clear()
                        break
            to_visit.extend(reversed(children))
        return None

    def _unloaded_bin(self, role: str, name: str) -> bool:
        bins = self.bins
        return (
            bins is not None
            and bins.is_delegated_role(role)
            and role in self.snapshot_versions
            and self.bins_for is not None
            and name not in self.bins_for
        )

    def signed_tags(self) -> list[str]:
        names = set(self.targets.targets)
        for metadata in self.delegated.values():
            names.update(metadata.targets)
        return sorted(name for name in names if self.lookup(name) is not None)

    def target_file(self, name: str) -> TargetFile:
        found = self.lookup(name)
        if found is None:
            raise self.not_signed(name)
        return found[0]

    def target(self, name: str) -> ImageTarget:
        return describe_target(self.target_file(name))

    def signer(self, name: str) -> str:
        """The role that signed ``name``: ``targets`` or a signer's role."""
        found = self.lookup(name)
        if found is None:
            raise self.not_signed(name)
        return found[1]

    def tags_with_digest(self, digest: str) -> list[str]:
        """Signed tags whose manifest is ``digest`` (``sha256:…``)."""
        hex_digest = digest.removeprefix("sha256:")
        return [
            name
            for name in self.signed_tags()
            if self.target_file(name).hashes.get("sha256") == hex_digest
        ]

    def not_signed(self, name: str) -> NotFoundError:
        if not self.complete:
            return NotFoundError(
                f"no signed tag {name} in {self.gun}",
                hint=f"see the signed tags: trustkit inspect {self.gun}",
            )
        tags = self.signed_tags()
        listed = ", ".join(tags[:20]) + (", …" if len(tags) > 20 else "") if tags else "none"
        return NotFoundError(f"no signed tag {name} in {self.gun} (signed tags: {listed})")


class Verifier:
    """Runs the TUF client workflow for one repository at a time."""

    def __init__(self, settings: ClientSettings, fetcher: FetcherInterface) -> None:
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

    def trusted_repository(
        self,
        gun: str,
        *,
        allow_expired: bool = False,
        tags: Collection[str] | None = None,
    ) -> TrustedRepository:
        """Refresh and verify the metadata of ``gun``; raise on any failure.

        Every top-level and signer role is verified. Of the hash bins of a repository
        that has them, only those holding ``tags`` are (all of them when None): a host
        looking one tag up downloads one bin.

        ``allow_expired`` is for a key holder renewing metadata that already expired:
        every check applies (signatures, thresholds, versions, hashes) except expiry.
        Hosts never use it.
        """
        wanted = None if tags is None else frozenset(tags)
        with self._exclusive(gun):
            return self._trusted_repository(gun, allow_expired, wanted)

    def last_verified(self, gun: str) -> TrustedRepository | None:
        """What this host verified last for ``gun``, read from its cache with no network
        (top-level roles only); None if it never verified ``gun``."""
        directory = self._settings.trust_dir(gun)
        if not (directory / "timestamp.json").is_file():
            return None
        with self._exclusive(gun):
            return self._read_trusted(gun, directory, first_use=False)

    def _trusted_repository(
        self, gun: str, allow_expired: bool = False, tags: frozenset[str] | None = None
    ) -> TrustedRepository:
        directory = self._settings.trust_dir(gun)
        first_use = not self.has_anchor(gun)
        try:
            if first_use:
                updater = self._first_use(gun, directory)
            else:
                updater = self._updater(gun, directory, None)
            if allow_expired:
                # python-tuf has no switch for this: its trusted set compares every
                # expiry with this reference time, so an early one passes them all.
                updater._trusted_set.reference_time = _BEFORE_ANY_EXPIRY
            updater.refresh()
            trusted = self._read_trusted(gun, directory, first_use)
            return self._with_signer_roles(trusted, updater, directory, tags)
        except exceptions.RepositoryError as error:
            if first_use:
                shutil.rmtree(directory, ignore_errors=True)
            raise self._explain(gun, error) from None
        except exceptions.DownloadError as error:
            if first_use:
                shutil.rmtree(directory, ignore_errors=True)
            raise self._explain_download(gun, error, first_use) from None

    @staticmethod
    def _with_signer_roles(
        trusted: TrustedRepository,
        updater: Updater,
        directory: Path,
        tags: frozenset[str] | None,
    ) -> TrustedRepository:
        """Load and verify every delegated role reachable from targets, through the
        updater (signatures against the delegator's keys, version and hash against
        snapshot, expiry); a role not yet in snapshot has not been published. Of hash
        bins, only those of ``tags`` (all when None); a bin not in snapshot is empty."""
        snapshot: Snapshot = Metadata[Snapshot].from_file(str(directory / "snapshot.json")).signed
        delegated: dict[str, Targets] = {}
        unpublished: list[str] = []
        roles = list(trusted.roles)
        queue: list[tuple[str, Targets]] = [("targets", trusted.targets)]
        while queue:
            parent, metadata = queue.pop(0)
            if metadata.delegations is None:
                continue
            succinct = metadata.delegations.succinct_roles
            if succinct is not None:
                wanted = (
                    succinct.get_roles()
                    if tags is None
                    else sorted({succinct.get_role_for_target(tag) for tag in tags})
                )
                for name in wanted:
                    if f"{name}.json" in snapshot.meta and name not in delegated:
                        # Bins delegate nothing further: they are not walked on.
                        delegated[name] = child = updater._load_targets(name, parent)
                        roles.append(RoleStatus(name, child.version, child.expires, []))
                continue
            if metadata.delegations.roles is None:
                continue
            for name in metadata.delegations.roles:
                if name in delegated or name in unpublished:
                    continue
                if f"{name}.json" not in snapshot.meta:
                    unpublished.append(name)
                    continue
                # python-tuf offers no public call that loads one delegated role.
                child = updater._load_targets(name, parent)
                delegated[name] = child
                queue.append((name, child))
                stored = Metadata[Targets].from_file(
                    str(directory / f"{quote(name, safe='')}.json")
                )
                keyids = sorted(stored.signatures)
                roles.append(RoleStatus(name, child.version, child.expires, keyids))
        versions = {name.removesuffix(".json"): m.version for name, m in snapshot.meta.items()}
        return replace(
            trusted,
            roles=roles,
            delegated=delegated,
            unpublished=tuple(unpublished),
            snapshot_versions=versions,
            bins_for=tags,
        )

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
        return TrustedRepository(
            gun, loaded["root"], loaded["targets"], roles, first_use, snapshot=loaded["snapshot"]
        )

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

    def _explain_download(
        self, gun: str, error: exceptions.DownloadError, first_use: bool = True
    ) -> TrustkitError:
        text = str(error) or type(error).__name__
        if isinstance(error, exceptions.DownloadLengthMismatchError):
            return VerificationError(
                f"the server sent more metadata for {gun} than allowed: {text}",
                hint="the served metadata is larger than what was signed for it: it was "
                "tampered with, or this is an endless-data attack",
            )
        if isinstance(error, exceptions.DownloadHTTPError) and error.status_code in (401, 403):
            return ServerRefusedError(
                f"the server {self._settings.server_url} needs an access token with a pull "
                f"scope covering {gun} to read its trust data",
                status=error.status_code,
                error="unauthorized" if error.status_code == 401 else "forbidden",
                hint="set TRUSTKIT_TOKEN or pass --token-file",
            )
        if isinstance(error, exceptions.DownloadHTTPError) and error.status_code == 404:
            # A repository this host trusted before cannot be "not initialised": the
            # server lost or hides files it served (damaged, restored from an old backup,
            # or lying), which is for its operator, not a publisher, to look into.
            hint = (
                f"publishers run: trustkit init {gun}"
                if first_use
                else "this host verified it before: the server no longer serves what it "
                "did; tell its operator (or use a mirror or bundle you trust)"
            )
            return NotFoundError(
                f"{gun} has no complete trust data on {self._settings.server_url}: {text}",
                hint=hint,
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
