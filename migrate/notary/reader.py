"""The Notary reader: fetch a repository's roles in Notary's order and verify each.

``read_notary_repository`` is the entry point; see the package's docstring for what is
checked and why.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from migrate.notary.errors import (
    NotaryExpiredError,
    NotaryVerificationError,
    RootRotationError,
    ThresholdError,
)
from migrate.notary.http import Remote
from migrate.notary.metadata import (
    FileMeta,
    check_content,
    common_fields,
    file_meta,
    refuse_if_expired,
)
from migrate.notary.model import (
    MAX_DOWNLOAD_SIZE,
    MAX_ROLES,
    MAX_ROOT_WALK,
    MAX_TIMESTAMP_SIZE,
    RELEASES_ROLE,
    ROOT,
    SNAPSHOT,
    TARGETS,
    TIMESTAMP,
    NotaryDelegation,
    NotaryKey,
    NotaryRepository,
    NotaryRole,
    NotaryTarget,
    walk,
)
from migrate.notary.parsing import json_int, json_object
from migrate.notary.public_keys import parse_keys
from migrate.notary.roots import Root, parse_root, validate_root
from migrate.notary.signatures import Envelope, SigningRole, parse_envelope, verify_signatures

_DELEGATION_NAME = re.compile(r"^[-a-z0-9_/]+$")


@dataclass
class _TargetsFile:
    role: str
    version: int
    expires: datetime
    signed_by: tuple[str, ...]
    targets: dict[str, NotaryTarget]
    ignored: list[str]
    children: list[NotaryDelegation]


class _Reader:
    def __init__(
        self,
        remote: Remote,
        gun: str,
        now: datetime,
        min_versions: Mapping[str, int],
        strict: bool,
    ) -> None:
        self.remote = remote
        self.gun = gun
        self.now = now
        self.min_versions = min_versions
        self.strict = strict
        self.roles: dict[str, NotaryRole] = {}

    def _min_version(self, role: str, version: int, source: str) -> None:
        minimum = self.min_versions.get(role, 1)
        if version < minimum:
            raise NotaryVerificationError(
                f"rollback refused: {role} is version {version}, but version {minimum} "
                "was trusted before",
                role=role,
                source=source,
            )

    def _root(self, pinned: bytes | None) -> tuple[Root, bytes, str, tuple[int, ...]]:
        raw, source = self.remote.get(ROOT, MAX_DOWNLOAD_SIZE, ROOT)
        if pinned is None:
            root, signed_by = validate_root(raw, self.gun, source, None, self.now)
            versions: list[int] = [root.version]
        else:
            trusted, _ = validate_root(pinned, self.gun, "(pinned root)", None, self.now)
            latest = parse_root(raw, source)
            if latest.version < trusted.version:
                raise NotaryVerificationError(
                    f"rollback refused: the server's root is v{latest.version}, the pinned "
                    f"root is v{trusted.version}",
                    role=ROOT,
                    source=source,
                )
            versions = [trusted.version]
            try:
                root, signed_by = validate_root(raw, self.gun, source, trusted, self.now)
            except RootRotationError:
                if latest.version - trusted.version > MAX_ROOT_WALK:
                    raise
                current = trusted  # walk every version in between, as Notary's updateRoot
                for version in range(trusted.version + 1, latest.version):
                    step_raw, step_source = self.remote.get(
                        f"{version}.{ROOT}", MAX_DOWNLOAD_SIZE, ROOT
                    )
                    current, _ = validate_root(step_raw, self.gun, step_source, current, self.now)
                    if current.version != version:
                        raise NotaryVerificationError(
                            f"{version}.root.json holds root version {current.version}",
                            role=ROOT,
                            source=step_source,
                        ) from None
                    versions.append(version)
                root, signed_by = validate_root(raw, self.gun, source, current, self.now)
            if root.version != versions[-1]:
                versions.append(root.version)
        self._min_version(ROOT, root.version, source)
        refuse_if_expired(ROOT, root.expires, self.now, source)
        key_ids, threshold = root.roles[ROOT]
        self.roles[ROOT] = NotaryRole(
            ROOT, root.version, root.expires, threshold, key_ids, signed_by
        )
        return root, raw, source, tuple(versions)

    def _role_file(
        self, raw: bytes, source: str, role: SigningRole, tuf_type: str, extra: Sequence[str]
    ) -> tuple[Envelope, int, datetime]:
        """Signatures, structure, version and expiry of a top-level role, in Notary's order."""
        envelope = parse_envelope(raw, role.name, source)
        signed_by = verify_signatures(envelope, role)
        try:
            version, expires = common_fields(envelope, tuf_type, extra)
        except ValueError as error:
            raise NotaryVerificationError(
                f"{role.name} metadata is invalid: {error}", role=role.name, source=source
            ) from None
        self._min_version(role.name, version, source)
        refuse_if_expired(role.name, expires, self.now, source)
        self.roles[role.name] = NotaryRole(
            role.name, version, expires, role.threshold, role.key_ids, signed_by
        )
        return envelope, version, expires

    def _meta(self, envelope: Envelope, name: str, *, required: bool) -> FileMeta | None:
        try:
            meta = envelope.signed.get("meta")
            if not isinstance(meta, dict):
                raise ValueError("meta is not an object")
            if name not in meta:
                if required:
                    raise ValueError(f"it lists no {name}")
                return None
            return file_meta(meta[name], f"its entry for {name}", need_sha256=required)
        except ValueError as error:
            raise NotaryVerificationError(
                f"{envelope.role} metadata is invalid: {error}",
                role=envelope.role,
                source=envelope.source,
            ) from None

    def _targets_file(
        self, raw: bytes, source: str, role: NotaryDelegation | None, root: Root
    ) -> _TargetsFile:
        name = role.name if role else TARGETS
        envelope = parse_envelope(raw, name, source)
        keys: Mapping[str, NotaryKey]
        paths: tuple[str, ...]
        if role is None:
            base = root.role(TARGETS)
            keys, threshold, key_ids, paths = base.keys, base.threshold, base.key_ids, ("",)
        else:
            keys, threshold, key_ids, paths = role.keys, role.threshold, role.key_ids, role.paths
        signing_role = SigningRole(name, keys, threshold, key_ids)
        signed_by: tuple[str, ...] = ()
        if role is None:  # Notary: signatures first for targets, last for delegations
            signed_by = verify_signatures(envelope, signing_role)
        try:
            version, expires = common_fields(envelope, "Targets", ("targets", "delegations"))
            targets, ignored = self._targets(envelope.signed.get("targets"), name, paths)
            children = self._delegations(envelope.signed.get("delegations"), name, paths)
        except ValueError as error:
            raise NotaryVerificationError(
                f"{name} metadata is invalid: {error}", role=name, source=source
            ) from None
        self._min_version(name, version, source)
        if role is not None:
            signed_by = verify_signatures(envelope, signing_role)
        refuse_if_expired(name, expires, self.now, source)
        self.roles[name] = NotaryRole(name, version, expires, threshold, key_ids, signed_by)
        return _TargetsFile(name, version, expires, signed_by, targets, ignored, children)

    @staticmethod
    def _targets(
        value: Any, role: str, paths: Sequence[str]
    ) -> tuple[dict[str, NotaryTarget], list[str]]:
        if value is None:
            return {}, []
        if not isinstance(value, dict):
            raise ValueError("targets is not an object")
        targets, ignored = {}, []
        for name, entry in value.items():
            meta = file_meta(entry, f"target {name!r}", need_sha256=False)
            if not any(name.startswith(path) for path in paths):  # DelegationRole.CheckPaths
                ignored.append(name)
                continue
            targets[name] = NotaryTarget(
                name,
                role,
                meta.length,
                {alg: digest.hex() for alg, digest in meta.hashes.items()},
                meta.custom,
            )
        return targets, ignored

    @staticmethod
    def _delegations(
        value: Any, parent: str, parent_paths: Sequence[str]
    ) -> list[NotaryDelegation]:
        """``isValidTargetsStructure`` + ``GetValidDelegations``: direct children, paths cut."""
        if value is None:
            return []
        obj = json_object(value, "delegations", ("keys", "roles"))
        keys = parse_keys(obj.get("keys"), "delegation keys")
        listed = obj.get("roles") or []
        if not isinstance(listed, list):
            raise ValueError("delegations.roles is not a list")
        children, seen = [], set()
        for index, item in enumerate(listed):
            spec = json_object(
                item, f"delegation {index}", ("name", "keyids", "threshold", "paths")
            )
            name = spec.get("name")
            if not isinstance(name, str) or not _is_delegation(name):
                raise ValueError(f"delegation role {name!r} is not a valid delegation name")
            key_ids = spec.get("keyids") or []
            if not isinstance(key_ids, list) or not all(isinstance(k, str) for k in key_ids):
                raise ValueError(f"delegation {name} keyids is not a list of strings")
            missing = [k for k in key_ids if k not in keys]
            if missing:
                raise ValueError(f"delegation {name} lists key {missing[0]} without the key")
            threshold = json_int(spec.get("threshold"), f"delegation {name} threshold", 1)
            listed_paths = spec.get("paths") or []
            if not isinstance(listed_paths, list) or not all(
                isinstance(p, str) for p in listed_paths
            ):
                raise ValueError(f"delegation {name} paths is not a list of strings")
            if posixpath.dirname(name) != parent:  # not a direct child: Notary ignores it
                continue
            if name in seen:
                raise ValueError(f"delegation {name} is listed twice")
            seen.add(name)
            paths = tuple(p for p in listed_paths if any(p.startswith(pp) for pp in parent_paths))
            children.append(
                NotaryDelegation(
                    name,
                    parent,
                    threshold,
                    {k: keys[k] for k in key_ids},
                    paths,
                    tuple(listed_paths),
                )
            )
        return children

    def read(self, pinned_root: bytes | None) -> NotaryRepository:
        """Root, timestamp, snapshot, then targets and its delegations, in Notary's order."""
        root, root_raw, root_source, versions = self._root(pinned_root)

        raw, source = self.remote.get(TIMESTAMP, MAX_TIMESTAMP_SIZE, TIMESTAMP)
        timestamp, _, _ = self._role_file(raw, source, root.role(TIMESTAMP), "Timestamp", ("meta",))
        snapshot_meta = self._meta(timestamp, SNAPSHOT, required=True)
        assert snapshot_meta is not None

        raw, source = self.remote.get(
            f"{SNAPSHOT}.{snapshot_meta.hashes['sha256'].hex()}", snapshot_meta.length, SNAPSHOT
        )
        check_content(raw, snapshot_meta, SNAPSHOT, source)
        snapshot, _, _ = self._role_file(raw, source, root.role(SNAPSHOT), "Snapshot", ("meta",))
        root_meta = self._meta(snapshot, ROOT, required=True)
        assert root_meta is not None
        check_content(root_raw, root_meta, ROOT, root_source)
        self._meta(snapshot, TARGETS, required=True)

        loaded, delegations, skipped = self._load_targets(snapshot, root)
        repository = NotaryRepository(
            gun=self.gun,
            server=self.remote.server,
            root_source="first-use" if pinned_root is None else "pinned",
            root_json=root_raw,
            root_versions=versions,
            root_keys={k: root.keys[k] for k in root.roles[ROOT][0]},
            roles=dict(self.roles),
            delegations=delegations,
            role_targets={name: f.targets for name, f in loaded.items()},
            children={name: tuple(c.name for c in f.children) for name, f in loaded.items()},
            targets={},
            docker_tags={},
            ignored_targets=tuple((n, t) for n, f in loaded.items() for t in f.ignored),
            skipped_delegations=skipped,
        )
        return _with_signed_names(repository)

    def _load_targets(
        self, snapshot: Envelope, root: Root
    ) -> tuple[dict[str, _TargetsFile], dict[str, NotaryDelegation], dict[str, str]]:
        """Targets and every delegation the snapshot lists, pre-order: the files loaded,
        the delegations (with the version and expiry of those loaded) and those skipped."""
        loaded: dict[str, _TargetsFile] = {}
        delegations: dict[str, NotaryDelegation] = {}
        skipped: dict[str, str] = {}
        queue: list[NotaryDelegation | None] = [None]  # None: the top-level targets role
        while queue:
            role = queue.pop(0)
            name = role.name if role else TARGETS
            meta = self._meta(snapshot, name, required=role is None)
            if meta is None:  # Notary: "no checksum for it" - it never published
                continue
            if name in loaded or len(loaded) >= MAX_ROLES:
                raise NotaryVerificationError(
                    f"{name} is reached twice or the repository has too many roles",
                    role=name,
                    source=snapshot.source,
                )
            digest = meta.hashes.get("sha256")
            if digest is None:
                raise NotaryVerificationError(
                    f"the snapshot gives no sha256 for {name}", role=name, source=snapshot.source
                )
            raw, source = self.remote.get(f"{name}.{digest.hex()}", meta.length, name)
            check_content(raw, meta, name, source)
            try:
                loaded_file = self._targets_file(raw, source, role, root)
            except (NotaryExpiredError, ThresholdError) as error:
                if role is None or self.strict:
                    raise
                skipped[name] = error.message
                continue
            loaded[name] = loaded_file
            for child in loaded_file.children:
                delegations[child.name] = child
            queue[:0] = loaded_file.children  # pre-order, as Notary downloads them

        for name, loaded_file in loaded.items():
            if name in delegations:
                delegations[name] = dataclasses.replace(
                    delegations[name], version=loaded_file.version, expires=loaded_file.expires
                )
        return loaded, delegations, skipped


def _with_signed_names(repository: NotaryRepository) -> NotaryRepository:
    """``repository`` with what ``notary list`` and ``docker pull`` take each name to be."""
    listed: dict[str, NotaryTarget] = {}  # ListTargets: first role in the walk wins
    for visited in walk(repository, "", TARGETS, set()):
        for name, target in repository.role_targets[visited].items():
            listed.setdefault(name, target)
    docker: dict[str, NotaryTarget] = {}  # docker/cli: GetTargetByName(tag, releases,
    for name in sorted({t.name for t in repository.all_targets}):  # targets), then it
        chosen = repository.resolve(name, RELEASES_ROLE, TARGETS)  # refuses other roles
        if chosen is not None and chosen.role in (RELEASES_ROLE, TARGETS):
            docker[name] = chosen
    return dataclasses.replace(repository, targets=dict(sorted(listed.items())), docker_tags=docker)


def _is_delegation(name: str) -> bool:
    """``data.IsDelegation``."""
    return (
        name.startswith("targets/")
        and _DELEGATION_NAME.match(name) is not None
        and len(name) < 256
        and posixpath.normpath(name) == name
    )


def read_notary_repository(
    server: str,
    gun: str,
    *,
    pinned_root: bytes | None = None,
    min_versions: Mapping[str, int] | None = None,
    ca_file: str | Path | None = None,
    credentials: tuple[str, str] | None = None,
    now: datetime | None = None,
    timeout: float = 30.0,
    strict: bool = True,
    client: httpx.Client | None = None,
) -> NotaryRepository:
    """Fetch and verify the Notary repository ``gun`` from ``server``.

    ``pinned_root``: the root this host already trusts (e.g. ``docker_trust_root(gun)``);
    without one the server's root is trusted on first use and the result says so
    (``trusted_on_first_use``) — callers should warn loudly. ``min_versions``: versions
    seen before (``docker_trust_versions``), refused as rollbacks if the server is older.
    ``ca_file``: CA certificates for the server's TLS. ``credentials``: (user, password)
    for the server's token realm or basic auth. ``now``: the time expiry is checked at.
    ``strict=False`` skips, as Notary's client does, a delegation that is expired or short
    of signatures (listed in ``skipped_delegations``) instead of refusing the repository.

    Raises ``NotaryVerificationError`` (``NotaryExpiredError`` for expiry) naming the
    role and URL that failed, ``NotaryNotFoundError``, ``NotaryAuthError``,
    ``NotaryServerError`` or ``NotaryUnreachableError``.
    """
    moment = now or datetime.now(UTC)
    remote = Remote(
        server, gun, ca_file=ca_file, credentials=credentials, timeout=timeout, client=client
    )
    try:
        return _Reader(remote, gun, moment, min_versions or {}, strict).read(pinned_root)
    finally:
        remote.close()
