"""Private files and directories: created 0600 / 0700, written atomically."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["ensure_private_dir", "write_private_file"]


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` owner-only (0700), and every parent it has to create; tighten ``path``."""
    missing = [p for p in [path, *path.parents] if not p.exists()]
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)
        directory.chmod(0o700)
    path.chmod(0o700)
    return path


def write_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600, atomically: the file is whole or absent."""
    ensure_private_dir(path.parent)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        temp.replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
