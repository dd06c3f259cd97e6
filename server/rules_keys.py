"""Upload rules 8-11 (see ``server.validation``): the keys roles list: ids as TUF
computes them, one id per key, reachable thresholds, and the hash-bin layout.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from securesystemslib.signer import Key
from tuf.api.metadata import (
    Metadata,
    Role,
    Root,
    Targets,
)

from server.upload_state import (
    UploadRejected,
    shown,
)
from trustkit.bins import (
    BINS_ROLE,
    MAX_BINS,
    MAX_BIT_LENGTH,
    is_bin_count_allowed,
)
from trustkit.metadata import key_id_of, key_material_of


def _keys_of(signed: Any) -> Mapping[str, Key]:
    """The keys a root, or a targets role's delegations, defines (by key id)."""
    if isinstance(signed, Root):
        return signed.keys
    if isinstance(signed, Targets) and signed.delegations is not None:
        return signed.delegations.keys
    return {}


def _roles_of(signed: Any) -> Iterator[tuple[str, Role]]:
    """The roles a root or a targets role delegates to, each with its name."""
    if isinstance(signed, Root):
        yield from signed.roles.items()
    elif isinstance(signed, Targets) and signed.delegations is not None:
        yield from (signed.delegations.roles or {}).items()
        if signed.delegations.succinct_roles is not None:
            yield "the hash bins", signed.delegations.succinct_roles


def check_key_ids(uploaded: Mapping[str, Metadata[Any]]) -> None:
    """A key under another key's id would show reviewers one key and verify another."""
    for role, metadata in uploaded.items():
        for keyid, key in _keys_of(metadata.signed).items():
            if key_id_of(key) != keyid:
                raise UploadRejected(
                    400,
                    "key_id_mismatch",
                    role,
                    f"{role} lists a key under the id {keyid[:16]}…, which is not that key's "
                    "id (sha256 of its canonical JSON)",
                )


def check_one_id_per_key(uploaded: Mapping[str, Metadata[Any]]) -> None:
    """Thresholds count keys, not key ids: one public key spelt two ways (hex in other
    case, PEM with other line breaks, a keytype alias) has two valid ids, and a role
    listing both would take one signer's two signatures for two signers."""
    for role, metadata in uploaded.items():
        seen: dict[bytes, str] = {}
        for keyid, key in _keys_of(metadata.signed).items():
            try:
                material = key_material_of(key)
            except ValueError as error:
                raise UploadRejected(
                    400,
                    "bad_key",
                    role,
                    f"{role} lists the key {keyid[:16]}…, which is not a public key trustkit "
                    f"can use: {error}",
                ) from None
            if material in seen:
                raise UploadRejected(
                    400,
                    "duplicate_key",
                    role,
                    f"{role} lists one public key under two key ids ({seen[material][:16]}… "
                    f"and {keyid[:16]}…); thresholds count keys: list each key once",
                )
            seen[material] = keyid


def check_thresholds_reachable(uploaded: Mapping[str, Metadata[Any]]) -> None:
    """A role's threshold counts the keys it lists that its delegator defines: an id
    with no key behind it, or a threshold above the number of keys, is a role no one
    can ever sign (a root like that locks its repository for good)."""
    for role, metadata in uploaded.items():
        keys = _keys_of(metadata.signed)
        for name, delegated in _roles_of(metadata.signed):
            undefined = [keyid for keyid in delegated.keyids if keyid not in keys]
            if undefined:
                raise UploadRejected(
                    400,
                    "unknown_key",
                    role,
                    f"{role} gives {name} the key id {shown(undefined[0])}, which it lists "
                    "no key for",
                )
            threshold = delegated.threshold
            if type(threshold) is not int or threshold > len(delegated.keyids):
                raise UploadRejected(
                    400,
                    "threshold_unreachable",
                    role,
                    f"{role} gives {name} the threshold {threshold!r} with "
                    f"{len(delegated.keyids)} key(s): a threshold is a whole number from 1 "
                    "to the number of keys",
                )


def check_bin_layout(uploaded: Mapping[str, Metadata[Any]]) -> None:
    """Hash bins hang off one role, ``bins``, whose bins are named ``bins-…``, and number
    no more than hosts accept (``2**bit_length`` bins: each host lists them all)."""
    for role, metadata in uploaded.items():
        delegations = getattr(metadata.signed, "delegations", None)
        bins = delegations.succinct_roles if delegations is not None else None
        if bins is None:
            continue
        if role != BINS_ROLE or bins.name_prefix != BINS_ROLE:
            raise UploadRejected(
                400,
                "misplaced_bins",
                role,
                f"{role} delegates to hash bins named {shown(bins.name_prefix)}-…; only the "
                f"{BINS_ROLE} role delegates to hash bins, named {BINS_ROLE}-…",
            )
        if not is_bin_count_allowed(bins):
            raise UploadRejected(
                400,
                "too_many_bins",
                role,
                f"{role} delegates to 2**{bins.bit_length} hash bins; bit_length must be "
                f"from 1 to {MAX_BIT_LENGTH} (2 to {MAX_BINS} bins)",
            )
