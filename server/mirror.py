"""A static mirror of the server's metadata, for a CDN or object storage.

The files sit where the server serves them (``v2/{gun}/_trust/tuf/{N}.{role}.json``
and ``{role}.json`` for the newest), so hosts verify from the mirror exactly as from the
server (``trustkit --mirror URL``). Versioned files never change; the newest ones are
rewritten, the timestamp last, so a copy taken mid-export never names a file it lacks.
The timestamp still expires: export again more often than half its lifetime.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

from server.publishing import MetadataService

__all__ = ["export_mirror"]


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_bytes() == data:
        return
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    Path(temporary).chmod(0o644)
    Path(temporary).replace(path)


def export_mirror(service: MetadataService, directory: Path, guns: Iterable[str]) -> int:
    """Write every version of every role of ``guns``; returns the files written or kept."""
    count = 0
    for gun in guns:
        service.refresh(gun)  # a timestamp renewed now lives longest on the mirror
        base = directory / "v2" / Path(*gun.split("/")) / "_trust" / "tuf"
        newest: dict[str, tuple[int, bytes]] = {}
        for stored in service.storage.all_versions(gun):
            name = quote(stored.role, safe="")
            _write(base / f"{stored.version}.{name}.json", stored.data)
            count += 1
            if stored.version >= newest.get(name, (0, b""))[0]:
                newest[name] = (stored.version, stored.data)
        for name in sorted(newest, key=lambda role: role == "timestamp"):
            _write(base / f"{name}.json", newest[name][1])
            count += 1
    return count
