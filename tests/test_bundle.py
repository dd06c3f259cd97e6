"""Air-gapped hosts: a bundle written by ``trustkit export`` verifies with no network,
and is held to every rule verification online is held to."""

from __future__ import annotations

import io
import tarfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.harness import DIGEST_A, DIGEST_B, ServerProcess, Trustkit, publisher_cli

UNREACHABLE = "http://127.0.0.1:9"  # the air-gapped host's idea of a server: none


def _ok(result: Any) -> Any:
    assert result.code == 0, result.err
    return result


def _sign(tk: Trustkit, gun: str, tag: str, digest: str) -> None:
    _ok(tk("sign", f"{gun}:{tag}", "--digest", digest, "--size", "100"))


def _export(tk: Trustkit, gun: str, path: Path) -> dict[str, Any]:
    data: dict[str, Any] = _ok(tk("export", gun, "-o", str(path), "--json")).json
    return data


def _offline_host(tmp_path: Path, name: str) -> Trustkit:
    return Trustkit(tmp_path / name / ".trustkit", UNREACHABLE)


def test_a_bundle_verifies_on_a_host_with_no_network_across_a_root_rotation(
    start_server: Any, tmp_path: Path, gun: str
):
    server: ServerProcess = start_server()
    publisher = publisher_cli(tmp_path / "publisher" / ".trustkit", server.url)
    _ok(publisher("init", gun))
    _sign(publisher, gun, "1.0", DIGEST_A)
    root_v1 = tmp_path / "root-v1.json"  # what an air-gapped host was provisioned with
    root_v1.write_bytes(httpx.get(server.metadata_url(gun, "1.root.json")).content)
    _ok(publisher("key", "rotate", gun, "root"))
    _sign(publisher, gun, "2.0", DIGEST_B)
    bundle = tmp_path / "app.tar"
    written = _export(publisher, gun, bundle)
    assert {"1.root.json", "2.root.json", "timestamp.json"} <= set(written["files"])
    server.stop()  # from here on there is no server at all

    host = _offline_host(tmp_path, "host")
    _ok(host("trust", "pin", gun, str(root_v1)))
    verified = _ok(host("verify", f"{gun}:2.0", "--bundle", str(bundle), "--json"))
    assert verified.json["digest"] == DIGEST_B
    assert verified.json["registry_digest"] is None
    resolved = _ok(host("resolve", f"{gun}:1.0", "--bundle", str(bundle)))
    assert resolved.out.strip() == f"{gun}@{DIGEST_A}"
    missing = host("verify", f"{gun}:3.0", "--bundle", str(bundle))
    assert missing.code == 1 and f"no signed tag 3.0 in {gun}" in missing.err


def test_an_expired_bundle_is_refused(start_server: Any, tmp_path: Path, gun: str):
    server: ServerProcess = start_server("--expiry", "timestamp=4s")
    publisher = publisher_cli(tmp_path / "publisher" / ".trustkit", server.url)
    _ok(publisher("init", gun))
    _sign(publisher, gun, "1.0", DIGEST_A)
    bundle = tmp_path / "app.tar"
    _export(publisher, gun, bundle)
    host = _offline_host(tmp_path, "host")
    _ok(host("verify", f"{gun}:1.0", "--bundle", str(bundle)))
    time.sleep(5)  # the bundle's timestamp expires; no server renews what a bundle holds
    expired = host("verify", f"{gun}:1.0", "--bundle", str(bundle))
    assert expired.code == 1
    assert "expired" in expired.err


def test_an_older_bundle_than_the_host_has_seen_is_refused_as_a_rollback(
    server: ServerProcess, tmp_path: Path, gun: str
):
    publisher = publisher_cli(tmp_path / "publisher" / ".trustkit", server.url)
    _ok(publisher("init", gun))
    _sign(publisher, gun, "1.0", DIGEST_A)
    old = tmp_path / "old.tar"
    _export(publisher, gun, old)
    _ok(publisher("revoke", f"{gun}:1.0"))
    new = tmp_path / "new.tar"
    _export(publisher, gun, new)

    host = _offline_host(tmp_path, "host")
    gone = host("verify", f"{gun}:1.0", "--bundle", str(new))
    assert gone.code == 1 and "no signed tag 1.0" in gone.err
    rolled_back = host("verify", f"{gun}:1.0", "--bundle", str(old))
    assert rolled_back.code == 1
    assert "1.0" not in rolled_back.out
    assert "older" in rolled_back.err or "rollback" in rolled_back.err


def test_a_tampered_or_foreign_bundle_is_refused(server: ServerProcess, tmp_path: Path, gun: str):
    publisher = publisher_cli(tmp_path / "publisher" / ".trustkit", server.url)
    _ok(publisher("init", gun))
    _sign(publisher, gun, "1.0", DIGEST_A)
    bundle = tmp_path / "app.tar"
    _export(publisher, gun, bundle)

    tampered = tmp_path / "tampered.tar"
    with tarfile.open(bundle) as source, tarfile.open(tampered, "w") as target:
        for member in source.getmembers():
            extracted = source.extractfile(member)
            assert extracted is not None
            data = extracted.read()
            if member.name.endswith(".targets.json"):
                data = data.replace(DIGEST_A.removeprefix("sha256:").encode(), b"f" * 64)
            member.size = len(data)
            target.addfile(member, io.BytesIO(data))
    host = _offline_host(tmp_path, "host")
    refused = host("verify", f"{gun}:1.0", "--bundle", str(tampered))
    assert refused.code == 1
    assert "sha256:" + "f" * 64 not in refused.out

    foreign = host("verify", "registry.test/another/app:1.0", "--bundle", str(bundle))
    assert foreign.code == 2
    assert f"is a bundle of {gun}, not registry.test/another/app" in foreign.err
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"not a tar file")
    unreadable = host("verify", f"{gun}:1.0", "--bundle", str(garbage))
    assert unreadable.code == 2 and "cannot read the bundle" in unreadable.err


class _Zeros(io.RawIOBase):
    """SIZE zero bytes, made as they are read (a bomb is cheap to make)."""

    def __init__(self, size: int) -> None:
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), self._left)
        buffer[:count] = bytes(count)
        self._left -= count
        return count


def _gzipped_tar(path: Path, members: dict[str, int]) -> Path:
    """A .tar.gz of members of zeros, name -> size: megabytes on disk at most."""
    with tarfile.open(path, mode="w:gz", compresslevel=1) as tar:
        for name, size in members.items():
            info = tarfile.TarInfo(name)
            info.size = size
            tar.addfile(info, io.BufferedReader(_Zeros(size)))
    return path


def test_a_bundle_member_larger_than_any_metadata_is_refused_before_it_is_read(
    tmp_path: Path, gun: str
):
    bundle = _gzipped_tar(tmp_path / "huge.tar.gz", {"metadata/1.root.json": 65 * 2**20})
    assert bundle.stat().st_size < 2**20
    result = _offline_host(tmp_path, "host")("verify", f"{gun}:1.0", "--bundle", str(bundle))
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    assert f"'metadata/1.root.json' in it is {65 * 2**20} bytes" in result.err
    assert "a metadata file is at most" in result.err


def test_a_decompression_bomb_bundle_is_refused_early(tmp_path: Path, gun: str):
    members = {f"metadata/{n}.bins-{n:x}.json": 60 * 2**20 for n in range(9)}
    bundle = _gzipped_tar(tmp_path / "bomb.tar.gz", members)
    assert bundle.stat().st_size < 8 * 2**20  # 540 MiB, decompressed
    result = _offline_host(tmp_path, "host")("verify", f"{gun}:1.0", "--bundle", str(bundle))
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    assert "holds more than 536870912 bytes, decompressed" in result.err


def test_a_bundle_whose_manifest_nests_too_deep_is_refused_without_a_traceback(
    host: Trustkit, gun: str, tmp_path: Path
):
    bundle = tmp_path / "deep.tar"
    deep = b"[" * 200_000
    with tarfile.open(bundle, "w") as tar:
        info = tarfile.TarInfo("trustkit-bundle.json")
        info.size = len(deep)
        tar.addfile(info, io.BytesIO(deep))

    result = host.process("verify", f"{gun}:1.0", "--bundle", str(bundle))

    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    assert str(bundle) in result.err
