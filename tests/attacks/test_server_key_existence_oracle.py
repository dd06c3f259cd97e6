"""Under ``--read-auth``, a caller who may not read a repository cannot learn from the
server-key route whether the repository exists.

``GET {gun}/_trust/tuf/{role}.key`` makes the key on the first request (a write, which
needs ``push``) and only reads it afterwards (``pull``). The route used to look the key
up first and then ask for the scope that fitted, so the refusal itself said which case
it was: "needs a bearer token to pull" for a repository that exists, "to push" for one
that does not, to anonymous callers and to tokens scoped elsewhere alike.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.attacks.test_pending_withdraw_and_replay import _token
from tests.support.harness import ServerProcess


def test_the_server_key_route_does_not_tell_outsiders_which_repositories_exist(
    start_server: Any,
):
    server: ServerProcess = start_server("--read-auth")
    existing, absent = "registry.test/oracle/exists", "registry.test/oracle/absent"
    made = httpx.get(server.metadata_url(existing, "snapshot.key"), headers=server.auth_headers())
    assert made.status_code == 200, made.text
    elsewhere = {"Authorization": f"Bearer {_token(server, 'other', 'pull:registry.test/x/*')}"}

    for headers, status in (({}, 401), (elsewhere, 403)):
        answers = [
            httpx.get(server.metadata_url(gun, f"{role}.key"), headers=headers, timeout=30)
            for gun in (existing, absent)
            for role in ("snapshot", "timestamp")
        ]
        assert {answer.status_code for answer in answers} == {status}, [a.text for a in answers]
        details = {answer.json()["detail"].replace(absent, existing) for answer in answers}
        assert len(details) == 1, details  # the same refusal, whether it exists or not

    # What the scopes allow is unchanged: a reader reads an existing key, and making
    # one still takes push.
    reader = {"Authorization": f"Bearer {_token(server, 'reader', 'pull:registry.test/oracle/*')}"}
    assert (
        httpx.get(server.metadata_url(existing, "snapshot.key"), headers=reader).status_code == 200
    )
    refused = httpx.get(server.metadata_url(absent, "snapshot.key"), headers=reader)
    assert refused.status_code == 403, refused.text
    assert "may not push" in refused.json()["detail"]
