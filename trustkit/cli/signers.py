"""``trustkit signer``: who may sign which tags (delegations)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trustkit.cli.context import Context, read_file, verified
from trustkit.cli.options import Commands
from trustkit.cli.output import result_or_pending
from trustkit.errors import EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    pass


def cmd_signer_add(ctx: Context) -> int:
    from keys.keystore import public_key_from_pem
    from trustkit.names import parse_gun

    gun = parse_gun(ctx.args.repository)
    keys = [public_key_from_pem(read_file(path), path) for path in ctx.args.key]
    paths = ctx.args.paths or ["*"]
    with ctx.session() as (api, verifier):
        change = ctx.lifecycle(api, verifier).add_signer(
            gun, ctx.args.name, keys, paths, ctx.args.threshold, ctx.args.terminating
        )
    note = "" if change.published else f"; its role appears once {change.name} first signs"
    result_or_pending(
        ctx.out,
        f"added the signer {change.name} to {gun} for {', '.join(paths)} "
        f"(targets v{change.targets_version}){note}",
        {
            "repository": gun,
            "signer": change.name,
            "keys": [key.keyid for key in keys],
            "paths": paths,
            "threshold": ctx.args.threshold,
            "targets_version": change.targets_version,
            "published": change.published,
        },
        change.pending,
    )
    return EXIT_OK


def cmd_signer_remove(ctx: Context) -> int:
    from trustkit.names import parse_gun

    gun = parse_gun(ctx.args.repository)
    with ctx.session() as (api, verifier):
        change = ctx.lifecycle(api, verifier).remove_signer(gun, ctx.args.name)
    result_or_pending(
        ctx.out,
        f"removed the signer {change.name} from {gun} (targets v{change.targets_version}); "
        "what it signed no longer verifies",
        {"repository": gun, "signer": change.name, "targets_version": change.targets_version},
        change.pending,
    )
    return EXIT_OK


def cmd_signer_list(ctx: Context) -> int:
    from client.lifecycle import signers_of
    from trustkit.names import parse_gun

    gun = parse_gun(ctx.args.repository)
    repository = verified(ctx, gun)
    signers = signers_of(repository)
    lines = [f"{'SIGNER':<20} {'THRESHOLD':>9}  {'PATHS':<30} {'TAGS':>5}  KEYS"]
    lines += [
        f"{s['name']:<20} {s['threshold']:>9}  {_signer_paths(s):<30} {len(s['tags']):>5}  "
        + ", ".join(k[:12] for k in s["keys"])
        + (", terminating" if s["terminating"] else "")
        + ("" if s["published"] else "  (not published yet)")
        for s in signers
    ]
    if not signers:
        lines = [f"{gun} has no signers: only the targets key signs"]
    ctx.out.result(lines, {"repository": gun, "signers": signers})
    return EXIT_OK


def _signer_paths(signer: dict[str, Any]) -> str:
    """What a signer may sign: its path patterns, or the hash prefixes of its paths."""
    if signer["path_hash_prefixes"]:
        return "hash prefixes " + ", ".join(signer["path_hash_prefixes"])
    return ", ".join(signer["paths"])


def add_parsers(commands: Commands) -> None:
    """The sub-commands of this group."""
    add = commands.add
    common = commands.common
    signing = commands.signing
    signer = add("signer", lambda ctx: EXIT_USAGE, "who may sign which tags (delegations)")
    signer_commands = signer.add_subparsers(dest="signer_command", metavar="ACTION", required=True)
    adding = signer_commands.add_parser(
        "add", parents=[common, signing], help="let NAME's keys sign tags matching --paths"
    )
    adding.set_defaults(handler=cmd_signer_add)
    adding.add_argument("name", metavar="NAME", help="the signer's name, e.g. releases")
    adding.add_argument("repository", help="the repository, e.g. registry.example.com/team/app")
    adding.add_argument(
        "--key", action="append", required=True, metavar="PUB_PEM", help="a public key file"
    )
    adding.add_argument(
        "--paths", action="append", metavar="PATTERN", help="tags it may sign (default '*')"
    )
    adding.add_argument("--threshold", type=int, default=1, help="signatures needed (1)")
    adding.add_argument(
        "--terminating", action="store_true", help="tags it may sign are looked up nowhere else"
    )
    dropping = signer_commands.add_parser(
        "remove",
        parents=[common, signing],
        help="take a signer out; its tags stop verifying",
    )
    dropping.set_defaults(handler=cmd_signer_remove)
    dropping.add_argument("name", metavar="NAME", help="the signer to take out")
    dropping.add_argument("repository", help="the repository, e.g. registry.example.com/team/app")
    listing_signers = signer_commands.add_parser(
        "list", parents=[common], help="signers, their paths, keys and tags"
    )
    listing_signers.set_defaults(handler=cmd_signer_list)
    listing_signers.add_argument(
        "repository", help="the repository, e.g. registry.example.com/team/app"
    )
