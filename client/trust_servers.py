"""The trust servers a host policy names, and the strict check of their URLs.

A route (``[[route]]`` in ``policy.toml``) sends the repositories it names to a trust
server of their own: its ``server`` URL, an optional ``mirror`` to read metadata from,
and an optional ``ca_file`` for their TLS. A URL is refused unless it is plainly an
``https://`` origin with at most a path (``http://`` only for a loopback host, as a
test or a local proxy has): no user or password in it, no query or fragment, nothing
outside printable ASCII, no ``..`` in its path. Each is kept in one canonical spelling,
so that two spellings of one server are one server, and different servers are never one.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from trustkit.errors import UsageError

__all__ = ["TrustServer", "ca_file_path", "same_server", "trust_url"]

_HOST = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")
_PATH = re.compile(r"(/[A-Za-z0-9._~-]+)*/?")
_HINT = "write it as https://HOST[:PORT][/PATH] (http:// only for 127.0.0.1 or localhost)"


@dataclass(frozen=True)
class TrustServer:
    """Where a host reads the trust data of some repositories."""

    url: str  # canonical (trust_url)
    mirror: str | None = None  # canonical; metadata is read from here when set
    ca_file: Path | None = None
    # Which part of which policy named it, for messages; not part of what it is.
    where: str = field(default="", compare=False)

    @property
    def store(self) -> str:
        """The name of this server's trust store on a host: one per server URL (a
        mirror serves the server's own metadata, so it shares the server's store)."""
        return quote(self.url, safe="")


def trust_url(value: Any, what: str) -> str:
    """``value`` as a canonical trust server (or mirror) URL; a UsageError naming
    ``what`` otherwise."""
    if not isinstance(value, str) or not value:
        raise UsageError(f"'{what}' must be a URL string", hint=_HINT)
    shown = value.encode("unicode_escape").decode("ascii")
    if not value.isascii() or any(c <= " " or c == "\x7f" for c in value):
        raise UsageError(
            f"{what} '{shown}' holds spaces, control or non-ASCII characters",
            hint="write a host name in its ASCII (punycode) form",
        )
    if "\\" in value or "?" in value or "#" in value:
        raise UsageError(f"{what} '{shown}' has a backslash, query or fragment", hint=_HINT)
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not parts.netloc:
        raise UsageError(f"{what} '{shown}' is not an https:// URL", hint=_HINT)
    if "@" in parts.netloc:
        hidden = f"{scheme}://…@{parts.netloc.rpartition('@')[2]}"  # never echo a password
        raise UsageError(
            f"{what} '{hidden}' holds a user name or password",
            hint="never put credentials in a policy; the server's token comes from "
            "TRUSTKIT_TOKEN or --token-file",
        )
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:
        raise UsageError(f"{what} '{shown}' has an invalid port", hint=_HINT) from None
    literal = _ip_literal(host)
    if literal is None and not _HOST.fullmatch(host):
        raise UsageError(f"{what} '{shown}' has no valid host name", hint=_HINT)
    if scheme == "http" and not _loopback(host, literal):
        raise UsageError(
            f"{what} '{shown}' is plain http to a host other than this one",
            hint="use https:// (http:// is allowed only for 127.0.0.1, ::1 or localhost)",
        )
    path = parts.path
    if not _PATH.fullmatch(path) or any(seg in (".", "..") for seg in path.split("/")):
        raise UsageError(f"{what} '{shown}' has a path trustkit does not accept", hint=_HINT)
    netloc = f"[{host}]" if literal is not None and literal.version == 6 else host
    if port is not None and port != (443 if scheme == "https" else 80):
        netloc += f":{port}"
    return f"{scheme}://{netloc}{path.rstrip('/')}"


def same_server(given: str, canonical: str) -> bool:
    """Whether ``given`` (as a user typed it) names the server ``canonical``."""
    try:
        return trust_url(given, "--server") == canonical
    except UsageError:
        return False


def ca_file_path(value: Any) -> Path:
    """A readable file of CA certificates, named by its absolute path (an agent's working
    directory is not the admin's)."""
    if not isinstance(value, str) or not value or "\x00" in value:
        raise UsageError("'ca_file' must be the path of a PEM file")
    path = Path(value)
    if not path.is_absolute():
        raise UsageError(
            f"ca_file '{value}' is not an absolute path", hint="e.g. /etc/trustkit/ca.pem"
        )
    try:
        with path.open("rb"):
            pass
    except OSError as error:
        raise UsageError(f"cannot read ca_file {value}: {error.strerror}") from None
    return path


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _loopback(host: str, literal: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
    return host == "localhost" or (literal is not None and literal.is_loopback)
