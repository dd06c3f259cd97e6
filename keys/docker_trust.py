"""Private keys of Notary and Docker Content Trust (``~/.docker/trust/private/*.key``).

Each file is an encrypted PKCS#8 PEM block whose headers say what the key is for:
``role: root`` (a root key serves every repository), or ``role: targets`` /
``role: snapshot`` with ``gun: REPO``, or a delegation's role (``targets/releases``).
They are opened with the passphrase Notary used for that role and re-encrypted in
trustkit's keystore; nothing is written unless every key opened.

Snapshot keys are left where they are: the trustkit server signs snapshot, so a
migrated repository never uses them. A delegation key carries no repository (a signer's
machine may hold only ``targets/releases``): it becomes that signer of the repository
the import names. Notary names each key file by its key id, which differs from the TUF
key id trustkit shows; the import reports both.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import keys as asn1_keys  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.serialization import load_der_private_key
from securesystemslib.signer import CryptoSigner

from keys.keystore import Keystore, PrivateKey
from keys.passphrase import PassphraseSource
from keys.records import KeyRecord
from trustkit.errors import KeystoreError, PassphraseError, UsageError

__all__ = [
    "DockerTrustImport",
    "DockerTrustKey",
    "ImportedKey",
    "import_docker_trust",
    "open_docker_trust_key",
    "parse_docker_trust_key",
    "read_docker_trust_keys",
]

_BEGIN = "-----BEGIN ENCRYPTED PRIVATE KEY-----"
_END = "-----END ENCRYPTED PRIVATE KEY-----"
_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha512": hashes.SHA512,
}


@dataclass(frozen=True)
class DockerTrustKey:
    path: Path
    role: str  # root, targets, snapshot, or a delegation such as targets/releases
    gun: str | None  # None for root keys, which serve every repository
    der: bytes  # encrypted PKCS#8

    @property
    def notary_keyid(self) -> str:
        """The id ``notary key list`` shows: Notary names each key file by it."""
        return self.path.stem

    @property
    def is_delegation(self) -> bool:
        return _kind(self.role) == "delegation"

    @property
    def signer_name(self) -> str:
        """The trustkit role it becomes: a delegation ``targets/releases`` is the signer
        ``releases``."""
        return self.role.removeprefix("targets/") if self.role.startswith("targets/") else self.role


def parse_docker_trust_key(path: Path) -> DockerTrustKey:
    """One Notary key file: its role (and repository) headers and its encrypted key."""
    text = path.read_text(errors="replace")
    if _BEGIN not in text or _END not in text:
        raise KeystoreError(
            f"{path} is not a Notary private key (no encrypted PKCS#8 block)",
            hint="point at a Docker trust directory (default ~/.docker/trust)",
        )
    body = text.split(_BEGIN, 1)[1].split(_END, 1)[0]
    headers: dict[str, str] = {}
    encoded: list[str] = []
    for line in body.strip().splitlines():
        name, sep, value = line.partition(":")
        if sep and not encoded and " " not in name.strip():
            headers[name.strip().lower()] = value.strip()
        elif line.strip():
            encoded.append(line.strip())
    role = headers.get("role")
    if not role:
        raise KeystoreError(f"{path} does not say which role its key is for (no role header)")
    try:
        der = base64.b64decode("".join(encoded), validate=True)
    except (binascii.Error, ValueError):
        raise KeystoreError(f"{path} holds a damaged key (bad base64)") from None
    return DockerTrustKey(path, role, headers.get("gun"), der)


def read_docker_trust_keys(trust_dir: Path) -> list[DockerTrustKey]:
    """Every private key under ``trust_dir/private`` (Notary keeps them flat there, or in
    older layouts under ``root_keys``/``tuf_keys`` folders)."""
    private = trust_dir / "private"
    if not private.is_dir():
        raise KeystoreError(
            f"{trust_dir} has no private/ folder of keys",
            hint="give the Docker trust directory (default ~/.docker/trust)",
        )
    return [parse_docker_trust_key(path) for path in sorted(private.rglob("*.key"))]


@dataclass(frozen=True)
class ImportedKey:
    record: KeyRecord
    notary_keyid: str


@dataclass(frozen=True)
class DockerTrustImport:
    """What an import did: keys now kept here, keys already here, keys left out."""

    imported: list[ImportedKey]
    already_here: int
    skipped_snapshot: list[DockerTrustKey]


NotaryPassphrase = Callable[[DockerTrustKey], str]


def import_docker_trust(
    keystore: Keystore,
    passphrases: PassphraseSource,
    notary_passphrase: NotaryPassphrase,
    trust_dir: Path,
    repository: str | None,
) -> DockerTrustImport:
    """Keep the keys of ``trust_dir`` (those of ``repository`` and the keys that serve
    any repository: root and delegation keys) here under trustkit's passphrases.
    Every key is opened before the first is written; a failure writes nothing."""
    found = read_docker_trust_keys(trust_dir)
    chosen = [key for key in found if repository is None or key.gun in (None, repository)]
    if repository is not None and not any(
        key.gun == repository or key.is_delegation for key in chosen
    ):
        known = sorted({key.gun for key in found if key.gun})
        raise UsageError(
            f"{trust_dir} holds no key of {repository}",
            hint=f"its repositories: {', '.join(known) or 'none'}",
        )
    if not chosen:
        raise UsageError(f"{trust_dir} holds no Notary private key")
    snapshot = [key for key in chosen if key.role == "snapshot"]
    chosen = [key for key in chosen if key.role != "snapshot"]
    held = {record.keyid for record in keystore.records()}
    opened = []
    for key in chosen:
        private = open_docker_trust_key(key, notary_passphrase(key))
        if CryptoSigner(private).public_key.keyid not in held:
            opened.append((key, private))
    imported: list[ImportedKey] = []
    try:
        for key, private in opened:
            gun = key.gun or repository or "*"
            record = keystore.import_private(gun, key.signer_name, private, passphrases)
            imported.append(ImportedKey(record, key.notary_keyid))
    except BaseException:
        for each in imported:
            keystore.remove(each.record)
        raise
    return DockerTrustImport(imported, len(chosen) - len(opened), snapshot)


def open_docker_trust_key(key: DockerTrustKey, passphrase: str) -> PrivateKey:
    """Open a Notary key file's key. Notary writes a PrivateKeyInfo that cryptography's
    PKCS#8 loader refuses (see ``_pbes2_plaintext``); the PBES2 envelope is then opened
    with cryptography's PBKDF2 and AES, as PKCS#5 defines it."""
    try:
        opened = load_der_private_key(key.der, passphrase.encode())
    except (ValueError, TypeError):
        opened = load_der_private_key(_pbes2_plaintext(key, passphrase), None)
    if not isinstance(opened, Ed25519PrivateKey | EllipticCurvePrivateKey | RSAPrivateKey):
        raise KeystoreError(f"{key.path} holds a key type TUF metadata cannot use")
    return opened


def _pbes2_plaintext(key: DockerTrustKey, passphrase: str) -> bytes:
    wrong = PassphraseError(
        f"wrong passphrase for the {key.role} key in {key.path}",
        hint="give the passphrase Notary asked for that key: NOTARY_"
        f"{_kind(key.role).upper()}_PASSPHRASE or TRUSTKIT_IMPORT_PASSPHRASE",
    )
    try:
        envelope = asn1_keys.EncryptedPrivateKeyInfo.load(key.der)
        algorithm = envelope["encryption_algorithm"]
        if algorithm.kdf != "pbkdf2" or algorithm.encryption_cipher != "aes":
            raise KeystoreError(
                f"{key.path} is encrypted with {algorithm.kdf}/{algorithm.encryption_cipher}; "
                "trustkit opens PBKDF2 with AES, as Notary writes"
            )
        derived = PBKDF2HMAC(
            algorithm=_HASHES[algorithm.kdf_hmac](),
            length=algorithm.key_length,
            salt=algorithm.kdf_salt,
            iterations=algorithm.kdf_iterations,
        ).derive(passphrase.encode())
        decryptor = Cipher(algorithms.AES(derived), modes.CBC(algorithm.encryption_iv)).decryptor()
        padded = decryptor.update(envelope["encrypted_data"].native) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        inner = asn1_keys.PrivateKeyInfo.load(unpadder.update(padded) + unpadder.finalize())
        # Notary marks its PrivateKeyInfo version 1 without the public key that version
        # calls for; the same structure as version 0 is what every reader expects.
        # Only the version is re-encoded: forcing every field again would shorten an
        # EC private key whose first byte is zero (1 key in 256), which no loader takes.
        inner["version"] = 0
        plaintext: bytes = inner.dump()
        load_der_private_key(plaintext, None)  # a wrong passphrase rarely gets this far
    except KeystoreError:
        raise
    except (ValueError, TypeError, KeyError):
        raise wrong from None
    return plaintext


def _kind(role: str) -> str:
    return role if role in ("root", "targets", "snapshot") else "delegation"
