"""Pending changes: uploads kept until co-signers sign them (see ``server.publishing``).

Their wire form (``PendingChange.to_wire``), and the pieces of work on them that need no
storage: merging signatures into a held change, telling one change's content from
another's (``content_digest``, what retiring a change remembers), and checking who may
withdraw one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from securesystemslib.exceptions import UnverifiedSignatureError
from securesystemslib.signer import Key, Signature
from tuf.api.metadata import Metadata

from server.storage import (
    PendingUpload,
    StoredMetadata,
)
from server.validation import (
    RepositoryAfterUpload,
    UploadRejected,
)
from trustkit import wire
from trustkit.metadata import (
    TOP_LEVEL_ROLES,
    withdraw_statement,
)

__all__ = [
    "MAX_PENDING",
    "PendingChange",
    "with_signatures",
    "adds_signatures",
    "same_content",
    "counted_signatures_only",
    "versions_of",
    "needs_of",
    "change_of",
    "parsed",
    "content_digest",
    "withdrawing_keys",
    "check_withdraw_proof",
]

MAX_PENDING = 16  # changes waiting for co-signers, per repository


@dataclass(frozen=True)
class PendingChange:
    """A pending upload as key holders see it: what it changes and what it lacks."""

    upload: PendingUpload
    needs: list[dict[str, Any]]

    def to_wire(self) -> wire.PendingChange:
        """The change as it goes over the wire; its roles go as the stored bytes (valid
        JSON, checked when uploaded), so listing changes parses none of them again."""
        return wire.PendingChange(
            self.upload.id,
            self.upload.created,
            self.upload.expires,
            [wire.Need.from_dict(need) for need in self.needs],
            self.upload.parts,
        )


def with_signatures(upload_id: str, role: str, held: bytes, offered: bytes) -> bytes:
    """``held`` with the signatures of ``offered``, which must sign the same content."""
    try:
        mine: Metadata[Any] = Metadata.from_bytes(held)
        theirs: Metadata[Any] = Metadata.from_bytes(offered)
    except Exception as error:  # python-tuf raises several types for bad input
        raise UploadRejected(
            400, "malformed", role, f"{role} is not valid TUF metadata: {error}"
        ) from None
    if theirs.signed_bytes != mine.signed_bytes:
        raise UploadRejected(
            400,
            "changed_content",
            role,
            f"{role} differs from the pending change {upload_id}: an approval signs exactly "
            "what is pending; fetch it again (trustkit approve)",
        )
    mine.signatures.update(theirs.signatures)
    return mine.to_bytes()


def adds_signatures(before: RepositoryAfterUpload, after: RepositoryAfterUpload) -> bool:
    """Whether ``after`` keeps every valid signature of ``before`` and adds at least one."""
    grew = False
    for role, signers in before.valid_signers.items():
        now = after.valid_signers.get(role, set())
        if not signers <= now:
            return False
        grew = grew or len(now) > len(signers)
    return grew


def same_content(held: Mapping[str, bytes], offered: Mapping[str, bytes]) -> bool:
    """Whether two uploads sign the same roles with the same content."""
    if set(held) != set(offered):
        return False
    for role in held:
        try:
            if Metadata.from_bytes(held[role]).signed_bytes != (
                Metadata.from_bytes(offered[role]).signed_bytes
            ):
                return False
        except Exception:  # unparseable: not the same; validation reports it
            return False
    return True


def counted_signatures_only(
    parts: Mapping[str, bytes], state: RepositoryAfterUpload
) -> dict[str, bytes]:
    """The uploaded roles with only the signatures that count: junk signatures neither
    take room in a pending change nor hold a key's place in it."""
    kept: dict[str, bytes] = {}
    for role, data in parts.items():
        counted = state.valid_signers.get(role)
        if counted is None:
            kept[role] = data
            continue
        metadata: Metadata[Any] = Metadata.from_bytes(data)
        metadata.signatures = {k: v for k, v in metadata.signatures.items() if k in counted}
        kept[role] = metadata.to_bytes()
    return kept


def versions_of(state: RepositoryAfterUpload) -> dict[str, int]:
    return {role: metadata.signed.version for role, metadata in state.uploaded.items()}


def needs_of(state: RepositoryAfterUpload) -> list[dict[str, Any]]:
    return [shortfall.to_dict() for shortfall in state.shortfalls]


def change_of(upload: PendingUpload) -> PendingChange:
    return PendingChange(upload, upload.needs or [])


def parsed(parts: Mapping[str, bytes]) -> dict[str, Metadata[Any]]:
    return {role: Metadata.from_bytes(data) for role, data in parts.items()}


def content_digest(roles: Mapping[str, Metadata[Any]]) -> str:
    """What a pending change signs, whatever signatures it carries: the sha256 of each
    role's signed bytes, by role. A replay with other or fewer signatures has the same."""
    signed = {
        role: hashlib.sha256(metadata.signed_bytes).hexdigest() for role, metadata in roles.items()
    }
    return hashlib.sha256(json.dumps(signed, sort_keys=True).encode()).hexdigest()


def withdrawing_keys(upload: PendingUpload, stored: Mapping[str, StoredMetadata]) -> dict[str, Key]:
    """The keys, listed by the stored (trusted) metadata, that may withdraw ``upload``:
    a change of root only the root keys; any other, the keys of any of its roles (a
    role not delegated yet, the targets keys, which delegate)."""
    trusted = RepositoryAfterUpload({}, stored)
    root = trusted.root
    roles = ["root"] if "root" in upload.parts else list(upload.parts)
    keys: dict[str, Key] = {}
    for role in roles:
        found = None if role in TOP_LEVEL_ROLES else trusted.delegator(role)
        if found is None:
            listed = role if role in TOP_LEVEL_ROLES else "targets"
            keys.update({keyid: root.get_key(keyid) for keyid in root.roles[listed].keyids})
            continue
        _, parent, delegation = found
        assert parent.delegations is not None and parent.delegations.keys is not None
        parent_keys = parent.delegations.keys
        keys.update({k: parent_keys[k] for k in delegation.keyids if k in parent_keys})
    return keys


def check_withdraw_proof(
    gun: str,
    upload: PendingUpload,
    stored: Mapping[str, StoredMetadata],
    proof: Sequence[Signature],
) -> None:
    allowed = withdrawing_keys(upload, stored)
    statement = withdraw_statement(gun, upload.id)
    for signature in proof:
        key = allowed.get(signature.keyid)
        if key is None:
            continue
        with contextlib.suppress(UnverifiedSignatureError, ValueError, TypeError):
            key.verify_signature(signature, statement)
            return
    what = "root" if "root" in upload.parts else ", ".join(sorted(upload.parts))
    raise UploadRejected(
        403,
        "withdraw_not_allowed",
        None,
        f"withdrawing the pending change {upload.id} of {gun} needs an admin token or a "
        f"signature by a key that may sign its {what} (keys: "
        f"{', '.join(sorted(k[:12] for k in allowed)) or 'none'}); run trustkit approve "
        f"{gun} --reject where such a key is",
    )
