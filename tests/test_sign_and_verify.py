"""The main story: a publisher signs a tag, a host verifies it before pulling."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest
from cryptography.hazmat.primitives.serialization import load_ssh_private_key

from tests.support.harness import DIGEST_A, DIGEST_B, Trustkit


def test_signed_tag_verifies_on_another_host(publisher: Trustkit, host: Trustkit, gun: str):
    assert publisher("init", gun).code == 0
    signed = publisher("sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "1234")
    assert signed.code == 0, signed.err

    verified = host("verify", f"{gun}:1.0")

    assert verified.code == 0, verified.err
    assert verified.out.strip() == DIGEST_A
    assert "first use" in verified.err


def test_resolve_prints_the_pinned_reference(publisher: Trustkit, host: Trustkit, gun: str):
    publisher("init", gun)
    publisher("sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "1234")

    resolved = host("resolve", f"{gun}:1.0")

    assert resolved.code == 0
    assert resolved.out.strip() == f"{gun}@{DIGEST_A}"


def test_verify_json_output_for_scripts(publisher: Trustkit, host: Trustkit, gun: str):
    publisher("init", gun)
    publisher(
        "sign",
        f"{gun}:1.0",
        "--digest",
        DIGEST_A,
        "--size",
        "42",
        "--media-type",
        "application/vnd.oci.image.manifest.v1+json",
    )

    result = host("verify", f"{gun}:1.0", "--json")

    assert result.code == 0
    assert result.json == {
        "repository": gun,
        "tag": "1.0",
        "digest": DIGEST_A,
        "size": 42,
        "media_type": "application/vnd.oci.image.manifest.v1+json",
        "reference": f"{gun}@{DIGEST_A}",
        "registry_digest": None,  # registry.test does not exist: nothing to compare with
    }
    assert "could not be compared with the registry" in result.err


def test_resigned_tag_moves_to_new_digest(publisher: Trustkit, host: Trustkit, gun: str):
    publisher("init", gun)
    publisher("sign", f"{gun}:latest", "--digest", DIGEST_A, "--size", "10")
    assert host("verify", f"{gun}:latest").out.strip() == DIGEST_A

    publisher("sign", f"{gun}:latest", "--digest", DIGEST_B, "--size", "11")

    assert host("verify", f"{gun}:latest").out.strip() == DIGEST_B


def test_revoked_tag_is_refused(publisher: Trustkit, host: Trustkit, gun: str):
    publisher("init", gun)
    publisher("sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "10")
    publisher("sign", f"{gun}:2.0", "--digest", DIGEST_B, "--size", "10")
    assert host("verify", f"{gun}:1.0").code == 0

    revoked = publisher("revoke", f"{gun}:1.0")
    result = host("verify", f"{gun}:1.0")

    assert revoked.code == 0, revoked.err
    assert result.code == 1
    assert f"no signed tag 1.0 in {gun} (signed tags: 2.0)" in result.err


def test_revoke_of_unsigned_tag_is_a_clear_error(publisher: Trustkit, gun: str):
    publisher("init", gun)

    result = publisher("revoke", f"{gun}:nope")

    assert result.code == 1
    assert "no signed tag nope" in result.err


def test_unsigned_tag_is_refused(publisher: Trustkit, host: Trustkit, gun: str):
    publisher("init", gun)
    publisher("sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "10")

    result = host("verify", f"{gun}:9.9")

    assert result.code == 1
    assert f"no signed tag 9.9 in {gun} (signed tags: 1.0)" in result.err
    assert result.out == ""


def test_repository_that_was_never_signed_is_refused(host: Trustkit):
    result = host("verify", "registry.test/never-initialised:1.0")

    assert result.code == 1
    assert "is not signed" in result.err


def test_staged_changes_publish_together(publisher: Trustkit, host: Trustkit, gun: str):
    publisher("init", gun)
    for tag in ("a", "b", "c"):
        staged = publisher(
            "sign", f"{gun}:{tag}", "--digest", DIGEST_A, "--size", "1", "--no-publish"
        )
        assert staged.code == 0
    assert host("verify", f"{gun}:a").code == 1  # nothing published yet

    published = publisher("publish", gun, "--json")

    assert published.code == 0, published.err
    assert published.json["changes"] == 3
    for tag in ("a", "b", "c"):
        assert host("verify", f"{gun}:{tag}").code == 0

    def targets_version() -> int:
        roles = publisher("inspect", gun, "--json").json["roles"]
        return int({r["role"]: r["version"] for r in roles}["targets"])

    before = targets_version()

    # As with Notary, publishing an empty changelist is no error: it says so, changes
    # nothing and exits 0, so a pipeline's unconditional publish step stays green.
    again = publisher("publish", gun)
    assert again.code == 0, again.err
    assert f"nothing to publish for {gun}: no staged changes" in again.out
    as_json = publisher("publish", gun, "--json")
    assert as_json.code == 0
    assert as_json.json == {"repository": gun, "published": False, "changes": 0}
    assert targets_version() == before


def test_inspect_lists_tags_and_role_expiry(publisher: Trustkit, host: Trustkit, gun: str):
    publisher("init", gun)
    publisher("sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "10")

    result = host("inspect", gun, "--json")

    assert result.code == 0, result.err
    assert result.json["tags"] == [
        {"tag": "1.0", "digest": DIGEST_A, "size": 10, "media_type": None, "signer": "targets"}
    ]
    roles = {role["role"]: role for role in result.json["roles"]}
    assert set(roles) == {"root", "targets", "snapshot", "timestamp"}
    assert roles["targets"]["version"] == 2
    assert roles["root"]["expires"][:4] > roles["timestamp"]["expires"][:4]
    human = host("inspect", gun)
    assert "1.0" in human.out and DIGEST_A in human.out and "timestamp" in human.out


def test_signed_file_verifies_and_a_changed_file_is_refused(
    publisher: Trustkit, host: Trustkit, gun: str, tmp_path
):
    chart = tmp_path / "app-1.0.tgz"
    chart.write_bytes(b"chart contents")
    publisher("init", gun)
    assert publisher("sign-file", gun, "charts/app-1.0.tgz", str(chart)).code == 0

    assert host("verify-file", gun, "charts/app-1.0.tgz", str(chart)).code == 0
    chart.write_bytes(b"chart contents, modified")
    refused = host("verify-file", gun, "charts/app-1.0.tgz", str(chart))

    assert refused.code == 1
    assert "does not match the signed charts/app-1.0.tgz" in refused.err


def test_a_signed_file_is_never_taken_for_an_image_tag(
    publisher: Trustkit, host: Trustkit, gun: str, tmp_path
):
    """verify REPO:NAME of a signed file would hand Docker the file's hash as an image
    digest: refused, with the command that checks a file."""
    chart = tmp_path / "app.tgz"
    chart.write_bytes(b"chart contents")
    publisher("init", gun)
    assert publisher("sign-file", gun, "app.tgz", str(chart)).code == 0
    file_digest = "sha256:" + hashlib.sha256(b"chart contents").hexdigest()

    as_tag = host("verify", f"{gun}:app.tgz", "--offline")
    resolved = host("resolve", f"{gun}:app.tgz")
    by_digest = host("resolve", f"{gun}@{file_digest}")

    for refused in (as_tag, resolved):
        assert refused.code == 1, refused.err
        assert f"app.tgz in {gun} is a signed file, not an image tag" in refused.err
        assert f"trustkit verify-file {gun} app.tgz FILE" in refused.err
    assert by_digest.code == 1
    assert "is not signed under any tag" in by_digest.err


def test_keystore_is_private_and_keys_are_encrypted(publisher: Trustkit, gun: str):
    publisher("init", gun)

    private = publisher.home / "private"
    for directory in (publisher.home, private):
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    key_files = list(private.glob("*.p12"))
    assert len(key_files) == 2
    for key_file in key_files:
        assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
        data = key_file.read_bytes()
        assert data.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")
        with pytest.raises(TypeError, match="password-protected"):
            load_ssh_private_key(data, None)  # encrypted, not a plain key


def test_second_publisher_with_its_own_keystore_cannot_sign(
    publisher: Trustkit, gun: str, tmp_path, server
):
    from tests.support.harness import publisher_cli

    publisher("init", gun)
    stranger = publisher_cli(tmp_path / "stranger" / ".trustkit", server.url)

    result = stranger("sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "10")

    assert result.code == 2
    assert "holds no key that may sign 1.0" in result.err


def test_real_process_exit_codes(publisher: Trustkit, host: Trustkit, gun: str):
    assert publisher.process("init", gun).code == 0
    assert publisher.process("sign", f"{gun}:1", "--digest", DIGEST_A, "--size", "3").code == 0

    ok = host.process("verify", f"{gun}:1")
    refused = host.process("verify", f"{gun}:2")
    usage = host.process("verify", "Not A Repo:1")
    unreachable = host.process("verify", f"{gun}:1", "--server", "http://127.0.0.1:9")

    assert (ok.code, ok.out.strip()) == (0, DIGEST_A)
    assert refused.code == 1 and "no signed tag 2" in refused.err
    assert usage.code == 2 and "Traceback" not in usage.err
    assert unreachable.code == 3 and "cannot" in unreachable.err


def test_publisher_chooses_expiry_of_what_it_signs(publisher: Trustkit, host: Trustkit, gun: str):
    from datetime import UTC, datetime, timedelta

    publisher("init", gun, "--expiry", "root=1y")
    publisher("sign", f"{gun}:1", "--digest", DIGEST_A, "--size", "3", "--expiry", "targets=30d")

    roles = {r["role"]: r for r in host("inspect", gun, "--json").json["roles"]}

    def days_left(role: str) -> float:
        expires = datetime.fromisoformat(roles[role]["expires"])
        return (expires - datetime.now(UTC)) / timedelta(days=1)

    assert 364 < days_left("root") <= 365
    assert 29 < days_left("targets") <= 30
    bad = publisher("sign", f"{gun}:2", "--digest", DIGEST_A, "--size", "3", "--expiry", "x=1d")
    assert bad.code == 2 and "unknown role in expiry setting: x" in bad.err


def test_parallel_verifies_on_one_host_all_succeed(publisher: Trustkit, server, gun: str, tmp_path):
    """Hosts start many containers at once: verifications must not trip over each other,
    not even on first use, when every process writes the trust store at once."""
    import threading

    publisher("init", gun)
    publisher("sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "10")
    results: list[tuple[int, str, str]] = []

    for round_ in range(3):
        host = Trustkit(tmp_path / f"host{round_}" / ".trustkit", server.url)

        def verify(host: Trustkit = host) -> None:
            result = host.process("verify", f"{gun}:1.0")
            results.append((result.code, result.out.strip(), result.err))

        threads = [threading.Thread(target=verify) for _ in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert [(code, out) for code, out, _ in results] == [(0, DIGEST_A)] * 30, results


def test_refusal_in_json_mode_is_a_json_document(publisher: Trustkit, host: Trustkit, gun: str):
    publisher("init", gun)

    result = host("verify", f"{gun}:9.9", "--json")

    assert result.code == 1
    assert result.json["error"] == "not_found"
    assert f"no signed tag 9.9 in {gun}" in result.json["message"]
