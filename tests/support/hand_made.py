"""A repository whose metadata the test makes and signs by hand, to send the server
uploads no trustkit client would."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Root, Targets

from tests.support.harness import ServerProcess
from trustkit.metadata import (
    image_target,
    new_root,
    new_targets,
    public_key_from_dict,
    sign_with,
)
from trustkit.names import parse_digest

FUTURE = datetime.now(UTC).replace(microsecond=0) + timedelta(days=365)


@dataclass
class HandMadeRepository:
    """A repository whose offline keys the test holds, so it can sign anything."""

    server: ServerProcess
    gun: str
    root_key: CryptoSigner = field(default_factory=CryptoSigner.generate_ed25519)
    targets_key: CryptoSigner = field(default_factory=CryptoSigner.generate_ed25519)

    def online_keys(self) -> dict[str, Any]:
        return {
            role: public_key_from_dict(
                httpx.get(
                    self.server.metadata_url(self.gun, f"{role}.key"),
                    headers=self.server.auth_headers(),
                ).json()
            )
            for role in ("snapshot", "timestamp")
        }

    def root(self, version: int = 1, **keys: Any) -> Root:
        online = self.online_keys()
        root = new_root(
            {
                "root": [keys.get("root", self.root_key.public_key)],
                "targets": [self.targets_key.public_key],
                "snapshot": [keys.get("snapshot", online["snapshot"])],
                "timestamp": [keys.get("timestamp", online["timestamp"])],
            },
            FUTURE,
        )
        root.version = version
        return root

    def targets(self, version: int = 1, **tags: str) -> Targets:
        targets = new_targets(FUTURE)
        targets.version = version
        for tag, digest in tags.items():
            targets.targets[tag] = image_target(tag, parse_digest(digest), 10, None)
        return targets

    def upload(self, **roles: bytes) -> httpx.Response:
        files = [
            ("files", (f"{role}.json", data, "application/json")) for role, data in roles.items()
        ]
        return httpx.post(
            self.server.metadata_url(self.gun),
            files=files,
            headers=self.server.auth_headers(),
            timeout=30,
        )

    def create(self) -> None:
        response = self.upload(
            root=sign_with(self.root(), [self.root_key]),
            targets=sign_with(self.targets(), [self.targets_key]),
        )
        assert response.status_code == 200, response.text

    def stored_rows(self) -> list[tuple[str, int]]:
        with sqlite3.connect(self.server.database) as db:
            return sorted(
                db.execute("SELECT role, version FROM metadata WHERE gun=?", (self.gun,)).fetchall()
            )


def assert_refused(
    response: httpx.Response, status: int, error: str, role: str | None, phrase: str
) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert body["role"] == role
    assert phrase in body["detail"]


def A(n: int) -> str:
    return "sha256:" + f"{n:x}" * 64


def releases_role(version: int, **tags: str) -> Targets:
    releases = new_targets(FUTURE)
    releases.version = version
    for tag, digest in tags.items():
        releases.targets[tag] = image_target(tag, parse_digest(digest), 10, None)
    return releases
