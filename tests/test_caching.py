"""Read scale: versioned metadata never changes, so caches and CDNs may keep it for good;
a role's newest version only briefly. Both carry an ETag that a cache revalidates with,
and ``Vary: Accept-Encoding`` (see tests/test_compression.py for gzip answers)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx

from tests.support.harness import DIGEST_A, ServerProcess, publisher_cli

IDENTITY = {"Accept-Encoding": "identity"}


def test_versioned_metadata_is_immutable_and_the_newest_is_cached_briefly(
    server: ServerProcess, tmp_path: Path, gun: str
) -> None:
    publisher = publisher_cli(tmp_path / "publisher" / ".trustkit", server.url)
    assert publisher("init", gun).code == 0
    assert publisher("sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "1").code == 0

    versioned = httpx.get(server.metadata_url(gun, "1.targets.json"), headers=IDENTITY)
    assert versioned.status_code == 200
    assert versioned.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert versioned.headers["vary"] == "Accept-Encoding"
    etag = versioned.headers["etag"]
    assert etag == f'"{hashlib.sha256(versioned.content).hexdigest()}"'
    again = httpx.get(
        server.metadata_url(gun, "1.targets.json"), headers={**IDENTITY, "If-None-Match": etag}
    )
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    assert again.headers["cache-control"] == versioned.headers["cache-control"]

    latest = httpx.get(server.metadata_url(gun, "timestamp.json"))
    assert latest.headers["cache-control"] == "public, max-age=5"
    stale = httpx.get(
        server.metadata_url(gun, "timestamp.json"), headers={"If-None-Match": '"0000"'}
    )
    assert stale.status_code == 200 and stale.content == latest.content
