"""Names from metadata end up on terminals: the tags ``inspect`` lists, the signer named
in a refusal, the tag changes a co-signer reads before approving. Someone who may
upload metadata names a tag or a signer with an ANSI escape (erase the line, move the
cursor up), a newline, a NUL or a bidi override, so that what a person reads is not
what is signed. The server refuses such metadata, naming the role and the name, escaped.
"""

from __future__ import annotations

import json

import pytest
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import DelegatedRole, Delegations, Targets

from tests.support.hand_made import A, HandMadeRepository, assert_refused
from tests.support.harness import ServerProcess
from trustkit.metadata import file_target, image_target, sign_with
from trustkit.names import parse_digest

HOSTILE = [
    "1.0\x1b[2K\r2.0",  # erase the line, write over it
    "1.0\x1b[1A",  # cursor up: rewrite the line above
    "1.0\nsigned by targets",
    "1.0\x00",
    "1.0\u202egpj",  # right-to-left override
    "1.0\x9b2K",  # the one-byte CSI of C1
]


@pytest.fixture
def repo(server: ServerProcess, gun: str) -> HandMadeRepository:
    made = HandMadeRepository(server, gun)
    made.create()
    return made


def _signer_role(repo: HandMadeRepository, name: str, paths: list[str]) -> Targets:
    signer = CryptoSigner.generate_ed25519()
    targets = repo.targets(2)
    role = DelegatedRole(name, [], 1, False, paths)
    targets.delegations = Delegations({}, roles={name: role})
    targets.add_key(signer.public_key, name)
    return targets


@pytest.mark.parametrize("tag", HOSTILE)
def test_a_tag_with_control_or_bidi_characters_is_refused(repo: HandMadeRepository, tag: str):
    before = repo.stored_rows()
    targets = repo.targets(2)
    targets.targets[tag] = image_target(tag, parse_digest(A(1)), 10, None)

    response = repo.upload(targets=sign_with(targets, [repo.targets_key]))

    assert_refused(response, 400, "bad_target_name", "targets", f"the tag {tag!r}")
    assert "is not a Docker tag" in response.json()["detail"]
    assert tag not in response.json()["detail"]  # shown escaped, never raw
    assert repo.stored_rows() == before


@pytest.mark.parametrize(
    "name",
    [
        "charts/\x1b[2Kapp.tgz",
        "charts/app\u202e.tgz",
        "../etc/passwd",
        "charts/../../x",
        "/etc/passwd",
        " app.tgz",
        "app.tgz ",
        "charts\\app.tgz",
        "a" * 256,
    ],
)
def test_a_signed_file_with_an_unsafe_name_is_refused(repo: HandMadeRepository, name: str):
    targets = repo.targets(2)
    targets.targets[name] = file_target(name, b"chart bytes")

    response = repo.upload(targets=sign_with(targets, [repo.targets_key]))

    assert_refused(response, 400, "bad_target_name", "targets", "is not a safe file name")
    assert repr(name[:80]) in response.json()["detail"]


def test_safe_file_names_and_tags_are_accepted(repo: HandMadeRepository):
    targets = repo.targets(2)
    for name in ("charts/app-1.0.tgz", "Übersicht v2.pdf", "release notes"):
        targets.targets[name] = file_target(name, name.encode())
    tag = "v1.2.3_rc-" + "x" * 118  # 128 characters
    media = "application/vnd.oci.image.index.v1+json"
    targets.targets[tag] = image_target(tag, parse_digest(A(2)), 10, media)

    response = repo.upload(targets=sign_with(targets, [repo.targets_key]))

    assert response.status_code == 200, response.text


@pytest.mark.parametrize("name", ["rel\x1b[2Keases", "releases\n", "rel\u202eeases", "re\x00l"])
def test_a_signer_named_with_control_or_bidi_characters_is_refused(
    repo: HandMadeRepository, name: str
):
    before = repo.stored_rows()

    response = repo.upload(targets=sign_with(_signer_role(repo, name, ["*"]), [repo.targets_key]))

    assert_refused(response, 400, "bad_role_name", "targets", f"delegates to {name!r}")
    assert name not in response.json()["detail"]
    assert repo.stored_rows() == before


def test_a_signer_named_like_a_hash_bin_is_refused(repo: HandMadeRepository):
    """A signer named ``bins-0a`` would pass, for hosts, as a bin signed by targets."""
    response = repo.upload(
        targets=sign_with(_signer_role(repo, "bins-0a", ["*"]), [repo.targets_key])
    )

    assert_refused(response, 400, "reserved_role_name", "targets", "the name of a hash bin")


def test_a_media_type_with_an_escape_is_refused(repo: HandMadeRepository):
    targets = repo.targets(2)
    media = "application/json\x1b[2K\rsigned by: root"
    targets.targets["1.0"] = image_target("1.0", parse_digest(A(1)), 10, media)

    response = repo.upload(targets=sign_with(targets, [repo.targets_key]))

    assert_refused(response, 400, "unprintable_string", "targets", repr(media))
    assert "custom.media_type" in response.json()["detail"]


def test_a_media_type_that_is_not_a_string_is_refused(repo: HandMadeRepository):
    targets = repo.targets(2)
    target = image_target("1.0", parse_digest(A(1)), 10, "x")
    target.unrecognized_fields["custom"]["media_type"] = ["application/json"]
    targets.targets["1.0"] = target

    response = repo.upload(targets=sign_with(targets, [repo.targets_key]))

    assert_refused(response, 400, "bad_media_type", "targets", "not a string")


def test_delegated_paths_with_control_characters_are_refused(repo: HandMadeRepository):
    role = _signer_role(repo, "releases", ["release-*\x1b[1A"])

    response = repo.upload(targets=sign_with(role, [repo.targets_key]))

    assert_refused(response, 400, "unprintable_string", "targets", "'release-*\\x1b[1A'")


def test_a_signature_under_an_escape_sequence_is_refused(repo: HandMadeRepository):
    document = json.loads(sign_with(repo.targets(2, a=A(1)), [repo.targets_key]))
    document["signatures"].append({"keyid": "\x1b[2J", "sig": "00"})

    response = repo.upload(targets=json.dumps(document).encode())

    assert_refused(response, 400, "unprintable_string", "targets", "'\\x1b[2J'")


def test_an_uploaded_file_named_with_an_escape_is_refused_escaped(repo: HandMadeRepository):
    name = "rel\x1b[1A\u202eeases"

    response = repo.upload(**{name: b"{}"})

    assert_refused(response, 400, "bad_role_name", repr(name)[1:-1], f"{name!r} is not a valid")
    assert "\x1b" not in response.json()["detail"] and "\x1b" not in response.json()["role"]
