"""What "sign these tags" means before anything is signed: which tags, and exactly which
manifest (digest, size, media type) each one is signed as.

A tag is signed as what the publisher states (``--digest``/``--size``, a line of a list
file) or, where nothing is stated, as what the registry serves for it now. A release
signs many tags in one publish: one list, checked whole before the first registry
request, so that a typo on line 900 costs nothing. This module never signs or uploads;
the publisher does that with the targets this module returns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from tuf.api.metadata import TargetFile

from client.changelist import Change
from client.registry import Registry
from client.verify import Verifier
from trustkit.bins import is_bin_name
from trustkit.errors import UsageError
from trustkit.metadata import image_target
from trustkit.names import Digest, ImageReference, parse_digest, parse_reference, validate_tag

__all__ = [
    "Revocation",
    "TagToSign",
    "load_tag_list",
    "read_tag_list",
    "tags_from_references",
    "tags_to_revoke",
    "targets_to_sign",
]

OpenRegistry = Callable[[], AbstractContextManager[Registry]]

# RFC 6838's type/subtype: what a manifest's media type may be, and nothing a terminal acts on.
_MEDIA_TYPE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
)


@dataclass(frozen=True)
class TagToSign:
    """One tag and what the publisher says it names; unstated parts come from the registry."""

    tag: str
    digest: Digest | None = None
    size: int | None = None
    media_type: str | None = None

    def __post_init__(self) -> None:
        validate_tag(self.tag)
        if self.media_type is not None and not _MEDIA_TYPE.fullmatch(self.media_type):
            raise UsageError(
                f"{self.media_type!r} is not a media type",
                hint="e.g. application/vnd.oci.image.manifest.v1+json",
            )
        if self.size is not None and self.size <= 0:
            raise UsageError(f"the size {self.size} of {self.tag} must be a positive number")
        if self.digest is None and (self.size is not None or self.media_type is not None):
            raise UsageError(
                f"a size or media type for {self.tag} describes a digest you give; without "
                "one, the registry says what the tag names",
                hint="give --digest too (in a list file: the digest), or leave the size "
                "and media type out",
            )

    @property
    def stated(self) -> bool:
        """Whether nothing needs asking the registry."""
        return self.digest is not None and self.size is not None


def tags_from_references(
    references: Sequence[str],
    *,
    digest: str | None = None,
    size: int | None = None,
    media_type: str | None = None,
) -> tuple[str, list[TagToSign]]:
    """The repository and tags of ``IMAGE:TAG[@DIGEST]`` references given on the command
    line; ``digest``/``size``/``media_type`` (the flags) describe a single reference."""
    if not references:
        raise UsageError("name at least one IMAGE:TAG to sign, or a list with --from FILE")
    if len(references) > 1 and (digest or size is not None or media_type):
        raise UsageError(
            "--digest, --size and --media-type describe one reference, not several",
            hint="write each as IMAGE:TAG@sha256:… or list them in a file for --from",
        )
    parsed = [parse_reference(text, require_tag=True) for text in references]
    gun = _one_repository(parsed)
    flag_digest = parse_digest(digest) if digest else None
    tags = []
    for ref, text in zip(parsed, references, strict=True):
        assert ref.tag is not None
        if flag_digest and ref.digest and flag_digest != ref.digest:
            raise UsageError(f"--digest {flag_digest} differs from the digest in {text}")
        tags.append(TagToSign(ref.tag, flag_digest or ref.digest, size, media_type))
    return gun, _without_repeats(tags)


def read_tag_list(text: str, source: str) -> list[TagToSign]:
    """Tags from a list file: JSON (a list of ``{"tag", "digest", "size", "media_type"}``)
    or lines of ``TAG DIGEST SIZE [MEDIA_TYPE]`` (blank lines and ``#`` comments skipped).
    Every line is checked before anything is signed."""
    stripped = text.lstrip()
    if stripped.startswith(("[", "{")):
        tags = _tags_from_json(stripped, source)
    else:
        tags = [
            _tag_from_line(line, source, number)
            for number, line in enumerate(text.splitlines(), start=1)
            if line.strip() and not line.lstrip().startswith("#")
        ]
    if not tags:
        raise UsageError(f"{source} lists no tag to sign")
    return _without_repeats(tags)


def load_tag_list(path: str, stdin: TextIO) -> list[TagToSign]:
    """The tags of the list file at ``path`` (``-``: standard input), checked whole."""
    if path == "-":
        return read_tag_list(stdin.read(), "standard input")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(
            f"{path} is not UTF-8 text", hint="list one TAG DIGEST SIZE a line"
        ) from None
    return read_tag_list(text, path)


def targets_to_sign(
    gun: str,
    tags: Iterable[TagToSign],
    open_registry: OpenRegistry,
    asked: Callable[[int, int], None] | None = None,
) -> list[TargetFile]:
    """A target per tag: as stated, or as the registry serves it now (the manifest's
    bytes hashed here, so what is signed is exactly what the registry hands out);
    ``asked(done, total)`` after each tag the registry was asked for (a progress bar's)."""
    tags = list(tags)
    resolved: dict[str, tuple[Digest, int, str | None]] = {}
    unstated = [tag for tag in tags if not tag.stated]
    if unstated:
        with open_registry() as registry:
            for tag in unstated:
                reference = ImageReference(gun, None if tag.digest else tag.tag, tag.digest)
                manifest = registry.resolve(reference, read_body=True)
                resolved[tag.tag] = (
                    manifest.digest,
                    manifest.size,
                    tag.media_type or manifest.media_type,
                )
                if asked is not None:
                    asked(len(resolved), len(unstated))
    targets = []
    for tag in tags:
        if tag.tag in resolved:
            digest, size, media_type = resolved[tag.tag]
        else:
            assert tag.digest is not None and tag.size is not None
            digest, size, media_type = tag.digest, tag.size, tag.media_type
        targets.append(image_target(tag.tag, digest, size, media_type))
    return targets


@dataclass(frozen=True)
class Revocation:
    """The tags one revoke removes, and the signed tags it leaves to other signers."""

    tags: list[str]
    left_to_signers: dict[str, list[str]] = field(default_factory=dict)


def tags_to_revoke(
    verifier: Verifier,
    gun: str,
    tag: str | None,
    staged: Sequence[Change],
    signer: str | None = None,
) -> Revocation:
    """The tags a revoke removes: ``tag`` (signed, or staged here to be signed), or with
    no tag every tag signed by the role the revoke signs as (``signer``, else targets and
    its hash bins), as ``docker trust revoke IMAGE`` removes the signatures one holds."""
    if tag is not None:
        if not any(change.path == tag for change in staged):
            verifier.trusted_repository(gun, tags=[tag]).target(tag)  # raises if not signed
        return Revocation([tag])
    trusted = verifier.trusted_repository(gun)
    mine: list[str] = []
    others: dict[str, list[str]] = {}
    for name in trusted.signed_tags():
        role = trusted.signer(name)
        if role == signer or (signer is None and (role == "targets" or is_bin_name(role))):
            mine.append(name)
        else:
            others.setdefault(role, []).append(name)
    if not mine:
        held = f" signed by {signer}" if signer else ""
        raise UsageError(f"{gun} has no signed tags{held} to revoke")
    return Revocation(mine, others)


def _one_repository(parsed: Sequence[ImageReference]) -> str:
    guns = sorted({ref.gun for ref in parsed})
    if len(guns) > 1:
        raise UsageError(
            f"sign publishes one repository at a time, and these name {len(guns)}: "
            f"{', '.join(guns)}",
            hint="run sign once per repository",
        )
    return guns[0]


def _without_repeats(tags: list[TagToSign]) -> list[TagToSign]:
    """A tag listed twice the same way counts once; listed two ways, it is a mistake."""
    seen: dict[str, TagToSign] = {}
    for tag in tags:
        earlier = seen.setdefault(tag.tag, tag)
        if earlier != tag:
            raise UsageError(
                f"the tag {tag.tag} is listed twice, as two different images",
                hint="keep the one you mean to sign",
            )
    return list(seen.values())


def _tag_from_line(line: str, source: str, number: int) -> TagToSign:
    fields = line.split()
    if len(fields) not in (3, 4):
        raise UsageError(
            f"{source}:{number}: expected TAG DIGEST SIZE [MEDIA_TYPE], got {len(fields)} field(s)",
            hint="e.g. 1.4.2 sha256:4f3c… 1573",
        )
    tag, digest, size = fields[:3]
    try:
        return TagToSign(
            tag, parse_digest(digest), _size(size), fields[3] if len(fields) == 4 else None
        )
    except UsageError as error:
        raise UsageError(f"{source}:{number}: {error.message}", hint=error.hint) from None


def _tags_from_json(text: str, source: str) -> list[TagToSign]:
    try:
        document: Any = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"{source} is not valid JSON: {error}") from None
    entries = document.get("tags") if isinstance(document, dict) else document
    if not isinstance(entries, list):
        raise UsageError(f'{source}: expected a list of tags (or {{"tags": [...]}})')
    tags = []
    for number, entry in enumerate(entries, start=1):
        where = f"{source}: entry {number}"
        if not isinstance(entry, dict) or not isinstance(entry.get("tag"), str):
            raise UsageError(f'{where} is not an object with a "tag"')
        unknown = set(entry) - {"tag", "digest", "size", "media_type"}
        if unknown:
            raise UsageError(f"{where} has unknown field(s): {', '.join(sorted(unknown))}")
        try:
            digest = entry.get("digest")
            size = entry.get("size")
            media_type = entry.get("media_type")
            if size is not None and (not isinstance(size, int) or isinstance(size, bool)):
                raise UsageError(f"the size of {entry['tag']} is not a whole number")
            if media_type is not None and not isinstance(media_type, str):
                raise UsageError(f"the media type of {entry['tag']} is not a string")
            if digest is not None and not isinstance(digest, str):
                raise UsageError(f"the digest of {entry['tag']} is not a string")
            tags.append(
                TagToSign(entry["tag"], parse_digest(digest) if digest else None, size, media_type)
            )
        except UsageError as error:
            raise UsageError(f"{where}: {error.message}", hint=error.hint) from None
    return tags


def _size(text: str) -> int:
    if not text.isdigit():
        raise UsageError(f"'{text}' is not a size in bytes")
    return int(text)
