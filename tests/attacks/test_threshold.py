"""Fewer signatures than the threshold: release-* tags need both alice and bob. alice
alone signs release-1 (or an attacker who stole only her key does). The server keeps
it pending and never serves it; a signature counted twice, or one by a key the
delegation does not list, does not complete it; and a host served the half-signed role
anyway (by a server whose online keys were stolen) refuses it."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from securesystemslib.signer import Signer
from tuf.api.metadata import Targets

from tests.attacks.common import (
    FORGED,
    assert_host_refuses,
    assert_not_signed,
    assert_server_untouched,
    attacker_key,
    fetched,
    generate,
    key_of,
    ok,
    online_signed,
    passthrough,
    person,
    pinned_host,
    serve,
    sign,
)
from tests.support.harness import (
    DIGEST_A,
    DIGEST_B,
    ServerProcess,
    TamperingProxy,
    Trustkit,
    assert_verifies,
)
from tests.support.server_side import post_upload, served_metadata, stolen_online_signers
from trustkit.expiry import utc_now
from trustkit.metadata import image_target, new_targets, sign_with
from trustkit.names import parse_digest


def _two_of_two(
    publisher: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
) -> tuple[Trustkit, Signer, Trustkit]:
    """1.0 signed by the owner; release-* needs alice and bob. Returns alice, her key,
    and bob."""
    ok(publisher("init", gun))
    sign(publisher, gun, "1.0", DIGEST_A)
    alice = person(tmp_path, server.url, "alice")
    bob = person(tmp_path, server.url, "bob")
    alice_keyid = generate(alice, "alice", tmp_path / "alice.pub")
    generate(bob, "bob", tmp_path / "bob.pub")
    keys = ["--key", str(tmp_path / "alice.pub"), "--key", str(tmp_path / "bob.pub")]
    ok(
        publisher(
            "signer", "add", "release", gun, *keys,
            "--paths", "release-*", "--threshold", "2",
        )
    )  # fmt: skip
    return alice, key_of(alice, alice_keyid), bob


def _pending(server: ServerProcess, gun: str) -> list[dict[str, Any]]:
    response = httpx.get(server.metadata_url(gun, "pending"), timeout=30)
    assert response.status_code == 200, response.text
    changes: list[dict[str, Any]] = response.json()["pending"]
    return changes


def _release_role(tag: str, digest: str) -> Targets:
    role = new_targets(utc_now() + timedelta(days=30))
    role.targets[tag] = image_target(tag, parse_digest(digest), 100, None)
    return role


def test_a_role_signed_by_fewer_keys_than_its_threshold_is_kept_pending_never_served(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    alice, alice_key, bob = _two_of_two(publisher, server, gun, tmp_path)

    signed = sign(alice, gun, "release-1", DIGEST_B)

    assert signed["published"] is False
    [need] = signed["pending"]["needs"]
    assert (need["role"], need["threshold"], len(need["signed"])) == ("release", 2, 1)
    assert httpx.get(server.metadata_url(gun, "release.json"), timeout=30).status_code == 404
    assert "release.json" not in served_metadata(server, gun, "snapshot.json").signed.meta
    assert_not_signed(host, gun, "release-1")

    # Made by hand: alice's signature plus one by a key the delegation does not list
    # is one signature that counts; the same signature twice is not two.
    role = _release_role("release-2", FORGED)
    with_stranger = sign_with(role, [alice_key, attacker_key()])
    response = post_upload(server, gun, release=with_stranger)
    assert response.status_code == 202, response.text
    [need] = response.json()["pending"]["needs"]
    assert (need["threshold"], need["signed"]) == (2, [alice_key.public_key.keyid])
    twice = json.loads(sign_with(role, [alice_key]))
    twice["signatures"] *= 2
    response = post_upload(server, gun, release=json.dumps(twice).encode())
    assert response.status_code == 400, response.text
    assert (response.json()["error"], response.json()["role"]) == ("malformed", "release")
    assert "Multiple signatures found for keyid" in response.json()["detail"]

    assert httpx.get(server.metadata_url(gun, "release.json"), timeout=30).status_code == 404
    for tag in ("release-1", "release-2"):
        assert_not_signed(host, gun, tag)
    # bob approves alice's change: only then is release-1 served.
    ok(bob("approve", gun, "--id", signed["pending"]["id"], "--yes"))
    assert_verifies(host, gun, "release-1", DIGEST_B)
    assert_not_signed(host, gun, "release-2")


@pytest.mark.parametrize("signatures", ["one", "one-twice"])
def test_a_host_refuses_a_role_served_with_fewer_signatures_than_its_threshold(
    signatures: str,
    publisher: Trustkit,
    server: ServerProcess,
    proxy: TamperingProxy,
    gun: str,
    tmp_path: Path,
):
    alice, _, _ = _two_of_two(publisher, server, gun, tmp_path)
    sign(alice, gun, "release-1", DIGEST_B)
    [change] = _pending(server, gun)
    held = change["roles"]["release"]  # what the server keeps, with alice's signature
    assert len(held["signatures"]) == 1
    if signatures == "one-twice":
        held["signatures"] *= 2
        reason = f"metadata for {gun} failed verification: Failed to deserialize JSON"
    else:
        reason = f"bad signatures on metadata for {gun}: release was signed by 1/2 keys"
    forged = json.dumps(held, separators=(",", ":")).encode()
    online = stolen_online_signers(server, gun)
    serve(proxy, online_signed(server, gun, online, {"release": forged}))
    host = pinned_host(server, gun, tmp_path / "host", proxy.url)

    assert_host_refuses(host, gun, "release-1", reason)
    assert fetched(proxy, "1.release.json")
    assert_host_refuses(host, gun, "1.0", reason)  # the repository as a whole

    passthrough(proxy)
    assert_server_untouched(server, gun, tmp_path / "direct", "1.0", DIGEST_A)
    assert_not_signed(Trustkit(tmp_path / "direct" / ".trustkit", server.url), gun, "release-1")
