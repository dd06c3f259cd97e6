"""python-tuf's updater as trustkit builds it, and the one decision on a target.

:func:`build_updater` is the only way trustkit makes python-tuf's ``Updater``:
trustkit's limits (``UPDATER_CONFIG``) and every download checked by
:class:`client.metadata_guard.GuardedFetcher` (one key under two key ids, absurd
hash-bin counts).

Whether a target is signed is decided by python-tuf's public ``Updater.get_targetinfo``
(its pre-order walk, bounded by ``UpdaterConfig.max_delegations``), through
:func:`decide_target` (roles as the updater persisted them: ``trustkit verify``, the
gate, the conformance adapter) or :func:`decide_loaded` (roles the updater already
loaded: listings and the agent). python-tuf names no signer, so the same walk is
replayed over the verified roles to name it; it must reach the same target.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from tuf.api import exceptions
from tuf.api.metadata import Metadata, Snapshot, TargetFile, Targets
from tuf.ngclient import FetcherInterface, Updater, UpdaterConfig

from client.metadata_guard import GuardedFetcher, UnsafeMetadataError, check_metadata
from client.tuf_internals import is_unpublished_role_error
from keys.files import ensure_private_dir
from trustkit.bins import bins_of

__all__ = [
    "MAX_DELEGATIONS",
    "UPDATER_CONFIG",
    "RoleLoader",
    "TargetDecision",
    "UnpublishedSignerError",
    "Walk",
    "build_updater",
    "decide_loaded",
    "decide_target",
    "walk",
]

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

# A role's verified metadata, or None for a role that holds nothing here (skipped).
RoleLoader = Callable[[str], Targets | None]


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
        if not is_unpublished_role_error(error):
            raise
        return _in_unpublished_bin(metadata_dir, name, error)
    return _named_signer(name, target, lambda role: _persisted_targets(metadata_dir, role))


def decide_loaded(updater: Updater, name: str, load: RoleLoader) -> TargetDecision:
    """:func:`decide_target` for a repository whose every published role the updater
    has loaded already (``load`` gives each, as verified; None for a delegated role not
    published yet): python-tuf decides, the replay over ``load`` names the signer.

    trustkit lets an owner delegate to a signer before the signer publishes: its role
    holds nothing until then. python-tuf's lookup cannot step over such a role (TUF
    refuses a delegated role missing from snapshot), so a lookup that reaches one is
    decided by the same bounded walk over the verified roles, skipping it. This is the
    only decision python-tuf does not make itself."""
    try:
        target = updater.get_targetinfo(name)
    except exceptions.RepositoryError as error:
        if not is_unpublished_role_error(error):
            raise
        found = _bounded_walk(name, load)
        return TargetDecision(name, found.target, found.signer, found.visited)
    return _named_signer(name, target, load)


def _named_signer(name: str, target: TargetFile | None, load: RoleLoader) -> TargetDecision:
    """python-tuf's ``target`` for ``name``, with the role that signed it (the replay)."""
    found = _bounded_walk(name, load)
    if found.target != target:
        raise UnsafeMetadataError(
            f"the metadata stored for {name} changed while it was being verified"
        )
    return TargetDecision(name, target, found.signer, found.visited)


def _bounded_walk(name: str, load: RoleLoader) -> Walk:
    """:func:`walk`, refused when the bound cut it short: a tag is never reported
    unsigned because its signer lies too deep."""
    found = walk(name, load, MAX_DELEGATIONS)
    if found.cut_short:
        raise UnsafeMetadataError(
            f"looking up {name} visits more than {MAX_DELEGATIONS} delegated roles; "
            "refusing delegations this deep or wide (the metadata is hostile or broken)"
        )
    return found


@dataclass
class Walk:
    """Where a lookup ended: the target and its signer (None: not found), every role
    loaded on the way, and whether the bound cut it short."""

    target: TargetFile | None = None
    signer: str | None = None
    visited: dict[str, Targets] = field(default_factory=dict)
    cut_short: bool = False


def walk(name: str, load: RoleLoader, bound: int) -> Walk:
    """TUF's lookup order (python-tuf's ``_preorder_depth_first_walk``, bound included):
    pre-order depth first through the delegations whose paths match ``name``, stopping
    at a terminating one. ``load`` gives a role's metadata, or None for a role that
    holds nothing here (it is skipped). It only names the signer of what python-tuf
    found (``tests/test_tuf_internals.py`` checks both walk alike)."""
    result = Walk()
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
        result.visited[role] = metadata
        found = metadata.targets.get(name)
        if found is not None:
            result.target, result.signer = found, role
            return result
        seen.add(role)
        children: list[str] = []
        if metadata.delegations is not None:
            for child, terminating in metadata.delegations.get_roles_for_target(name):
                children.append(child)
                if terminating:
                    to_visit.clear()
                    break
        to_visit.extend(reversed(children))
    result.cut_short = bool(to_visit)
    return result


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
        walk(name, load, MAX_DELEGATIONS)
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
