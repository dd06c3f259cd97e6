"""A repository's metadata as this host verified it: read it, never edit it.

:class:`TrustedRepository` is what :class:`client.verify.Verifier` hands out after a
full, successful verification. Every tag it answers for was decided by python-tuf
(:mod:`client.lookup`). Key holders that change the repository take copies with the
``edit_*`` methods (python-tuf's ``tuf/repository`` ``edit()`` pattern): a publish
that fails or is refused leaves the verified repository as it was.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from tuf.api.metadata import Root, Snapshot, SuccinctRoles, TargetFile, Targets

from client.lookup import MAX_DELEGATIONS, TargetDecision, walk
from trustkit.bins import BINS_ROLE, bins_of
from trustkit.errors import NotFoundError, TrustkitError
from trustkit.metadata import ImageTarget, describe_target

__all__ = ["RoleStatus", "TrustedRepository"]


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

    The metadata here is what was verified, shared by every reader: change a copy
    (:meth:`edit_root`, :meth:`edit_targets`, :meth:`edit_role`,
    :meth:`edit_snapshot`), never these.
    """

    gun: str
    root: Root
    targets: Targets
    roles: list[RoleStatus]
    trusted_on_first_use: bool
    delegated: Mapping[str, Targets] = field(default_factory=dict)
    unpublished: tuple[str, ...] = ()
    # Version of every role in snapshot, including signer roles no longer delegated
    # (their names are taken: a role's versions only ever go up).
    snapshot_versions: Mapping[str, int] = field(default_factory=dict)
    snapshot: Snapshot | None = None
    bins_for: frozenset[str] | None = None
    # The tags python-tuf decided (client.lookup): those verified by name, or, with
    # every_tag_decided, every tag the repository holds (it was verified whole).
    decided: Mapping[str, TargetDecision] = field(default_factory=dict)
    every_tag_decided: bool = False
    # Tags whose lookup trustkit refuses (raised when they are looked up).
    refused: Mapping[str, TrustkitError] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("delegated", "snapshot_versions", "decided", "refused"):
            value = getattr(self, name)
            if not isinstance(value, MappingProxyType):
                object.__setattr__(self, name, MappingProxyType(dict(value)))

    def edit_root(self) -> Root:
        """A copy of root to change and sign."""
        return copy.deepcopy(self.root)

    def edit_targets(self) -> Targets:
        """A copy of targets to change and sign."""
        return copy.deepcopy(self.targets)

    def edit_snapshot(self) -> Snapshot | None:
        """A copy of snapshot to change and sign (None when not loaded)."""
        return copy.deepcopy(self.snapshot)

    def edit_role(self, role: str) -> Targets | None:
        """A copy of the targets or delegated role ``role`` (None: not published)."""
        if role == "targets":
            return self.edit_targets()
        published = self.delegated.get(role)
        return None if published is None else copy.deepcopy(published)

    @property
    def bins(self) -> SuccinctRoles | None:
        """The hash bins of the repository, if it has them."""
        return bins_of(self.delegated.get(BINS_ROLE))

    @property
    def complete(self) -> bool:
        """Whether every role that signs tags was loaded (so listings are whole)."""
        return self.bins_for is None or self.bins is None

    def lookup(self, name: str) -> tuple[TargetFile, str] | None:
        """The target ``name`` and the role that signed it, as python-tuf decided it.

        A repository verified whole decided every tag it holds. One verified for some
        tags decided those; any other name is looked up for listings only (the signed
        tags a refusal names), by the same bounded walk over the verified roles."""
        refusal = self.refused.get(name)
        if refusal is not None:
            raise refusal
        decision = self.decided.get(name)
        if decision is None and self.every_tag_decided:
            return None  # in no role: nothing signs it
        if decision is not None:
            if decision.target is None or decision.signer is None:
                return None
            return decision.target, decision.signer

        def load(role: str) -> Targets | None:
            metadata = self.targets if role == "targets" else self.delegated.get(role)
            if metadata is None and self._unloaded_bin(role, name):
                raise RuntimeError(f"the bin {role} of {name} was not loaded")
            return metadata  # None: an unpublished signer role holds nothing

        found = walk(name, load, MAX_DELEGATIONS)
        if found.target is None or found.signer is None:
            return None
        return found.target, found.signer

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
        names.difference_update(self.refused)
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
