"""What the keystore knows about one key: its purpose, its public half and its signer URI.

Both the keystore (keys kept here) and the PKCS#11 support (keys kept in a token) build
these records, so the type lives below both of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from securesystemslib.signer import Key

__all__ = ["KeyRecord"]


@dataclass(frozen=True)
class KeyRecord:
    """One key the keystore knows: its purpose, its public half and where its private half is."""

    keyid: str
    gun: str
    role: str
    public: Key
    uri: str

    @property
    def description(self) -> str:
        if self.gun == "*":  # a signer's own key (key generate, key load): any repository
            return f"signer key {self.role} ({self.keyid[:12]})"
        return f"{self.role} key of {self.gun} ({self.keyid[:12]})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "keyid": self.keyid,
            "gun": self.gun,
            "role": self.role,
            "public": self.public.to_dict(),
            "uri": self.uri,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KeyRecord:
        keyid = str(data["keyid"])
        return cls(
            keyid=keyid,
            gun=str(data["gun"]),
            role=str(data["role"]),
            public=Key.from_dict(keyid, dict(data["public"])),
            uri=str(data["uri"]),
        )
