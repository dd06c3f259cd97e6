"""Expiry policy: how long each role's metadata stays valid, and when to renew it.

Defaults follow Notary: root 10 years, targets and delegations 3 years, snapshot
3 years, timestamp 14 days. Online roles are re-signed once half their life is gone,
so a host that checks daily never sees them close to expiry.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from trustkit.errors import UsageError

__all__ = [
    "DEFAULT_EXPIRY",
    "ExpiryPolicy",
    "format_duration",
    "parse_duration",
    "utc_now",
]

DEFAULT_EXPIRY: Mapping[str, timedelta] = {
    "root": timedelta(days=3650),
    "targets": timedelta(days=3 * 365),
    "delegation": timedelta(days=3 * 365),
    "snapshot": timedelta(days=3 * 365),
    "timestamp": timedelta(days=14),
    # Not a role: how long the server keeps an upload waiting for co-signers.
    "pending": timedelta(days=7),
}

MAX_SECONDS = 100 * 365 * 86400  # a lifetime beyond a century is a typo, not a policy
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_DURATION = re.compile(r"^([0-9]+)([smhdwy])$")


def utc_now() -> datetime:
    """The current time in UTC, without microseconds (TUF expiry has second precision)."""
    return datetime.now(UTC).replace(microsecond=0)


def parse_duration(text: str) -> timedelta:
    """Parse ``30s``, ``15m``, ``12h``, ``14d``, ``2w`` or ``10y``."""
    match = _DURATION.fullmatch(text.strip())
    if not match or int(match.group(1)[:12]) == 0:
        raise UsageError(
            f"'{text[:40]}' is not a duration",
            hint="use a positive number and a unit: s, m, h, d, w or y (e.g. 14d)",
        )
    if len(match.group(1)) > 12 or int(match.group(1)) * _UNITS[match.group(2)] > MAX_SECONDS:
        raise UsageError(
            f"'{text[:40]}' is longer than trustkit allows",
            hint="metadata may live at most 100 years (100y)",
        )
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def format_duration(delta: timedelta) -> str:
    """The largest whole unit that expresses ``delta`` exactly (``14d``, ``90s``)."""
    seconds = int(delta.total_seconds())
    for unit in ("y", "w", "d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class ExpiryPolicy:
    """Lifetimes per role; delegated roles use the ``delegation`` entry."""

    lifetimes: Mapping[str, timedelta] = field(default_factory=lambda: dict(DEFAULT_EXPIRY))

    def lifetime(self, role: str) -> timedelta:
        key = role if role in ("root", "targets", "snapshot", "timestamp") else "delegation"
        return self.lifetimes.get(key, DEFAULT_EXPIRY[key])

    @property
    def pending_lifetime(self) -> timedelta:
        """How long an upload waits for co-signers (a signer role named "pending" is
        just a delegation)."""
        return self.lifetimes.get("pending", DEFAULT_EXPIRY["pending"])

    def expires(self, role: str, now: datetime | None = None) -> datetime:
        return (now or utc_now()) + self.lifetime(role)

    def renewal_due(self, role: str, expires: datetime, now: datetime | None = None) -> bool:
        """True once less than half of the role's lifetime is left."""
        return expires - (now or utc_now()) < self.lifetime(role) / 2

    @classmethod
    def from_settings(cls, values: Iterable[str]) -> ExpiryPolicy:
        """The defaults with ``ROLE=DURATION`` settings (``timestamp=14d``) applied."""
        overrides = {}
        for value in values:
            role, sep, duration = value.partition("=")
            if not sep:
                raise UsageError(
                    f"expiry setting '{value}' is not ROLE=DURATION", hint="e.g. targets=1y"
                )
            overrides[role.strip()] = parse_duration(duration)
        return cls().with_overrides(overrides)

    def with_overrides(self, overrides: Mapping[str, timedelta]) -> ExpiryPolicy:
        unknown = set(overrides) - set(DEFAULT_EXPIRY)
        if unknown:
            raise UsageError(
                f"unknown role in expiry setting: {', '.join(sorted(unknown))}",
                hint="roles are root, targets, delegation, snapshot, timestamp (and pending, for "
                "uploads waiting for co-signers)",
            )
        return ExpiryPolicy({**self.lifetimes, **overrides})
