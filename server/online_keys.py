"""Server-held keys for the snapshot and timestamp roles of each repository.

A key is made the first time anyone asks for it (``GET {role}.key``), sealed with the
master key and stored; the private half is only ever opened in memory to sign.
"""

from __future__ import annotations

import json
import threading

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_der_private_key,
)
from securesystemslib.signer import CryptoSigner, Key

from server.master_key import MasterKey
from server.storage import OnlineKeyRecord, Storage
from trustkit.metadata import ONLINE_ROLES

__all__ = ["OnlineKeys"]


def _context(gun: str, role: str, keyid: str) -> bytes:
    return f"trustkit-online-key\0{gun}\0{role}\0{keyid}".encode()


class OnlineKeys:
    def __init__(self, storage: Storage, master_key: MasterKey) -> None:
        self._storage = storage
        self._master_key = master_key
        self._signers: dict[tuple[str, str, str], CryptoSigner] = {}
        self._lock = threading.Lock()

    def public_key(self, gun: str, role: str) -> Key:
        """The role's public key, creating the key pair on first use."""
        record = self._storage.online_key(gun, role) or self._create(gun, role)
        return Key.from_dict(record.keyid, json.loads(record.public_json))

    def existing_public_key(self, gun: str, role: str) -> Key | None:
        record = self._storage.online_key(gun, role)
        if record is None:
            return None
        return Key.from_dict(record.keyid, json.loads(record.public_json))

    def signer(self, gun: str, role: str) -> CryptoSigner:
        record = self._storage.online_key(gun, role) or self._create(gun, role)
        cache_key = (gun, role, record.keyid)
        with self._lock:
            cached = self._signers.get(cache_key)
        if cached is not None:
            return cached
        der = self._master_key.open(record.sealed_private, _context(gun, role, record.keyid))
        private_key = load_der_private_key(der, None)
        public = Key.from_dict(record.keyid, json.loads(record.public_json))
        signer = CryptoSigner(private_key, public)  # type: ignore[arg-type]
        with self._lock:
            self._signers[cache_key] = signer
        return signer

    def existing_next_public_key(self, gun: str, role: str) -> Key | None:
        record = self._storage.next_online_key(gun, role)
        if record is None:
            return None
        return Key.from_dict(record.keyid, json.loads(record.public_json))

    def make_next(self, gun: str, role: str) -> Key:
        """A new key for ``role``, used once a root that lists it is uploaded."""
        record = self._new_record(gun, role)
        self._storage.set_next_online_key(gun, record)
        return Key.from_dict(record.keyid, json.loads(record.public_json))

    def forget(self, gun: str) -> None:
        with self._lock:
            for cache_key in [k for k in self._signers if k[0] == gun]:
                del self._signers[cache_key]

    def _create(self, gun: str, role: str) -> OnlineKeyRecord:
        return self._storage.add_online_key(gun, self._new_record(gun, role))

    def _new_record(self, gun: str, role: str) -> OnlineKeyRecord:
        assert role in ONLINE_ROLES
        private_key = Ed25519PrivateKey.generate()
        public = CryptoSigner(private_key).public_key
        der = private_key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
        return OnlineKeyRecord(
            role=role,
            keyid=public.keyid,
            public_json=json.dumps(public.to_dict(), sort_keys=True),
            sealed_private=self._master_key.seal(der, _context(gun, role, public.keyid)),
        )
