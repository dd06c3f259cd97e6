"""The ``trustkit`` parser, assembled from every command group's ``add_parsers`` over
the shared options of :mod:`trustkit.cli.options` (groups import options, never this
module, so the grammar has no import cycle)."""

from __future__ import annotations

import argparse

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
from trustkit.cli.options import (
    EXIT_CODES,
    Commands,
    common_options,
    signing_options,
)


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
    groups.in_listing_order()
    return parser
