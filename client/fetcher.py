"""python-tuf's fetcher interface over httpx, so the updater shares our HTTP settings."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
from tuf.api import exceptions
from tuf.ngclient import FetcherInterface

__all__ = ["HttpxFetcher"]

CHUNK_BYTES = 64 * 1024


class HttpxFetcher(FetcherInterface):
    def __init__(self, http: httpx.Client) -> None:
        self._http = http

    def _fetch(self, url: str) -> Iterator[bytes]:
        try:
            # gzip only (not whatever decoders happen to be installed): metadata is JSON
            # and compresses well; python-tuf counts the decoded bytes against its limits.
            request = self._http.build_request("GET", url, headers={"Accept-Encoding": "gzip"})
            response = self._http.send(request, stream=True)
        except httpx.TimeoutException as error:
            raise exceptions.SlowRetrievalError(f"timed out fetching {url}") from error
        except httpx.HTTPError as error:
            raise exceptions.DownloadError(f"cannot fetch {url}: {error}") from error
        if response.status_code != 200:
            response.close()
            raise exceptions.DownloadHTTPError(
                f"{url} answered {response.status_code}", response.status_code
            )
        return self._chunks(response, url)

    @staticmethod
    def _chunks(response: httpx.Response, url: str) -> Iterator[bytes]:
        try:
            yield from response.iter_bytes(CHUNK_BYTES)
        except httpx.TimeoutException as error:
            raise exceptions.SlowRetrievalError(f"timed out fetching {url}") from error
        except httpx.HTTPError as error:
            raise exceptions.DownloadError(f"cannot fetch {url}: {error}") from error
        finally:
            response.close()
