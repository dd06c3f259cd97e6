"""A server whose reads need a token (``--read-auth``) shows nothing to anonymous
callers: not its API description, not its metrics; and no server serves pages that load
scripts from outside (the interactive /docs and /redoc)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.harness import ServerProcess


def test_with_read_auth_the_api_description_and_metrics_need_a_token(start_server: Any):
    server: ServerProcess = start_server("--read-auth")
    for path in ("/openapi.json", "/_trustkit/metrics"):
        anonymous = httpx.get(f"{server.url}{path}", timeout=30)
        assert anonymous.status_code == 401, (path, anonymous.text)
        assert anonymous.json()["error"] == "unauthorized"
        bad = httpx.get(
            f"{server.url}{path}", headers={"Authorization": "Bearer tkt_not_a_token"}, timeout=30
        )
        assert bad.status_code == 401, (path, bad.text)
        with_token = httpx.get(f"{server.url}{path}", headers=server.auth_headers(), timeout=30)
        assert with_token.status_code == 200, (path, with_token.text)
    assert httpx.get(f"{server.url}/_trustkit/health", timeout=30).status_code == 200


def test_no_page_loads_scripts_from_outside(start_server: Any):
    for args in ((), ("--read-auth",)):
        server: ServerProcess = start_server(*args)
        for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
            answer = httpx.get(f"{server.url}{path}", headers=server.auth_headers(), timeout=30)
            assert answer.status_code == 404, (args, path)
            assert "<script" not in answer.text
    # Where reads are open, the API description stays open (as JSON, no page).
    open_server: ServerProcess = start_server()
    assert httpx.get(f"{open_server.url}/openapi.json", timeout=30).status_code == 200
