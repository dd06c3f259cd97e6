"""What a host trusts: first use, pinned roots, roots that do not chain, and freshness."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from tests.support.harness import DIGEST_A, ServerProcess, Trustkit, publisher_cli


def test_pinned_root_verifies_without_trusting_on_first_use(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    publisher("init", gun)
    publisher("sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "10")
    root_file = tmp_path / "root.json"
    root_file.write_bytes(httpx.get(server.metadata_url(gun, "1.root.json")).content)

    pinned = host("trust", "pin", gun, str(root_file))
    verified = host("verify", f"{gun}:1.0")

    assert pinned.code == 0, pinned.err
    assert "pinned root v1" in pinned.out
    assert verified.code == 0
    assert "first use" not in verified.err


def test_root_that_does_not_chain_from_the_trusted_one_is_refused(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    publisher("init", gun)
    publisher("sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "10")
    assert host("verify", f"{gun}:1.0").code == 0
    # Someone deletes the repository and re-creates it with keys of their own.
    assert publisher("delete", gun, "--yes").code == 0
    impostor = publisher_cli(tmp_path / "impostor" / ".trustkit", server.url)
    assert impostor("init", gun).code == 0
    assert impostor("sign", f"{gun}:1.0", "--digest", "sha256:" + "f" * 64, "--size", "9").code == 0

    refused = host("verify", f"{gun}:1.0")

    assert refused.code == 1
    assert "bad signatures" in refused.err
    assert "f" * 64 not in refused.out
    # A host that knows the change is legitimate forgets the old root on purpose.
    assert host("trust", "forget", gun).code == 0
    assert host("verify", f"{gun}:1.0").out.strip() == "sha256:" + "f" * 64


def test_pinning_a_file_that_is_not_a_root_is_refused(host: Trustkit, gun: str, tmp_path: Path):
    not_root = tmp_path / "targets.json"
    not_root.write_text('{"hello": "world"}')

    result = host("trust", "pin", gun, str(not_root))

    assert result.code == 2
    assert "not a TUF root metadata file" in result.err


def test_pinning_a_root_with_bad_signatures_is_refused(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    publisher("init", gun)
    root = json.loads(httpx.get(server.metadata_url(gun, "1.root.json")).content)
    root["signed"]["version"] = 1
    root["signed"]["expires"] = "2099-01-01T00:00:00Z"  # changed after signing
    root_file = tmp_path / "root.json"
    root_file.write_text(json.dumps(root))

    result = host("trust", "pin", gun, str(root_file))

    assert result.code == 1
    assert "refusing to pin this root" in result.err


def test_untouched_repository_keeps_verifying(start_server, tmp_path: Path):
    """The server re-signs timestamp before it expires, with nobody publishing."""
    own = start_server("--expiry", "timestamp=4s")
    gun = "registry.test/untouched"
    publisher = publisher_cli(tmp_path / "pub" / ".trustkit", own.url)
    publisher("init", gun)
    publisher("sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "10")
    host = Trustkit(tmp_path / "host" / ".trustkit", own.url)
    assert host("verify", f"{gun}:1.0").code == 0
    published = json.loads(httpx.get(own.metadata_url(gun, "timestamp.json")).content)

    time.sleep(6)  # longer than the timestamp's whole lifetime
    result = host("verify", f"{gun}:1.0")
    served = json.loads(httpx.get(own.metadata_url(gun, "timestamp.json")).content)

    assert result.code == 0, result.err
    assert result.out.strip() == DIGEST_A
    assert served["signed"]["version"] > published["signed"]["version"]
    assert served["signed"]["expires"] > published["signed"]["expires"]


def test_a_repository_the_host_trusted_vanishing_is_not_blamed_on_publishers(
    publisher: Trustkit, host: Trustkit, gun: str
):
    """A first contact with nothing there: publishers should run init. A repository this
    host verified before that the server no longer serves: that is the server's doing."""
    fresh = host("verify", f"{gun}:1.0")
    assert fresh.code == 1 and f"its publisher can sign it (trustkit init {gun})" in fresh.err
    assert publisher("init", gun).code == 0
    assert publisher("sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "10").code == 0
    assert host("verify", f"{gun}:1.0", "--offline").code == 0
    assert publisher("delete", gun, "--yes").code == 0

    gone = host("verify", f"{gun}:1.0", "--offline")
    assert gone.code == 1
    assert "this host verified it before" in gone.err
    assert "trustkit init" not in gone.err


def test_first_use_says_which_root_keys_it_trusted_and_how_to_pin_instead(
    publisher: Trustkit, host: Trustkit, gun: str
):
    root_key = publisher("init", gun, "--json").json["keys"]["root"][0]
    publisher("sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "10")

    first = host("verify", f"{gun}:1.0", "--offline")
    second = host("verify", f"{gun}:1.0", "--offline")

    assert first.code == 0, first.err
    assert f"trusting the root of {gun} on first use (root keys: {root_key[:12]})" in first.err
    assert f"trustkit trust pin {gun} ROOT_JSON" in first.err
    assert "first use" not in second.err  # said once, when it happened
