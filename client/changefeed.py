"""Reading the server's audit changefeed: page after page from a position, for one
repository or all the token may administer, and following it as it grows.

The server pages by ``seq``; a filter on one repository is applied here (the server
filters by the token's admin scopes only). ``after`` always holds the position to
resume from: the last entry given out, or the page's ``next`` once a page is used up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from client.server_api import ServerAPI
from trustkit.errors import ServerUnreachableError
from trustkit.wire import MAX_FEED_LIMIT, ChangefeedEntry

__all__ = ["MAX_PAGES_PER_READ", "FeedReader"]

# Pages one ``read`` asks for at most: a server that answers page after empty page, its
# ``next`` creeping on, cannot keep a command asking forever; the caller resumes from
# ``after`` (``stopped_early`` says so).
MAX_PAGES_PER_READ = 1000


@dataclass
class FeedReader:
    """The changefeed after ``after``, of ``repository`` only when given."""

    api: ServerAPI
    after: int = 0
    repository: str | None = None
    stopped_early: bool = False  # the last read hit MAX_PAGES_PER_READ

    def read(self, limit: int | None = None) -> Iterator[ChangefeedEntry]:
        """Entries up to the feed's current end, at most ``limit``; ``after`` moves past
        each one given out."""
        given = 0
        self.stopped_early = False
        for _ in range(MAX_PAGES_PER_READ):
            if limit is not None and given >= limit:
                return
            size = MAX_FEED_LIMIT
            if limit is not None and self.repository is None:
                size = min(limit - given, MAX_FEED_LIMIT)
            asked = self.after
            page = self.api.changefeed(asked, size)  # every entry is after ``asked``
            for entry in page.entries:
                if limit is not None and given >= limit:
                    return
                self.after = entry.seq
                if self.repository is None or entry.repository == self.repository:
                    given += 1
                    yield entry
            if limit is not None and given >= limit:
                return  # the next call resumes right after the last entry given out
            self.after = page.next
            if not page.entries and page.next == asked:
                return  # the end of the feed, for now
        self.stopped_early = True

    def follow(
        self,
        interval: float,
        *,
        limit: int | None = None,
        on_outage: Callable[[ServerUnreachableError | None], None] = lambda _: None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Iterator[ChangefeedEntry]:
        """Every entry, then each new one as it comes (asking every ``interval``
        seconds), until ``limit`` entries or the caller stops. Once the feed was read,
        an unreachable server is waited for: ``on_outage`` is told when it goes away
        (the error) and when it is back (None)."""
        given = 0
        reached = False
        down = False
        while limit is None or given < limit:
            try:
                for entry in self.read(None if limit is None else limit - given):
                    given += 1
                    yield entry
            except ServerUnreachableError as error:
                if not reached:
                    raise
                if not down:
                    on_outage(error)
                down = True
            else:
                if down:
                    on_outage(None)
                reached, down = True, False
            if limit is None or given < limit:
                sleep(interval)
