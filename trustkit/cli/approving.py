"""Multi-signature approval: approve (and approve --file) and submit."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from trustkit.cli.context import Context, confirm
from trustkit.cli.options import Commands
from trustkit.cli.output import result_or_pending
from trustkit.cli.shapes import ApproveFileJSON, ApproveJSON
from trustkit.errors import EXIT_OK, UsageError

if TYPE_CHECKING:
    pass


def cmd_approve(ctx: Context) -> int:
    from client.approval import Prompter, approve_file, approve_pending
    from trustkit.names import parse_gun

    gun = parse_gun(ctx.args.repository)
    prompter = Prompter(
        note=lambda text: ctx.out.note(f"trustkit: {text}"),
        show=ctx.out.warning,  # what is approved is shown even with --quiet
        confirm=lambda question: confirm(ctx, question),
    )
    if ctx.args.file:
        if ctx.args.reject or ctx.args.export or ctx.args.id:
            raise UsageError(
                "--file signs the change in a file; --reject, --export and --id are for "
                "changes pending on the server",
                hint="to drop a change kept in a file, delete the file",
            )
        path = Path(ctx.args.file)
        with ctx.session() as (api, verifier):  # offline: nothing is fetched
            keyids = approve_file(ctx.approver(api, verifier), verifier, path, gun, prompter)
        if keyids is None:
            ctx.out.result("not signed", ApproveFileJSON(repository=gun, signed_with=[]))
            return EXIT_OK
        ctx.out.result(
            f"signed {path} with {', '.join(k[:12] for k in keyids)}; send it when complete: "
            f"trustkit submit {gun} {path}",
            ApproveFileJSON(repository=gun, file=str(path), signed_with=keyids),
        )
        return EXIT_OK
    with ctx.session() as (api, verifier):
        done = approve_pending(
            ctx.approver(api, verifier),
            verifier,
            gun,
            prompter,
            change_id=ctx.args.id,
            reject=ctx.args.reject,
            export=ctx.args.export or None,
        )
    if not done.pending:
        ctx.out.result(f"nothing of {gun} is pending", ApproveJSON(repository=gun, results=[]))
        return EXIT_OK
    ctx.out.result(done.lines, ApproveJSON(repository=gun, results=done.results))
    return EXIT_OK


def cmd_submit(ctx: Context) -> int:
    from client.approval import read_change_file
    from trustkit.names import parse_gun

    gun = parse_gun(ctx.args.repository)
    change = read_change_file(Path(ctx.args.file), gun)
    with ctx.session() as (api, verifier):
        outcome = ctx.approver(api, verifier).submit(change)
        if outcome.still_pending is None:
            verifier.trusted_repository(gun)
    versions = ", ".join(f"{r} v{v}" for r, v in outcome.versions.items())
    result_or_pending(
        ctx.out,
        f"published {gun} from {ctx.args.file}: {versions}",
        {"repository": gun, "published": True, "versions": outcome.versions},
        outcome.still_pending,
    )
    return EXIT_OK


def add_parsers(commands: Commands) -> None:
    """The sub-commands of this group."""
    add = commands.add
    approve = add(
        "approve",
        cmd_approve,
        "show changes waiting for co-signers and sign them (multi-signature approval)",
    )
    approve.add_argument("repository", help="the repository, e.g. registry.example.com/team/app")
    approve.add_argument("--id", help="only this pending change")
    approve.add_argument("--yes", action="store_true", help="sign without asking")
    approve.add_argument("--reject", action="store_true", help="withdraw instead of signing")
    approve.add_argument(
        "--export", metavar="FILE", help="write the pending change to FILE (for offline holders)"
    )
    approve.add_argument(
        "--file", metavar="FILE", help="sign the change in FILE here, offline, and save it"
    )
    submit = add("submit", cmd_submit, "send a change from a file (approve --file) to the server")
    submit.add_argument("repository", help="the repository, e.g. registry.example.com/team/app")
    submit.add_argument("file", metavar="FILE", help="the change file approve --file signed")
