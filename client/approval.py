"""Multi-signature approval: changes that wait for co-signers, and adding signatures.

A role whose threshold is more than one key is published in two steps: the first
key holder's upload is kept *pending* by the server (never served to hosts), and
``trustkit approve`` shows every pending change as its effect (tag: old digest -> new
digest, keys added and removed) and adds this keystore's signatures. The upload that
brings the last signature needed publishes it.

A change can also travel as a file, for key holders who never go online: ``approve
--export`` writes one, ``approve --file`` signs one offline, ``submit`` uploads it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from securesystemslib.signer import Signer
from tuf.api.metadata import Signed, Targets

from client.holders import KeyHolder
from client.pending import Need, PendingChange, pending_from
from client.review import describe_bins, describe_role
from client.verify import TrustedRepository, Verifier
from keys.files import write_private_file
from trustkit.bins import BINS_ROLE, is_bin_name
from trustkit.errors import KeystoreError, ServerRefusedError, UsageError
from trustkit.metadata import TOP_LEVEL_ROLES

__all__ = [
    "ApprovalResult",
    "ApprovalRound",
    "Approver",
    "Need",
    "PendingChange",
    "Prompter",
    "approve_file",
    "approve_pending",
    "describe_change",
    "pending_from",
    "read_change_file",
    "write_change_file",
]


@dataclass(frozen=True)
class ApprovalResult:
    change: PendingChange
    signed_with: list[str]
    versions: dict[str, int]  # what was published, empty while still pending
    still_pending: PendingChange | None


def read_change_file(path: Path, gun: str) -> PendingChange:
    try:
        data = json.loads(path.read_bytes())
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None
    except ValueError as error:
        raise UsageError(f"{path} is not JSON: {error}") from None
    if not isinstance(data, dict) or data.get("gun") != gun:
        raise UsageError(
            f"{path} holds a change for {data.get('gun') if isinstance(data, dict) else '?'}, "
            f"not {gun}"
        )
    return PendingChange.from_dict(gun, data, str(path))


def write_change_file(path: Path, change: PendingChange) -> None:
    """Replace ``path`` whole: a reader never sees half a change."""
    write_private_file(path, json.dumps(change.to_dict(), indent=2, sort_keys=True).encode())


def describe_change(change: PendingChange, trusted: TrustedRepository | None) -> list[str]:
    """What a pending change does, for the key holder asked to sign it: each role
    compared with what hosts trust now (``trusted``), or shown whole without it."""
    heading = f"pending change {change.id}" if change.id else "change"
    if change.expires:
        heading += f" (expires {change.expires.isoformat()})"
    lines = [f"{heading} to {change.gun}:"]
    bins = {role: m.signed for role, m in change.roles.items() if is_bin_name(role)}
    if bins:
        lines += describe_bins(bins, _trusted_bins(bins, change, trusted))
    for role, metadata in change.roles.items():
        if role not in bins:
            lines += describe_role(role, metadata.signed, _trusted_role(role, trusted))
    lines += [f"  {need.describe()}" for need in change.needs]
    return lines


def _trusted_role(role: str, trusted: TrustedRepository | None) -> Signed | None:
    """``role`` as hosts trust it now; None if they know no such role."""
    if trusted is None:
        return None
    if role == "root":
        return trusted.root
    if role == "targets":
        return trusted.targets
    if role == "snapshot":
        return trusted.snapshot
    return trusted.delegated.get(role)


def _trusted_bins(
    bins: Mapping[str, Targets], change: PendingChange, trusted: TrustedRepository | None
) -> dict[str, Targets | None]:
    """The bins hosts trust now, to compare ``bins`` with: each by its name, and every
    other bin too when the change lays the bins out anew (their tags move)."""
    if trusted is None:
        return dict.fromkeys(bins)
    old: dict[str, Targets | None] = {name: trusted.delegated.get(name) for name in bins}
    if BINS_ROLE in change.roles:
        for name, metadata in trusted.delegated.items():
            if is_bin_name(name) and name not in old:
                old[name] = metadata
    return old


class Approver(KeyHolder):
    """Lists pending changes and adds this keystore's signatures to them."""

    def pending(self, gun: str) -> list[PendingChange]:
        return [
            PendingChange.from_dict(gun, data, "the server's list")
            for data in self._api.pending(gun)
        ]

    def approve(self, change: PendingChange) -> ApprovalResult:
        """Sign ``change`` with every local key that may still sign it, and send it."""
        if change.id is None:
            raise UsageError("this change is not on the server", hint="send it: trustkit submit")
        signed, keyids = self.sign(change)
        answer = self._api.approve(change.gun, change.id, signed)
        still = pending_from(change.gun, answer)
        return ApprovalResult(change, keyids, dict(answer.get("versions") or {}), still)

    def submit(self, change: PendingChange) -> ApprovalResult:
        """Upload a change from a file: it joins its pending change if the server still
        has it, else goes up as a new upload (published if it has every signature)."""
        roles = {role: metadata.to_bytes() for role, metadata in change.roles.items()}
        answer: Mapping[str, Any] | None = None
        if change.id is not None:
            try:
                answer = self._api.approve(change.gun, change.id, roles)
            except ServerRefusedError as refusal:
                if refusal.status != 404:
                    raise
        if answer is None:
            answer = self._api.upload(change.gun, roles)
        still = pending_from(change.gun, answer)
        return ApprovalResult(change, [], dict(answer.get("versions") or {}), still)

    def withdraw(self, change: PendingChange) -> None:
        """Withdraw ``change`` from the server, signed by this keystore's keys that may
        sign it (the server takes the withdrawal from such a key holder, or from an
        admin token)."""
        if change.id is None:
            raise UsageError("this change is not on the server; delete the file instead")
        records = self._local_records(self._withdrawing_keyids(change))
        signers = [self._keystore.signer(record, self._passphrases) for record in records]
        self._api.withdraw(change.gun, change.id, signers)

    def _withdrawing_keyids(self, change: PendingChange) -> set[str]:
        """Key ids the server may take a withdrawal of ``change`` from: those the
        trusted metadata lists for its roles, and those it still needs."""
        keyids = {keyid for need in change.needs for keyid in need.keyids}
        trusted = self._verifier.trusted_repository(change.gun)
        for role in change.roles:
            if role in TOP_LEVEL_ROLES or role == BINS_ROLE or is_bin_name(role):
                listed = role if role in TOP_LEVEL_ROLES else "targets"
                keyids |= set(trusted.root.roles[listed].keyids)
            else:
                keyids |= _delegated_keyids(trusted.targets, role)
        return keyids

    def sign(self, change: PendingChange) -> tuple[dict[str, bytes], list[str]]:
        """Add signatures of the local keys allowed to sign each role (in place);
        returns the roles signed, as bytes, and the key ids used."""
        signed: dict[str, bytes] = {}
        used: list[str] = []
        for role, metadata in change.roles.items():
            allowed = self._may_sign(change, role)
            records = [
                record
                for record in self._keystore.records()
                if record.keyid in allowed and record.keyid not in metadata.signatures
            ]
            for record in records:
                signer: Signer = self._keystore.signer(record, self._passphrases)
                metadata.sign(signer, append=True)
                used.append(record.keyid)
            if records:
                signed[role] = metadata.to_bytes()
        if not signed:
            needs = "; ".join(need.describe() for need in change.needs) or "no more signatures"
            raise KeystoreError(
                f"this keystore holds none of the keys that may still sign "
                f"{'pending change ' + change.id if change.id else 'this change'} of "
                f"{change.gun} ({needs})",
                hint="run this where such a key is, or import it (trustkit key import)",
            )
        return signed, used

    def _may_sign(self, change: PendingChange, role: str) -> set[str]:
        """Key ids whose signature counts for ``role``: those the server says it lacks,
        or, for a change in a file, those the change itself and this keystore name."""
        if change.id is not None:
            return {k for need in change.needs if need.role == role for k in need.keyids}
        local = [r for r in self._keystore.records() if r.gun == change.gun]
        root = change.roles.get("root")
        if role == BINS_ROLE or is_bin_name(role):
            role = "targets"  # the bins are signed by the targets keys
        if role in ("root", "targets"):
            allowed = {r.keyid for r in local if r.role == role}
            if root is not None:
                allowed |= set(root.signed.roles[role].keyids)
            return allowed
        targets = change.roles.get("targets")
        if targets is not None:
            return _delegated_keyids(targets.signed, role)
        cached = self._verifier.last_verified(change.gun)
        return _delegated_keyids(cached.targets, role) if cached else set()


def _delegated_keyids(targets: Targets, role: str) -> set[str]:
    delegations = targets.delegations
    if delegations is None or not delegations.roles or role not in delegations.roles:
        return set()
    return set(delegations.roles[role].keyids)


@dataclass(frozen=True)
class Prompter:
    """How an approval talks to the key holder: ``note`` says what is going on,
    ``show`` shows a change (its lines), ``confirm`` asks a yes/no question."""

    note: Callable[[str], None]
    show: Callable[[list[str]], None]
    confirm: Callable[[str], bool]


@dataclass(frozen=True)
class ApprovalRound:
    """What ``approve`` did with the pending changes of a repository: one line and one
    result per change; ``pending`` is how many were pending (0: nothing to do)."""

    pending: int
    lines: list[str] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)


def approve_file(
    approver: Approver, verifier: Verifier, path: Path, gun: str, prompter: Prompter
) -> list[str] | None:
    """Sign the change kept in ``path`` here, offline, and save it; the key ids it was
    signed with, or None if the key holder declined. Nothing is fetched: the change is
    compared with what this machine verified last."""
    change = read_change_file(path, gun)
    cached = verifier.last_verified(gun)
    if cached is None:
        prompter.note(
            f"this machine never verified {gun}: the change is shown in full, not compared "
            "with what hosts trust now"
        )
    else:
        prompter.note(
            f"compared with what this machine verified last of {gun} "
            f"(root v{cached.root.version}, targets v{cached.targets.version})"
        )
    prompter.show(describe_change(change, cached))
    if not prompter.confirm(f"sign this change to {gun}?"):
        return None
    _, keyids = approver.sign(change)
    write_change_file(path, change)
    return keyids


def approve_pending(
    approver: Approver,
    verifier: Verifier,
    gun: str,
    prompter: Prompter,
    *,
    change_id: str | None = None,
    reject: bool = False,
    export: str | None = None,
) -> ApprovalRound:
    """Show each pending change of ``gun`` (only ``change_id`` when given) against what
    hosts trust now, and, as the key holder confirms, sign it (``reject``: withdraw
    it); with ``export``, write the one pending change to that file instead."""
    changes = [c for c in approver.pending(gun) if change_id in (None, c.id)]
    if change_id and not changes:
        raise UsageError(
            f"{gun} has no pending change {change_id}", hint=f"see: trustkit approve {gun}"
        )
    done = ApprovalRound(len(changes))
    if not changes:
        return done
    if export is not None and len(changes) > 1:
        raise UsageError(
            f"{gun} has {len(changes)} pending changes; --export writes one",
            hint="choose it with --id: " + ", ".join(str(c.id) for c in changes),
        )
    trusted = verifier.trusted_repository(gun)
    for change in changes:
        prompter.show(describe_change(change, trusted))
        if export is not None:
            write_change_file(Path(export), change)
            done.lines.append(f"wrote pending change {change.id} to {export}")
            done.results.append({"id": change.id, "exported": export})
            break
        verb = "withdraw" if reject else "sign"
        if not prompter.confirm(f"{verb} pending change {change.id}?"):
            done.lines.append(f"skipped pending change {change.id}")
            done.results.append({"id": change.id, "skipped": True})
        elif reject:
            approver.withdraw(change)
            done.lines.append(f"withdrew pending change {change.id}")
            done.results.append({"id": change.id, "withdrawn": True})
        else:
            line, result = _approve_one(approver, change)
            done.lines.append(line)
            done.results.append(result)
    return done


def _approve_one(approver: Approver, change: PendingChange) -> tuple[str, dict[str, Any]]:
    """Sign and send one pending change: what happened, as a line and a result."""
    try:
        outcome = approver.approve(change)
    except ServerRefusedError as refusal:
        if refusal.status != 404:
            raise
        # Published, withdrawn or made stale since the list was read.
        return f"pending change {change.id} is gone: {refusal.message}", {
            "id": change.id,
            "gone": True,
        }
    signed = ", ".join(k[:12] for k in outcome.signed_with)
    if outcome.still_pending is not None:
        needs = "; ".join(n.describe() for n in outcome.still_pending.needs)
        line = f"signed pending change {change.id} with {signed}; still: {needs}"
    else:
        versions = ", ".join(f"{r} v{v}" for r, v in outcome.versions.items())
        line = f"signed pending change {change.id} with {signed}; published {versions}"
    return line, {
        "id": change.id,
        "signed_with": outcome.signed_with,
        "published": outcome.still_pending is None,
        "versions": outcome.versions,
    }
