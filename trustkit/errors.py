"""Errors a user can meet, each with a message that says what to do, and an exit code.

The library raises these; only the CLI prints them and turns them into exit codes.
"""

from __future__ import annotations

from trustkit.display import printable

__all__ = [
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "KeystoreError",
    "NotFoundError",
    "PassphraseError",
    "PublishConflictError",
    "ServerRefusedError",
    "ServerUnreachableError",
    "TrustkitError",
    "UsageError",
    "VerificationError",
]

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


class TrustkitError(Exception):
    """Base of every error meant for a user: ``str(error)`` is the one line they read."""

    exit_code = EXIT_USAGE
    code = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def diagnostics(self) -> str:
        """The message and, when there is one, what to do about it, for a terminal.

        Both may quote names from metadata or a server's own words, so each is shown
        with its control and invisible characters escaped (``trustkit.display``), a
        line break too: the message stays one line. ``message`` keeps the text as is,
        for JSON."""
        message = printable(self.message)
        if self.hint:
            return f"{message}\n  hint: {printable(self.hint)}"
        return message


class UsageError(TrustkitError):
    """The command, a name or a value given by the user is wrong."""

    code = "usage"


class PassphraseError(UsageError):
    """A passphrase is missing or does not open the key."""

    code = "passphrase"


class KeystoreError(UsageError):
    """The local keystore lacks a key or cannot be written."""

    code = "keystore"


class NotFoundError(TrustkitError):
    """The repository or tag asked for does not exist."""

    exit_code = EXIT_REFUSED
    code = "not_found"


class VerificationError(TrustkitError):
    """Metadata or content failed TUF verification: never use what was asked for."""

    exit_code = EXIT_REFUSED
    code = "verification_failed"


class ServerRefusedError(TrustkitError):
    """The metadata server refused a request (a 4xx with its reason)."""

    exit_code = EXIT_REFUSED
    code = "server_refused"

    def __init__(self, message: str, *, status: int, error: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.error = error


class PublishConflictError(ServerRefusedError):
    """Someone else published first; re-apply the changelist on the new state."""

    code = "conflict"


class ServerUnreachableError(TrustkitError):
    """The server or network could not be reached or answered with a server error."""

    exit_code = EXIT_UNREACHABLE
    code = "unreachable"
