"""What a failed verification tells the user: python-tuf's refusal in trustkit's words.

python-tuf raises one exception type per failed check (expired, rolled back, bad
signatures, hashes that do not match, a failed download); each becomes a
:class:`~trustkit.errors.TrustkitError` saying what happened to which repository and
what to do about it.
"""

from __future__ import annotations

from collections.abc import Callable

from tuf.api import exceptions

from trustkit.errors import (
    NotFoundError,
    ServerRefusedError,
    ServerUnreachableError,
    TrustkitError,
    VerificationError,
)

__all__ = ["explain_download", "explain_refusal"]


def explain_refusal(
    gun: str,
    error: exceptions.RepositoryError,
    served_timestamp_expiry: Callable[[], str | None],
) -> TrustkitError:
    """python-tuf refused the metadata of ``gun``. ``served_timestamp_expiry`` says when
    the served timestamp expired (for the message only: it is not trusted)."""
    text = str(error) or type(error).__name__
    if isinstance(error, exceptions.ExpiredMetadataError) and ("root" in text or "targets" in text):
        return VerificationError(
            f"metadata for {gun} expired ({text})",
            hint="root and targets are re-signed by their key holders: run trustkit "
            "status to see when, and trustkit refresh before they expire",
        )
    if isinstance(error, exceptions.ExpiredMetadataError):
        when = served_timestamp_expiry() if "timestamp" in text else None
        at = f" at {when}" if when else ""
        return VerificationError(
            f"metadata for {gun} expired{at} ({text}); the server is not refreshing it",
            hint="a stale or frozen server, a replayed response, or a wrong host clock",
        )
    if isinstance(error, exceptions.BadVersionNumberError):
        return VerificationError(
            f"rollback refused for {gun}: {text}",
            hint="the server served older metadata than this host already trusts",
        )
    if isinstance(error, exceptions.LengthOrHashMismatchError):
        return VerificationError(
            f"metadata for {gun} does not match what was signed for it: {text}",
            hint="the server or something between is serving tampered or mixed metadata",
        )
    if isinstance(error, exceptions.UnsignedMetadataError):
        return VerificationError(
            f"bad signatures on metadata for {gun}: {text}",
            hint="the metadata is not signed by the keys this host trusts "
            "(tampering, or a root that does not chain from the trusted one)",
        )
    return VerificationError(f"metadata for {gun} failed verification: {text}")


def explain_download(
    gun: str, error: exceptions.DownloadError, server_url: str, first_use: bool = True
) -> TrustkitError:
    """A download of the metadata of ``gun`` from ``server_url`` failed."""
    text = str(error) or type(error).__name__
    if isinstance(error, exceptions.DownloadLengthMismatchError):
        return VerificationError(
            f"the server sent more metadata for {gun} than allowed: {text}",
            hint="the served metadata is larger than what was signed for it: it was "
            "tampered with, or this is an endless-data attack",
        )
    if isinstance(error, exceptions.DownloadHTTPError) and error.status_code in (401, 403):
        return ServerRefusedError(
            f"the server {server_url} needs an access token with a pull "
            f"scope covering {gun} to read its trust data",
            status=error.status_code,
            error="unauthorized" if error.status_code == 401 else "forbidden",
            hint="set TRUSTKIT_TOKEN or pass --token-file",
        )
    if isinstance(error, exceptions.DownloadHTTPError) and error.status_code == 404:
        # A repository this host trusted before cannot be "not initialised": the
        # server lost or hides files it served (damaged, restored from an old backup,
        # or lying), which is for its operator, not a publisher, to look into.
        hint = (
            f"publishers run: trustkit init {gun}"
            if first_use
            else "this host verified it before: the server no longer serves what it "
            "did; tell its operator (or use a mirror or bundle you trust)"
        )
        return NotFoundError(
            f"{gun} has no complete trust data on {server_url}: {text}",
            hint=hint,
        )
    return ServerUnreachableError(
        f"cannot fetch trust data for {gun} from {server_url}: {text}",
        hint="check --server / TRUSTKIT_SERVER and the network",
    )
