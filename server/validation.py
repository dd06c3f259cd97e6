"""Upload validation: the rules an upload must pass before anything is stored.

Each rule is one function named after it, applied in the order below; the first
broken rule stops the upload with an ``UploadRejected`` naming the role and the
rule. Together they guarantee that what the server publishes verifies for hosts:

1. ``check_role_names``            only root, targets and delegated roles are uploaded
2. ``check_size_limits``           every file and the upload as a whole are within limits
3. ``check_parses_as_role``        each file is TUF metadata of the type its name says
4. ``check_repository_exists``     a repository starts with a root
5. ``check_target_names``          a tag follows Docker's tag grammar, a signed file's
                                   name is a safe relative name; a media type is a string
6. ``check_delegated_role_names``  a delegated role has a valid role name, not a bin's
7. ``check_printable_strings``     no control, format or bidi character in any string
                                   that a host or a co-signer may later be shown
8. ``check_key_ids``               every key listed is under the id TUF computes for it
9. ``check_one_id_per_key``        no public key is listed under two ids
10. ``check_thresholds_reachable`` every role lists only keys that are defined, and a
                                   threshold no greater than their number
11. ``check_bin_layout``           only ``bins`` delegates to hash bins, and to no more
                                   than hosts accept
12. ``check_versions_increase``    versions strictly greater than stored (409 if not:
                                   someone published first); root versions consecutive
13. ``check_root_chained``         a new root is signed by a threshold of the previous
                                   root and of itself
14. ``check_bins_signed_as_targets`` hash bins are delegated to the targets keys with the
                                   targets threshold, at both steps of the delegation
15. ``check_signature_thresholds`` every role after the upload is signed by a threshold
                                   of the keys its delegator lists
16. ``check_not_expired``          uploaded metadata expires in the future
17. ``check_delegated_paths``      a delegated role signs only paths it was delegated
18. ``check_root_lists_server_keys`` the root trusts the keys the server signs with
19. ``check_publisher_snapshot``   a snapshot comes with every upload when, and only
                                   when, the publisher holds the snapshot key; it lists
                                   every role at its version after the upload

An uploaded role that falls short of its threshold only for want of co-signers (at
least one valid signature by a key the *currently trusted* metadata lists, but fewer
than needed) breaks no rule: it is a ``Shortfall``, and the upload as a whole is kept
pending until co-signers add theirs. Every other rule still applies to it in full.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from securesystemslib.signer import Key
from tuf.api.metadata import (
    DelegatedRole,
    Metadata,
    Role,
    Root,
    SuccinctRoles,
    TargetFile,
    Targets,
)
from tuf.api.serialization import SerializationError

from server.storage import StoredMetadata
from trustkit.bins import (
    BINS_ROLE,
    MAX_BINS,
    MAX_BIT_LENGTH,
    bins_delegation,
    bins_of,
    is_bin_count_allowed,
    is_bin_name,
)
from trustkit.metadata import ONLINE_ROLES, is_file_target, key_id_of, key_material_of
from trustkit.names import MAX_FILE_NAME_LENGTH, is_docker_tag, is_safe_file_name

__all__ = ["Limits", "RepositoryAfterUpload", "Shortfall", "UploadRejected", "validate_upload"]

MAX_VERSION = 2**62  # versions are stored as 64-bit integers
Delegation = DelegatedRole | SuccinctRoles
_ROLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,127}$")
MAX_MEDIA_TYPE_LENGTH = 255


class UploadRejected(Exception):
    """An upload broke a rule; becomes a 4xx with ``{"error", "role", "detail"}``."""

    def __init__(self, status: int, error: str, role: str | None, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.role = role
        self.detail = detail


@dataclass(frozen=True)
class Limits:
    max_role_bytes: int = 20 * 1024 * 1024
    max_roles_per_upload: int = MAX_BINS + 64  # a move into bins is one upload
    max_json_depth: int = 32  # TUF metadata needs about 6; deeper only hides tricks
    max_targets_per_role: int = 1_000_000


def json_depth(value: Any) -> int:
    """How deeply ``value`` nests objects and arrays (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest


@dataclass(frozen=True)
class Shortfall:
    """An uploaded role signed by fewer keys than ``checked_by`` requires."""

    role: str
    checked_by: str  # "previous root", "root" or the delegating role
    signed: list[str]  # key ids whose signatures verify
    threshold: int
    keyids: list[str]  # every key id that may sign

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "checked_by": self.checked_by,
            "signed": self.signed,
            "threshold": self.threshold,
            "keyids": self.keyids,
        }


class RepositoryAfterUpload:
    """The repository as it would be after the upload: uploaded roles over stored ones."""

    def __init__(
        self, uploaded: Mapping[str, Metadata[Any]], stored: Mapping[str, StoredMetadata]
    ) -> None:
        self.uploaded = uploaded
        self._stored = stored
        self._parsed: dict[str, Metadata[Any]] = dict(uploaded)
        self.shortfalls: list[Shortfall] = []
        # Per uploaded role, the key ids whose signatures count (an approval must add one).
        self.valid_signers: dict[str, set[str]] = {}

    def get_stored(self, role: str) -> Metadata[Any] | None:
        """The stored version of ``role``, before the upload."""
        stored = self._stored.get(role)
        return Metadata.from_bytes(stored.data) if stored is not None else None

    def stored_bytes(self, role: str) -> bytes | None:
        stored = self._stored.get(role)
        return stored.data if stored is not None else None

    def get(self, role: str) -> Metadata[Any] | None:
        if role not in self._parsed:
            if role not in self._stored:
                return None
            self._parsed[role] = Metadata.from_bytes(self._stored[role].data)
        return self._parsed[role]

    @property
    def root(self) -> Root:
        root = self.get("root")
        assert root is not None  # check_repository_exists ran first
        signed: Root = root.signed
        return signed

    def delegated_roles(self) -> list[str]:
        """Every delegated role reachable from targets, in delegation order."""
        found: list[str] = []
        queue = ["targets"]
        while queue:
            metadata = self.get(queue.pop(0))
            if metadata is None:
                continue
            delegations = metadata.signed.delegations
            if delegations is None or delegations.roles is None:
                continue
            for name in delegations.roles:
                if name not in found:
                    found.append(name)
                    queue.append(name)
        return found

    def delegator(self, role: str) -> tuple[str, Targets, Delegation] | None:
        """The role that delegates ``role``: its name, its metadata and the delegation
        (a hash bin's is the succinct delegation of all bins)."""
        for parent_name in ["targets", *self.delegated_roles()]:
            parent = self.get(parent_name)
            if parent is None or parent_name == role:
                continue
            delegations = parent.signed.delegations
            if delegations is None:
                continue
            if delegations.roles and role in delegations.roles:
                return parent_name, parent.signed, delegations.roles[role]
            bins = delegations.succinct_roles
            if bins is not None and bins.is_delegated_role(role):
                return parent_name, parent.signed, bins
        return None

    def bin_roles(self) -> list[str]:
        """Hash bins uploaded, or stored and delegated by an uploaded ``bins`` role
        (whose keys they must then be signed by)."""
        names = [role for role in self.uploaded if self._is_bin(role)]
        if BINS_ROLE in self.uploaded:
            names += [r for r in self._stored if r not in self.uploaded and self._is_bin(r)]
        return names

    def _is_bin(self, role: str) -> bool:
        found = self.delegator(role) if is_bin_name(role) else None
        return found is not None and isinstance(found[2], SuccinctRoles)


def check_role_names(parts: Mapping[str, bytes]) -> None:
    if not parts:
        raise UploadRejected(400, "empty_upload", None, "the upload holds no metadata file")
    for role in parts:
        if role == "timestamp":
            raise UploadRejected(
                400,
                "server_signed_role",
                role,
                f"{role} is signed by the server; upload root, targets or delegated roles only",
            )
        if not _ROLE_NAME.fullmatch(role):
            shown = _shown(role)
            raise UploadRejected(
                400, "bad_role_name", shown[1:-1], f"{shown} is not a valid role name"
            )


def check_size_limits(parts: Mapping[str, bytes], limits: Limits) -> None:
    if len(parts) > limits.max_roles_per_upload:
        raise UploadRejected(
            413,
            "too_many_roles",
            None,
            f"the upload holds {len(parts)} roles; the limit is {limits.max_roles_per_upload}",
        )
    for role, data in parts.items():
        if len(data) > limits.max_role_bytes:
            raise UploadRejected(
                413,
                "too_large",
                role,
                f"{role} is {len(data)} bytes; the limit is {limits.max_role_bytes} bytes",
            )


def check_parses_as_role(parts: Mapping[str, bytes], limits: Limits) -> dict[str, Metadata[Any]]:
    parsed: dict[str, Metadata[Any]] = {}
    for role, data in parts.items():
        try:
            document = json.loads(data)
        except RecursionError:
            document = None  # nested beyond what the parser follows: too deep, below
        except ValueError as error:
            raise UploadRejected(
                400,
                "malformed",
                role,
                f"{role} is not valid TUF metadata: it is not JSON ({error})",
            ) from None
        if document is None or json_depth(document) > limits.max_json_depth:
            raise UploadRejected(
                400,
                "too_deep",
                role,
                f"{role} nests JSON more than {limits.max_json_depth} levels deep (the limit)",
            )
        try:
            metadata: Metadata[Any] = Metadata.from_dict(document)
        except Exception as error:  # python-tuf raises several types for bad input
            raise UploadRejected(
                400, "malformed", role, f"{role} is not valid TUF metadata: {error}"
            ) from None
        expected = role if role in ("root", "snapshot") else "targets"
        if metadata.signed.type != expected:
            raise UploadRejected(
                400,
                "wrong_type",
                role,
                f"{role} holds {metadata.signed.type} metadata; expected {expected}",
            )
        targets = getattr(metadata.signed, "targets", None)
        if isinstance(targets, dict) and len(targets) > limits.max_targets_per_role:
            raise UploadRejected(
                413,
                "too_many_targets",
                role,
                f"{role} signs {len(targets)} targets; the limit is "
                f"{limits.max_targets_per_role} per role (use hash bins for more)",
            )
        if type(metadata.signed.version) is not int:  # python-tuf takes true for 1
            raise UploadRejected(
                400,
                "malformed",
                role,
                f"{role} version {metadata.signed.version!r} is not a whole number",
            )
        if metadata.signed.version >= MAX_VERSION:
            raise UploadRejected(
                400, "malformed", role, f"{role} version {metadata.signed.version} is too large"
            )
        parsed[role] = metadata
    return parsed


def check_repository_exists(
    uploaded: Mapping[str, Metadata[Any]], stored: Mapping[str, StoredMetadata]
) -> None:
    if "root" not in stored and "root" not in uploaded:
        raise UploadRejected(
            404,
            "not_initialised",
            None,
            "the repository has no root yet; initialise it first (trustkit init)",
        )
    if "root" not in stored and "targets" not in uploaded:
        raise UploadRejected(
            400, "missing_targets", "targets", "a new repository needs targets with its root"
        )


def check_target_names(uploaded: Mapping[str, Metadata[Any]]) -> None:
    """Target names are shown on every host (``inspect``, refusals, approvals) and a tag
    is handed to Docker: a tag follows Docker's tag grammar, a signed file's name is a
    safe relative name, and an image's media type is a short string."""
    for role, metadata in uploaded.items():
        if not isinstance(metadata.signed, Targets):
            continue
        for path, target in metadata.signed.targets.items():
            if not is_file_target(target):
                if not is_docker_tag(path):
                    raise UploadRejected(
                        400,
                        "bad_target_name",
                        role,
                        f"{role} signs the tag {_shown(path)}, which is not a Docker tag: "
                        "up to 128 letters, digits, '_', '.' or '-', not starting with '.' "
                        "or '-'",
                    )
            elif not is_safe_file_name(path):
                raise UploadRejected(
                    400,
                    "bad_target_name",
                    role,
                    f"{role} signs the file {_shown(path)}, which is not a safe file name: "
                    f"a relative path of up to {MAX_FILE_NAME_LENGTH} printable characters, "
                    "no '..', '.' or empty parts, no backslash, no leading or trailing space",
                )
            media_type = _custom(target).get("media_type")
            if media_type is not None and not (
                isinstance(media_type, str) and 0 < len(media_type) <= MAX_MEDIA_TYPE_LENGTH
            ):
                raise UploadRejected(
                    400,
                    "bad_media_type",
                    role,
                    f"{role} gives the tag {_shown(path)} a media type that is not a string "
                    f"of 1 to {MAX_MEDIA_TYPE_LENGTH} characters",
                )


def _custom(target: TargetFile) -> Mapping[str, Any]:
    custom = target.unrecognized_fields.get("custom")
    return custom if isinstance(custom, dict) else {}


def check_delegated_role_names(uploaded: Mapping[str, Metadata[Any]]) -> None:
    """A signer's name is shown as who signed a tag: it follows the grammar of the role
    names an upload may carry, and is not a hash bin's name (a bin is signed by the
    targets keys; a signer posing as one would borrow their standing)."""
    for role, metadata in uploaded.items():
        delegations = getattr(metadata.signed, "delegations", None)
        if delegations is None or delegations.roles is None:
            continue
        for name in delegations.roles:
            if not _ROLE_NAME.fullmatch(name):
                raise UploadRejected(
                    400,
                    "bad_role_name",
                    role,
                    f"{role} delegates to {_shown(name)}, which is not a valid role name: up "
                    "to 128 letters, digits, '_', '.', '-' or '/', starting with a letter or "
                    "a digit",
                )
            if is_bin_name(name):
                raise UploadRejected(
                    400,
                    "reserved_role_name",
                    role,
                    f"{role} delegates to {name}, the name of a hash bin; give the signer "
                    "another name",
                )


def check_printable_strings(uploaded: Mapping[str, Metadata[Any]]) -> None:
    """Strings from metadata reach terminals, logs and the co-signers who approve a
    change: a control character, an ANSI escape or a bidi override there could rewrite
    what a person reads. The one exception is the line breaks of a PEM public key."""
    for role, metadata in uploaded.items():
        for where, text in _strings_of(metadata.to_dict()):
            pem = where[-2:] == ("keyval", "public")
            if not (text.replace("\n", "") if pem else text).isprintable():
                raise UploadRejected(
                    400,
                    "unprintable_string",
                    role,
                    f"{role} holds a control, format or bidi character in "
                    f"{_location(where)}: {_shown(text)}; metadata strings must be printable",
                )


def _strings_of(document: Any) -> Iterator[tuple[tuple[str, ...], str]]:
    """Every string of a JSON document, object keys included, with where it is."""
    stack: list[tuple[tuple[str, ...], Any]] = [((), document)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, str):
            yield where, node
        elif isinstance(node, dict):
            for key, value in node.items():
                yield (*where, "(key)"), key
                stack.append(((*where, key), value))
        elif isinstance(node, list):
            stack.extend(((*where, str(index)), value) for index, value in enumerate(node))


def _location(where: tuple[str, ...]) -> str:
    return ".".join(
        part if part.isprintable() and len(part) <= 64 else _shown(part) for part in where
    )


def _shown(text: str) -> str:
    """``text`` quoted for a message: escapes for what is not printable, and cut short."""
    return repr(text[:80]) + ("…" if len(text) > 80 else "")


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
                    f"{role} gives {name} the key id {_shown(undefined[0])}, which it lists "
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
                f"{role} delegates to hash bins named {_shown(bins.name_prefix)}-…; only the "
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


def check_versions_increase(
    uploaded: Mapping[str, Metadata[Any]], stored: Mapping[str, StoredMetadata]
) -> None:
    for role, metadata in uploaded.items():
        version = metadata.signed.version
        previous = stored.get(role)
        if role == "root":
            expected = previous.version + 1 if previous else 1
            if previous and version <= previous.version:
                raise UploadRejected(
                    409,
                    "version_conflict",
                    role,
                    f"root version {version} is not newer than stored version "
                    f"{previous.version}; fetch the latest root and apply the change again",
                )
            if version != expected:
                raise UploadRejected(
                    400,
                    "root_version_gap",
                    role,
                    f"root version {version} must be {expected}: root versions are consecutive",
                )
        elif previous and version <= previous.version:
            raise UploadRejected(
                409,
                "version_conflict",
                role,
                f"{role} version {version} is not newer than stored version {previous.version}; "
                "someone published first: fetch the latest metadata and apply the changes again",
            )


def check_root_chained(
    uploaded: Mapping[str, Metadata[Any]], stored: Mapping[str, StoredMetadata]
) -> tuple[set[str], list[Shortfall]]:
    """The key ids whose signatures count for a new root, and what it still lacks.

    A root partly signed is a shortfall (kept pending) only when a key of the trusted,
    previous root signed it: a root signed only by the keys it lists itself is anyone's.
    """
    new_root = uploaded.get("root")
    if new_root is None:
        return set(), []
    previous: Root | None = None
    if "root" in stored:
        previous = Metadata[Root].from_bytes(stored["root"].data).signed
    result = new_root.signed.get_root_verification_result(
        previous, new_root.signed_bytes, new_root.signatures
    )
    first, second = result.first, result.second
    valid = set(first.signed) | set(second.signed)
    if result.verified:
        return valid, []
    version = new_root.signed.version
    if previous is None or not first.signed:
        if previous is not None:
            detail = (
                f"new root v{version} is signed by {len(first.signed)} of the "
                f"{first.threshold} previous root keys needed; sign it with the current root key"
            )
            error = "root_not_chained"
        else:
            detail = (
                f"root v{version} is signed by {len(second.signed)} of the "
                f"{second.threshold} root keys it lists"
            )
            error = "threshold_not_met"
        raise UploadRejected(400, error, "root", detail)
    shortfalls = []
    if not first.verified:
        shortfalls.append(
            Shortfall(
                "root",
                f"root v{version - 1}",
                sorted(first.signed),
                first.threshold,
                sorted(previous.roles["root"].keyids),
            )
        )
    if not second.verified:
        shortfalls.append(
            Shortfall(
                "root",
                f"root v{version}",
                sorted(second.signed),
                second.threshold,
                sorted(new_root.signed.roles["root"].keyids),
            )
        )
    return valid, shortfalls


def _signers_needed(
    delegator: Root | Targets, role: str, metadata: Metadata[Any]
) -> tuple[bool, set[str], int, list[str]]:
    result = delegator.get_verification_result(role, metadata.signed_bytes, metadata.signatures)
    return (
        result.verified,
        set(result.signed),
        result.threshold,
        sorted(result.unsigned | result.signed),
    )


def check_bins_signed_as_targets(state: RepositoryAfterUpload) -> None:
    """Hash bins are targets split up: hosts and co-signers see a tag in a bin as signed
    by the targets keys. So both steps of the delegation, targets -> ``bins`` and
    ``bins`` -> the bins, list exactly the keys and threshold root gives targets (else
    one holder of a 2-of-2 targets key could hand the bins to their key alone); ``bins``
    signs no tag itself and is the last of targets' delegations."""
    bins = state.get(BINS_ROLE)
    succinct = bins_of(bins.signed) if bins is not None else None
    if bins is None or succinct is None:
        return
    targets = state.get("targets")
    delegation = bins_delegation(targets.signed) if targets is not None else None
    if targets is None or delegation is None:
        raise UploadRejected(
            400,
            "bins_not_delegated",
            BINS_ROLE,
            f"{BINS_ROLE} delegates to hash bins but targets does not delegate to {BINS_ROLE}",
        )
    expected = state.root.roles["targets"]
    for name, role in (("targets", delegation), (BINS_ROLE, succinct)):
        if set(role.keyids) != set(expected.keyids) or role.threshold != expected.threshold:
            raise UploadRejected(
                400,
                "bins_keys_differ",
                name,
                f"{name} delegates the hash bins to {len(role.keyids)} key(s) with threshold "
                f"{role.threshold}; hash bins are signed by the targets keys with the targets "
                f"threshold (root lists {len(expected.keyids)} key(s), threshold "
                f"{expected.threshold}): delegate to exactly those (trustkit bins lays the "
                "bins out again)",
            )
    if bins.signed.targets:
        raise UploadRejected(
            400,
            "bins_signs_tags",
            BINS_ROLE,
            f"{BINS_ROLE} signs {len(bins.signed.targets)} tag(s) itself; it only delegates "
            "to the hash bins, which sign the tags",
        )
    delegations = targets.signed.delegations
    assert delegations is not None and delegations.roles is not None  # it delegates bins
    if list(delegations.roles)[-1] != BINS_ROLE:
        raise UploadRejected(
            400,
            "bins_not_last",
            "targets",
            f"targets delegates to {BINS_ROLE} before other roles; TUF's lookup ends in the "
            f"hash bins, so {BINS_ROLE} comes last",
        )


def check_signature_thresholds(state: RepositoryAfterUpload) -> None:
    roles = ["targets", *state.delegated_roles()]
    bins = state.bin_roles()
    others = [
        r
        for r in state.uploaded
        if r not in roles and r not in bins and r not in ("root", "snapshot")
    ]
    for role in [*roles, *bins, *others]:
        metadata = state.get(role)
        if metadata is None:
            continue
        delegator: Root | Targets
        if role == "targets":
            delegator_name, delegator = "root", state.root
        else:
            found = state.delegator(role)
            if found is None:
                raise UploadRejected(
                    400,
                    "unknown_role",
                    role,
                    f"{role} is not delegated by targets or any delegated role",
                )
            delegator_name, delegator, _ = found
        if role not in state.uploaded and delegator_name not in state.uploaded:
            continue  # neither the role nor what it is checked against changed
        verified, signed, threshold, keyids = _signers_needed(delegator, role, metadata)
        if role in state.uploaded:
            state.valid_signers[role] = signed
        if verified:
            continue
        if role in state.uploaded and signed:
            # Signed by some of the keys its delegator lists: co-signers may complete it.
            # (A delegator in this same upload was checked first: it is trusted, or itself
            # pending on the trusted keys.)
            state.shortfalls.append(
                Shortfall(role, delegator_name, sorted(signed), threshold, keyids)
            )
            continue
        if role in state.uploaded:
            raise UploadRejected(
                400,
                "threshold_not_met",
                role,
                f"{role} is signed by {len(signed)} of the {threshold} keys its delegator lists",
            )
        raise UploadRejected(
            400,
            "stale_role",
            role,
            f"stored {role} is not signed by the keys the new metadata lists; "
            f"re-sign {role} and upload it in the same publish",
        )


def check_not_expired(uploaded: Mapping[str, Metadata[Any]], now: datetime) -> None:
    for role, metadata in uploaded.items():
        if metadata.signed.is_expired(now):
            raise UploadRejected(
                400,
                "expired",
                role,
                f"{role} expired at {metadata.signed.expires.isoformat()}; "
                "sign it again with a future expiry",
            )


def check_delegated_paths(state: RepositoryAfterUpload) -> None:
    """A delegated role signs only paths that every delegation above it allows: a signer
    cannot widen its own paths by delegating on to a role of its own. A hash bin signs
    only the tags whose names hash into it, and delegates nothing."""
    for role, metadata in state.uploaded.items():
        if role in ("root", "targets", "snapshot"):
            continue
        chain = _delegation_chain(state, role)
        if isinstance(chain[0][1], SuccinctRoles) and metadata.signed.delegations is not None:
            raise UploadRejected(
                400, "bin_delegates", role, f"{role} is a hash bin: it may delegate nothing"
            )
        for path in metadata.signed.targets:
            for name, delegation in chain:
                if isinstance(delegation, SuccinctRoles):
                    if delegation.get_role_for_target(path) != name:
                        raise UploadRejected(
                            400,
                            "outside_delegated_paths",
                            role,
                            f"{role} signs '{path}', which belongs in the hash bin "
                            f"{delegation.get_role_for_target(path)}",
                        )
                elif not delegation.is_delegated_path(path):
                    allowed = delegation.paths or delegation.path_hash_prefixes or []
                    whose = "its" if name == role else f"its delegator {name}'s"
                    raise UploadRejected(
                        400,
                        "outside_delegated_paths",
                        role,
                        f"{role} signs '{path}', which is outside {whose} delegated paths "
                        f"({', '.join(allowed)})",
                    )


def _delegation_chain(state: RepositoryAfterUpload, role: str) -> list[tuple[str, Delegation]]:
    """The delegations from ``role`` up to targets: each role's name and its delegation."""
    chain: list[tuple[str, Delegation]] = []
    name = role
    while name != "targets" and len(chain) <= len(state.delegated_roles()):
        found = state.delegator(name)
        assert found is not None  # check_signature_thresholds ran first
        parent, _, delegation = found
        chain.append((name, delegation))
        name = parent
    return chain


def snapshot_held_by_server(root: Root, server_keys: Mapping[str, Sequence[Key]]) -> bool:
    """Whether ``root`` trusts the server's snapshot key (else the publisher holds it)."""
    usable = {key.keyid for key in server_keys.get("snapshot", ())}
    return bool(usable & set(root.roles["snapshot"].keyids))


def check_root_lists_server_keys(
    state: RepositoryAfterUpload, server_keys: Mapping[str, Sequence[Key]]
) -> None:
    """``server_keys`` are, per online role, the server's key and, during a rotation, the
    next one: a new root may list either. The timestamp key is always the server's; the
    snapshot key may be the publisher's instead."""
    if "root" not in state.uploaded:
        return
    root = state.root
    for role in ONLINE_ROLES:
        listed = root.roles[role]
        if role == "snapshot" and not snapshot_held_by_server(root, server_keys):
            continue
        usable = {key.keyid for key in server_keys.get(role, ())}
        if not usable & set(listed.keyids) or listed.threshold != 1:
            raise UploadRejected(
                400,
                "server_keys_missing",
                "root",
                f"root must list the server's {role} key with threshold 1 "
                f"(fetch it from {role}.key) so the server can sign {role}",
            )


def check_publisher_snapshot(
    state: RepositoryAfterUpload,
    parts: Mapping[str, bytes],
    server_keys: Mapping[str, Sequence[Key]],
) -> None:
    """A publisher who holds the snapshot key sends a snapshot with every upload: signed
    by a threshold of the snapshot keys root lists, naming every targets role at its
    version after the upload (and the hash of its bytes, if it gives one), dropping
    no role an earlier snapshot named."""
    root = state.root
    uploaded = state.uploaded.get("snapshot")
    if snapshot_held_by_server(root, server_keys):
        if uploaded is not None:
            raise UploadRejected(
                400,
                "server_signed_role",
                "snapshot",
                "snapshot is signed by the server for this repository; upload root, targets "
                "or delegated roles only",
            )
        return
    if uploaded is None:
        raise UploadRejected(
            400,
            "snapshot_missing",
            "snapshot",
            "the publisher holds the snapshot key of this repository: upload a new snapshot "
            "with every change (trustkit does when the key is in its keystore)",
        )
    verified, signed, threshold, _ = _signers_needed(root, "snapshot", uploaded)
    if not verified:
        raise UploadRejected(
            400,
            "threshold_not_met",
            "snapshot",
            f"snapshot is signed by {len(signed)} of the {threshold} snapshot keys root lists",
        )
    meta = {name.removesuffix(".json"): info for name, info in uploaded.signed.meta.items()}
    previous = state.get_stored("snapshot")
    if previous is not None:
        for name, info in previous.signed.meta.items():
            role = name.removesuffix(".json")
            if role not in meta or meta[role].version < info.version:
                raise UploadRejected(
                    400,
                    "snapshot_rollback",
                    "snapshot",
                    f"snapshot lists {role} at version "
                    f"{meta[role].version if role in meta else 'none'}, below the "
                    f"{info.version} hosts already trust",
                )
    for role in ["targets", *state.delegated_roles(), *state.bin_roles()]:
        current = state.get(role)
        if current is None:
            continue
        info = meta.get(role)
        if info is None or info.version != current.signed.version:
            raise UploadRejected(
                400,
                "snapshot_mismatch",
                "snapshot",
                f"snapshot lists {role} at version {info.version if info else 'none'}; "
                f"after this upload it is version {current.signed.version}",
            )
        data = parts.get(role) if role in state.uploaded else state.stored_bytes(role)
        if data is not None and (info.length is not None or info.hashes):
            try:
                info.verify_length_and_hashes(data)
            except Exception:  # python-tuf's LengthOrHashMismatchError
                raise UploadRejected(
                    400,
                    "snapshot_mismatch",
                    "snapshot",
                    f"snapshot gives a length or hash for {role} that its bytes do not have",
                ) from None


def validate_upload(
    parts: Mapping[str, bytes],
    stored: Mapping[str, StoredMetadata],
    server_keys: Mapping[str, Sequence[Key]],
    limits: Limits,
    now: datetime,
) -> RepositoryAfterUpload:
    """Apply every rule in order; return the repository as it will be if all pass."""
    try:
        return _validate(parts, stored, server_keys, limits, now)
    except (SerializationError, UnicodeError) as error:
        # Signatures and key ids cover canonical JSON, which has no floats and no lone
        # surrogates: metadata holding them can be neither signed nor verified.
        raise UploadRejected(
            400,
            "malformed",
            None,
            f"the upload holds a value TUF's canonical JSON cannot encode: {error}",
        ) from None


def _validate(
    parts: Mapping[str, bytes],
    stored: Mapping[str, StoredMetadata],
    server_keys: Mapping[str, Sequence[Key]],
    limits: Limits,
    now: datetime,
) -> RepositoryAfterUpload:
    check_role_names(parts)
    check_size_limits(parts, limits)
    uploaded = check_parses_as_role(parts, limits)
    check_repository_exists(uploaded, stored)
    check_target_names(uploaded)
    check_delegated_role_names(uploaded)
    check_printable_strings(uploaded)
    check_key_ids(uploaded)
    check_one_id_per_key(uploaded)
    check_thresholds_reachable(uploaded)
    check_bin_layout(uploaded)
    check_versions_increase(uploaded, stored)
    root_signers, root_shortfalls = check_root_chained(uploaded, stored)
    state = RepositoryAfterUpload(uploaded, stored)
    if "root" in uploaded:
        state.valid_signers["root"] = root_signers
    state.shortfalls.extend(root_shortfalls)
    check_bins_signed_as_targets(state)
    check_signature_thresholds(state)
    check_not_expired(uploaded, now)
    check_delegated_paths(state)
    check_root_lists_server_keys(state, server_keys)
    check_publisher_snapshot(state, parts, server_keys)
    return state
