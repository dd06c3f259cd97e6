"""Upload rules 1-7 (see ``server.validation``): what the files are: role names, sizes,
parsing as TUF metadata, a repository's first root, target and delegated role names,
and printable strings.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from tuf.api.metadata import (
    Metadata,
    TargetFile,
    Targets,
)

from server.storage import StoredMetadata
from server.upload_state import (
    MAX_MEDIA_TYPE_LENGTH,
    MAX_VERSION,
    ROLE_NAME,
    Limits,
    UploadRejected,
    json_depth,
    shown,
)
from trustkit.bins import (
    is_bin_name,
)
from trustkit.metadata import is_file_target
from trustkit.names import MAX_FILE_NAME_LENGTH, is_docker_tag, is_safe_file_name


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
        if not ROLE_NAME.fullmatch(role):
            name_shown = shown(role)
            raise UploadRejected(
                400, "bad_role_name", name_shown[1:-1], f"{name_shown} is not a valid role name"
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


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise ValueError(f"the key {key!r} appears twice in one object")
        document[key] = value
    return document


def check_parses_as_role(parts: Mapping[str, bytes], limits: Limits) -> dict[str, Metadata[Any]]:
    parsed: dict[str, Metadata[Any]] = {}
    for role, data in parts.items():
        try:
            # A key twice in one object is refused: Python keeps the last value, other
            # parsers the first, and the bytes are stored and served as they came.
            document = json.loads(data, object_pairs_hook=_no_repeated_keys)
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
                        f"{role} signs the tag {shown(path)}, which is not a Docker tag: "
                        "up to 128 letters, digits, '_', '.' or '-', not starting with '.' "
                        "or '-'",
                    )
            elif not is_safe_file_name(path):
                raise UploadRejected(
                    400,
                    "bad_target_name",
                    role,
                    f"{role} signs the file {shown(path)}, which is not a safe file name: "
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
                    f"{role} gives the tag {shown(path)} a media type that is not a string "
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
            if not ROLE_NAME.fullmatch(name):
                raise UploadRejected(
                    400,
                    "bad_role_name",
                    role,
                    f"{role} delegates to {shown(name)}, which is not a valid role name: up "
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
                    f"{_location(where)}: {shown(text)}; metadata strings must be printable",
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
        part if part.isprintable() and len(part) <= 64 else shown(part) for part in where
    )
