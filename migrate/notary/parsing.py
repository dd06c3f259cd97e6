"""Strict parsing of Notary's JSON as Go reads it: no duplicate keys, field names that
case-fold to a known field refused, RFC 3339 times, base64."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$"
)


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"the key {key!r} appears twice in one object")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def load_json(raw: bytes) -> Any:
    """Strict JSON: UTF-8, no duplicate keys, no NaN. Raises ``ValueError``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("it is not UTF-8") from None
    try:
        return json.loads(text, object_pairs_hook=_unique_pairs, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("it nests too deeply") from None


def parse_time(value: Any) -> datetime:
    """Go's RFC 3339 (``time.Time`` JSON), nanoseconds cut to microseconds (never later)."""
    match = _RFC3339.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"expires {value!r} is not an RFC 3339 time")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    offset = timedelta(0)
    if zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        offset = sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    try:
        naive = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micro
        )
    except ValueError as error:
        raise ValueError(f"expires {value!r}: {error}") from None
    return (naive - offset).replace(tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"{what} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not valid base64") from None


def json_int(value: Any, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} is not an integer")
    if value < minimum:
        raise ValueError(f"{what} {value} is below {minimum}")
    return value


def json_object(value: Any, what: str, known: Sequence[str]) -> dict[str, Any]:
    """A JSON object Go reads into a struct with fields ``known``.

    Go matches field names case-insensitively; a key that only case-folds to a field
    would be read differently there than here, so it is refused.
    """
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not an object")
    folded = {name.casefold(): name for name in known}
    for key in value:
        exact = folded.get(key.casefold())
        if exact is not None and exact != key:
            raise ValueError(f"{what} has a field {key!r} that Notary would read as {exact!r}")
    return value
