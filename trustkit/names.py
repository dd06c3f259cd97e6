"""Parsing and normalising the names trustkit works with: GUNs, tags, digests, references.

A GUN (globally unique name) is a registry host plus a repository path, as Docker
normalises it: ``nginx`` is ``docker.io/library/nginx``. It is canonical: every spelling
of one registry (host case, ``:443``, Docker Hub's aliases, IPv6 forms) gives one GUN,
used for policy rules, trust lookup and the pinned name handed to Docker alike; a name
with no one spelling is refused. ``name_matches`` is the one glob of name patterns (host
policies and server token scopes). Parsers raise ``UsageError`` with the rule that was
broken; they never guess.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass

from trustkit.errors import UsageError

__all__ = [
    "DEFAULT_TAG",
    "DOCKER_HUB_ALIASES",
    "DOCKER_HUB_ENDPOINT",
    "ImageReference",
    "Digest",
    "canonical_pattern",
    "canonical_registry",
    "name_matches",
    "parse_digest",
    "parse_gun",
    "parse_reference",
    "validate_tag",
    "validate_target_name",
]

DEFAULT_REGISTRY = "docker.io"
DOCKER_HUB_ALIASES = (
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",  # Docker Hub answers there too
)
DOCKER_HUB_ENDPOINT = "registry-1.docker.io"  # where Docker Hub's registry API answers
DEFAULT_TAG = "latest"
MAX_GUN_LENGTH = 255

HTTPS_PORT = 443
_HOST_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
_NUMERIC_HOST = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+))*")
_PORT = re.compile(r"[0-9]{1,5}")
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
    """The canonical GUN of a repository name: the one spelling of the place Docker
    would pull it from.

    Docker normalises ``nginx`` to ``docker.io/library/nginx``; beyond that, trustkit
    gives every spelling of one registry one name (``Host:0443``, ``host:443`` and
    ``host`` are one place; so are Docker Hub's aliases), so a spelling can pick neither
    another policy rule nor another repository's trust data. A name that cannot be
    given one spelling is refused, never passed through.
    """
    name = text.strip()
    if not name:
        raise UsageError("the repository name is empty", hint="e.g. registry.example.com/team/app")
    if "://" in name:
        raise UsageError(
            f"'{text}' looks like a URL, not a repository name",
            hint="drop the scheme: registry.example.com/team/app",
        )
    if not name.isascii() or not name.isprintable() or any(c.isspace() for c in name):
        raise UsageError(
            f"'{text}' holds characters a repository name cannot hold",
            hint="write the name in plain ASCII letters, digits, '.', '_', '-', '/' and ':'",
        )
    first, sep, rest = name.partition("/")
    if sep and _names_a_registry(first):
        domain, path = canonical_registry(first, name=text), rest
    else:
        domain, path = DEFAULT_REGISTRY, name
    if "." not in domain and ":" not in domain and domain != "localhost":
        # Docker reads "Team/app" as registry "Team"; "team/app" is Docker Hub's.
        raise UsageError(
            f"Docker reads '{first}' in '{text}' as a registry host, but it is not one",
            hint="repository paths are lower case; a registry host has a '.' or a port",
        )
    if domain == DEFAULT_REGISTRY and "/" not in path:
        path = f"library/{path}"
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


def _names_a_registry(first: str) -> bool:
    """Whether Docker reads the first component as a registry host, as its reference
    parser does (a dot, a port, ``localhost``, or any upper-case letter)."""
    return "." in first or ":" in first or first == "localhost" or first != first.lower()


def canonical_registry(text: str, *, name: str | None = None) -> str:
    """``host[:port]`` spelled one way: lower case, the port as a plain number and left
    out when it is 443 (where Docker reaches a registry anyway), IPv4 as four decimal
    numbers, IPv6 compressed in brackets, Docker Hub's aliases as ``docker.io``."""
    where = f"'{text}' in '{name}'" if name is not None and name != text else f"'{text}'"
    if text.startswith("["):
        host, bracket, port_text = text[1:].partition("]")
        host = _canonical_ipv6(host, where)
        if not bracket or (port_text and not port_text.startswith(":")):
            raise UsageError(f"{where} is not a valid registry host", hint="e.g. [::1]:5000")
        port_text = port_text[1:] if port_text else ""
        has_port = bool(port_text) or text.endswith(":")
    else:
        host, colon, port_text = text.partition(":")
        host = _canonical_host_name(host.lower(), where)
        has_port = bool(colon)
    port = _canonical_port(port_text, where) if has_port else None
    registry = host if port in (None, HTTPS_PORT) else f"{host}:{port}"
    return DEFAULT_REGISTRY if registry in DOCKER_HUB_ALIASES else registry


def _canonical_host_name(host: str, where: str) -> str:
    if host.endswith("."):
        raise UsageError(
            f"{where} ends the registry host with a dot",
            hint=f"write it without the dot: {host.rstrip('.')}",
        )
    labels = host.split(".")
    if not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise UsageError(
            f"{where} is not a valid registry host name",
            hint="use letters, digits, '-' and '.' between labels, e.g. registry.example.com",
        )
    if _NUMERIC_HOST.fullmatch(host):
        # A resolver reads 127.1, 0x7f.0.0.1 and 017.0.0.1 as addresses too; one spelling.
        try:
            address = ipaddress.IPv4Address(host)
        except ValueError:
            address = None
        if address is None or str(address) != host:
            raise UsageError(
                f"{where} is not an IPv4 address written as four decimal numbers",
                hint="write the address as a.b.c.d, e.g. 127.0.0.1",
            )
    return host


def _canonical_ipv6(host: str, where: str) -> str:
    try:
        if "%" in host:
            raise ValueError(host)
        address = ipaddress.IPv6Address(host)
        if address.ipv4_mapped is not None:  # [::ffff:127.0.0.1] is 127.0.0.1
            return str(address.ipv4_mapped)
        return f"[{address.compressed}]"
    except ValueError:
        raise UsageError(
            f"{where} is not a valid IPv6 registry address",
            hint="write it in brackets without a zone, e.g. [::1]:5000",
        ) from None


def _canonical_port(port_text: str, where: str) -> int:
    if not _PORT.fullmatch(port_text) or not 0 < int(port_text) < 65536:
        raise UsageError(
            f"{where} has no valid port number",
            hint="write the port as digits from 1 to 65535, e.g. registry.example.com:5000",
        )
    return int(port_text)


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


def name_matches(pattern: str, name: str) -> bool:
    """Whether a repository name matches a pattern, in host policies and token scopes
    alike: ``*`` matches within one path component (never a ``/``), ``**`` across
    components; every other character matches only itself."""
    return _pattern_regex(pattern).fullmatch(name) is not None


@functools.cache
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    parts = re.split(r"(\*\*|\*)", pattern)
    return re.compile(
        "".join("[^/]*" if p == "*" else ".*" if p == "**" else re.escape(p) for p in parts)
    )


def canonical_pattern(pattern: str) -> str:
    """A name pattern with its registry host spelled as ``parse_gun`` spells hosts, so
    ``Registry.example.com:443/team/*`` covers what ``registry.example.com/team/*``
    covers. A pattern without ``*`` is a name, and is canonicalised as one."""
    if "*" not in pattern:
        return parse_gun(pattern)
    first, sep, rest = pattern.partition("/")
    if not sep or "*" in first or not _names_a_registry(first):
        return pattern
    return f"{canonical_registry(first, name=pattern)}/{rest}"


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


_ID_LIKE = re.compile(r"(?:sha256:)?[0-9a-f]+")


def may_name_an_image_id(text: str) -> bool:
    """Whether Docker may take ``text`` for an image ID (or a prefix of one) rather than
    a name: a bare run of hex digits, with no registry, path, tag or digest. The daemon
    looks such a string up as an ID once no image has that name, whatever it holds."""
    return bool(_ID_LIKE.fullmatch(text.strip()))
