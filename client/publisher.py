"""Publishing: create a repository, and apply staged changes to its targets.

``init`` makes the root and targets keys, asks the server for its online keys, and
uploads root v1 and targets v1. ``publish`` verifies the repository as a host would,
applies the changelist to the verified targets, signs and uploads; if someone else
published first (409) it starts again from the new state. Nothing is left behind in
the keystore or on the server when an operation fails.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from securesystemslib.signer import Signer
from tuf.api.metadata import Targets

from client.changelist import AwaitingApproval, Change, Changelist, apply_changes
from client.holders import KeyHolder
from client.pending import PendingChange
from client.verify import TrustedRepository
from keys.keystore import KeyRecord
from trustkit.bins import (
    AUTO_BINS_AT,
    BINS_ROLE,
    bin_count_for,
    grown_bin_count,
    is_bin_name,
    lay_out_bins,
)
from trustkit.errors import (
    KeystoreError,
    PublishConflictError,
    ServerRefusedError,
    UsageError,
)
from trustkit.expiry import utc_now
from trustkit.metadata import ONLINE_ROLES, new_root, new_targets

__all__ = [
    "InitResult",
    "KeyHolder",
    "NothingToPublishError",
    "PublishResult",
    "Publisher",
    "reset",
    "stage_or_publish",
]

MAX_ATTEMPTS = 20


class NothingToPublishError(UsageError):
    """No staged change and no change of this machine's waiting for co-signers. Not a
    failure for ``trustkit publish`` itself (as with Notary, it exits 0 saying so)."""


@dataclass(frozen=True)
class InitResult:
    gun: str
    keys: dict[str, list[str]]


@dataclass(frozen=True)
class PublishResult:
    gun: str
    targets_version: int  # of the role published: targets or a signer's role
    attempts: int
    changes: int
    role: str = "targets"
    pending: PendingChange | None = None  # kept by the server until co-signers approve
    applied: tuple[Change, ...] = ()  # every change in the upload, folded ones first
    folded: int = 0  # changes of an earlier pending upload of this machine, sent again
    replaced: str | None = None  # that pending change, withdrawn (None if already gone)
    roles: tuple[str, ...] = ()  # every role uploaded
    lapsed: int = 0  # changes of a lapsed pending upload, kept aside and not sent


class Publisher(KeyHolder):
    def init(self, gun: str, keytype: str = "ed25519", bins: int | None = None) -> InitResult:
        """Create ``gun``: root and targets keys here, online keys on the server; with
        ``bins``, targets delegates its tags to that many hash bins from the start."""
        if self._api.has_metadata(gun, "1.root.json"):
            raise UsageError(
                f"{gun} already exists on {self._settings.server_url}",
                hint="sign tags with trustkit sign; to start over, delete it on the server",
            )
        online = {role: self._api.public_key(gun, role) for role in ONLINE_ROLES}
        created: list[KeyRecord] = []
        records: dict[str, KeyRecord] = {}
        try:
            for role in ("root", "targets"):
                existing = self._keystore.find(gun, role)
                if existing:  # left by an earlier init that the server never accepted
                    records[role] = existing[0]
                else:
                    records[role] = self._keystore.generate(gun, role, self._passphrases, keytype)
                    created.append(records[role])
            root_record, targets_record = records["root"], records["targets"]
            expiry = self._settings.expiry
            now = utc_now()
            root = new_root(
                {
                    "root": [root_record.public],
                    "targets": [targets_record.public],
                    **{role: [key] for role, key in online.items()},
                },
                expiry.expires("root", now),
            )
            root_bytes = self._signed_bytes(
                root, self._keystore.signers(gun, "root", self._passphrases)
            )
            targets = new_targets(expiry.expires("targets", now))
            targets_signers = self._keystore.signers(gun, "targets", self._passphrases)
            upload = {"root": root_bytes}
            if bins is not None:
                bins_role = lay_out_bins(
                    targets, [targets_record.public], 1, bins, expiry.expires(BINS_ROLE, now)
                )
                upload[BINS_ROLE] = self._signed_bytes(bins_role, targets_signers)
            upload["targets"] = self._signed_bytes(targets, targets_signers)
            self._api.upload(gun, upload)
        except BaseException:
            for record in created:
                self._keystore.remove(record)
            raise
        self._verifier.pin(gun, root_bytes)
        return InitResult(gun, {"root": [root_record.keyid], "targets": [targets_record.keyid]})

    def publish(
        self,
        gun: str,
        changes: list[Change],
        signer: str | None = None,
        awaiting: AwaitingApproval | None = None,
    ) -> PublishResult:
        """Apply ``changes`` to the role this keystore may sign them in, and upload it.

        That role is ``signer`` when given; otherwise targets when its key is here,
        else the first signer role whose key is here and whose paths cover every tag.
        In a repository with hash bins, the targets keys sign each change into its bin,
        and only the bins changed go up. A repository without bins whose targets would
        grow past ``AUTO_BINS_AT`` tags moves them into bins in the same upload.
        The changes of ``awaiting`` (this machine's upload still waiting for co-signers)
        that are not published yet go first, and the new upload replaces it.
        """
        if not changes and awaiting is None:
            raise NothingToPublishError(f"nothing to publish for {gun}: the changelist is empty")
        role: str | None = None
        signers: list[Signer] = []
        folded: list[Change] = []
        paths: set[str] | None = {
            c.path for c in [*(awaiting.changes if awaiting else []), *changes]
        }
        for attempt in range(1, MAX_ATTEMPTS + 1):
            trusted = self._verifier.trusted_repository(gun, tags=paths)
            if role is None:
                if awaiting is not None:
                    folded = [c for c in awaiting.changes if not _published(c, trusted)]
                if not folded + changes:
                    raise NothingToPublishError(
                        f"nothing to publish for {gun}: the changelist is empty"
                    )
                role, signers = self._signing_role(gun, trusted, folded + changes, signer)
            try:
                changed = self._changed_roles(trusted, role, folded + changes)
            except _EveryBinNeeded:
                paths = None
                trusted = self._verifier.trusted_repository(gun)
                changed = self._changed_roles(trusted, role, folded + changes)
            try:
                upload = {name: self._signed_bytes(md, signers) for name, md in changed.items()}
                pending = self._upload(gun, upload, trusted)
            except PublishConflictError:
                if attempt == MAX_ATTEMPTS:
                    raise
                # Exponential backoff with full jitter: many publishers at once spread out.
                ceiling = min(2.0, 0.05 * 2**attempt)
                time.sleep(random.uniform(0, ceiling))  # noqa: S311 - jitter only
                continue
            replaced = self._withdraw_replaced(gun, awaiting, pending, signers)
            shown = role if role in changed else next(iter(changed))
            return PublishResult(
                gun,
                changed[shown].version,
                attempt,
                len(changes),
                shown,
                pending,
                tuple(folded + changes),
                len(folded),
                replaced,
                tuple(changed),
            )
        raise AssertionError("unreachable")

    def _changed_roles(
        self, trusted: TrustedRepository, role: str, changes: list[Change]
    ) -> dict[str, Targets]:
        """Every role the changes go into, changed, at its next version and expiry."""
        bins = trusted.bins
        if role == "targets" and bins is not None:
            by_bin: dict[str, list[Change]] = {}
            for change in changes:
                by_bin.setdefault(bins.get_role_for_target(change.path), []).append(change)
            changed = {}
            for name, own in by_bin.items():
                metadata = self._role_metadata(trusted, name)
                apply_changes(metadata, own)
                changed[name] = metadata
            grown = grown_bin_count(bins, (len(m.targets) for m in changed.values()))
            if grown is not None and self._settings.auto_bins:
                # Outgrown four times over: every tag moves into more bins, once.
                if not trusted.complete:
                    raise _EveryBinNeeded
                with_changed = replace(trusted, delegated={**trusted.delegated, **changed})
                return self.into_bins(with_changed, grown)
        else:
            metadata = self._role_metadata(trusted, role)
            apply_changes(metadata, changes)
            changed = {role: metadata}
            if (
                role == "targets"
                and self._settings.auto_bins
                and len(metadata.targets) > AUTO_BINS_AT
            ):
                return self.into_bins(trusted, bin_count_for(len(metadata.targets)), metadata)
        for name, metadata in changed.items():
            metadata.version += 1
            metadata.expires = self._settings.expiry.expires(name)
        return changed

    def rebin(
        self, gun: str, count: int | None = None, signed: Callable[[int, int], None] | None = None
    ) -> PublishResult:
        """Move every tag targets and the bins sign into ``count`` hash bins (chosen
        from the number of tags when None), in one upload signed by the targets keys;
        ``signed(done, total)`` after each role is signed (a progress bar's)."""
        trusted = self._verifier.trusted_repository(gun)
        keyids = trusted.root.roles["targets"].keyids
        signers = self._local_signers(keyids, "targets")
        if count is None:
            count = bin_count_for(len(trusted.signed_tags()))
        changed = self.into_bins(trusted, count)
        upload = {}
        for name, metadata in changed.items():
            upload[name] = self._signed_bytes(metadata, signers)
            if signed is not None:
                signed(len(upload), len(changed))
        pending = self._upload(gun, upload, trusted)
        tags = sum(len(m.targets) for name, m in changed.items() if is_bin_name(name))
        return PublishResult(
            gun, changed["targets"].version, 1, tags, "targets", pending, roles=tuple(changed)
        )

    def still_pending(self, gun: str, change_id: str) -> bool:
        """Whether the server still keeps pending change ``change_id`` for co-signers."""
        return any(change.get("id") == change_id for change in self._api.pending(gun))

    def unpublished(self, gun: str, changes: list[Change]) -> list[Change]:
        """The changes hosts do not see yet (a lapsed upload may have been approved)."""
        if not changes:
            return []
        trusted = self._verifier.trusted_repository(gun, tags={c.path for c in changes})
        return [change for change in changes if not _published(change, trusted)]

    def _withdraw_replaced(
        self,
        gun: str,
        awaiting: AwaitingApproval | None,
        pending: PendingChange | None,
        signers: list[Signer],
    ) -> str | None:
        """Withdraw the earlier pending upload the new one carries the changes of (signed
        by the keys that signed both); its id, or None if it was gone already
        (published, expired or withdrawn)."""
        if awaiting is None or (pending is not None and pending.id == awaiting.id):
            return None
        try:
            self._api.withdraw(gun, awaiting.id, signers)
        except ServerRefusedError as refusal:
            if refusal.status == 404:
                return None
            raise
        return awaiting.id

    def _role_metadata(self, trusted: TrustedRepository, role: str) -> Targets:
        """A copy of ``role`` to change (a new one if not published yet)."""
        if role == "targets":
            return trusted.edit_targets()
        published = trusted.edit_role(role)
        if published is not None:
            # Tags outside the role's paths (left from a signer of the same name that was
            # removed and added again with other paths) count for no host, and the server
            # refuses a role that holds them: they go.
            delegations = trusted.targets.delegations
            delegation = delegations.roles.get(role) if delegations and delegations.roles else None
            if delegation is not None:
                published.targets = {
                    path: target
                    for path, target in published.targets.items()
                    if delegation.is_delegated_path(path)
                }
            return published
        first = new_targets(self._settings.expiry.expires(role))
        # The signer's first publish makes version 1, or the next after a removed
        # signer of the same name.
        first.version = trusted.snapshot_versions.get(role, 0)
        return first

    def _signing_role(
        self,
        gun: str,
        trusted: TrustedRepository,
        changes: list[Change],
        wanted: str | None,
    ) -> tuple[str, list[Signer]]:
        paths = [change.path for change in changes]
        targets_keys = trusted.root.roles["targets"].keyids
        if wanted == "targets" or (wanted is None and self._local_records(targets_keys)):
            # Fewer keys here than the threshold: the server keeps it pending for the
            # other holders to approve.
            return "targets", self._local_signers(targets_keys, "targets")
        delegations = trusted.targets.delegations
        roles = list(delegations.roles.values()) if delegations and delegations.roles else []
        roles = [role for role in roles if role.name != BINS_ROLE]  # signed as targets
        local = {record.keyid: record for record in self._keystore.records()}
        for role in roles:
            if wanted not in (None, role.name):
                continue
            mine = [local[keyid] for keyid in role.keyids if keyid in local]
            outside = [path for path in paths if not role.is_delegated_path(path)]
            if wanted is None and (not mine or outside):
                continue
            if outside:
                raise UsageError(
                    f"the signer {role.name} of {gun} may not sign {', '.join(outside)}",
                    hint=f"its paths are: {', '.join(role.paths or [])}",
                )
            if not mine:
                raise KeystoreError(
                    f"this keystore holds none of the keys of the signer {role.name} of {gun}",
                    hint="run this where one of its keys is, or import it (trustkit key import)",
                )
            return role.name, [self._keystore.signer(r, self._passphrases) for r in mine]
        if wanted is not None:
            raise UsageError(
                f"{gun} has no signer {wanted}", hint=f"see: trustkit signer list {gun}"
            )
        raise KeystoreError(
            f"this keystore holds no key that may sign {', '.join(paths)} in {gun}: neither "
            "the targets key nor a signer's key whose paths cover it",
            hint="run this where the key is, import it (trustkit key import), or ask the "
            "repository owner to add you: trustkit signer add",
        )


def stage_or_publish(
    publisher: Publisher | None,
    changelist: Changelist,
    gun: str,
    new_changes: list[Change],
    signer: str | None = None,
    *,
    resend: bool = False,
) -> PublishResult | None:
    """Add changes to the staged ones; publish them all unless ``publisher`` is None.

    The changelist on disk changes only on success: staged changes are saved only when
    not publishing, and cleared only once the server has accepted them. Changes of this
    machine's pending upload that lapsed on the server (a co-signer rejected or withdrew
    it, or it expired) are kept aside and never sent again unless ``resend``.
    """
    changes = changelist.load() + new_changes
    if publisher is None:
        changelist.save(changes)
        return None
    awaiting = changelist.load_awaiting()
    if awaiting is not None and not publisher.still_pending(gun, awaiting.id):
        lapsed = publisher.unpublished(gun, [*changelist.load_lapsed(), *awaiting.changes])
        changelist.save_lapsed(lapsed)
        changelist.clear_awaiting()
        awaiting = None
    lapsed = changelist.load_lapsed()
    if resend:
        changes = lapsed + changes
    result = publisher.publish(gun, changes, signer, awaiting)
    if result.pending is not None and result.pending.id is not None:
        changelist.save_awaiting(AwaitingApproval(result.pending.id, list(result.applied)))
    else:
        changelist.clear_awaiting()
    changelist.clear()
    if resend:
        changelist.clear_lapsed()
    return replace(result, lapsed=0 if resend else len(lapsed))


def reset(changelist: Changelist, tags: list[str]) -> int:
    """Drop staged and lapsed changes (of ``tags``, or all); the number dropped. The
    server is not asked: a pending change is withdrawn with approve --reject."""
    dropped = 0
    for load, save in (
        (changelist.load, changelist.save),
        (changelist.load_lapsed, changelist.save_lapsed),
    ):
        changes = load()
        kept = [c for c in changes if tags and c.path not in tags]
        dropped += len(changes) - len(kept)
        save(kept)
    if not changelist.load():
        changelist.clear()
    return dropped


def _published(change: Change, trusted: TrustedRepository) -> bool:
    """Whether hosts already see ``change``: the tag signed as it says, or gone."""
    found = trusted.lookup(change.path)
    if change.action == "remove":
        return found is None
    return found is not None and found[0].to_dict() == change.target


class _EveryBinNeeded(Exception):
    """Moving tags into more bins needs every bin: verify them all first."""
