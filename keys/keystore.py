"""The local keystore: offline keys for root, targets and signer roles, encrypted at rest.

Layout under ``TRUSTKIT_HOME`` (default ``~/.trustkit``), directories 0700, files 0600::

    private/<keyid>.p12    the private key, encrypted under its passphrase; the format
                           is told by content (the name is from when all were PKCS#12):
                           keys sealed now: OpenSSH private key format, bcrypt KDF
                           (16 rounds) with AES-256-CTR; keys sealed before: PKCS#12
                           (PBKDF2-HMAC-SHA256, 600,000 rounds, AES-256-CBC), still
                           opened, re-sealed in the new format by ``key passwd``
    private/<keyid>.json   what the key is for: repository, role, public key, signer URI

Why not PKCS#12 any more: its MAC is always written with 2,048 rounds, so a wrong
passphrase is told from a right one in a tenth of a millisecond, whatever the rounds of
the key bag. An OpenSSH key file has no such shortcut: a guess is checked only after the
bcrypt KDF has run (~120 ms, the same for a right and a wrong passphrase).

A key's signer URI is ``keystore:<keyid>`` for keys kept here; any other
securesystemslib signer URI (``hsm:``, ``gcpkms:``, …) is loaded through
securesystemslib, so a key in an HSM or a KMS is just another record.

Opening a key file runs its KDF (~120 ms), so a ``Keystore`` keeps the keys it opened or
sealed in memory, for its own lifetime only (one command of the CLI): a key is handed
out again only for the same file bytes and the same passphrase, so a changed file or a
wrong passphrase is still refused. Nothing of it is written or logged.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ec import (
    SECP256R1,
    EllipticCurvePrivateKey,
    generate_private_key,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
    load_ssh_private_key,
)
from cryptography.x509 import load_pem_x509_certificate
from securesystemslib.signer import CryptoSigner, Key, Signer, SSlibKey

from keys.external import external_key_error
from keys.files import ensure_private_dir, write_private_file
from keys.passphrase import PassphraseSource
from keys.records import KeyRecord
from trustkit.errors import KeystoreError, PassphraseError, TrustkitError

__all__ = [
    "KEY_TYPES",
    "KeyRecord",
    "Keystore",
    "PrivateKey",
    "pem_is_encrypted",
    "public_key_from_pem",
    "public_pem",
    "read_pem_private_key",
    "unseal",
]

KEYSTORE_SCHEME = "keystore"
# Rounds of the bcrypt KDF of a new key file: ssh-keygen's default, ~120 ms per try.
BCRYPT_ROUNDS = 16
OPENSSH_PEM_BEGIN = b"-----BEGIN OPENSSH PRIVATE KEY-----"
KEY_TYPES = ("ed25519", "ecdsa")


PrivateKey = Ed25519PrivateKey | EllipticCurvePrivateKey | RSAPrivateKey


def _sealed(private_key: PrivateKey, passphrase: str) -> bytes:
    """A key file's bytes: the OpenSSH private key format (PEM), the key encrypted with
    AES-256-CTR under a key the bcrypt KDF derives from the passphrase. Nothing in it
    checks a passphrase before the KDF has run."""
    encryption = (
        PrivateFormat.OpenSSH.encryption_builder()
        .kdf_rounds(BCRYPT_ROUNDS)
        .build(passphrase.encode())
    )
    try:
        return private_key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, encryption)
    except UnsupportedAlgorithm as error:  # cryptography finds no bcrypt to import
        raise KeystoreError(
            f"cannot encrypt a key file: {error}", hint="install bcrypt: pip install bcrypt"
        ) from None


def unseal(sealed: bytes, passphrase: str) -> PrivateKey:
    """The private key in a key file's bytes, of either format trustkit wrote (told by
    content): the OpenSSH format of keys sealed now, PKCS#12 of keys sealed before.
    ``ValueError`` if the passphrase does not open it (or the file is damaged),
    ``TypeError`` if it opens but holds a key type TUF metadata cannot use."""
    password = passphrase.encode()
    private_key: object
    if sealed.lstrip().startswith(OPENSSH_PEM_BEGIN):
        try:
            private_key = load_ssh_private_key(sealed, password)
        except TypeError as error:  # no passphrase, or a key file that is not encrypted
            raise ValueError(str(error)) from None
    else:
        from cryptography.hazmat.primitives.serialization import pkcs12  # brings x509

        private_key, _, _ = pkcs12.load_key_and_certificates(sealed, password)
    if not isinstance(private_key, Ed25519PrivateKey | EllipticCurvePrivateKey | RSAPrivateKey):
        raise TypeError("the key file holds no key TUF metadata can use")
    return private_key


def pem_is_encrypted(data: bytes) -> bool:
    return b"ENCRYPTED" in data


def read_pem_private_key(data: bytes, password: str | None, source: str) -> PrivateKey:
    """A PEM private key (PKCS#8 or traditional) of a type TUF metadata can use."""
    try:
        private_key = load_pem_private_key(data, password.encode() if password else None)
    except (ValueError, TypeError) as error:
        raise KeystoreError(
            f"cannot read a private key from {source}: {error}",
            hint="give a PEM private key (PKCS#8 or traditional); set "
            "TRUSTKIT_IMPORT_PASSPHRASE if it is encrypted",
        ) from None
    if not isinstance(private_key, Ed25519PrivateKey | EllipticCurvePrivateKey | RSAPrivateKey):
        raise KeystoreError(f"{source} holds a key type TUF metadata cannot use")
    return private_key


def public_key_from_pem(data: bytes, source: str) -> Key:
    """A public key file (PEM SubjectPublicKeyInfo, as ``key export`` writes it), or an
    X.509 certificate holding one (as ``docker trust signer add --key cert.pem`` takes:
    its public key is used; the certificate's dates and issuer are not trust here)."""
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            return SSlibKey.from_crypto(load_pem_x509_certificate(data).public_key())
        return SSlibKey.from_crypto(load_pem_public_key(data))
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        raise KeystoreError(
            f"{source} is not a public key TUF metadata can use: {error}",
            hint="give the PEM public key that trustkit key generate or key export wrote, "
            "or an X.509 certificate of it",
        ) from None


def public_pem(key: Key) -> bytes:
    """A public key as PEM (SubjectPublicKeyInfo), the form other tools read."""
    public = str(key.keyval["public"])
    if key.keytype == "ed25519":
        raw = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public))
        return raw.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    return public.encode()  # ecdsa and rsa keys are kept as PEM already


def _generate(keytype: str) -> PrivateKey:
    if keytype == "ed25519":
        return Ed25519PrivateKey.generate()
    if keytype == "ecdsa":
        return generate_private_key(SECP256R1())
    raise KeystoreError(
        f"unknown key type '{keytype}'", hint=f"choose one of: {', '.join(KEY_TYPES)}"
    )


@dataclass(frozen=True, repr=False)
class _Unlocked:
    """A key this keystore opened or sealed, with what it was opened from: a keyed hash
    of the key file's bytes and the passphrase (the passphrase itself is not kept)."""

    opened_from: bytes
    private_key: PrivateKey


class Keystore:
    """Offline keys on this machine, found by repository and role."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._private = home / "private"
        self._unlocked: dict[str, _Unlocked] = {}
        self._hash_key = secrets.token_bytes(32)  # this instance's, never stored

    def generate(
        self, gun: str, role: str, passphrases: PassphraseSource, keytype: str = "ed25519"
    ) -> KeyRecord:
        """Make a new key for ``role`` of ``gun`` and store it encrypted."""
        return self._store(gun, role, _generate(keytype), passphrases, "new ")

    def import_private(
        self, gun: str, role: str, private_key: PrivateKey, passphrases: PassphraseSource
    ) -> KeyRecord:
        """Keep a key made elsewhere, encrypted here under the role's passphrase."""
        try:
            keyid = CryptoSigner(private_key).public_key.keyid
        except ValueError as error:  # e.g. an elliptic curve TUF has no scheme for
            raise KeystoreError(
                f"TUF metadata cannot use this key: {error}",
                hint=f"import an {' or '.join(KEY_TYPES)} (P-256/P-384/P-521) or RSA key",
            ) from None
        if any(record.keyid == keyid for record in self.records()):
            raise KeystoreError(f"the keystore {self.home} already holds the key {keyid[:12]}")
        return self._store(gun, role, private_key, passphrases, "imported ")

    def add_external(self, record: KeyRecord) -> KeyRecord:
        """Keep the record of a key whose private half lives elsewhere (an HSM, a KMS):
        only ``<keyid>.json``, no private file."""
        if record.uri.startswith(f"{KEYSTORE_SCHEME}:"):
            raise KeystoreError(f"{record.uri} names a key kept in a keystore, not elsewhere")
        if any(known.keyid == record.keyid for known in self.records()):
            raise KeystoreError(
                f"the keystore {self.home} already holds the key {record.keyid[:12]}"
            )
        try:
            ensure_private_dir(self.home)
            write_private_file(self._record_path(record.keyid), self._encode(record))
        except OSError as error:
            raise KeystoreError(f"cannot write to the keystore {self.home}: {error}") from None
        return record

    def change_passphrase(
        self, record: KeyRecord, passphrases: PassphraseSource, new_passphrase: Callable[[], str]
    ) -> None:
        """Encrypt a key under a new passphrase, asked for only once the old one opened it;
        the file is replaced whole or not at all."""
        if not record.uri.startswith(f"{KEYSTORE_SCHEME}:"):
            raise KeystoreError(
                f"the {record.description} is kept at {record.uri}; change its PIN or "
                "passphrase there"
            )
        private_key = self._load_private(record, passphrases)  # proves the old passphrase
        passphrase = new_passphrase()
        sealed = _sealed(private_key, passphrase)
        write_private_file(self._key_path(record.keyid), sealed)
        self._remember(record, sealed, passphrase, private_key)

    def _store(
        self,
        gun: str,
        role: str,
        private_key: PrivateKey,
        passphrases: PassphraseSource,
        adjective: str,
    ) -> KeyRecord:
        public = CryptoSigner(private_key).public_key
        record = KeyRecord(public.keyid, gun, role, public, f"{KEYSTORE_SCHEME}:{public.keyid}")
        passphrase = passphrases.get(role, f"{adjective}{record.description}", new=True)
        sealed = _sealed(private_key, passphrase)
        try:
            ensure_private_dir(self.home)
            write_private_file(self._key_path(record.keyid), sealed)
            write_private_file(self._record_path(record.keyid), self._encode(record))
        except OSError as error:
            self.remove(record)
            raise KeystoreError(f"cannot write to the keystore {self.home}: {error}") from None
        self._remember(record, sealed, passphrase, private_key)
        return record

    def by_keyid(self, prefix: str) -> KeyRecord:
        """The one key whose id starts with ``prefix`` (at least 8 characters)."""
        if len(prefix) < 8:
            raise KeystoreError(
                f"'{prefix}' is too short to name a key", hint="give at least 8 characters"
            )
        prefix = prefix.lower()  # key ids are lower-case hex
        matches = [record for record in self.records() if record.keyid.startswith(prefix)]
        if not matches:
            raise KeystoreError(
                f"no key {prefix} in the keystore {self.home}", hint="see: trustkit key list"
            )
        if len(matches) > 1:
            raise KeystoreError(f"'{prefix}' names several keys", hint="give more of the key id")
        return matches[0]

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
            return self._external_signer(record, passphrases)
        return CryptoSigner(self._load_private(record, passphrases), record.public)  # type: ignore[arg-type]

    @staticmethod
    def _external_signer(record: KeyRecord, passphrases: PassphraseSource) -> Signer:
        """A key kept elsewhere (an HSM, a KMS), proved now by one signature: a wrong PIN
        or a missing token is reported here, in words, as a wrong passphrase is for a key
        kept here, and not later from inside metadata signing."""

        def secret(name: str) -> str:
            description = f"{record.description} ({name})"
            if name == "pin":
                return passphrases.pin(record.role, description)
            return passphrases.get(record.role, description)

        probe = b"trustkit: can this key sign?"
        try:
            signer = Signer.from_priv_key_uri(record.uri, record.public, secret)
            record.public.verify_signature(signer.sign(probe), probe)
        except TrustkitError:
            raise
        except Exception as error:
            raise external_key_error(record, error, passphrases) from None
        return signer

    def _load_private(self, record: KeyRecord, passphrases: PassphraseSource) -> PrivateKey:
        try:
            sealed = self._key_path(record.keyid).read_bytes()
        except OSError as error:
            raise KeystoreError(
                f"the private {record.description} is missing: {error.strerror}"
            ) from None
        passphrase = passphrases.get(record.role, record.description)
        known = self._unlocked.get(record.keyid)
        if known is not None and hmac.compare_digest(
            known.opened_from, self._opened_from(sealed, passphrase)
        ):
            return known.private_key
        try:
            private_key = unseal(sealed, passphrase)
        except ValueError:
            raise PassphraseError(
                f"wrong passphrase for the {record.description}",
                hint=f"check the passphrase given by {passphrases.origin(record.role)}",
            ) from None
        except TypeError:
            raise KeystoreError(
                f"the key file of the {record.description} holds no usable key"
            ) from None
        except UnsupportedAlgorithm as error:  # e.g. bcrypt is not installed
            raise KeystoreError(
                f"cannot open the key file of the {record.description}: {error}",
                hint="install bcrypt: pip install bcrypt",
            ) from None
        self._remember(record, sealed, passphrase, private_key)
        return private_key

    def _opened_from(self, sealed: bytes, passphrase: str) -> bytes:
        """A hash, keyed with this instance's secret, of a key file and its passphrase."""
        digest = hmac.new(self._hash_key, hashlib.sha256(sealed).digest(), "sha256")
        digest.update(passphrase.encode())
        return digest.digest()

    def _remember(
        self, record: KeyRecord, sealed: bytes, passphrase: str, private_key: PrivateKey
    ) -> None:
        self._unlocked[record.keyid] = _Unlocked(self._opened_from(sealed, passphrase), private_key)

    def remove(self, record: KeyRecord) -> None:
        """Delete a key's files; used to undo a key created by a failed operation."""
        self._unlocked.pop(record.keyid, None)
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
