"""A withdraw request's body is read as the wire format says (``trustkit.wire.loads``):
JSON nested deeper than Python's parser can go is a 400, not an internal error with a
traceback in the log, and an object with a key twice (``{"signatures": [], "signatures":
[...]}``: which one counts?) is refused rather than resolved."""

from __future__ import annotations

from typing import Any

import httpx

from tests.attacks.test_pending_withdraw_and_replay import _token
from tests.support.harness import ServerProcess


def test_a_withdraw_body_nested_too_deeply_or_with_a_key_twice_is_refused(start_server: Any):
    server: ServerProcess = start_server()
    gun = "registry.test/withdraw/hostile"
    headers = {"Authorization": f"Bearer {_token(server, 'pusher', f'push:{gun}')}"}
    url = server.metadata_url(gun, "pending/0123456789abcdef")
    bodies = {
        "deep": b"[" * 60_000,
        "twice": b'{"signatures": [], "signatures": [{"keyid": "ab", "sig": "cd"}]}',
    }
    for name, body in bodies.items():
        answer = httpx.request("DELETE", url, content=body, headers=headers, timeout=30)
        assert answer.status_code == 400, (name, answer.status_code, answer.text)
        assert answer.json()["error"] == "malformed", (name, answer.text)
    assert "Traceback" not in server.log_path.read_text()
