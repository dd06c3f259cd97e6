"""The registry harness itself: real pushes to a real registry serve the digests we built.

If these fail, every test built on ``tests.support.registry`` would be checking nothing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from scripts.oci_layout import OCI_INDEX, OCI_MANIFEST, build_image
from tests.support.registry import (
    RegistryProcess,
    TokenService,
    fetch_manifest,
    push,
    registry_digest,
)

CREDS = ("ci", "ci-secret")


def test_build_image_digest_is_of_the_exact_manifest_bytes(tmp_path: Path) -> None:
    image = build_image(tmp_path / "layout", "v1", b"hello")
    hex_digest = image.digest.removeprefix("sha256:")
    blob = (image.layout / "blobs" / "sha256" / hex_digest).read_bytes()
    assert hashlib.sha256(blob).hexdigest() == hex_digest
    assert image.size == len(blob)
    assert image.media_type == OCI_MANIFEST
    assert (image.layout / "oci-layout").exists()


def test_single_platform_image_is_served_with_the_built_digest(
    tmp_path: Path, registry: RegistryProcess
) -> None:
    image = build_image(tmp_path / "layout", "v1", b"single platform")
    push(image, registry, "harness/single")
    assert registry_digest(registry, "harness/single", "v1") == image.digest
    push(image, registry, "harness/single", "retagged")
    assert registry_digest(registry, "harness/single", "retagged") == image.digest


def test_two_platform_index_keeps_its_digest_and_its_platforms(
    tmp_path: Path, registry: RegistryProcess
) -> None:
    image = build_image(
        tmp_path / "layout", "multi", b"multi", platforms=[("linux", "amd64"), ("linux", "arm64")]
    )
    assert image.media_type == OCI_INDEX
    assert len(set(image.platform_digests.values())) == 2

    push(image, registry, "harness/multi")

    response = fetch_manifest(registry, "harness/multi", "multi")
    assert response.headers["Docker-Content-Digest"] == image.digest
    assert hashlib.sha256(response.content).hexdigest() == image.digest.removeprefix("sha256:")
    assert response.headers["Content-Type"] == OCI_INDEX
    for digest in image.platform_digests.values():
        platform = fetch_manifest(registry, "harness/multi", digest)
        assert platform.status_code == 200
        assert platform.headers["Docker-Content-Digest"] == digest


def test_token_registry_needs_the_token_flow(
    tmp_path: Path, token_registry: RegistryProcess
) -> None:
    tokens = token_registry.token_auth
    assert tokens is not None
    seen = len(tokens.requests)
    image = build_image(tmp_path / "layout", "v1", b"behind auth")

    with pytest.raises(RuntimeError, match="skopeo copy failed"):
        push(image, token_registry, "harness/private")
    with pytest.raises(RuntimeError, match="skopeo copy failed"):
        push(image, token_registry, "harness/private", creds=("ci", "wrong"))
    push(image, token_registry, "harness/private", creds=CREDS)

    assert registry_digest(token_registry, "harness/private", "v1", creds=CREDS) == image.digest
    assert fetch_manifest(token_registry, "harness/private", "v1").status_code == 401
    requests = tokens.requests[seen:]
    assert any(not request.credentials_valid for request in requests)
    assert any(
        request.credentials_valid and "repository:harness/private:pull,push" in request.scopes
        for request in requests
    )


def test_registry_also_accepts_tokens_naming_the_key_by_libtrust_kid(tmp_path: Path) -> None:
    tokens = TokenService(tmp_path, key_header="kid").start()
    process = RegistryProcess(tmp_path / "data", token_auth=tokens).start()
    try:
        image = build_image(tmp_path / "layout", "v1", b"kid")
        push(image, process, "harness/kid", creds=CREDS)
        assert registry_digest(process, "harness/kid", "v1", creds=CREDS) == image.digest
    finally:
        process.stop()
        tokens.stop()


def test_tls_registry_answers_over_https_verified_by_the_ca(
    tmp_path: Path, tls_registry: RegistryProcess
) -> None:
    assert tls_registry.url.startswith("https://127.0.0.1:")
    assert tls_registry.ca_path is not None
    response = httpx.get(f"{tls_registry.url}/v2/", verify=tls_registry.verify, timeout=5)
    assert response.status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{tls_registry.url}/v2/", timeout=5)  # not trusted without the CA

    image = build_image(tmp_path / "layout", "v1", b"over tls")
    push(image, tls_registry, "harness/tls")
    assert registry_digest(tls_registry, "harness/tls", "v1") == image.digest


def test_token_registry_refuses_a_token_signed_by_another_key(
    tmp_path: Path, token_registry: RegistryProcess
) -> None:
    """The registry really checks signatures: same issuer and service, wrong key → 401."""
    tokens = token_registry.token_auth
    assert tokens is not None
    forger = TokenService(tmp_path, service=tokens.service, issuer=tokens.issuer)
    url = f"{token_registry.url}/v2/harness/private/tags/list"
    genuine = tokens.issue(["repository:harness/private:pull"])
    # 200 once the repository exists, 404 before: either way the token was accepted
    assert httpx.get(url, headers={"Authorization": f"Bearer {genuine}"}).status_code in {200, 404}
    forged = forger.issue(["repository:harness/private:pull"])
    assert httpx.get(url, headers={"Authorization": f"Bearer {forged}"}).status_code == 401
