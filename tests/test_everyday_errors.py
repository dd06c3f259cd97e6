"""Refusals a newcomer meets every day say what to do, for the person who meets them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.harness import Trustkit


def _without(tool: str) -> str:
    """PATH with no directory that holds ``tool``."""
    return os.pathsep.join(
        entry
        for entry in os.environ.get("PATH", "").split(os.pathsep)
        if not (Path(entry) / tool).exists()
    )


def test_a_missing_podman_is_named_with_its_own_remedy(host: Trustkit, tmp_path: Path):
    policy = tmp_path / "policy.toml"
    policy.write_text('default = "unsigned-ok"\n')

    result = host.process(
        "pull", "--via", "podman", "--policy", str(policy), "registry.test/nowhere/app:1",
        env={"PATH": _without("podman")},
    )  # fmt: skip

    assert result.code == 2, result.err
    assert "podman is not installed or not on PATH" in result.err
    assert "install podman, or choose another tool with --via" in result.err
    assert "TRUSTKIT_DOCKER" not in result.err


def test_an_unsigned_image_tells_a_consumer_about_the_policy_not_only_init(host: Trustkit):
    result = host.process("resolve", "registry.test/nobody/signs-this:1.0")

    assert result.code == 1, result.err
    assert "has no trust data for it" in result.err
    assert 'trust = "unsigned-ok"' in result.err


def test_a_reader_that_goes_away_ends_the_command_quietly():
    """`trustkit … | head` stops reading early: no traceback, the shell's SIGPIPE code."""
    child = subprocess.Popen(
        [sys.executable, "-m", "trustkit", "completion", "bash"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()  # before the command writes a line
    err = child.stderr.read().decode()
    code = child.wait(timeout=60)

    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert code == 141
