"""A bearer token is found by the first 16 hex digits of its sha256 and is the caller's
only if the whole sha256 matches. Every route that reads a token must compare the whole
hash: the changefeed and, under ``--read-auth``, the API description and metrics used
to take a token whose 16-digit prefix matched a live record, whatever its other digits
(a 2^64 search for a prefix, not a 2^256 one for the token, and no constant-time
comparison at all).

The collision is planted in the store (a record under the attacker token's lookup with
another token's digest), as finding one by brute force would leave it."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import httpx

from server.auth import token_lookup
from server.storage import SQLiteStorage, TokenRecord
from tests.support.harness import ServerProcess
from trustkit.wire import CHANGEFEED_PATH, METRICS_PATH, OPENAPI_PATH


def test_a_token_sharing_only_the_lookup_prefix_of_an_admin_token_is_refused_everywhere(
    start_server: Any,
):
    server: ServerProcess = start_server("--read-auth")
    gun = "registry.test/lookup/prefix"
    attacker = "tkt_attacker_" + "x" * 40
    storage = SQLiteStorage(server.database)
    try:
        storage.add_token(
            TokenRecord(
                token_lookup(attacker),
                hashlib.sha256(b"the real admin's secret, which the attacker lacks").hexdigest(),
                "real-admin",
                ("admin:**",),
                datetime.now(UTC),
            )
        )
    finally:
        storage.close()
    headers = {"Authorization": f"Bearer {attacker}"}
    for path in (CHANGEFEED_PATH, OPENAPI_PATH, METRICS_PATH, f"/v2/{gun}/_trust/tuf/root.json"):
        answer = httpx.get(server.url + path, headers=headers, timeout=30)
        assert answer.status_code == 401, (path, answer.status_code, answer.text[:200])
        assert answer.json()["error"] == "unauthorized", path
