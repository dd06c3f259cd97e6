"""Notary's public keys: the usable key of each key type, its ids, and the keys listed
in a root or a delegation."""

from __future__ import annotations

import contextlib
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from securesystemslib.signer import SSlibKey

from migrate.notary.canonical import notary_key_id
from migrate.notary.certificates import first_certificate
from migrate.notary.model import NotaryKey, PublicKey
from migrate.notary.parsing import b64, json_object


def _key_material(keytype: str, public: bytes) -> tuple[PublicKey | None, x509.Certificate | None]:
    """The usable public key (and certificate) of a Notary key, or ``None``."""
    certificate = None
    loaded: Any = None
    try:
        if keytype in ("ecdsa", "rsa"):
            loaded = serialization.load_der_public_key(public)
        elif keytype == "ed25519" and len(public) == 32:
            loaded = ed25519.Ed25519PublicKey.from_public_bytes(public)
        elif keytype in ("ecdsa-x509", "rsa-x509"):
            certificate = first_certificate(public, strict=False)
            loaded = certificate.public_key() if certificate is not None else None
    except (ValueError, UnsupportedAlgorithm):
        return None, certificate
    family = keytype.removesuffix("-x509")
    if (
        (family == "ecdsa" and isinstance(loaded, ec.EllipticCurvePublicKey))
        or (family == "rsa" and isinstance(loaded, rsa.RSAPublicKey))
        or (keytype == "ed25519" and isinstance(loaded, ed25519.Ed25519PublicKey))
    ):
        return loaded, certificate
    return None, certificate


def make_key(key_id: str, keytype: str, public: bytes) -> NotaryKey:
    public_key, certificate = _key_material(keytype, public)
    computed = notary_key_id(keytype, public)
    canonical = computed
    if keytype in ("ecdsa-x509", "rsa-x509"):
        leaf = first_certificate(public, strict=True)
        if leaf is not None:
            with contextlib.suppress(ValueError, UnsupportedAlgorithm):
                spki = leaf.public_key().public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                canonical = notary_key_id(keytype.removesuffix("-x509"), spki)
    sslib_key = None
    if public_key is not None:
        try:
            sslib_key = SSlibKey.from_crypto(public_key)
        except (ValueError, UnsupportedAlgorithm):
            sslib_key = None
    return NotaryKey(
        key_id, computed, keytype, public, canonical, certificate, public_key, sslib_key
    )


def parse_keys(value: Any, what: str) -> dict[str, NotaryKey]:
    keys: dict[str, NotaryKey] = {}
    if value is None:
        return keys
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not an object")
    for key_id, key in value.items():
        obj = json_object(key, f"{what}[{key_id}]", ("keytype", "keyval"))
        keytype = obj.get("keytype")
        if not isinstance(keytype, str):
            raise ValueError(f"{what}[{key_id}] has no keytype")
        keyval = json_object(obj.get("keyval"), f"{what}[{key_id}].keyval", ("public", "private"))
        public = keyval.get("public")
        keys[key_id] = make_key(
            key_id, keytype, b"" if public is None else b64(public, f"key {key_id}")
        )
    return keys
