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
