"""The server's side of the URL layout in ``trustkit.wire``: the path parameters its
routes take, and the repository name every route checks first.

A GUN holds slashes, and a delegated role's name does too, so the routes match them
with the convertors here: a GUN is everything before the *first* ``/_trust/tuf/``
(a role name may hold that text, a GUN may not), a version is 1 to 18 digits, a
pending change's id 16 hex digits. A name matched is then checked: the GUN must be
the canonical spelling (``trustkit.names.parse_gun``), so no other spelling reaches
another repository's data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.convertors import Convertor, register_url_convertor

from server.refusals import Refusal
from trustkit.errors import UsageError
from trustkit.names import parse_gun
from trustkit.wire import TRUST_SEGMENT

__all__ = ["GUN", "ROLE", "VERSION", "CHANGE", "TrustPath", "checked_gun", "split_trust_path"]


class _GunConvertor(Convertor[str]):
    regex = f"(?:(?!{re.escape(TRUST_SEGMENT)}).)*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


class _RoleConvertor(Convertor[str]):
    regex = ".+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


class _VersionConvertor(Convertor[int]):
    regex = "[0-9]{1,18}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(value)


class _ChangeIdConvertor(_RoleConvertor):
    regex = "[0-9a-f]{16}"


register_url_convertor("trustkit_gun", _GunConvertor())
register_url_convertor("trustkit_role", _RoleConvertor())
register_url_convertor("trustkit_version", _VersionConvertor())
register_url_convertor("trustkit_change", _ChangeIdConvertor())

# Path parameters for the routes: "{gun:trustkit_gun}" and so on.
GUN = "{gun:trustkit_gun}"
ROLE = "{role:trustkit_role}"
VERSION = "{version:trustkit_version}"
CHANGE = "{change_id:trustkit_change}"


@dataclass(frozen=True)
class TrustPath:
    gun: str
    filename: str


def checked_gun(text: str) -> str:
    """The repository a route's GUN names (leading slashes dropped), or a 400 refusal
    if it is not a repository name or not its canonical spelling."""
    text = text.lstrip("/")
    try:
        gun = parse_gun(text)
    except UsageError as error:
        raise Refusal(400, "bad_repository_name", error.message) from None
    if gun != text:
        raise Refusal(400, "bad_repository_name", f"use the full repository name {gun}")
    return gun


def split_trust_path(path: str) -> TrustPath:
    """``{gun}/_trust/tuf/{filename}`` (a path after ``/v2/``), checked; a 404 refusal
    if it is no such path, a 400 if the GUN is bad."""
    gun_text, found, filename = f"/{path}".partition(TRUST_SEGMENT)
    if not found:
        raise Refusal(404, "not_found", f"no such resource: /v2/{path}")
    return TrustPath(checked_gun(gun_text), filename)
