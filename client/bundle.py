"""Offline bundles: everything a host needs to verify a repository, in one tar file.

``trustkit export REPO -o bundle.tar`` writes every root version from 1 on (so a host
anchored at any earlier root walks the chain), and the timestamp, snapshot, targets
and signer roles this machine has just verified, named as the server names them.
``trustkit verify --bundle bundle.tar IMAGE:TAG`` runs the normal TUF client workflow
with a fetcher that reads the tar instead of the network: signatures, thresholds,
expiry and rollback against the versions this host saw last all apply.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from tuf.api import exceptions
from tuf.ngclient import FetcherInterface

from client.verify import TrustedRepository
from keys.files import write_private_file
from trustkit.errors import UsageError

__all__ = ["MANIFEST", "BundleFetcher", "read_bundle", "write_bundle"]

MANIFEST = "trustkit-bundle.json"
MAX_BUNDLE_BYTES = 512 * 1024 * 1024
PREFIX = "metadata/"


def write_bundle(
    path: Path,
    repository: TrustedRepository,
    trust_dir: Path,
    fetch_root: Callable[[int], bytes],
) -> dict[str, int]:
    """Write the bundle of a repository this machine has just verified (its metadata is
    in ``trust_dir``); ``fetch_root(n)`` gives root version n. Returns file -> size."""
    root_version = repository.root.version
    members: dict[str, bytes] = {
        f"{n}.root.json": fetch_root(n) for n in range(1, root_version + 1)
    }
    members["timestamp.json"] = (trust_dir / "timestamp.json").read_bytes()
    versions = {status.role: status.version for status in repository.roles}
    for role in ("snapshot", "targets", *repository.delegated):
        name = quote(role, safe="")
        members[f"{versions[role]}.{name}.json"] = (trust_dir / f"{name}.json").read_bytes()
    manifest = {
        "repository": repository.gun,
        "created": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "versions": versions,
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in [(MANIFEST, json.dumps(manifest, indent=2).encode())] + [
            (PREFIX + name, data) for name, data in sorted(members.items())
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    write_private_file(path, buffer.getvalue())
    return {name: len(data) for name, data in members.items()}


def read_bundle(path: Path, gun: str) -> dict[str, bytes]:
    """The metadata files of a bundle for ``gun``, by name; nothing in it is trusted yet."""
    try:
        size = path.stat().st_size
        if size > MAX_BUNDLE_BYTES:
            raise UsageError(f"{path} is {size} bytes; a bundle is at most {MAX_BUNDLE_BYTES}")
        with tarfile.open(path, mode="r:*") as tar:
            files: dict[str, bytes] = {}
            manifest: dict[str, object] = {}
            for member in tar.getmembers():
                if not member.isfile():
                    continue
                extracted = tar.extractfile(member)
                data = extracted.read() if extracted is not None else b""
                if member.name == MANIFEST:
                    manifest = json.loads(data)
                elif member.name.startswith(PREFIX) and "/" not in member.name[len(PREFIX) :]:
                    files[member.name[len(PREFIX) :]] = data
    except (OSError, tarfile.TarError, ValueError) as error:
        raise UsageError(
            f"cannot read the bundle {path}: {error}",
            hint="give a file written by: trustkit export REPO -o FILE",
        ) from None
    if manifest.get("repository") != gun:
        raise UsageError(
            f"{path} is a bundle of {manifest.get('repository') or 'nothing known'}, not {gun}"
        )
    return files


class BundleFetcher(FetcherInterface):
    """python-tuf's fetcher over a bundle's files: a name it lacks is a 404."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self._files = files

    def _fetch(self, url: str) -> Iterator[bytes]:
        name = url.rsplit("/", 1)[-1]
        if name not in self._files:
            raise exceptions.DownloadHTTPError(f"the bundle holds no {name}", 404)
        return iter([self._files[name]])
