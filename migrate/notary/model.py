"""What the reader returns: verified roles, targets, delegations and the repository,
with Notary's role names and download limits."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from securesystemslib.signer import SSlibKey

ROOT = "root"
TARGETS = "targets"
SNAPSHOT = "snapshot"
TIMESTAMP = "timestamp"
BASE_ROLES = (ROOT, TARGETS, SNAPSHOT, TIMESTAMP)
RELEASES_ROLE = "targets/releases"  # the role Docker signs with and prefers

MAX_TIMESTAMP_SIZE = 1 << 20  # notary.MaxTimestampSize
MAX_DOWNLOAD_SIZE = 100 << 20  # notary.MaxDownloadSize: a root, whose size nothing states
MAX_ROOT_WALK = 1024  # root versions walked through at most, one request each
MAX_ROLES = 10_000  # targets and delegations in one repository

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey


@dataclass(frozen=True)
class NotaryKey:
    """A public key as Notary lists it.

    ``key_id`` is the id it is listed under; ``computed_id`` the id its content hashes to
    (they differ only in broken metadata). ``canonical_key_id`` is Notary's
    ``CanonicalKeyID``: for a certificate, the id of its bare public key — the name of the
    private key file in ``~/.docker/trust/private``. ``sslib_key`` is the same public key
    for TUF (``None`` when the key type cannot be used there).
    """

    key_id: str
    computed_id: str
    keytype: str
    public: bytes
    canonical_key_id: str
    certificate: x509.Certificate | None = field(default=None, compare=False, repr=False)
    public_key: PublicKey | None = field(default=None, compare=False, repr=False)
    sslib_key: SSlibKey | None = field(default=None, compare=False, repr=False)

    @property
    def public_pem(self) -> bytes | None:
        """The public key as PEM SubjectPublicKeyInfo (what ``trustkit key import`` reads)."""
        if self.public_key is None:
            return None
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@dataclass(frozen=True)
class NotaryRole:
    """A verified role: version, expiry, the keys it lists and those that signed it."""

    name: str
    version: int
    expires: datetime
    threshold: int
    key_ids: tuple[str, ...]
    signed_by: tuple[str, ...]


@dataclass(frozen=True)
class NotaryTarget:
    """One signed target (a tag, for an image): its hashes (hex), length and signer role."""

    name: str
    role: str
    length: int
    hashes: Mapping[str, str]
    custom: Any = None

    @property
    def sha256(self) -> str | None:
        return self.hashes.get("sha256")

    @property
    def digest(self) -> str | None:
        """``sha256:HEX`` as a registry names the manifest, if a sha256 is signed."""
        return f"sha256:{self.sha256}" if self.sha256 else None


@dataclass(frozen=True)
class NotaryDelegation:
    """A delegated role (``targets/releases``, a Docker signer ``targets/alice``, …).

    ``paths`` are the prefixes it may sign, already cut down to its parent's as Notary
    does; ``listed_paths`` what its parent wrote. ``version``/``expires`` are ``None`` when
    it has published nothing (the snapshot does not list it).
    """

    name: str
    parent: str
    threshold: int
    keys: Mapping[str, NotaryKey]
    paths: tuple[str, ...]
    listed_paths: tuple[str, ...]
    version: int | None = None
    expires: datetime | None = None

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self.keys)

    @property
    def sslib_keys(self) -> tuple[SSlibKey, ...]:
        """The keys trustkit can use (any key type TUF cannot use is left out)."""
        return tuple(key.sslib_key for key in self.keys.values() if key.sslib_key is not None)

    def may_sign(self, name: str) -> bool:
        return any(name.startswith(path) for path in self.paths)


@dataclass(frozen=True)
class NotaryRepository:
    """Everything verified about one Notary repository.

    ``targets`` is what ``notary list`` shows (one signer per name), ``docker_tags`` what
    ``docker pull`` would use (only ``targets/releases`` and ``targets``),
    ``role_targets`` every role's own targets (inside its paths), ``ignored_targets`` the
    (role, name) pairs a delegate signed outside its paths.
    """

    gun: str
    server: str
    root_source: Literal["pinned", "first-use"]
    root_json: bytes  # the newest root, exactly as served and verified
    root_versions: tuple[int, ...]  # every root version verified, oldest first
    root_keys: Mapping[str, NotaryKey]
    roles: Mapping[str, NotaryRole]
    delegations: Mapping[str, NotaryDelegation]
    role_targets: Mapping[str, Mapping[str, NotaryTarget]]
    children: Mapping[str, tuple[str, ...]]
    targets: Mapping[str, NotaryTarget]
    docker_tags: Mapping[str, NotaryTarget]
    ignored_targets: tuple[tuple[str, str], ...] = ()
    skipped_delegations: Mapping[str, str] = field(default_factory=dict)

    @property
    def trusted_on_first_use(self) -> bool:
        """True when no root was pinned: the root was trusted because the server sent it."""
        return self.root_source == "first-use"

    @property
    def root_key_ids(self) -> tuple[str, ...]:
        return self.roles[ROOT].key_ids

    @property
    def all_targets(self) -> tuple[NotaryTarget, ...]:
        return tuple(t for targets in self.role_targets.values() for t in targets.values())

    def resolve(self, name: str, *roles: str) -> NotaryTarget | None:
        """Notary's ``GetTargetByName(name, roles…)``: the first role, in that order of
        subtrees, that signs ``name`` (default: everything under ``targets``)."""
        order = roles or (TARGETS,)
        for role in order:
            skip = set(order) - {role}
            for visited in walk(self, name, role, skip):
                target = self.role_targets.get(visited, {}).get(name)
                if target is not None:
                    return target
        return None


def _paths_of(repository: NotaryRepository, role: str) -> tuple[str, ...]:
    if role == TARGETS:
        return ("",)
    delegation = repository.delegations.get(role)
    return delegation.paths if delegation else ()


def walk(
    repository: NotaryRepository, target: str, role_path: str, skip: set[str]
) -> Iterator[str]:
    """``Repo.WalkTargets``: breadth first from ``targets`` over roles with metadata."""
    queue = [TARGETS]
    while queue:
        role = queue.pop(0)
        if role not in repository.role_targets:
            continue
        children = list(repository.children.get(role, ()))
        if role_path.startswith(role + "/"):  # above the subtree asked for: only go down
            queue.extend(children)
            continue
        in_paths = target == "" or any(target.startswith(p) for p in _paths_of(repository, role))
        in_subtree = role == role_path or role.startswith(role_path + "/")
        if in_paths and in_subtree and role not in skip:
            yield role
            queue.extend(children)
