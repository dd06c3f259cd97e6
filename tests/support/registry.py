"""Test harness for a real OCI registry: images built by hand, pushed with skopeo.

Content trust is only worth something against the bytes a registry really serves, so
these helpers run Debian's ``docker-registry`` (distribution 2.8) on 127.0.0.1, with
optional TLS and optional bearer-token auth backed by a small real token server, and
push OCI layouts written here byte by byte so every digest is known in advance.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import ipaddress
import json
import os
import secrets
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from scripts.oci_layout import MANIFEST_ACCEPT, BuiltImage
from tests.support.harness import free_port

REGISTRY_BINARY = "/usr/bin/docker-registry"
SKOPEO_BINARY = "skopeo"


# --------------------------------------------------------------------------- certificates


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_pem(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return builder.not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(
        now + datetime.timedelta(days=7)
    )


class TestCA:
    """A throwaway CA and a server certificate for 127.0.0.1 / localhost.

    The SAN carries the IP as an IP address (not a DNS name): Go and httpx both
    match ``https://127.0.0.1:PORT`` only against an IP SAN.
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, directory: Path) -> None:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = (
            _validity(x509.CertificateBuilder())
            .subject_name(_name("trustkit test CA"))
            .issuer_name(_name("trustkit test CA"))
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        server_key = ec.generate_private_key(ec.SECP256R1())
        server_cert = (
            _validity(x509.CertificateBuilder())
            .subject_name(_name("127.0.0.1"))
            .issuer_name(ca_cert.subject)
            .public_key(server_key.public_key())
            .serial_number(x509.random_serial_number())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
                        x509.DNSName("localhost"),
                    ]
                ),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        self.ca_path = _write_pem(
            directory / "ca.crt", ca_cert.public_bytes(serialization.Encoding.PEM)
        )
        self.cert_path = _write_pem(
            directory / "server.crt", server_cert.public_bytes(serialization.Encoding.PEM)
        )
        self.key_path = _write_pem(directory / "server.key", _key_pem(server_key))


# --------------------------------------------------------------------------- token service


def libtrust_key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """The key ID distribution 2.8 gives each key of its ``rootcertbundle``.

    libtrust: base32 of the first 240 bits of SHA-256 over the DER
    SubjectPublicKeyInfo, in colon-separated groups of four characters.
    """
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


@dataclass(frozen=True)
class TokenRequest:
    """One request the token service saw, so tests can assert the token flow ran."""

    path: str
    credentials_valid: bool
    scopes: tuple[str, ...]


class TokenService:
    """A real Docker registry token server (``GET /token``) on 127.0.0.1.

    HTTP Basic ``username``/``password`` are required; every requested action is
    granted. Tokens are ES256 JWTs. By default the header carries ``x5c`` (the
    self-signed certificate at ``cert_path``, which the registry trusts as its
    ``rootcertbundle``); ``key_header="kid"`` sends the libtrust key ID instead,
    the other form distribution 2.8 accepts.
    """

    def __init__(
        self,
        directory: Path,
        *,
        username: str = "ci",
        password: str = "ci-secret",
        service: str = "trustkit-test-registry",
        issuer: str = "trustkit-test-token-service",
        key_header: Literal["x5c", "kid"] = "x5c",
    ) -> None:
        self.username = username
        self.password = password
        self.service = service
        self.issuer = issuer
        self.key_header = key_header
        self.requests: list[TokenRequest] = []
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._cert = (
            _validity(x509.CertificateBuilder())
            .subject_name(_name(issuer))
            .issuer_name(_name(issuer))
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .sign(self._key, hashes.SHA256())
        )
        self.cert_path = _write_pem(
            directory / "token-signing.crt", self._cert.public_bytes(serialization.Encoding.PEM)
        )
        service_ = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                service_._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.realm = f"{self.url}/token"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> TokenService:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _credentials_valid(self, authorization: str | None) -> bool:
        if not authorization or not authorization.lower().startswith("basic "):
            return False
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except ValueError:
            return False
        user, _, password = decoded.partition(":")
        return secrets.compare_digest(user, self.username) and secrets.compare_digest(
            password, self.password
        )

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        url = urlsplit(request.path)
        query = parse_qs(url.query)
        scopes = tuple(" ".join(query.get("scope", [])).split())
        valid = self._credentials_valid(request.headers.get("Authorization"))
        self.requests.append(TokenRequest(request.path, valid, scopes))
        if url.path != "/token":
            status, body = 404, {"errors": [{"code": "NOT_FOUND"}]}
        elif not valid:
            status, body = 401, {"errors": [{"code": "UNAUTHORIZED"}]}
        elif query.get("service", [self.service])[0] != self.service:
            status, body = 400, {"errors": [{"code": "UNKNOWN_SERVICE"}]}
        else:
            token = self.issue(scopes)
            status, body = 200, {"token": token, "access_token": token, "expires_in": 300}
        data = json.dumps(body).encode()
        request.send_response(status)
        if status == 401:
            request.send_header("WWW-Authenticate", 'Basic realm="trustkit test token service"')
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            request.wfile.write(data)

    def issue(self, scopes: tuple[str, ...] | list[str]) -> str:
        """A signed token granting every action in ``scopes`` (``type:name:a,b``)."""
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append(
                {"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]}
            )
        now = int(time.time())
        header: dict[str, Any] = {"typ": "JWT", "alg": "ES256"}
        if self.key_header == "x5c":
            der = self._cert.public_bytes(serialization.Encoding.DER)
            header["x5c"] = [base64.b64encode(der).decode()]
        else:
            header["kid"] = libtrust_key_id(self._key.public_key())
        claims = {
            "iss": self.issuer,
            "sub": self.username,
            "aud": self.service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        # PyJWT writes ES256 signatures as JOSE wants them (raw r || s, not DER).
        headers = {key: value for key, value in header.items() if key not in ("typ", "alg")}
        return jwt.encode(claims, self._key, algorithm="ES256", headers=headers)


# --------------------------------------------------------------------------- registry


class RegistryProcess:
    """``docker-registry serve`` on 127.0.0.1 with filesystem storage in ``data_dir``.

    The config and the log sit beside ``data_dir`` so a failing test can be
    diagnosed from its tmp dir. ``ca_path`` is the CA that verifies ``tls``, if any.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        tls: tuple[Path, Path] | None = None,
        token_auth: TokenService | None = None,
        ca_path: Path | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.tls = tls
        self.token_auth = token_auth
        self.ca_path = ca_path
        self.port = free_port()
        self.config_path = data_dir.parent / f"{data_dir.name}-registry.yml"
        self.log_path = data_dir.parent / f"{data_dir.name}-registry.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What httpx needs to trust this registry: the CA, or nothing for plain http."""
        if self.ca_path:
            return ssl.create_default_context(cafile=str(self.ca_path))
        return not self.tls

    def config(self) -> dict[str, Any]:
        """The registry config; JSON is YAML, so no YAML writer is needed."""
        http: dict[str, Any] = {
            "addr": self.host,
            "secret": secrets.token_hex(16),
            "headers": {"X-Content-Type-Options": ["nosniff"]},
            "draintimeout": "0s",
        }
        if self.tls:
            http["tls"] = {"certificate": str(self.tls[0]), "key": str(self.tls[1])}
        config: dict[str, Any] = {
            "version": "0.1",
            # No "reporting" (bugsnag/newrelic) and no notifications: nothing phones home.
            "log": {
                "level": "info",
                "formatter": "text",
                "accesslog": {"disabled": False},
                "fields": {"service": "registry"},
            },
            "storage": {
                "filesystem": {"rootdirectory": str(self.data_dir)},
                "cache": {"blobdescriptor": "inmemory"},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": http,
            "health": {"storagedriver": {"enabled": False}},
        }
        if self.token_auth:
            config["auth"] = {
                "token": {
                    "realm": self.token_auth.realm,
                    "service": self.token_auth.service,
                    "issuer": self.token_auth.issuer,
                    "rootcertbundle": str(self.token_auth.cert_path),
                }
            }
        return config

    def start(self) -> RegistryProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(self.config(), indent=2))
        ready = {401} if self.token_auth else {200}
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [REGISTRY_BINARY, "serve", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={"PATH": os.environ.get("PATH", "")},  # no REGISTRY_* overrides leak in
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"docker-registry exited:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/v2/", verify=self.verify, timeout=1).status_code in ready:
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"docker-registry did not answer in 20 s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


# --------------------------------------------------------------------------- skopeo


def push(
    image: BuiltImage,
    registry: RegistryProcess,
    repository: str,
    tag: str | None = None,
    *,
    creds: tuple[str, str] | None = None,
    ca: Path | None = None,
) -> None:
    """``skopeo copy`` the image's tag, every platform, byte for byte, to the registry.

    ``--preserve-digests`` makes skopeo fail rather than silently convert the
    manifest, so the registry serves exactly ``image.digest``. skopeo gets its own
    empty auth file and a cert dir holding only the CA: a ``*.key`` beside a cert
    there would be taken as a client certificate.
    """
    ca = ca or registry.ca_path
    with tempfile.TemporaryDirectory(prefix="skopeo-") as scratch:
        work = Path(scratch)
        auth_file = work / "auth.json"
        auth_file.write_text("{}")
        command = [
            SKOPEO_BINARY,
            "--insecure-policy",  # no /etc/containers/policy.json needed
            "copy",
            "--quiet",
            "--multi-arch=all",
            "--preserve-digests",
            "--authfile",
            str(auth_file),
        ]
        if not registry.tls:
            command.append("--dest-tls-verify=false")  # allows plain http
        elif ca is not None:
            cert_dir = work / "certs"
            cert_dir.mkdir()
            shutil.copyfile(ca, cert_dir / "ca.crt")
            command += ["--dest-cert-dir", str(cert_dir)]
        if creds is not None:
            command += ["--dest-creds", f"{creds[0]}:{creds[1]}"]
        else:
            command.append("--dest-no-creds")
        command += [
            f"oci:{image.layout}:{image.tag}",
            f"docker://{registry.host}/{repository}:{tag or image.tag}",
        ]
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(work),
            "XDG_RUNTIME_DIR": str(work),
            "XDG_CONFIG_HOME": str(work),
            "REGISTRY_AUTH_FILE": str(auth_file),
            "TMPDIR": str(work),
        }
        completed = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=60, check=False
        )
    if completed.returncode != 0:
        raise RuntimeError(
            f"skopeo copy failed ({completed.returncode}): {' '.join(command)}\n"
            f"{completed.stderr}\nregistry log:\n{registry.log_tail(15)}"
        )


# --------------------------------------------------------------------------- independent reads


def _bearer_token(
    challenge: str, creds: tuple[str, str] | None, verify: ssl.SSLContext | bool
) -> str | None:
    """Follow a ``WWW-Authenticate: Bearer realm=…,service=…,scope=…`` challenge."""
    if not challenge.lower().startswith("bearer "):
        return None
    params: dict[str, str] = {}
    for part in challenge[7:].split('",'):
        key, _, value = part.strip().partition("=")
        params[key] = value.strip('"')
    realm = params.pop("realm")
    response = httpx.get(
        realm,
        params=params,
        auth=creds,
        verify=verify,
        timeout=10,
    )
    if response.status_code != 200:
        return None
    body = response.json()
    return str(body.get("token") or body["access_token"])


def fetch_manifest(
    registry: RegistryProcess,
    repository: str,
    reference: str,
    *,
    creds: tuple[str, str] | None = None,
) -> httpx.Response:
    """GET a manifest by tag or digest as a client would, bearer token flow included."""
    url = f"{registry.url}/v2/{repository}/manifests/{reference}"
    headers = {"Accept": MANIFEST_ACCEPT}
    response = httpx.get(url, headers=headers, verify=registry.verify, timeout=10)
    if response.status_code == 401:
        challenge = response.headers.get("WWW-Authenticate", "")
        token = _bearer_token(challenge, creds, registry.verify)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
            response = httpx.get(url, headers=headers, verify=registry.verify, timeout=10)
    return response


def registry_digest(
    registry: RegistryProcess,
    repository: str,
    tag: str,
    *,
    creds: tuple[str, str] | None = None,
) -> str:
    """The digest the registry itself serves for ``repository:tag`` (Docker-Content-Digest)."""
    response = fetch_manifest(registry, repository, tag, creds=creds)
    response.raise_for_status()
    return response.headers["Docker-Content-Digest"]
