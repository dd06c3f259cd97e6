"""Pending changes: metadata a server keeps until co-signers add their signatures.

The types a publisher, an approver and a key rotation share: ``PendingChange`` (the
roles of the change, and what each still lacks as ``Need``) and ``pending_from``,
which reads one from the server's answer to an upload.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tuf.api.metadata import Metadata

from trustkit.errors import UsageError
from trustkit.wire import UploadAnswer, WireError

__all__ = ["Need", "PendingChange", "pending_from"]


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
