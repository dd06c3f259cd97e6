"""-q/--quiet and -v/--verbose: quiet keeps errors, warnings and the requested output
and drops notes; verbose says which server or mirror, agent or in-process, every
request and its time, the roles verified and their versions; never a secret."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.agent_process import AgentProcess
from tests.support.harness import DIGEST_A, SERVER_TOKENS, ServerProcess, Trustkit
from trustkit.cli.options import split_passthrough
from trustkit.cli.parser import build_parser


@pytest.fixture
def signed(publisher: Trustkit, gun: str) -> str:
    assert publisher("init", gun).code == 0
    assert publisher("sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "10").code == 0
    return gun


@pytest.fixture
def agent(tmp_path: Path, server: ServerProcess) -> Iterator[AgentProcess]:
    process = AgentProcess(tmp_path / "agent" / ".trustkit", server.url).start()
    yield process
    process.stop()


def test_quiet_keeps_the_answer(host: Trustkit, signed: str):
    quiet = host("-q", "resolve", f"{signed}:1.0", "--no-agent")

    assert quiet.code == 0, quiet.err
    assert quiet.out.strip() == f"{signed}@{DIGEST_A}"


def test_quiet_keeps_the_first_use_warning(host: Trustkit, signed: str):
    quiet = host("-q", "inspect", signed)

    assert quiet.code == 0, quiet.err
    assert "1.0" in quiet.out
    assert "first use" in quiet.err  # a trust decision is never hidden


def test_quiet_keeps_errors(host: Trustkit, signed: str):
    refused = host("resolve", f"{signed}:nope", "--no-agent", "-q")

    assert refused.code == 1
    assert "no signed tag nope" in refused.err


def test_quiet_drops_notes(host: Trustkit):
    """trustkit docker --help says what the wrapper does before Docker's help: a note."""
    noisy = host.process("docker", "--help")
    quiet = host.process("-q", "docker", "--help")

    assert "trustkit docker: docker with every command" in noisy.err
    assert "trustkit docker" not in quiet.err
    assert quiet.code == noisy.code and "Usage:" in quiet.out + quiet.err


def test_quiet_keeps_warnings_that_ask_for_action(publisher: Trustkit, signed: str):
    checked = publisher("status", signed, "--check", "--warn-within", "20y", "--quiet")

    assert checked.code == 1
    assert "expire(s) soon" in checked.err
    assert signed in checked.out  # the table asked for


def test_verbose_names_the_server_requests_and_role_versions(
    publisher: Trustkit, signed: str, server: ServerProcess
):
    shown = publisher("-v", "status", signed)

    assert shown.code == 0, shown.err
    assert f"deciding in this process: server {server.url}, with an access token" in shown.err
    assert f"GET {server.url}/v2/{signed}/_trust/tuf/timestamp.json -> 200 (" in shown.err
    assert "/2.root.json -> 404 (" in shown.err  # no newer root
    assert "/2.targets.json -> 200 (" in shown.err
    assert f"debug: verified {signed}: root v1" in shown.err
    assert "debug: status took " in shown.err
    assert SERVER_TOKENS[server.url] not in shown.err  # the token is never printed
    assert shown.out == publisher("status", signed).out  # stdout unchanged


def test_verbose_says_the_verified_roles_and_their_versions(host: Trustkit, signed: str):
    shown = host("inspect", signed, "--verbose")

    assert shown.code == 0, shown.err
    assert f"debug: verified {signed}: root v1, targets v2" in shown.err


def test_verbose_never_prints_a_mirror_password(host: Trustkit, signed: str, server: ServerProcess):
    host_port = server.url.removeprefix("http://")
    mirror = f"http://reader:s3cret-word@{host_port}/?sig=s3cret-query"

    shown = host("-v", "resolve", f"{signed}:1.0", "--mirror", mirror)

    assert "s3cret" not in shown.err
    assert f"mirror http://{host_port}/" in shown.err


def test_without_verbose_no_diagnostics(host: Trustkit, signed: str):
    plain = host("resolve", f"{signed}:1.0", "--no-agent")

    assert plain.code == 0
    assert "debug:" not in plain.err


def test_verbose_says_the_agent_decided(host: Trustkit, signed: str, agent: AgentProcess):
    asked = host("-v", "resolve", f"{signed}:1.0", env=agent.cli_env)

    assert asked.code == 0, asked.err
    assert f"asking the host's agent at {agent.socket}" in asked.err
    assert "the host's agent decided; no metadata was fetched here" in asked.err
    assert "GET " not in asked.err


def test_verbose_says_when_the_decision_is_made_here(host: Trustkit, signed: str):
    here = host("-v", "resolve", f"{signed}:1.0", "--no-agent")

    assert "deciding in this process" in here.err
    assert "agent" not in here.err


def test_quiet_and_verbose_together_is_a_usage_error(host: Trustkit):
    both = host("-q", "inspect", "registry.test/x", "-v")

    assert both.code == 2
    assert both.err.strip() == (
        "trustkit: -q/--quiet and -v/--verbose contradict each other; give one"
    )


@pytest.mark.parametrize(
    ("argv", "quiet", "docker"),
    [
        (["pull", "-q", "busybox"], False, ["-q", "busybox"]),
        (["pull", "--quiet", "busybox"], False, ["--quiet", "busybox"]),
        (["-q", "pull", "busybox"], True, ["busybox"]),
        (["run", "-v", "/tmp:/data", "busybox"], False, ["-v", "/tmp:/data", "busybox"]),
        (["-v", "docker", "run", "-q", "busybox"], False, ["run", "-q", "busybox"]),
    ],
)
def test_after_a_passthrough_command_q_and_v_stay_dockers(
    argv: list[str], quiet: bool, docker: list[str]
):
    parser = build_parser()
    own, docker_args = split_passthrough(parser, argv)
    args = parser.parse_args(own)

    assert docker_args == docker
    assert bool(getattr(args, "quiet", False)) is quiet


def test_trustkit_server_refuses_quiet_with_verbose(server: ServerProcess):
    both = subprocess.run(
        [sys.executable, "-m", "server", "-q", "-v", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert both.returncode == 2
    assert "contradict" in both.stderr and "Traceback" not in both.stderr


def test_verbose_escapes_control_characters_it_quotes(host: Trustkit, signed: str):
    """A mirror URL (or a server's path) cannot write terminal escapes through -v."""
    shown = host("-v", "resolve", f"{signed}:1.0", "--mirror", "http://127.0.0.1:1/\x1b]0;x\x07")

    assert "\x1b" not in shown.err and "\x07" not in shown.err
    assert "\\x1b]0;x\\x07" in shown.err
