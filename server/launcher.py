"""The ``trustkit-server`` command's entry point: says how to install the server's stack
when it is missing, instead of failing with an import error.

App hosts install trustkit without the ``server`` extra (they only verify), yet every
install has the command. This module imports nothing of the server until the check passed.
"""

from __future__ import annotations

import importlib.util
import sys

__all__ = ["SERVER_PACKAGES", "run"]

SERVER_PACKAGES = ("fastapi", "uvicorn", "multipart", "psycopg")
INSTALL_HINT = "pip install 'trustkit-tuf[server]' (or pipx install 'trustkit-tuf[server]')"


def missing_packages() -> list[str]:
    return [name for name in SERVER_PACKAGES if importlib.util.find_spec(name) is None]


def run() -> None:
    missing = missing_packages()
    if missing:
        print(
            f"trustkit-server: this install has no server stack ({', '.join(missing)} "
            f"missing)\n  hint: {INSTALL_HINT}",
            file=sys.stderr,
        )
        sys.exit(2)
    from server.main import run as serve

    serve()
