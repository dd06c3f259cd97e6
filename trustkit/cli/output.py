"""Where results go: text for people (made safe for a terminal), or one JSON
document for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trustkit.display import printable, printable_lines

if TYPE_CHECKING:
    from client.decision import Decision
    from client.pending import PendingChange


@dataclass
class Output:
    """Where results go: text for people, or one JSON document for scripts.

    Text is made safe for a terminal here, once, whatever it quotes (names from
    metadata, a server's words): see ``for_terminal``. JSON escapes by itself."""

    as_json: bool

    def result(self, text: str | Sequence[str], data: Mapping[str, Any]) -> None:
        if self.as_json:
            print(json.dumps(data, indent=2, sort_keys=True))
        else:
            print(for_terminal(text))

    def note(self, text: str | Sequence[str]) -> None:
        print(for_terminal(text), file=sys.stderr)


def for_terminal(text: str | Sequence[str]) -> str:
    """``text`` escaped for a terminal. A sequence is lines, each escaped whole (a line
    break inside one too, so a name cannot start a line of its own); a str keeps its
    line breaks."""
    if isinstance(text, str):
        return printable_lines(text)
    return "\n".join(printable(line) for line in text)


def result_or_pending(
    out: Output, done: str, data: Mapping[str, Any], pending: PendingChange | None
) -> None:
    """Print what was published, or that it waits for co-signers and what it lacks."""
    if pending is None:
        out.result(done, data)
        return
    if pending.id is None:
        out.result(done, {**data, "published": False})
        return
    expires = pending.expires.isoformat() if pending.expires else "?"
    out.result(
        [
            f"signed, but not yet published: the server keeps pending change {pending.id} "
            f"until co-signers approve it (expires {expires}):",
            *(f"  {need.describe()}" for need in pending.needs),
            f"co-signers run: trustkit approve {pending.gun}",
        ],
        {
            **data,
            "published": False,
            "pending": {
                "id": pending.id,
                "expires": expires,
                "needs": [need.__dict__ for need in pending.needs],
            },
        },
    )


def report_notes(out: Output, pinned: Sequence[Decision]) -> None:
    """The notes of the policy's decisions on the images of a command."""
    for image in pinned:
        for note in image.notes:
            out.note(f"trustkit: {note}")
