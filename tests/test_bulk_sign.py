"""A release signs many tags at once: several references in one command, or a list of
thousands from a file, in one publish; a list with a mistake anywhere signs nothing."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from scripts.oci_layout import build_image
from tests.support.harness import DIGEST_A, DIGEST_B, Trustkit, gun_for
from tests.support.registry import RegistryProcess, push


def _digest(n: int) -> str:
    return "sha256:" + hashlib.sha256(str(n).encode()).hexdigest()


def _targets_version(host: Trustkit, gun: str) -> int:
    roles = host("inspect", gun, "--json").json["roles"]
    return int({role["role"]: role["version"] for role in roles}["targets"])


def _signed(host: Trustkit, gun: str) -> dict[str, Any]:
    inspected = host("inspect", gun, "--json")
    assert inspected.code == 0, inspected.err
    return {tag["tag"]: tag for tag in inspected.json["tags"]}


def _refused_and_nothing_changed(result: Any, publisher: Trustkit, gun: str, *words: str) -> None:
    assert result.code == 2, (result.out, result.err)
    assert "Traceback" not in result.err
    for word in words:
        assert word in result.err, result.err
    assert _signed(publisher, gun) == {}
    empty = publisher("publish", gun)
    assert "nothing to publish" in empty.out, empty.out + empty.err


def test_several_references_are_signed_from_the_registry_in_one_publish(
    publisher: Trustkit, host: Trustkit, registry: RegistryProcess, tmp_path: Path, gun: str
):
    path = "bulk/" + gun.partition("/")[2]
    gun = f"{registry.host}/{path}"
    images = {}
    for tag in ("1.4.2", "1.4", "latest"):
        images[tag] = build_image(tmp_path / f"oci-{tag}", tag, f"release {tag}".encode())
        push(images[tag], registry, path, tag)
    assert publisher("init", gun).code == 0
    before = _targets_version(publisher, gun)

    signed = publisher("sign", f"{gun}:1.4.2", f"{gun}:1.4", f"{gun}:latest", "--json")

    assert signed.code == 0, signed.err
    assert signed.json["changes"] == 3
    assert _targets_version(host, gun) == before + 1  # one publish
    for tag, image in images.items():
        resolved = host("resolve", f"{gun}:{tag}")
        assert resolved.code == 0, resolved.err
        assert resolved.out.strip() == f"{gun}@{image.digest}"


def test_a_list_of_two_thousand_tags_is_signed_in_one_publish(
    publisher: Trustkit, host: Trustkit, gun: str, tmp_path: Path
):
    publisher("init", gun)
    before = _targets_version(publisher, gun)
    lines = ["# release 2026-12", ""]
    lines += [f"build-{n} {_digest(n)} {1000 + n}" for n in range(2000)]
    listing = tmp_path / "tags.txt"
    listing.write_text("\n".join(lines) + "\n")

    signed = publisher("sign", gun, "--from", str(listing), "--json")

    assert signed.code == 0, signed.err
    assert signed.json["changes"] == 2000
    assert _targets_version(host, gun) == before + 1
    for n in (0, 999, 1999):
        verified = host("verify", f"{gun}:build-{n}", "--offline", "--json")
        assert verified.code == 0, verified.err
        assert verified.json["digest"] == _digest(n)
        assert verified.json["size"] == 1000 + n
    assert len(_signed(host, gun)) == 2000


def test_a_json_list_on_standard_input_is_signed(
    publisher: Trustkit, host: Trustkit, gun: str, monkeypatch: pytest.MonkeyPatch
):
    publisher("init", gun)
    document = {
        "tags": [
            {"tag": "1.0", "digest": DIGEST_A, "size": 10},
            {
                "tag": "1.1",
                "digest": DIGEST_B,
                "size": 11,
                "media_type": "application/vnd.oci.image.index.v1+json",
            },
        ]
    }
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(document)))

    signed = publisher("sign", gun, "--from", "-")

    assert signed.code == 0, signed.err
    assert f"signed 2 tags of {gun}" in signed.out
    tags = _signed(host, gun)
    assert tags["1.0"]["digest"] == DIGEST_A
    assert tags["1.1"]["media_type"] == "application/vnd.oci.image.index.v1+json"


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("build-900 sha256:1234 10", ["tags.txt:903:", "not a valid digest"]),
        (f"build-900 {DIGEST_A}", ["tags.txt:903:", "expected TAG DIGEST SIZE"]),
        (f"build-900 {DIGEST_A} -5", ["tags.txt:903:", "not a size in bytes"]),
        (f"-bad {DIGEST_A} 10", ["tags.txt:903:", "not a valid tag"]),
        (f"build-\x1b[2K {DIGEST_A} 10", ["tags.txt:903:", "not a valid tag"]),
        (f"build-900 {DIGEST_A} 10 text/\x1b[1A", ["tags.txt:903:", "not a media type"]),
        (f"build-1 {DIGEST_B} 10", ["build-1 is listed twice, as two different images"]),
    ],
    ids=["digest", "fields", "size", "tag", "escape-in-tag", "escape-in-type", "twice"],
)
def test_a_list_with_one_bad_line_signs_nothing(
    publisher: Trustkit, tmp_path: Path, request: pytest.FixtureRequest, line: str, words: list[str]
):
    gun = gun_for(request.node.name)
    publisher("init", gun)
    lines = [f"build-{n} {_digest(n)} 10" for n in range(902)] + [line]
    listing = tmp_path / "tags.txt"
    listing.write_text("\n".join(lines) + "\n")

    refused = publisher("sign", gun, "--from", str(listing))

    _refused_and_nothing_changed(refused, publisher, gun, *words)


def test_a_tag_listed_twice_the_same_way_is_signed_once(
    publisher: Trustkit, host: Trustkit, gun: str, tmp_path: Path
):
    publisher("init", gun)
    listing = tmp_path / "tags.txt"
    listing.write_text(f"1.0 {DIGEST_A} 10\n1.1 {DIGEST_B} 11\n1.0 {DIGEST_A} 10\n")

    signed = publisher("sign", gun, "--from", str(listing), "--json")

    assert signed.code == 0, signed.err
    assert signed.json["changes"] == 2
    assert sorted(_signed(host, gun)) == ["1.0", "1.1"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["registry.test/one:1.0", "registry.test/two:1.0"], ["one repository at a time"]),
        (["{gun}:1.0", "{gun}:1.1", "--digest", DIGEST_A], ["describe one reference"]),
        (["{gun}:1.0", "--from", "tags.txt"], ["name only the repository"]),
    ],
    ids=["two-repositories", "digest-for-several", "from-with-a-tag"],
)
def test_ambiguous_bulk_requests_are_usage_errors(
    publisher: Trustkit, gun: str, args: list[str], words: list[str]
):
    publisher("init", gun)

    refused = publisher("sign", *[arg.format(gun=gun) for arg in args])

    _refused_and_nothing_changed(refused, publisher, gun, *words)


@pytest.mark.parametrize("bins", [None, "4"], ids=["flat", "bins"])
def test_revoke_with_no_tag_revokes_every_tag(
    publisher: Trustkit, host: Trustkit, tmp_path: Path, request: pytest.FixtureRequest, bins: str
):
    gun = gun_for(request.node.name)
    assert publisher("init", gun, *(["--bins", bins] if bins else [])).code == 0
    listing = tmp_path / "tags.txt"
    listing.write_text("".join(f"1.{n} {_digest(n)} 10\n" for n in range(30)))
    assert publisher("sign", gun, "--from", str(listing)).code == 0
    assert host("verify", f"{gun}:1.7", "--offline").code == 0

    revoked = publisher("revoke", gun, "--json")

    assert revoked.code == 0, revoked.err
    assert revoked.json["changes"] == 30
    assert _signed(host, gun) == {}
    refused = host("verify", f"{gun}:1.7", "--offline")
    assert refused.code == 1
    assert "no signed tag 1.7" in refused.err
    again = publisher("revoke", gun)
    assert again.code == 2
    assert f"{gun} has no signed tags to revoke" in again.err


def test_revoke_of_a_digest_is_a_usage_error(publisher: Trustkit, gun: str):
    publisher("init", gun)
    publisher("sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "1")

    refused = publisher("revoke", f"{gun}@{DIGEST_A}")

    assert refused.code == 2
    assert "revoke takes REPO or REPO:TAG, not a digest" in refused.err
    assert _signed(publisher, gun)["1.0"]["digest"] == DIGEST_A


def test_revoke_with_no_tag_leaves_a_signers_tags_and_says_so(
    publisher: Trustkit, host: Trustkit, gun: str, tmp_path: Path
):
    signer_env = {"TRUSTKIT_DELEGATION_PASSPHRASE": "signer passphrase"}
    owner = Trustkit(publisher.home, publisher.server_url, {**publisher.env, **signer_env})
    owner("init", gun)
    made = owner("key", "generate", "alice", "--out", str(tmp_path / "alice.pub"))
    assert made.code == 0, made.err
    added = owner("signer", "add", "alice", gun, "--key", str(tmp_path / "alice.pub"))
    assert added.code == 0, added.err
    for tag, signer in (("1.0", "targets"), ("1.1", "targets"), ("release-1", "alice")):
        signed = owner(
            "sign", f"{gun}:{tag}", "--digest", DIGEST_A, "--size", "1", "--signer", signer
        )
        assert signed.code == 0, signed.err

    revoked = owner("revoke", gun, "--json")

    assert revoked.code == 0, revoked.err
    assert revoked.json["changes"] == 2
    assert "1 tag(s) signed by the signer alice stay signed" in revoked.err
    assert sorted(_signed(host, gun)) == ["release-1"]
    as_alice = owner("revoke", gun, "--signer", "alice", "--json")
    assert as_alice.code == 0, as_alice.err
    assert _signed(host, gun) == {}
