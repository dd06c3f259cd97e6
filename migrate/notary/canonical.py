"""Notary's canonical JSON (docker/go/canonical) and key ids, on securesystemslib's
``encode_canonical``."""

from __future__ import annotations

import base64
import hashlib
import math
from typing import Any

from securesystemslib.formats import encode_canonical

_MAX_EXACT = 2**53  # float64 holds every integer up to here; Notary's numbers pass through one


def _notary_numbers(value: Any, where: str) -> Any:
    """``value`` with numbers as Notary's canonical JSON writes them, or an error.

    Notary verifies a signature over ``MarshalCanonical`` of the signed part decoded into
    ``map[string]interface{}``: every number becomes a float64 first, and canonical mode
    refuses fractions. Integral floats therefore sign as integers; integers beyond 2**53
    would not survive (Notary itself cannot verify them), so they are refused here.
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if abs(value) > _MAX_EXACT:
            raise ValueError(f"{where}: the number {value} is too large for Notary's float64")
        return value
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer() or abs(value) > _MAX_EXACT:
            raise ValueError(f"{where}: Notary's canonical JSON cannot hold the number {value!r}")
        return int(value)
    if isinstance(value, list):
        return [_notary_numbers(item, where) for item in value]
    if isinstance(value, dict):
        return {key: _notary_numbers(item, where) for key, item in value.items()}
    raise ValueError(f"{where}: {type(value).__name__} is not JSON")


def notary_canonical_json(value: Any) -> bytes:
    """The bytes Notary signs for ``value`` (parsed JSON): docker/go/canonical's form.

    Keys sorted by code point (UTF-8 byte order), no whitespace, strings raw UTF-8 with only
    ``"`` and ``\\`` escaped — securesystemslib's ``encode_canonical`` — after the number
    handling of ``_notary_numbers``. Raises ``ValueError`` for what Notary cannot sign.
    """
    encoded = encode_canonical(_notary_numbers(value, "canonical JSON"))
    assert encoded is not None  # without an output function it returns the string
    try:
        return encoded.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("canonical JSON: a string holds a lone UTF-16 surrogate") from None


def notary_key_id(keytype: str, public: bytes) -> str:
    """Notary's id for a key: sha256 of the canonical JSON of the key without its private part."""
    document = {
        "keytype": keytype,
        "keyval": {"private": None, "public": base64.b64encode(public).decode("ascii")},
    }
    return hashlib.sha256(notary_canonical_json(document)).hexdigest()
