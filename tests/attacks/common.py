"""What the attack tests share: the attacker's tools (a key of their own, the server's
stolen online keys, metadata they serve through a malicious mirror) and the checks of
what a host then does."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterable
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from securesystemslib.signer import CryptoSigner, Signature, Signer
from tuf.api.metadata import Metadata, Snapshot, Targets, Timestamp

from keys.keystore import Keystore
from keys.passphrase import PassphraseSource
from tests.support.harness import DIGEST_A, Result, ServerProcess, TamperingProxy, Trustkit
from tests.support.server_side import served_metadata
from trustkit.expiry import utc_now
from trustkit.metadata import COMPACT_JSON, image_target, meta_for, sign_with
from trustkit.names import parse_digest

FORGED = "sha256:" + "f" * 64  # the attacker's image
DIGEST_C = "sha256:" + "c" * 64
SIGNER_PASSPHRASE = "signer passphrase for attack tests"


# --- the CLI ------------------------------------------------------------------------


def ok(result: Result) -> Any:
    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    return result.json if result.out.startswith("{") else result.out


def sign(tk: Trustkit, gun: str, tag: str, digest: str, *args: str) -> dict[str, Any]:
    data: dict[str, Any] = ok(
        tk("sign", f"{gun}:{tag}", "--digest", digest, "--size", "100", "--json", *args)
    )
    return data


def verify(host: Trustkit, gun: str, tag: str) -> Result:
    """``trustkit verify --offline``: TUF only, no registry."""
    return host("verify", f"{gun}:{tag}", "--offline")


def assert_refused(result: Result, *reasons: str) -> None:
    """Exit 1, nothing on stdout (no digest for a script to use), and each REASON in the
    one line the CLI prints."""
    assert result.code == 1, (result.out, result.err)
    assert result.out == ""
    assert "Traceback" not in result.err
    assert result.err.startswith("trustkit: "), result.err
    for reason in reasons:
        assert reason in result.err, result.err


def assert_host_refuses(host: Trustkit, gun: str, tag: str, *reasons: str) -> None:
    assert_refused(verify(host, gun, tag), *reasons)


def assert_not_signed(host: Trustkit, gun: str, tag: str) -> None:
    assert_host_refuses(host, gun, tag, f"no signed tag {tag} in {gun}")


def person(tmp_path: Path, server_url: str, name: str) -> Trustkit:
    """Someone with a keystore of their own: a signer, a co-holder, a thief."""
    return Trustkit(
        tmp_path / name / ".trustkit",
        server_url,
        {"TRUSTKIT_DELEGATION_PASSPHRASE": SIGNER_PASSPHRASE},
    )


def generate(tk: Trustkit, name: str, out: Path) -> str:
    """``key generate NAME --out OUT``; returns the key id."""
    keyid: str = ok(tk("key", "generate", name, "--out", str(out), "--json"))["keyid"]
    return keyid


def with_signers(
    publisher: Trustkit, server: ServerProcess, gun: str, tmp_path: Path, paths: dict[str, str]
) -> dict[str, tuple[Trustkit, str]]:
    """The owner initialises GUN, signs 1.0 (DIGEST_A) and adds a signer per entry of
    PATHS (name -> the tags it may sign), each with a key of its own keystore. Returns
    name -> (that signer's trustkit, its key id)."""
    ok(publisher("init", gun))
    sign(publisher, gun, "1.0", DIGEST_A)
    people: dict[str, tuple[Trustkit, str]] = {}
    for name, pattern in paths.items():
        tk = person(tmp_path, server.url, name)
        keyid = generate(tk, name, tmp_path / f"{name}.pub")
        pub = str(tmp_path / f"{name}.pub")
        ok(publisher("signer", "add", name, gun, "--key", pub, "--paths", pattern))
        people[name] = (tk, keyid)
    return people


def key_of(tk: Trustkit, keyid: str) -> Signer:
    """A private key from TK's keystore, opened as its holder (or a thief who copied the
    keystore and learnt the passphrase) would."""
    keystore = Keystore(tk.home)
    [record] = [r for r in keystore.records() if r.keyid == keyid]
    return keystore.signer(record, PassphraseSource(tk.env))


def pinned_host(server: ServerProcess, gun: str, home: Path, url: str) -> Trustkit:
    """A host provisioned with the repository's root v1 (``trust pin``, fetched from the
    real server), that fetches its metadata from URL (the server or a mirror)."""
    root_v1 = home / "root-v1.json"
    home.mkdir(parents=True, exist_ok=True)
    root_v1.write_bytes(httpx.get(server.metadata_url(gun, "1.root.json"), timeout=30).content)
    host = Trustkit(home / ".trustkit", url)
    ok(host("trust", "pin", gun, str(root_v1)))
    return host


def assert_server_untouched(
    server: ServerProcess, gun: str, home: Path, tag: str, digest: str
) -> None:
    """What the server itself serves still verifies, for a host that asks it directly
    (a host that took a thief's newer timestamp waits until the server's passes it)."""
    direct = pinned_host(server, gun, home, server.url)
    result = verify(direct, gun, tag)
    assert result.code == 0, result.err
    assert result.out.strip() == digest


def served_bytes(server: ServerProcess, gun: str, filename: str) -> bytes:
    response = httpx.get(server.metadata_url(gun, filename), timeout=30)
    assert response.status_code == 200, response.text
    return response.content


# --- the attacker -------------------------------------------------------------------


def attacker_key() -> CryptoSigner:
    """A key the attacker made: no root and no delegation lists it."""
    return CryptoSigner.generate_ed25519()


def with_tag(role: Targets, tag: str, digest: str, *, bump: int = 1) -> Targets:
    """ROLE, BUMP versions up, with TAG pointed at DIGEST."""
    role.version += bump
    role.targets[tag] = image_target(tag, parse_digest(digest), 100, None)
    return role


def relabelled(data: bytes, keyid: str) -> bytes:
    """Metadata whose one signature claims to be by KEYID (a key the delegator lists)."""
    metadata: Metadata[Any] = Metadata.from_bytes(data)
    [signature] = metadata.signatures.values()
    metadata.signatures = {keyid: Signature(keyid, signature.signature)}
    return metadata.to_bytes(COMPACT_JSON)


def passthrough(proxy: TamperingProxy) -> None:
    """The mirror behaves again (or the attacker is gone)."""
    proxy.rewrite = lambda path, status, body: (status, body)


def serve(proxy: TamperingProxy, files: dict[str, bytes]) -> None:
    """The proxy answers these file names (``timestamp.json``, ``7.targets.json``, …)
    with the given bytes, everything else as the server does."""

    def rewrite(path: str, status: int, body: bytes) -> tuple[int, bytes]:
        name = path.rsplit("/", 1)[-1]
        return (200, files[name]) if name in files else (status, body)

    proxy.rewrite = rewrite


def fetched(proxy: TamperingProxy, name: str) -> bool:
    return any(path.rsplit("/", 1)[-1] == name for path in proxy.requests)


def forged_snapshot_and_timestamp(
    server: ServerProcess,
    gun: str,
    roles: dict[str, bytes],
    *,
    snapshot_signers: Iterable[Signer],
    timestamp_signers: Iterable[Signer],
    snapshot: Snapshot | None = None,
    snapshot_version: int | None = None,
    timestamp_version: int | None = None,
) -> dict[str, bytes]:
    """The files a malicious server serves: ROLES (name -> metadata bytes) under their
    consistent names, pinned by a snapshot (SNAPSHOT, by default the one served now, one
    version up) and a timestamp one version up, signed by the given keys — the server's
    stolen online keys, or keys of the attacker's own."""
    if snapshot is None:
        snapshot = served_metadata(server, gun, "snapshot.json").signed
        snapshot.version += 1
    if snapshot_version is not None:
        snapshot.version = snapshot_version
    files: dict[str, bytes] = {}
    for role, data in roles.items():
        version = int(json.loads(data)["signed"]["version"])  # it may not parse as TUF
        snapshot.meta[f"{role}.json"] = meta_for(data, version)
        files[f"{version}.{role}.json"] = data
    snapshot.expires = utc_now() + timedelta(days=30)
    snapshot_bytes = sign_with(snapshot, snapshot_signers)
    files[f"{snapshot.version}.snapshot.json"] = snapshot_bytes
    timestamp: Timestamp = served_metadata(server, gun, "timestamp.json").signed
    timestamp.version = timestamp_version or timestamp.version + 1
    timestamp.snapshot_meta = meta_for(snapshot_bytes, snapshot.version)
    timestamp.expires = utc_now() + timedelta(days=30)
    files["timestamp.json"] = sign_with(timestamp, timestamp_signers)
    return files


def online_signed(
    server: ServerProcess, gun: str, online: dict[str, Signer], roles: dict[str, bytes], **kw: Any
) -> dict[str, bytes]:
    """``forged_snapshot_and_timestamp`` with the server's stolen online keys."""
    return forged_snapshot_and_timestamp(
        server,
        gun,
        roles,
        snapshot_signers=[online["snapshot"]],
        timestamp_signers=[online["timestamp"]],
        **kw,
    )


class EndlessProxy:
    """A mirror that answers the files ``endless(path)`` picks with a body that does not
    end (no Content-Length; at most ``cap`` bytes, far beyond any limit), and forwards
    everything else to the server. ``streams_ended`` is set once such a stream stopped,
    ``hung_up`` says whether the host hung up on it before the cap."""

    def __init__(self, upstream: str, endless: Callable[[str], bool], cap: int = 1024**3) -> None:
        self.upstream = upstream.rstrip("/")
        self.endless = endless
        self.sent: dict[str, int] = {}
        self.hung_up: list[str] = []
        self.streams_ended = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # the body ends when the connection does

            def do_GET(self) -> None:
                if not proxy.endless(self.path):
                    response = httpx.get(proxy.upstream + self.path, timeout=30)
                    self.send_response(response.status_code)
                    self.send_header("Content-Length", str(len(response.content)))
                    self.end_headers()
                    self.wfile.write(response.content)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                chunk, sent = b" " * (64 * 1024), 0
                try:
                    while sent < cap:
                        self.wfile.write(chunk)
                        sent += len(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    proxy.hung_up.append(self.path)
                finally:
                    proxy.sent[self.path] = sent
                    proxy.streams_ended.set()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> EndlessProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self._server.shutdown()
            self._server.server_close()
