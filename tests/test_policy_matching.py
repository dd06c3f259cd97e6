"""A host policy names repositories; no other spelling of a name may slip past it."""

from __future__ import annotations

import pytest

from client.policy import SIGNED, UNSIGNED_OK, HostPolicy
from trustkit.names import parse_reference

POLICY = HostPolicy.from_document(
    {
        "default": UNSIGNED_OK,
        "rule": [
            {"repositories": ["registry.example.com/team/**"], "trust": SIGNED},
            {"repositories": ["docker.io/library/*"], "trust": SIGNED},
        ],
    },
    "test policy",
)


@pytest.mark.parametrize(
    "written",
    [
        "registry.example.com/team/app:1",
        "REGISTRY.example.com/team/app:1",
        "registry.example.com:443/team/app:1",
        "nginx",
        "docker.io/nginx",
        "index.docker.io/library/nginx",
        "registry-1.docker.io/library/nginx:1.25",
    ],
)
def test_every_spelling_of_a_protected_repository_must_be_signed(written: str):
    gun = parse_reference(written).gun

    assert POLICY.rule_for(gun).trust == SIGNED


@pytest.mark.parametrize("written", ["registry.example.com/other/app", "docker.io/team/app"])
def test_repositories_no_rule_names_get_the_default(written: str):
    assert POLICY.rule_for(parse_reference(written).gun).trust == UNSIGNED_OK


TEAM = HostPolicy.from_document(
    {
        "default": UNSIGNED_OK,
        "rule": [
            {"repositories": ["registry.example.com/one/*"], "trust": SIGNED},
            {"repositories": ["registry.example.com/every/**"], "trust": SIGNED},
        ],
    },
    "test policy",
)


@pytest.mark.parametrize(
    ("gun", "trust"),
    [
        ("registry.example.com/one/app", SIGNED),
        ("registry.example.com/one/app/sub", UNSIGNED_OK),  # * stays in one component
        ("registry.example.com/every/app", SIGNED),
        ("registry.example.com/every/app/sub/deeper", SIGNED),  # ** goes across
        ("registry.example.com/everyone/app", UNSIGNED_OK),
    ],
)
def test_star_matches_one_path_component_and_double_star_any_number(gun: str, trust: str):
    assert TEAM.rule_for(gun).trust == trust


def test_policy_patterns_and_token_scopes_share_one_glob():
    from server.auth import parse_scope

    for pattern, gun in [
        ("registry.example.com/team/*", "registry.example.com/team/a"),
        ("registry.example.com/team/*", "registry.example.com/team/a/b"),
        ("registry.example.com/team/**", "registry.example.com/team/a/b"),
        ("**", "registry.example.com/team/a/b"),
    ]:
        rule = HostPolicy.from_document({"rule": [{"repositories": [pattern]}]}, "p").rules[0]
        assert rule.matches(gun) == parse_scope(f"push:{pattern}").allows("push", gun)


@pytest.mark.parametrize(
    "pattern",
    ["Registry.Example.com:443/team/**", "registry.example.com:0443/team/**"],
)
def test_a_pattern_written_in_another_spelling_covers_the_same_repositories(pattern: str):
    policy = HostPolicy.from_document(
        {"default": UNSIGNED_OK, "rule": [{"repositories": [pattern], "trust": SIGNED}]}, "p"
    )

    assert policy.rule_for("registry.example.com/team/app").trust == SIGNED
    assert policy.rule_for("REGISTRY.example.com:443/team/app").trust == SIGNED
