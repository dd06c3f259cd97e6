"""Offline bundles: everything a host needs to verify a repository, in one tar file.

``trustkit export REPO -o bundle.tar`` writes every root version from 1 on (so a host
anchored at any earlier root walks the chain), and the timestamp, snapshot, targets
and signer roles this machine has just verified, named as the server names them.
``trustkit verify --bundle bundle.tar IMAGE:TAG`` runs the normal TUF client workflow
with a fetcher that reads the tar instead of the network: signatures, thresholds,
expiry and rollback against the versions this host saw last all apply.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import json
import lzma
import tarfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

from tuf.api import exceptions
from tuf.ngclient import FetcherInterface

from client.verify import UPDATER_CONFIG, TrustedRepository
from keys.files import write_private_file
from trustkit.bins import MAX_BINS
from trustkit.errors import UsageError

__all__ = ["MANIFEST", "BundleFetcher", "read_bundle", "write_bundle"]

MANIFEST = "trustkit-bundle.json"
MAX_BUNDLE_BYTES = 512 * 1024 * 1024  # the file, and all it holds decompressed
MAX_CONTENT_BYTES = MAX_BUNDLE_BYTES
MAX_MEMBER_BYTES = UPDATER_CONFIG.targets_max_length  # the largest metadata file a host takes
MAX_MEMBERS = 4 * MAX_BINS  # every bin, and room for every other role and root
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
    """The metadata files of a bundle for ``gun``, by name; nothing in it is trusted yet.

    The tar file (plain, gzip, bzip2 or xz) is read as a stream, and every size is
    checked before what it sizes is read: the file, each member and all of them
    together, decompressed. A decompression bomb is refused after at most
    ``MAX_CONTENT_BYTES`` of it were read, a huge member before any of it is."""
    try:
        size = path.stat().st_size
        if size > MAX_BUNDLE_BYTES:
            raise UsageError(f"{path} is {size} bytes; a bundle is at most {MAX_BUNDLE_BYTES}")
        with _decompressed(path) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            files, manifest = _members(path, tar)
    except _TooLarge as error:
        raise UsageError(
            f"refusing the bundle {path}: {error}",
            hint="a bundle written by trustkit export is far smaller: this one is broken "
            "or hostile (a decompression bomb)",
        ) from None
    except (
        OSError,
        EOFError,
        tarfile.TarError,
        ValueError,
        lzma.LZMAError,
        RecursionError,
    ) as error:  # a manifest nested too deep to read is as unreadable as a broken one
        raise UsageError(
            f"cannot read the bundle {path}: {error}",
            hint="give a file written by: trustkit export REPO -o FILE",
        ) from None
    if manifest.get("repository") != gun:
        raise UsageError(
            f"{path} is a bundle of {manifest.get('repository') or 'nothing known'}, not {gun}"
        )
    return files


def _members(path: Path, tar: tarfile.TarFile) -> tuple[dict[str, bytes], dict[str, object]]:
    files: dict[str, bytes] = {}
    manifest: dict[str, object] = {}
    for count, member in enumerate(tar, start=1):
        if count > MAX_MEMBERS:
            raise _TooLarge(f"it holds more than {MAX_MEMBERS} files")
        if not member.isfile():
            continue
        if member.size > MAX_MEMBER_BYTES:
            raise _TooLarge(
                f"{member.name!r} in it is {member.size} bytes; a metadata file is at most "
                f"{MAX_MEMBER_BYTES}"
            )
        extracted = tar.extractfile(member)
        data = extracted.read(member.size) if extracted is not None else b""
        if member.name == MANIFEST:
            manifest = json.loads(data)
        elif member.name.startswith(PREFIX) and "/" not in member.name[len(PREFIX) :]:
            files[member.name[len(PREFIX) :]] = data
    return files, manifest


class _TooLarge(Exception):
    pass


class _Bounded(io.RawIOBase):
    """A decompressed stream that fails once more than ``limit`` bytes came out of it."""

    def __init__(self, inner: io.BufferedIOBase | BinaryIO, limit: int) -> None:
        self._inner = inner
        self._left = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        # One byte more than is left, to tell "exactly at the limit" from "beyond it".
        data = self._inner.read(min(len(view), self._left + 1))
        if len(data) > self._left:
            raise _TooLarge(f"it holds more than {MAX_CONTENT_BYTES} bytes, decompressed")
        self._left -= len(data)
        view[: len(data)] = data
        return len(data)


@contextmanager
def _decompressed(path: Path) -> Iterator[io.BufferedReader]:
    with contextlib.ExitStack() as stack:
        raw = stack.enter_context(path.open("rb"))
        magic = raw.read(6)
        raw.seek(0)
        inner: io.BufferedIOBase | BinaryIO = raw
        if magic.startswith(b"\x1f\x8b"):
            inner = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
        elif magic.startswith(b"BZh"):
            inner = stack.enter_context(bz2.BZ2File(raw, mode="rb"))
        elif magic.startswith(b"\xfd7zXZ\x00"):
            inner = stack.enter_context(lzma.LZMAFile(raw, mode="rb"))
        yield stack.enter_context(io.BufferedReader(_Bounded(inner, MAX_CONTENT_BYTES)))


class BundleFetcher(FetcherInterface):
    """python-tuf's fetcher over a bundle's files: a name it lacks is a 404."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self._files = files

    def _fetch(self, url: str) -> Iterator[bytes]:
        name = url.rsplit("/", 1)[-1]
        if name not in self._files:
            raise exceptions.DownloadHTTPError(f"the bundle holds no {name}", 404)
        return iter([self._files[name]])
