"""The ``trustkit`` command line: parses arguments, wires them to ``client`` and ``keys``,
and renders results. It holds no logic of its own.

One module per command group (``publishing``, ``verifying``, ``hosts``, ``agent``,
``migrating``, ``trust``, ``keys``, ``signers``, ``approving``), each with its
``add_parsers`` and its ``cmd_*`` handlers; ``options`` assembles the parser,
``context`` builds what a command works with, ``output`` prints, ``shapes`` declares
every ``--json`` document.

Exit codes: 0 ok, 1 refused (verification or server), 2 usage error,
3 server or network unreachable. ``--json`` prints one JSON document on stdout;
``-q``/``-v`` turn standard error's notes down or its diagnostics up (``output``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence

from trustkit.cli.context import Context
from trustkit.cli.options import COMMON_DEFAULTS, split_passthrough
from trustkit.cli.output import NORMAL, QUIET, VERBOSE, Output, for_terminal
from trustkit.cli.parser import build_parser
from trustkit.cli.shapes import ErrorJSON
from trustkit.errors import EXIT_USAGE, TrustkitError

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
    out = Output(as_json=bool(args.json), verbosity=_verbosity(args))
    if args.quiet and args.verbose:
        out.error("trustkit: -q/--quiet and -v/--verbose contradict each other; give one")
        return EXIT_USAGE
    ctx = Context(args, dict(os.environ) if env is None else env, out)
    started = time.monotonic()
    try:
        code: int = args.handler(ctx)
        return code
    except TrustkitError as error:
        if out.as_json:
            refusal = ErrorJSON(error=error.code, message=error.message, hint=error.hint)
            print(json.dumps(refusal))
        out.error(f"trustkit: {error.diagnostics()}")
        return error.exit_code
    except KeyboardInterrupt:
        out.error("trustkit: interrupted; nothing was changed")
        return 130
    finally:
        ctx.report_decision()
        out.debug(f"{args.command} took {time.monotonic() - started:.3f} s")


def _verbosity(args: object) -> int:
    if getattr(args, "quiet", False):
        return QUIET
    return VERBOSE if getattr(args, "verbose", 0) else NORMAL


def run() -> None:
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (``trustkit inspect … | head``): stop quietly, as other
        # tools do, with the shell's code for SIGPIPE; no traceback, and no second
        # error when Python flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 141
    sys.exit(code)
