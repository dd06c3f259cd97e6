"""Docker's trust directory: the root and role versions Docker (or the notary CLI) has
cached for a repository, used as the pinned root and rollback minimums.

Where the directory is depends on ``DOCKER_CONFIG``: the command line reads it once
(``docker_trust_dir(os.environ)``) and passes the directory in; the functions fall back
to the process environment only when given none.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from migrate.notary.errors import NotaryVerificationError
from migrate.notary.metadata import common_fields
from migrate.notary.model import ROOT, SNAPSHOT, TARGETS, TIMESTAMP
from migrate.notary.roots import validate_root
from migrate.notary.signatures import parse_envelope, verify_signatures


def docker_trust_dir(env: Mapping[str, str] | None = None) -> Path:
    """``~/.docker/trust`` (``$DOCKER_CONFIG/trust`` when ``env`` sets it), as Docker uses it.

    ``env`` defaults to the process environment.
    """
    config = (os.environ if env is None else env).get("DOCKER_CONFIG")
    return (Path(config) if config else Path.home() / ".docker") / "trust"


def _metadata_dir(gun: str, trust_dir: Path | None) -> Path:
    return (trust_dir or docker_trust_dir()) / "tuf" / Path(*gun.split("/")) / "metadata"


def docker_trust_root(gun: str, trust_dir: Path | None = None) -> bytes | None:
    """The root Docker (or the notary CLI) trusts for ``gun``, if it has seen the repository."""
    path = _metadata_dir(gun, trust_dir) / "root.json"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def docker_trust_versions(gun: str, trust_dir: Path | None = None) -> dict[str, int]:
    """Versions of the roles Docker has cached for ``gun``, as minimums against rollback.

    As Notary's client does, a cached role counts only if its signatures verify against
    the cached root (its expiry does not matter); the rest count as version 1.
    """
    directory = _metadata_dir(gun, trust_dir)
    root_raw = docker_trust_root(gun, trust_dir)
    if root_raw is None:
        return {}
    try:
        root, _ = validate_root(
            root_raw, gun, str(directory / "root.json"), None, datetime.now(UTC)
        )
    except NotaryVerificationError:
        return {}
    versions = {ROOT: root.version}
    for role, tuf_type in ((TIMESTAMP, "Timestamp"), (SNAPSHOT, "Snapshot"), (TARGETS, "Targets")):
        path = directory / f"{role}.json"
        try:
            envelope = parse_envelope(path.read_bytes(), role, str(path))
            verify_signatures(envelope, root.role(role))
            version, _ = common_fields(envelope, tuf_type, ("meta", "targets", "delegations"))
        except (OSError, NotaryVerificationError, ValueError):
            continue
        versions[role] = version
    return versions
