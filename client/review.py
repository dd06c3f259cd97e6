"""What a change to a repository's metadata does, as a key holder reviews it.

A co-signer is asked to sign metadata they did not write, so the review must show
everything that metadata changes about trust, not what its author meant to change.
Each role is compared field by field with what hosts trust now, over python-tuf's own
``to_dict()``: keys, thresholds, delegations with their paths, hash prefixes, trust
order and terminating flags, the succinct delegation to hash bins, expiry, and any
field trustkit does not know. Only the version (in the heading), the signatures and
the tags (shown one by one, as their old and new digests) are left out of that
comparison, so a new kind of delegation shows as a change, never as "re-signed".

This module describes; it never prints, and it never escapes: names from metadata are
untrusted and the CLI makes every line it prints safe for a terminal.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tuf.api.metadata import Signed, Targets

from trustkit.bins import BINS_ROLE

__all__ = ["Difference", "describe_bins", "describe_role", "differences", "tag_changes"]

# The heading shows the version; the rest is compared.
_NOT_COMPARED = ("_type", "spec_version", "version")
_KEY_ID = re.compile(r"[0-9a-f]{64}")
_SHOWN_KEY_ID = 12
_BINS_NAMED = 3  # bins named per line of a change shared by many bins
_KEY_SUBJECTS = ("key ", "delegated key ")


class _Absent:
    """A field one side does not have (distinct from null, false or empty)."""

    def __repr__(self) -> str:
        return "(none)"


ABSENT = _Absent()


@dataclass(frozen=True)
class Difference:
    """One field that differs: ``subject`` is what it belongs to ("signer release",
    "hash bins", "expires", "targets" in root), ``field`` its name ("" for a value
    that is the subject itself, as an expiry or a key)."""

    subject: str
    field: str
    before: Any
    after: Any


def differences(old: Signed | None, new: Signed) -> list[Difference]:
    """Every field of ``new`` that differs from ``old`` (everything when ``old`` is None),
    but for the version and, in targets metadata, the tags."""
    before = _flattened(old) if old is not None else {}
    after = _flattened(new)
    paths = list(after) + [path for path in before if path not in after]
    found = []
    for path in paths:
        old_value, new_value = before.get(path, ABSENT), after.get(path, ABSENT)
        if old_value != new_value:
            found.append(Difference(*_subject(path), old_value, new_value))
    return found


def describe_role(role: str, new: Signed, old: Signed | None) -> list[str]:
    """A heading for ``role`` and one line per tag and per subject that changed."""
    lines = [f"{role} v{new.version} (expires {new.expires.isoformat()}):"]
    if isinstance(new, Targets):
        lines += tag_changes(old.targets if isinstance(old, Targets) else {}, new.targets)
    found = differences(old, new)
    if old is None:
        found = [d for d in found if d.subject != "expires"]  # in the heading already
    lines += [f"  {line}" for line in _subject_lines(found, old is None)]
    if len(lines) == 1:
        lines.append("  no change but its version (re-signed)" if old is not None else "  (empty)")
    return lines


def describe_bins(new: Mapping[str, Targets], old: Mapping[str, Targets | None]) -> list[str]:
    """Hash bins as one change: there may be thousands of them. Their tags are shown
    together (a move into a new number of bins changes no tag at all), and any other
    change once, with the bins it is in; ``old`` holds each bin as hosts trust it now
    (None for a bin of a new layout)."""
    expiries = sorted(metadata.expires for metadata in new.values())
    span = expiries[0].isoformat()
    if expiries[-1] != expiries[0]:
        span += f" to {expiries[-1].isoformat()}"
    lines = [f"hash bins: {len(new)} signed (expire {span}):"]
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    in_bins: dict[str, list[str]] = {}
    for name, metadata in new.items():
        previous = old.get(name)
        after.update(metadata.targets)
        if previous is not None:
            before.update(previous.targets)
        found = [d for d in differences(previous, metadata) if d.subject != "expires"]
        for line in _subject_lines(found, previous is None):
            in_bins.setdefault(line, []).append(name)
    for name, trusted in old.items():
        if name not in new and trusted is not None:
            before.update(trusted.targets)  # a bin of the old layout
    lines += tag_changes(before, after)
    for line, names in in_bins.items():
        shown = ", ".join(sorted(names)[:_BINS_NAMED])
        more = f" and {len(names) - _BINS_NAMED} more" if len(names) > _BINS_NAMED else ""
        lines.append(f"  {line} (in {len(names)} bin(s): {shown}{more})")
    if len(lines) == 1:
        lines.append("  no tag changes (re-signed)")
    return lines


def tag_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """One line per tag added, removed or changed (moved to another digest, or with
    another length or media type)."""
    lines = []
    for path in sorted(set(before) | set(after)):
        if path not in after:
            lines.append(f"  {path}: {_digest(before[path])} -> (removed)")
        elif path not in before:
            lines.append(f"  {path}: (new) -> {_digest(after[path])}")
        elif before[path] != after[path]:
            old, new = _digest(before[path]), _digest(after[path])
            line = f"  {path}: {old} -> {new}"
            if old == new:  # same image, other details: say which
                fields = _changed_fields(before[path].to_dict(), after[path].to_dict())
                line += f" ({', '.join(fields)} changed)"
            lines.append(line)
    return lines


def _digest(target: Any) -> str:
    return f"sha256:{target.hashes.get('sha256', '?')}"


# --- comparing fields -----------------------------------------------------------------


def _flattened(signed: Signed) -> dict[tuple[str, ...], Any]:
    data = signed.to_dict()
    for name in _NOT_COMPARED:
        data.pop(name, None)
    if isinstance(signed, Targets):
        data.pop("targets", None)  # tags are shown one by one
    flat: dict[tuple[str, ...], Any] = {}
    _flatten(_comparable(data), (), flat)
    return flat


def _changed_fields(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    old: dict[tuple[str, ...], Any] = {}
    new: dict[tuple[str, ...], Any] = {}
    _flatten(before, (), old)
    _flatten(after, (), new)
    paths = list(new) + [path for path in old if path not in new]
    return [".".join(path) for path in paths if old.get(path, ABSENT) != new.get(path, ABSENT)]


def _comparable(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with each key as one value (a key swapped behind an unchanged key id
    shows) and delegated roles by name, each with its place in the order of trust."""
    for holder in (data, data.get("delegations")):
        if isinstance(holder, dict) and isinstance(holder.get("keys"), dict):
            holder["keys"] = {keyid: _fingerprint(key) for keyid, key in holder["keys"].items()}
    delegations = data.get("delegations")
    if isinstance(delegations, dict) and isinstance(delegations.get("roles"), list):
        delegations["roles"] = {
            str(role.get("name")): {
                **{k: v for k, v in role.items() if k != "name"},
                "trust order": position,
            }
            for position, role in enumerate(delegations["roles"], start=1)
        }
    return data


def _flatten(value: Any, path: tuple[str, ...], into: dict[tuple[str, ...], Any]) -> None:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _flatten(item, (*path, str(key)), into)
    else:
        into[path] = value


def _fingerprint(key: Any) -> str:
    """A key, shortened: its type and a digest of all of it (type, scheme, public key)."""
    whole = json.dumps(key, sort_keys=True, separators=(",", ":")).encode()
    keytype = key.get("keytype", "?") if isinstance(key, dict) else "?"
    return f"{keytype}:{hashlib.sha256(whole).hexdigest()[:12]}"


def _subject(path: tuple[str, ...]) -> tuple[str, str]:
    """What a field belongs to, in the words of a review."""
    match path:
        case ("roles", role, field):
            return role, field  # a top-level role in root
        case ("keys", keyid):
            return f"key {_shown(keyid)}", ""
        case ("delegations", "keys", keyid):
            return f"delegated key {_shown(keyid)}", ""
        case ("delegations", "roles", name, field):
            return ("delegation to bins" if name == BINS_ROLE else f"signer {name}"), field
        case ("delegations", "succinct_roles", field):
            return "hash bins", field
        case ("meta", filename, field):
            return "meta", f"{filename} {field}"  # a snapshot's roles: one line, not thousands
        case (field,):
            return field, ""
        case _:
            return ".".join(path[:-1]), path[-1]


def _subject_lines(found: Iterable[Difference], whole: bool) -> list[str]:
    """One line per subject. ``whole``: nothing to compare with, so show values."""
    by_subject: dict[str, list[Difference]] = {}
    for difference in found:
        by_subject.setdefault(difference.subject, []).append(difference)
    lines = []
    # Roles and delegations first, then the keys they name.
    ordered = sorted(by_subject.items(), key=lambda item: item[0].startswith(_KEY_SUBJECTS))
    for subject, changes in ordered:
        if whole:
            parts = [_labelled(d.field, _value(d.after)) for d in changes]
            lines.append(f"{subject}: {'; '.join(parts)}")
        elif all(d.before is ABSENT for d in changes):
            parts = [_labelled(d.field, _value(d.after)) for d in changes]
            lines.append(f"{subject}: added ({'; '.join(parts)})")
        elif all(d.after is ABSENT for d in changes):
            parts = [_labelled(d.field, _value(d.before)) for d in changes]
            lines.append(f"{subject}: removed (was {'; '.join(parts)})")
        else:
            lines.append(f"{subject}: {'; '.join(_change(d) for d in changes)}")
    return lines


def _change(difference: Difference) -> str:
    before, after = difference.before, difference.after
    if isinstance(before, list) and isinstance(after, list):
        added = [f"+{_value(item)}" for item in after if item not in before]
        removed = [f"-{_value(item)}" for item in before if item not in after]
        if added or removed:
            changed = " ".join(added + removed)
            return _labelled(difference.field, f"{changed} (now {_value(after)})")
    return _labelled(difference.field, f"{_value(before)} -> {_value(after)}")


def _labelled(field: str, text: str) -> str:
    label = "keys" if field == "keyids" else field
    return f"{label} {text}" if label else text


def _value(value: Any) -> str:
    if value is ABSENT:
        return "(none)"
    if isinstance(value, list):
        return ", ".join(_value(item) for item in value) if value else "(none)"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, str):
        return _shown(value)
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, sort_keys=True)


def _shown(text: str) -> str:
    """Key ids (64 hex digits) shortened as everywhere else in trustkit."""
    return text[:_SHOWN_KEY_ID] if _KEY_ID.fullmatch(text) else text
