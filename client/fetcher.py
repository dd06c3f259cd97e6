"""python-tuf's fetcher interface over httpx, so the updater shares our HTTP settings.

Every download has a whole-request deadline, not only a timeout per read: a server or
mirror that dribbles one byte every few seconds would otherwise hold a host (and the
``docker run`` waiting on it) forever. python-tuf bounds the size of each file; this
module bounds the time.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from tuf.api import exceptions
from tuf.ngclient import FetcherInterface

__all__ = ["DEFAULT_DEADLINE", "HttpxFetcher", "decoded_body", "too_slow"]

CHUNK_BYTES = 64 * 1024
# Seconds one metadata download may take, from request to last byte.
DEFAULT_DEADLINE = 30.0


def too_slow(url: str, seconds: float) -> str:
    return (
        f"fetching {url} took longer than {seconds:g} s; the server or mirror is too "
        "slow or stalled"
    )


class HttpxFetcher(FetcherInterface):
    def __init__(self, http: httpx.Client, *, deadline: float = DEFAULT_DEADLINE) -> None:
        self._http = http
        self._deadline = deadline
        self._window_ends: float | None = None

    @property
    def deadline(self) -> float:
        """Seconds one download may take, whole."""
        return self._deadline

    @contextmanager
    def window(self, seconds: float) -> Iterator[None]:
        """Every download inside ends within ``seconds`` of now, whatever each one's own
        deadline: a server that serves a long chain of slow roots, each just within the
        deadline, cannot hold a host for hours."""
        self._window_ends = time.monotonic() + seconds
        try:
            yield
        finally:
            self._window_ends = None

    def _fetch(self, url: str) -> Iterator[bytes]:
        ends_at = time.monotonic() + self._deadline
        if self._window_ends is not None:
            ends_at = min(ends_at, self._window_ends)
        try:
            # gzip only (not whatever decoders happen to be installed): metadata is JSON
            # and compresses well; python-tuf counts the decoded bytes against its limits.
            # No single wait (connect, each read) may outlast the whole deadline.
            request = self._http.build_request(
                "GET",
                url,
                headers={"Accept-Encoding": "gzip"},
                timeout=httpx.Timeout(self._deadline),
            )
            response = self._http.send(request, stream=True)
        except httpx.TimeoutException as error:
            raise exceptions.SlowRetrievalError(too_slow(url, self._deadline)) from error
        except httpx.HTTPError as error:
            raise exceptions.DownloadError(f"cannot fetch {url}: {error}") from error
        if response.status_code != 200:
            response.close()
            raise exceptions.DownloadHTTPError(
                f"{url} answered {response.status_code}", response.status_code
            )
        return self._chunks(response, url, ends_at, self._deadline)

    @staticmethod
    def _chunks(
        response: httpx.Response, url: str, ends_at: float, deadline: float
    ) -> Iterator[bytes]:
        try:
            yield from decoded_body(response, url, ends_at, deadline)
        except httpx.TimeoutException as error:
            raise exceptions.SlowRetrievalError(too_slow(url, deadline)) from error
        except httpx.HTTPError as error:
            raise exceptions.DownloadError(f"cannot fetch {url}: {error}") from error
        finally:
            response.close()


def decoded_body(
    response: httpx.Response, url: str, ends_at: float, deadline: float
) -> Iterator[bytes]:
    """The body of a streamed response, gzip decoded, in pieces of at most
    ``CHUNK_BYTES``; raises ``SlowRetrievalError`` once ``ends_at`` (a monotonic time)
    has passed. Raw bytes are read as they arrive, so the clock is checked on every
    read, even while a compressed header dribbles in and nothing decodes yet."""
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity", "gzip"):
        raise exceptions.DownloadError(f"{url} came in an encoding not asked for ({encoding})")
    decompressor = zlib.decompressobj(wbits=31) if encoding == "gzip" else None
    for raw in response.iter_raw():
        if time.monotonic() > ends_at:
            raise exceptions.SlowRetrievalError(too_slow(url, deadline))
        if decompressor is None:
            yield raw
            continue
        yield from _inflated(decompressor, raw, url)
    if decompressor is not None:
        yield from _inflated(decompressor, b"", url)
    if time.monotonic() > ends_at:
        raise exceptions.SlowRetrievalError(too_slow(url, deadline))


def _inflated(decompressor: zlib._Decompress, data: bytes, url: str) -> Iterator[bytes]:
    # At most CHUNK_BYTES out per call: a small gzip bomb never becomes one huge
    # buffer, and python-tuf stops counting at its length limit.
    pending = data
    while True:
        try:
            piece = decompressor.decompress(pending, CHUNK_BYTES)
        except zlib.error as error:
            raise exceptions.DownloadError(f"{url} is not valid gzip: {error}") from None
        if piece:
            yield piece
        pending = decompressor.unconsumed_tail
        if not pending and len(piece) < CHUNK_BYTES:
            return
