"""The metadata server's HTTP wire format: its URL paths and its JSON bodies.

The server (``server/``) writes these bodies and takes these paths; the client
(``client/server_api.py``, ``client/approval.py``) builds the same paths and reads the
same bodies. Each body is a class that is valid once constructed (as python-tuf's
metadata classes are): ``from_dict`` refuses a missing field or a wrong type with a
``WireError``, and ``to_dict`` gives back what ``from_dict`` takes. A field this
version does not know is left out when read, so a newer server may add some.

Not the host agent's socket format: that is ``trustkit.agent_wire``.

Paths, all under ``/v2/{gun}/_trust/tuf/`` (Notary's layout; a GUN holds slashes)::

    {role}.json  {version}.{role}.json  {role}.key  pending  pending/{id}
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Any

from securesystemslib.signer import Signature

__all__ = [
    "CHANGEFEED_PATH",
    "CHANGE_ID",
    "MAX_FEED_LIMIT",
    "HEALTH_PATH",
    "MAX_WITHDRAW_SIGNATURES",
    "METRICS_PATH",
    "OPENAPI_PATH",
    "PENDING",
    "TRUST_SEGMENT",
    "ChangefeedEntry",
    "ChangefeedPage",
    "ErrorBody",
    "Need",
    "PendingChange",
    "PendingList",
    "UploadAnswer",
    "WireError",
    "WithdrawRequest",
    "key_path",
    "loads",
    "pending_path",
    "repository_path",
    "role_filename",
    "role_path",
]

TRUST_SEGMENT = "/_trust/tuf/"
PENDING = "pending"
CHANGE_ID = re.compile(r"[0-9a-f]{16}")  # a pending change's id: 8 random bytes, hex
CHANGEFEED_PATH = "/v2/_trust/changefeed"
HEALTH_PATH = "/_trustkit/health"
METRICS_PATH = "/_trustkit/metrics"
OPENAPI_PATH = "/openapi.json"
MAX_WITHDRAW_SIGNATURES = 64
MAX_FEED_LIMIT = 1000  # changefeed entries one page holds at most


class WireError(ValueError):
    """A body that is not what the wire format says."""


# ---------------------------------------------------------------------------- paths


def repository_path(gun: str) -> str:
    """``/v2/{gun}/_trust/tuf/``: where a repository's metadata lives; uploads go here,
    and deleting it deletes the repository."""
    return f"/v2/{gun}{TRUST_SEGMENT}"


def role_filename(role: str, version: int | None = None) -> str:
    """``role.json`` (the newest version) or ``N.role.json`` (one version, forever)."""
    return f"{role}.json" if version is None else f"{version}.{role}.json"


def role_path(gun: str, role: str, version: int | None = None) -> str:
    return repository_path(gun) + role_filename(role, version)


def key_path(gun: str, role: str) -> str:
    """A server-held public key (``GET``), or the next one (``POST``)."""
    return f"{repository_path(gun)}{role}.key"


def pending_path(gun: str, change_id: str | None = None) -> str:
    """The list of pending changes, or one of them (``POST`` signs, ``DELETE`` withdraws)."""
    if change_id is None:
        return repository_path(gun) + PENDING
    return f"{repository_path(gun)}{PENDING}/{change_id}"


# ---------------------------------------------------------------------------- reading


def loads(data: bytes | str) -> Any:
    """JSON as the wire has it: a key twice in one object is refused, not resolved."""
    try:
        return json.loads(data, object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise WireError("the JSON is nested too deeply") from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise WireError(f"the key {key!r} appears twice in one object")
        document[key] = value
    return document


def _object(data: object, what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise WireError(f"{what} is not a JSON object")
    return data


def _field(data: Mapping[str, Any], name: str, kind: type, what: str) -> Any:
    if name not in data:
        raise WireError(f"{what} has no {name!r}")
    return _typed(data[name], kind, f"{what}'s {name!r}")


def _optional(data: Mapping[str, Any], name: str, kind: type, what: str) -> Any:
    value = data.get(name)
    return None if value is None else _typed(value, kind, f"{what}'s {name!r}")


def _typed(value: Any, kind: type, what: str) -> Any:
    # bool is an int to Python, not to the wire.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise WireError(f"{what} is not {_KINDS.get(kind, kind.__name__)}")
    return value


_KINDS = {str: "a string", int: "an integer", list: "a list", dict: "an object"}


def _strings(value: Any, what: str) -> list[str]:
    return [_typed(item, str, f"an item of {what}") for item in _typed(value, list, what)]


def _time(data: Mapping[str, Any], name: str, what: str) -> datetime:
    text = _field(data, name, str, what)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise WireError(f"{what}'s {name!r} is not an ISO 8601 time: {text!r}") from None


# ---------------------------------------------------------------------------- bodies


@dataclass(frozen=True)
class ErrorBody:
    """Every refusal: ``{"error": CODE, "role": ROLE or null, "detail": TEXT}``."""

    error: str
    detail: str | None = None
    role: str | None = None

    def __post_init__(self) -> None:
        _typed(self.error, str, "an error body's 'error'")
        for name in ("detail", "role"):
            if getattr(self, name) is not None:
                _typed(getattr(self, name), str, f"an error body's {name!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.error, "role": self.role, "detail": self.detail}

    @classmethod
    def from_dict(cls, data: object) -> ErrorBody:
        what = "an error body"
        body = _object(data, what)
        return cls(
            _field(body, "error", str, what),
            _optional(body, "detail", str, what),
            _optional(body, "role", str, what),
        )


@dataclass(frozen=True)
class Need:
    """Signatures a role of a pending change still lacks, as the server counts them:
    ``threshold`` of ``keyids`` (listed by ``checked_by``); ``signed`` verify."""

    role: str
    checked_by: str
    signed: list[str]
    threshold: int
    keyids: list[str]

    def __post_init__(self) -> None:
        what = "a need"
        for name in ("role", "checked_by"):
            _typed(getattr(self, name), str, f"{what}'s {name!r}")
        _typed(self.threshold, int, f"{what}'s 'threshold'")
        _strings(self.signed, f"{what}'s 'signed'")
        _strings(self.keyids, f"{what}'s 'keyids'")

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "checked_by": self.checked_by,
            "signed": list(self.signed),
            "threshold": self.threshold,
            "keyids": list(self.keyids),
        }

    @classmethod
    def from_dict(cls, data: object) -> Need:
        what = "a need"
        need = _object(data, what)
        return cls(
            _field(need, "role", str, what),
            _field(need, "checked_by", str, what),
            _strings(_field(need, "signed", list, what), f"{what}'s 'signed'"),
            _field(need, "threshold", int, what),
            _strings(_field(need, "keyids", list, what), f"{what}'s 'keyids'"),
        )


@dataclass(frozen=True)
class PendingChange:
    """An upload the server keeps until co-signers sign it. ``roles`` holds each role's
    metadata as JSON bytes: the server sends what it stored without parsing it again."""

    id: str
    created: datetime
    expires: datetime
    needs: Sequence[Need]
    roles: Mapping[str, bytes]

    def __post_init__(self) -> None:
        what = "a pending change"
        if not isinstance(self.id, str) or not CHANGE_ID.fullmatch(self.id):
            raise WireError(f"{what}'s 'id' is not 16 hex digits: {self.id!r}")
        for name in ("created", "expires"):
            if not isinstance(getattr(self, name), datetime):
                raise WireError(f"{what}'s {name!r} is not a time")
        if not all(isinstance(need, Need) for need in self.needs):
            raise WireError(f"{what}'s 'needs' are not needs")
        for role, data in _typed(dict(self.roles), dict, f"{what}'s 'roles'").items():
            _typed(role, str, f"a role name of {what}")
            _typed(data, bytes, f"{what}'s role {role!r}")

    def to_json(self) -> bytes:
        """The change as JSON, its roles spliced in as they are (valid JSON: checked when
        uploaded), so listing changes parses none of them again."""
        head = json.dumps(
            {
                "id": self.id,
                "created": self.created.isoformat(),
                "expires": self.expires.isoformat(),
                "needs": [need.to_dict() for need in self.needs],
            }
        )
        roles = b",".join(
            json.dumps(role).encode() + b":" + data for role, data in self.roles.items()
        )
        return head[:-1].encode() + b', "roles": {' + roles + b"}}"

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = loads(self.to_json())
        return document

    @classmethod
    def from_dict(cls, data: object) -> PendingChange:
        what = "a pending change"
        change = _object(data, what)
        roles = _field(change, "roles", dict, what)
        for role, metadata in roles.items():
            _typed(metadata, dict, f"{what}'s role {role!r}")
        return cls(
            _field(change, "id", str, what),
            _time(change, "created", what),
            _time(change, "expires", what),
            [Need.from_dict(need) for need in _field(change, "needs", list, what)],
            {role: json.dumps(metadata).encode() for role, metadata in roles.items()},
        )


@dataclass(frozen=True)
class UploadAnswer:
    """The answer to an upload or an approval: ``{"gun": GUN, "versions": {ROLE: N}}``
    (200, published) or ``{"gun": GUN, "pending": CHANGE}`` (202, kept for co-signers)."""

    gun: str
    versions: Mapping[str, int] | None = None
    pending: PendingChange | None = None

    def __post_init__(self) -> None:
        _typed(self.gun, str, "an upload answer's 'gun'")
        if (self.versions is None) == (self.pending is None):
            raise WireError("an upload answer holds either 'versions' or 'pending'")
        for role, version in (self.versions or {}).items():
            _typed(role, str, "a role name of an upload answer's 'versions'")
            _typed(version, int, f"the version of {role!r} in an upload answer")
        if self.pending is not None and not isinstance(self.pending, PendingChange):
            raise WireError("an upload answer's 'pending' is not a pending change")

    @property
    def status(self) -> int:
        return 200 if self.pending is None else 202

    def to_json(self) -> bytes:
        if self.pending is None:
            return json.dumps(self.to_dict()).encode()
        return (
            json.dumps({"gun": self.gun}).encode()[:-1]
            + b', "pending": '
            + self.pending.to_json()
            + b"}"
        )

    def to_dict(self) -> dict[str, Any]:
        if self.pending is None:
            return {"gun": self.gun, "versions": dict(self.versions or {})}
        return {"gun": self.gun, "pending": self.pending.to_dict()}

    @classmethod
    def from_dict(cls, data: object) -> UploadAnswer:
        what = "an upload answer"
        answer = _object(data, what)
        pending = answer.get("pending")
        return cls(
            _field(answer, "gun", str, what),
            _optional(answer, "versions", dict, what),
            None if pending is None else PendingChange.from_dict(pending),
        )


@dataclass(frozen=True)
class PendingList:
    """``GET pending``: ``{"gun": GUN, "pending": [CHANGE, ...]}``, oldest first."""

    gun: str
    pending: Sequence[PendingChange] = field(default_factory=list)

    def __post_init__(self) -> None:
        _typed(self.gun, str, "a pending list's 'gun'")
        if not all(isinstance(change, PendingChange) for change in self.pending):
            raise WireError("a pending list holds something other than pending changes")

    def to_json(self) -> bytes:
        listed = b",".join(change.to_json() for change in self.pending)
        return json.dumps({"gun": self.gun}).encode()[:-1] + b', "pending": [' + listed + b"]}"

    def to_dict(self) -> dict[str, Any]:
        return {"gun": self.gun, "pending": [change.to_dict() for change in self.pending]}

    @classmethod
    def from_dict(cls, data: object) -> PendingList:
        what = "a pending list"
        listing = _object(data, what)
        changes = _field(listing, "pending", list, what)
        return cls(_field(listing, "gun", str, what), [PendingChange.from_dict(c) for c in changes])


@dataclass(frozen=True)
class WithdrawRequest:
    """``DELETE pending/{id}``'s body: ``{"signatures": [{"keyid": …, "sig": …}]}``, each
    over ``trustkit.metadata.withdraw_statement(gun, id)``; no body at all for none."""

    signatures: Sequence[Signature] = ()

    def __post_init__(self) -> None:
        if len(self.signatures) > MAX_WITHDRAW_SIGNATURES:
            raise WireError(f"signatures is not a list of at most {MAX_WITHDRAW_SIGNATURES}")
        for signature in self.signatures:
            if not isinstance(signature, Signature):
                raise WireError("a signature is not a signature")
            if not (isinstance(signature.keyid, str) and isinstance(signature.signature, str)):
                raise WireError("a keyid or sig is not a string")

    def to_dict(self) -> dict[str, Any]:
        return {"signatures": [signature.to_dict() for signature in self.signatures]}

    @classmethod
    def from_dict(cls, data: object) -> WithdrawRequest:
        """Raises ``WireError``, or a ``KeyError``/``TypeError``/``AttributeError`` from
        securesystemslib for a signature it cannot read."""
        signatures = _object(data, "a withdraw request")["signatures"]
        if not isinstance(signatures, list) or len(signatures) > MAX_WITHDRAW_SIGNATURES:
            raise WireError(f"signatures is not a list of at most {MAX_WITHDRAW_SIGNATURES}")
        return cls([Signature.from_dict(dict(signature)) for signature in signatures])


@dataclass(frozen=True)
class ChangefeedEntry:
    """One line of the audit changefeed: ``seq`` (rising), when, which repository, what
    happened (publish, pending, approve, withdraw, next_key, delete), the role versions
    it made, the name of the token that did it (None on a server without auth) and a
    detail. Every string is the server's: shown escaped (``trustkit.display``)."""

    seq: int
    time: datetime
    repository: str
    action: str
    versions: Mapping[str, int] = field(default_factory=dict)
    token: str | None = None
    detail: str | None = None

    def __post_init__(self) -> None:
        what = "a changefeed entry"
        if _typed(self.seq, int, f"{what}'s 'seq'") < 1:
            raise WireError(f"{what}'s 'seq' is not a positive integer: {self.seq}")
        if not isinstance(self.time, datetime):
            raise WireError(f"{what}'s 'time' is not a time")
        for name in ("repository", "action"):
            _typed(getattr(self, name), str, f"{what}'s {name!r}")
        for name in ("token", "detail"):
            if getattr(self, name) is not None:
                _typed(getattr(self, name), str, f"{what}'s {name!r}")
        for role, version in _typed(dict(self.versions), dict, f"{what}'s 'versions'").items():
            _typed(role, str, f"a role name of {what}'s 'versions'")
            _typed(version, int, f"the version of {role!r} in {what}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time.isoformat(),
            "repository": self.repository,
            "action": self.action,
            "versions": dict(self.versions),
            "token": self.token,
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, data: object) -> ChangefeedEntry:
        what = "a changefeed entry"
        entry = _object(data, what)
        return cls(
            _field(entry, "seq", int, what),
            _time(entry, "time", what),
            _field(entry, "repository", str, what),
            _field(entry, "action", str, what),
            _field(entry, "versions", dict, what),
            _optional(entry, "token", str, what),
            _optional(entry, "detail", str, what),
        )


@dataclass(frozen=True)
class ChangefeedPage:
    """``GET /v2/_trust/changefeed?after=SEQ&limit=N``: ``{"entries": [ENTRY, ...],
    "next": SEQ}``, oldest first, each ``seq`` above the last; ``next`` is the ``after``
    of the next page (past lines the token may not read, too)."""

    entries: Sequence[ChangefeedEntry]
    next: int

    def __post_init__(self) -> None:
        what = "a changefeed page"
        if not all(isinstance(entry, ChangefeedEntry) for entry in self.entries):
            raise WireError(f"{what} holds something other than changefeed entries")
        if len(self.entries) > MAX_FEED_LIMIT:
            raise WireError(f"{what} holds more than {MAX_FEED_LIMIT} entries")
        seqs = [entry.seq for entry in self.entries]
        if any(later <= earlier for earlier, later in pairwise(seqs)):
            raise WireError(f"{what}'s entries are not in rising 'seq' order")
        if _typed(self.next, int, f"{what}'s 'next'") < (seqs[-1] if seqs else 0):
            raise WireError(f"{what}'s 'next' ({self.next}) is behind its entries")

    def follows(self, after: int) -> ChangefeedPage:
        """This page, if it is an answer to ``after``: nothing at or before it."""
        if self.next < after or (self.entries and self.entries[0].seq <= after):
            raise WireError(f"the changefeed page after {after} goes back to earlier entries")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"entries": [entry.to_dict() for entry in self.entries], "next": self.next}

    @classmethod
    def from_dict(cls, data: object) -> ChangefeedPage:
        what = "a changefeed page"
        page = _object(data, what)
        entries = _field(page, "entries", list, what)
        if len(entries) > MAX_FEED_LIMIT:
            raise WireError(f"{what} holds more than {MAX_FEED_LIMIT} entries")
        return cls([ChangefeedEntry.from_dict(e) for e in entries], _field(page, "next", int, what))
