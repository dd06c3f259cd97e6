"""The ``trustkit`` parser, assembled from every command group's ``add_parsers`` over
the shared options of :mod:`trustkit.cli.options` (groups import options, never this
module, so the grammar has no import cycle)."""

from __future__ import annotations

import argparse
import sys

from trustkit import __version__
from trustkit.cli import (
    agent,
    approving,
    changefeed,
    hosts,
    keys,
    migrating,
    publishing,
    signers,
    trust,
    verifying,
)
from trustkit.cli.context import Context
from trustkit.cli.options import (
    EXIT_CODES,
    PASSTHROUGH_COMMANDS,
    Commands,
    common_options,
    signing_options,
)
from trustkit.errors import EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The ``trustkit`` parser: every command group's sub-commands."""
    common, signing = common_options(), signing_options()
    parser = argparse.ArgumentParser(
        prog="trustkit",
        description="Sign container image tags and verify them before they run.",
        epilog=EXIT_CODES,
        parents=[common, signing],
    )
    # Options of every command: set where missing after parsing (see main), because a
    # parser default would also reach the sub-commands sharing these option objects and
    # overwrite a value given before the command.
    parser.set_defaults(
        insecure_registry=None,
        registry_ca=None,
        via=None,
        policy=None,
        signer=None,
        dest=None,
        offline=False,
        docker_args=[],
    )
    parser.add_argument("--version", action="version", version=f"trustkit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    groups = Commands(commands, common, signing)
    for group in (publishing, verifying, hosts, agent, migrating, trust, keys, approving, signers):
        group.add_parsers(groups)
    changefeed.add_parsers(groups)
    _add_completion(groups)
    groups.in_listing_order()
    return parser


def _add_completion(commands: Commands) -> None:
    from trustkit.completion import SHELLS

    sub = commands.subparsers.add_parser(
        "completion",
        help="print the shell completion script for bash, zsh or fish",
        description="Print trustkit's completion script. Enable it with, in ~/.bashrc: "
        "source <(trustkit completion bash); in ~/.zshrc: source <(trustkit completion "
        "zsh); fish: trustkit completion fish > ~/.config/fish/completions/trustkit.fish",
    )
    sub.add_argument("shell", choices=SHELLS, help="the shell to complete in")
    sub.set_defaults(handler=_cmd_completion)


def _cmd_completion(ctx: Context) -> int:
    from trustkit.completion import script

    sys.stdout.write(script(build_parser(), ctx.args.shell, PASSTHROUGH_COMMANDS))
    return EXIT_OK
