"""``trustkit changefeed``: the server's audit log from the command line, read with an
admin token, as text (escaped: every string in it is the server's), as JSON, one
repository's, page after page, and followed as it grows until Ctrl-C."""

from __future__ import annotations

import contextlib
import json
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from tests.support.harness import DIGEST_A, DIGEST_B, ServerProcess, Trustkit, publisher_cli
from tests.support.local_http import LocalHTTPServer
from trustkit.cli import shapes

A, B = "registry.test/feed/a", "registry.test/feed/b"
ENTRY_KEYS = shapes.ChangefeedEntryJSON.__required_keys__


@pytest.fixture
def own_server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    """A server of the test's own: its changefeed holds this test's changes only."""
    return start_server()


@pytest.fixture
def busy(own_server: ServerProcess, tmp_path: Path) -> Trustkit:
    """Three changes: A made (1), A's tag 1.0 signed (2), B made (3)."""
    publisher = publisher_cli(tmp_path / "publisher", own_server.url)
    for args in (
        ("init", A),
        ("sign", f"{A}:1.0", "--digest", DIGEST_A, "--size", "100"),
        ("init", B),
    ):
        done = publisher(*args)
        assert done.code == 0, done.err
    return publisher


def _token(server: ServerProcess, name: str, scope: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "server", "token", "create", "--name", name, "--scope", scope,
         "--data-dir", str(server.data_dir)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_feed_lists_every_change_oldest_first_as_json_and_text(busy: Trustkit):
    as_json = busy("changefeed", "--json")
    text = busy("changefeed")

    assert as_json.code == 0, as_json.err
    entries = as_json.json["entries"]
    assert [(e["seq"], e["repository"], e["action"]) for e in entries] == [
        (1, A, "publish"),
        (2, A, "publish"),
        (3, B, "publish"),
    ]
    assert entries[1]["versions"]["targets"] == 2
    assert all(e.keys() == ENTRY_KEYS for e in entries)
    assert all(e["token"] for e in entries)  # the name of the token that did it
    assert as_json.json["next"] == 3
    assert text.code == 0, text.err
    header, *lines = text.out.splitlines()
    assert header.split() == ["SEQ", "TIME", "ACTION", "REPOSITORY", "TOKEN", "VERSIONS"]
    assert [line.split()[0] for line in lines] == ["1", "2", "3"]
    assert A in lines[1] and "targets v2" in lines[1]


def test_after_limit_and_repository_page_through_the_feed(busy: Trustkit):
    first = busy("changefeed", "--limit", "1", "--json")
    rest = busy("changefeed", "--after", str(first.json["next"]), "--json")
    only_b = busy("changefeed", "--repository", B, "--json")
    only_a_after_1 = busy("changefeed", "--repository", A, "--after", "1", "--json")
    nothing = busy("changefeed", "--after", "3")

    assert [e["seq"] for e in first.json["entries"]] == [1]
    assert "more may follow: trustkit changefeed --after 1" in first.err
    assert [e["seq"] for e in rest.json["entries"]] == [2, 3]
    assert [e["seq"] for e in only_b.json["entries"]] == [3]
    assert [e["seq"] for e in only_a_after_1.json["entries"]] == [2]
    assert nothing.code == 0 and nothing.out.strip() == "no changes after 3"


def test_a_token_without_an_admin_scope_or_no_token_is_told_what_it_needs(
    busy: Trustkit, own_server: ServerProcess
):
    push = _token(own_server, "ci", "push:registry.test/**")

    refused = busy("changefeed", env={"TRUSTKIT_TOKEN": push})
    anonymous = busy("changefeed", env={"TRUSTKIT_TOKEN": ""})

    for result in (refused, anonymous):
        assert result.code == 1
        assert result.out == "" and "Traceback" not in result.err
        assert "needs a token with an admin scope" in result.err
        assert "trustkit-server token create --name audit --scope 'admin:**'" in result.err
    assert "may not read the changefeed" in refused.err


def test_an_admin_scope_on_some_repositories_sees_only_theirs(
    busy: Trustkit, own_server: ServerProcess
):
    admin_of_b = _token(own_server, "b-admin", f"admin:{B}")

    result = busy("changefeed", "--json", env={"TRUSTKIT_TOKEN": admin_of_b})

    assert result.code == 0, result.err
    assert [e["repository"] for e in result.json["entries"]] == [B]


@pytest.mark.parametrize(
    ("after", "limit"), [("-1", None), ("x", None), (str(2**64), None), (None, "0")]
)
def test_bad_positions_and_limits_are_usage_errors(
    tmp_path: Path, after: str | None, limit: str | None
):
    args = [*(["--after", after] if after else []), *(["--limit", limit] if limit else [])]
    result = Trustkit(tmp_path, "http://127.0.0.1:9")("changefeed", *args)

    assert result.code == 2
    assert "must be a whole number" in result.err


def test_follow_with_a_limit_stops_by_itself_with_json_lines(busy: Trustkit):
    result = busy("changefeed", "--follow", "--limit", "2", "--json", "--interval", "0.05")

    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [1, 2]


def _lines_of(stream: Any) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    return lines


def test_follow_prints_new_changes_as_they_come_and_ctrl_c_ends_it_cleanly(
    busy: Trustkit, own_server: ServerProcess
):
    follower = subprocess.Popen(
        [sys.executable, "-m", "trustkit", "changefeed", "--follow", "--json",
         "--interval", "0.1", "--after", "2"],
        env=busy.environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        lines = _lines_of(follower.stdout)
        assert json.loads(lines.get(timeout=60))["seq"] == 3
        signed = busy("sign", f"{B}:2.0", "--digest", DIGEST_B, "--size", "100")
        assert signed.code == 0, signed.err
        new = json.loads(lines.get(timeout=60))
        assert (new["seq"], new["repository"]) == (4, B)
    finally:
        follower.send_signal(signal.SIGINT)
        _, err = follower.communicate(timeout=60)

    assert follower.returncode == 0, err
    assert "Traceback" not in err
    assert "stopped; go on from here with: --after 4" in err


# --- a hostile or broken server ------------------------------------------------------


def _entry(seq: int, **fields: Any) -> dict[str, Any]:
    return {
        "seq": seq,
        "time": "2026-12-06T10:00:00+00:00",
        "repository": "registry.test/x",
        "action": "publish",
        "versions": {"targets": seq},
        "token": "ci",
        "detail": None,
        **fields,
    }


Pages = Callable[[int], object]  # after -> the JSON body (or status, body) answered


@contextlib.contextmanager
def _fake_server(pages: Pages) -> Iterator[str]:
    """A server that answers the changefeed with whatever ``pages`` says."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlparse(self.path).query)
            answer = pages(int(query["after"][0]))
            status, document = answer if isinstance(answer, tuple) else (200, answer)
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    with LocalHTTPServer(Handler) as url:
        yield url


def test_names_from_the_server_cannot_drive_the_terminal(tmp_path: Path):
    hostile = _entry(
        1,
        repository="registry.test/x\x1b[2K\rforged",
        action="publish\u202e",
        token="ci\x1b]0;title\x07",
        detail="line\nbreak",
    )
    with _fake_server(lambda after: {"entries": [hostile] if after == 0 else [], "next": 1}) as url:
        text = Trustkit(tmp_path, url)("changefeed")
        as_json = Trustkit(tmp_path, url)("changefeed", "--json")

    assert text.code == 0, text.err
    assert not any(char in text.out for char in "\x1b\x07\r\u202e")
    assert "\\x1b[2K\\x0dforged" in text.out and "\\u202e" in text.out
    assert len(text.out.splitlines()) == 2  # the header and one line: no line break forged
    assert as_json.json["entries"][0]["repository"] == "registry.test/x\x1b[2K\rforged"


@pytest.mark.parametrize(
    ("page", "says"),
    [
        ({"entries": [_entry(1)], "next": 1}, "goes back to earlier entries"),  # after=5
        ({"entries": [_entry(7), _entry(6)], "next": 7}, "not in rising 'seq' order"),
        ({"entries": [_entry(6)], "next": 2}, "'next' (2) is behind its entries"),
        ({"entries": [{**_entry(6), "seq": True}], "next": 6}, "'seq' is not an integer"),
        ({"entries": [_entry(6, versions={"targets": "1"})], "next": 6}, "version of"),
        ({"entries": [_entry(6, time="yesterday")], "next": 6}, "not an ISO 8601 time"),
        ({"entries": "nope", "next": 6}, "'entries' is not a list"),
        ([], "is not a JSON object"),
    ],
    ids=[
        "backwards",
        "unordered",
        "next-behind",
        "bool-seq",
        "str-version",
        "time",
        "list",
        "array",
    ],
)
def test_a_page_that_is_not_the_wire_format_is_refused(tmp_path: Path, page: object, says: str):
    with _fake_server(lambda after: page) as url:
        result = Trustkit(tmp_path, url)("changefeed", "--after", "5")

    assert result.code == 1, result.out
    assert "the server sent an unreadable changefeed page" in result.err
    assert says in result.err
    assert result.out == "" and "Traceback" not in result.err


def test_a_sparse_feed_is_followed_past_pages_of_lines_the_token_may_not_read(tmp_path: Path):
    """A token that administers few repositories gets empty pages whose ``next`` moves
    on (the server reads at most 10,000 lines a request): the client goes on to the end."""
    asked: list[int] = []

    def pages(after: int) -> object:
        asked.append(after)
        if after < 20_000:
            return {"entries": [], "next": after + 10_000}
        if after == 20_000:
            return {"entries": [_entry(20_001)], "next": 20_001}
        return {"entries": [], "next": after}

    with _fake_server(pages) as url:
        result = Trustkit(tmp_path, url)("changefeed", "--json")

    assert result.code == 0, result.err
    assert [e["seq"] for e in result.json["entries"]] == [20_001]
    assert result.json["next"] == 20_001
    assert asked == [0, 10_000, 20_000, 20_001]


def test_the_server_and_the_client_share_one_wire_type(busy: Trustkit, own_server: ServerProcess):
    """What the server sends is a ``ChangefeedPage``, read back to the same value."""
    import httpx

    from trustkit.wire import ChangefeedPage, loads

    body = httpx.get(
        f"{own_server.url}/v2/_trust/changefeed", headers=own_server.auth_headers(), timeout=30
    ).content
    page = ChangefeedPage.from_dict(loads(body))

    assert page.to_dict() == json.loads(body)
    assert ChangefeedPage.from_dict(page.to_dict()) == page
    assert [entry.seq for entry in page.entries] == [1, 2, 3]


def test_follow_waits_for_a_server_that_goes_away_and_comes_back(tmp_path: Path):
    calls = {"n": 0}

    def pages(after: int) -> object:
        calls["n"] += 1
        if after == 0:
            return {"entries": [_entry(1)], "next": 1}
        if calls["n"] < 6:  # answered once up to date, then down for a while
            return {"entries": [], "next": 1} if calls["n"] == 2 else (503, {})
        return {"entries": [_entry(2)], "next": 2}

    with _fake_server(pages) as url:
        result = Trustkit(tmp_path, url)(
            "changefeed", "--follow", "--limit", "2", "--json", "--interval", "0.05"
        )

    assert result.code == 0, result.err
    assert [json.loads(line)["seq"] for line in result.out.splitlines()] == [1, 2]
    assert result.err.count("trying again every 0.05 s") == 1  # said once, not per try
    assert "the server answers again; following on" in result.err


def test_follow_gives_up_at_once_when_the_server_never_answered(tmp_path: Path):
    with _fake_server(lambda after: (503, {})) as url:
        result = Trustkit(tmp_path, url)("changefeed", "--follow", "--interval", "0.05")

    assert result.code == 3
    assert "failed (503)" in result.err and "Traceback" not in result.err
