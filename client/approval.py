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
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from securesystemslib.signer import Signer
from tuf.api.metadata import Metadata, Signed, Targets

from client.publisher import KeyHolder
from client.review import describe_bins, describe_role
from client.verify import TrustedRepository
from keys.files import write_private_file
from trustkit.bins import BINS_ROLE, is_bin_name
from trustkit.errors import KeystoreError, ServerRefusedError, UsageError
from trustkit.metadata import TOP_LEVEL_ROLES
from trustkit.wire import UploadAnswer, WireError

__all__ = [
    "ApprovalResult",
    "Approver",
    "Need",
    "PendingChange",
    "describe_change",
    "pending_from",
    "read_change_file",
    "write_change_file",
]


@dataclass(frozen=True)
class Need:
    """Signatures a role of a pending change still lacks, as the server counts them."""

    role: str
    checked_by: str
    signed: list[str]
    threshold: int
    keyids: list[str]

    def describe(self) -> str:
        missing = self.threshold - len(self.signed)
        return (
            f"{self.role} needs {missing} more signature(s) from the keys {self.checked_by} "
            f"lists ({len(self.signed)} of {self.threshold}; may sign: "
            f"{', '.join(k[:12] for k in self.keyids if k not in self.signed)})"
        )


@dataclass
class PendingChange:
    """Metadata waiting for signatures; ``id`` is None for a change kept in a file."""

    gun: str
    roles: dict[str, Metadata[Any]]
    id: str | None = None
    expires: datetime | None = None
    needs: list[Need] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "gun": self.gun,
            "id": self.id,
            "expires": self.expires.isoformat() if self.expires else None,
            "needs": [need.__dict__ for need in self.needs],
            "roles": {role: metadata.to_dict() for role, metadata in self.roles.items()},
        }

    @classmethod
    def from_dict(cls, gun: str, data: Mapping[str, Any], source: str) -> PendingChange:
        try:
            roles = {
                str(role): Metadata.from_dict(json.loads(json.dumps(metadata)))
                for role, metadata in dict(data["roles"]).items()
            }
            for role, metadata in roles.items():
                expected = role if role in ("root", "snapshot") else "targets"
                if metadata.signed.type != expected:
                    raise ValueError(f"{role} holds {metadata.signed.type} metadata")
            expires = data.get("expires")
            return cls(
                gun,
                roles,
                str(data["id"]) if data.get("id") else None,
                datetime.fromisoformat(expires) if expires else None,
                [
                    Need(
                        str(need["role"]),
                        str(need["checked_by"]),
                        [str(k) for k in need["signed"]],
                        int(need["threshold"]),
                        [str(k) for k in need["keyids"]],
                    )
                    for need in data.get("needs") or []
                ],
            )
        except Exception as error:  # python-tuf and json raise several types
            raise UsageError(
                f"{source} does not hold a readable pending change: {error}",
                hint="use a file written by trustkit approve --export or key rotate --out",
            ) from None


@dataclass(frozen=True)
class ApprovalResult:
    change: PendingChange
    signed_with: list[str]
    versions: dict[str, int]  # what was published, empty while still pending
    still_pending: PendingChange | None


def pending_from(gun: str, answer: Mapping[str, Any]) -> PendingChange | None:
    """The pending change in a server's answer to an upload (``trustkit.wire``'s
    ``UploadAnswer``); None if it was published."""
    try:
        pending = UploadAnswer.from_dict(answer).pending
    except WireError as error:
        raise UsageError(f"the server's answer is not an upload answer: {error}") from None
    if pending is None:
        return None
    return PendingChange.from_dict(gun, pending.to_dict(), "the server's answer")


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
