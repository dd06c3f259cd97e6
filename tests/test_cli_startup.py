"""The fixed cost of a ``trustkit`` process: what it imports, and how often it runs a key
file's KDF. Counts and module names only; the milliseconds are in bench/."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.agent_process import AgentProcess
from tests.support.harness import DIGEST_A, ServerProcess, Trustkit
from trustkit.cli import COMMON_DEFAULTS, Context, Output

HEAVY = ("httpx", "tuf", "securesystemslib", "cryptography", "keys.keystore", "client")


def _modules_after(code: str) -> list[str]:
    """Modules a fresh interpreter has loaded after running ``code``."""
    loaded = "sorted(name for name, module in sys.modules.items() if module is not None)"
    probe = f"{code}\nimport sys, json\nprint(json.dumps({loaded}))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def test_version_imports_nothing_heavy():
    loaded = _modules_after(
        "from trustkit import cli\ntry:\n    cli.main(['--version'])\nexcept SystemExit:\n    pass"
    )

    assert [m for m in loaded if m.split(".")[0] in HEAVY or m in HEAVY] == []


def test_the_cli_does_not_load_the_command_line_of_httpx():
    """httpx imports click, rich and pygments for its own CLI when they are installed;
    trustkit never runs it, and httpx still works without it."""
    loaded = _modules_after(
        "from trustkit import cli\ntry:\n    cli.main(['--version'])\n"
        "except SystemExit:\n    pass\nimport httpx\nhttpx.Client(verify=False).close()"
    )

    assert "httpx" in loaded
    assert [m for m in loaded if m.split(".")[0] in ("click", "rich", "pygments")] == []


def test_a_command_has_one_keystore_and_one_passphrase_source():
    args = argparse.Namespace(**COMMON_DEFAULTS)
    ctx = Context(args, {"TRUSTKIT_HOME": "/nonexistent"}, Output(as_json=False))

    assert ctx.keystore() is ctx.keystore()
    assert ctx.passphrases() is ctx.passphrases()


@pytest.fixture
def key_file_opens(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every key file the keystore opens (each runs the file's KDF), of either format."""
    import keys.keystore

    opened: list[bytes] = []
    real = keys.keystore.unseal

    def counting(sealed: bytes, passphrase: str) -> object:
        opened.append(sealed)
        return real(sealed, passphrase)

    monkeypatch.setattr(keys.keystore, "unseal", counting)
    return opened


def test_init_signs_with_the_keys_it_made_without_opening_their_files(
    publisher: Trustkit, gun: str, key_file_opens: list[bytes]
):
    result = publisher("init", gun)

    assert result.code == 0, result.err
    assert key_file_opens == []


def test_sign_and_publish_opens_the_signing_key_once(
    publisher: Trustkit, gun: str, key_file_opens: list[bytes]
):
    assert publisher("init", gun).code == 0

    signed = publisher("sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "10")

    assert signed.code == 0, signed.err
    assert len(key_file_opens) == 1


def test_every_argument_of_every_command_says_what_it_is():
    from trustkit import cli

    missing = []

    def walk(parser: argparse.ArgumentParser, words: list[str]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, [*words, name])
            elif action.help is None and not isinstance(action, argparse._HelpAction):
                missing.append((" ".join(words), action.option_strings or action.dest))

    walk(cli.parser.build_parser(), [])

    assert missing == []


def test_help_names_the_exit_codes(capsys: pytest.CaptureFixture[str]):
    from trustkit import cli

    with pytest.raises(SystemExit):
        cli.main(["--help"], {})

    shown = " ".join(capsys.readouterr().out.split())  # as wrapped to any terminal width
    assert "exit codes: 0 ok, 1 refused" in shown and "3 server or network unreachable" in shown


@pytest.mark.parametrize("command", ["verify", "resolve", "pull", "run", "create", "inspect"])
def test_host_commands_offer_no_signing_options(command: str, capsys: pytest.CaptureFixture[str]):
    from trustkit import cli

    with pytest.raises(SystemExit):
        cli.main([command, "--help"], {})

    shown = capsys.readouterr().out
    assert "--passphrase-file" not in shown and "--expiry" not in shown
    if command in ("run", "create"):
        assert "skopeo" not in shown  # skopeo runs no container


def test_signing_commands_keep_their_signing_options(capsys: pytest.CaptureFixture[str]):
    from trustkit import cli

    for command in (["sign"], ["init"], ["key", "rotate"], ["signer", "add"]):
        with pytest.raises(SystemExit):
            cli.main([*command, "--help"], {})
        shown = capsys.readouterr().out
        assert "--passphrase-file" in shown and "--expiry" in shown, command


@pytest.fixture
def agent(tmp_path: Path, server: ServerProcess) -> Iterator[AgentProcess]:
    process = AgentProcess(tmp_path / "agent" / ".trustkit", server.url).start()
    yield process
    process.stop()


@pytest.mark.parametrize(
    ("command", "expected_last"),
    [
        (["pull"], ["true", "tag", "{gun}@{digest}", "{gun}:1.0"]),
        (["run", "--rm"], ["true", "run", "--rm", "{gun}@{digest}", "echo"]),
        (["create"], ["true", "create", "{gun}@{digest}", "echo"]),
        (["docker", "run", "--rm"], ["true", "run", "--rm", "{gun}@{digest}", "echo"]),
        (["docker", "pull"], ["true", "tag", "{gun}@{digest}", "{gun}:1.0"]),
    ],
    ids=["pull", "run", "create", "docker-run", "docker-pull"],
)
def test_pull_and_run_through_the_agent_import_no_verifier(
    agent: AgentProcess,
    publisher: Trustkit,
    host: Trustkit,
    gun: str,
    command: list[str],
    expected_last: list[str],
):
    """With an agent answering, the gate's commands ask it and load no python-tuf,
    cryptography or httpx (nor any module of trustkit's verifier)."""
    assert publisher("init", gun).code == 0
    signed = publisher("sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "10")
    assert signed.code == 0, signed.err
    words = [*command, f"{gun}:1.0"] + (["echo"] if command[-1] != "pull" else [])
    env = host.environment({**agent.cli_env, "TRUSTKIT_DOCKER": "true"})
    probe = (
        "import os, sys, json\nfrom trustkit import cli\n"
        "calls = []\nos.execvp = lambda file, argv: calls.append(argv)\n"
        f"code = cli.main({words!r}, {env!r})\n"
        "heavy = sorted(m for m, loaded in sys.modules.items() if loaded and m.split('.')[0] in "
        "('tuf', 'httpx', 'cryptography', 'securesystemslib'))\n"
        "verifier = sorted(m for m in sys.modules if m in ('client.verify', 'client.gate', "
        "'client.decision', 'client.registry'))\n"
        "print(json.dumps({'code': code, 'heavy': heavy, 'verifier': verifier, 'last': calls}))"
    )

    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )

    report = json.loads(done.stdout.splitlines()[-1])
    expected = [word.format(gun=gun, digest=DIGEST_A) for word in expected_last]
    assert report == {"code": 0, "heavy": [], "verifier": [], "last": [expected]}, done.stderr
    # The agent decided: this host's own trust store was never filled.
    assert not (host.home / "tuf").exists()


def test_pull_without_an_agent_decides_in_process_alike(
    publisher: Trustkit, host: Trustkit, gun: str
):
    assert publisher("init", gun).code == 0
    assert publisher("sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "10").code == 0
    env = host.environment({"TRUSTKIT_AGENT": "off", "TRUSTKIT_DOCKER": "true"})
    probe = (
        "import os, json\nfrom trustkit import cli\n"
        "calls = []\nos.execvp = lambda file, argv: calls.append(argv)\n"
        f"code = cli.main(['pull', '{gun}:1.0'], {env!r})\n"
        "print(json.dumps({'code': code, 'last': calls}))"
    )

    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )

    report = json.loads(done.stdout.splitlines()[-1])
    assert report == {"code": 0, "last": [["true", "tag", f"{gun}@{DIGEST_A}", f"{gun}:1.0"]]}
    assert (host.home / "tuf").exists()
