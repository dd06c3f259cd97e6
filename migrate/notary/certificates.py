"""PEM blocks and X.509 certificates as Notary reads them: the first certificate of a key,
a certificate's common name, whether it is a CA, and why Notary would not use it."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from migrate.notary.parsing import iso


@dataclass(frozen=True)
class PemBlock:
    kind: str
    has_headers: bool
    der: bytes


_PEM = re.compile(rb"-----BEGIN ([^\r\n-]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)


def pem_blocks(data: bytes) -> list[PemBlock]:
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
        blocks.append(PemBlock(match.group(1).decode("ascii", "replace"), has_headers, der))
    return blocks


def first_certificate(public: bytes, *, strict: bool) -> x509.Certificate | None:
    """The certificate Notary reads from an x509 key.

    ``strict`` (``LoadCertFromPEM``): the first CERTIFICATE block without headers that
    parses; otherwise (the verifiers' ``pem.Decode``): the first block, whatever it is.
    """
    for block in pem_blocks(public):
        if strict and (block.kind != "CERTIFICATE" or block.has_headers):
            continue
        try:
            return x509.load_der_x509_certificate(block.der)
        except ValueError:
            if not strict:
                return None
    return None


def common_name(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[-1].value if names else ""  # Go keeps the last CN
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def cn_matches(common_name: str, gun: str) -> bool:
    """``trustpinning.MatchCNToGun``: equal, or a ``prefix*`` wildcard."""
    if common_name.endswith("*"):
        return gun.startswith(common_name.rstrip("*"))
    return common_name == gun


def is_ca(certificate: x509.Certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False
    return constraints.value.ca


def certificate_problem(
    certificate: x509.Certificate, now: datetime, *, check_expiry: bool
) -> str | None:
    """``utils.ValidateCertificate``: why Notary would not use this certificate, if it would not."""
    cn = common_name(certificate)
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
            f"certificate {cn!r} is not valid now (valid from {iso(not_before)} "
            f"to {iso(not_after)})"
        )
    return None
