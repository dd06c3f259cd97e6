"""Anonymous requests must not cost the server a write lock or repeated heavy work:
listing pending changes is a read, and a large role is gzip-compressed once, not once
per request."""

from __future__ import annotations

import secrets
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from tuf.api.metadata import Metadata, Targets

from tests.attacks.common import key_of, ok
from tests.support.harness import DIGEST_A, ServerProcess, Trustkit, publisher_cli
from tests.support.server_side import post_upload, served_metadata
from trustkit.expiry import utc_now
from trustkit.metadata import COMPACT_JSON, image_target
from trustkit.names import parse_digest

PASSPHRASE = "co-holder passphrase for cost tests"


def _pending_root_rotation(server: ServerProcess, gun: str, tmp_path: Path) -> None:
    owner = publisher_cli(tmp_path / "owner" / ".trustkit", server.url)
    ok(owner("init", gun, "--json"))
    bob = Trustkit(
        tmp_path / "bob" / ".trustkit",
        server.url,
        {"TRUSTKIT_DELEGATION_PASSPHRASE": PASSPHRASE, "TRUSTKIT_ROOT_PASSPHRASE": PASSPHRASE},
    )
    ok(bob("key", "generate", "bob-root", "--out", str(tmp_path / "bob.pub"), "--json"))
    args = ["--key", str(tmp_path / "bob.pub"), "--threshold", "2", "--json"]
    ok(owner("key", "rotate", gun, "root", *args))


def test_listing_pending_changes_needs_no_write_lock(start_server: Any, gun: str, tmp_path: Path):
    """While a publish holds the database's write lock (here: the test holds it), an
    anonymous GET of the pending changes is still answered: it only reads."""
    server: ServerProcess = start_server()
    _pending_root_rotation(server, gun, tmp_path)
    writer = sqlite3.connect(server.database, isolation_level=None, timeout=1)
    try:
        writer.execute("BEGIN IMMEDIATE")  # what a publish in progress holds
        try:
            response = httpx.get(server.metadata_url(gun, "pending"), timeout=10)
        except httpx.TimeoutException:
            response = None
        writer.execute("ROLLBACK")
    finally:
        writer.close()
    assert response is not None, "listing pending changes waited for the write lock"
    assert response.status_code == 200, response.text
    [change] = response.json()["pending"]
    assert change["needs"][0]["role"] == "root"


def _large_targets(server: ServerProcess, gun: str, publisher: Trustkit, tags: int) -> int:
    """Upload a targets role of TAGS random tags (its gzip body some MiB); its length."""
    root = served_metadata(server, gun, "root.json").signed
    [keyid] = root.roles["targets"].keyids
    targets: Targets = served_metadata(server, gun, "targets.json").signed
    targets.version += 1
    targets.expires = utc_now() + timedelta(days=30)
    digest = parse_digest(DIGEST_A)
    for _ in range(tags):
        tag = secrets.token_hex(20)
        target = image_target(tag, digest, 100, None)
        target.hashes = {"sha256": secrets.token_hex(32)}
        targets.targets[tag] = target
    metadata = Metadata(targets)
    metadata.sign(key_of(publisher, keyid))
    data = metadata.to_bytes(COMPACT_JSON)
    answer = post_upload(server, gun, targets=data)
    assert answer.status_code == 200, answer.text
    return len(data)


def _compressions(server: ServerProcess) -> int:
    text = httpx.get(f"{server.url}/_trustkit/metrics", timeout=30).text
    for line in text.splitlines():
        if line.startswith("trustkit_gzip_compressions_total "):
            return int(line.split()[1])
    raise AssertionError("no trustkit_gzip_compressions_total in the metrics")


def test_a_large_role_is_compressed_once_not_per_request(
    start_server: Any, gun: str, tmp_path: Path
):
    server: ServerProcess = start_server()
    publisher = publisher_cli(tmp_path / "publisher" / ".trustkit", server.url)
    ok(publisher("init", gun))
    size = _large_targets(server, gun, publisher, 90_000)
    assert size > 8 * 1024 * 1024
    url = server.metadata_url(gun, "targets.json")
    before = _compressions(server)
    bodies = set()
    for _ in range(3):
        with httpx.Client(headers={"Accept-Encoding": "gzip"}, timeout=60) as client:
            response = client.get(url)
            assert response.status_code == 200
            assert response.headers["content-encoding"] == "gzip"
            assert response.num_bytes_downloaded > 4 * 1024 * 1024  # past the old cache
            bodies.add(response.headers["etag"])
    assert len(bodies) == 1
    assert _compressions(server) - before == 1
