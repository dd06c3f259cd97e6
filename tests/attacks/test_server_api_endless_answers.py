"""A hostile trust server cannot fill a publisher's or an auditor's memory with an endless
answer, nor hold the command with one dribbled a byte at a time: every answer of the
server API is read whole within TRUSTKIT_DEADLINE and at most 64 MiB."""

from __future__ import annotations

import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from tests.support.harness import Trustkit
from tests.support.local_http import LocalHTTPServer

MIB = 1024 * 1024


class EndlessAnswer(BaseHTTPRequestHandler):
    """Answers every request with a 200 whose body never ends (chunked, 1 MiB pieces);
    stops after 200 MiB, so a client that never gives up still ends the test."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        piece = b"[" + b" " * (MIB - 1)
        try:
            for _ in range(200):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the client hung up: what it should do

    def log_message(self, *args: object) -> None:
        pass


class DribbledAnswer(EndlessAnswer):
    """Answers with a body of one byte every 0.2 s, for at most 60 s."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "300")
        self.end_headers()
        try:
            for _ in range(300):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass


def test_an_endless_changefeed_answer_is_refused(tmp_path: Path):
    with LocalHTTPServer(EndlessAnswer) as url:
        auditor = Trustkit(tmp_path / ".trustkit", url, {"TRUSTKIT_TOKEN": "tkt_" + "a" * 40})
        refused = auditor.process("changefeed")

    assert refused.code == 3, refused.err
    assert "sent more than 64 MiB" in refused.err
    assert "Traceback" not in refused.err


def test_a_dribbled_changefeed_answer_is_cut_off_at_the_deadline(tmp_path: Path):
    with LocalHTTPServer(DribbledAnswer) as url:
        auditor = Trustkit(
            tmp_path / ".trustkit",
            url,
            {"TRUSTKIT_TOKEN": "tkt_" + "a" * 40, "TRUSTKIT_DEADLINE": "2"},
        )
        refused = auditor.process("changefeed")

    assert refused.code == 3, refused.err
    assert "took longer than 2 s" in refused.err


class CreepingFeed(BaseHTTPRequestHandler):
    """A changefeed of empty pages whose ``next`` moves on by one each time: a client
    that follows ``next`` to the end would ask forever."""

    def do_GET(self) -> None:
        after = int(self.path.split("after=", 1)[1].split("&", 1)[0])
        body = b'{"entries": [], "next": %d}' % (after + 1)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_changefeed_of_endless_empty_pages_ends_and_says_where_to_go_on(tmp_path: Path):
    with LocalHTTPServer(CreepingFeed) as url:
        auditor = Trustkit(tmp_path / ".trustkit", url, {"TRUSTKIT_TOKEN": "tkt_" + "a" * 40})
        read = auditor.process("changefeed", "--json", timeout=300)

    assert read.code == 0, read.err
    assert read.json["entries"] == []
    assert "more may follow: trustkit changefeed --after 1000" in read.err
