"""Endless data: a mirror answers a metadata request with a body that never ends, to
fill a host's memory or disk or hang it. The host reads at most the length signed for
the file (snapshot, targets) or a fixed ceiling (root, timestamp), then hangs up.

The host runs as its own process under a timeout: a host that kept reading would fail
the test rather than hang it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.attacks.common import EndlessProxy, assert_refused, ok, pinned_host, sign
from tests.support.harness import DIGEST_A, ServerProcess, Trustkit, assert_verifies
from tests.support.server_side import served_metadata, served_version

ROOT_CEILING = 512 * 1024
TIMESTAMP_CEILING = 16 * 1024


def _endless_file_and_limit(server: ServerProcess, gun: str, role: str) -> tuple[str, int]:
    """The file name the host asks for, and how many bytes it may accept for it."""
    if role == "root":
        return "2.root.json", ROOT_CEILING  # the host looks for a next root
    if role == "timestamp":
        return "timestamp.json", TIMESTAMP_CEILING
    if role == "snapshot":
        meta = served_metadata(server, gun, "timestamp.json").signed.snapshot_meta
        return f"{meta.version}.snapshot.json", int(meta.length)
    meta = served_metadata(server, gun, "snapshot.json").signed.meta["targets.json"]
    return f"{served_version(server, gun, 'targets')}.targets.json", int(meta.length)


@pytest.mark.parametrize("role", ["root", "timestamp", "snapshot", "targets"])
def test_a_host_hangs_up_on_endless_metadata_and_refuses_it(
    role: str, publisher: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    ok(publisher("init", gun))
    sign(publisher, gun, "1.0", DIGEST_A)
    name, limit = _endless_file_and_limit(server, gun, role)

    with EndlessProxy(server.url, lambda path: path.endswith(f"/{name}")) as proxy:
        host = pinned_host(server, gun, tmp_path / "host", proxy.url)
        result = host.process("verify", f"{gun}:1.0", "--offline", timeout=60)

        assert_refused(
            result,
            f"the server sent more metadata for {gun} than allowed: Downloaded ",
            f"exceeding the maximum allowed length of {limit}",
        )
        assert proxy.streams_ended.wait(30)
        [path] = proxy.hung_up  # the host stopped reading, long before the stream did
        assert path.endswith(f"/{name}")
        assert proxy.sent[path] < 1024**3
    assert_verifies(Trustkit(host.home, server.url), gun, "1.0", DIGEST_A)
