"""Pending changes: who may withdraw one, and replaying one that was withdrawn or expired.

A pending change carries real signatures by key holders. Withdrawing it takes an admin
token or a signature by a key of the change's roles (a root rotation: a root key), not
just any push token; and once withdrawn or expired, the same signed content is never
kept pending again, whoever uploads it.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from securesystemslib.signer import CryptoSigner

from tests.attacks.common import ok, sign
from tests.support.harness import DIGEST_A, DIGEST_B, ServerProcess, Trustkit, publisher_cli
from tests.support.server_side import served_version
from trustkit.metadata import withdraw_statement

PASSPHRASE = "key holder passphrase for withdraw tests"


def _token(server: ServerProcess, name: str, scope: str) -> str:
    """``trustkit-server token create``, as the operator runs it next to the server."""
    args = ["token", "create", "--name", name, "--scope", scope]
    done = subprocess.run(
        [sys.executable, "-m", "server", *args, "--data-dir", str(server.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _holder(tmp_path: Path, server: ServerProcess, name: str, token: str) -> Trustkit:
    """A key holder with a keystore of their own and a push token (no admin)."""
    return Trustkit(
        tmp_path / name / ".trustkit",
        server.url,
        {
            "TRUSTKIT_DELEGATION_PASSPHRASE": PASSPHRASE,
            "TRUSTKIT_ROOT_PASSPHRASE": PASSPHRASE,
            "TRUSTKIT_TOKEN": token,
        },
    )


def _pending(server: ServerProcess, gun: str) -> list[dict[str, Any]]:
    response = httpx.get(server.metadata_url(gun, "pending"), timeout=30)
    assert response.status_code == 200, response.text
    changes: list[dict[str, Any]] = response.json()["pending"]
    return changes


def _root_rotation(
    server: ServerProcess, gun: str, tmp_path: Path, token: str
) -> tuple[Trustkit, dict[str, Any]]:
    """The owner (push token only) shares root with bob, 2 of 2: root v2 is pending
    until bob signs it. Returns the owner and the pending change as the server lists it."""
    owner = publisher_cli(tmp_path / "owner" / ".trustkit", server.url)
    owner.env["TRUSTKIT_TOKEN"] = token
    ok(owner("init", gun, "--json"))
    bob = _holder(tmp_path, server, "bob", token)
    ok(bob("key", "generate", "bob-root", "--out", str(tmp_path / "bob.pub"), "--json"))
    args = ["--key", str(tmp_path / "bob.pub"), "--threshold", "2", "--json"]
    ok(owner("key", "rotate", gun, "root", *args))
    [change] = _pending(server, gun)
    assert "root" in change["roles"]
    return owner, change


def _replay(server: ServerProcess, gun: str, change: dict[str, Any], token: str) -> httpx.Response:
    """Upload the roles of a pending change exactly as the server listed them."""
    files = [
        ("files", (f"{role}.json", json.dumps(data).encode(), "application/json"))
        for role, data in change["roles"].items()
    ]
    return httpx.post(
        server.metadata_url(gun),
        files=files,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def test_a_push_token_without_a_key_cannot_withdraw_a_root_rotation(
    server: ServerProcess, gun: str, tmp_path: Path
):
    _, change = _root_rotation(server, gun, tmp_path, _token(server, "owner-ci", f"push:{gun}"))
    mallory = _token(server, "mallory-ci", f"push:{gun}")
    url = server.metadata_url(gun, f"pending/{change['id']}")
    headers = {"Authorization": f"Bearer {mallory}"}

    bare = httpx.delete(url, headers=headers, timeout=30)
    assert bare.status_code == 403, bare.text
    assert bare.json()["error"] == "withdraw_not_allowed"
    assert "admin token or a signature by a key that may sign its root" in bare.json()["detail"]

    # A signature by a key of her own, over the right statement, counts for nothing.
    own = CryptoSigner.generate_ed25519()
    signature = own.sign(withdraw_statement(gun, change["id"])).to_dict()
    signed = httpx.request(
        "DELETE", url, headers=headers, json={"signatures": [signature]}, timeout=30
    )
    assert signed.status_code == 403, signed.text
    # Nor does a body that is not signatures at all.
    for body in (
        {"signatures": [{"keyid": 1, "sig": 2}]},
        {"signatures": "x"},
        {"signatures": [{"keyid": change["needs"][0]["keyids"][0], "sig": "zz"}]},
        [],
    ):
        odd = httpx.request("DELETE", url, headers=headers, json=body, timeout=30)
        assert odd.status_code in (400, 403), odd.text
        assert odd.json()["error"] in ("malformed", "withdraw_not_allowed")
    assert [c["id"] for c in _pending(server, gun)] == [change["id"]]


def test_a_withdrawn_root_rotation_cannot_be_uploaded_again_by_a_push_token(
    server: ServerProcess, gun: str, tmp_path: Path
):
    owner, change = _root_rotation(
        server, gun, tmp_path, _token(server, "owner-ci2", f"push:{gun}")
    )
    # The owner withdraws it with a push token and the root key it holds.
    withdrawn = ok(owner("approve", gun, "--reject", "--yes", "--json"))
    assert withdrawn["results"] == [{"id": change["id"], "withdrawn": True}]
    assert _pending(server, gun) == []

    replay = _replay(server, gun, change, _token(server, "mallory-ci2", f"push:{gun}"))
    assert replay.status_code == 409, replay.text
    assert replay.json()["error"] == "withdrawn_content"
    assert "Propose the change afresh" in replay.json()["detail"]
    assert _pending(server, gun) == []
    assert served_version(server, gun, "root") == 1


def test_an_expired_pending_change_cannot_be_uploaded_again(
    start_server: Any, gun: str, tmp_path: Path
):
    server: ServerProcess = start_server("--expiry", "pending=2s")
    _, change = _root_rotation(server, gun, tmp_path, _token(server, "owner-ci", f"push:{gun}"))
    time.sleep(3)  # nobody signed it in time
    assert _pending(server, gun) == []
    replay = _replay(server, gun, change, _token(server, "mallory-ci", f"push:{gun}"))
    assert replay.status_code == 409, replay.text
    assert replay.json()["error"] == "withdrawn_content"
    assert _pending(server, gun) == []


def test_a_co_signer_with_a_push_token_withdraws_and_the_change_is_proposed_again(
    server: ServerProcess, gun: str, tmp_path: Path
):
    """The legitimate paths: a key holder of the role rejects with a push token; the
    proposer then proposes afresh, and a release that replaces its own pending change
    withdraws that one with its key."""
    token = _token(server, "team-ci", f"push:{gun}")
    owner = publisher_cli(tmp_path / "owner" / ".trustkit", server.url)
    ok(owner("init", gun))
    sign(owner, gun, "1.0", DIGEST_A)
    alice = _holder(tmp_path, server, "alice", token)
    bob = _holder(tmp_path, server, "bob", token)
    for name, holder in (("alice", alice), ("bob", bob)):
        ok(holder("key", "generate", name, "--out", str(tmp_path / f"{name}.pub"), "--json"))
    keys = ["--key", str(tmp_path / "alice.pub"), "--key", str(tmp_path / "bob.pub")]
    ok(owner("signer", "add", "release", gun, *keys, "--paths", "release-*", "--threshold", "2"))

    first = sign(alice, gun, "release-1", DIGEST_B)["pending"]["id"]
    rejected = ok(bob("approve", gun, "--reject", "--yes", "--json"))
    assert rejected["results"] == [{"id": first, "withdrawn": True}]
    assert _pending(server, gun) == []

    second = sign(alice, gun, "release-2", DIGEST_B)["pending"]["id"]
    third = alice("sign", f"{gun}:release-3", "--digest", DIGEST_A, "--size", "100", "--json")
    replacing = ok(third)["pending"]["id"]
    assert f"your pending change {second}" in third.err
    assert [c["id"] for c in _pending(server, gun)] == [replacing]
    ok(bob("approve", gun, "--yes", "--json"))
    assert _pending(server, gun) == []


def test_pending_changes_kept_by_an_older_server_are_listed_with_what_they_lack(
    start_server: Any, gun: str, tmp_path: Path
):
    """A database from before pending changes stored what they lack (no ``needs``
    column): the server adds the column, works it out once, and lists them as before."""
    server: ServerProcess = start_server()
    _, change = _root_rotation(server, gun, tmp_path, _token(server, "owner-ci", f"push:{gun}"))
    server.stop()
    with sqlite3.connect(server.database) as database:
        database.execute("ALTER TABLE pending DROP COLUMN needs")
    server.start()
    [listed] = _pending(server, gun)
    assert listed["id"] == change["id"]
    assert listed["needs"] == change["needs"]
