"""Commands of a repository's publisher: init, bins, sign, sign-file, revoke, publish,
reset, and status and refresh of its roles' expiry."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from trustkit.cli.context import Context, note_first_use, read_file, report_roles
from trustkit.cli.options import SIGNER_HELP, Commands
from trustkit.cli.output import result_or_pending
from trustkit.errors import EXIT_OK, EXIT_REFUSED, UsageError

if TYPE_CHECKING:
    from client.verify import TrustedRepository


def cmd_init(ctx: Context) -> int:
    from trustkit.names import parse_gun

    gun = parse_gun(ctx.args.repository)
    with ctx.session() as (api, verifier):
        result = ctx.publisher(api, verifier).init(gun, ctx.args.key_type, ctx.args.bins)
    bins = f"\n  hash bins:   {ctx.args.bins}" if ctx.args.bins else ""
    ctx.out.result(
        f"initialised {gun}\n  root key:    {result.keys['root'][0]}\n"
        f"  targets key: {result.keys['targets'][0]}{bins}",
        {"repository": gun, "keys": result.keys, "bins": ctx.args.bins},
    )
    return EXIT_OK


def cmd_bins(ctx: Context) -> int:
    from trustkit.names import parse_gun

    gun = parse_gun(ctx.args.repository)
    with ctx.session() as (api, verifier), ctx.out.ticker("signing bins", "role") as tick:
        publisher = ctx.publisher(api, verifier)
        result = publisher.rebin(gun, ctx.args.count, signed=tick)
    count = sum(1 for role in result.roles if role.startswith("bins-"))
    result_or_pending(
        ctx.out,
        f"moved {result.changes} tags of {gun} into hash bins ({count} bins signed, "
        f"targets v{result.targets_version}); hosts need no change",
        {
            "repository": gun,
            "published": True,
            "tags": result.changes,
            "bins_signed": count,
            "targets_version": result.targets_version,
        },
        result.pending,
    )
    return EXIT_OK


def _bin_count(text: str) -> int:
    from trustkit.bins import MAX_BINS, parse_bin_count

    try:
        parse_bin_count(int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a power of two from 2 to {MAX_BINS}"
        ) from None
    return int(text)


def _retire_completed_rotations(ctx: Context, repository: TrustedRepository | None) -> None:
    """Keys a rotation of this keystore retired, once co-holders published it: removed
    as a one-step rotation removes them."""
    from client.lifecycle import RotationsAwaiting

    if repository is None:
        return
    for record in RotationsAwaiting(ctx.settings).retire_published(ctx.keystore(), repository):
        ctx.out.note(
            f"trustkit: removed the retired {record.description}: the rotation that "
            "replaced it is published"
        )


def _note_lapsed(ctx: Context, gun: str, lapsed: int) -> None:
    if lapsed:
        ctx.out.warning(
            f"trustkit: {lapsed} change(s) of your pending change lapsed (a co-signer "
            f"rejected or withdrew it, or it expired) and were not sent again: send them "
            f"with: trustkit publish {gun} --resend, or drop them with: trustkit reset {gun}"
        )


def _stage(ctx: Context, gun: str, changes: list[Any], what: str) -> int:
    from client.changelist import Changelist
    from client.publisher import NothingToPublishError, stage_or_publish

    changelist = Changelist(ctx.settings.changelist_path(gun))
    if ctx.args.no_publish:
        stage_or_publish(None, changelist, gun, changes)
        ctx.out.result(
            f"staged {what}; run: trustkit publish {gun}",
            {"repository": gun, "staged": what, "published": False},
        )
        return EXIT_OK
    resend = bool(getattr(ctx.args, "resend", False))
    with ctx.session() as (api, verifier):
        try:
            result = stage_or_publish(
                ctx.publisher(api, verifier),
                changelist,
                gun,
                changes,
                ctx.args.signer,
                resend=resend,
            )
        except NothingToPublishError:
            _note_lapsed(ctx, gun, len(changelist.load_lapsed()))
            raise
    assert result is not None
    _retire_completed_rotations(ctx, verifier.last_verified(gun))
    if result.replaced:
        ctx.out.note(
            f"trustkit: this upload carries the {result.folded} change(s) of your pending "
            f"change {result.replaced} too, and replaces it"
        )
    elif result.folded:
        ctx.out.note(
            f"trustkit: your earlier pending change was gone before it was replaced; its "
            f"{result.folded} change(s) go up with this one"
        )
    _note_lapsed(ctx, gun, result.lapsed)
    result_or_pending(
        ctx.out,
        f"{what}; published {gun} ({result.role} v{result.targets_version})",
        {
            "repository": gun,
            "published": True,
            "role": result.role,
            "targets_version": result.targets_version,
            "changes": result.changes,
            "attempts": result.attempts,
        },
        result.pending,
    )
    return EXIT_OK


def cmd_sign(ctx: Context) -> int:
    from client.changelist import Change
    from client.signing import load_tag_list, tags_from_references, targets_to_sign
    from trustkit.names import parse_reference

    args = ctx.args
    if args.tag_list is not None:
        named = [parse_reference(text) for text in args.references]
        if (
            len(named) != 1
            or named[0].tag
            or named[0].digest
            or args.digest
            or args.size is not None
            or args.media_type
        ):
            raise UsageError(
                "with --from FILE, name only the repository (the file lists tags and digests)",
                hint="e.g. trustkit sign registry.example.com/team/app --from tags.txt",
            )
        gun = named[0].gun
        tags = load_tag_list(args.tag_list, sys.stdin)
    else:
        gun, tags = tags_from_references(
            args.references, digest=args.digest, size=args.size, media_type=args.media_type
        )
    with ctx.out.ticker(f"reading digests of {gun}", "tag") as tick:
        targets = targets_to_sign(gun, tags, ctx.registry, asked=tick)
    if len(targets) == 1:
        [target] = targets
        media_type = target.unrecognized_fields.get("custom", {}).get("media_type")
        what = f"signed {gun}:{target.path} -> sha256:{target.hashes['sha256']} "
        what += f"({target.length} bytes" + (f", {media_type})" if media_type else ")")
    else:
        what = f"signed {len(targets)} tags of {gun}"
    return _stage(ctx, gun, [Change.add(target) for target in targets], what)


def cmd_sign_file(ctx: Context) -> int:
    from client.changelist import Change
    from trustkit.metadata import file_target
    from trustkit.names import parse_gun, validate_target_name

    gun = parse_gun(ctx.args.repository)
    name = validate_target_name(ctx.args.name)
    target = file_target(name, read_file(ctx.args.file))
    return _stage(ctx, gun, [Change.add(target)], f"signed file {name} ({target.length} bytes)")


def cmd_revoke(ctx: Context) -> int:
    from client.changelist import Change, Changelist
    from client.signing import tags_to_revoke
    from trustkit.names import parse_reference

    ref = parse_reference(ctx.args.reference)
    if ref.digest is not None:
        raise UsageError(
            f"revoke takes REPO or REPO:TAG, not a digest ({ctx.args.reference})",
            hint=f"revoke the tags signed as it: trustkit inspect {ref.gun} lists them",
        )
    staged = Changelist(ctx.settings.changelist_path(ref.gun)).load()
    with ctx.session() as (_, verifier):
        revocation = tags_to_revoke(verifier, ref.gun, ref.tag, staged, ctx.args.signer)
    tags = revocation.tags
    what = f"revoked {ref.gun}:{ref.tag}" if ref.tag else f"revoked {len(tags)} tags of {ref.gun}"
    for role, left in revocation.left_to_signers.items():
        ctx.out.warning(
            f"trustkit: {len(left)} tag(s) signed by the signer {role} stay signed; revoke "
            f"them with --signer {role}, or take the signer out (trustkit signer remove)"
        )
    return _stage(ctx, ref.gun, [Change.remove(tag) for tag in tags], what)


def cmd_publish(ctx: Context) -> int:
    from client.publisher import NothingToPublishError
    from trustkit.names import parse_gun

    gun = parse_gun(ctx.args.repository)
    ctx.args.no_publish = False
    try:
        return _stage(ctx, gun, [], "published staged changes")
    except NothingToPublishError:
        ctx.out.result(
            f"nothing to publish for {gun}: no staged changes (stage some with sign or "
            "revoke --no-publish)",
            {"repository": gun, "published": False, "changes": 0},
        )
        return EXIT_OK


def cmd_reset(ctx: Context) -> int:
    from client.changelist import Changelist
    from client.publisher import reset
    from trustkit.names import parse_gun

    gun = parse_gun(ctx.args.repository)
    dropped = reset(Changelist(ctx.settings.changelist_path(gun)), list(ctx.args.tags))
    which = f" of {', '.join(ctx.args.tags)}" if ctx.args.tags else ""
    ctx.out.result(
        f"dropped {dropped} staged or lapsed change(s){which} of {gun}; nothing was sent",
        {"repository": gun, "dropped": dropped},
    )
    return EXIT_OK


def _local_changes(ctx: Context, gun: str) -> dict[str, Any]:
    """This machine's changes of ``gun``: staged, awaiting co-signers, lapsed."""
    from client.changelist import Changelist

    changelist = Changelist(ctx.settings.changelist_path(gun))
    awaiting = changelist.load_awaiting()

    def shown(change: Any) -> str:
        if change.action == "remove":
            return f"revoke {change.path}"
        digest = change.target.get("hashes", {}).get("sha256", "?")
        return f"sign {change.path} -> sha256:{digest}"

    return {
        "staged": [shown(c) for c in changelist.load()],
        "awaiting": len(awaiting.changes) if awaiting else 0,
        "lapsed": [shown(c) for c in changelist.load_lapsed()],
    }


def cmd_status(ctx: Context) -> int:
    from client.lifecycle import expiry_report
    from trustkit.expiry import parse_duration
    from trustkit.names import parse_gun

    gun = parse_gun(ctx.args.repository)
    with ctx.session() as (api, verifier):
        repository = verifier.trusted_repository(gun)
        waiting = len(api.pending(gun))
    note_first_use(ctx, repository)
    report_roles(ctx, repository)
    _retire_completed_rotations(ctx, repository)
    report = expiry_report(
        repository, parse_duration(ctx.args.warn_within), parse_duration(ctx.args.warn_online)
    )
    lines = [gun, "", f"{'ROLE':<10} {'VERSION':>7}  {'EXPIRES':<26} {'DAYS':>7}  KEYS"]
    for role in report:
        flag = "  <- expires soon: run trustkit refresh" if role.warning else ""
        if role.warning and role.role in ("snapshot", "timestamp"):
            flag = "  <- expires soon: the server is not refreshing it"
        keys = ", ".join(k[:12] for k in role.keys)
        lines.append(
            f"{role.role:<10} {role.version:>7}  {role.expires.isoformat():<26} "
            f"{role.days_left:>7.1f}  {keys} (threshold {role.threshold}){flag}"
        )
    if waiting:
        lines += ["", f"{waiting} change(s) waiting for co-signers: trustkit approve {gun}"]
    local = _local_changes(ctx, gun)
    if local["staged"]:
        lines += [f"{len(local['staged'])} staged change(s) here: trustkit publish {gun}"]
        lines += [f"  {change}" for change in local["staged"]]
    if local["awaiting"]:
        lines += [f"{local['awaiting']} change(s) of this machine's upload await co-signers"]
    if local["lapsed"]:
        lines += [
            f"{len(local['lapsed'])} change(s) lapsed (rejected, withdrawn or expired): "
            f"trustkit publish {gun} --resend, or trustkit reset {gun}"
        ]
        lines += [f"  {change}" for change in local["lapsed"]]
    warnings = [role.role for role in report if role.warning]
    data = {
        "repository": gun,
        "pending_changes": waiting,
        "staged": local["staged"],
        "lapsed": local["lapsed"],
        "roles": [
            {
                "role": r.role,
                "version": r.version,
                "expires": r.expires.isoformat(),
                "days_left": round(r.days_left, 2),
                "keys": r.keys,
                "threshold": r.threshold,
                "warning": r.warning,
            }
            for r in report
        ],
        "warnings": warnings,
    }
    ctx.out.result(lines, data)
    if warnings and ctx.args.check:
        ctx.out.warning(
            f"trustkit: {', '.join(warnings)} of {gun} expire(s) soon; see the table above",
        )
        return EXIT_REFUSED
    return EXIT_OK


def cmd_refresh(ctx: Context) -> int:
    from trustkit.expiry import parse_duration
    from trustkit.names import parse_gun

    gun = parse_gun(ctx.args.repository)
    within = parse_duration(ctx.args.within)
    with ctx.session() as (api, verifier):
        result = ctx.lifecycle(api, verifier).refresh(gun, within)
    text = (
        "re-signed " + ", ".join(f"{role} (v{version})" for role, version in result.renewed.items())
        if result.renewed
        else f"nothing of {gun} expires within {ctx.args.within}; nothing re-signed"
    )
    result_or_pending(ctx.out, text, {"repository": gun, "renewed": result.renewed}, result.pending)
    return EXIT_OK


def add_parsers(commands: Commands) -> None:
    """The sub-commands of this group."""
    _add_repository_parsers(commands)
    _add_signing_parsers(commands)
    _add_staging_parsers(commands)
    _add_expiry_parsers(commands)


def _add_repository_parsers(commands: Commands) -> None:
    """init and bins: a repository's making and its layout."""
    add = commands.add
    sub = add("init", cmd_init, "create a signed repository: root and targets keys, root v1")
    sub.add_argument("repository", help="e.g. registry.example.com/team/app")
    sub.add_argument(
        "--key-type",
        choices=["ed25519", "ecdsa"],
        default="ed25519",
        help="the new key's type (default %(default)s)",
    )
    sub.add_argument(
        "--bins",
        type=_bin_count,
        metavar="N",
        help="sign tags in N hash bins (a power of two, 2 to 16384) for a repository "
        "expected to hold many thousands of tags; without it, a repository moves into "
        "bins by itself once it holds more than 1024 tags",
    )

    sub = add(
        "bins",
        cmd_bins,
        "move every tag of a repository into hash bins (or into a new number of them)",
        epilog="Signing one tag then re-signs one bin, and a host verifying one tag "
        "downloads one bin. Hosts need no change. Needs the targets key.",
    )
    sub.add_argument("repository", help="the repository, e.g. registry.example.com/team/app")
    sub.add_argument(
        "--count",
        type=_bin_count,
        metavar="N",
        help="number of bins, a power of two (default: chosen from the number of tags)",
    )


def _add_signing_parsers(commands: Commands) -> None:
    """sign, sign-file and revoke."""
    add = commands.add
    sub = add(
        "sign",
        cmd_sign,
        "sign TAG -> digest and publish it (the digest is read from the registry unless "
        "--digest and --size are given)",
        [commands.registry],
    )
    sub.add_argument(
        "references",
        nargs="+",
        metavar="IMAGE:TAG[@DIGEST]",
        help="tags of one repository to sign in one publish (with --from: the repository)",
    )
    sub.add_argument(
        "--from",
        dest="tag_list",
        metavar="FILE",
        help="sign every tag FILE lists ('-': standard input): lines TAG DIGEST SIZE "
        "[MEDIA_TYPE], or JSON [{tag, digest, size, media_type}]",
    )
    sub.add_argument("--digest", help="manifest digest, sha256:… (default: ask the registry)")
    sub.add_argument("--size", type=int, help="manifest size in bytes (default: ask the registry)")
    sub.add_argument("--media-type", help="manifest media type")
    sub.add_argument("--no-publish", action="store_true", help="only stage the change")
    sub.add_argument("--signer", metavar="NAME", help=SIGNER_HELP)

    sub = add("sign-file", cmd_sign_file, "sign an arbitrary file under NAME")
    sub.add_argument("repository", help="the repository, e.g. registry.example.com/team/app")
    sub.add_argument("name", help="the file's name in the repository, e.g. charts/app-1.0.tgz")
    sub.add_argument("file", help="the file to sign")
    sub.add_argument("--no-publish", action="store_true", help="only stage the change")
    sub.add_argument("--signer", metavar="NAME", help=SIGNER_HELP)

    sub = add("revoke", cmd_revoke, "remove a signed tag, or every tag of a repository")
    sub.add_argument(
        "reference",
        metavar="REPO[:TAG]",
        help="the tag to revoke; a repository alone revokes every signed tag in it",
    )
    sub.add_argument("--no-publish", action="store_true", help="only stage the change")
    sub.add_argument("--signer", metavar="NAME", help=SIGNER_HELP)


def _add_staging_parsers(commands: Commands) -> None:
    """publish and reset: what is staged, sent or dropped."""
    add = commands.add
    sub = add("publish", cmd_publish, "publish the staged changes of a repository")
    sub.add_argument("repository", help="the repository, e.g. registry.example.com/team/app")
    sub.add_argument(
        "--resend",
        action="store_true",
        help="send again the changes of your pending change that lapsed (rejected, "
        "withdrawn or expired); they are never sent again without it",
    )
    sub.add_argument("--signer", metavar="NAME", help=SIGNER_HELP)

    sub = add(
        "reset",
        cmd_reset,
        "drop staged changes (and lapsed ones) without sending anything",
        signs=False,
    )
    sub.add_argument("repository", help="the repository, e.g. registry.example.com/team/app")
    sub.add_argument("tags", nargs="*", metavar="TAG", help="only the changes of these tags")


def _add_expiry_parsers(commands: Commands) -> None:
    """status and refresh: the expiry of a repository's roles."""
    add = commands.add
    sub = add(
        "status", cmd_status, "every role's version, keys and expiry, with warnings", signs=False
    )
    sub.add_argument("repository", help="the repository, e.g. registry.example.com/team/app")
    sub.add_argument(
        "--warn-within",
        default="30d",
        metavar="DURATION",
        help="warn this long before root or targets expire (30d)",
    )
    sub.add_argument(
        "--warn-online",
        default="3d",
        metavar="DURATION",
        help="warn this long before snapshot or timestamp expire (3d; the server renews "
        "them at half their lifetime)",
    )
    sub.add_argument(
        "--check", action="store_true", help="exit 1 when a role expires within the window"
    )
    sub = add("refresh", cmd_refresh, "re-sign root and targets when they expire soon")
    sub.add_argument("repository", help="the repository, e.g. registry.example.com/team/app")
    sub.add_argument(
        "--within", default="30d", metavar="DURATION", help="re-sign what expires within (30d)"
    )
