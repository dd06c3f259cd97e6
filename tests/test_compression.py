"""Compressed metadata: a server started with ``TRUSTKIT_SERVER_GZIP=1`` answers a client
that accepts gzip with gzip for files of 1 KiB or more, under an ETag of its own and
``Vary: Accept-Encoding``; timestamp.json, small and asked for most, goes as it is."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.app import GZIP_ENV, GZIP_MIN_BYTES
from tests.support.harness import DIGEST_A, ServerProcess, Trustkit, publisher_cli, sign_many
from tests.support.local_http import LocalHTTPServer

# What a client sends through a proxy and what the server's answer carries back.
FORWARDED_REQUEST = ("accept-encoding", "if-none-match", "authorization")
FORWARDED_ANSWER = ("content-type", "content-encoding", "etag", "cache-control", "vary")


@contextlib.contextmanager
def _server(directory: Path, gzip_setting: str) -> Iterator[ServerProcess]:
    process = ServerProcess(directory / "data")
    try:
        with pytest.MonkeyPatch.context() as env:  # the server process inherits it
            env.setenv(GZIP_ENV, gzip_setting)
            process.start()
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def gzip_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with _server(tmp_path_factory.mktemp("gzip-server"), "1") as process:
        yield process


@pytest.fixture
def published(gzip_server: ServerProcess, tmp_path: Path, gun: str) -> str:
    """GUN initialised and 1.0 signed on the gzip server; returns GUN."""
    publisher = publisher_cli(tmp_path / "publisher" / ".trustkit", gzip_server.url)
    assert publisher("init", gun).code == 0
    result = publisher("sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "1")
    assert result.code == 0, result.err
    return gun


def wire(url: str, **headers: str) -> tuple[httpx.Response, bytes]:
    """The answer and its body as sent, not decoded (only the headers given are sent)."""
    with httpx.Client(headers={"Accept-Encoding": "identity"}) as client:
        request = client.build_request("GET", url, headers=headers)
        response = client.send(request, stream=True)
        try:
            return response, b"".join(response.iter_raw())
        finally:
            response.close()


def test_large_metadata_goes_gzipped_under_an_etag_and_vary_of_its_own(
    gzip_server: ServerProcess, published: str
) -> None:
    url = gzip_server.metadata_url(published, "1.root.json")
    plain, plain_body = wire(url)
    assert len(plain_body) >= GZIP_MIN_BYTES
    assert "content-encoding" not in plain.headers
    assert plain.headers["etag"] == f'"{hashlib.sha256(plain_body).hexdigest()}"'
    assert plain.headers["vary"] == "Accept-Encoding"

    packed, packed_body = wire(url, **{"Accept-Encoding": "gzip, deflate"})
    assert packed.status_code == 200
    assert packed.headers["content-encoding"] == "gzip"
    assert packed.headers["vary"] == "Accept-Encoding"
    assert packed.headers["cache-control"] == plain.headers["cache-control"]
    assert packed.headers["etag"] == f'W/"{hashlib.sha256(plain_body).hexdigest()}-gzip"'
    assert int(packed.headers["content-length"]) == len(packed_body) < len(plain_body) // 2
    assert gzip.decompress(packed_body) == plain_body
    assert wire(url, **{"Accept-Encoding": "gzip"})[1] == packed_body  # compressed once

    for accept, encoded in [
        ("gzip;q=0, identity", False),
        ("br", False),
        ("*", True),
        ("x-gzip;q=0.5", True),
        ("GZIP ; q=1.0", True),
    ]:
        answer, _ = wire(url, **{"Accept-Encoding": accept})
        assert ("content-encoding" in answer.headers) is encoded, accept

    newest, newest_body = wire(gzip_server.metadata_url(published, "root.json"), **{
        "Accept-Encoding": "gzip"
    })  # fmt: skip
    assert newest.headers["content-encoding"] == "gzip"
    assert newest.headers["cache-control"] == "public, max-age=5"
    assert gzip.decompress(newest_body) == plain_body


def test_each_encoding_revalidates_with_its_own_etag(
    gzip_server: ServerProcess, published: str
) -> None:
    url = gzip_server.metadata_url(published, "1.root.json")
    plain, plain_body = wire(url)
    packed, _ = wire(url, **{"Accept-Encoding": "gzip"})
    plain_tag, packed_tag = plain.headers["etag"], packed.headers["etag"]

    for accept, tag in [("identity", plain_tag), ("gzip", packed_tag)]:
        fresh, body = wire(url, **{"Accept-Encoding": accept, "If-None-Match": tag})
        assert fresh.status_code == 304 and body == b""
        assert fresh.headers["etag"] == tag
        assert fresh.headers["vary"] == "Accept-Encoding"
        assert "content-encoding" not in fresh.headers

    # A cache holding one encoding gets the other in full when it asks for that one.
    swapped, body = wire(url, **{"Accept-Encoding": "gzip", "If-None-Match": plain_tag})
    assert swapped.status_code == 200 and gzip.decompress(body) == plain_body
    swapped, body = wire(url, **{"Accept-Encoding": "identity", "If-None-Match": packed_tag})
    assert swapped.status_code == 200 and body == plain_body
    # If-None-Match compares weakly: with or without W/, and a list of both.
    both = f"{plain_tag}, {packed_tag.removeprefix('W/')}"
    assert wire(url, **{"Accept-Encoding": "gzip", "If-None-Match": both})[0].status_code == 304


def test_timestamp_json_goes_as_it_is(gzip_server: ServerProcess, published: str) -> None:
    answer, body = wire(
        gzip_server.metadata_url(published, "timestamp.json"), **{"Accept-Encoding": "gzip"}
    )
    assert answer.status_code == 200
    assert len(body) < GZIP_MIN_BYTES
    assert "content-encoding" not in answer.headers
    assert answer.headers["etag"] == f'"{hashlib.sha256(body).hexdigest()}"'
    assert answer.headers["vary"] == "Accept-Encoding"


def test_a_server_told_not_to_compress_never_does(tmp_path: Path, gun: str) -> None:
    with _server(tmp_path, "0") as server:
        publisher = publisher_cli(tmp_path / "publisher" / ".trustkit", server.url)
        assert publisher("init", gun).code == 0
        answer, body = wire(server.metadata_url(gun, "1.root.json"), **{"Accept-Encoding": "gzip"})
        assert len(body) >= GZIP_MIN_BYTES
        assert "content-encoding" not in answer.headers
        assert answer.headers["etag"] == f'"{hashlib.sha256(body).hexdigest()}"'


class CountingProxy(LocalHTTPServer):
    """A plain HTTP proxy in front of the server that passes requests and answers on
    unchanged (the body as sent, compressed or not) and counts the body bytes it sent
    back, by path, and notes their Content-Encoding."""

    def __init__(self, upstream: str, client: httpx.Client) -> None:
        self.sent: dict[str, int] = {}
        self.encodings: dict[str, str] = {}
        sent, encodings = self.sent, self.encodings

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                headers = {n: v for n in FORWARDED_REQUEST if (v := self.headers.get(n))}
                headers.setdefault("accept-encoding", "identity")
                request = client.build_request("GET", upstream + self.path, headers=headers)
                response = client.send(request, stream=True)
                try:
                    body = b"".join(response.iter_raw())
                finally:
                    response.close()
                self.send_response(response.status_code)
                for name in FORWARDED_ANSWER:
                    if name in response.headers:
                        self.send_header(name, response.headers[name])
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                sent[self.path] = sent.get(self.path, 0) + len(body)
                encodings[self.path] = response.headers.get("content-encoding", "identity")

            def log_message(self, format: str, *args: Any) -> None:
                return

        super().__init__(Handler)


def test_a_host_verifying_gets_gzip_on_the_wire_and_still_verifies(
    gzip_server: ServerProcess, published: str, tmp_path: Path
) -> None:
    gun = published
    publisher = publisher_cli(tmp_path / "publisher" / ".trustkit", gzip_server.url)
    sign_many(publisher, gun, [f"1.{n}" for n in range(1, 20)])  # targets.json over 1 KiB
    proxy = CountingProxy(gzip_server.url, http := httpx.Client(timeout=30))
    with http, proxy as proxy_url:
        host = Trustkit(tmp_path / "host" / ".trustkit", proxy_url)
        root_v1 = tmp_path / "root-v1.json"
        root_v1.write_bytes(httpx.get(gzip_server.metadata_url(gun, "1.root.json")).content)
        assert host("trust", "pin", gun, str(root_v1)).code == 0

        result = host("verify", f"{gun}:1.0", "--offline")
        assert result.code == 0, (
            "a host could not verify gzip-compressed metadata (client/fetcher.py must "
            f"hand python-tuf the decoded body, iter_bytes, not iter_raw): {result.err}"
        )
        assert result.out.strip() == DIGEST_A

    gzipped = [path for path, encoding in proxy.encodings.items() if encoding == "gzip"]
    assert any(path.endswith(".targets.json") for path in gzipped), proxy.encodings
    assert all(not path.endswith("/timestamp.json") for path in gzipped)
    plain_bytes = sum(
        len(httpx.get(gzip_server.url + path, headers={"Accept-Encoding": "identity"}).content)
        for path in gzipped
    )
    assert sum(proxy.sent[path] for path in gzipped) < plain_bytes // 2
