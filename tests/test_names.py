"""Names users type: repositories, tags, digests, durations."""

from __future__ import annotations

import pytest

from trustkit.errors import UsageError
from trustkit.expiry import parse_duration
from trustkit.names import parse_digest, parse_gun, parse_reference, validate_target_name


@pytest.mark.parametrize(
    ("text", "gun"),
    [
        ("nginx", "docker.io/library/nginx"),
        ("team/app", "docker.io/team/app"),
        ("registry.example.com/team/app", "registry.example.com/team/app"),
        ("localhost:5000/app", "localhost:5000/app"),
        ("localhost/app", "localhost/app"),
        ("docker.io/nginx", "docker.io/library/nginx"),
        ("index.docker.io/library/nginx", "docker.io/library/nginx"),
        ("registry-1.docker.io/team/app", "docker.io/team/app"),
        ("Registry.Example.COM/team/app", "registry.example.com/team/app"),
    ],
)
def test_repository_names_are_normalised_like_docker(text: str, gun: str):
    assert parse_gun(text) == gun


@pytest.mark.parametrize(
    "text", ["", "Team/App", "https://registry.example.com/app", "reg.io/a//b", "reg.io/-a"]
)
def test_invalid_repository_names_are_refused_with_the_reason(text: str):
    with pytest.raises(UsageError) as error:
        parse_gun(text)
    assert error.value.message


def test_reference_with_tag_and_digest():
    ref = parse_reference("localhost:5000/team/app:1.4@sha256:" + "c" * 64)

    assert (ref.gun, ref.tag, str(ref.digest)) == (
        "localhost:5000/team/app",
        "1.4",
        "sha256:" + "c" * 64,
    )


def test_registry_port_is_not_mistaken_for_a_tag():
    ref = parse_reference("localhost:5000/app")

    assert (ref.gun, ref.tag) == ("localhost:5000/app", None)


def test_reference_without_tag_is_refused_where_a_tag_is_needed():
    with pytest.raises(UsageError, match="names no tag"):
        parse_reference("registry.example.com/app", require_tag=True)


@pytest.mark.parametrize("text", ["sha256:abc", "md5:" + "a" * 64, "sha256:" + "A" * 64, "x"])
def test_bad_digests_are_refused(text: str):
    with pytest.raises(UsageError, match="not a valid digest"):
        parse_digest(text)


@pytest.mark.parametrize("name", ["../etc/passwd", "/abs", "a//b", "", "a/./b"])
def test_unsafe_target_names_are_refused(name: str):
    with pytest.raises(UsageError, match="not a valid target name"):
        validate_target_name(name)


def test_durations():
    assert parse_duration("14d").days == 14
    assert parse_duration("30s").total_seconds() == 30
    with pytest.raises(UsageError):
        parse_duration("0d")
    with pytest.raises(UsageError):
        parse_duration("fortnight")


@pytest.mark.parametrize(
    ("text", "gun"),
    [
        ("registry.example.com:443/team/app", "registry.example.com/team/app"),
        ("registry.example.com:0443/team/app", "registry.example.com/team/app"),
        ("Registry.Example.com:05000/team/app", "registry.example.com:5000/team/app"),
        ("registry-1.docker.io:443/library/nginx", "docker.io/library/nginx"),
        ("docker.io:443/nginx", "docker.io/library/nginx"),
        ("index.docker.io/nginx", "docker.io/library/nginx"),
        ("registry.hub.docker.com/library/nginx", "docker.io/library/nginx"),
        ("registry.hub.docker.com:443/nginx", "docker.io/library/nginx"),
        ("LOCALHOST:5000/app", "localhost:5000/app"),
        ("[::1]:5000/app", "[::1]:5000/app"),
        ("[0:0::1]:5000/app", "[::1]:5000/app"),
        ("[::ffff:127.0.0.1]:5000/app", "127.0.0.1:5000/app"),
    ],
)
def test_every_spelling_of_one_registry_is_one_gun(text: str, gun: str):
    assert parse_gun(text) == gun
    assert parse_gun(gun) == gun  # the canonical name is its own canonical name


@pytest.mark.parametrize(
    "text",
    [
        "registry.example.com./app",
        "registry.example.com:+443/app",
        "registry.example.com:0/app",
        "registry.example.com:/app",
        "registry%2eexample.com/app",
        "regi\u0455try.example.com/app",
        "registry.example.com/\u0430pp",
        "127.1:5000/app",
        "0x7f.0.0.1/app",
        "[fe80::1%eth0]:5000/app",
        "[::1/app",
        "Team/app",
        " registry.example.com/a pp",
    ],
)
def test_names_without_one_spelling_are_refused(text: str):
    with pytest.raises(UsageError):
        parse_gun(text)
