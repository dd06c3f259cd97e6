"""What every role's metadata holds: its type, version and expiry, and the hashes and
length one role gives for another."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from migrate.notary.errors import NotaryExpiredError, NotaryVerificationError
from migrate.notary.parsing import b64, iso, json_int, json_object, parse_time
from migrate.notary.signatures import Envelope

_HASH_SIZES = {"sha256": 32, "sha512": 64}


@dataclass(frozen=True)
class FileMeta:
    length: int
    hashes: Mapping[str, bytes]
    custom: Any = None


def file_meta(value: Any, what: str, *, need_sha256: bool) -> FileMeta:
    obj = json_object(value, what, ("length", "hashes", "custom"))
    length = json_int(obj.get("length", 0), f"{what} length", 0)
    listed = obj.get("hashes") or {}
    if not isinstance(listed, dict):
        raise ValueError(f"{what} hashes is not an object")
    hashes_: dict[str, bytes] = {}
    for algorithm, encoded in listed.items():
        digest = b64(encoded, f"{what} {algorithm} hash")
        size = _HASH_SIZES.get(algorithm)
        if size is not None and len(digest) != size:
            raise ValueError(f"{what} has a {algorithm} hash of {len(digest)} bytes")
        hashes_[algorithm] = digest
    if need_sha256 and "sha256" not in hashes_:
        raise ValueError(f"{what} has no sha256 hash")
    return FileMeta(length, hashes_, obj.get("custom"))


def check_content(content: bytes, meta: FileMeta, what: str, source: str) -> None:
    """Notary's ``CheckHashes`` (every known hash must match, at least one) and the length."""
    checked = 0
    for algorithm in ("sha256", "sha512"):
        expected = meta.hashes.get(algorithm)
        if expected is None:
            continue
        actual = hashlib.new(algorithm, content).digest()
        if not hmac.compare_digest(actual, expected):
            raise NotaryVerificationError(
                f"hash mismatch for {what}: its {algorithm} is {actual.hex()}, the metadata "
                f"that lists it says {expected.hex()}",
                role=what,
                source=source,
            )
        checked += 1
    if checked == 0:
        raise NotaryVerificationError(
            f"no sha256 or sha512 hash is given for {what}", role=what, source=source
        )
    if len(content) != meta.length:
        raise NotaryVerificationError(
            f"length mismatch for {what}: {len(content)} bytes, listed as {meta.length}",
            role=what,
            source=source,
        )


def common_fields(
    envelope: Envelope, expected_type: str, extra: Sequence[str]
) -> tuple[int, datetime]:
    signed = json_object(envelope.signed, "signed", ("_type", "version", "expires", *extra))
    if signed.get("_type") != expected_type:
        raise ValueError(f"_type is {signed.get('_type')!r}, not {expected_type!r}")
    return json_int(signed.get("version"), "version", 1), parse_time(signed.get("expires"))


def refuse_if_expired(role: str, expires: datetime, now: datetime, source: str | None) -> None:
    if expires < now:  # tuf/signed.IsExpired
        raise NotaryExpiredError(
            f"{role} metadata expired at {iso(expires)}", role=role, source=source, expires=expires
        )
