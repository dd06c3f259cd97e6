"""The changefeed's ``after`` and ``limit`` as an attacker sends them: negative, huge,
not numbers at all. Every answer is a page within bounds or a refusal in the one JSON
shape every refusal has (``trustkit.wire.ErrorBody``), never FastAPI's own 422 body."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.harness import ServerProcess
from trustkit.wire import CHANGEFEED_PATH, MAX_FEED_LIMIT, ChangefeedPage, ErrorBody, loads


def test_changefeed_bounds_and_non_numbers_are_answered_in_the_wire_format(start_server: Any):
    server: ServerProcess = start_server()
    url = server.url + CHANGEFEED_PATH
    admin = server.auth_headers()
    for query in ("after=-5&limit=-1", "after=99999999999999999999999999", "limit=10000000"):
        answer = httpx.get(f"{url}?{query}", headers=admin, timeout=30)
        assert answer.status_code == 200, (query, answer.text)
        page = ChangefeedPage.from_dict(loads(answer.content))
        assert len(page.entries) <= MAX_FEED_LIMIT and page.next <= 2**62, query
    for query in ("after=abc", "limit=1e3", "after=", "limit=0x10", "after=1&after=x"):
        answer = httpx.get(f"{url}?{query}", headers=admin, timeout=30)
        assert answer.status_code == 400, (query, answer.status_code, answer.text)
        assert ErrorBody.from_dict(loads(answer.content)).error == "malformed", answer.text
    assert httpx.get(url, timeout=30).status_code == 401
