"""The errors the Notary reader raises: which role, which URL, what failed."""

from __future__ import annotations

from datetime import datetime

from trustkit.errors import (
    NotFoundError,
    ServerRefusedError,
    ServerUnreachableError,
    VerificationError,
)


class NotaryVerificationError(VerificationError):
    """Notary metadata failed verification; ``role`` and ``source`` say which and where."""

    def __init__(
        self,
        message: str,
        *,
        role: str | None = None,
        source: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.role = role
        self.source = source


class NotaryExpiredError(NotaryVerificationError):
    """A role's metadata (or a root certificate) is past its expiry."""

    def __init__(self, message: str, *, role: str, source: str | None, expires: datetime) -> None:
        super().__init__(message, role=role, source=source)
        self.expires = expires


class ThresholdError(NotaryVerificationError):
    """Too few valid signatures — the one failure (with expiry) Notary skips a delegation for."""


class RootRotationError(NotaryVerificationError):
    """A newer root is not signed by the trusted root's keys (perhaps a version between)."""


class NotaryNotFoundError(NotFoundError):
    """The server has no trust data for the repository."""


class NotaryUnreachableError(ServerUnreachableError):
    """The Notary server could not be reached, timed out or answered with a 5xx."""


class NotaryServerError(ServerRefusedError):
    """The Notary server refused a request (a 4xx other than a missing repository)."""


class NotaryAuthError(NotaryServerError):
    """The server wants credentials that were missing or refused (by it or its token realm)."""
