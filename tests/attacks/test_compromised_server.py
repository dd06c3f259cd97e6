"""A compromised server: someone broke into it and holds its online keys (snapshot and
timestamp). They can delay what hosts see — re-sign an old snapshot with a higher
version, so that hosts stay on old content — but never sign a tag: targets need the
offline targets key, and hosts check its signature whatever snapshot and timestamp say.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.attacks.common import (
    FORGED,
    assert_host_refuses,
    assert_not_signed,
    assert_server_untouched,
    fetched,
    ok,
    online_signed,
    pinned_host,
    serve,
    sign,
    with_tag,
)
from tests.support.harness import (
    DIGEST_A,
    DIGEST_B,
    ServerProcess,
    TamperingProxy,
    Trustkit,
    assert_verifies,
)
from tests.support.server_side import served_metadata, served_version, stolen_online_signers
from trustkit.metadata import sign_with


def test_stolen_online_keys_can_delay_what_hosts_see_but_only_old_signed_content(
    publisher: Trustkit, server: ServerProcess, proxy: TamperingProxy, gun: str, tmp_path: Path
):
    """The publisher revokes 1.0 and signs 2.0; the thief re-signs the snapshot of before
    with a version above the server's: hosts keep the old view, in which 1.0 is still
    signed and 2.0 is not — exactly what the targets key signed back then."""
    ok(publisher("init", gun))
    sign(publisher, gun, "1.0", DIGEST_A)
    host = pinned_host(server, gun, tmp_path / "host", proxy.url)
    assert_verifies(host, gun, "1.0", DIGEST_A)
    before = served_metadata(server, gun, "snapshot.json").signed
    ok(publisher("revoke", f"{gun}:1.0", "--no-publish"))
    sign(publisher, gun, "2.0", DIGEST_B)
    assert_not_signed(Trustkit(tmp_path / "fresh" / ".trustkit", server.url), gun, "1.0")
    online = stolen_online_signers(server, gun)
    resigned = served_version(server, gun, "snapshot") + 1
    files = online_signed(server, gun, online, {}, snapshot=before, snapshot_version=resigned)
    serve(proxy, files)
    newcomer = pinned_host(server, gun, tmp_path / "newcomer", proxy.url)

    for delayed in (host, newcomer):
        assert_verifies(delayed, gun, "1.0", DIGEST_A)
        result = delayed("verify", f"{gun}:2.0", "--offline")
        assert result.code == 1
        assert f"no signed tag 2.0 in {gun} (signed tags: 1.0)" in result.err
    assert fetched(proxy, f"{resigned}.snapshot.json")
    assert served_version(server, gun, "targets") > before.meta["targets.json"].version
    assert_server_untouched(server, gun, tmp_path / "direct", "2.0", DIGEST_B)


@pytest.mark.parametrize("signed_by", ["online-keys", "nobody"])
def test_stolen_online_keys_cannot_sign_a_tag_hosts_accept(
    signed_by: str,
    publisher: Trustkit,
    server: ServerProcess,
    proxy: TamperingProxy,
    gun: str,
    tmp_path: Path,
):
    """Forged targets (1.0 moved, a new tag ``evil``) signed with the stolen snapshot and
    timestamp keys, or not signed at all, pinned by a snapshot and timestamp that those
    keys sign correctly."""
    ok(publisher("init", gun))
    sign(publisher, gun, "1.0", DIGEST_A)
    host = pinned_host(server, gun, tmp_path / "host", proxy.url)
    assert_verifies(host, gun, "1.0", DIGEST_A)
    online = stolen_online_signers(server, gun)
    targets = with_tag(served_metadata(server, gun, "targets.json").signed, "evil", FORGED)
    targets = with_tag(targets, "1.0", FORGED, bump=0)
    forged = sign_with(targets, online.values() if signed_by == "online-keys" else [])
    serve(proxy, online_signed(server, gun, online, {"targets": forged}))
    newcomer = pinned_host(server, gun, tmp_path / "newcomer", proxy.url)
    reason = f"bad signatures on metadata for {gun}: targets was signed by 0/1 keys"

    for attacked in (host, newcomer):
        for tag in ("1.0", "evil"):
            assert_host_refuses(attacked, gun, tag, reason)
    assert fetched(proxy, f"{targets.version}.targets.json")
    assert_server_untouched(server, gun, tmp_path / "direct", "1.0", DIGEST_A)
