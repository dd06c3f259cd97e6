"""A host's policy: which repositories must be signed, which may run unsigned, and
which signer roles a repository's tags must come from.

The policy is a TOML file (``--policy``, ``TRUSTKIT_POLICY`` or
``/etc/trustkit/policy.toml``)::

    default = "signed"                    # or "unsigned-ok"; "signed" when absent

    [[rule]]
    repositories = ["docker.io/library/*"]
    trust = "unsigned-ok"

    [[rule]]
    repositories = ["registry.example.com/team/**"]
    signers = ["targets"]                 # tags must be signed by one of these roles
    root_keys = ["9f3c…", "/etc/trustkit/keys/team-root.pub"]  # key ids or PEM files
    root_threshold = 1                    # how many of them must sign the first root
    first_use = "refuse"                  # or "trust" (the default): a root never seen

    [[route]]                             # where a host reads these repositories' trust data
    repositories = ["registry.a.example/**"]
    server = "https://trust.a.example"    # the trust server that serves them
    mirror = "https://cdn.a.example/tuf"  # optional: read metadata from here instead
    ca_file = "/etc/trustkit/trust-a-ca.pem"  # optional: CA certificates for their TLS

Patterns are full repository names; ``*`` matches within one path component, ``**``
across components (the one meaning ``trustkit.names.name_matches`` gives, as in server
token scopes). Registry hosts in patterns and names are compared in their one
canonical spelling (``trustkit.names.parse_gun``). The first rule that matches a
repository applies; so does the first route (``[[route]]``, kept apart from the rules so
that a narrower rule above a registry's route cannot send its repositories elsewhere). A
repository no route names is read from the command's server (``--server``,
``TRUSTKIT_SERVER``). Route URLs are checked strictly (``client.trust_servers``). A typo
in a policy must never weaken it, so unknown keys and values are refused.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from client.trust_servers import TrustServer, ca_file_path, trust_url
from trustkit.errors import UsageError
from trustkit.names import canonical_pattern, name_matches, parse_gun

__all__ = ["SIGNED", "UNSIGNED_OK", "HostPolicy", "Route", "Rule", "TrustServer"]

SIGNED = "signed"
UNSIGNED_OK = "unsigned-ok"
TRUST_LEVELS = (SIGNED, UNSIGNED_OK)
_RULE_KEYS = {"repositories", "trust", "signers", "root_keys", "root_threshold", "first_use"}
FIRST_USE = ("trust", "refuse")
_TOP_KEYS = {"default", "rule", "route"}
_ROUTE_KEYS = {"repositories", "server", "mirror", "ca_file"}


@dataclass(frozen=True)
class Rule:
    """What the policy asks of one repository."""

    patterns: tuple[str, ...]
    trust: str = SIGNED
    signers: tuple[str, ...] | None = None
    # Trust anchors declared rather than learned: the first root a host meets must be
    # signed by root_threshold of these keys ("id:<key id>" or "der:<public key DER,
    # hex>"); with none, first_use says whether a root never seen before is trusted as
    # served or refused.
    root_keys: frozenset[str] = frozenset()
    root_threshold: int = 1
    first_use: str = "trust"

    def matches(self, gun: str) -> bool:
        """``gun`` is canonical (``parse_gun``); so are the patterns (``canonical_pattern``)."""
        return any(name_matches(pattern, gun) for pattern in self.patterns)


@dataclass(frozen=True)
class Route:
    """The trust server of the repositories a ``[[route]]`` names."""

    patterns: tuple[str, ...]
    server: TrustServer

    def matches(self, gun: str) -> bool:
        return any(name_matches(pattern, gun) for pattern in self.patterns)


@dataclass(frozen=True)
class HostPolicy:
    rules: tuple[Rule, ...] = ()
    default: Rule = Rule(("**",))
    source: str = "the built-in policy (every image must be signed)"
    routes: tuple[Route, ...] = ()

    def server_for(self, gun: str) -> TrustServer | None:
        """The trust server the policy names for a repository, or None: the command's."""
        canonical = parse_gun(gun)
        for route in self.routes:
            if route.matches(canonical):
                return route.server
        return None

    def rule_for(self, gun: str) -> Rule:
        """The rule for a repository, by its one canonical name whatever the spelling."""
        canonical = parse_gun(gun)
        for rule in self.rules:
            if rule.matches(canonical):
                return rule
        return self.default

    @classmethod
    def load(cls, path: Path) -> HostPolicy:
        try:
            document = tomllib.loads(path.read_text())
        except OSError as error:
            raise UsageError(f"cannot read the policy {path}: {error.strerror}") from None
        except tomllib.TOMLDecodeError as error:
            raise UsageError(f"the policy {path} is not valid TOML: {error}") from None
        except UnicodeDecodeError:
            raise UsageError(f"the policy {path} is not UTF-8 text") from None
        return cls.from_document(document, str(path))

    @classmethod
    def from_document(cls, document: dict[str, Any], source: str) -> HostPolicy:
        unknown = set(document) - _TOP_KEYS
        if unknown:
            raise _invalid(source, f"unknown key(s) {', '.join(sorted(unknown))}")
        default_trust = _trust(document.get("default", SIGNED), source, "default")
        raw_rules = document.get("rule", [])
        if not isinstance(raw_rules, list):
            raise _invalid(source, "'rule' must be an array of tables ([[rule]])")
        rules = tuple(_rule(raw, source, number) for number, raw in enumerate(raw_rules, 1))
        raw_routes = document.get("route", [])
        if not isinstance(raw_routes, list):
            raise _invalid(source, "'route' must be an array of tables ([[route]])")
        routes = tuple(_route(raw, source, number) for number, raw in enumerate(raw_routes, 1))
        return cls(rules, Rule(("**",), default_trust), f"the policy {source}", routes)


def _route(raw: Any, source: str, number: int) -> Route:
    where = f"route {number}"
    if not isinstance(raw, dict):
        raise _invalid(source, f"{where} is not a table")
    unknown = set(raw) - _ROUTE_KEYS
    if unknown:
        raise _invalid(source, f"{where} has unknown key(s) {', '.join(sorted(unknown))}")
    if "server" not in raw:
        raise _invalid(source, f"{where} names no 'server' (the trust server's https URL)")
    try:
        server = trust_url(raw["server"], "server")
        mirror = trust_url(raw["mirror"], "mirror") if "mirror" in raw else None
        ca_file = ca_file_path(raw["ca_file"]) if "ca_file" in raw else None
    except UsageError as error:
        raise _invalid(source, f"{where}: {error.message}", hint=error.hint) from None
    patterns = _patterns(raw.get("repositories"), source, where)
    return Route(patterns, TrustServer(server, mirror, ca_file, f"{where} of the policy {source}"))


def _rule(raw: Any, source: str, number: int) -> Rule:
    where = f"rule {number}"
    if not isinstance(raw, dict):
        raise _invalid(source, f"{where} is not a table")
    unknown = set(raw) - _RULE_KEYS
    if unknown & _ROUTE_KEYS:
        raise _invalid(
            source,
            f"{where} names a trust server ({', '.join(sorted(unknown & _ROUTE_KEYS))}); "
            "servers are named in [[route]] tables",
            hint='e.g. [[route]] repositories = ["registry.example.com/**"] '
            'server = "https://trust.example.com"',
        )
    if unknown:
        raise _invalid(source, f"{where} has unknown key(s) {', '.join(sorted(unknown))}")
    canonical = _patterns(raw.get("repositories"), source, where)
    signers = raw.get("signers")
    if signers is not None and (
        not isinstance(signers, list) or not signers or not all(isinstance(s, str) for s in signers)
    ):
        raise _invalid(source, f"{where}: 'signers' must be a list of role names")
    first_use = raw.get("first_use", "trust")
    if first_use not in FIRST_USE:
        raise _invalid(source, f"{where}: first_use '{first_use}' is not one of trust, refuse")
    root_keys = _root_keys(raw.get("root_keys", []), source, where)
    threshold = raw.get("root_threshold", 1)
    if (
        not isinstance(threshold, int)
        or isinstance(threshold, bool)
        or threshold < 1
        or (root_keys and threshold > len(root_keys))
    ):
        raise _invalid(
            source, f"{where}: root_threshold must be 1 to the number of root_keys, not {threshold}"
        )
    return Rule(
        tuple(canonical),
        _trust(raw.get("trust", SIGNED), source, where),
        tuple(signers) if signers is not None else None,
        root_keys,
        threshold,
        str(first_use),
    )


def _patterns(patterns: Any, source: str, where: str) -> tuple[str, ...]:
    """Full repository name patterns, each in its one canonical spelling."""
    if (
        not isinstance(patterns, list)
        or not patterns
        or not all(isinstance(p, str) and p for p in patterns)
    ):
        raise _invalid(source, f"{where} needs 'repositories', a list of name patterns")
    canonical = []
    for pattern in patterns:
        host = pattern.split("/", 1)[0]
        has_host = "." in host or ":" in host or host == "localhost" or "*" in host
        if not has_host or ("/" not in pattern and "*" not in pattern):
            raise _invalid(
                source,
                f"{where}: '{pattern}' is not a full repository name",
                hint="write names as Docker normalises them, e.g. docker.io/library/nginx",
            )
        try:
            canonical.append(canonical_pattern(pattern))
        except UsageError as error:
            raise _invalid(source, f"{where}: {error.message}", hint=error.hint) from None
    return tuple(canonical)


def _root_keys(raw: Any, source: str, where: str) -> frozenset[str]:
    """Key ids (64 lower-case hex) or files holding a public key in PEM."""
    if not isinstance(raw, list) or not all(isinstance(each, str) for each in raw):
        raise _invalid(source, f"{where}: 'root_keys' must be a list of key ids or PEM files")
    keyids = set()
    for each in raw:
        if len(each) == 64 and all(c in "0123456789abcdef" for c in each):
            keyids.add(f"id:{each}")
            continue
        try:
            pem = Path(each).read_bytes()
        except OSError as error:
            raise _invalid(
                source,
                f"{where}: root key '{each}' is neither a key id nor a readable file "
                f"({error.strerror})",
            ) from None
        keyids.add(f"der:{_pem_material(pem, each, source, where).hex()}")
    return frozenset(keyids)


def _pem_material(pem: bytes, name: str, source: str, where: str) -> bytes:
    """The public key in ``pem`` as DER SubjectPublicKeyInfo: one spelling per key."""
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        PublicFormat,
        load_pem_public_key,
    )

    try:
        key = load_pem_public_key(pem)
    except (ValueError, TypeError) as error:
        raise _invalid(source, f"{where}: {name} holds no public key: {error}") from None
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _trust(value: Any, source: str, where: str) -> str:
    if value not in TRUST_LEVELS:
        raise _invalid(source, f"{where}: trust '{value}' is not one of {', '.join(TRUST_LEVELS)}")
    return str(value)


def _invalid(source: str, text: str, hint: str | None = None) -> UsageError:
    return UsageError(
        f"the policy {source} is not valid: {text}",
        hint=hint or "see the policy section of trustkit's README",
    )
