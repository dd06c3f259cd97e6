"""TUF metadata helpers shared by the publisher and the server, over python-tuf.

Everything here builds or reads ``tuf.api.metadata`` objects; signing and canonical
JSON are python-tuf's and securesystemslib's. Nothing here touches disk or network.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)
from securesystemslib.formats import encode_canonical
from securesystemslib.signer import Key, Signer
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Role,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

from trustkit.names import Digest

__all__ = [
    "COMPACT_JSON",
    "ONLINE_ROLES",
    "TOP_LEVEL_ROLES",
    "ImageTarget",
    "describe_target",
    "file_target",
    "is_file_target",
    "image_target",
    "key_id_of",
    "key_material_of",
    "meta_for",
    "new_root",
    "new_snapshot",
    "new_targets",
    "new_timestamp",
    "public_key_from_dict",
    "public_key_to_dict",
    "sign_with",
    "withdraw_statement",
]

TOP_LEVEL_ROLES = ("root", "targets", "snapshot", "timestamp")
ONLINE_ROLES = ("snapshot", "timestamp")
SPEC_VERSION = "1.0.31"
COMPACT_JSON = JSONSerializer(compact=True)


@dataclass(frozen=True)
class ImageTarget:
    """What a signed tag says: the digest, size and media type of a manifest."""

    name: str
    digest: str
    size: int
    media_type: str | None


def image_target(tag: str, digest: Digest, size: int, media_type: str | None) -> TargetFile:
    """A target for an image tag: path = tag, sha256 = manifest digest, length = size."""
    custom: dict[str, Any] = {"media_type": media_type} if media_type else {}
    unrecognized = {"custom": custom} if custom else {}
    return TargetFile(size, {digest.algorithm: digest.hex}, tag, unrecognized)


def file_target(name: str, data: bytes) -> TargetFile:
    """A target for an arbitrary file, hashed with sha256 and sha512 like Notary does."""
    hashes = {
        "sha256": hashlib.sha256(data).hexdigest(),
        "sha512": hashlib.sha512(data).hexdigest(),
    }
    return TargetFile(len(data), hashes, name)


def is_file_target(target: TargetFile) -> bool:
    """Whether a target is a signed file (``sign-file``, Notary's ``add``), not an image
    tag: files are hashed with more than sha256 and carry no media type; a tag is its
    manifest's sha256 alone."""
    custom = target.unrecognized_fields.get("custom")
    has_media_type = isinstance(custom, dict) and "media_type" in custom
    return not has_media_type and set(target.hashes) != {"sha256"}


def describe_target(target: TargetFile) -> ImageTarget:
    """Read a target back as the digest a host hands to Docker."""
    custom = target.unrecognized_fields.get("custom")
    media_type = custom.get("media_type") if isinstance(custom, dict) else None
    sha256 = target.hashes.get("sha256", "")
    return ImageTarget(target.path, f"sha256:{sha256}", target.length, media_type)


def public_key_to_dict(key: Key) -> dict[str, Any]:
    """A public key as JSON, with its keyid, for the ``{role}.key`` endpoint."""
    return {"keyid": key.keyid, **key.to_dict()}


def public_key_from_dict(data: Mapping[str, Any]) -> Key:
    fields = dict(data)
    keyid = str(fields.pop("keyid"))
    return Key.from_dict(keyid, fields)


def new_root(keys: Mapping[str, Iterable[Key]], expires: datetime, threshold: int = 1) -> Root:
    """Root v1 listing ``keys`` per top-level role, with consistent snapshots on."""
    roles = {name: Role([], threshold if name == "root" else 1) for name in TOP_LEVEL_ROLES}
    root = Root(
        version=1,
        spec_version=SPEC_VERSION,
        expires=expires,
        roles=roles,
        consistent_snapshot=True,
    )
    for role, role_keys in keys.items():
        for key in role_keys:
            root.add_key(key, role)
    return root


def new_targets(expires: datetime) -> Targets:
    return Targets(version=1, spec_version=SPEC_VERSION, expires=expires, targets={})


def key_id_of(key: Key) -> str:
    """The key id TUF defines for a key: sha256 of its canonical JSON. Metadata may
    claim any id for a key; one that differs lets a key hide behind another's id."""
    form = {"keytype": key.keytype, "scheme": key.scheme, "keyval": key.keyval}
    return hashlib.sha256(str(encode_canonical(form)).encode()).hexdigest()


def key_material_of(key: Key) -> bytes:
    """The public key itself (DER SubjectPublicKeyInfo), however metadata spells it.

    One key has many spellings (hex in either case, PEM with other line breaks, the
    keytype ``ecdsa`` or ``ecdsa-sha2-nistp256``), each with its own key id: a role that
    lists two of them would count one signer twice. ValueError if it is no public key
    cryptography can read."""
    public = key.keyval.get("public")
    if not isinstance(public, str):
        raise ValueError("its keyval holds no public key")
    try:
        if key.keytype == "ed25519":
            loaded: Any = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public))
        else:
            loaded = load_pem_public_key(public.encode())
        material: bytes = loaded.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    except Exception as error:  # cryptography raises ValueError or UnsupportedAlgorithm
        raise ValueError(f"its public key does not load ({error})") from None
    return material


def meta_for(data: bytes, version: int) -> MetaFile:
    """Version, length and sha256 of stored metadata bytes, for snapshot or timestamp."""
    return MetaFile(version, len(data), {"sha256": hashlib.sha256(data).hexdigest()})


def new_snapshot(version: int, meta: Mapping[str, MetaFile], expires: datetime) -> Snapshot:
    return Snapshot(
        version=version,
        spec_version=SPEC_VERSION,
        expires=expires,
        meta={f"{role}.json": info for role, info in meta.items()},
    )


def new_timestamp(version: int, snapshot_meta: MetaFile, expires: datetime) -> Timestamp:
    return Timestamp(
        version=version,
        spec_version=SPEC_VERSION,
        expires=expires,
        snapshot_meta=snapshot_meta,
    )


def sign_with(signed: Any, signers: Iterable[Signer]) -> bytes:
    """Wrap ``signed`` in a Metadata envelope, sign with every signer, return its bytes."""
    metadata: Metadata[Any] = Metadata(signed)
    for signer in signers:
        metadata.sign(signer, append=True)
    return metadata.to_bytes(COMPACT_JSON)


def withdraw_statement(gun: str, pending_id: str) -> bytes:
    """What a key holder signs to withdraw a pending change from the server: canonical
    JSON naming the act, the repository and the change, so that the signature serves
    for nothing else."""
    statement = {"_type": "trustkit-withdraw", "gun": gun, "pending": pending_id}
    return str(encode_canonical(statement)).encode()
