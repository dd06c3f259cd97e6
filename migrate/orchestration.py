"""One migration, end to end: read a Notary repository and verify it as Notary does,
plan what republishing it here changes, and (unless a dry run) publish that.

``migrate_repository`` is the one call ``trustkit migrate notary`` makes per
repository; it prints nothing (``note`` hears what it is doing) and renders nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from migrate.notary import docker_trust_root, docker_trust_versions, read_notary_repository
from migrate.republish import MigrationPlan, apply_plan, plan_migration
from trustkit.errors import NotFoundError

if TYPE_CHECKING:
    from client.lifecycle import Lifecycle
    from client.publisher import Publisher
    from client.verify import Verifier

__all__ = ["MigrationOutcome", "MigrationTarget", "NotarySource", "migrate_repository"]


@dataclass(frozen=True)
class NotarySource:
    """Where a repository is read from, and how it is trusted."""

    url: str
    ca_file: str | None = None
    # asked only when the server is read (a prompt comes after the note saying so)
    credentials: Callable[[], tuple[str, str] | None] = lambda: None
    trust_dir: Path | None = None  # Docker's, whose roots pin each repository
    strict: bool = True  # False: skip a bad delegation as Notary's client does


@dataclass(frozen=True)
class MigrationTarget:
    """The trustkit side: its verifier, the publisher and lifecycle that write to it,
    and the key ids this keystore holds."""

    verifier: Verifier
    publisher: Callable[[], Publisher]
    lifecycle: Callable[[], Lifecycle]
    local_keyids: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class MigrationOutcome:
    gun: str
    root_source: str  # "pinned" or "first-use"
    plan: MigrationPlan
    dry_run: bool
    versions: dict[str, int]  # role -> version published
    seconds: float


def migrate_repository(
    gun: str,
    source: NotarySource,
    target: Callable[[], AbstractContextManager[MigrationTarget]],
    *,
    dry_run: bool = False,
    note: Callable[[str], None] = lambda text: None,
) -> MigrationOutcome:
    """Read ``gun`` from ``source``, verify it, and republish what differs into the
    trustkit repository ``target`` opens (nothing with ``dry_run``)."""
    pinned = docker_trust_root(gun, source.trust_dir)
    started = time.monotonic()
    note(f"reading {gun} from {source.url} and verifying it as Notary does")
    notary = read_notary_repository(
        source.url,
        gun,
        pinned_root=pinned,
        min_versions=docker_trust_versions(gun, source.trust_dir) if pinned else None,
        ca_file=source.ca_file,
        credentials=source.credentials(),
        strict=source.strict,
    )
    if notary.trusted_on_first_use:
        note(
            f"WARNING: no root of {gun} was pinned (none in Docker's trust directory), so "
            f"the root {source.url} served was trusted on first use. Compare its keys "
            "with what you expect before relying on this migration."
        )
    with target() as here:
        try:
            trusted = here.verifier.trusted_repository(gun)
        except NotFoundError:
            trusted = None
        plan = plan_migration(notary, trusted, here.local_keyids)
        published: dict[str, int] = {}
        if not dry_run and (
            plan.new_repository
            or plan.to_publish
            or any(not signer.exists for signer in plan.signers)
        ):
            note(f"publishing {plan.to_publish} tag change(s) of {gun}")
            published = apply_plan(plan, here.publisher(), here.lifecycle())
    return MigrationOutcome(
        gun, notary.root_source, plan, dry_run, published, time.monotonic() - started
    )
