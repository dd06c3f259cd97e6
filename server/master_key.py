"""The server master key: seals online private keys at rest (AES-256-GCM).

The key is 32 random bytes in a file, created 0600 on first start when absent; under
compose the file is a Docker secret in ``/run/secrets``. Each sealed blob is bound to
its repository, role and key id, so a blob copied to another row does not open.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keys.files import write_private_file
from trustkit.errors import UsageError

__all__ = ["MasterKey"]

log = logging.getLogger("trustkit.server")

KEY_BYTES = 32
NONCE_BYTES = 12


class MasterKey:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    @classmethod
    def load_or_create(cls, path: Path) -> MasterKey:
        if not path.exists():
            write_private_file(path, secrets.token_bytes(KEY_BYTES))
        try:
            key = path.read_bytes()
        except OSError as error:
            raise UsageError(f"cannot read the master key {path}: {error.strerror}") from None
        if len(key) != KEY_BYTES:
            raise UsageError(
                f"the master key {path} holds {len(key)} bytes, not {KEY_BYTES}",
                hint="create one with: head -c 32 /dev/urandom > master.key",
            )
        # Group-readable is how a Docker secret reaches a non-root service. Readable by
        # anyone is worth fixing, but not worth refusing to start over.
        if path.stat().st_mode & 0o007:
            log.warning("the master key %s is readable by any user; chmod 600 or 440 it", path)
        return cls(key)

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, context)

    def open(self, sealed: bytes, context: bytes) -> bytes:
        try:
            return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], context)
        except InvalidTag:
            raise UsageError(
                "an online key does not open with this master key",
                hint="start the server with the master key it was first started with",
            ) from None
