"""Wrong delegation path: a signer signs a tag outside the paths the owner delegated to
it — a tag nobody signed, or one that belongs to another signer. The server refuses
the upload; a host served such a role (by a server whose online keys were stolen, so
snapshot and timestamp pin it) looks a tag up only in roles whose paths cover it."""

from __future__ import annotations

from pathlib import Path

from tests.attacks.common import (
    DIGEST_C,
    FORGED,
    assert_not_signed,
    fetched,
    key_of,
    online_signed,
    pinned_host,
    serve,
    sign,
    with_signers,
    with_tag,
)
from tests.support.harness import (
    DIGEST_A,
    DIGEST_B,
    ServerProcess,
    TamperingProxy,
    Trustkit,
    assert_verifies,
)
from tests.support.server_side import (
    post_upload,
    served_metadata,
    served_version,
    stolen_online_signers,
)
from trustkit.metadata import sign_with


def _alice_and_bob(
    publisher: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
) -> tuple[Trustkit, str]:
    """alice may sign release-*, bob nightly-*; each signed one. Returns alice, key id."""
    people = with_signers(
        publisher, server, gun, tmp_path, {"alice": "release-*", "bob": "nightly-*"}
    )
    alice, alice_keyid = people["alice"]
    sign(alice, gun, "release-1", DIGEST_B)
    sign(people["bob"][0], gun, "nightly-1", DIGEST_C)
    return alice, alice_keyid


def test_the_server_refuses_a_signer_role_signing_outside_its_paths(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    alice, keyid = _alice_and_bob(publisher, server, gun, tmp_path)
    refused_by_cli = alice("sign", f"{gun}:latest", "--digest", FORGED, "--size", "100")
    assert refused_by_cli.code == 2
    assert "holds no key that may sign latest" in refused_by_cli.err
    version = served_version(server, gun, "alice")

    for tag in ("latest", "nightly-1"):  # nobody's tag, and bob's
        role = with_tag(served_metadata(server, gun, "alice.json").signed, tag, FORGED)
        response = post_upload(server, gun, alice=sign_with(role, [key_of(alice, keyid)]))

        assert response.status_code == 400, response.text
        body = response.json()
        assert (body["error"], body["role"]) == ("outside_delegated_paths", "alice")
        assert body["detail"] == (
            f"alice signs '{tag}', which is outside its delegated paths (release-*)"
        )
    assert served_version(server, gun, "alice") == version
    assert_not_signed(host, gun, "latest")
    assert_verifies(host, gun, "nightly-1", DIGEST_C)
    assert_verifies(host, gun, "release-1", DIGEST_B)


def test_a_host_ignores_tags_a_signer_role_holds_outside_its_paths(
    publisher: Trustkit, server: ServerProcess, proxy: TamperingProxy, gun: str, tmp_path: Path
):
    alice, keyid = _alice_and_bob(publisher, server, gun, tmp_path)
    role = with_tag(served_metadata(server, gun, "alice.json").signed, "latest", FORGED)
    role = with_tag(role, "nightly-1", FORGED, bump=0)
    forged = sign_with(role, [key_of(alice, keyid)])
    files = online_signed(server, gun, stolen_online_signers(server, gun), {"alice": forged})
    serve(proxy, files)
    host = pinned_host(server, gun, tmp_path / "host", proxy.url)

    assert_not_signed(host, gun, "latest")
    assert fetched(proxy, f"{role.version}.alice.json")  # the forged role was read
    result = host("verify", f"{gun}:latest", "--offline")
    assert "(signed tags: 1.0, nightly-1, release-1)" in result.err
    assert_verifies(host, gun, "nightly-1", DIGEST_C)  # bob's, not alice's
    assert_verifies(host, gun, "release-1", DIGEST_B)
    assert_verifies(host, gun, "1.0", DIGEST_A)
    inspected = host("inspect", gun, "--json")
    assert inspected.code == 0, inspected.err
    tags = {t["tag"]: (t["digest"], t["signer"]) for t in inspected.json["tags"]}
    assert tags == {
        "1.0": (DIGEST_A, "targets"),
        "nightly-1": (DIGEST_C, "bob"),
        "release-1": (DIGEST_B, "alice"),
    }
