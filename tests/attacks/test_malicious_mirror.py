"""Malicious mirror: something between the server and hosts rewrites responses — points
a tag at another image, edits the snapshot, bumps or strips the timestamp. It holds no
key, so what it changes breaks a signature or a hash that a signed parent pins."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.attacks.common import assert_host_refuses, ok, passthrough, pinned_host, sign
from tests.support.harness import (
    DIGEST_A,
    ServerProcess,
    TamperingProxy,
    Trustkit,
    assert_verifies,
    edit_json,
    role_of,
)

Edit = Callable[[dict[str, Any]], None]
MISMATCH = "metadata for {gun} does not match what was signed for it: "
UNSIGNED = "bad signatures on metadata for {gun}: timestamp was signed by 0/1 keys"


def _repoint_tag(document: dict[str, Any]) -> None:
    document["signed"]["targets"]["1.0"]["hashes"]["sha256"] = "f" * 64


def _repoint_snapshot_entry(document: dict[str, Any]) -> None:
    document["signed"]["meta"]["targets.json"]["hashes"]["sha256"] = "f" * 64


def _bump_version(document: dict[str, Any]) -> None:
    document["signed"]["version"] += 1


def _strip_signatures(document: dict[str, Any]) -> None:
    document["signatures"] = []


@pytest.mark.parametrize(
    ("role", "edit", "reason"),
    [
        ("targets", _repoint_tag, MISMATCH),
        ("snapshot", _repoint_snapshot_entry, MISMATCH),
        ("timestamp", _bump_version, UNSIGNED),
        ("timestamp", _strip_signatures, UNSIGNED),
    ],
    ids=["tag-repointed", "snapshot-entry-repointed", "timestamp-bumped", "signatures-stripped"],
)
def test_a_host_refuses_a_response_a_mirror_rewrote(
    role: str,
    edit: Edit,
    reason: str,
    publisher: Trustkit,
    server: ServerProcess,
    proxy: TamperingProxy,
    gun: str,
    tmp_path: Path,
):
    ok(publisher("init", gun))
    sign(publisher, gun, "1.0", DIGEST_A)
    host = pinned_host(server, gun, tmp_path / "host", proxy.url)
    assert_verifies(host, gun, "1.0", DIGEST_A)
    sign(publisher, gun, "1.1", DIGEST_A)  # something new for the host to fetch
    rewritten: list[str] = []

    def rewrite(path: str, status: int, body: bytes) -> tuple[int, bytes]:
        if role_of(path) != role or status != 200:
            return status, body
        rewritten.append(path)
        return status, edit_json(body, edit)

    proxy.rewrite = rewrite

    assert_host_refuses(host, gun, "1.0", reason.format(gun=gun))
    assert rewritten
    assert_host_refuses(host, gun, "1.1", reason.format(gun=gun))

    passthrough(proxy)
    assert_verifies(host, gun, "1.1", DIGEST_A)
    assert_verifies(host, gun, "1.0", DIGEST_A)
