"""Where results go: text for people (made safe for a terminal), or one JSON
document for scripts; and everything said on the side, on standard error, through one
place that ``-q/--quiet`` and ``-v/--verbose`` turn down or up.

- ``result``: the requested output, on stdout; never dropped.
- ``warning``: a note the user must not miss (a repository trusted on first use, a
  policy letting an unsigned image through, changes not sent); ``--quiet`` keeps it.
- ``note``: what happened on the way; ``--quiet`` drops it.
- ``debug``: diagnostics (server, mirror, requests and their times, roles and
  versions) only with ``--verbose``; never a secret.
- ``progress``: a bar on standard error for long work, only at a terminal, and never
  with ``--quiet`` or ``--json``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trustkit.display import printable, printable_lines
from trustkit.progress import Progress, progress

if TYPE_CHECKING:
    from client.decision import Decision
    from client.pending import PendingChange

QUIET, NORMAL, VERBOSE = -1, 0, 1


@dataclass
class Output:
    """Where results go: text for people, or one JSON document for scripts.

    Text is made safe for a terminal here, once, whatever it quotes (names from
    metadata, a server's words): see ``for_terminal``. JSON escapes by itself."""

    as_json: bool
    verbosity: int = NORMAL
    _bar: Progress | None = field(default=None, init=False, repr=False)

    @property
    def quiet(self) -> bool:
        return self.verbosity <= QUIET

    @property
    def verbose(self) -> bool:
        return self.verbosity >= VERBOSE

    def result(self, text: str | Sequence[str], data: Mapping[str, Any]) -> None:
        if self.as_json:
            print(json.dumps(data, indent=2, sort_keys=True))
        else:
            print(for_terminal(text))

    def note(self, text: str | Sequence[str]) -> None:
        """What happened on the way: dropped by ``--quiet``."""
        if not self.quiet:
            self._stderr(for_terminal(text))

    def warning(self, text: str | Sequence[str]) -> None:
        """A note the user must see even with ``--quiet``."""
        self._stderr(for_terminal(text))

    def error(self, text: str) -> None:
        """Why the command failed: always shown."""
        self._stderr(for_terminal(text))

    def debug(self, text: str) -> None:
        """A diagnostic for ``--verbose``; callers never pass a secret."""
        if self.verbose:
            self._stderr(for_terminal(f"trustkit: debug: {text}"))

    @contextmanager
    def progress(self, total: int, what: str, unit: str = "item") -> Iterator[Progress]:
        """A bar over ``total`` units of ``what`` on standard error, when it is a
        terminal and neither ``--quiet`` nor ``--json`` was given; else nothing.
        Notes said meanwhile print above it."""
        wanted = not (self.quiet or self.as_json or self._bar is not None)
        with progress(total, what, unit, wanted=wanted) as bar:
            self._bar = bar if wanted else self._bar
            try:
                yield bar
            finally:
                if wanted:
                    self._bar = None

    @contextmanager
    def ticker(self, what: str, unit: str) -> Iterator[Callable[[int, int], None]]:
        """``tick(done, total)`` for a library's loop: a bar (as ``progress``) from its
        first tick, when the total is known."""
        with ExitStack() as stack:
            bars: list[Progress] = []
            shown = 0

            def tick(done: int, total: int) -> None:
                nonlocal shown
                if not bars:
                    bars.append(stack.enter_context(self.progress(total, what, unit)))
                bars[0].advance(done - shown)
                shown = done

            yield tick

    def _stderr(self, line: str) -> None:
        if self._bar is None or not self._bar.write(line):
            print(line, file=sys.stderr)


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
    """The notes of the policy's decisions on the images of a command (an unsigned
    image let through, a rule that applied): kept with ``--quiet``."""
    for image in pinned:
        for note in image.notes:
            out.warning(f"trustkit: {note}")
