"""The ``trustkit`` command line: parses arguments, wires them to ``client`` and ``keys``,
and renders results. It holds no logic of its own.

One module per command group (``publishing``, ``verifying``, ``hosts``, ``agent``,
``migrating``, ``trust``, ``keys``, ``signers``, ``approving``), each with its
``add_parsers`` and its ``cmd_*`` handlers; ``options`` assembles the parser,
``context`` builds what a command works with, ``output`` prints, ``shapes`` declares
every ``--json`` document.

Exit codes: 0 ok, 1 refused (verification or server), 2 usage error,
3 server or network unreachable. ``--json`` prints one JSON document on stdout.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence

from trustkit.cli.context import Context
from trustkit.cli.options import COMMON_DEFAULTS, split_passthrough
from trustkit.cli.output import Output, for_terminal
from trustkit.cli.parser import build_parser
from trustkit.cli.shapes import ErrorJSON
from trustkit.errors import TrustkitError

__all__ = ["COMMON_DEFAULTS", "Context", "Output", "for_terminal", "main", "run"]


def _skip_the_command_line_of_httpx() -> None:
    """Heavy modules (httpx, tuf, securesystemslib, cryptography) are imported by the
    commands that use them, through Context, never at start: `trustkit --version` and
    `trustkit --help` load none of them. httpx imports its own command line (click,
    rich, pygments: up to ~40 ms of every command) whenever those are installed, and
    trustkit never runs it; a None entry in sys.modules makes that one import fail, and
    httpx then defines a stub in its place."""
    if "httpx" not in sys.modules:
        sys.modules["httpx._main"] = None  # type: ignore[assignment]


def main(argv: Sequence[str] | None = None, env: dict[str, str] | None = None) -> int:
    _skip_the_command_line_of_httpx()
    parser = build_parser()
    own, docker_args = split_passthrough(parser, sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(own)
    for name, default in COMMON_DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, default)
    if docker_args is not None:
        args.docker_args = docker_args
    out = Output(as_json=bool(args.json))
    ctx = Context(args, dict(os.environ) if env is None else env, out)
    try:
        code: int = args.handler(ctx)
        return code
    except TrustkitError as error:
        if out.as_json:
            refusal = ErrorJSON(error=error.code, message=error.message, hint=error.hint)
            print(json.dumps(refusal))
        print(f"trustkit: {error.diagnostics()}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("trustkit: interrupted; nothing was changed", file=sys.stderr)
        return 130


def run() -> None:
    sys.exit(main())
