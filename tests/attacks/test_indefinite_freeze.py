"""Indefinite freeze: an attacker keeps serving the metadata of one moment forever, so
that hosts never learn of new releases (or revocations). The timestamp expires and
only the server's online key renews it: once it has expired, hosts refuse."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tuf.api.metadata import Timestamp

from tests.attacks.common import (
    assert_host_refuses,
    ok,
    passthrough,
    pinned_host,
    serve,
    sign,
)
from tests.support.harness import (
    DIGEST_A,
    DIGEST_B,
    ServerProcess,
    TamperingProxy,
    Trustkit,
    assert_verifies,
    publisher_cli,
)
from tests.support.server_side import served_metadata, stolen_online_signers
from trustkit.expiry import utc_now
from trustkit.metadata import sign_with


def _expired(gun: str, expires: str) -> str:
    return (
        f"metadata for {gun} expired at {expires} (timestamp.json is expired); "
        "the server is not refreshing it"
    )


def _wait_until_past(expires: str) -> None:
    """Sleep until EXPIRES (the timestamp's ``expires``, whole seconds) is over."""
    deadline = datetime.fromisoformat(expires).astimezone(UTC)
    time.sleep(max(0.0, (deadline - datetime.now(UTC)).total_seconds()) + 0.5)


def test_a_host_refuses_a_timestamp_a_mirror_keeps_serving_after_it_expired(
    start_server: Any, gun: str, tmp_path: Path
):
    """A server whose timestamps live 3 s; the mirror freezes the first one it sees. The
    server re-signs on time (hosts that reach it verify), the mirror never does."""
    own: ServerProcess = start_server("--expiry", "timestamp=3s")
    publisher = publisher_cli(tmp_path / "publisher" / ".trustkit", own.url)
    ok(publisher("init", gun))
    sign(publisher, gun, "1.0", DIGEST_A)
    proxy = TamperingProxy(own.url).start()
    try:
        host = pinned_host(own, gun, tmp_path / "host", proxy.url)
        frozen: list[bytes] = []

        def freeze(path: str, status: int, body: bytes) -> tuple[int, bytes]:
            if not path.endswith("/timestamp.json"):
                return status, body
            if not frozen:
                frozen.append(body)
            return 200, frozen[0]

        proxy.rewrite = freeze
        assert_verifies(host, gun, "1.0", DIGEST_A)  # while the frozen timestamp is fresh
        expires = json.loads(frozen[0])["signed"]["expires"]
        _wait_until_past(expires)
        sign(publisher, gun, "2.0", DIGEST_B)  # a release the freeze would hide
        newcomer = pinned_host(own, gun, tmp_path / "newcomer", proxy.url)

        for frozen_host in (host, newcomer):
            for tag in ("1.0", "2.0"):
                assert_host_refuses(frozen_host, gun, tag, _expired(gun, expires))
        direct = Trustkit(host.home, own.url)  # the same host, asking the server itself
        assert_verifies(direct, gun, "2.0", DIGEST_B)
        passthrough(proxy)
        assert_verifies(newcomer, gun, "2.0", DIGEST_B)
        assert_verifies(newcomer, gun, "1.0", DIGEST_A)
    finally:
        proxy.stop()


def test_a_host_refuses_an_expired_timestamp_even_with_a_higher_version(
    publisher: Trustkit, server: ServerProcess, proxy: TamperingProxy, gun: str, tmp_path: Path
):
    """Someone with the server's timestamp key serves a timestamp that expired an hour
    ago, a version up: signatures and version pass, expiry does not."""
    ok(publisher("init", gun))
    sign(publisher, gun, "1.0", DIGEST_A)
    host = pinned_host(server, gun, tmp_path / "host", proxy.url)
    assert_verifies(host, gun, "1.0", DIGEST_A)
    timestamp: Timestamp = served_metadata(server, gun, "timestamp.json").signed
    timestamp.version += 1
    timestamp.expires = (utc_now() - timedelta(hours=1)).replace(microsecond=0)
    online = stolen_online_signers(server, gun)
    serve(proxy, {"timestamp.json": sign_with(timestamp, [online["timestamp"]])})
    expires = timestamp.expires.strftime("%Y-%m-%dT%H:%M:%SZ")

    assert_host_refuses(host, gun, "1.0", _expired(gun, expires))
    newcomer = pinned_host(server, gun, tmp_path / "newcomer", proxy.url)
    assert_host_refuses(newcomer, gun, "1.0", _expired(gun, expires))

    passthrough(proxy)
    assert_verifies(host, gun, "1.0", DIGEST_A)
    assert_verifies(newcomer, gun, "1.0", DIGEST_A)
