"""Mix-and-match: an attacker combines validly signed files of different moments — the
current timestamp and snapshot with the targets of before the publisher fixed a tag, or
the current timestamp with an earlier snapshot. The timestamp pins the snapshot's
hash, the snapshot pins each targets file's: the host refuses the mix."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.attacks.common import (
    assert_host_refuses,
    fetched,
    ok,
    passthrough,
    pinned_host,
    serve,
    served_bytes,
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
from tests.support.server_side import served_version


@pytest.mark.parametrize("role", ["targets", "snapshot"])
def test_a_host_refuses_a_file_from_another_moment_than_its_parent_names(
    role: str,
    publisher: Trustkit,
    server: ServerProcess,
    proxy: TamperingProxy,
    gun: str,
    tmp_path: Path,
):
    """1.0 was DIGEST_A, now it is DIGEST_B. The mirror answers the request for the
    current ROLE file with the earlier one (same length: only the hash differs). The
    host has never seen the earlier state, so no version check can catch it."""
    ok(publisher("init", gun))
    sign(publisher, gun, "1.0", DIGEST_A)
    earlier = served_version(server, gun, role)
    sign(publisher, gun, "1.0", DIGEST_B)
    current = served_version(server, gun, role)
    old_bytes = served_bytes(server, gun, f"{earlier}.{role}.json")
    current_name = f"{current}.{role}.json"
    assert len(old_bytes) == len(served_bytes(server, gun, current_name))
    serve(proxy, {current_name: old_bytes})
    host = pinned_host(server, gun, tmp_path / "host", proxy.url)

    assert_host_refuses(
        host,
        gun,
        "1.0",
        f"metadata for {gun} does not match what was signed for it: ",
        "does not match expected hash",
    )
    assert fetched(proxy, current_name)

    passthrough(proxy)
    assert_verifies(host, gun, "1.0", DIGEST_B)
