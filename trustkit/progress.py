"""Progress bars of long work (a migration of many repositories, re-binning, signing
many tags, a large export): on standard error only, only when it is a terminal, and
never asked for by ``--quiet`` or ``--json``. tqdm is imported only when a bar shows."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from trustkit.display import printable

__all__ = ["Progress", "at_terminal", "progress"]


class Progress:
    """Work done so far; a bar not shown counts nothing and writes nothing."""

    def advance(self, steps: int = 1) -> None:
        """``steps`` more units of the work are done."""

    def describe(self, text: str) -> None:
        """What the work is on now (a repository, a tag)."""

    def write(self, line: str) -> bool:
        """Print ``line`` on standard error above the bar; False when no bar shows."""
        return False


class _Bar(Progress):
    def __init__(self, bar: Any) -> None:
        self.bar = bar

    def advance(self, steps: int = 1) -> None:
        self.bar.update(steps)

    def describe(self, text: str) -> None:
        self.bar.set_postfix_str(printable(text), refresh=False)

    def write(self, line: str) -> bool:
        self.bar.write(line, file=sys.stderr)  # the bar is drawn again below it
        return True


def at_terminal(stream: TextIO | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except ValueError:  # closed
        return False


@contextmanager
def progress(total: int, what: str, unit: str, *, wanted: bool = True) -> Iterator[Progress]:
    """A bar over ``total`` units of ``what`` on standard error when ``wanted`` and
    standard error is a terminal; else a ``Progress`` that shows nothing."""
    if not wanted or total < 1 or not at_terminal(sys.stderr):
        yield Progress()
        return
    from tqdm import tqdm  # only here: most commands never show a bar

    bar = tqdm(
        total=total,
        desc=printable(what),
        unit=f" {unit}",
        file=sys.stderr,
        leave=False,
        dynamic_ncols=True,
    )
    with bar:
        yield _Bar(bar)
