"""The hot path for timestamp.json (``server.middleware.FreshTimestamp``, on where reads
need no token) answers before routing, so it must read a path as the routes do: the
repository is everything before the *first* ``/_trust/tuf/``. It used to serve a
repository's timestamp for any path that merely ended in ``/_trust/tuf/timestamp.json``,
such as ``{gun}/_trust/tuf/x/_trust/tuf/timestamp.json`` (the role
``x/_trust/tuf/timestamp`` to the routes), so a cache keyed by URL kept a timestamp where
the routes serve something else, or nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.attacks.common import sign
from tests.support.harness import DIGEST_A, ServerProcess, publisher_cli


def test_the_timestamp_fast_path_takes_the_repository_as_the_routes_do(
    start_server: Any, tmp_path: Path, gun: str
):
    server: ServerProcess = start_server()
    publisher = publisher_cli(tmp_path / "publisher" / ".trustkit", server.url)
    assert publisher("init", gun).code == 0
    sign(publisher, gun, "v1", DIGEST_A)
    assert httpx.get(server.metadata_url(gun, "timestamp.json"), timeout=30).status_code == 200
    for filename in ("x/_trust/tuf/timestamp.json", "targets/_trust/tuf/timestamp.json"):
        answer = httpx.get(server.metadata_url(gun, filename), timeout=30)
        assert answer.status_code == 404, (filename, answer.text[:120])
        assert answer.json()["error"] == "not_found"
