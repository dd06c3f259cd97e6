"""Write a small OCI image layout by hand, byte by byte, with the standard library only.

The demo pushes such an image with skopeo as a CD job would push a build, and the tests
build theirs the same way, so every digest and size is known before the push. Nothing
here needs trustkit or its test tools: a fresh clone can run it before any install.
Run as a script: ``python scripts/oci_layout.py DIR TAG CONTENT`` prints the digest.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_ACCEPT = ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST])

REF_NAME = "org.opencontainers.image.ref.name"


@dataclass(frozen=True)
class BuiltImage:
    """What ``build_image`` wrote: the tagged top-level object of an OCI layout.

    ``digest`` and ``size`` are of the exact manifest (or index) bytes, so they are what
    a registry must answer once the image is pushed with digests preserved.
    """

    layout: Path
    tag: str
    digest: str
    size: int
    media_type: str
    platform_digests: dict[str, str] = field(default_factory=dict)


def _canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def _write_blob(layout: Path, data: bytes) -> str:
    """Store ``data`` content-addressed under blobs/sha256 and return its digest."""
    hex_digest = hashlib.sha256(data).hexdigest()
    blob = layout / "blobs" / "sha256" / hex_digest
    blob.parent.mkdir(parents=True, exist_ok=True)
    if not blob.exists():
        blob.write_bytes(data)
    return f"sha256:{hex_digest}"


def _descriptor(media_type: str, digest: str, size: int) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest, "size": size}


def _layer(content: bytes) -> tuple[bytes, bytes]:
    """A one-file tar and its gzip, both deterministic (no times, owners or names)."""
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("content.txt")
        info.size = len(content)
        info.mode = 0o644
        info.mtime = 0
        tar.addfile(info, io.BytesIO(content))
    raw = tar_bytes.getvalue()
    return raw, gzip.compress(raw, mtime=0)


def _write_manifest(layout: Path, content: bytes, os_name: str, architecture: str) -> bytes:
    """Layer + config + image manifest for one platform; returns the manifest bytes."""
    raw_tar, gz_tar = _layer(content)
    layer_digest = _write_blob(layout, gz_tar)
    config = _canonical(
        {
            "architecture": architecture,
            "os": os_name,
            "config": {},
            "rootfs": {
                "type": "layers",
                "diff_ids": [f"sha256:{hashlib.sha256(raw_tar).hexdigest()}"],
            },
        }
    )
    config_digest = _write_blob(layout, config)
    manifest = _canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": _descriptor(OCI_CONFIG, config_digest, len(config)),
            "layers": [_descriptor(OCI_LAYER, layer_digest, len(gz_tar))],
        }
    )
    _write_blob(layout, manifest)
    return manifest


def _tag_in_layout(layout: Path, tag: str, descriptor: dict[str, Any]) -> None:
    """Point ``tag`` in the layout's index.json at ``descriptor``, keeping other tags."""
    index_path = layout / "index.json"
    index: dict[str, Any] = (
        json.loads(index_path.read_text())
        if index_path.exists()
        else {"schemaVersion": 2, "manifests": []}
    )
    index["manifests"] = [
        entry for entry in index["manifests"] if entry.get("annotations", {}).get(REF_NAME) != tag
    ] + [{**descriptor, "annotations": {REF_NAME: tag}}]
    index_path.write_text(json.dumps(index, indent=2))


def build_image(
    directory: Path,
    tag: str,
    content: bytes,
    *,
    platforms: list[tuple[str, str]] | None = None,
) -> BuiltImage:
    """Write (or add ``tag`` to) an OCI image layout in ``directory``, without docker.

    With ``platforms`` the tag names an OCI image index with one manifest per
    platform; each platform's layer holds different bytes so their digests differ.
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    if platforms is None:
        manifest = _write_manifest(directory, content, "linux", "amd64")
        digest = f"sha256:{hashlib.sha256(manifest).hexdigest()}"
        _tag_in_layout(directory, tag, _descriptor(OCI_MANIFEST, digest, len(manifest)))
        return BuiltImage(directory, tag, digest, len(manifest), OCI_MANIFEST)

    entries: list[dict[str, Any]] = []
    platform_digests: dict[str, str] = {}
    for os_name, architecture in platforms:
        platform_content = content + f" ({os_name}/{architecture})".encode()
        manifest = _write_manifest(directory, platform_content, os_name, architecture)
        digest = f"sha256:{hashlib.sha256(manifest).hexdigest()}"
        platform_digests[f"{os_name}/{architecture}"] = digest
        entries.append(
            {
                **_descriptor(OCI_MANIFEST, digest, len(manifest)),
                "platform": {"architecture": architecture, "os": os_name},
            }
        )
    index = _canonical({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    digest = _write_blob(directory, index)
    _tag_in_layout(directory, tag, _descriptor(OCI_INDEX, digest, len(index)))
    return BuiltImage(directory, tag, digest, len(index), OCI_INDEX, platform_digests)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: oci_layout.py DIR TAG CONTENT", file=sys.stderr)
        return 2
    image = build_image(Path(argv[0]), argv[1], argv[2].encode())
    print(image.digest)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
