"""A person at a terminal: passphrases are prompted for (twice for a new key), never echoed."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.harness import ServerProcess
from tests.support.terminal import CTRL_D, run_on_terminal


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
    code, screen = run_on_terminal(
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
    code, screen = run_on_terminal(
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
    assert run_on_terminal(["init", gun], init_env, {})[0] == 0

    code, screen = run_on_terminal(
        ["sign", f"{gun}:1.0", "--digest", "sha256:" + "a" * 64, "--size", "5"],
        env,
        {"Passphrase for the targets key": "t"},
    )

    assert code == 0, screen
    assert "published" in screen


def test_ctrl_d_at_a_prompt_ends_cleanly_and_creates_nothing(
    server: ServerProcess, gun: str, tmp_path: Path
):
    code, screen = run_on_terminal(
        ["init", gun],
        _env(tmp_path, server),
        {"New passphrase for the new root key": CTRL_D},
    )

    assert code == 2, screen
    assert "Traceback" not in screen
    assert "no passphrase given (end of input at the prompt); nothing was changed" in screen
    assert not [path for path in (tmp_path / ".trustkit").rglob("*") if path.is_file()]
