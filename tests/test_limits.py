"""Every limit of the upload endpoint, each refused with a 4xx that names it and with
nothing stored: a server on the network must not be made to parse, store or sign
without bound."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.support.hand_made import A, HandMadeRepository, assert_refused
from tests.support.harness import ServerProcess
from trustkit.metadata import sign_with


def _own(start_server: Any, gun: str, *limits: str) -> HandMadeRepository:
    """A server with the given limits and a repository on it whose keys the test holds."""
    server: ServerProcess = start_server(*limits)
    repo = HandMadeRepository(server, gun)
    repo.create()
    return repo


def _post(repo: HandMadeRepository, files: list[tuple[str, Any]]) -> httpx.Response:
    return httpx.post(
        repo.server.metadata_url(repo.gun),
        files=files,
        headers=repo.server.auth_headers(),
        timeout=60,
    )


def test_json_nested_deeper_than_the_limit_is_refused(start_server: Any, gun: str):
    repo = _own(start_server, gun, "--max-json-depth", "8")
    targets = repo.targets(2, **{"1.0": A(1)}).to_dict()
    nested: Any = "x"
    for _ in range(10):
        nested = {"n": nested}
    targets["targets"]["1.0"]["custom"] = {"deep": nested}
    document = json.dumps({"signed": targets, "signatures": []}).encode()
    assert_refused(
        _post(repo, [("files", ("targets.json", document, "application/json"))]),
        400,
        "too_deep",
        "targets",
        "more than 8 levels deep",
    )


def test_json_nested_beyond_what_a_parser_follows_is_a_4xx_not_a_500(start_server: Any, gun: str):
    repo = _own(start_server, gun)
    bomb = b"[" * 200_000 + b"]" * 200_000
    response = _post(repo, [("files", ("targets.json", bomb, "application/json"))])
    assert_refused(response, 400, "too_deep", "targets", "32 levels")


def test_more_targets_than_the_limit_are_refused(start_server: Any, gun: str):
    repo = _own(start_server, gun, "--max-targets-per-role", "3")
    tags = {f"{n}.0": A(1) for n in range(4)}
    data = sign_with(repo.targets(2, **tags), [repo.targets_key])
    assert_refused(
        _post(repo, [("files", ("targets.json", data, "application/json"))]),
        413,
        "too_many_targets",
        "targets",
        "signs 4 targets; the limit is 3",
    )
    within = sign_with(repo.targets(2, **dict(list(tags.items())[:3])), [repo.targets_key])
    assert _post(repo, [("files", ("targets.json", within, "application/json"))]).is_success


def test_a_role_larger_than_the_limit_is_refused(start_server: Any, gun: str):
    repo = _own(start_server, gun, "--max-role-bytes", "4096")
    big = sign_with(repo.targets(2, **{f"{n}.0": A(1) for n in range(40)}), [repo.targets_key])
    assert len(big) > 4096
    response = _post(repo, [("files", ("targets.json", big, "application/json"))])
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"
    assert "4096 bytes" in response.json()["detail"]


def test_more_roles_in_one_upload_than_the_limit_are_refused(start_server: Any, gun: str):
    repo = _own(start_server, gun, "--max-roles-per-upload", "2")
    files = [("files", (f"role{n}.json", b"{}", "application/json")) for n in range(3)]
    response = _post(repo, files)
    assert response.status_code == 413
    assert response.json()["error"] == "too_many_roles"
    assert "more than 2 roles" in response.json()["detail"]


def test_an_upload_larger_than_the_request_limit_is_refused_unread(start_server: Any, gun: str):
    repo = _own(start_server, gun, "--max-upload-bytes", "10000")
    blob = b" " * 20_000
    response = _post(repo, [("files", ("targets.json", blob, "application/json"))])
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"
    assert "10000 bytes" in response.json()["detail"]


def test_a_limit_must_be_a_positive_number(start_server: Any):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "server", "--max-json-depth", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "'0' is not a positive whole number" in done.stderr
