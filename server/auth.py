"""Bearer tokens with scopes per repository pattern.

A token is a random secret shown once when it is made; the server keeps only its
sha256 (the secret has 256 bits of entropy, so no slow hash is needed) and finds it by
the first 16 hex digits of that hash, then compares the whole hash in constant time.

A scope is ``ACTION:PATTERN``: ``pull`` (read), ``push`` (upload, approve; withdraw
with a key holder's signature) or ``admin`` (rotate server keys, delete, withdraw any
pending change, read the changefeed), for repositories matching a name pattern, read
as host policies read them (``trustkit.names.name_matches``): ``*`` matches within one
path component, ``**`` across components, so ``registry.example.com/team/*`` covers
``registry.example.com/team/app`` but not ``registry.example.com/team/app/sub``, and
``**`` covers every repository. ``admin``
includes ``push``, which includes ``pull``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from server.storage import Storage, TokenRecord
from trustkit.errors import UsageError
from trustkit.names import canonical_pattern, name_matches

__all__ = [
    "ACTIONS",
    "Action",
    "AuthFailure",
    "Gatekeeper",
    "Scope",
    "authorize",
    "bearer_token",
    "install_token_file",
    "make_token",
    "parse_scope",
    "token_digest",
    "token_lookup",
    "validate_token_name",
]

Action = Literal["pull", "push", "admin"]
ACTIONS: tuple[Action, ...] = ("pull", "push", "admin")
_RANK = {action: rank for rank, action in enumerate(ACTIONS)}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
TOKEN_PREFIX = "tkt_"  # noqa: S105 - a label, not a secret
MIN_TOKEN_LENGTH = 32


@dataclass(frozen=True)
class Scope:
    action: Action
    pattern: str

    def allows(self, action: Action, gun: str) -> bool:
        return _RANK[self.action] >= _RANK[action] and name_matches(self.pattern, gun)

    def __str__(self) -> str:
        return f"{self.action}:{self.pattern}"


def parse_scope(text: str) -> Scope:
    action, sep, pattern = text.partition(":")
    if not sep or action not in ACTIONS or not pattern or any(c.isspace() for c in pattern):
        raise UsageError(
            f"'{text}' is not a scope",
            hint="use ACTION:PATTERN with ACTION pull, push or admin, e.g. "
            "push:registry.example.com/team/*",
        )
    try:
        # Repositories are stored under their canonical names; so is the pattern's host.
        pattern = canonical_pattern(pattern)
    except UsageError as error:
        raise UsageError(f"'{text}' is not a scope: {error.message}", hint=error.hint) from None
    if "/" not in pattern and "**" not in pattern:
        raise UsageError(
            f"the scope '{text}' covers no repository: a repository name is a registry "
            "host and a path, and '*' matches within one path component",
            hint=f"use {action}:** for every repository, or e.g. "
            f"{action}:registry.example.com/team/* for one level under team",
        )
    return Scope(action, pattern)


def _stored_scope(text: str) -> Scope:
    """A scope as the store holds it. A lone ``*`` was every repository when ``*``
    matched ``/`` too (the bootstrap token's ``admin:*``), and is read as ``**``: it
    covered every repository, and no longer matches anything else. Any other pattern
    means what it means now; a malformed scope covers nothing."""
    action, _, pattern = text.partition(":")
    for known in ACTIONS:
        if action == known:
            return Scope(known, "**" if pattern == "*" else pattern)
    return Scope("pull", "")  # an empty pattern matches no repository


def validate_token_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise UsageError(
            f"'{name}' is not a token name",
            hint="use up to 64 letters, digits, '.', '_' or '-', e.g. ci-app",
        )
    return name


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_lookup(token: str) -> str:
    """Where a token's record is found: the first 16 hex digits of its sha256."""
    return token_digest(token)[:16]


def make_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class AuthFailure(Exception):
    """401 (no usable token) or 403 (a token without the scope needed)."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def authorize(
    record: TokenRecord | None, token: str | None, action: Action, gun: str
) -> TokenRecord:
    """The token's record if it may do ``action`` on ``gun``; else ``AuthFailure``."""
    what = f"{action} {gun}" if gun else action
    if token is None:
        raise AuthFailure(
            401,
            "unauthorized",
            f"this server needs a bearer token to {what}; set TRUSTKIT_TOKEN or "
            "--token-file (tokens are made with: trustkit-server token create)",
        )
    if (
        record is None
        or not hmac.compare_digest(record.digest, token_digest(token))
        or record.revoked is not None
    ):
        raise AuthFailure(401, "unauthorized", "the bearer token is not valid (unknown or revoked)")
    if not any(_stored_scope(scope).allows(action, gun) for scope in record.scopes):
        scopes = ", ".join(record.scopes)
        raise AuthFailure(
            403,
            "forbidden",
            f"the token '{record.name}' may not {what} (its scopes: {scopes}; '*' matches "
            "within one path component, '**' across components)",
        )
    return record


class Gatekeeper:
    """Decides, per request, whether the caller's token allows it."""

    def __init__(self, storage: Storage, *, require_auth: bool, open_reads: bool) -> None:
        self._storage = storage
        self._require_auth = require_auth
        self._open_reads = open_reads

    @property
    def reads_open(self) -> bool:
        """Whether anyone may read, with or without a token."""
        return not self._require_auth or self._open_reads

    def check(self, header: str | None, action: Action, gun: str) -> str | None:
        """The token's name if it may do ``action`` on ``gun`` (None when no token is
        needed); else ``AuthFailure``."""
        if not self._require_auth or (action == "pull" and self._open_reads):
            return None
        token = bearer_token(header)
        return authorize(self._record(token), token, action, gun).name

    def check_reader(self, header: str | None) -> str | None:
        """For a read that belongs to no repository (the API description, the
        metrics): where reads need a token, any valid token; else None."""
        if self.reads_open:
            return None
        return self._valid_record(bearer_token(header), "pull", "").name

    def allows(self, header: str | None, action: Action, gun: str) -> bool:
        """Whether the caller may do ``action`` on ``gun`` (``check`` without the why)."""
        try:
            self.check(header, action, gun)
        except AuthFailure:
            return False
        return True

    def feed_filter(self, header: str | None) -> Callable[[str], bool]:
        """Which repositories' changefeed lines the caller may read: those its admin
        scopes cover."""
        if not self._require_auth:
            return lambda _gun: True
        record = self._valid_record(bearer_token(header), "admin", "the changefeed")
        admin = [_stored_scope(s) for s in record.scopes if s.startswith("admin:")]
        if not admin:
            raise AuthFailure(
                403,
                "forbidden",
                f"the token '{record.name}' may not read the changefeed (it needs an admin scope)",
            )
        return lambda gun: any(scope.allows("admin", gun) for scope in admin)

    def _valid_record(self, token: str | None, action: Action, what: str) -> TokenRecord:
        """The record of a token the server made and has not revoked, whatever its
        scopes; else the 401 that fits. Found by the first 16 hex digits of the token's
        sha256, it is the caller's only if the whole sha256 matches (as ``authorize``
        checks): a token sharing just those digits is someone else's record."""
        record = self._record(token)
        if (
            token is None
            or record is None
            or not hmac.compare_digest(record.digest, token_digest(token))
            or record.revoked is not None
        ):
            authorize(record, token, action, what)  # raises the 401 that fits
            raise AuthFailure(401, "unauthorized", "the bearer token is not valid")
        return record

    def _record(self, token: str | None) -> TokenRecord | None:
        return self._storage.token(token_lookup(token)) if token else None


def install_token_file(storage: Storage, path: Path) -> None:
    """Make the token in ``path`` (e.g. a Docker secret) an ``admin:**`` token named
    after the file, replacing the one an earlier file held."""
    try:
        token = path.read_text().strip()
    except OSError as error:
        raise UsageError(f"cannot read the admin token file {path}: {error.strerror}") from None
    if len(token) < MIN_TOKEN_LENGTH or any(c.isspace() for c in token):
        raise UsageError(
            f"the admin token in {path} is too short or holds spaces",
            hint=f"use at least {MIN_TOKEN_LENGTH} random characters, e.g. the output of: "
            "trustkit-server token generate",
        )
    name = f"admin-file-{path.name}"[:64]
    lookup = token_lookup(token)
    existing = storage.token(lookup)
    if existing is not None and existing.revoked is None:
        return
    storage.revoke_token(name)
    storage.add_token(
        TokenRecord(lookup, token_digest(token), name, ("admin:**",), datetime.now(UTC))
    )
