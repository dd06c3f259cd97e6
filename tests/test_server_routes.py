"""The server's routes in-process, without a server process: what /openapi.json lists,
which route an odd path reaches, handlers called alone, and configuration passed in
from the edge (``server.main``) rather than read inside the app."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from server import routes
from server.app import create_app
from server.auth import make_token
from server.main import _parser, settings_from_args
from server.refusals import Refusal
from server.settings import GZIP_ENV, ServerSettings

GUN = "registry.example.com/team/app"


def _app(tmp_path: Path, **settings: Any) -> tuple[FastAPI, str]:
    token = make_token()
    (tmp_path / "admin-token").write_text(token)
    app = create_app(
        ServerSettings(
            data_dir=tmp_path,
            master_key_file=tmp_path / "master.key",
            admin_token_file=tmp_path / "admin-token",
            **settings,
        )
    )
    return app, token


def _call(
    app: FastAPI, method: str, path: str, token: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request with ``path`` exactly as given (no client normalises it)."""

    async def run() -> tuple[int, dict[str, str], bytes]:
        headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
        scope = {
            "type": "http",
            "method": method,
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": headers,
            "http_version": "1.1",
            "scheme": "http",
            "server": ("test", 80),
            "client": ("test", 1),
            "root_path": "",
        }
        sent: list[dict[str, Any]] = []
        received = False

        async def receive() -> dict[str, Any]:
            nonlocal received
            if received:
                await asyncio.sleep(3600)
            received = True
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        async with app.router.lifespan_context(app):
            await app(scope, receive, send)
        start = next(m for m in sent if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body

    return asyncio.run(run())


def test_openapi_lists_the_real_paths(tmp_path: Path):
    app, _ = _app(tmp_path)
    status, _, body = _call(app, "GET", "/openapi.json")
    assert status == 200
    paths = json.loads(body)["paths"]
    tuf = "/v2/{gun}/_trust/tuf/"
    assert {
        "/_trustkit/health": ["get"],
        "/_trustkit/metrics": ["get"],
        "/v2/_trust/changefeed": ["get"],
        tuf: ["delete", "post"],
        tuf + "pending": ["get"],
        tuf + "pending/{change_id}": ["delete", "post"],
        tuf + "{role}.json": ["get"],
        tuf + "{version}.{role}.json": ["get"],
        tuf + "{role}.key": ["get", "post"],
    } == {path: sorted(operations) for path, operations in paths.items()}


def test_openapi_needs_a_token_under_read_auth_and_there_are_no_doc_pages(tmp_path: Path):
    app, token = _app(tmp_path, open_reads=False)
    status, headers, _ = _call(app, "GET", "/openapi.json")
    assert status == 401 and headers["www-authenticate"] == 'Bearer realm="trustkit"'
    assert _call(app, "GET", "/openapi.json", token)[0] == 200
    for page in ("/docs", "/redoc"):
        assert _call(app, "GET", page, token)[0] == 404


@pytest.mark.parametrize(
    ("path", "status", "error", "role"),
    [
        # A GUN ends at the first /_trust/tuf/; the rest is a role name, not a route.
        (f"/v2/{GUN}/_trust/tuf/x/_trust/tuf/y.json", 404, "not_found", "x/_trust/tuf/y"),
        (f"/v2/{GUN}/_trust/tuf/../root.json", 404, "not_found", "../root"),
        (f"/v2/{GUN}/_trust/tuf/pending/x.json", 404, "not_found", "pending/x"),
        (f"/v2/{GUN}/_trust/tuf/1.timestamp.key", 404, "not_server_key", "timestamp"),
        (f"/v2/{GUN}/_trust/tuf/root.json.key", 404, "not_server_key", "root.json"),
        (f"/v2/{GUN}/_trust/tuf/pending/", 404, "not_found", None),
        (f"/v2/{GUN}/_trust/tuf/root", 404, "not_found", None),
        (f"/v2/{GUN}/../other/_trust/tuf/root.json", 400, "bad_repository_name", None),
        ("/v2/nginx/_trust/tuf/root.json", 400, "bad_repository_name", None),
        ("/v2/_trust/tuf/root.json", 400, "bad_repository_name", None),
        ("/v2/registry.example.com/app/root.json", 404, "not_found", None),
    ],
)
def test_an_odd_path_reaches_no_other_route(
    tmp_path: Path, path: str, status: int, error: str, role: str | None
):
    app, token = _app(tmp_path)
    answer_status, _, body = _call(app, "GET", path, token)
    assert answer_status == status
    document = json.loads(body)
    assert document["error"] == error and document["role"] == role


def test_writes_no_route_takes_need_an_admin_token_then_are_not_allowed(tmp_path: Path):
    app, token = _app(tmp_path)
    for method in ("POST", "DELETE"):
        for filename in ("root.json", "pending", "1.timestamp.key"):
            path = f"/v2/{GUN}/_trust/tuf/{filename}"
            assert _call(app, method, path)[0] == 401
            status, _, body = _call(app, method, path, token)
            assert (status, json.loads(body)["error"]) == (405, "method_not_allowed")
    status, _, body = _call(app, "PUT", f"/v2/{GUN}/_trust/tuf/root.json", token)
    assert (status, json.loads(body)["error"]) == (405, "http_error")


def test_handlers_can_be_called_alone():
    assert routes.health()["status"] == "ok"
    answer = routes.get_versioned_key(GUN, 1, "timestamp")
    assert answer.status_code == 404
    assert json.loads(bytes(answer.body))["error"] == "not_server_key"
    with pytest.raises(Refusal) as refused:
        routes.get_versioned_key("nginx", 1, "timestamp")
    assert refused.value.status == 400


def test_gzip_is_configured_at_the_edge(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    args = _parser().parse_args(["--data-dir", str(tmp_path)])
    monkeypatch.setenv(GZIP_ENV, "0")
    assert settings_from_args(args).gzip is False
    monkeypatch.setenv(GZIP_ENV, "1")
    assert settings_from_args(args).gzip is True
    monkeypatch.delenv(GZIP_ENV)
    assert settings_from_args(args).gzip is True
    (tmp_path / "off").mkdir()
    app, _ = _app(tmp_path / "off", gzip=False)
    assert app.state.trustkit.compression.enabled is False
