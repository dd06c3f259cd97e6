"""Republish a verified Notary repository as a trustkit repository.

Every tag keeps its digest and size (its exact hashes and length); every delegation
directly under ``targets`` (``targets/releases``, Docker's ``targets/<signer>``) becomes
a trustkit signer with the same public keys, paths and threshold, so its holders keep
signing. A tag a delegation signed goes into that signer's role when this keystore
holds the signer's key, and under targets otherwise (the owner vouches for it, having
verified it in Notary). Running again changes only what differs: it is idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from securesystemslib.signer import Key
from tuf.api.metadata import TargetFile, Targets

from client.changelist import Change
from client.lifecycle import Lifecycle, validate_signer_name
from client.publisher import Publisher
from client.verify import TrustedRepository
from migrate.notary import NotaryDelegation, NotaryRepository, NotaryTarget
from trustkit.errors import UsageError

__all__ = ["MigrationPlan", "SignerPlan", "apply_plan", "plan_migration"]

TARGETS = "targets"


@dataclass(frozen=True)
class SignerPlan:
    name: str  # the trustkit signer: Notary's targets/NAME
    notary_role: str
    keys: tuple[Key, ...]
    paths: tuple[str, ...]
    threshold: int
    exists: bool  # already a signer of the trustkit repository


@dataclass
class MigrationPlan:
    gun: str
    new_repository: bool
    signers: list[SignerPlan] = field(default_factory=list)
    # trustkit role -> the changes to publish in it
    changes: dict[str, list[Change]] = field(default_factory=dict)
    unchanged: int = 0
    under_targets: dict[str, int] = field(default_factory=dict)  # Notary role -> tags
    notes: list[str] = field(default_factory=list)
    tags: dict[str, tuple[str, str]] = field(default_factory=dict)  # tag -> (digest, role)

    @property
    def to_publish(self) -> int:
        return sum(len(changes) for changes in self.changes.values())


def _signer_name(notary_role: str) -> str | None:
    """``targets/releases`` -> ``releases``; deeper delegations have no trustkit signer."""
    rest = notary_role.removeprefix(f"{TARGETS}/")
    if rest == notary_role or "/" in rest:
        return None
    try:
        return validate_signer_name(rest)
    except UsageError:
        return None


def _tuf_paths(delegation: NotaryDelegation) -> tuple[str, ...]:
    """Notary paths are plain prefixes (``""`` is everything); TUF's are patterns."""
    return tuple(f"{prefix}*" for prefix in delegation.paths) or ("*",)


def _target_file(target: NotaryTarget) -> TargetFile:
    extra: dict[str, Any] = {"custom": target.custom} if target.custom is not None else {}
    return TargetFile(target.length, dict(target.hashes), target.name, extra)


def plan_migration(
    notary: NotaryRepository, trusted: TrustedRepository | None, local_keyids: set[str]
) -> MigrationPlan:
    """What republishing ``notary`` into the trustkit repository (``trusted``, or None if
    it does not exist yet) would change, given the key ids this keystore holds."""
    plan = MigrationPlan(notary.gun, trusted is None)
    existing = trusted.targets.delegations.roles if trusted and trusted.targets.delegations else {}
    signers: dict[str, str] = {}  # Notary role -> trustkit signer that will hold its tags
    for role_name, delegation in notary.delegations.items():
        name = _signer_name(role_name)
        keys = tuple(key for key in delegation.sslib_keys if key is not None)
        if name is None:
            plan.notes.append(f"{role_name}: a nested delegation; its tags go under targets")
            continue
        if not keys:
            plan.notes.append(f"{role_name}: no key TUF can use; its tags go under targets")
            continue
        threshold = min(delegation.threshold, len(keys))
        exists = name in (existing or {})
        paths = _tuf_paths(delegation)
        plan.signers.append(SignerPlan(name, role_name, keys, paths, threshold, exists))
        if len({key.keyid for key in keys} & local_keyids) >= threshold:
            signers[role_name] = name
    for tag, target in sorted(notary.targets.items()):
        if target.sha256 is None:
            plan.notes.append(f"{tag}: signed with no sha256; not carried over")
            continue
        role = signers.get(target.role, TARGETS)
        if target.role != TARGETS and role == TARGETS:
            plan.under_targets[target.role] = plan.under_targets.get(target.role, 0) + 1
        plan.tags[tag] = (f"sha256:{target.sha256}", role)
        wanted = _target_file(target)
        current = _current(trusted, role, tag)
        if current is not None and current.to_dict() == wanted.to_dict():
            plan.unchanged += 1
            continue
        plan.changes.setdefault(role, []).append(Change.add(wanted))
        if role != TARGETS and _current(trusted, TARGETS, tag) is not None:
            # Carried under targets on an earlier run, before the signer's key was here:
            # under targets it would shadow the signer's own.
            plan.changes.setdefault(TARGETS, []).append(Change.remove(tag))
    return plan


def _current(trusted: TrustedRepository | None, role: str, tag: str) -> TargetFile | None:
    if trusted is None:
        return None
    if role == TARGETS and trusted.bins is not None:  # the tags targets signs are in bins
        role = trusted.bins.get_role_for_target(tag)
    metadata: Targets | None = trusted.targets if role == TARGETS else trusted.delegated.get(role)
    return metadata.targets.get(tag) if metadata is not None else None


def apply_plan(plan: MigrationPlan, publisher: Publisher, lifecycle: Lifecycle) -> dict[str, int]:
    """Make the trustkit repository what the plan says: create it, add the signers it
    lacks, publish the tags that differ. Returns role -> version published."""
    published: dict[str, int] = {}
    if plan.new_repository:
        publisher.init(plan.gun)
    for signer in plan.signers:
        if not signer.exists:
            lifecycle.add_signer(
                plan.gun,
                signer.name,
                list(signer.keys),
                list(signer.paths),
                signer.threshold,
                terminating=False,
            )
    # Signers first: targets may then drop a tag a signer took, with no gap between.
    for role in sorted(plan.changes, key=lambda name: name == TARGETS):
        result = publisher.publish(plan.gun, plan.changes[role], signer=role)
        published[role] = result.targets_version
    return published
