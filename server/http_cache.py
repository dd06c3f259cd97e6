"""How metadata goes out over HTTP: ETags, cache lifetimes and gzip.

``N.role.json`` never changes, so caches keep it for a year; a role's newest version
only briefly (``LATEST_MAX_AGE``). Metadata of ``GZIP_MIN_BYTES`` or more goes
gzip-compressed to a client that accepts gzip, when the server is started with
compression on (``TRUSTKIT_SERVER_GZIP``, read in ``server.main``); smaller files
(timestamp.json, the hot path) always go as they are.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections import OrderedDict

from fastapi import Request
from fastapi.responses import Response

from server.metrics import Metrics
from server.settings import GZIP_DEFAULT, GZIP_ENV

__all__ = [
    "GZIP_DEFAULT",
    "GZIP_ENV",
    "GZIP_MIN_BYTES",
    "LATEST_MAX_AGE",
    "Compression",
    "cacheable",
]

LATEST_MAX_AGE = 5  # seconds a cache may serve a role's newest version without asking
GZIP_MIN_BYTES = 1024  # smaller metadata (timestamp.json) is not worth compressing


class Compression:
    """gzip bodies of metadata, kept by the sha256 of what they compress.

    Keyed by content, an entry is never stale: ``N.role.json`` never changes, and a
    role's newest version is served under its own digest until a publish replaces it.
    So a file many hosts ask for is compressed once, not once per host — however large:
    bodies of more than an eighth of the budget are kept apart, in a budget of their
    own, so one huge role neither flushes the many small ones nor is compressed again
    for every anonymous request. Requests for a body being compressed wait for it
    rather than compress it too.
    """

    def __init__(
        self, *, enabled: bool, max_bytes: int = 32 * 1024 * 1024, metrics: Metrics | None = None
    ) -> None:
        self.enabled = enabled
        self._small = _ByteBudgetLRU(max_bytes)
        self._large = _ByteBudgetLRU(2 * max_bytes)
        self._small_at_most = max_bytes // 8
        self._metrics = metrics
        self._lock = threading.Lock()  # routes run in a thread pool
        self._in_progress: dict[str, threading.Lock] = {}

    def wanted(self, data: bytes, request: Request) -> bool:
        return (
            self.enabled
            and len(data) >= GZIP_MIN_BYTES
            and _accepts_gzip(request.headers.get("accept-encoding"))
        )

    def compressed(self, digest: str, data: bytes) -> bytes:
        body = self._cached(digest)
        if body is not None:
            return body
        with self._lock:
            working = self._in_progress.setdefault(digest, threading.Lock())
        with working:  # one compression per body at a time; the others wait for it
            body = self._cached(digest)
            if body is None:
                # mtime=0: the same content always compresses to the same bytes.
                body = gzip.compress(data, compresslevel=6, mtime=0)
                if self._metrics is not None:
                    self._metrics.count("trustkit_gzip_compressions_total")
                with self._lock:
                    cache = self._small if len(body) <= self._small_at_most else self._large
                    cache.put(digest, body)
        with self._lock:
            self._in_progress.pop(digest, None)
        return body

    def _cached(self, digest: str) -> bytes | None:
        with self._lock:
            return self._small.get(digest) or self._large.get(digest)


class _ByteBudgetLRU:
    """Bodies by key, the least recently used dropped once they pass ``max_bytes``; a
    body larger than the whole budget is not kept. Not thread-safe on its own."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._bodies: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0

    def get(self, key: str) -> bytes | None:
        body = self._bodies.get(key)
        if body is not None:
            self._bodies.move_to_end(key)
        return body

    def put(self, key: str, body: bytes) -> None:
        if key in self._bodies or len(body) > self._max_bytes:
            return
        self._bodies[key] = body
        self._size += len(body)
        while self._size > self._max_bytes:
            _, dropped = self._bodies.popitem(last=False)
            self._size -= len(dropped)


def _accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an Accept-Encoding header takes gzip: listed (or ``*`` without gzip
    listed) with a q-value above 0."""
    gzip_q: float | None = None
    any_q: float | None = None
    for item in (accept_encoding or "").split(","):
        coding, *parameters = (part.strip() for part in item.split(";"))
        q = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        coding = coding.lower()
        if coding in ("gzip", "x-gzip"):
            gzip_q = max(q, gzip_q or 0.0)
        elif coding == "*":
            any_q = q
    if gzip_q is not None:
        return gzip_q > 0
    return any_q is not None and any_q > 0


def _none_match(etag: str, if_none_match: str) -> bool:
    """If-None-Match's weak comparison: whether the header lists ``etag`` (W/ or not)
    or is ``*``."""
    opaque = etag.removeprefix("W/")
    return any(
        tag == "*" or tag.removeprefix("W/") == opaque
        for tag in (tag.strip() for tag in if_none_match.split(","))
    )


def cacheable(
    data: bytes, request: Request, compression: Compression, *, immutable: bool, private: bool
) -> Response:
    """Metadata with an ETag: ``N.role.json`` never changes, so caches and CDNs keep it
    for a year; a role's newest version only briefly. Answers 304 to a matching
    If-None-Match. Reads behind a token are cached by the client only.

    The gzip representation has an ETag of its own, weak (``W/"<sha256>-gzip"``: the
    same content, though not necessarily the same bytes from another server's zlib),
    and every answer says ``Vary: Accept-Encoding``, so a cache keeps the two apart."""
    digest = hashlib.sha256(data).hexdigest()
    compressed = compression.wanted(data, request)
    etag = f'W/"{digest}-gzip"' if compressed else f'"{digest}"'
    scope = "private" if private else "public"
    policy = (
        f"{scope}, max-age=31536000, immutable"
        if immutable
        else f"{scope}, max-age={LATEST_MAX_AGE}"
    )
    headers = {"ETag": etag, "Cache-Control": policy, "Vary": "Accept-Encoding"}
    if _none_match(etag, request.headers.get("if-none-match", "")):
        return Response(status_code=304, headers=headers)
    if compressed:
        headers["Content-Encoding"] = "gzip"
        data = compression.compressed(digest, data)
    return Response(data, media_type="application/json", headers=headers)
