"""``trustkit changefeed``: the server's audit log (every publish, pending change,
approval, withdrawal, server key request and deletion), read with an admin token."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import TYPE_CHECKING

from trustkit.cli.context import Context
from trustkit.cli.options import Commands
from trustkit.cli.output import for_terminal
from trustkit.cli.shapes import ChangefeedEntryJSON, ChangefeedJSON
from trustkit.errors import EXIT_OK

if TYPE_CHECKING:
    from client.changefeed import FeedReader
    from trustkit.errors import ServerUnreachableError
    from trustkit.wire import ChangefeedEntry

DEFAULT_LIMIT = 100
MAX_SEQ = 2**62  # the server's sequence numbers are 64-bit
HEADER = f"{'SEQ':>6}  {'TIME':<25} {'ACTION':<9} {'REPOSITORY':<40} {'TOKEN':<16} VERSIONS"


def cmd_changefeed(ctx: Context) -> int:
    from client.changefeed import FeedReader
    from trustkit.names import parse_gun

    repository = parse_gun(ctx.args.repository) if ctx.args.repository else None
    with ctx.session() as (api, _):
        reader = FeedReader(api, ctx.args.after, repository)
        if ctx.args.follow:
            return _follow(ctx, reader)
        limit = ctx.args.limit or DEFAULT_LIMIT
        entries = list(reader.read(limit))
    data = ChangefeedJSON(entries=[_json(entry) for entry in entries], next=reader.after)
    lines = [HEADER, *(_line(entry) for entry in entries)] if entries else []
    if not entries:
        lines = [f"no changes after {ctx.args.after}" + (f" of {repository}" if repository else "")]
    ctx.out.result(lines, data)
    if len(entries) == limit or reader.stopped_early:
        ctx.out.note(f"trustkit: more may follow: trustkit changefeed --after {reader.after}")
    return EXIT_OK


def _follow(ctx: Context, reader: FeedReader) -> int:
    """Print each entry as it comes (JSON: one object a line) until Ctrl-C or --limit."""

    def outage(error: ServerUnreachableError | None) -> None:
        if error is None:
            ctx.out.note("trustkit: the server answers again; following on")
        else:
            ctx.out.note(f"trustkit: {error.message}; trying again every {ctx.args.interval:g} s")

    header = not ctx.out.as_json
    try:
        for entry in reader.follow(ctx.args.interval, limit=ctx.args.limit, on_outage=outage):
            if header:
                print(for_terminal([HEADER]))
                header = False
            shown = json.dumps(_json(entry), sort_keys=True) if ctx.out.as_json else None
            print(shown or for_terminal([_line(entry)]), flush=True)
    except KeyboardInterrupt:
        ctx.out.note(f"trustkit: stopped; go on from here with: --after {reader.after}")
    except BrokenPipeError:  # e.g. | head: whoever read has seen enough
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_OK


def _json(entry: ChangefeedEntry) -> ChangefeedEntryJSON:
    return ChangefeedEntryJSON(
        seq=entry.seq,
        time=entry.time.isoformat(),
        repository=entry.repository,
        action=entry.action,
        versions=dict(entry.versions),
        token=entry.token,
        detail=entry.detail,
    )


def _line(entry: ChangefeedEntry) -> str:
    """One entry as a line; printed escaped (every string in it is the server's)."""
    versions = ", ".join(f"{role} v{version}" for role, version in entry.versions.items())
    line = (
        f"{entry.seq:>6}  {entry.time.isoformat(timespec='seconds'):<25} {entry.action:<9} "
        f"{entry.repository:<40} {entry.token or '-':<16} {versions or '-'}"
    )
    return f"{line}  ({entry.detail})" if entry.detail else line


def _count(text: str, least: int, what: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = least - 1
    if not least <= number <= MAX_SEQ:
        raise argparse.ArgumentTypeError(f"{what} must be a whole number of at least {least}")
    return number


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0.05 <= seconds <= 3600:
        raise argparse.ArgumentTypeError("give seconds between 0.05 and 3600, e.g. 2")
    return seconds


def add_parsers(commands: Commands) -> None:
    """The sub-command of this group."""
    sub = commands.add(
        "changefeed",
        cmd_changefeed,
        "the server's audit log: every publish, pending change, approval, withdrawal, "
        "server key request and deletion, oldest first (needs a token with an admin scope)",
        epilog="Text: SEQ, time, action, repository, versions made, the token's name and "
        'a detail. --json: {"entries": [...], "next": SEQ} (give NEXT to --after to '
        "go on); with --follow, one JSON object per entry and line. Ctrl-C ends --follow "
        "(exit 0) and says where to go on from. A token sees the repositories its admin "
        "scopes cover.",
        signs=False,
    )
    sub.add_argument(
        "--after",
        type=lambda text: _count(text, 0, "--after"),
        default=0,
        metavar="SEQ",
        help="only entries after this one (default 0: from the start)",
    )
    sub.add_argument(
        "--limit",
        type=lambda text: _count(text, 1, "--limit"),
        metavar="N",
        help=f"print at most N entries (default {DEFAULT_LIMIT}; with --follow, no limit)",
    )
    sub.add_argument("--repository", metavar="REPO", help="only the entries of this repository")
    sub.add_argument(
        "--follow",
        action="store_true",
        help="keep printing new entries as they come, until Ctrl-C",
    )
    sub.add_argument(
        "--interval",
        type=_seconds,
        default=2.0,
        metavar="SECONDS",
        help="with --follow, how often to ask for new entries (default %(default)g)",
    )
