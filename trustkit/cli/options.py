"""The command line's grammar: the option groups commands share, the exit codes, and
the split of a passthrough command's arguments from Docker's. The parser itself is
assembled in :mod:`trustkit.cli.parser` from every command group's ``add_parsers``."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trustkit.cli.context import Context

__all__ = [
    "BUNDLE_HELP",
    "COMMAND_ORDER",
    "COMMON_DEFAULTS",
    "EXIT_CODES",
    "PASSTHROUGH_COMMANDS",
    "SIGNER_HELP",
    "Commands",
    "common_options",
    "signing_options",
    "split_passthrough",
    "verbosity_options",
]

EXIT_CODES = (
    "exit codes: 0 ok, 1 refused (verification, or by the server), 2 usage "
    "error, 3 server or network unreachable"
)
COMMON_DEFAULTS: dict[str, Any] = {
    "server": None,
    "json": False,
    "passphrase_file": None,
    "expiry": None,
    "token_file": None,
    "ca_file": None,
    "mirror": None,
    "no_agent": False,
    "verbose": 0,
    "quiet": False,
}
# Commands whose arguments after trustkit's own options belong to Docker, untouched.
PASSTHROUGH_COMMANDS = ("pull", "run", "create", "docker")
# The commands as `trustkit --help` lists them (the groups add theirs in any order).
COMMAND_ORDER = (
    *("init", "bins", "sign", "sign-file", "revoke", "publish", "reset"),
    *("verify", "resolve", "compose", "agent", "migrate", "export", "verify-file"),
    *("inspect", "trust", "key", "approve", "submit", "signer", "status", "refresh"),
    *("delete", "changefeed", "pull", "run", "create", "docker", "completion"),
)
BUNDLE_HELP = (
    "verify from this bundle (trustkit export) with no network: expiry, thresholds and "
    "rollback still checked against what this host saw last"
)
SIGNER_HELP = (
    "sign as this role: targets or a signer (default: targets if its key is here, else "
    "the signer whose key is here and whose paths cover the tag)"
)


def verbosity_options(parser: argparse.ArgumentParser) -> None:
    """``-v`` and ``-q``: how much goes to standard error besides errors. Not offered
    right after a passthrough command, whose ``-q``/``--quiet`` is Docker's (``trustkit
    -q pull IMAGE`` is trustkit's, ``trustkit pull -q IMAGE`` Docker's)."""
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="say more on standard error: the server or mirror asked, every request and "
        "its time, the roles verified and their versions, agent or in-process decision",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="only errors, warnings and the requested output: no notes, no progress bar",
    )


def common_options(*, verbosity: bool = True) -> argparse.ArgumentParser:
    """Options of every command (``-v``/``-q`` too, unless not ``verbosity``)."""
    common = argparse.ArgumentParser(add_help=False)
    if verbosity:
        verbosity_options(common)
    common.add_argument(
        "--server",
        default=argparse.SUPPRESS,
        help="metadata server URL (env TRUSTKIT_SERVER or DOCKER_CONTENT_TRUST_SERVER, "
        "default http://127.0.0.1:4443)",
    )
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for scripts"
    )
    common.add_argument(
        "--token-file",
        type=Path,
        default=argparse.SUPPRESS,
        help="the metadata server's access token, from this file (else env TRUSTKIT_TOKEN)",
    )
    common.add_argument(
        "--mirror",
        default=argparse.SUPPRESS,
        metavar="URL",
        help="read metadata from this static mirror or CDN (trustkit-server export) instead "
        "of the server (env TRUSTKIT_MIRROR); writes still go to the server",
    )
    common.add_argument(
        "--no-agent",
        action="store_true",
        default=argparse.SUPPRESS,
        help="decide here, not through the host's trustkit agent (as TRUSTKIT_AGENT=off)",
    )
    common.add_argument(
        "--ca-file",
        type=Path,
        default=argparse.SUPPRESS,
        help="CA certificates for the metadata server's TLS (env TRUSTKIT_CA_FILE)",
    )
    return common


def signing_options() -> argparse.ArgumentParser:
    """Options of the commands that sign: not offered where nothing is signed."""
    signing = argparse.ArgumentParser(add_help=False)
    signing.add_argument(
        "--passphrase-file",
        type=Path,
        default=argparse.SUPPRESS,
        help="read key passphrases from this file (e.g. /run/secrets/…)",
    )
    signing.add_argument(
        "--expiry",
        action="append",
        default=argparse.SUPPRESS,
        metavar="ROLE=DURATION",
        help="lifetime of metadata you sign, e.g. targets=1y (roles: root, targets, "
        "delegation; defaults 10y, 3y, 3y)",
    )
    return signing


def _registry_options() -> argparse.ArgumentParser:
    """Options of the commands that ask a registry."""
    registry = argparse.ArgumentParser(add_help=False)
    registry.add_argument(
        "--insecure-registry",
        action="append",
        default=argparse.SUPPRESS,
        metavar="HOST[:PORT]",
        help="allow plain http to this registry (env TRUSTKIT_INSECURE_REGISTRIES, "
        "comma-separated; loopback registries always may)",
    )
    registry.add_argument(
        "--registry-ca",
        default=argparse.SUPPRESS,
        metavar="FILE",
        help="PEM CA certificates that sign the registry's TLS certificate "
        "(env TRUSTKIT_REGISTRY_CA)",
    )
    return registry


def _policy_option() -> argparse.ArgumentParser:
    """The host policy option of the commands that decide by it."""
    policy = argparse.ArgumentParser(add_help=False)
    policy.add_argument(
        "--policy",
        default=argparse.SUPPRESS,
        metavar="FILE",
        help="host policy (env TRUSTKIT_POLICY, default /etc/trustkit/policy.toml)",
    )
    return policy


def _via_option(policy: argparse.ArgumentParser, tools: list[str]) -> argparse.ArgumentParser:
    """The policy and the tool to hand a verified image to: pull may hand images to
    skopeo too; run and create need a tool that runs them."""
    parent = argparse.ArgumentParser(add_help=False, parents=[policy])
    parent.add_argument(
        "--via",
        choices=tools,
        default=argparse.SUPPRESS,
        help="the tool to hand the verified image to (default docker; TRUSTKIT_DOCKER "
        "names the docker binary)",
    )
    return parent


@dataclass
class Commands:
    """The top-level parser's sub-commands, and the option groups they share."""

    subparsers: argparse._SubParsersAction[argparse.ArgumentParser]
    common: argparse.ArgumentParser
    signing: argparse.ArgumentParser
    registry: argparse.ArgumentParser = field(default_factory=_registry_options)
    policy: argparse.ArgumentParser = field(default_factory=_policy_option)
    passthrough_common: argparse.ArgumentParser = field(
        default_factory=lambda: common_options(verbosity=False)
    )

    def __post_init__(self) -> None:
        self.gate = _via_option(self.policy, ["docker", "podman", "skopeo"])
        self.runs = _via_option(self.policy, ["docker", "podman"])

    def add(
        self,
        name: str,
        handler: Callable[[Context], int],
        text: str,
        parents: Sequence[argparse.ArgumentParser] = (),
        epilog: str | None = None,
        *,
        signs: bool = True,
    ) -> argparse.ArgumentParser:
        """A sub-command with the common options (and the signing ones if it ``signs``)."""
        common = self.passthrough_common if name in PASSTHROUGH_COMMANDS else self.common
        sub = self.subparsers.add_parser(
            name,
            parents=[common, *([self.signing] if signs else []), *parents],
            help=text,
            description=text,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.set_defaults(handler=handler)
        return sub

    def in_listing_order(self) -> None:
        """List the commands (in help and in a usage error) as ``COMMAND_ORDER`` does."""
        choices = self.subparsers.choices
        assert sorted(choices) == sorted(COMMAND_ORDER), "COMMAND_ORDER lists every command"
        actions = {action.dest: action for action in self.subparsers._choices_actions}
        self.subparsers.choices = {name: choices[name] for name in COMMAND_ORDER}
        self.subparsers._choices_actions = [actions[name] for name in COMMAND_ORDER]


def split_passthrough(
    parser: argparse.ArgumentParser, argv: Sequence[str]
) -> tuple[list[str], list[str] | None]:
    """Split ``trustkit [options] run [trustkit options] DOCKER-ARGS…`` in two.

    argparse would read Docker's options as its own; so the arguments of a passthrough
    command, after any trustkit options right behind the command, are kept aside.
    """
    index = 0
    while index < len(argv) and argv[index].startswith("-"):
        action = parser._option_string_actions.get(argv[index].split("=", 1)[0])
        takes_value = action is not None and action.nargs != 0 and "=" not in argv[index]
        index += 2 if takes_value else 1
    if index >= len(argv) or argv[index] not in PASSTHROUGH_COMMANDS:
        return list(argv), None
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    command = argv[index]
    own = subparsers.choices[command]._option_string_actions
    end = index + 1
    while end < len(argv):
        name = argv[end].split("=", 1)[0]
        ours = name in own and name.startswith("--")
        if not ours or (command == "docker" and name == "--help"):
            break  # the rest is Docker's (its -h is --host or --hostname)
        end += 2 if own[name].nargs != 0 and "=" not in argv[end] else 1
    return list(argv[:end]), list(argv[end:])
