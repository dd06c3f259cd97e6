"""As with ``docker trust signer add --key cert.pem``: a signer's key may come as an
X.509 certificate; its public key is what is delegated to."""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from securesystemslib.signer import SSlibKey

from tests.support.harness import Trustkit


def _certificate(path: Path) -> tuple[str, Path]:
    """A self-signed certificate of a new EC key; returns the key's TUF key id."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alice")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return SSlibKey.from_crypto(key.public_key()).keyid, path


def test_a_signer_added_from_a_certificate_is_delegated_its_public_key(
    publisher: Trustkit, host: Trustkit, gun: str, tmp_path: Path
):
    keyid, certificate = _certificate(tmp_path / "alice.crt")
    publisher("init", gun)

    added = publisher("signer", "add", "alice", gun, "--key", str(certificate), "--json")

    assert added.code == 0, added.err
    listed = host("signer", "list", gun, "--json")
    assert listed.code == 0, listed.err
    [alice] = [s for s in listed.json["signers"] if s["name"] == "alice"]
    assert alice["keys"] == [keyid]


def test_a_file_that_is_neither_a_key_nor_a_certificate_is_refused(
    publisher: Trustkit, gun: str, tmp_path: Path
):
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    publisher("init", gun)

    refused = publisher("signer", "add", "alice", gun, "--key", str(junk))

    assert refused.code == 2
    assert "is not a public key TUF metadata can use" in refused.err
    assert "Traceback" not in refused.err
