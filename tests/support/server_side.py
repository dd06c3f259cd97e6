"""The server as tests see it from outside: what it serves, raw uploads, and the online
keys that someone who broke into it would hold."""

from __future__ import annotations

from typing import Any

import httpx
from securesystemslib.signer import Signer
from tuf.api.metadata import Metadata

from server.master_key import MasterKey
from server.online_keys import OnlineKeys
from server.storage import SQLiteStorage
from tests.support.harness import ServerProcess


def served_metadata(server: ServerProcess, gun: str, filename: str) -> Metadata[Any]:
    response = httpx.get(server.metadata_url(gun, filename), timeout=30)
    assert response.status_code == 200, response.text
    return Metadata.from_bytes(response.content)


def served_version(server: ServerProcess, gun: str, role: str) -> int:
    return int(served_metadata(server, gun, f"{role}.json").signed.version)


def stolen_online_signers(server: ServerProcess, gun: str) -> dict[str, Signer]:
    """The server's snapshot and timestamp keys, as someone who broke into it has them."""
    storage = SQLiteStorage(server.database)
    try:
        keys = OnlineKeys(storage, MasterKey.load_or_create(server.data_dir / "master.key"))
        return {role: keys.signer(gun, role) for role in ("snapshot", "timestamp")}
    finally:
        storage.close()


def post_upload(server: ServerProcess, gun: str, **roles: bytes) -> httpx.Response:
    """A raw multipart upload, as a client that skips every client-side check sends it."""
    files = [("files", (f"{role}.json", data, "application/json")) for role, data in roles.items()]
    return httpx.post(
        server.metadata_url(gun), files=files, headers=server.auth_headers(), timeout=30
    )
