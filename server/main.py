"""``trustkit-server``: start the metadata server on uvicorn."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from server.settings import ServerSettings
from trustkit import __version__
from trustkit.errors import TrustkitError
from trustkit.expiry import ExpiryPolicy

__all__ = ["main", "run"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trustkit-server",
        description="The trustkit metadata server (embedded SQLite by default).",
    )
    parser.add_argument("--version", action="version", version=f"trustkit-server {__version__}")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=4443, help="port to listen on (4443)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("TRUSTKIT_SERVER_DATA", "~/.trustkit-server")),
        help="where the SQLite database lives (~/.trustkit-server, env TRUSTKIT_SERVER_DATA)",
    )
    parser.add_argument(
        "--master-key-file",
        type=Path,
        help="32-byte key that seals online keys; created 0600 if absent "
        "(default DATA_DIR/master.key; e.g. /run/secrets/trustkit_master_key)",
    )
    parser.add_argument(
        "--expiry",
        action="append",
        default=[],
        metavar="ROLE=DURATION",
        help="lifetime of a role's metadata, e.g. timestamp=14d (repeatable; roles: root, "
        "targets, delegation, snapshot, timestamp; pending=7d is how long an upload waits "
        "for co-signers)",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    return parser


def settings_from_args(args: argparse.Namespace) -> ServerSettings:
    data_dir: Path = args.data_dir.expanduser()
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return ServerSettings(
        data_dir=data_dir,
        master_key_file=(args.master_key_file or data_dir / "master.key").expanduser(),
        expiry=ExpiryPolicy.from_settings(args.expiry),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    try:
        import uvicorn

        from server.app import create_app

        app = create_app(settings_from_args(args))
    except TrustkitError as error:
        print(f"trustkit-server: {error.diagnostics()}", file=sys.stderr)
        return error.exit_code
    except OSError as error:
        print(f"trustkit-server: {error}", file=sys.stderr)
        return 2
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def run() -> None:
    sys.exit(main())
