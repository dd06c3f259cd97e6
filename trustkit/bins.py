"""Hash-bin delegation: the layout that keeps huge repositories cheap to sign and to read.

In a repository with bins, targets signs no tag itself. It delegates every path to one
role, ``bins``, signed by the targets keys, which delegates on to ``2**bit_length``
hash bins (python-tuf's ``SuccinctRoles``, TAP 15): the bin of a tag is fixed by the
leading bits of the sha256 of its name, and each bin is a small targets file signed by
the same keys with the same threshold as targets. Signing one tag re-signs one bin;
snapshot names each bin by version only (a few bytes each); a host looking one tag up
downloads targets, ``bins`` and that one bin.

Signers (delegations with paths) stay delegations of targets, listed before ``bins``:
a succinct delegation is terminating, so TUF's lookup would never reach a role listed
after it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime

from securesystemslib.signer import Key
from tuf.api.metadata import DelegatedRole, Delegations, SuccinctRoles, Targets

from trustkit.metadata import new_targets

__all__ = [
    "AUTO_BINS_AT",
    "BINS_ROLE",
    "MAX_BINS",
    "MAX_BIT_LENGTH",
    "bin_count_for",
    "bins_delegation",
    "bins_of",
    "grown_bin_count",
    "group_by_bin",
    "is_bin_name",
    "is_bin_count_allowed",
    "lay_out_bins",
    "parse_bin_count",
]

BINS_ROLE = "bins"
MAX_BINS = 2**14
# A succinct delegation names 2**bit_length bins; hosts and the server allow no more
# than MAX_BINS of them (python-tuf allows 2**32, which no host could ever list).
MAX_BIT_LENGTH = MAX_BINS.bit_length() - 1
# A repository whose targets would sign more tags than this moves them into bins.
AUTO_BINS_AT = 1024
_BYTES_PER_TAG = 110  # a tag in a bin: name, sha256, length (compact JSON)
_BYTES_PER_BIN = 30  # a bin in snapshot: name and version


def parse_bin_count(count: int) -> int:
    """The bit length for ``count`` bins; ValueError unless a power of two in range."""
    if count < 2 or count > MAX_BINS or count & (count - 1):
        raise ValueError(f"the number of bins must be a power of two from 2 to {MAX_BINS}")
    return count.bit_length() - 1


def is_bin_count_allowed(bins: SuccinctRoles) -> bool:
    """Whether ``bins`` delegates to 2 to ``MAX_BINS`` hash bins."""
    return 1 <= bins.bit_length <= MAX_BIT_LENGTH


def bin_count_for(tags: int) -> int:
    """A good number of bins for a repository of ``tags`` tags, with room to grow twice.

    A fresh host downloads snapshot (about 30 bytes per bin) and one bin (about 110
    bytes per tag in it); their sum is smallest at about sqrt(tags · 110 / 30) bins.
    The count is that, for twice the tags, to the nearest power of two."""
    ideal = math.sqrt(2 * max(tags, 1) * _BYTES_PER_TAG / _BYTES_PER_BIN)
    bits = min(max(round(math.log2(ideal)), 1), MAX_BINS.bit_length() - 1)
    return int(2**bits)


def grown_bin_count(bins: SuccinctRoles, tags_in: Iterable[int]) -> int | None:
    """A new number of bins when the bins of ``tags_in`` (the sizes of some bins) say
    the repository has outgrown its bins four times over; else None."""
    sizes = list(tags_in)
    if not sizes:
        return None
    estimate = round(sum(sizes) / len(sizes) * bins.number_of_bins)
    wanted = bin_count_for(estimate)
    return wanted if wanted >= 4 * bins.number_of_bins else None


def is_bin_name(name: str) -> bool:
    """Whether ``name`` looks like a hash bin (``bins-`` and hex), whatever the count."""
    prefix, _, suffix = name.partition("-")
    return prefix == BINS_ROLE and bool(suffix) and all(c in "0123456789abcdef" for c in suffix)


def bins_of(bins_role: Targets | None) -> SuccinctRoles | None:
    """The succinct delegation held by the ``bins`` role's metadata, if any."""
    if bins_role is None or bins_role.delegations is None:
        return None
    return bins_role.delegations.succinct_roles


def bins_delegation(targets: Targets) -> DelegatedRole | None:
    """The delegation from targets to ``bins``, if the repository has bins."""
    delegations = targets.delegations
    if delegations is None or not delegations.roles:
        return None
    return delegations.roles.get(BINS_ROLE)


def lay_out_bins(
    targets: Targets,
    keys: Sequence[Key],
    threshold: int,
    count: int,
    expires: datetime,
    version: int = 1,
) -> Targets:
    """Make ``targets`` delegate to ``bins`` (after its signers), and return the new
    ``bins`` metadata delegating to ``count`` hash bins signed by ``keys``."""
    bit_length = parse_bin_count(count)
    keyids = [key.keyid for key in keys]
    if targets.delegations is None or targets.delegations.roles is None:
        targets.delegations = Delegations(keys={}, roles={})
    delegations = targets.delegations
    assert delegations.roles is not None
    for key in keys:
        delegations.keys[key.keyid] = key
    roles = {name: role for name, role in delegations.roles.items() if name != BINS_ROLE}
    roles[BINS_ROLE] = DelegatedRole(BINS_ROLE, keyids, threshold, False, ["*"])
    delegations.roles = roles
    used = {keyid for role in roles.values() for keyid in role.keyids}
    delegations.keys = {keyid: key for keyid, key in delegations.keys.items() if keyid in used}
    bins_role = new_targets(expires)
    bins_role.version = version
    bins_role.delegations = Delegations(
        keys={key.keyid: key for key in keys},
        succinct_roles=SuccinctRoles(keyids, threshold, bit_length, BINS_ROLE),
    )
    return bins_role


def group_by_bin(succinct: SuccinctRoles, paths: Iterable[str]) -> dict[str, list[str]]:
    """The paths each bin holds, for the bins that hold any."""
    grouped: dict[str, list[str]] = {}
    for path in paths:
        grouped.setdefault(succinct.get_role_for_target(path), []).append(path)
    return grouped
