"""Request-provided strings (a multipart file name, a repository name, a path) reach the
server's log: each must stay on its one line, escaped, so that nobody can forge a log
line or send escape sequences to the terminal of whoever reads the log."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.harness import ServerProcess

FORGED = "2026-01-01 00:00:00,000 trustkit.server published registry.test/forged"


def _upload_named(server: ServerProcess, gun: str, filename: str) -> httpx.Response:
    """A raw multipart upload whose one file has FILENAME as is (a bare line feed in a
    part's header passes the multipart parser)."""
    body = (
        b'--b\r\nContent-Disposition: form-data; name="files"; filename="'
        + filename.encode()
        + b'"\r\nContent-Type: application/json\r\n\r\n{}\r\n--b--\r\n'
    )
    return httpx.post(
        server.metadata_url(gun),
        content=body,
        headers={**server.auth_headers(), "Content-Type": "multipart/form-data; boundary=b"},
        timeout=30,
    )


def test_a_file_name_with_a_newline_and_an_escape_is_one_escaped_log_line(
    start_server: Any, gun: str
):
    server: ServerProcess = start_server()
    answer = _upload_named(server, gun, f"evil\n{FORGED}\x1b[31m.json")
    assert answer.status_code == 400, answer.text
    server.stop()  # the log is complete
    log = server.log_path.read_text()
    assert "\x1b" not in log
    assert not any(line.startswith(FORGED) for line in log.splitlines()), log
    [line] = [line for line in log.splitlines() if "forged" in line]
    assert "refused upload" in line and "bad_role_name" in line
    assert "evil\\n" in line and ("\\x1b" in line or "\\u001b" in line), line


def test_a_path_with_a_newline_is_one_escaped_log_line(start_server: Any):
    server: ServerProcess = start_server()
    forged = FORGED.replace(" ", "%20")
    answer = httpx.get(f"{server.url}/v2/a%0A{forged}%1B[31m/_trust/tuf/root.json", timeout=30)
    assert answer.status_code in (400, 404)
    server.stop()
    log = server.log_path.read_text()
    assert "\x1b" not in log
    assert not any(line.startswith(FORGED) for line in log.splitlines()), log
