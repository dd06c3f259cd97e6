"""A token scope's ``*`` means what a host policy's ``*`` means: within one path
component. ``push:registry.test/team/*`` lets CI publish ``registry.test/team/app``,
not create ``registry.test/team/app/evil`` (a name a host policy's ``team/*`` rule
would not cover, so it could fall to a weaker rule); ``**`` reaches across components.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from server.auth import AuthFailure, authorize, make_token, token_digest, token_lookup
from server.storage import TokenRecord
from tests.support.harness import ServerProcess
from tests.support.tokens import cli_as, issue_token


def test_a_push_token_for_one_level_cannot_create_a_repository_deeper_down(
    server: ServerProcess, tmp_path: Path, gun: str
):
    team = f"registry.test/{gun.rsplit('/', 1)[1][-40:]}"
    one_level = cli_as(
        tmp_path, server, "ci", issue_token(server, f"one-{team[-30:]}", f"push:{team}/*")
    )

    assert one_level("init", f"{team}/app").code == 0
    refused = one_level("init", f"{team}/app/evil")

    assert refused.code == 1
    assert f"may not push {team}/app/evil (its scopes: push:{team}/*" in refused.err
    assert "'*' matches within one path component" in refused.err


def test_a_double_star_scope_reaches_across_components(
    server: ServerProcess, tmp_path: Path, gun: str
):
    team = f"registry.test/{gun.rsplit('/', 1)[1][-40:]}"
    every_level = cli_as(
        tmp_path, server, "ci", issue_token(server, f"all-{team[-30:]}", f"push:{team}/**")
    )

    assert every_level("init", f"{team}/app/sub").code == 0
    assert every_level("init", f"{team}-other/app").code == 1


def test_a_scope_is_read_under_the_canonical_repository_name(
    server: ServerProcess, tmp_path: Path, gun: str
):
    """Repositories are stored under canonical names: a scope written with another
    spelling of the host covers them, rather than silently nothing."""
    slug = gun.rsplit("/", 1)[1][-40:]
    token = issue_token(server, f"spelt-{slug[-30:]}", f"push:Registry.Test:443/{slug}/*")
    ci = cli_as(tmp_path, server, "ci", token)

    assert ci("init", f"registry.test/{slug}/app").code == 0


def test_a_token_stored_before_the_glob_rule_keeps_what_it_covered_and_no_more():
    """A lone '*' covered every repository and still does; 'team/*' now stops at one
    component, as a host policy's does."""
    token = make_token()
    record = TokenRecord(
        token_lookup(token),
        token_digest(token),
        "old",
        ("admin:*", "push:registry.test/team/*"),
        datetime.now(UTC),
    )

    assert authorize(record, token, "admin", "registry.test/any/deep/name") is record
    assert authorize(record, token, "push", "registry.test/team/app") is record
    narrowed = TokenRecord(record.lookup, record.digest, "old", record.scopes[1:], record.created)
    with pytest.raises(AuthFailure):
        authorize(narrowed, token, "push", "registry.test/team/app/evil")
