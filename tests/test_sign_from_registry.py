"""A publisher signs what the registry really serves; a host notices a tag moved since.

Images are built byte by byte, pushed with skopeo to a real docker-registry on
127.0.0.1, and signed by ``trustkit sign IMAGE:TAG`` with no digest given: trustkit asks
the registry. Every expected digest and size comes from the built bytes or from the
registry itself, never from trustkit.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import httpx
import pytest

from scripts.oci_layout import MANIFEST_ACCEPT, OCI_INDEX, OCI_MANIFEST, BuiltImage, build_image
from tests.support.harness import Trustkit, free_port, gun_for
from tests.support.registry import (
    RegistryProcess,
    push,
    registry_digest,
)

CREDS = ("ci", "ci-secret")
ABSENT_DIGEST = "sha256:" + "c" * 64


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def path(request: pytest.FixtureRequest) -> str:
    """A repository path of this test's own on the (session-wide) registries."""
    return "from-registry/" + gun_for(request.node.name).partition("/")[2]


def gun_on(registry: RegistryProcess, path: str) -> str:
    return f"{registry.host}/{path}"


def pushed(
    tmp_path: Path,
    registry: RegistryProcess,
    path: str,
    tag: str,
    content: bytes,
    *,
    creds: tuple[str, str] | None = None,
    **build: Any,
) -> BuiltImage:
    """Build an image whose bytes are unique to ``content`` and push it as ``path:tag``."""
    layout = tmp_path / f"layout-{hashlib.sha256(content).hexdigest()[:12]}"
    image = build_image(layout, tag, content, **build)
    push(image, registry, path, tag, creds=creds)
    return image


def write_docker_config(tk: Trustkit, document: dict[str, Any]) -> Path:
    """Docker's config.json where ``docker login`` would write it for this user."""
    config = Path(tk.home.parent) / ".docker" / "config.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps(document))
    return config


def basic_auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def signed_tags(host: Trustkit, gun: str) -> list[dict[str, Any]]:
    inspected = host("inspect", gun, "--json")
    assert inspected.code == 0, inspected.err
    return inspected.json["tags"]


def assert_nothing_staged(publisher: Trustkit, gun: str) -> None:
    empty = publisher("publish", gun)
    assert empty.code == 0, (empty.out, empty.err)
    assert f"nothing to publish for {gun}: no staged changes" in empty.out


def error_lines(err: str) -> list[str]:
    """What trustkit told the user: its ``trustkit: …`` line and any ``hint:`` line."""
    return [line for line in err.splitlines() if line.strip()]


# --------------------------------------------------------------------------- the story


def test_sign_resolves_the_digest_the_registry_reports(
    publisher: Trustkit, host: Trustkit, registry: RegistryProcess, path: str, tmp_path: Path
):
    image = pushed(tmp_path, registry, path, "1.0", b"the app, version 1.0")
    gun = gun_on(registry, path)
    assert publisher("init", gun).code == 0

    signed = publisher("sign", f"{gun}:1.0")

    assert signed.code == 0, signed.err
    served = registry_digest(registry, path, "1.0")
    assert served == image.digest
    assert f"{gun}:1.0 -> {served} ({image.size} bytes, {OCI_MANIFEST})" in signed.out
    assert signed_tags(host, gun) == [
        {
            "tag": "1.0",
            "digest": served,
            "size": image.size,
            "media_type": OCI_MANIFEST,
            "signer": "targets",
        }
    ]
    verified = host("verify", f"{gun}:1.0")
    assert (verified.code, verified.out.strip()) == (0, served), verified.err
    as_json = host("verify", f"{gun}:1.0", "--json")
    assert as_json.code == 0, as_json.err
    assert as_json.json["digest"] == as_json.json["registry_digest"] == served
    assert as_json.json["reference"] == f"{gun}@{served}"


def test_multi_arch_index_is_signed_by_its_index_digest(
    publisher: Trustkit, host: Trustkit, registry: RegistryProcess, path: str, tmp_path: Path
):
    image = pushed(
        tmp_path,
        registry,
        path,
        "2.0",
        b"multi-arch app",
        platforms=[("linux", "amd64"), ("linux", "arm64")],
    )
    gun = gun_on(registry, path)
    publisher("init", gun)

    signed = publisher("sign", f"{gun}:2.0")

    assert signed.code == 0, signed.err
    assert registry_digest(registry, path, "2.0") == image.digest
    [tag] = signed_tags(host, gun)
    assert tag["digest"] == image.digest
    assert tag["digest"] not in image.platform_digests.values()
    assert (tag["size"], tag["media_type"]) == (image.size, OCI_INDEX)
    text = host("inspect", gun)
    assert text.code == 0, text.err
    [row] = [line for line in text.out.splitlines() if line.startswith("2.0 ")]
    assert image.digest in row and OCI_INDEX in row and str(image.size) in row


def test_tag_moved_after_signing_is_refused_by_verify_but_resolve_keeps_the_signed_one(
    publisher: Trustkit, host: Trustkit, registry: RegistryProcess, path: str, tmp_path: Path
):
    signed_image = pushed(tmp_path, registry, path, "1.0", b"reviewed and signed")
    gun = gun_on(registry, path)
    publisher("init", gun)
    assert publisher("sign", f"{gun}:1.0").code == 0
    assert host("verify", f"{gun}:1.0").code == 0

    moved = pushed(tmp_path, registry, path, "1.0", b"pushed later, never signed")
    assert registry_digest(registry, path, "1.0") == moved.digest != signed_image.digest

    resolved = host("resolve", f"{gun}:1.0")
    refused = host.process("verify", f"{gun}:1.0")
    offline = host("verify", f"{gun}:1.0", "--offline")

    assert (resolved.code, resolved.out.strip()) == (0, f"{gun}@{signed_image.digest}")
    assert refused.code == 1, refused.err
    assert refused.out == ""
    assert moved.digest in refused.err and signed_image.digest in refused.err
    assert "Traceback" not in refused.err
    assert (offline.code, offline.out.strip()) == (0, signed_image.digest), offline.err


def test_sign_with_a_digest_signs_that_manifest_even_after_the_tag_moved(
    publisher: Trustkit, host: Trustkit, registry: RegistryProcess, path: str, tmp_path: Path
):
    wanted = pushed(tmp_path, registry, path, "1.0", b"the build that passed QA, a bit longer")
    pushed(tmp_path, registry, path, "1.0", b"a later build")
    gun = gun_on(registry, path)
    publisher("init", gun)

    by_reference = publisher("sign", f"{gun}:1.0@{wanted.digest}", "--no-publish")
    by_flag = publisher("sign", f"{gun}:qa", "--digest", wanted.digest)

    assert by_reference.code == 0, by_reference.err
    assert by_flag.code == 0, by_flag.err
    expected = {"digest": wanted.digest, "size": wanted.size, "media_type": OCI_MANIFEST}
    tags = {tag.pop("tag"): tag for tag in signed_tags(host, gun)}
    assert tags == {
        "1.0": {**expected, "signer": "targets"},
        "qa": {**expected, "signer": "targets"},
    }
    offline = host("verify", f"{gun}:1.0", "--offline")
    assert offline.out.strip() == wanted.digest
    assert host("verify", f"{gun}:1.0").code == 1  # the registry's 1.0 is the later build


def test_unknown_tag_or_digest_in_the_registry_is_refused_and_nothing_published(
    publisher: Trustkit, host: Trustkit, registry: RegistryProcess, path: str, tmp_path: Path
):
    pushed(tmp_path, registry, path, "1.0", b"only 1.0 was pushed")
    gun = gun_on(registry, path)
    publisher("init", gun)

    no_tag = publisher("sign", f"{gun}:9.9")
    no_digest = publisher("sign", f"{gun}:1.0@{ABSENT_DIGEST}", "--no-publish")

    assert no_tag.code == 1
    assert f"has no {gun}:9.9" in no_tag.err
    assert no_digest.code == 1
    assert f"has no {ABSENT_DIGEST}" in no_digest.err
    assert signed_tags(host, gun) == []
    assert_nothing_staged(publisher, gun)


# --------------------------------------------------------------------------- credentials


def test_token_registry_signs_with_the_credentials_docker_login_saved(
    publisher: Trustkit,
    host: Trustkit,
    token_registry: RegistryProcess,
    path: str,
    tmp_path: Path,
):
    tokens = token_registry.token_auth
    assert tokens is not None
    image = pushed(tmp_path, token_registry, path, "1.0", b"private app", creds=CREDS)
    gun = gun_on(token_registry, path)
    write_docker_config(publisher, {"auths": {token_registry.host: {"auth": basic_auth(*CREDS)}}})
    publisher("init", gun)
    seen = len(tokens.requests)

    signed = publisher("sign", f"{gun}:1.0")

    assert signed.code == 0, signed.err
    assert (
        [tag["digest"] for tag in signed_tags(host, gun)]
        == [registry_digest(token_registry, path, "1.0", creds=CREDS)]
        == [image.digest]
    )
    asked = tokens.requests[seen:]
    assert asked, "trustkit never asked the token service"
    assert all(request.credentials_valid for request in asked)
    assert any(f"repository:{path}:pull" in request.scopes for request in asked)


def test_token_registry_without_credentials_tells_to_docker_login(
    publisher: Trustkit,
    host: Trustkit,
    token_registry: RegistryProcess,
    path: str,
    tmp_path: Path,
):
    pushed(tmp_path, token_registry, path, "1.0", b"private, no login", creds=CREDS)
    gun = gun_on(token_registry, path)
    publisher("init", gun)

    refused = publisher("sign", f"{gun}:1.0")

    assert refused.code == 1
    assert f"docker login {token_registry.host}" in refused.err
    assert "Traceback" not in refused.err
    assert signed_tags(host, gun) == []
    assert_nothing_staged(publisher, gun)


def test_token_registry_with_wrong_credentials_names_the_token_service_refusal(
    publisher: Trustkit,
    host: Trustkit,
    token_registry: RegistryProcess,
    path: str,
    tmp_path: Path,
):
    tokens = token_registry.token_auth
    assert tokens is not None
    pushed(tmp_path, token_registry, path, "1.0", b"private, wrong password", creds=CREDS)
    gun = gun_on(token_registry, path)
    write_docker_config(
        publisher, {"auths": {token_registry.host: {"auth": basic_auth("ci", "wrong")}}}
    )
    publisher("init", gun)
    seen = len(tokens.requests)

    refused = publisher("sign", f"{gun}:1.0")

    assert refused.code == 1
    assert "token service" in refused.err and "refused the credentials" in refused.err
    assert "wrong" not in refused.err  # the secret is never printed
    asked = tokens.requests[seen:]
    assert asked and not any(request.credentials_valid for request in asked)
    assert signed_tags(host, gun) == []


def test_token_registry_credentials_from_a_credential_helper(
    publisher: Trustkit,
    host: Trustkit,
    token_registry: RegistryProcess,
    path: str,
    tmp_path: Path,
):
    tokens = token_registry.token_auth
    assert tokens is not None
    image = pushed(tmp_path, token_registry, path, "1.0", b"private, helper", creds=CREDS)
    gun = gun_on(token_registry, path)
    helpers = tmp_path / "bin"
    helpers.mkdir()
    asked_for = tmp_path / "helper-was-asked-for"
    helper = helpers / "docker-credential-testhelper"
    helper.write_text(
        "#!/bin/sh\n"
        "# docker-credential-helpers protocol: the server on stdin, JSON on stdout.\n"
        '[ "$1" = get ] || exit 2\n'
        "read -r server\n"
        f'printf "%s\\n" "$server" >> "{asked_for}"\n'
        f'if [ "$server" = "{token_registry.host}" ]; then\n'
        '  printf \'{"ServerURL":"%s","Username":"ci","Secret":"ci-secret"}\\n\' "$server"\n'
        "else\n"
        '  echo "credentials not found in native keychain"; exit 1\n'
        "fi\n"
    )
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    write_docker_config(publisher, {"credsStore": "testhelper"})
    publisher("init", gun)
    seen = len(tokens.requests)

    signed = publisher.process(
        "sign", f"{gun}:1.0", env={"PATH": f"{helpers}{os.pathsep}{os.environ['PATH']}"}
    )

    assert signed.code == 0, signed.err
    assert asked_for.read_text().split() == [token_registry.host]
    assert any(request.credentials_valid for request in tokens.requests[seen:])
    assert [tag["digest"] for tag in signed_tags(host, gun)] == [image.digest]


# --------------------------------------------------------------------------- TLS


def test_tls_registry_is_trusted_through_registry_ca(
    publisher: Trustkit,
    host: Trustkit,
    tls_registry: RegistryProcess,
    path: str,
    tmp_path: Path,
):
    assert tls_registry.ca_path is not None
    image = pushed(tmp_path, tls_registry, path, "1.0", b"served over https")
    gun = gun_on(tls_registry, path)
    publisher("init", gun)

    signed = publisher("sign", f"{gun}:1.0", "--registry-ca", str(tls_registry.ca_path))

    assert signed.code == 0, signed.err
    assert (
        [tag["digest"] for tag in signed_tags(host, gun)]
        == [registry_digest(tls_registry, path, "1.0")]
        == [image.digest]
    )
    verified = host(
        "verify", f"{gun}:1.0", "--json", env={"TRUSTKIT_REGISTRY_CA": str(tls_registry.ca_path)}
    )
    assert verified.code == 0, verified.err
    assert verified.json["registry_digest"] == image.digest


def test_tls_registry_without_its_ca_fails_with_a_hint_to_give_it(
    publisher: Trustkit,
    host: Trustkit,
    tls_registry: RegistryProcess,
    path: str,
    tmp_path: Path,
):
    pushed(tmp_path, tls_registry, path, "1.0", b"https, CA not given")
    gun = gun_on(tls_registry, path)
    publisher("init", gun)

    refused = publisher.process("sign", f"{gun}:1.0")

    assert refused.code == 3, refused.err
    first, *rest = error_lines(refused.err)
    assert first.startswith(f"trustkit: cannot reach the registry {tls_registry.host}")
    assert "certificate" in first.lower()
    assert "--registry-ca" in refused.err
    # The registry speaks TLS: falling back to plain http would only get a 400 from it.
    assert "400" not in refused.err
    assert len(rest) <= 1 and "Traceback" not in refused.err
    assert signed_tags(host, gun) == []
    assert_nothing_staged(publisher, gun)


def test_verify_with_an_unreadable_registry_ca_is_a_usage_error(
    publisher: Trustkit, host: Trustkit, path: str, tmp_path: Path
):
    """A mistyped --registry-ca must not silently turn off the moved-tag check."""
    gun = f"127.0.0.1:{free_port()}/{path}"
    publisher("init", gun)
    publisher("sign", f"{gun}:1.0", "--digest", "sha256:" + "f" * 64, "--size", "10")
    missing = tmp_path / "no-such-ca.pem"

    signing = publisher("sign", f"{gun}:2.0", "--registry-ca", str(missing))
    verifying = host("verify", f"{gun}:1.0", "--registry-ca", str(missing))

    assert signing.code == 2 and f"cannot use {missing} as the registry CA" in signing.err
    assert verifying.code == 2, verifying.err
    assert f"cannot use {missing} as the registry CA" in verifying.err
    assert verifying.out == ""


# --------------------------------------------------------------------------- unreachable


def test_registry_down_fails_with_one_line_and_publishes_nothing(
    publisher: Trustkit, host: Trustkit, path: str
):
    down = f"127.0.0.1:{free_port()}"  # nothing listens here
    gun = f"{down}/{path}"
    publisher("init", gun)
    earlier = "sha256:" + "e" * 64
    assert publisher("sign", f"{gun}:1.0", "--digest", earlier, "--size", "10").code == 0

    refused = publisher.process("sign", f"{gun}:2.0")
    staged = publisher("sign", f"{gun}:3.0", "--no-publish")

    assert refused.code == 3
    assert refused.out == ""
    [message] = [line for line in error_lines(refused.err) if not line.lstrip().startswith("hint:")]
    assert message.startswith(f"trustkit: cannot reach the registry {down}")
    assert "Traceback" not in refused.err
    assert staged.code == 3
    assert [(tag["tag"], tag["digest"]) for tag in signed_tags(host, gun)] == [("1.0", earlier)]
    assert_nothing_staged(publisher, gun)


class _NoHeadRegistry:
    """A plain-http registry on 127.0.0.1 that answers GET but not HEAD (405)."""

    def __init__(self, manifest: bytes, media_type: str) -> None:
        self.requests: list[tuple[str, str, str]] = []
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                registry.requests.append(("HEAD", self.path, self.headers.get("Accept", "")))
                self.send_response(405)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                registry.requests.append(("GET", self.path, self.headers.get("Accept", "")))
                self.send_response(200)
                self.send_header("Content-Type", media_type)
                self.send_header("Content-Length", str(len(manifest)))
                self.end_headers()
                self.wfile.write(manifest)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def test_sign_hashes_the_served_bytes_and_verify_falls_back_to_get_without_head(
    publisher: Trustkit, host: Trustkit, path: str
):
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []}).encode()
    fake = _NoHeadRegistry(manifest, OCI_MANIFEST)
    try:
        gun = f"{fake.host}/{path}"
        publisher("init", gun)
        signed = publisher("sign", f"{gun}:1.0")
        signing_requests = list(fake.requests)
        fake.requests.clear()
        verified = host("verify", "--json", f"{gun}:1.0")
    finally:
        fake.stop()

    assert signed.code == 0, signed.err
    expected = f"sha256:{hashlib.sha256(manifest).hexdigest()}"
    [tag] = signed_tags(host, gun)
    assert (tag["digest"], tag["size"], tag["media_type"]) == (
        expected,
        len(manifest),
        OCI_MANIFEST,
    )
    # Signing reads the manifest itself: the digest signed is that of the bytes served.
    assert [(method, url) for method, url, _ in signing_requests] == [
        ("GET", f"/v2/{path}/manifests/1.0"),
    ]
    # Verifying asks with HEAD first and falls back to GET when the registry has no HEAD.
    assert verified.code == 0, verified.err
    assert verified.json["registry_digest"] == expected
    assert [(method, url) for method, url, _ in fake.requests] == [
        ("HEAD", f"/v2/{path}/manifests/1.0"),
        ("GET", f"/v2/{path}/manifests/1.0"),
    ]
    for _, _, accept in signing_requests + fake.requests:
        assert [kind.strip() for kind in accept.split(",")] == MANIFEST_ACCEPT.split(", ")


def test_registry_that_needs_https_is_never_tried_over_plain_http(
    publisher: Trustkit, monkeypatch: pytest.MonkeyPatch
):
    """``registry.invalid`` is not loopback; its name is never resolved (no DNS here):
    the transport records each registry request and fails it as an unknown host would."""
    tried: list[str] = []
    real = httpx.HTTPTransport.handle_request

    def offline(self: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
        if request.url.host == "127.0.0.1":
            return real(self, request)
        tried.append(f"{request.method} {request.url}")
        raise httpx.ConnectError("[Errno -2] Name or service not known", request=request)

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", offline)

    refused = publisher("sign", "registry.invalid/team/app:1.0")
    tried_by_default = tried.copy()
    tried.clear()
    marked = publisher(
        "sign", "registry.invalid/team/app:1.0", "--insecure-registry", "registry.invalid"
    )

    assert refused.code == 3
    assert "cannot reach the registry registry.invalid" in refused.err
    assert "--insecure-registry registry.invalid" in refused.err
    assert tried_by_default == ["GET https://registry.invalid/v2/team/app/manifests/1.0"]
    # Only when the user marks it insecure does trustkit fall back to plain http.
    assert marked.code == 3
    assert tried == [
        "GET https://registry.invalid/v2/team/app/manifests/1.0",
        "GET http://registry.invalid/v2/team/app/manifests/1.0",
    ]


def test_resolve_never_asks_the_registry(publisher: Trustkit, host: Trustkit, path: str):
    down = f"127.0.0.1:{free_port()}"  # a registry that is not there
    gun = f"{down}/{path}"
    publisher("init", gun)
    digest = "sha256:" + "d" * 64
    publisher("sign", f"{gun}:1.0", "--digest", digest, "--size", "10")

    resolved = host.process("resolve", f"{gun}:1.0")
    verified = host("verify", f"{gun}:1.0")

    assert (resolved.code, resolved.out.strip()) == (0, f"{gun}@{digest}")
    assert "could not be compared" not in resolved.err
    # verify does ask, and says it could not compare; resolve stays silent about it.
    assert verified.code == 0
    assert "could not be compared with the registry" in verified.err


def test_size_or_media_type_without_a_digest_is_a_usage_error(publisher: Trustkit, path: str):
    gun = f"registry.test/{path}"

    sized = publisher("sign", f"{gun}:1.0", "--size", "10")
    typed = publisher("sign", f"{gun}:1.0", "--media-type", OCI_MANIFEST)

    assert (sized.code, typed.code) == (2, 2)
    assert "give --digest too" in sized.err
    assert_nothing_staged(publisher, gun)


def test_verify_refuses_a_broken_docker_config_instead_of_skipping_the_registry_check(
    publisher: Trustkit,
    host: Trustkit,
    token_registry: RegistryProcess,
    tmp_path: Path,
    path: str,
):
    gun = f"{token_registry.host}/{path}"
    push(build_image(tmp_path / "oci", "1.0", b"one"), token_registry, path, creds=CREDS)
    write_docker_config(publisher, {"auths": {token_registry.host: {"auth": basic_auth(*CREDS)}}})
    publisher("init", gun)
    assert publisher("sign", f"{gun}:1.0").code == 0
    broken = tmp_path / "broken-docker-config"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")

    # The registry asks for credentials; a config that cannot be read is the user's to fix,
    # not a reason to skip the comparison quietly.
    result = host("verify", f"{gun}:1.0", env={"DOCKER_CONFIG": str(broken)})

    assert result.code == 2
    assert "is not valid JSON" in result.err


def test_registry_clients_never_show_secrets_in_their_repr(tmp_path: Path):
    from client.docker_config import DockerConfig
    from client.registry import _Session

    config = DockerConfig(tmp_path / "config.json", {"auths": {"r.io": {"auth": "c2VjcmV0"}}})
    session = _Session(tokens={"repository:a:pull": "token-value"})

    assert "c2VjcmV0" not in repr(config)
    assert "token-value" not in repr(session)
