"""The local keystore: offline keys for root, targets and signer roles, encrypted at rest.

Layout under ``TRUSTKIT_HOME`` (default ``~/.trustkit``), directories 0700, files 0600::

    private/<keyid>.p12    the private key: PKCS#12, PBES2 (PBKDF2-HMAC-SHA256,
                           600,000 rounds) with AES-256-CBC, HMAC-SHA256 integrity
    private/<keyid>.json   what the key is for: repository, role, public key, signer URI

A key's signer URI is ``keystore:<keyid>`` for keys kept here; any other
securesystemslib signer URI (``hsm:``, ``gcpkms:``, …) is loaded through
securesystemslib, so a key in an HSM or a KMS is just another record.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ec import (
    SECP256R1,
    EllipticCurvePrivateKey,
    generate_private_key,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import PrivateFormat, pkcs12
from securesystemslib.signer import CryptoSigner, Key, Signer

from keys.files import ensure_private_dir, write_private_file
from keys.passphrase import PassphraseSource
from trustkit.errors import KeystoreError, PassphraseError

__all__ = ["KEY_TYPES", "KeyRecord", "Keystore"]

KEYSTORE_SCHEME = "keystore"
KDF_ROUNDS = 600_000
KEY_TYPES = ("ed25519", "ecdsa")


@dataclass(frozen=True)
class KeyRecord:
    """One key the keystore knows: its purpose, its public half and where its private half is."""

    keyid: str
    gun: str
    role: str
    public: Key
    uri: str

    @property
    def description(self) -> str:
        return f"{self.role} key of {self.gun} ({self.keyid[:12]})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "keyid": self.keyid,
            "gun": self.gun,
            "role": self.role,
            "public": self.public.to_dict(),
            "uri": self.uri,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KeyRecord:
        keyid = str(data["keyid"])
        return cls(
            keyid=keyid,
            gun=str(data["gun"]),
            role=str(data["role"]),
            public=Key.from_dict(keyid, dict(data["public"])),
            uri=str(data["uri"]),
        )


def _generate(keytype: str) -> Ed25519PrivateKey | EllipticCurvePrivateKey:
    if keytype == "ed25519":
        return Ed25519PrivateKey.generate()
    if keytype == "ecdsa":
        return generate_private_key(SECP256R1())
    raise KeystoreError(
        f"unknown key type '{keytype}'", hint=f"choose one of: {', '.join(KEY_TYPES)}"
    )


class Keystore:
    """Offline keys on this machine, found by repository and role."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._private = home / "private"

    def generate(
        self, gun: str, role: str, passphrases: PassphraseSource, keytype: str = "ed25519"
    ) -> KeyRecord:
        """Make a new key for ``role`` of ``gun`` and store it encrypted."""
        private_key = _generate(keytype)
        public = CryptoSigner(private_key).public_key
        record = KeyRecord(public.keyid, gun, role, public, f"{KEYSTORE_SCHEME}:{public.keyid}")
        passphrase = passphrases.get(role, f"new {record.description}", new=True)
        encryption = (
            PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(KDF_ROUNDS)
            .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
            .hmac_hash(hashes.SHA256())
            .build(passphrase.encode())
        )
        sealed = pkcs12.serialize_key_and_certificates(
            f"{role} {gun}".encode(),
            private_key,
            None,
            None,
            encryption,
        )
        try:
            ensure_private_dir(self.home)
            write_private_file(self._key_path(record.keyid), sealed)
            write_private_file(self._record_path(record.keyid), self._encode(record))
        except OSError as error:
            self.remove(record)
            raise KeystoreError(f"cannot write to the keystore {self.home}: {error}") from None
        return record

    def find(self, gun: str, role: str) -> list[KeyRecord]:
        return [r for r in self.records() if r.gun == gun and r.role == role]

    def records(self) -> list[KeyRecord]:
        if not self._private.is_dir():
            return []
        found = []
        for path in sorted(self._private.glob("*.json")):
            try:
                found.append(KeyRecord.from_dict(json.loads(path.read_bytes())))
            except (OSError, ValueError, KeyError, TypeError):
                continue  # a damaged record names no usable key; others still work
        return found

    def signers(self, gun: str, role: str, passphrases: PassphraseSource) -> list[Signer]:
        """Signers for every local key of ``role``; an error if there is none."""
        records = self.find(gun, role)
        if not records:
            raise KeystoreError(
                f"no {role} key for {gun} in the keystore {self.home}",
                hint="run this where the repository was initialised, or import the key "
                "(TRUSTKIT_HOME selects another keystore)",
            )
        return [self.signer(record, passphrases) for record in records]

    def signer(self, record: KeyRecord, passphrases: PassphraseSource) -> Signer:
        scheme, _, _ = record.uri.partition(":")
        if scheme != KEYSTORE_SCHEME:

            def secret(name: str) -> str:
                return passphrases.get(record.role, f"{record.description} ({name})")

            try:
                return Signer.from_priv_key_uri(record.uri, record.public, secret)
            except Exception as error:
                raise KeystoreError(
                    f"cannot load the {record.description} from {record.uri}: {error}"
                ) from None
        try:
            sealed = self._key_path(record.keyid).read_bytes()
        except OSError as error:
            raise KeystoreError(
                f"the private {record.description} is missing: {error.strerror}"
            ) from None
        passphrase = passphrases.get(record.role, record.description)
        try:
            private_key, _, _ = pkcs12.load_key_and_certificates(sealed, passphrase.encode())
        except ValueError:
            raise PassphraseError(
                f"wrong passphrase for the {record.description}",
                hint=f"check the passphrase given by {passphrases.origin(record.role)}",
            ) from None
        if private_key is None:
            raise KeystoreError(f"the key file of the {record.description} holds no key")
        return CryptoSigner(private_key, record.public)  # type: ignore[arg-type]

    def remove(self, record: KeyRecord) -> None:
        """Delete a key's files; used to undo a key created by a failed operation."""
        for path in (self._record_path(record.keyid), self._key_path(record.keyid)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _key_path(self, keyid: str) -> Path:
        return self._private / f"{keyid}.p12"

    def _record_path(self, keyid: str) -> Path:
        return self._private / f"{keyid}.json"

    @staticmethod
    def _encode(record: KeyRecord) -> bytes:
        return json.dumps(record.to_dict(), indent=2, sort_keys=True).encode()
