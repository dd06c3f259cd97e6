"""Notary's signed envelope and its signature methods (``tuf/signed/verifiers.go``):
which listed keys signed, and whether a threshold did."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)

from migrate.notary.canonical import notary_canonical_json
from migrate.notary.certificates import pem_blocks
from migrate.notary.errors import NotaryVerificationError, ThresholdError
from migrate.notary.model import NotaryKey
from migrate.notary.parsing import b64, json_object, load_json


@dataclass(frozen=True)
class Signature:
    key_id: str
    method: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    """One fetched metadata file: its exact bytes, the signed part and its signatures."""

    role: str
    source: str
    raw: bytes
    signed: dict[str, Any]
    signatures: tuple[Signature, ...]
    message: bytes  # what the signatures cover


def parse_envelope(raw: bytes, role: str, source: str) -> Envelope:
    try:
        document = json_object(load_json(raw), "the file", ("signed", "signatures"))
        signed = document.get("signed")
        if not isinstance(signed, dict):
            raise ValueError("it has no signed object")
        signatures = []
        listed = document.get("signatures")
        if listed is not None and not isinstance(listed, list):
            raise ValueError("signatures is not a list")
        for index, item in enumerate(listed or []):
            what = f"signature {index}"
            obj = json_object(item, what, ("keyid", "method", "sig"))
            key_id, method = obj.get("keyid"), obj.get("method")
            if not isinstance(key_id, str) or not isinstance(method, str):
                raise ValueError(f"{what} lacks a keyid or method")
            signatures.append(Signature(key_id, method.lower(), b64(obj.get("sig"), what)))
        message = notary_canonical_json(signed)
    except ValueError as error:
        raise NotaryVerificationError(
            f"{role} metadata is malformed: {error}", role=role, source=source
        ) from None
    return Envelope(role, source, raw, signed, tuple(signatures), message)


def _signature_valid(key: NotaryKey, signature: Signature, message: bytes) -> bool:
    """Notary's verifiers (``tuf/signed/verifiers.go``) for one signature."""
    public_key, sig, method = key.public_key, signature.sig, signature.method
    digest = hashlib.sha256(message).digest()
    try:
        if method == "eddsa":
            if key.keytype != "ed25519" or not isinstance(public_key, ed25519.Ed25519PublicKey):
                return False
            if len(sig) != 64:
                return False
            public_key.verify(sig, message)
            return True
        if method == "ecdsa":
            if key.keytype not in ("ecdsa", "ecdsa-x509"):
                return False
            if not isinstance(public_key, ec.EllipticCurvePublicKey):
                return False
            octets = (public_key.curve.key_size + 7) // 8
            candidates = []
            if len(sig) == 2 * octets:  # Notary's own form: r || s, each zero-padded
                r, s = int.from_bytes(sig[:octets], "big"), int.from_bytes(sig[octets:], "big")
                candidates.append(encode_dss_signature(r, s))
            try:
                decode_dss_signature(sig)  # ASN.1, which newer Notary also accepts
                candidates.append(sig)
            except ValueError:
                pass
            for candidate in candidates:
                try:
                    public_key.verify(candidate, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
                    return True
                except InvalidSignature:
                    continue
            return False
        if method in ("rsapss", "rsapkcs1v15", "pycrypto-pkcs#1 v1.5"):
            if method == "pycrypto-pkcs#1 v1.5":  # an RSA key given as PEM, PSS signatures
                blocks = pem_blocks(key.public) if key.keytype == "rsa" else []
                loaded = serialization.load_der_public_key(blocks[0].der) if blocks else None
                public_key = loaded if isinstance(loaded, rsa.RSAPublicKey) else None
            elif key.keytype not in ("rsa", "rsa-x509"):
                return False
            if not isinstance(public_key, rsa.RSAPublicKey):
                return False
            if public_key.key_size < 2048 or len(sig) < 256:
                return False
            scheme: padding.AsymmetricPadding = (
                padding.PKCS1v15()
                if method == "rsapkcs1v15"
                else padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
            )
            public_key.verify(sig, digest, scheme, Prehashed(hashes.SHA256()))
            return True
    except (InvalidSignature, ValueError, UnsupportedAlgorithm):
        return False
    return False


@dataclass(frozen=True)
class SigningRole:
    """Keys and threshold a role's metadata must be signed with."""

    name: str
    keys: Mapping[str, NotaryKey]
    threshold: int
    key_ids: tuple[str, ...]


def verify_signatures(envelope: Envelope, role: SigningRole) -> tuple[str, ...]:
    """The ids of the keys whose signatures are valid; an error below the threshold."""
    where = {"role": envelope.role, "source": envelope.source}
    if not envelope.signatures:
        raise ThresholdError(f"{envelope.role} metadata has no signatures", **where)
    if role.threshold < 1:
        raise ThresholdError(f"{role.name} has an invalid threshold {role.threshold}", **where)
    valid: set[str] = set()
    for signature in envelope.signatures:
        key = role.keys.get(signature.key_id)
        if key is None:
            continue
        if key.computed_id != signature.key_id:
            raise NotaryVerificationError(
                f"{envelope.role} is signed with key {signature.key_id}, whose content has "
                f"the id {key.computed_id}",
                **where,
            )
        if _signature_valid(key, signature, envelope.message):
            valid.add(signature.key_id)
    if len(valid) < role.threshold:
        raise ThresholdError(
            f"signature verification failed for {envelope.role}: {len(valid)} valid "
            f"signature(s) by {role.name}'s keys, {role.threshold} needed "
            f"(keys {', '.join(k[:12] for k in role.key_ids) or 'none'})",
            **where,
        )
    return tuple(sorted(valid))
