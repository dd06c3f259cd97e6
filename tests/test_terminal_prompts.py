"""A person at a terminal: passphrases are prompted for (twice for a new key), never echoed."""

from __future__ import annotations

import os
import pty
import select
import sys
import time
from pathlib import Path

from tests.support.harness import ServerProcess

CTRL_D = "\x04"  # end of input, typed at the start of a line


def _run_on_terminal(
    args: list[str], env: dict[str, str], answers: dict[str, str]
) -> tuple[int, str]:
    """Run ``python -m trustkit ARGS`` with a pseudo-terminal as its controlling terminal,
    answering each prompt that contains a key of ``answers``."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: its terminal is the pty
        os.execvpe(sys.executable, [sys.executable, "-m", "trustkit", *args], env)
    screen = b""
    answered = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        screen += chunk
        pending = screen.decode(errors="replace").split("\n")[-1]
        for prompt, answer in answers.items():
            if prompt in pending and pending.rstrip().endswith(":"):
                os.write(fd, answer.encode() + (b"" if answer == CTRL_D else b"\n"))
                answered += 1
                screen += b"\n"
                break
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), screen.decode(errors="replace")


def _env(tmp_path: Path, server: ServerProcess) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "TRUSTKIT_HOME": str(tmp_path / ".trustkit"),
        "TRUSTKIT_SERVER": server.url,
        "TRUSTKIT_TOKEN": server.token,
    }


def test_init_asks_each_new_passphrase_twice_and_does_not_echo(
    server: ServerProcess, gun: str, tmp_path: Path
):
    code, screen = _run_on_terminal(
        ["init", gun],
        _env(tmp_path, server),
        {
            "New passphrase for the new root key": "root secret",
            "Repeat the passphrase for the new root key": "root secret",
            "New passphrase for the new targets key": "targets secret",
            "Repeat the passphrase for the new targets key": "targets secret",
        },
    )

    assert code == 0, screen
    assert screen.count("New passphrase for the new root key") == 1
    assert screen.count("Repeat the passphrase for the new targets key") == 1
    assert f"initialised {gun}" in screen
    assert "secret" not in screen  # typed, never echoed


def test_mistyped_repeat_creates_nothing(server: ServerProcess, gun: str, tmp_path: Path):
    code, screen = _run_on_terminal(
        ["init", gun],
        _env(tmp_path, server),
        {
            "New passphrase for the new root key": "one thing",
            "Repeat the passphrase for the new root key": "another",
        },
    )

    assert code == 2
    assert "the two passphrases differ; nothing was created" in screen
    assert not list((tmp_path / ".trustkit").rglob("*.p12"))


def test_sign_prompts_for_the_targets_passphrase(server: ServerProcess, gun: str, tmp_path: Path):
    env = _env(tmp_path, server)
    init_env = {**env, "TRUSTKIT_ROOT_PASSPHRASE": "r", "TRUSTKIT_TARGETS_PASSPHRASE": "t"}
    assert _run_on_terminal(["init", gun], init_env, {})[0] == 0

    code, screen = _run_on_terminal(
        ["sign", f"{gun}:1.0", "--digest", "sha256:" + "a" * 64, "--size", "5"],
        env,
        {"Passphrase for the targets key": "t"},
    )

    assert code == 0, screen
    assert "published" in screen


def test_ctrl_d_at_a_prompt_ends_cleanly_and_creates_nothing(
    server: ServerProcess, gun: str, tmp_path: Path
):
    code, screen = _run_on_terminal(
        ["init", gun],
        _env(tmp_path, server),
        {"New passphrase for the new root key": CTRL_D},
    )

    assert code == 2, screen
    assert "Traceback" not in screen
    assert "no passphrase given (end of input at the prompt); nothing was changed" in screen
    assert not [path for path in (tmp_path / ".trustkit").rglob("*") if path.is_file()]
