"""Parsing and normalising the names trustkit works with: GUNs, tags, digests, references.

A GUN (globally unique name) is a registry host plus a repository path, as Docker
normalises it: ``nginx`` is ``docker.io/library/nginx``. Parsers raise ``UsageError``
with the rule that was broken; they never guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from trustkit.errors import UsageError

__all__ = [
    "DEFAULT_TAG",
    "DOCKER_HUB_ALIASES",
    "DOCKER_HUB_ENDPOINT",
    "ImageReference",
    "Digest",
    "parse_digest",
    "parse_gun",
    "parse_reference",
    "validate_tag",
    "validate_target_name",
]

DEFAULT_REGISTRY = "docker.io"
DOCKER_HUB_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io")
DOCKER_HUB_ENDPOINT = "registry-1.docker.io"  # where Docker Hub's registry API answers
DEFAULT_TAG = "latest"
MAX_GUN_LENGTH = 255

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"^{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?$")
_PATH_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_SHA256_HEX = re.compile(r"^[a-f0-9]{64}$")


@dataclass(frozen=True)
class Digest:
    """A content digest such as ``sha256:4f3c…``; only sha256 is accepted for images."""

    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


@dataclass(frozen=True)
class ImageReference:
    """``GUN[:TAG][@DIGEST]`` split into its parts, with the GUN normalised."""

    gun: str
    tag: str | None
    digest: Digest | None

    def __str__(self) -> str:
        tag = f":{self.tag}" if self.tag else ""
        digest = f"@{self.digest}" if self.digest else ""
        return f"{self.gun}{tag}{digest}"

    def pinned(self, digest: Digest | str) -> str:
        """``GUN@sha256:…``: the form that cannot be moved to another image."""
        return f"{self.gun}@{digest}"


def parse_digest(text: str) -> Digest:
    """Parse ``sha256:HEX`` (64 lower-case hex digits)."""
    algorithm, sep, hexpart = text.strip().partition(":")
    if not sep or algorithm != "sha256" or not _SHA256_HEX.fullmatch(hexpart):
        raise UsageError(
            f"'{text}' is not a valid digest",
            hint="give it as sha256: followed by 64 lower-case hex digits",
        )
    return Digest(algorithm, hexpart)


def parse_gun(text: str) -> str:
    """Normalise a repository name to its GUN, the way Docker names repositories."""
    name = text.strip()
    if not name:
        raise UsageError("the repository name is empty", hint="e.g. registry.example.com/team/app")
    if "://" in name:
        raise UsageError(
            f"'{text}' looks like a URL, not a repository name",
            hint="drop the scheme: registry.example.com/team/app",
        )
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        # Host names are case-insensitive, and Docker Hub answers to several names:
        # one spelling each, so a policy or a trust anchor cannot be sidestepped.
        domain, path = first.lower(), rest
        if domain in DOCKER_HUB_ALIASES:
            domain = DEFAULT_REGISTRY
    else:
        domain, path = DEFAULT_REGISTRY, name
    if domain == DEFAULT_REGISTRY and "/" not in path:
        path = f"library/{path}"
    if not _DOMAIN.fullmatch(domain):
        raise UsageError(f"'{domain}' in '{text}' is not a valid registry host name")
    for component in path.split("/"):
        if not _PATH_COMPONENT.fullmatch(component):
            raise UsageError(
                f"'{component}' in '{text}' is not a valid repository path component",
                hint="use lower-case letters, digits and single separators ('.', '_', '-')",
            )
    gun = f"{domain}/{path}"
    if len(gun) > MAX_GUN_LENGTH:
        raise UsageError(f"repository name '{text}' is longer than {MAX_GUN_LENGTH} characters")
    return gun


def validate_tag(tag: str) -> str:
    """Check a tag against Docker's tag grammar."""
    if not _TAG.fullmatch(tag):
        raise UsageError(
            f"'{tag}' is not a valid tag",
            hint="a tag is up to 128 letters, digits, '_', '.' or '-', "
            "not starting with '.' or '-'",
        )
    return tag


def parse_reference(
    text: str, *, require_tag: bool = False, default_tag: str | None = None
) -> ImageReference:
    """Parse ``NAME[:TAG][@sha256:HEX]``.

    A reference with neither tag nor digest gets ``default_tag`` (Docker's ``latest``
    for the commands that act like Docker); with ``require_tag`` it must name a tag.
    """
    name = text.strip()
    digest: Digest | None = None
    if "@" in name:
        name, _, digest_text = name.partition("@")
        digest = parse_digest(digest_text)
    tag: str | None = None
    last_slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > last_slash:
        name, tag = name[:colon], validate_tag(name[colon + 1 :])
    if tag is None and digest is None and default_tag is not None:
        tag = default_tag
    if require_tag and tag is None:
        raise UsageError(
            f"'{text}' names no tag",
            hint=f"add one, e.g. {text}:1.0",
        )
    return ImageReference(parse_gun(name), tag, digest)


def validate_target_name(name: str) -> str:
    """Check the name of a signed file: a relative path without '..' or empty parts."""
    parts = name.split("/")
    if (
        not name
        or len(name) > 255
        or name.startswith("/")
        or any(part in ("", ".", "..") for part in parts)
        or any(ord(ch) < 0x20 for ch in name)
    ):
        raise UsageError(
            f"'{name}' is not a valid target name",
            hint="use a relative name such as 'charts/app-1.0.tgz' (no '..', no leading '/')",
        )
    return name


def is_docker_tag(text: str) -> bool:
    """Whether ``text`` is a tag in Docker's grammar (``validate_tag``'s rule, as a test)."""
    return _TAG.fullmatch(text) is not None


MAX_FILE_NAME_LENGTH = 255


def is_safe_file_name(name: str) -> bool:
    """Whether ``name`` may name a signed file: a relative POSIX path of printable
    characters (no control, format or bidi-override character can reach a terminal), no
    '..', '.' or empty parts, no backslash, no leading or trailing space, at most 255
    characters."""
    return (
        0 < len(name) <= MAX_FILE_NAME_LENGTH
        and name.isprintable()
        and name == name.strip()
        and "\\" not in name
        and not any(part in ("", ".", "..") for part in name.split("/"))
    )
