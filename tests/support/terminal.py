"""Running the trustkit CLI on a real pseudo-terminal, as a person at a prompt would."""

from __future__ import annotations

import os
import pty
import select
import sys
import time

CTRL_D = "\x04"  # end of input, typed at the start of a line


def run_on_terminal(
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
