"""A root that does not chain from the trusted one: an attacker makes a root v2 of their
own — every role's key theirs — and a repository to go with it, pointing 1.0 at their
image. A new root counts only when a threshold of the keys of the root before it signed
it: the server refuses the upload, and a host that trusts root v1 refuses it served."""

from __future__ import annotations

from pathlib import Path

import pytest
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Root

from tests.attacks.common import (
    FORGED,
    assert_host_refuses,
    attacker_key,
    fetched,
    forged_snapshot_and_timestamp,
    ok,
    passthrough,
    pinned_host,
    relabelled,
    serve,
    sign,
    with_tag,
)
from tests.support.harness import (
    DIGEST_A,
    ServerProcess,
    TamperingProxy,
    Trustkit,
    assert_verifies,
)
from tests.support.server_side import post_upload, served_metadata, served_version
from trustkit.metadata import sign_with


def _attackers_root(server: ServerProcess, gun: str, key: CryptoSigner) -> Root:
    """Root v2: root v1 with every role's keys replaced by KEY."""
    root: Root = served_metadata(server, gun, "1.root.json").signed
    root.version = 2
    for name, role in root.roles.items():
        for keyid in list(role.keyids):
            root.revoke_key(keyid, name)
        root.add_key(key.public_key, name)
    return root


@pytest.mark.parametrize("claimed_keyid", ["its-own", "the-root-keys"])
def test_a_host_refuses_a_root_not_signed_by_the_root_it_trusts(
    claimed_keyid: str,
    publisher: Trustkit,
    server: ServerProcess,
    proxy: TamperingProxy,
    gun: str,
    tmp_path: Path,
):
    root_keyid = ok(publisher("init", gun, "--json"))["keys"]["root"][0]
    sign(publisher, gun, "1.0", DIGEST_A)
    host = pinned_host(server, gun, tmp_path / "host", proxy.url)
    assert_verifies(host, gun, "1.0", DIGEST_A)
    key = attacker_key()
    root = sign_with(_attackers_root(server, gun, key), [key])
    if claimed_keyid == "the-root-keys":
        root = relabelled(root, root_keyid)
    targets = with_tag(served_metadata(server, gun, "targets.json").signed, "1.0", FORGED)
    files = forged_snapshot_and_timestamp(
        server,
        gun,
        {"targets": sign_with(targets, [key])},
        snapshot_signers=[key],
        timestamp_signers=[key],
    )
    serve(proxy, {**files, "2.root.json": root})

    assert_host_refuses(
        host, gun, "1.0", f"bad signatures on metadata for {gun}: root was signed by 0/1 keys"
    )
    assert fetched(proxy, "2.root.json")

    passthrough(proxy)
    assert_verifies(host, gun, "1.0", DIGEST_A)
    status = ok(host("status", gun, "--json"))
    assert {r["role"]: r["version"] for r in status["roles"]}["root"] == 1


def test_the_server_refuses_a_root_not_signed_by_the_current_root_key(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str
):
    ok(publisher("init", gun))
    sign(publisher, gun, "1.0", DIGEST_A)
    key = attacker_key()

    response = post_upload(server, gun, root=sign_with(_attackers_root(server, gun, key), [key]))

    assert response.status_code == 400, response.text
    body = response.json()
    assert (body["error"], body["role"]) == ("root_not_chained", "root")
    assert body["detail"] == (
        "new root v2 is signed by 0 of the 1 previous root keys needed; "
        "sign it with the current root key"
    )
    assert served_version(server, gun, "root") == 1
    assert_verifies(host, gun, "1.0", DIGEST_A)
