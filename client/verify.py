"""Verification of a repository on a host, through python-tuf's ngclient updater.

The updater runs the whole TUF client workflow: walk the root chain from the root
this host trusts, then timestamp, snapshot and targets, checking signatures,
thresholds, versions (no rollback), hashes and lengths (no mix-and-match, no endless
data) and expiry (no freeze). Only then is a tag's digest returned.

The trust anchor of a repository is the root this host first trusted: pinned ahead
of time (``trustkit trust pin``) or taken on first use and recorded. A later root
that does not chain from it is refused.

One verifier: ``trustkit verify``/``resolve``/``pull``, the Docker gate, the agent and
the TUF conformance adapter (:mod:`client.conformance`) all build their updater with
:func:`client.lookup.build_updater` and have python-tuf's public
``Updater.get_targetinfo`` decide whether a target is signed
(:func:`client.lookup.decide_target`, :func:`client.lookup.decide_loaded`). The
:class:`~client.trusted.TrustedRepository` handed out answers only with those
decisions; the reaches into python-tuf's internals this needs are in
:mod:`client.tuf_internals`.
"""

from __future__ import annotations

import fcntl
import json
import shutil
from collections.abc import Callable, Collection, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tuf.api import exceptions
from tuf.api.metadata import Metadata, Root, Snapshot, Targets
from tuf.ngclient import FetcherInterface, Updater

from client.lookup import (
    MAX_DELEGATIONS,
    UPDATER_CONFIG,
    TargetDecision,
    UnpublishedSignerError,
    build_updater,
    decide_loaded,
    decide_target,
)
from client.metadata_guard import UnsafeMetadataError
from client.settings import ClientSettings
from client.trusted import RoleStatus, TrustedRepository
from client.tuf_internals import ignore_expiry, load_delegated_role
from client.verify_errors import explain_download, explain_refusal
from keys.files import ensure_private_dir
from trustkit.errors import (
    KeystoreError,
    NotFoundError,
    TrustkitError,
    UsageError,
    VerificationError,
)

# The verifier's parts, importable from here as before.
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

        Without ``tags`` every role is loaded (listings, ``inspect``, a digest
        reference, the agent, key holders) and every tag a role holds is decided by
        python-tuf too (:func:`client.lookup.decide_loaded`).

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
                ignore_expiry(updater)  # only key holders renewing metadata
            updater.refresh()
            trusted = self._read_trusted(gun, directory, first_use)
            if tags is not None:
                return self._with_decided_tags(trusted, updater, directory, tags)
            return _with_every_tag_decided(
                _with_signer_roles(trusted, updater, directory, None), updater
            )
        except exceptions.RepositoryError as error:
            if first_use:
                shutil.rmtree(directory, ignore_errors=True)
            raise self._explain(gun, error) from None
        except exceptions.DownloadError as error:
            if first_use:
                shutil.rmtree(directory, ignore_errors=True)
            raise self._explain_download(gun, error, first_use) from None

    @staticmethod
    def _with_decided_tags(
        trusted: TrustedRepository,
        updater: Updater,
        directory: Path,
        tags: frozenset[str],
    ) -> TrustedRepository:
        """Each tag decided by :func:`decide_target`; and, as before, every signer
        role verified too (a tampered role anywhere fails the repository as a whole),
        with the hash bins of ``tags`` only."""
        decided: dict[str, TargetDecision] = {}
        waiting: list[str] = []
        for tag in sorted(tags):
            try:
                decided[tag] = decide_target(updater, directory, tag)
            except UnpublishedSignerError:
                waiting.append(tag)  # decided once every published role is loaded
        loaded = _with_signer_roles(trusted, updater, directory, tags)
        load = _loaded_roles(loaded)
        for tag in waiting:
            decided[tag] = decide_loaded(updater, tag, load)
        return replace(loaded, decided=decided)

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
        return explain_refusal(gun, error, lambda: self._served_timestamp_expiry(gun))

    def _explain_download(
        self, gun: str, error: exceptions.DownloadError, first_use: bool = True
    ) -> TrustkitError:
        return explain_download(gun, error, self._settings.server_url, first_use)

    def _served_timestamp_expiry(self, gun: str) -> str | None:
        """When the served timestamp expired, for the message only (it is not trusted)."""
        url = f"{self._settings.metadata_url(gun)}timestamp.json"
        try:
            data = self._fetcher.download_bytes(url, UPDATER_CONFIG.timestamp_max_length)
            return str(json.loads(data)["signed"]["expires"])
        except (exceptions.DownloadError, ValueError, KeyError, TypeError):
            return None


def _loaded_roles(trusted: TrustedRepository) -> Callable[[str], Targets | None]:
    """The verified targets roles of ``trusted`` by name (None: not published)."""

    def load(role: str) -> Targets | None:
        return trusted.targets if role == "targets" else trusted.delegated.get(role)

    return load


def _with_every_tag_decided(trusted: TrustedRepository, updater: Updater) -> TrustedRepository:
    """``trusted`` (every role loaded) with each tag any role holds decided by
    python-tuf, as :func:`decide_target` decides a tag verified by name. A tag whose
    lookup trustkit refuses (past the delegation bound) is refused alone, with the
    words ``trustkit verify`` uses for it: the other tags stay usable, as they are
    by name."""
    names = set(trusted.targets.targets)
    for metadata in trusted.delegated.values():
        names.update(metadata.targets)
    load = _loaded_roles(trusted)
    decided: dict[str, TargetDecision] = {}
    refused: dict[str, TrustkitError] = {}
    for name in sorted(names):
        try:
            decided[name] = decide_loaded(updater, name, load)
        except UnsafeMetadataError as error:
            refused[name] = explain_refusal(trusted.gun, error, lambda: None)
    return replace(trusted, decided=decided, refused=refused, every_tag_decided=True)


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
        if metadata.delegations.succinct_roles is not None:
            for name, child in _load_bins(updater, parent, metadata, snapshot, tags, delegated):
                delegated[name] = child
                roles.append(RoleStatus(name, child.version, child.expires, []))
            continue  # bins delegate nothing further: they are not walked on
        for name in metadata.delegations.roles or {}:
            if name in delegated or name in unpublished:
                continue
            if f"{name}.json" not in snapshot.meta:
                unpublished.append(name)
                continue
            delegated[name] = child = load_delegated_role(updater, name, parent)
            queue.append((name, child, depth + 1))
            stored = Metadata[Targets].from_file(str(directory / f"{quote(name, safe='')}.json"))
            roles.append(RoleStatus(name, child.version, child.expires, sorted(stored.signatures)))
    versions = {name.removesuffix(".json"): m.version for name, m in snapshot.meta.items()}
    return replace(
        trusted,
        roles=roles,
        delegated=delegated,
        unpublished=tuple(unpublished),
        snapshot_versions=versions,
        bins_for=tags,
    )


def _load_bins(
    updater: Updater,
    parent: str,
    metadata: Targets,
    snapshot: Snapshot,
    tags: frozenset[str] | None,
    loaded: Collection[str],
) -> Iterator[tuple[str, Targets]]:
    """The published hash bins ``metadata`` delegates to, each verified: those holding
    ``tags`` (every published one when None) and not ``loaded`` already."""
    assert metadata.delegations is not None and metadata.delegations.succinct_roles is not None
    succinct = metadata.delegations.succinct_roles
    # The bins published, from snapshot (never 2**bit_length names).
    published = (name.removesuffix(".json") for name in snapshot.meta if name.endswith(".json"))
    wanted = sorted(
        {name for name in published if succinct.is_delegated_role(name)}
        if tags is None
        else {succinct.get_role_for_target(tag) for tag in tags}
    )
    for name in wanted:
        if f"{name}.json" in snapshot.meta and name not in loaded:
            yield name, load_delegated_role(updater, name, parent)
