"""Verification of a repository on a host, through python-tuf's ngclient updater.

The updater runs the whole TUF client workflow: walk the root chain from the root
this host trusts, then timestamp, snapshot and targets, checking signatures,
thresholds, versions (no rollback), hashes and lengths (no mix-and-match, no endless
data) and expiry (no freeze). Only then is a tag's digest returned.

The trust anchor of a repository is the root this host first trusted: pinned ahead
of time (``trustkit trust pin``) or taken on first use and recorded. A later root
that does not chain from it is refused.

One verifier: ``trustkit verify``/``resolve``/``pull``, the Docker gate and the TUF
conformance adapter (:mod:`client.conformance`) all build their updater with
:func:`build_updater` and decide whether a target is signed with :func:`decide_target`,
which is python-tuf's public ``Updater.get_targetinfo`` (its pre-order walk, bounded by
``UpdaterConfig.max_delegations``). Every metadata file the updater downloads first
passes :class:`client.metadata_guard.GuardedFetcher`'s checks (one key under two key
ids, absurd hash-bin counts).
"""

from __future__ import annotations

import fcntl
import json
import shutil
from collections.abc import Callable, Collection, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tuf.api import exceptions
from tuf.api.metadata import Metadata, Root, Snapshot, SuccinctRoles, TargetFile, Targets
from tuf.ngclient import FetcherInterface, Updater, UpdaterConfig

from client.metadata_guard import GuardedFetcher, UnsafeMetadataError, check_metadata
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

__all__ = [
    "MAX_DELEGATIONS",
    "UPDATER_CONFIG",
    "RoleStatus",
    "TargetDecision",
    "TrustedRepository",
    "UnpublishedSignerError",
    "Verifier",
    "build_updater",
    "decide_target",
]

_BEFORE_ANY_EXPIRY = datetime(1970, 1, 1, tzinfo=UTC)

# How many roles one lookup may visit (python-tuf's default): a chain or fan of
# delegations longer than this is refused, not walked.
MAX_DELEGATIONS = 32

UPDATER_CONFIG = UpdaterConfig(
    max_root_rotations=256,
    max_delegations=MAX_DELEGATIONS,
    root_max_length=512 * 1024,
    timestamp_max_length=16 * 1024,
    snapshot_max_length=16 * 1024 * 1024,
    targets_max_length=64 * 1024 * 1024,
    app_user_agent="trustkit",
)


@dataclass(frozen=True)
class TargetDecision:
    """Whether ``name`` is signed, as the TUF client workflow decides it.

    ``target`` is what python-tuf's ``get_targetinfo`` returned (None: not signed);
    ``signer`` the role that signed it; ``visited`` every role the lookup loaded, in
    order, as verified."""

    name: str
    target: TargetFile | None
    signer: str | None
    visited: dict[str, Targets]


def build_updater(
    metadata_dir: Path,
    metadata_url: str,
    fetcher: FetcherInterface,
    *,
    bootstrap: bytes | None,
    target_dir: Path | None = None,
    target_base_url: str | None = None,
    updater_class: type[Updater] = Updater,
) -> Updater:
    """The one way trustkit builds python-tuf's updater: trustkit's limits
    (``UPDATER_CONFIG``), every download checked by :class:`GuardedFetcher`, in a
    private directory. ``bootstrap=None`` trusts the ``root.json`` already there.

    ``updater_class`` only changes how the updater stores what it trusted (the
    conformance adapter keeps a flat ``root.json``), never what it decides."""
    ensure_private_dir(metadata_dir)
    if bootstrap is not None:
        check_metadata(bootstrap, "the trusted root")
    return updater_class(
        metadata_dir=str(metadata_dir),
        metadata_base_url=metadata_url,
        target_dir=None if target_dir is None else str(target_dir),
        target_base_url=target_base_url,
        fetcher=GuardedFetcher.around(fetcher),
        config=UPDATER_CONFIG,
        bootstrap=bootstrap,
    )


def decide_target(updater: Updater, metadata_dir: Path, name: str) -> TargetDecision:
    """Whether the target ``name`` is signed, and by which role: the one decision
    that ``trustkit verify``, the gate and the conformance adapter share.

    python-tuf decides (``get_targetinfo``: top-level metadata refreshed, then a
    pre-order walk of the delegations whose paths match, each role verified against
    its delegator and snapshot, at most ``max_delegations`` roles). python-tuf names
    no signer, so the same walk is replayed over the files the updater has just
    persisted for the roles it visited (exactly the bytes it verified): it must reach
    the same target, else the lookup is refused. A walk cut short by the bound is
    refused too: a tag is never reported unsigned because its signer lies too deep.

    A lookup that ends in a hash bin never published (not in snapshot) means the tag
    is not signed: trustkit publishes no empty bins, and a bin is terminating, so
    nothing is looked at after it. One that reaches a signer role delegated but not
    published yet is refused (:class:`UnpublishedSignerError`), as TUF requires.
    """
    try:
        target = updater.get_targetinfo(name)
    except exceptions.RepositoryError as error:
        if "is not part of snapshot" not in str(error):
            raise
        return _in_unpublished_bin(metadata_dir, name, error)
    walk = _walk(name, lambda role: _persisted_targets(metadata_dir, role), MAX_DELEGATIONS)
    if walk.cut_short:
        raise UnsafeMetadataError(
            f"looking up {name} visits more than {MAX_DELEGATIONS} delegated roles; "
            "refusing delegations this deep or wide (the metadata is hostile or broken)"
        )
    if walk.target != target:
        raise UnsafeMetadataError(
            f"the metadata stored for {name} changed while it was being verified"
        )
    return TargetDecision(name, target, walk.signer, walk.visited)


@dataclass
class _Walk:
    target: TargetFile | None = None
    signer: str | None = None
    visited: dict[str, Targets] = field(default_factory=dict)
    cut_short: bool = False


def _walk(name: str, load: Callable[[str], Targets | None], bound: int) -> _Walk:
    """TUF's lookup order (python-tuf's ``_preorder_depth_first_walk``, bound included):
    pre-order depth first through the delegations whose paths match ``name``, stopping
    at a terminating one. ``load`` gives a role's metadata, or None for a role that
    holds nothing here (it is skipped)."""
    walk = _Walk()
    to_visit = ["targets"]
    seen: set[str] = set()
    while len(seen) <= bound and to_visit:
        role = to_visit.pop()
        if role in seen:
            continue
        metadata = load(role)
        if metadata is None:
            seen.add(role)
            continue
        walk.visited[role] = metadata
        found = metadata.targets.get(name)
        if found is not None:
            walk.target, walk.signer = found, role
            return walk
        seen.add(role)
        children: list[str] = []
        if metadata.delegations is not None:
            for child, terminating in metadata.delegations.get_roles_for_target(name):
                children.append(child)
                if terminating:
                    to_visit.clear()
                    break
        to_visit.extend(reversed(children))
    walk.cut_short = bool(to_visit)
    return walk


def _persisted_targets(metadata_dir: Path, role: str) -> Targets:
    path = metadata_dir / f"{quote(role, safe='')}.json"
    data = path.read_bytes()
    check_metadata(data, f"the stored {role}")
    return Metadata[Targets].from_bytes(data).signed


def _in_unpublished_bin(
    metadata_dir: Path, name: str, error: exceptions.RepositoryError
) -> TargetDecision:
    """The decision when python-tuf refused a lookup that reached a role missing from
    snapshot: not signed if that role is a hash bin, else python-tuf's refusal."""
    snapshot = Metadata[Snapshot].from_file(str(metadata_dir / "snapshot.json")).signed
    visited: dict[str, Targets] = {}

    def load(role: str) -> Targets | None:
        if f"{role}.json" not in snapshot.meta:
            raise _Unpublished(role)
        visited[role] = metadata = _persisted_targets(metadata_dir, role)
        return metadata

    try:
        _walk(name, load, MAX_DELEGATIONS)
    except _Unpublished as unpublished:
        if any(
            (bins := bins_of(metadata)) is not None and bins.is_delegated_role(unpublished.role)
            for metadata in visited.values()
        ):
            return TargetDecision(name, None, None, visited)
        raise UnpublishedSignerError(
            unpublished.role,
            f"the signer role {unpublished.role} is delegated but not published yet, "
            f"and looking up {name} needs it; its key holders must publish it "
            "(trustkit publish) or the owner remove it (trustkit signer remove)",
        ) from None
    raise error


class UnpublishedSignerError(UnsafeMetadataError):
    """A lookup reached a signer role that is delegated but not in snapshot."""

    def __init__(self, role: str, message: str) -> None:
        super().__init__(message)
        self.role = role


class _Unpublished(Exception):
    def __init__(self, role: str) -> None:
        super().__init__(role)
        self.role = role


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
    # The tags verified by name, as decide_target decided them.
    decided: dict[str, TargetDecision] = field(default_factory=dict)

    @property
    def bins(self) -> SuccinctRoles | None:
        """The hash bins of the repository, if it has them."""
        return bins_of(self.delegated.get(BINS_ROLE))

    @property
    def complete(self) -> bool:
        """Whether every role that signs tags was loaded (so listings are whole)."""
        return self.bins_for is None or self.bins is None

    def lookup(self, name: str) -> tuple[TargetFile, str] | None:
        """The target ``name`` and the role that signed it, in TUF's order of trust.

        A tag verified by name (``tags``) was decided by :func:`decide_target`; any
        other name is looked up the same way (the same bounded walk) over the roles
        loaded for a listing."""
        decision = self.decided.get(name)
        if decision is not None:
            if decision.target is None or decision.signer is None:
                return None
            return decision.target, decision.signer

        def load(role: str) -> Targets | None:
            metadata = self.targets if role == "targets" else self.delegated.get(role)
            if metadata is None and self._unloaded_bin(role, name):
                raise RuntimeError(f"the bin {role} of {name} was not loaded")
            return metadata  # None: an unpublished signer role holds nothing

        walk = _walk(name, load, MAX_DELEGATIONS)
        if walk.target is None or walk.signer is None:
            return None
        return walk.target, walk.signer

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


# One verification (the root chain, timestamp, snapshot, targets and bins) must finish
# within this many whole-request deadlines, however many files it needs.
VERIFY_WINDOW = 4


class Verifier:
    """Runs the TUF client workflow for one repository at a time."""

    def __init__(
        self,
        settings: ClientSettings,
        fetcher: FetcherInterface,
        first_use: Callable[[str, bytes], None] | None = None,
    ) -> None:
        self._settings = settings
        self._fetcher = fetcher
        # Called with a repository's first root before it is trusted (the host
        # policy's declared anchors); raises to refuse.
        self._first_use_check = first_use

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

    def _download_window(self) -> AbstractContextManager[None]:
        """All the downloads of one verification end within VERIFY_WINDOW deadlines."""
        window = getattr(self._fetcher, "window", None)
        deadline = getattr(self._fetcher, "deadline", None)
        if window is None or deadline is None:
            return nullcontext()
        result: AbstractContextManager[None] = window(deadline * VERIFY_WINDOW)
        return result

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

        With ``tags`` (what a host verifies), each tag is decided by
        :func:`decide_target` (python-tuf's lookup, bounded), and of the hash bins of
        a repository that has them only those holding ``tags`` are loaded: a host
        looking one tag up downloads one bin. Every signer role is verified either way.

        Without ``tags`` every role is loaded (listings, ``inspect``, key holders).

        ``allow_expired`` is for a key holder renewing metadata that already expired:
        every check applies (signatures, thresholds, versions, hashes) except expiry.
        Hosts never use it.
        """
        wanted = None if tags is None else frozenset(tags)
        with self._exclusive(gun), self._download_window():
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
        self,
        gun: str,
        allow_expired: bool = False,
        tags: frozenset[str] | None = None,
    ) -> TrustedRepository:
        directory = self._settings.trust_dir(gun)
        first_use = not self.has_anchor(gun)
        try:
            if first_use:
                updater = self._first_use(gun, directory)
            else:
                updater = self._updater(gun, directory, None)
            if allow_expired:
                # python-tuf has no switch for this (UpdaterConfig has no clock): its
                # trusted set compares every expiry with this reference time, so an
                # early one passes them all. Only key holders renewing use it.
                updater._trusted_set.reference_time = _BEFORE_ANY_EXPIRY
            updater.refresh()
            trusted = self._read_trusted(gun, directory, first_use)
            if tags is not None:
                return self._with_decided_tags(trusted, updater, directory, tags)
            return self._with_signer_roles(trusted, updater, directory, tags)
        except exceptions.RepositoryError as error:
            if first_use:
                shutil.rmtree(directory, ignore_errors=True)
            raise self._explain(gun, error) from None
        except exceptions.DownloadError as error:
            if first_use:
                shutil.rmtree(directory, ignore_errors=True)
            raise self._explain_download(gun, error, first_use) from None

    def _with_decided_tags(
        self,
        trusted: TrustedRepository,
        updater: Updater,
        directory: Path,
        tags: frozenset[str],
    ) -> TrustedRepository:
        """Each tag decided by :func:`decide_target`; and, as before, every signer
        role verified too (a tampered role anywhere fails the repository as a whole),
        with the hash bins of ``tags`` only."""
        try:
            decided = {tag: decide_target(updater, directory, tag) for tag in sorted(tags)}
        except UnpublishedSignerError:
            # trustkit lets an owner delegate to a signer before the signer publishes
            # (its role holds nothing until then); python-tuf's lookup cannot step over
            # such a role, so these tags are looked up in the loaded roles by the same
            # bounded walk.
            decided = {}
        loaded = self._with_signer_roles(trusted, updater, directory, tags)
        return replace(loaded, decided=decided)

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
        queue: list[tuple[str, Targets, int]] = [("targets", trusted.targets, 0)]
        while queue:
            parent, metadata, depth = queue.pop(0)
            if metadata.delegations is None:
                continue
            if depth >= MAX_DELEGATIONS:
                raise UnsafeMetadataError(
                    f"the delegations of {trusted.gun} are more than {MAX_DELEGATIONS} "
                    "roles deep; refusing them (the metadata is hostile or broken)"
                )
            succinct = metadata.delegations.succinct_roles
            if succinct is not None:
                # The bins published, from snapshot (never 2**bit_length names).
                published = (
                    name.removesuffix(".json") for name in snapshot.meta if name.endswith(".json")
                )
                wanted = sorted(
                    {name for name in published if succinct.is_delegated_role(name)}
                    if tags is None
                    else {succinct.get_role_for_target(tag) for tag in tags}
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
                # python-tuf offers no public call that loads one delegated role (its
                # lookup loads only the roles one target path leads to): a listing of
                # every tag, and a publisher's edit, need them all.
                child = updater._load_targets(name, parent)
                delegated[name] = child
                queue.append((name, child, depth + 1))
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
                hint=f"its publisher can sign it (trustkit init {gun}); to run it unsigned "
                'on this host, give it a rule with trust = "unsigned-ok" in the host policy '
                "(/etc/trustkit/policy.toml)",
            ) from None
        if self._first_use_check is not None:
            self._first_use_check(gun, root_bytes)
        ensure_private_dir(directory)
        return self._updater(gun, directory, root_bytes)

    def _updater(self, gun: str, directory: Path, bootstrap: bytes | None) -> Updater:
        return build_updater(
            directory, self._settings.metadata_url(gun), self._fetcher, bootstrap=bootstrap
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
