"""The host agent: a resident verifier that trustkit commands ask over a Unix socket.

Its decisions are the in-process ones — the same function, words and exit codes — made
on metadata at most ``--freshness`` seconds old, and a bad client never stops it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.agent_process import AgentProcess
from tests.support.harness import DIGEST_A, DIGEST_B, ServerProcess, Trustkit


@pytest.fixture
def agent(tmp_path: Path, server: ServerProcess) -> Iterator[AgentProcess]:
    process = AgentProcess(tmp_path / "agent" / ".trustkit", server.url).start()
    yield process
    process.stop()


def _sign(publisher: Trustkit, gun: str, tag: str, digest: str) -> None:
    signed = publisher("sign", f"{gun}:{tag}", "--digest", digest, "--size", "10")
    assert signed.code == 0, signed.err


def _ask_raw(agent: AgentProcess, payload: bytes, timeout: float = 10) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout)
        client.connect(str(agent.socket))
        client.sendall(payload)
        received = b""
        while True:
            chunk = client.recv(65536)
            if not chunk:
                return received
            received += chunk


def test_verify_and_resolve_through_the_agent_answer_as_in_process(
    agent: AgentProcess, publisher: Trustkit, host: Trustkit, gun: str
):
    publisher("init", gun)
    _sign(publisher, gun, "1.0", DIGEST_A)

    via_agent = host("verify", f"{gun}:1.0", "--offline", "--json", env=agent.cli_env)
    in_process = host("verify", f"{gun}:1.0", "--offline", "--json", "--no-agent")
    resolved = host("resolve", f"{gun}:1.0", env=agent.cli_env)

    assert via_agent.code == 0, via_agent.err
    assert via_agent.json == in_process.json
    assert resolved.out.strip() == f"{gun}@{DIGEST_A}"
    # The agent decided: this host's own trust store had to be filled by --no-agent.
    assert "trusting the root" in via_agent.err  # the agent's first use, reported


def test_refusals_through_the_agent_are_the_in_process_ones(
    agent: AgentProcess, publisher: Trustkit, host: Trustkit, gun: str
):
    publisher("init", gun)
    _sign(publisher, gun, "1.0", DIGEST_A)

    via_agent = host("verify", f"{gun}:9.9", "--offline", env=agent.cli_env)
    in_process = host("verify", f"{gun}:9.9", "--offline", "--no-agent")

    assert via_agent.code == in_process.code == 1
    assert via_agent.err.splitlines()[-1] == in_process.err.splitlines()[-1]
    assert f"no signed tag 9.9 in {gun} (signed tags: 1.0)" in via_agent.err


def test_a_new_tag_is_seen_after_the_freshness_window_not_before(
    tmp_path: Path, server: ServerProcess, publisher: Trustkit, host: Trustkit, gun: str
):
    publisher("init", gun)
    _sign(publisher, gun, "1.0", DIGEST_A)
    lazy = AgentProcess(tmp_path / "lazy", server.url, ("--freshness", "600")).start()
    eager = AgentProcess(tmp_path / "eager", server.url, ("--freshness", "0")).start()
    try:
        for each in (lazy, eager):
            assert host("resolve", f"{gun}:1.0", env=each.cli_env).code == 0

        _sign(publisher, gun, "2.0", DIGEST_B)

        stale = host("resolve", f"{gun}:2.0", env=lazy.cli_env)
        fresh = host("resolve", f"{gun}:2.0", env=eager.cli_env)
        assert stale.code == 1  # within its 600 s, the lazy agent answers from memory
        assert "no signed tag 2.0" in stale.err
        assert fresh.code == 0, fresh.err
        assert fresh.out.strip() == f"{gun}@{DIGEST_B}"
    finally:
        lazy.stop()
        eager.stop()


def test_a_command_with_another_server_or_policy_decides_in_process(
    agent: AgentProcess, publisher: Trustkit, host: Trustkit, gun: str, tmp_path: Path
):
    publisher("init", gun)
    _sign(publisher, gun, "1.0", DIGEST_A)
    policy = tmp_path / "policy.toml"
    policy.write_text('default = "signed"\n')

    other_policy = host("resolve", f"{gun}:1.0", "--policy", str(policy), env=agent.cli_env)
    no_server = host("resolve", f"{gun}:1.0", "--server", "http://127.0.0.1:9", env=agent.cli_env)

    assert other_policy.code == 0, other_policy.err
    assert no_server.code == 3  # in-process against the server it named, not the agent's
    assert "trustkit:" in no_server.err


def test_asking_the_agent_imports_no_tuf_httpx_or_cryptography(
    agent: AgentProcess, publisher: Trustkit, host: Trustkit, gun: str
):
    publisher("init", gun)
    _sign(publisher, gun, "1.0", DIGEST_A)
    probe = (
        "import sys, json\nfrom trustkit import cli\n"
        f"code = cli.main(['resolve', {f'{gun}:1.0'!r}], {host.environment(agent.cli_env)!r})\n"
        "heavy = sorted(m for m, loaded in sys.modules.items() if loaded and m.split('.')[0] in "
        "('tuf', 'httpx', 'cryptography', 'securesystemslib', 'client'))\n"
        "print(json.dumps({'code': code, 'heavy': heavy}))"
    )

    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )

    report = json.loads(done.stdout.splitlines()[-1])
    assert report == {"code": 0, "heavy": []}
    assert f"{gun}@{DIGEST_A}" in done.stdout


def test_bad_clients_get_an_error_or_are_cut_and_the_agent_keeps_answering(
    agent: AgentProcess, publisher: Trustkit, host: Trustkit, gun: str
):
    publisher("init", gun)
    _sign(publisher, gun, "1.0", DIGEST_A)

    malformed = json.loads(_ask_raw(agent, b"{not json\n"))
    wrong_shape = json.loads(_ask_raw(agent, b'{"v": 1, "op": "decide", "reference": 7}\n'))
    huge = _ask_raw(agent, b"x" * (256 * 1024))  # no newline within the limit: cut
    # A client that never finishes its line holds no one up, and is cut in time.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dribbler:
        dribbler.settimeout(30)
        dribbler.connect(str(agent.socket))
        dribbler.sendall(b'{"v": 1, "op": "deci')
        meanwhile = host("resolve", f"{gun}:1.0", env=agent.cli_env)
        started = time.monotonic()
        cut = dribbler.recv(1024)
        waited = time.monotonic() - started

    assert malformed["ok"] is False and malformed["error"]["code"] == "bad_request"
    assert wrong_shape["ok"] is False and "names no reference" in wrong_shape["error"]["message"]
    assert huge == b""
    assert meanwhile.code == 0, meanwhile.err
    assert cut == b"" and waited < 25
    assert agent.process is not None and agent.process.poll() is None
    assert host("resolve", f"{gun}:1.0", env=agent.cli_env).code == 0


def test_an_agent_that_answers_nonsense_is_a_refusal_not_a_silent_fallback(
    tmp_path: Path, host: Trustkit, gun: str
):
    fake = Path(f"/tmp/tk-fake-{tmp_path.name[-12:]}.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(fake))
    server.listen(1)
    try:
        import threading

        def answer() -> None:
            connection, _ = server.accept()
            connection.recv(65536)
            connection.sendall(b"this is not the agent\n")
            connection.close()

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        refused = host("resolve", f"{gun}:1.0", env={"TRUSTKIT_AGENT": str(fake)})
        thread.join(10)
    finally:
        server.close()
        fake.unlink()

    assert refused.code == 3
    assert "answered something unreadable" in refused.err


def test_a_policy_changed_while_the_agent_runs_applies_at_once(
    tmp_path: Path, server: ServerProcess, host: Trustkit
):
    policy = tmp_path / "policy.toml"
    policy.write_text('default = "unsigned-ok"\n')
    process = AgentProcess(
        tmp_path / "agent" / ".trustkit", server.url, ("--policy", str(policy))
    ).start()
    asking = {**process.cli_env, "TRUSTKIT_POLICY": str(policy)}
    unsigned = "registry.test/nobody/signs-this:1.0"
    try:
        allowed = host("resolve", unsigned, env=asking)
        policy.write_text('default = "signed"\n')  # tightened
        tightened = host("resolve", unsigned, env=asking)
        policy.write_text("default = [not toml\n")  # broken
        broken = host("resolve", unsigned, env=asking)
        policy.write_text('default = "unsigned-ok"\n')
        mended = host("resolve", unsigned, env=asking)
    finally:
        process.stop()

    assert allowed.code == 0, allowed.err
    assert tightened.code == 1
    assert "has no trust data for it" in tightened.err
    assert broken.code == 2
    assert "does not read, so it refuses everything" in broken.err
    assert mended.code == 0, mended.err
