"""A signer's own private key, loaded under a name (``trustkit key load FILE --name NAME``,
as ``docker trust key load key.pem --name alice``).

The key is kept exactly as ``trustkit key generate NAME`` keeps a key it made: for any
repository (``*``), as the role ``NAME``, encrypted under the delegation passphrase. The
owner adds its public half with ``trustkit signer add NAME REPO --key NAME.pub`` and the
holder signs with ``trustkit sign --signer NAME``: signing finds a key by its id.

Files read: a PEM private key (PKCS#8 or traditional, encrypted or not), or a key file
of Docker Content Trust / Notary (``~/.docker/trust/private/*.key``, with ``role:``
headers), as ``docker trust key generate`` leaves it. Like Docker, a key file others can
read or write is refused: its key may already be someone else's.

Loading is idempotent: the same key under the same name is reported as already here; a
name held by another key, or the key held under another name, is refused.
"""

from __future__ import annotations

import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner

from keys.docker_trust import open_docker_trust_key, parse_docker_trust_key
from keys.keystore import Keystore, PrivateKey
from keys.passphrase import PassphraseSource
from keys.records import KeyRecord
from trustkit.errors import KeystoreError, PassphraseError

__all__ = ["ANY_REPOSITORY", "LoadedKey", "load_signer_key", "read_signer_key"]

ANY_REPOSITORY = "*"  # a signer key serves whichever repository adds it
MIN_RSA_BITS = 2048
_PUBLIC_MARKERS = (b"-----BEGIN PUBLIC KEY-----", b"-----BEGIN CERTIFICATE-----")
_OPENSSH = b"-----BEGIN OPENSSH PRIVATE KEY-----"
_NOTARY_HEADER = b"role:"
_USABLE = "ed25519, ECDSA (P-256, P-384, P-521) or RSA (2048 bits or more)"

AskPassphrase = Callable[[], str]


@dataclass(frozen=True)
class LoadedKey:
    """What a load did: the key's record, and whether it was here already."""

    record: KeyRecord
    already_here: bool


def read_signer_key(path: Path, ask_passphrase: AskPassphrase) -> PrivateKey:
    """The private key in ``path``; ``ask_passphrase`` is called only if it is encrypted."""
    data = _read_private_file(path)
    if _OPENSSH in data:
        raise KeystoreError(
            f"{path} is an OpenSSH private key",
            hint="give it as PEM (PKCS#8): ssh-keygen -p -m PKCS8 -f COPY_OF_THE_FILE",
        )
    if b"PRIVATE KEY-----" not in data:
        raise KeystoreError(
            f"{path} holds no PEM private key",
            hint="give a PEM private key (-----BEGIN PRIVATE KEY-----), e.g. from "
            "openssl genpkey -algorithm ed25519",
        )
    if _NOTARY_HEADER in data:  # Notary / Docker Content Trust: PEM headers Docker reads
        notary_key = parse_docker_trust_key(path)
        return _usable(open_docker_trust_key(notary_key, ask_passphrase()), path)
    return _usable(_open_pem(data, path, ask_passphrase), path)


def _read_private_file(path: Path) -> bytes:
    try:
        data = path.read_bytes()
        mode = path.stat().st_mode
    except OSError as error:
        raise KeystoreError(f"cannot read {path}: {error.strerror}") from None
    if any(marker in data for marker in _PUBLIC_MARKERS) and b"PRIVATE KEY-----" not in data:
        raise KeystoreError(
            f"{path} holds a public key or certificate, not a private key",
            hint="key load takes the signer's own private key; the repository owner adds "
            "a public key with: trustkit signer add NAME REPO --key FILE",
        )
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeystoreError(
            f"the private key file {path} may be read or written by other users",
            hint=f"make it yours alone first (as Docker asks too): chmod 600 {path}",
        )
    return data


def _open_pem(data: bytes, path: Path, ask_passphrase: AskPassphrase) -> object:
    password = ask_passphrase().encode() if b"ENCRYPTED" in data else None
    try:
        try:
            return load_pem_private_key(data, password)
        except TypeError:  # encrypted after all (or not): try the other way once
            password = None if password is not None else ask_passphrase().encode()
            return load_pem_private_key(data, password)
    except ValueError as error:
        if password is not None:
            raise PassphraseError(
                f"cannot open {path}: the passphrase is wrong (or the file is damaged)",
                hint="give the passphrase the file was encrypted with "
                "(TRUSTKIT_IMPORT_PASSPHRASE, or at the prompt)",
            ) from None
        raise KeystoreError(
            f"cannot read a private key from {path}: {error}",
            hint=f"give a PEM private key of type {_USABLE}",
        ) from None
    except (TypeError, UnsupportedAlgorithm) as error:
        raise KeystoreError(
            f"{path} holds a key trustkit cannot use: {error}", hint=f"give an {_USABLE} key"
        ) from None


def _usable(private_key: object, path: Path) -> PrivateKey:
    if not isinstance(private_key, Ed25519PrivateKey | EllipticCurvePrivateKey | RSAPrivateKey):
        kind = type(private_key).__name__.removeprefix("_").replace("PrivateKey", "")
        raise KeystoreError(
            f"{path} holds a {kind or 'kind of'} key, which TUF metadata cannot sign with",
            hint=f"give an {_USABLE} key",
        )
    if isinstance(private_key, RSAPrivateKey) and private_key.key_size < MIN_RSA_BITS:
        raise KeystoreError(
            f"{path} holds a {private_key.key_size}-bit RSA key, too weak to sign with",
            hint=f"give an {_USABLE} key",
        )
    _keyid(private_key, path)  # a curve TUF has no scheme for
    return private_key


def _keyid(private_key: PrivateKey, path: Path) -> str:
    try:
        return CryptoSigner(private_key).public_key.keyid
    except ValueError as error:  # e.g. an elliptic curve TUF has no scheme for
        raise KeystoreError(
            f"TUF metadata cannot use the key in {path}: {error}",
            hint=f"give an {_USABLE} key",
        ) from None


def _held_as(
    keystore: Keystore, name: str, private_key: PrivateKey, path: Path
) -> LoadedKey | None:
    """The key already kept under ``name`` (None if neither is here yet); an error if the
    name is another key's, or the key is here under another name."""
    keyid = _keyid(private_key, path)
    records = keystore.records()
    for record in records:
        if record.keyid == keyid:
            if record.role != name:
                raise KeystoreError(
                    f"this keystore holds that key already, as the {record.description}",
                    hint=f"use it under that name (--signer {record.role}), or remove it "
                    f"first: trustkit key remove {keyid[:12]} --yes",
                )
            return LoadedKey(record, already_here=True)
    for record in records:
        if record.role == name:
            raise KeystoreError(
                f"the name {name} is taken by another key in this keystore ({record.keyid[:12]})",
                hint=f"choose another --name, or remove that key first: "
                f"trustkit key remove {record.keyid[:12]} --yes",
            )
    return None


def load_signer_key(
    keystore: Keystore,
    name: str,
    private_key: PrivateKey,
    passphrases: PassphraseSource,
    path: Path,
) -> LoadedKey:
    """Keep ``private_key`` as the signer key ``name`` (validated by the caller), as
    ``key generate`` keeps one; the same key under the same name again changes nothing."""
    held = _held_as(keystore, name, private_key, path)
    if held is not None:
        return held
    record = keystore.import_private(ANY_REPOSITORY, name, private_key, passphrases)
    return LoadedKey(record, already_here=False)
