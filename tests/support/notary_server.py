"""Test harness for Notary v1 / Docker Content Trust: Debian's real notary-server and CLI.

``NotaryServer`` runs ``notary-server`` on 127.0.0.1 (a free port) with its in-memory
storage, its local signer (ed25519 timestamp and snapshot keys, in process) and TLS from
a throwaway CA (``tests.support.registry.TestCA``); with ``token_auth`` it wants bearer tokens
from a real token service (``tests.support.registry.TokenService``), as Docker Hub's Notary does.

``NotaryCLI`` drives the real ``notary`` client non-interactively: its own trust
directory (``-d``), the server and CA on every call, passphrases from
``NOTARY_{ROOT,TARGETS,SNAPSHOT,DELEGATION}_PASSPHRASE``, credentials from
``NOTARY_AUTH`` (base64 ``user:password``). Targets are image-like: the sha256 and
length of a manifest (``notary addhash``).

Also here: delegation keys and certificates made as ``docker trust signer add`` wants
them (``make_delegate_key``), metadata signed by a delegate and uploaded the way the
notary client uploads it (``publish_as_delegate``, for what the CLI refuses to make,
e.g. a target outside the delegate's paths), and ``NotaryProxy``, a plain-HTTP man in
the middle that can rewrite anything the server answers. Every process and request is
bounded by a timeout; ``stop`` ends only the processes started here.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import json
import os
import re
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from securesystemslib.formats import encode_canonical

from tests.support.harness import free_port
from tests.support.registry import TestCA, TokenService

NOTARY_SERVER_BINARY = "/usr/bin/notary-server"
NOTARY_BINARY = "/usr/bin/notary"
COMMAND_TIMEOUT = 60  # seconds, for any one notary CLI call
START_TIMEOUT = 15  # seconds for notary-server to answer its health check

PASSPHRASES = {
    "NOTARY_ROOT_PASSPHRASE": "notary root passphrase for tests",
    "NOTARY_TARGETS_PASSPHRASE": "notary targets passphrase for tests",
    "NOTARY_SNAPSHOT_PASSPHRASE": "notary snapshot passphrase for tests",
    "NOTARY_DELEGATION_PASSPHRASE": "notary delegation passphrase for tests",
}

Rewrite = Callable[[str, int, bytes], tuple[int, bytes]]


def notary_installed() -> bool:
    return Path(NOTARY_SERVER_BINARY).is_file() and Path(NOTARY_BINARY).is_file()


# --------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class ImageTarget:
    """What a tag is signed as: the sha256 (hex) and length of an image manifest."""

    digest: str
    size: int

    @property
    def reference(self) -> str:
        return f"sha256:{self.digest}"


def image_target(label: str, *, size: int | None = None) -> ImageTarget:
    """A deterministic OCI manifest for ``label`` (its digest and length).

    With ``size`` the digest is made up and the length is ``size`` — for lengths a real
    manifest never has, such as more than a million bytes (Notary's canonical JSON reads
    numbers as float64; large ones must survive that).
    """
    if size is not None:
        return ImageTarget(hashlib.sha256(f"{label}/{size}".encode()).hexdigest(), size)
    layer = hashlib.sha256(label.encode()).hexdigest()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": f"sha256:{hashlib.sha256(layer.encode()).hexdigest()}",
                "size": 2,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": f"sha256:{layer}",
                    "size": len(label) + 20,
                }
            ],
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()
    return ImageTarget(hashlib.sha256(manifest).hexdigest(), len(manifest))


# --------------------------------------------------------------------------- server


class NotaryServer:
    """``notary-server -config`` on 127.0.0.1 with memory storage, a local signer and TLS."""

    def __init__(self, directory: Path, *, token_auth: TokenService | None = None) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.ca = TestCA(directory / "pki")
        self.ca_path = self.ca.ca_path
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.token_auth = token_auth
        self.config_path = directory / "server-config.json"
        self.log_path = directory / "notary-server.log"
        self._process: subprocess.Popen[bytes] | None = None

    def tls(self) -> ssl.SSLContext:
        """A client TLS context that trusts this server's CA."""
        return ssl.create_default_context(cafile=str(self.ca_path))

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "server": {
                "http_addr": f"127.0.0.1:{self.port}",
                "tls_cert_file": str(self.ca.cert_path),
                "tls_key_file": str(self.ca.key_path),
            },
            "trust_service": {"type": "local"},
            "storage": {"backend": "memory"},
            "logging": {"level": "info"},
        }
        if self.token_auth is not None:
            config["auth"] = {
                "type": "token",
                "options": {
                    "realm": self.token_auth.realm,
                    "service": self.token_auth.service,
                    "issuer": self.token_auth.issuer,
                    "rootcertbundle": str(self.token_auth.cert_path),
                },
            }
        return config

    def start(self) -> NotaryServer:
        self.config_path.write_text(json.dumps(self.config(), indent=2))
        log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [NOTARY_SERVER_BINARY, "-config", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.directory,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        with httpx.Client(verify=self.tls(), timeout=2) as client:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    break
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.url}/_notary_server/health").status_code == 200:
                        return self
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"notary-server did not start:\n{self.log_tail()}")

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        self._process = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def metadata_url(self, gun: str, name: str) -> str:
        """``/v2/GUN/_trust/tuf/NAME.json`` (NAME: ``root``, ``2.root``, ``targets.<hex>``…)."""
        return f"{self.url}/v2/{gun}/_trust/tuf/{name}.json"

    def metadata(self, gun: str, name: str) -> bytes:
        """A metadata file as the server serves it (no auth: servers without token_auth)."""
        response = httpx.get(self.metadata_url(gun, name), verify=self.tls(), timeout=10)
        response.raise_for_status()
        return response.content

    def upload(self, gun: str, files: Mapping[str, bytes]) -> httpx.Response:
        """POST roles as the notary client publishes them: multipart, one ``files`` part each."""
        parts = [("files", (role, data)) for role, data in files.items()]
        return httpx.post(
            f"{self.url}/v2/{gun}/_trust/tuf/", files=parts, verify=self.tls(), timeout=10
        )


# --------------------------------------------------------------------------- CLI


@dataclass(frozen=True)
class ListedTarget:
    """One row of ``notary list``."""

    digest: str
    size: int
    role: str


class NotaryCLI:
    """The real ``notary`` CLI with its own trust directory, talking to one server."""

    def __init__(
        self,
        server: NotaryServer,
        trust_dir: Path,
        *,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.server = server
        self.trust_dir = trust_dir
        self.credentials = credentials

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NOTARY_")}
        env.update(PASSPHRASES)
        env["HOME"] = str(self.trust_dir.parent)  # keep ~/.notary out of the real home
        if self.credentials is not None:
            user, password = self.credentials
            env["NOTARY_AUTH"] = base64.b64encode(f"{user}:{password}".encode()).decode()
        return env

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        command = [
            NOTARY_BINARY,
            "-s",
            self.server.url,
            "--tlscacert",
            str(self.server.ca_path),
            "-d",
            str(self.trust_dir),
            *args,
        ]
        result = subprocess.run(
            command,
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"notary {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}\n--- server log ---\n{self.server.log_tail()}"
            )
        return result

    def init(self, gun: str) -> None:
        """``notary init -p``: new root, targets and snapshot keys here, published."""
        self("init", gun, "-p")

    def add(
        self,
        gun: str,
        tag: str,
        target: ImageTarget,
        *,
        role: str | None = None,
        publish: bool = True,
    ) -> None:
        """Sign TAG -> the target's sha256 and length (``notary addhash``)."""
        args = ["addhash", gun, tag, str(target.size), "--sha256", target.digest]
        if role:
            args += ["--roles", role]
        if publish:
            args.append("-p")
        self(*args)

    def add_many(
        self, gun: str, targets: Mapping[str, ImageTarget], *, role: str | None = None
    ) -> None:
        """Stage several tags, then publish them in one go."""
        for tag, target in targets.items():
            self.add(gun, tag, target, role=role, publish=False)
        self.publish(gun)

    def stage_many(self, gun: str, targets: Mapping[str, ImageTarget]) -> None:
        """Stage tags for targets by writing the change files ``notary addhash`` (without
        -p) leaves in the changelist, directly: thousands in a second, not minutes."""
        changes = self.trust_dir / "tuf" / gun / "changelist"
        changes.mkdir(parents=True, exist_ok=True)
        stamp = time.time_ns()
        for n, (tag, target) in enumerate(targets.items()):
            meta = json.dumps(
                {
                    "length": target.size,
                    "hashes": {"sha256": base64.b64encode(bytes.fromhex(target.digest)).decode()},
                },
                separators=(",", ":"),
            )
            change = {
                "action": "create",
                "role": "targets",
                "type": "target",
                "path": tag,
                "data": base64.b64encode(meta.encode()).decode(),
            }
            (changes / f"{stamp + n:020d}_{uuid.uuid4()}.change").write_text(
                json.dumps(change, separators=(",", ":"))
            )

    def publish(self, gun: str) -> None:
        self("publish", gun)

    def remove(self, gun: str, tag: str, *, role: str | None = None) -> None:
        args = ["remove", gun, tag, "-p"]
        if role:
            args += ["--roles", role]
        self(*args)

    def list(self, gun: str, *roles: str) -> dict[str, ListedTarget]:
        """``notary list``: name -> digest (hex), size, role. Names must not hold blanks."""
        args = ["list", gun]
        for role in roles:
            args += ["--roles", role]
        listed = {}
        for line in self(*args).stdout.splitlines():
            fields = line.split()
            if len(fields) == 4 and re.fullmatch(r"[0-9a-f]{64}", fields[1]):
                listed[fields[0]] = ListedTarget(fields[1], int(fields[2]), fields[3])
        return listed

    def add_delegation(
        self,
        gun: str,
        role: str,
        key_files: Sequence[Path],
        *,
        paths: Sequence[str] = (),
        all_paths: bool = False,
        publish: bool = True,
    ) -> None:
        """``notary delegation add`` with PEM certificates or public keys."""
        args = ["delegation", "add", gun, role, *map(str, key_files)]
        if all_paths:
            args.append("--all-paths")
        if paths:
            args += ["--paths", ",".join(paths)]
        if publish:
            args.append("-p")
        self(*args)

    def remove_delegation_keys(
        self, gun: str, role: str, key_ids: Sequence[str], *, publish: bool = True
    ) -> None:
        """``notary delegation remove``: take keys out of a delegation (a revoked signer).

        The ids are those ``notary delegation list`` shows: for a certificate, the id of
        its bare public key (``DelegateKey.public_key_id``); others are silently ignored.
        """
        args = ["delegation", "remove", gun, role, *key_ids, "--yes"]
        if publish:
            args.append("-p")
        self(*args)

    def import_key(self, pem: Path, role: str) -> None:
        """``notary key import`` of an unencrypted PKCS#8 key (stored encrypted)."""
        self("key", "import", str(pem), "--role", role)

    def rotate(self, gun: str, role: str, *, server_managed: bool = False) -> None:
        """``notary key rotate`` targets or snapshot (``-r``: the server keeps the key)."""
        args = ["key", "rotate", gun, role]
        if server_managed:
            args.append("-r")
        self(*args)

    def rotate_root(self, gun: str) -> None:
        """A new root key, in a root version signed by the old and the new one."""
        self("key", "rotate", gun, "root", input="yes\n")

    def delete(self, gun: str) -> None:
        """Delete the repository here and on the server."""
        self("delete", gun, "--remote")

    def cached_root(self, gun: str) -> bytes:
        """The root this client trusts for GUN (what Docker pins in ~/.docker/trust)."""
        return (self.trust_dir / "tuf" / gun / "metadata" / "root.json").read_bytes()


# --------------------------------------------------------------------------- delegates


@dataclass(frozen=True)
class DelegateKey:
    """A signer's key: as a PKCS#8 file for ``notary key import``, a certificate (what
    ``docker trust signer add`` hands to Notary) and a bare public key."""

    name: str
    private_key: ec.EllipticCurvePrivateKey
    key_path: Path
    cert_path: Path
    public_path: Path

    @property
    def certificate_key_id(self) -> str:
        """Notary's id for the key as a certificate (``ecdsa-x509``)."""
        return _notary_key_id("ecdsa-x509", self.cert_path.read_bytes())

    @property
    def public_key_id(self) -> str:
        """Notary's id for the bare key (``ecdsa``): its private key file's name."""
        der = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return _notary_key_id("ecdsa", der)

    def sign(self, signed: Mapping[str, Any], key_id: str) -> bytes:
        """``signed`` as the notary client would upload it, signed by this key."""
        message = encode_canonical(dict(signed))
        assert message is not None
        der = self.private_key.sign(message.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        signature = {
            "keyid": key_id,
            "method": "ecdsa",
            "sig": base64.b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big")).decode(),
        }
        return wire_form(signed, [signature])


def _notary_key_id(keytype: str, public: bytes) -> str:
    document = {
        "keytype": keytype,
        "keyval": {"private": None, "public": base64.b64encode(public).decode()},
    }
    canonical = encode_canonical(document)
    assert canonical is not None
    return hashlib.sha256(canonical.encode()).hexdigest()


def make_delegate_key(directory: Path, name: str, *, days: int = 365) -> DelegateKey:
    """A P-256 key for signer ``name`` and a self-signed certificate (CN = name)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path = directory / f"{name}-key.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path = directory / f"{name}.crt"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    public_path = directory / f"{name}.pub"
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return DelegateKey(name, key, key_path, cert_path, public_path)


def wire_form(signed: Mapping[str, Any], signatures: Sequence[Mapping[str, Any]]) -> bytes:
    """A metadata file as Go's ``json.Marshal`` writes it (compact, ``signed`` canonical).

    notary-server hashes uploads in this form when it writes the snapshot, and serves
    the bytes it was sent: anything else makes the snapshot's hash disagree with them.
    (Go also escapes <, > and & here; keep them out of crafted metadata.)
    """
    canonical = encode_canonical(dict(signed))
    assert canonical is not None
    sigs = json.dumps(list(signatures), separators=(",", ":"))
    return ('{"signed":' + canonical + ',"signatures":' + sigs + "}").encode()


def publish_as_delegate(
    server: NotaryServer,
    gun: str,
    role: str,
    key: DelegateKey,
    key_id: str,
    edit: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    """Sign the next version of delegation ``role`` after ``edit`` and upload it.

    The server checks signatures, versions and expiry (it refuses expired uploads) but
    not paths — which lets a test publish what the notary CLI would not (a target outside
    the delegation's paths). Returns the signed part uploaded.
    """
    current = json.loads(server.metadata(gun, role))["signed"]
    signed: dict[str, Any] = json.loads(json.dumps(current))
    signed["version"] = current["version"] + 1
    edit(signed)
    response = server.upload(gun, {role: key.sign(signed, key_id)})
    if response.status_code != 200:
        raise AssertionError(f"upload of {role} refused: {response.status_code} {response.text}")
    return signed


# --------------------------------------------------------------------------- proxy


class NotaryProxy:
    """A plain-HTTP proxy in front of a NotaryServer that can rewrite every answer.

    ``rewrite(path, status, body) -> (status, body)`` sees each GET (the malicious
    mirror); Authorization and WWW-Authenticate pass through, so token auth still works.
    """

    def __init__(self, server: NotaryServer) -> None:
        self.server = server
        self.rewrite: Rewrite = lambda path, status, body: (status, body)
        self.requests: list[str] = []
        self._upstream = httpx.Client(verify=server.tls(), timeout=10)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                proxy.requests.append(self.path)
                headers = {}
                if self.headers.get("Authorization"):
                    headers["Authorization"] = self.headers["Authorization"]
                answer = proxy._upstream.get(proxy.server.url + self.path, headers=headers)
                status, body = proxy.rewrite(self.path, answer.status_code, answer.content)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for challenge in answer.headers.get_list("WWW-Authenticate"):
                    self.send_header("WWW-Authenticate", challenge)
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    def start(self) -> NotaryProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._upstream.close()


def role_of(path: str) -> str | None:
    """``/v2/GUN/_trust/tuf/targets.<hex>.json`` -> ``targets`` (also ``3.root``, …)."""
    match = re.search(r"/_trust/tuf/(?:\d+\.)?(.+?)(?:\.[0-9a-f]{64})?\.json$", path)
    return match.group(1) if match else None


def flip_byte(body: bytes, marker: bytes) -> bytes:
    """``body`` with the character after the first ``marker`` changed (still valid JSON)."""
    index = body.index(marker) + len(marker)
    replacement = b"1" if body[index : index + 1] != b"1" else b"2"
    return body[:index] + replacement + body[index + 1 :]
