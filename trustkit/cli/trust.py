"""The roots this host trusts (trust pin, trust forget), and deleting a repository."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trustkit.cli.context import Context, read_file
from trustkit.cli.options import Commands
from trustkit.errors import EXIT_OK, EXIT_USAGE, UsageError

if TYPE_CHECKING:
    pass


def cmd_trust_pin(ctx: Context) -> int:
    from trustkit.names import parse_gun

    gun = parse_gun(ctx.args.repository)
    root_bytes = read_file(ctx.args.root_file)
    with ctx.session() as (_, verifier):
        # Into the trust store of the server the host policy routes it to, if any.
        root = ctx.gate(verifier).verifier_for(gun).pin(gun, root_bytes)
    keyids = root.roles["root"].keyids
    ctx.out.result(
        f"pinned root v{root.version} of {gun} (root keys: {', '.join(k[:12] for k in keyids)})",
        {"repository": gun, "root_version": root.version, "root_keys": keyids},
    )
    return EXIT_OK


def cmd_trust_forget(ctx: Context) -> int:
    from trustkit.names import parse_gun

    gun = parse_gun(ctx.args.repository)
    with ctx.session() as (_, verifier):
        existed = ctx.gate(verifier).verifier_for(gun).forget(gun)
    ctx.out.result(
        f"forgot the trusted root of {gun}" if existed else f"no trusted root for {gun}",
        {"repository": gun, "forgotten": existed},
    )
    return EXIT_OK


def cmd_delete(ctx: Context) -> int:
    from trustkit.names import parse_gun

    gun = parse_gun(ctx.args.repository)
    if not ctx.args.yes:
        raise UsageError(
            f"deleting {gun} removes all its trust data from the server",
            hint=f"confirm with: trustkit delete {gun} --yes",
        )
    with ctx.session() as (api, verifier):
        api.delete(gun)
        verifier.forget(gun)
    ctx.out.result(f"deleted {gun} from the server", {"repository": gun, "deleted": True})
    return EXIT_OK


def add_parsers(commands: Commands) -> None:
    """The sub-commands of this group."""
    add = commands.add
    common = commands.common
    trust = add("trust", lambda ctx: EXIT_USAGE, "manage the roots this host trusts")
    trust_commands = trust.add_subparsers(dest="trust_command", metavar="ACTION", required=True)
    pin = trust_commands.add_parser("pin", parents=[common], help="trust this root for REPO")
    pin.set_defaults(handler=cmd_trust_pin)
    pin.add_argument("repository", help="the repository, e.g. registry.example.com/team/app")
    pin.add_argument(
        "root_file", metavar="ROOT_JSON", help="the repository's root.json, checked out of band"
    )
    forget = trust_commands.add_parser(
        "forget", parents=[common], help="forget the trusted root (next use trusts anew)"
    )
    forget.set_defaults(handler=cmd_trust_forget)
    forget.add_argument("repository", help="the repository, e.g. registry.example.com/team/app")

    sub = add("delete", cmd_delete, "delete a repository's trust data from the server", signs=False)
    sub.add_argument("repository", help="the repository, e.g. registry.example.com/team/app")
    sub.add_argument("--yes", action="store_true", help="confirm")
