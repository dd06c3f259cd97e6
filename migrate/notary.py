"""Read a Notary v1 / Docker Content Trust repository and verify it as Notary's client does.

``read_notary_repository(server, gun)`` fetches a repository from a notary-server and
returns its signed targets (tags), its delegations with their public keys, and every
role's version, expiry and keys — or refuses, naming the role, the URL and what failed.
Nothing it returns has not been verified.

What Notary does, and so what this module does (notary 0.7, ``tuf/``, ``trustpinning/``
and ``client/tufclient.go``; checked against Debian's notary-server 0.7 byte for byte):

* **URLs.** ``GET {server}/v2/{gun}/_trust/tuf/{role}.json`` is the newest version of a
  role; ``{N}.root.json`` a given root version; ``{role}.{sha256 hex}.json`` the role
  whose bytes have that hash. Notary's client fetches ``root.json`` and
  ``timestamp.json`` by name and everything else by hash (``snapshot.<hex>.json``,
  ``targets.<hex>.json``, ``targets/releases.<hex>.json``), with the length the
  referring role gives as a download limit — and so do we.
* **Envelope.** ``{"signed": {...}, "signatures": [{"keyid", "method", "sig"}]}``,
  ``_type`` capitalised (``Root``, ``Targets``, ``Snapshot``, ``Timestamp``; delegations
  are ``Targets``), ``expires`` RFC 3339 with nanoseconds, hashes and signatures base64.
  A signature covers the canonical JSON of ``signed`` (docker/go/canonical: keys sorted,
  no whitespace, only ``"`` and ``\\`` escaped, everything else raw UTF-8). That is
  securesystemslib's ``encode_canonical`` with one difference handled here: Notary
  re-reads numbers as float64 before canonicalising, so an integral float such as
  ``2.0`` signs as ``2``, a fractional one cannot be verified at all, and integers beyond
  2**53 change. See ``notary_canonical_json``.
* **Keys.** ``{"keytype", "keyval": {"private": null, "public": base64}}``; its id is the
  sha256 of that canonical JSON (``private: null`` included). ``ecdsa``/``rsa`` public
  values are DER SubjectPublicKeyInfo, ``ed25519`` the raw 32 bytes, ``ecdsa-x509``/
  ``rsa-x509`` a PEM certificate (chain). Root keys are ``ecdsa-x509`` certificates whose
  CN must be the GUN (or a ``prefix*`` wildcard). Docker's delegation keys are certificates
  too; ``notary delegation add`` also takes bare public keys (``ecdsa``).
* **Signatures.** ``ecdsa``: SHA-256, raw ``r || s`` (newer Notary also accepts DER);
  ``eddsa``: Ed25519; ``rsapss``: PSS, SHA-256, salt 32; ``rsapkcs1v15``. A signature
  listed under a key id whose content hashes differently is an error.
* **Root.** The first root is trusted on first use (TOFU) unless a root is pinned — as
  ``~/.docker/trust/tuf/<gun>/metadata/root.json`` pins it for Docker. A root counts
  only with a threshold of signatures by its own root certificates that match the GUN and
  are valid now (their PEM re-encoded, as Notary's ``CertsToKeys`` does). A newer root
  must also be signed by a threshold of the trusted root's certificates; if it is not,
  the versions in between are walked (``{N}.root.json``), each signed by the previous.
  ``notary key rotate GUN root`` writes a root signed by both the old and the new key.
  Only the newest root must be unexpired; it must also match the snapshot's hash of it.
* **The rest.** Timestamp (signed by the root's timestamp keys) → snapshot (hash and
  length from the timestamp) → targets (hash and length from the snapshot) → each
  delegation the snapshot lists, pre-order, keys and threshold from its parent, its paths
  cut down to those inside its parent's (``RestrictDelegationPathPrefixes``; a path is a
  plain prefix). A delegate's target outside its paths is ignored, as Notary does; a
  delegation the snapshot does not list has published nothing and is skipped. Notary's
  client only warns about (and skips) a delegation that is expired or short of
  signatures; here that is refused unless ``strict=False``.
* **Which signer wins.** ``notary list``: the first role in a breadth-first walk from
  ``targets`` that signs the name. ``docker pull``: ``targets/releases`` first, then the
  walk from ``targets`` — and a tag found first in any other delegation is refused
  (``NotaryRepository.docker_tags``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import hashlib
import hmac
import ipaddress
import json
import math
import os
import posixpath
import re
import ssl
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.x509.oid import NameOID
from securesystemslib.formats import encode_canonical
from securesystemslib.signer import SSlibKey

from trustkit.errors import (
    NotFoundError,
    ServerRefusedError,
    ServerUnreachableError,
    VerificationError,
)

__all__ = [
    "BASE_ROLES",
    "MAX_DOWNLOAD_SIZE",
    "MAX_TIMESTAMP_SIZE",
    "RELEASES_ROLE",
    "NotaryAuthError",
    "NotaryDelegation",
    "NotaryExpiredError",
    "NotaryKey",
    "NotaryNotFoundError",
    "NotaryRepository",
    "NotaryRole",
    "NotaryServerError",
    "NotaryTarget",
    "NotaryUnreachableError",
    "NotaryVerificationError",
    "docker_trust_dir",
    "docker_trust_root",
    "docker_trust_versions",
    "notary_canonical_json",
    "notary_key_id",
    "read_notary_repository",
    "verify_root",
]

ROOT = "root"
TARGETS = "targets"
SNAPSHOT = "snapshot"
TIMESTAMP = "timestamp"
BASE_ROLES = (ROOT, TARGETS, SNAPSHOT, TIMESTAMP)
RELEASES_ROLE = "targets/releases"  # the role Docker signs with and prefers
_TUF_TYPES = {ROOT: "Root", TARGETS: "Targets", SNAPSHOT: "Snapshot", TIMESTAMP: "Timestamp"}

MAX_TIMESTAMP_SIZE = 1 << 20  # notary.MaxTimestampSize
MAX_DOWNLOAD_SIZE = 100 << 20  # notary.MaxDownloadSize: a root, whose size nothing states
MAX_ROOT_WALK = 1024  # root versions walked through at most, one request each
MAX_ROLES = 10_000  # targets and delegations in one repository
_MAX_EXACT = 2**53  # float64 holds every integer up to here; Notary's numbers pass through one
_HASH_SIZES = {"sha256": 32, "sha512": 64}
_DELEGATION_NAME = re.compile(r"^[-a-z0-9_/]+$")
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$"
)

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey


# --------------------------------------------------------------------------- errors


class NotaryVerificationError(VerificationError):
    """Notary metadata failed verification; ``role`` and ``source`` say which and where."""

    def __init__(
        self,
        message: str,
        *,
        role: str | None = None,
        source: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.role = role
        self.source = source


class NotaryExpiredError(NotaryVerificationError):
    """A role's metadata (or a root certificate) is past its expiry."""

    def __init__(self, message: str, *, role: str, source: str | None, expires: datetime) -> None:
        super().__init__(message, role=role, source=source)
        self.expires = expires


class _ThresholdError(NotaryVerificationError):
    """Too few valid signatures — the one failure (with expiry) Notary skips a delegation for."""


class _RootRotationError(NotaryVerificationError):
    """A newer root is not signed by the trusted root's keys (perhaps a version between)."""


class NotaryNotFoundError(NotFoundError):
    """The server has no trust data for the repository."""


class NotaryUnreachableError(ServerUnreachableError):
    """The Notary server could not be reached, timed out or answered with a 5xx."""


class NotaryServerError(ServerRefusedError):
    """The Notary server refused a request (a 4xx other than a missing repository)."""


class NotaryAuthError(NotaryServerError):
    """The server wants credentials that were missing or refused (by it or its token realm)."""


# --------------------------------------------------------------------------- canonical JSON


def _notary_numbers(value: Any, where: str) -> Any:
    """``value`` with numbers as Notary's canonical JSON writes them, or an error.

    Notary verifies a signature over ``MarshalCanonical`` of the signed part decoded into
    ``map[string]interface{}``: every number becomes a float64 first, and canonical mode
    refuses fractions. Integral floats therefore sign as integers; integers beyond 2**53
    would not survive (Notary itself cannot verify them), so they are refused here.
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if abs(value) > _MAX_EXACT:
            raise ValueError(f"{where}: the number {value} is too large for Notary's float64")
        return value
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer() or abs(value) > _MAX_EXACT:
            raise ValueError(f"{where}: Notary's canonical JSON cannot hold the number {value!r}")
        return int(value)
    if isinstance(value, list):
        return [_notary_numbers(item, where) for item in value]
    if isinstance(value, dict):
        return {key: _notary_numbers(item, where) for key, item in value.items()}
    raise ValueError(f"{where}: {type(value).__name__} is not JSON")


def notary_canonical_json(value: Any) -> bytes:
    """The bytes Notary signs for ``value`` (parsed JSON): docker/go/canonical's form.

    Keys sorted by code point (UTF-8 byte order), no whitespace, strings raw UTF-8 with only
    ``"`` and ``\\`` escaped — securesystemslib's ``encode_canonical`` — after the number
    handling of ``_notary_numbers``. Raises ``ValueError`` for what Notary cannot sign.
    """
    encoded = encode_canonical(_notary_numbers(value, "canonical JSON"))
    assert encoded is not None  # without an output function it returns the string
    try:
        return encoded.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("canonical JSON: a string holds a lone UTF-16 surrogate") from None


def notary_key_id(keytype: str, public: bytes) -> str:
    """Notary's id for a key: sha256 of the canonical JSON of the key without its private part."""
    document = {
        "keytype": keytype,
        "keyval": {"private": None, "public": base64.b64encode(public).decode("ascii")},
    }
    return hashlib.sha256(notary_canonical_json(document)).hexdigest()


# --------------------------------------------------------------------------- parsing helpers


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"the key {key!r} appears twice in one object")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _load_json(raw: bytes) -> Any:
    """Strict JSON: UTF-8, no duplicate keys, no NaN. Raises ``ValueError``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("it is not UTF-8") from None
    try:
        return json.loads(text, object_pairs_hook=_unique_pairs, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("it nests too deeply") from None


def _parse_time(value: Any) -> datetime:
    """Go's RFC 3339 (``time.Time`` JSON), nanoseconds cut to microseconds (never later)."""
    match = _RFC3339.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"expires {value!r} is not an RFC 3339 time")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    offset = timedelta(0)
    if zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        offset = sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    try:
        naive = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micro
        )
    except ValueError as error:
        raise ValueError(f"expires {value!r}: {error}") from None
    return (naive - offset).replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"{what} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not valid base64") from None


def _int(value: Any, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} is not an integer")
    if value < minimum:
        raise ValueError(f"{what} {value} is below {minimum}")
    return value


def _object(value: Any, what: str, known: Sequence[str]) -> dict[str, Any]:
    """A JSON object Go reads into a struct with fields ``known``.

    Go matches field names case-insensitively; a key that only case-folds to a field
    would be read differently there than here, so it is refused.
    """
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not an object")
    folded = {name.casefold(): name for name in known}
    for key in value:
        exact = folded.get(key.casefold())
        if exact is not None and exact != key:
            raise ValueError(f"{what} has a field {key!r} that Notary would read as {exact!r}")
    return value


@dataclass(frozen=True)
class _PemBlock:
    kind: str
    has_headers: bool
    der: bytes


_PEM = re.compile(rb"-----BEGIN ([^\r\n-]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)


def _pem_blocks(data: bytes) -> list[_PemBlock]:
    blocks = []
    for match in _PEM.finditer(data):
        body = match.group(2).decode("ascii", "replace")
        lines = body.splitlines()
        has_headers = bool(lines) and ":" in lines[0]
        if has_headers:
            blank = next((i for i, line in enumerate(lines) if not line.strip()), len(lines))
            lines = lines[blank + 1 :]
        try:
            der = base64.b64decode("".join(line.strip() for line in lines), validate=True)
        except (binascii.Error, ValueError):
            continue
        blocks.append(_PemBlock(match.group(1).decode("ascii", "replace"), has_headers, der))
    return blocks


# --------------------------------------------------------------------------- keys


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


def _first_certificate(public: bytes, *, strict: bool) -> x509.Certificate | None:
    """The certificate Notary reads from an x509 key.

    ``strict`` (``LoadCertFromPEM``): the first CERTIFICATE block without headers that
    parses; otherwise (the verifiers' ``pem.Decode``): the first block, whatever it is.
    """
    for block in _pem_blocks(public):
        if strict and (block.kind != "CERTIFICATE" or block.has_headers):
            continue
        try:
            return x509.load_der_x509_certificate(block.der)
        except ValueError:
            if not strict:
                return None
    return None


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
            certificate = _first_certificate(public, strict=False)
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


def _make_key(key_id: str, keytype: str, public: bytes) -> NotaryKey:
    public_key, certificate = _key_material(keytype, public)
    computed = notary_key_id(keytype, public)
    canonical = computed
    if keytype in ("ecdsa-x509", "rsa-x509"):
        leaf = _first_certificate(public, strict=True)
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


def _parse_keys(value: Any, what: str) -> dict[str, NotaryKey]:
    keys: dict[str, NotaryKey] = {}
    if value is None:
        return keys
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not an object")
    for key_id, key in value.items():
        obj = _object(key, f"{what}[{key_id}]", ("keytype", "keyval"))
        keytype = obj.get("keytype")
        if not isinstance(keytype, str):
            raise ValueError(f"{what}[{key_id}] has no keytype")
        keyval = _object(obj.get("keyval"), f"{what}[{key_id}].keyval", ("public", "private"))
        public = keyval.get("public")
        keys[key_id] = _make_key(
            key_id, keytype, b"" if public is None else _b64(public, f"key {key_id}")
        )
    return keys


# --------------------------------------------------------------------------- signatures


@dataclass(frozen=True)
class _Signature:
    key_id: str
    method: str
    sig: bytes


@dataclass(frozen=True)
class _Envelope:
    """One fetched metadata file: its exact bytes, the signed part and its signatures."""

    role: str
    source: str
    raw: bytes
    signed: dict[str, Any]
    signatures: tuple[_Signature, ...]
    message: bytes  # what the signatures cover


def _envelope(raw: bytes, role: str, source: str) -> _Envelope:
    try:
        document = _object(_load_json(raw), "the file", ("signed", "signatures"))
        signed = document.get("signed")
        if not isinstance(signed, dict):
            raise ValueError("it has no signed object")
        signatures = []
        listed = document.get("signatures")
        if listed is not None and not isinstance(listed, list):
            raise ValueError("signatures is not a list")
        for index, item in enumerate(listed or []):
            what = f"signature {index}"
            obj = _object(item, what, ("keyid", "method", "sig"))
            key_id, method = obj.get("keyid"), obj.get("method")
            if not isinstance(key_id, str) or not isinstance(method, str):
                raise ValueError(f"{what} lacks a keyid or method")
            signatures.append(_Signature(key_id, method.lower(), _b64(obj.get("sig"), what)))
        message = notary_canonical_json(signed)
    except ValueError as error:
        raise NotaryVerificationError(
            f"{role} metadata is malformed: {error}", role=role, source=source
        ) from None
    return _Envelope(role, source, raw, signed, tuple(signatures), message)


def _signature_valid(key: NotaryKey, signature: _Signature, message: bytes) -> bool:
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
                blocks = _pem_blocks(key.public) if key.keytype == "rsa" else []
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
class _Role:
    """Keys and threshold a role's metadata must be signed with."""

    name: str
    keys: Mapping[str, NotaryKey]
    threshold: int
    key_ids: tuple[str, ...]


def _verify_signatures(envelope: _Envelope, role: _Role) -> tuple[str, ...]:
    """The ids of the keys whose signatures are valid; an error below the threshold."""
    where = {"role": envelope.role, "source": envelope.source}
    if not envelope.signatures:
        raise _ThresholdError(f"{envelope.role} metadata has no signatures", **where)
    if role.threshold < 1:
        raise _ThresholdError(f"{role.name} has an invalid threshold {role.threshold}", **where)
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
        raise _ThresholdError(
            f"signature verification failed for {envelope.role}: {len(valid)} valid "
            f"signature(s) by {role.name}'s keys, {role.threshold} needed "
            f"(keys {', '.join(k[:12] for k in role.key_ids) or 'none'})",
            **where,
        )
    return tuple(sorted(valid))


# --------------------------------------------------------------------------- metadata


@dataclass(frozen=True)
class _FileMeta:
    length: int
    hashes: Mapping[str, bytes]
    custom: Any = None


def _file_meta(value: Any, what: str, *, need_sha256: bool) -> _FileMeta:
    obj = _object(value, what, ("length", "hashes", "custom"))
    length = _int(obj.get("length", 0), f"{what} length", 0)
    listed = obj.get("hashes") or {}
    if not isinstance(listed, dict):
        raise ValueError(f"{what} hashes is not an object")
    hashes_: dict[str, bytes] = {}
    for algorithm, encoded in listed.items():
        digest = _b64(encoded, f"{what} {algorithm} hash")
        size = _HASH_SIZES.get(algorithm)
        if size is not None and len(digest) != size:
            raise ValueError(f"{what} has a {algorithm} hash of {len(digest)} bytes")
        hashes_[algorithm] = digest
    if need_sha256 and "sha256" not in hashes_:
        raise ValueError(f"{what} has no sha256 hash")
    return _FileMeta(length, hashes_, obj.get("custom"))


def _check_content(content: bytes, meta: _FileMeta, what: str, source: str) -> None:
    """Notary's ``CheckHashes`` (every known hash must match, at least one) and the length."""
    checked = 0
    for algorithm in ("sha256", "sha512"):
        expected = meta.hashes.get(algorithm)
        if expected is None:
            continue
        actual = hashlib.new(algorithm, content).digest()
        if not hmac.compare_digest(actual, expected):
            raise NotaryVerificationError(
                f"hash mismatch for {what}: its {algorithm} is {actual.hex()}, the metadata "
                f"that lists it says {expected.hex()}",
                role=what,
                source=source,
            )
        checked += 1
    if checked == 0:
        raise NotaryVerificationError(
            f"no sha256 or sha512 hash is given for {what}", role=what, source=source
        )
    if len(content) != meta.length:
        raise NotaryVerificationError(
            f"length mismatch for {what}: {len(content)} bytes, listed as {meta.length}",
            role=what,
            source=source,
        )


def _common(envelope: _Envelope, expected_type: str, extra: Sequence[str]) -> tuple[int, datetime]:
    signed = _object(envelope.signed, "signed", ("_type", "version", "expires", *extra))
    if signed.get("_type") != expected_type:
        raise ValueError(f"_type is {signed.get('_type')!r}, not {expected_type!r}")
    return _int(signed.get("version"), "version", 1), _parse_time(signed.get("expires"))


# --------------------------------------------------------------------------- root


@dataclass(frozen=True)
class _Root:
    envelope: _Envelope
    version: int
    expires: datetime
    keys: Mapping[str, NotaryKey]
    roles: Mapping[str, tuple[tuple[str, ...], int]]  # role -> (key ids, threshold)

    def role(self, name: str) -> _Role:
        key_ids, threshold = self.roles[name]
        return _Role(name, {k: self.keys[k] for k in key_ids}, threshold, key_ids)


def _parse_root(raw: bytes, source: str) -> _Root:
    envelope = _envelope(raw, ROOT, source)
    try:
        version, expires = _common(envelope, "Root", ("keys", "roles", "consistent_snapshot"))
        keys = _parse_keys(envelope.signed.get("keys"), "root keys")
        listed = envelope.signed.get("roles")
        if not isinstance(listed, dict):
            raise ValueError("roles is not an object")
        roles: dict[str, tuple[tuple[str, ...], int]] = {}
        for name in BASE_ROLES:  # isValidRootStructure: every base role, keys all present
            spec = _object(listed.get(name), f"the {name} role", ("keyids", "threshold"))
            key_ids = spec.get("keyids") or []
            if not isinstance(key_ids, list) or not all(isinstance(k, str) for k in key_ids):
                raise ValueError(f"the {name} role's keyids is not a list of strings")
            missing = [k for k in key_ids if k not in keys]
            if missing:
                raise ValueError(f"the {name} role lists key {missing[0]} without the key")
            threshold = _int(spec.get("threshold"), f"the {name} role's threshold", 1)
            roles[name] = (tuple(key_ids), threshold)
    except ValueError as error:
        raise NotaryVerificationError(
            f"root metadata is invalid: {error}", role=ROOT, source=source
        ) from None
    return _Root(envelope, version, expires, keys, roles)


def _common_name(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[-1].value if names else ""  # Go keeps the last CN
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _cn_matches(common_name: str, gun: str) -> bool:
    """``trustpinning.MatchCNToGun``: equal, or a ``prefix*`` wildcard."""
    if common_name.endswith("*"):
        return gun.startswith(common_name.rstrip("*"))
    return common_name == gun


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False
    return constraints.value.ca


def _certificate_problem(
    certificate: x509.Certificate, now: datetime, *, check_expiry: bool
) -> str | None:
    """``utils.ValidateCertificate``: why Notary would not use this certificate, if it would not."""
    cn = _common_name(certificate)
    not_before, not_after = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if not_before > not_after:
        return f"certificate {cn!r} has an invalid validity window"
    try:
        algorithm = certificate.signature_hash_algorithm
    except UnsupportedAlgorithm:
        algorithm = None
    if isinstance(algorithm, hashes.SHA1):
        return f"certificate {cn!r} is signed with SHA-1"
    try:
        public_key = certificate.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return f"certificate {cn!r} has a public key that cannot be read"
    if isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size < 2048:
        return f"certificate {cn!r} has an RSA key shorter than 2048 bits"
    if check_expiry and (now + timedelta(days=1) < not_before or now > not_after):
        return (
            f"certificate {cn!r} is not valid now (valid from {_iso(not_before)} "
            f"to {_iso(not_after)})"
        )
    return None


@dataclass(frozen=True)
class _RootCerts:
    leaves: Mapping[str, x509.Certificate]  # by the id Notary computes for the root key
    intermediates: Mapping[str, tuple[x509.Certificate, ...]]
    problems: tuple[str, ...]


def _root_certificates(root: _Root) -> _RootCerts:
    """``parseAllCerts``: each root key's leaf certificate and its intermediates."""
    leaves: dict[str, x509.Certificate] = {}
    intermediates: dict[str, tuple[x509.Certificate, ...]] = {}
    problems = []
    for key_id in root.roles[ROOT][0]:
        key = root.keys[key_id]
        blocks = _pem_blocks(key.public)
        try:
            if not blocks or any(block.kind != "CERTIFICATE" for block in blocks):
                raise ValueError("it is not a PEM certificate bundle")
            certificates = [x509.load_der_x509_certificate(block.der) for block in blocks]
        except ValueError as error:
            problems.append(f"root key {key_id[:12]}: {error}")
            continue
        leaf_list = [c for c in certificates if not _is_ca(c)]
        if len(leaf_list) != 1 or _is_ca(certificates[0]):
            problems.append(f"root key {key_id[:12]}: not exactly one leaf certificate, first")
            continue
        leaves[key.computed_id] = leaf_list[0]
        intermediates[key.computed_id] = tuple(c for c in certificates if _is_ca(c))
    return _RootCerts(leaves, intermediates, tuple(problems))


def _valid_leaves(
    certs: _RootCerts, gun: str, now: datetime, *, check_expiry: bool
) -> tuple[dict[str, x509.Certificate], list[str]]:
    """``validRootLeafCerts``: leaves whose CN matches the GUN and that Notary accepts."""
    valid, problems = {}, list(certs.problems)
    for key_id, certificate in certs.leaves.items():
        cn = _common_name(certificate)
        if not _cn_matches(cn, gun):
            problems.append(f"root key {key_id[:12]}: certificate CN {cn!r} is not the GUN {gun}")
            continue
        problem = _certificate_problem(certificate, now, check_expiry=check_expiry)
        if problem is not None:
            problems.append(f"root key {key_id[:12]}: {problem}")
            continue
        valid[key_id] = certificate
    return valid, problems


def _certs_to_keys(
    leaves: Mapping[str, x509.Certificate],
    intermediates: Mapping[str, Sequence[x509.Certificate]],
) -> dict[str, NotaryKey]:
    """``utils.CertsToKeys``: keys from the re-encoded PEM chains, under their own ids."""
    keys = {}
    for key_id, leaf in leaves.items():
        public_key = leaf.public_key()
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            keytype = "ecdsa-x509"
        elif isinstance(public_key, rsa.RSAPublicKey):
            keytype = "rsa-x509"
        else:
            continue
        chain = b"".join(
            c.public_bytes(serialization.Encoding.PEM)
            for c in (leaf, *intermediates.get(key_id, ()))
        )
        key = _make_key(notary_key_id(keytype, chain), keytype, chain)
        keys[key.key_id] = key
    return keys


def _validate_root(
    raw: bytes, gun: str, source: str, previous: _Root | None, now: datetime
) -> tuple[_Root, tuple[str, ...]]:
    """``trustpinning.ValidateRoot`` (trust on first use when ``previous`` is ``None``).

    Returns the root and the ids of the root keys whose signatures verified. Neither the
    root's expiry nor its version is checked here.
    """
    root = _parse_root(raw, source)
    where = {"role": ROOT, "source": source}
    certs = _root_certificates(root)
    from_root, problems = _valid_leaves(certs, gun, now, check_expiry=True)
    if not from_root:
        raise NotaryVerificationError(
            f"root v{root.version} has no usable root certificate for {gun}: "
            + "; ".join(problems or ["it lists no root keys"]),
            **where,
        )
    if previous is not None:
        trusted_certs = _root_certificates(previous)
        trusted, _ = _valid_leaves(trusted_certs, gun, now, check_expiry=False)
        if not trusted:
            raise NotaryVerificationError(
                f"the trusted root v{previous.version} has no root certificate for {gun}",
                **where,
            )
        keys = _certs_to_keys(trusted, trusted_certs.intermediates)
        threshold = previous.roles[ROOT][1]
        try:
            _verify_signatures(root.envelope, _Role(ROOT, keys, threshold, tuple(keys)))
        except _ThresholdError:
            raise _RootRotationError(
                f"root v{root.version} is not signed by the root keys of the trusted root "
                f"v{previous.version} ({', '.join(k[:12] for k in previous.roles[ROOT][0])})",
                **where,
            ) from None
    valid_intermediates = {
        key_id: tuple(c for c in chain if _certificate_problem(c, now, check_expiry=True) is None)
        for key_id, chain in certs.intermediates.items()
    }
    keys = _certs_to_keys(from_root, valid_intermediates)
    try:
        signed_by = _verify_signatures(
            root.envelope, _Role(ROOT, keys, root.roles[ROOT][1], tuple(keys))
        )
    except _ThresholdError as error:
        raise NotaryVerificationError(
            f"root v{root.version} is not signed by a threshold of its own root keys: {error}",
            **where,
        ) from None
    return root, signed_by


def verify_root(
    raw: bytes,
    gun: str,
    *,
    previous: bytes | None = None,
    now: datetime | None = None,
    check_expiry: bool = True,
) -> NotaryRole:
    """Verify one root file as Notary would load it for ``gun``, alone or after ``previous``.

    Checks its structure, that a threshold of its own root certificates (CN = GUN, valid
    now) signed it, with ``previous`` that a threshold of that root's certificates signed
    it too and that its version is not lower, and (``check_expiry``) that it is unexpired.
    """
    moment = now or datetime.now(UTC)
    source = "(given root)"
    prior = _validate_root(previous, gun, "(previous root)", None, moment)[0] if previous else None
    root, signed_by = _validate_root(raw, gun, source, prior, moment)
    if prior is not None and root.version < prior.version:
        raise NotaryVerificationError(
            f"root v{root.version} is older than v{prior.version}", role=ROOT, source=source
        )
    if check_expiry:
        _check_expiry(ROOT, root.expires, moment, source)
    key_ids, threshold = root.roles[ROOT]
    return NotaryRole(ROOT, root.version, root.expires, threshold, key_ids, signed_by)


def _check_expiry(role: str, expires: datetime, now: datetime, source: str | None) -> None:
    if expires < now:  # tuf/signed.IsExpired
        raise NotaryExpiredError(
            f"{role} metadata expired at {_iso(expires)}", role=role, source=source, expires=expires
        )


# --------------------------------------------------------------------------- results


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
            for visited in _walk(self, name, role, skip):
                target = self.role_targets.get(visited, {}).get(name)
                if target is not None:
                    return target
        return None


def _paths_of(repository: NotaryRepository, role: str) -> tuple[str, ...]:
    if role == TARGETS:
        return ("",)
    delegation = repository.delegations.get(role)
    return delegation.paths if delegation else ()


def _walk(
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


# --------------------------------------------------------------------------- HTTP


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


_CHALLENGE_PARAM = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)')


def _parse_challenges(headers: Sequence[str]) -> list[tuple[str, dict[str, str]]]:
    """``WWW-Authenticate`` values as (scheme, parameters), schemes lower-cased."""
    challenges = []
    for header in headers:
        for part in re.split(r",\s*(?=[A-Za-z][A-Za-z0-9_-]*\s+[A-Za-z])", header.strip()):
            scheme, _, rest = part.strip().partition(" ")
            params = {}
            for name, value in _CHALLENGE_PARAM.findall(rest):
                if value.startswith('"'):
                    value = re.sub(r"\\(.)", r"\1", value[1:-1])
                params[name.lower()] = value
            if scheme:
                challenges.append((scheme.lower(), params))
    return challenges


class _Remote:
    """GETs of one repository's metadata, with Docker's token flow on a 401."""

    def __init__(
        self,
        server: str,
        gun: str,
        *,
        ca_file: str | Path | None,
        credentials: tuple[str, str] | None,
        timeout: float,
        client: httpx.Client | None,
    ) -> None:
        parts = urlsplit(server)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise NotaryServerError(
                f"{server!r} is not an http(s) URL of a Notary server",
                status=0,
                error="bad_url",
                hint="give the server as https://notary.example.com[:PORT]",
            )
        self.server = server.rstrip("/")
        self.gun = gun
        self._base = f"{self.server}/v2/{quote(gun, safe='/:@')}/_trust/tuf/"
        self._credentials = credentials
        self._authorization: str | None = None
        self._own_client = client is None
        if client is None:
            verify: ssl.SSLContext | bool = (
                ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
            )
            client = httpx.Client(verify=verify, timeout=timeout, follow_redirects=False)
        self._client = client

    def close(self) -> None:
        if self._own_client:
            self._client.close()

    def url(self, name: str) -> str:
        return self._base + quote(name, safe="/") + ".json"

    def get(self, name: str, limit: int, role: str) -> tuple[bytes, str]:
        """The bytes of ``{name}.json``, refused beyond ``limit`` bytes."""
        url = self.url(name)
        for attempt in range(2):
            headers = {"Accept": "application/json"}
            if self._authorization:
                headers["Authorization"] = self._authorization
            try:
                with self._client.stream("GET", url, headers=headers) as response:
                    if (
                        response.status_code == 401
                        and attempt == 0
                        and self._authenticate(response)
                    ):
                        continue
                    if response.status_code == 200:
                        return self._read(response, url, limit, role), url
                    self._refuse(response, url, name, role)
            except httpx.TimeoutException as error:
                raise NotaryUnreachableError(f"timed out fetching {url}: {error}") from None
            except httpx.HTTPError as error:
                raise NotaryUnreachableError(f"cannot fetch {url}: {error}") from None
        raise NotaryAuthError(  # pragma: no cover - the loop returns or raises
            f"{url} still wants authentication", status=401, error="unauthorized"
        )

    @staticmethod
    def _read(response: httpx.Response, url: str, limit: int, role: str) -> bytes:
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise NotaryVerificationError(
                f"{role} metadata at {url} is {declared} bytes, more than the {limit} allowed",
                role=role,
                source=url,
            )
        chunks, size = [], 0
        for chunk in response.iter_bytes(64 * 1024):
            size += len(chunk)
            if size > limit:
                raise NotaryVerificationError(
                    f"{role} metadata at {url} is more than the {limit} bytes allowed",
                    role=role,
                    source=url,
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _refuse(self, response: httpx.Response, url: str, name: str, role: str) -> None:
        status = response.status_code
        response.read()
        detail = response.text[:300].strip()
        if status == 404:
            if name in (ROOT, TIMESTAMP):
                raise NotaryNotFoundError(
                    f"{self.server} has no trust data for {self.gun} ({url} answered 404)",
                    hint="check the repository name and the server; "
                    "is it signed with Docker Content Trust?",
                )
            raise NotaryVerificationError(
                f"{url} answered 404, but the repository's metadata lists {role}",
                role=role,
                source=url,
            )
        if status in (401, 403):
            raise NotaryAuthError(
                f"{url} answered {status}: "
                + ("credentials were refused" if self._credentials else "credentials are needed"),
                status=status,
                error="unauthorized" if status == 401 else "denied",
                hint="give the Notary server's username and password",
            )
        if status >= 500:
            raise NotaryUnreachableError(f"{url} answered {status}: {detail}")
        raise NotaryServerError(
            f"{url} answered {status}: {detail}", status=status, error="refused"
        )

    def _authenticate(self, response: httpx.Response) -> bool:
        """Answer a 401's challenge; False when there is nothing to answer it with."""
        for scheme, params in _parse_challenges(response.headers.get_list("WWW-Authenticate")):
            if scheme == "bearer" and params.get("realm"):
                self._authorization = "Bearer " + self._token(params)
                return True
            if scheme == "basic" and self._credentials:
                server = urlsplit(self.server)
                if server.scheme != "https" and not _is_loopback(server.hostname):
                    raise NotaryAuthError(
                        f"refusing to send credentials to {self.server} over plain http",
                        status=401,
                        error="insecure_server",
                    )
                user, password = self._credentials
                encoded = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
                self._authorization = f"Basic {encoded}"
                return True
        return False

    def _token(self, params: Mapping[str, str]) -> str:
        """Docker's token flow: GET the realm (basic auth, if given) for a bearer token."""
        realm = params["realm"]
        parts = urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise NotaryAuthError(
                f"the server's token realm {realm!r} is not an http(s) URL",
                status=401,
                error="bad_realm",
            )
        auth = None
        if self._credentials:
            if parts.scheme != "https" and not _is_loopback(parts.hostname):
                raise NotaryAuthError(
                    f"refusing to send credentials to the token realm {realm} over plain http",
                    status=401,
                    error="insecure_realm",
                )
            auth = httpx.BasicAuth(*self._credentials)
        query = {"service": params.get("service", ""), "scope": params.get("scope", "")}
        if not query["scope"]:
            query["scope"] = f"repository:{self.gun}:pull"
        try:
            answer = self._client.get(
                realm, params={k: v for k, v in query.items() if v}, auth=auth
            )
        except httpx.HTTPError as error:
            raise NotaryUnreachableError(f"cannot reach the token realm {realm}: {error}") from None
        if answer.status_code != 200:
            raise NotaryAuthError(
                f"the token realm {realm} answered {answer.status_code}"
                + ("" if self._credentials else " (no credentials were given)"),
                status=answer.status_code,
                error="unauthorized",
                hint="give the Notary server's username and password",
            )
        try:
            body = answer.json()
            token = body.get("token") or body.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise NotaryAuthError(
                f"the token realm {realm} answered without a token", status=401, error="no_token"
            )
        return token


# --------------------------------------------------------------------------- the reader


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
        remote: _Remote,
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

    def _root(self, pinned: bytes | None) -> tuple[_Root, bytes, str, tuple[int, ...]]:
        raw, source = self.remote.get(ROOT, MAX_DOWNLOAD_SIZE, ROOT)
        if pinned is None:
            root, signed_by = _validate_root(raw, self.gun, source, None, self.now)
            versions: list[int] = [root.version]
        else:
            trusted, _ = _validate_root(pinned, self.gun, "(pinned root)", None, self.now)
            latest = _parse_root(raw, source)
            if latest.version < trusted.version:
                raise NotaryVerificationError(
                    f"rollback refused: the server's root is v{latest.version}, the pinned "
                    f"root is v{trusted.version}",
                    role=ROOT,
                    source=source,
                )
            versions = [trusted.version]
            try:
                root, signed_by = _validate_root(raw, self.gun, source, trusted, self.now)
            except _RootRotationError:
                if latest.version - trusted.version > MAX_ROOT_WALK:
                    raise
                current = trusted  # walk every version in between, as Notary's updateRoot
                for version in range(trusted.version + 1, latest.version):
                    step_raw, step_source = self.remote.get(
                        f"{version}.{ROOT}", MAX_DOWNLOAD_SIZE, ROOT
                    )
                    current, _ = _validate_root(step_raw, self.gun, step_source, current, self.now)
                    if current.version != version:
                        raise NotaryVerificationError(
                            f"{version}.root.json holds root version {current.version}",
                            role=ROOT,
                            source=step_source,
                        ) from None
                    versions.append(version)
                root, signed_by = _validate_root(raw, self.gun, source, current, self.now)
            if root.version != versions[-1]:
                versions.append(root.version)
        self._min_version(ROOT, root.version, source)
        _check_expiry(ROOT, root.expires, self.now, source)
        key_ids, threshold = root.roles[ROOT]
        self.roles[ROOT] = NotaryRole(
            ROOT, root.version, root.expires, threshold, key_ids, signed_by
        )
        return root, raw, source, tuple(versions)

    def _role_file(
        self, raw: bytes, source: str, role: _Role, tuf_type: str, extra: Sequence[str]
    ) -> tuple[_Envelope, int, datetime]:
        """Signatures, structure, version and expiry of a top-level role, in Notary's order."""
        envelope = _envelope(raw, role.name, source)
        signed_by = _verify_signatures(envelope, role)
        try:
            version, expires = _common(envelope, tuf_type, extra)
        except ValueError as error:
            raise NotaryVerificationError(
                f"{role.name} metadata is invalid: {error}", role=role.name, source=source
            ) from None
        self._min_version(role.name, version, source)
        _check_expiry(role.name, expires, self.now, source)
        self.roles[role.name] = NotaryRole(
            role.name, version, expires, role.threshold, role.key_ids, signed_by
        )
        return envelope, version, expires

    def _meta(self, envelope: _Envelope, name: str, *, required: bool) -> _FileMeta | None:
        try:
            meta = envelope.signed.get("meta")
            if not isinstance(meta, dict):
                raise ValueError("meta is not an object")
            if name not in meta:
                if required:
                    raise ValueError(f"it lists no {name}")
                return None
            return _file_meta(meta[name], f"its entry for {name}", need_sha256=required)
        except ValueError as error:
            raise NotaryVerificationError(
                f"{envelope.role} metadata is invalid: {error}",
                role=envelope.role,
                source=envelope.source,
            ) from None

    def _targets_file(
        self, raw: bytes, source: str, role: NotaryDelegation | None, root: _Root
    ) -> _TargetsFile:
        name = role.name if role else TARGETS
        envelope = _envelope(raw, name, source)
        keys: Mapping[str, NotaryKey]
        paths: tuple[str, ...]
        if role is None:
            base = root.role(TARGETS)
            keys, threshold, key_ids, paths = base.keys, base.threshold, base.key_ids, ("",)
        else:
            keys, threshold, key_ids, paths = role.keys, role.threshold, role.key_ids, role.paths
        signing_role = _Role(name, keys, threshold, key_ids)
        signed_by: tuple[str, ...] = ()
        if role is None:  # Notary: signatures first for targets, last for delegations
            signed_by = _verify_signatures(envelope, signing_role)
        try:
            version, expires = _common(envelope, "Targets", ("targets", "delegations"))
            targets, ignored = self._targets(envelope.signed.get("targets"), name, paths)
            children = self._delegations(envelope.signed.get("delegations"), name, paths)
        except ValueError as error:
            raise NotaryVerificationError(
                f"{name} metadata is invalid: {error}", role=name, source=source
            ) from None
        self._min_version(name, version, source)
        if role is not None:
            signed_by = _verify_signatures(envelope, signing_role)
        _check_expiry(name, expires, self.now, source)
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
            meta = _file_meta(entry, f"target {name!r}", need_sha256=False)
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
        obj = _object(value, "delegations", ("keys", "roles"))
        keys = _parse_keys(obj.get("keys"), "delegation keys")
        listed = obj.get("roles") or []
        if not isinstance(listed, list):
            raise ValueError("delegations.roles is not a list")
        children, seen = [], set()
        for index, item in enumerate(listed):
            spec = _object(item, f"delegation {index}", ("name", "keyids", "threshold", "paths"))
            name = spec.get("name")
            if not isinstance(name, str) or not _is_delegation(name):
                raise ValueError(f"delegation role {name!r} is not a valid delegation name")
            key_ids = spec.get("keyids") or []
            if not isinstance(key_ids, list) or not all(isinstance(k, str) for k in key_ids):
                raise ValueError(f"delegation {name} keyids is not a list of strings")
            missing = [k for k in key_ids if k not in keys]
            if missing:
                raise ValueError(f"delegation {name} lists key {missing[0]} without the key")
            threshold = _int(spec.get("threshold"), f"delegation {name} threshold", 1)
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
        root, root_raw, root_source, versions = self._root(pinned_root)

        raw, source = self.remote.get(TIMESTAMP, MAX_TIMESTAMP_SIZE, TIMESTAMP)
        timestamp, _, _ = self._role_file(raw, source, root.role(TIMESTAMP), "Timestamp", ("meta",))
        snapshot_meta = self._meta(timestamp, SNAPSHOT, required=True)
        assert snapshot_meta is not None

        raw, source = self.remote.get(
            f"{SNAPSHOT}.{snapshot_meta.hashes['sha256'].hex()}", snapshot_meta.length, SNAPSHOT
        )
        _check_content(raw, snapshot_meta, SNAPSHOT, source)
        snapshot, _, _ = self._role_file(raw, source, root.role(SNAPSHOT), "Snapshot", ("meta",))
        root_meta = self._meta(snapshot, ROOT, required=True)
        assert root_meta is not None
        _check_content(root_raw, root_meta, ROOT, root_source)
        self._meta(snapshot, TARGETS, required=True)

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
            _check_content(raw, meta, name, source)
            try:
                loaded_file = self._targets_file(raw, source, role, root)
            except (NotaryExpiredError, _ThresholdError) as error:
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
        listed: dict[str, NotaryTarget] = {}  # ListTargets: first role in the walk wins
        for visited in _walk(repository, "", TARGETS, set()):
            for name, target in repository.role_targets[visited].items():
                listed.setdefault(name, target)
        docker: dict[str, NotaryTarget] = {}  # docker/cli: GetTargetByName(tag, releases,
        for name in sorted({t.name for t in repository.all_targets}):  # targets), then it
            chosen = repository.resolve(name, RELEASES_ROLE, TARGETS)  # refuses other roles
            if chosen is not None and chosen.role in (RELEASES_ROLE, TARGETS):
                docker[name] = chosen
        return dataclasses.replace(
            repository, targets=dict(sorted(listed.items())), docker_tags=docker
        )


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
    remote = _Remote(
        server, gun, ca_file=ca_file, credentials=credentials, timeout=timeout, client=client
    )
    try:
        return _Reader(remote, gun, moment, min_versions or {}, strict).read(pinned_root)
    finally:
        remote.close()


# --------------------------------------------------------------------------- Docker's trust dir


def docker_trust_dir() -> Path:
    """``~/.docker/trust`` (``$DOCKER_CONFIG/trust`` when that is set), as Docker uses it."""
    config = os.environ.get("DOCKER_CONFIG")
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
        root, _ = _validate_root(
            root_raw, gun, str(directory / "root.json"), None, datetime.now(UTC)
        )
    except NotaryVerificationError:
        return {}
    versions = {ROOT: root.version}
    for role, tuf_type in ((TIMESTAMP, "Timestamp"), (SNAPSHOT, "Snapshot"), (TARGETS, "Targets")):
        path = directory / f"{role}.json"
        try:
            envelope = _envelope(path.read_bytes(), role, str(path))
            _verify_signatures(envelope, root.role(role))
            version, _ = _common(envelope, tuf_type, ("meta", "targets", "delegations"))
        except (OSError, NotaryVerificationError, ValueError):
            continue
        versions[role] = version
    return versions
