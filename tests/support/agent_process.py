"""``trustkit agent`` as a real process of the test's own: its sockets in a short temporary
directory, its own trust store, started and stopped by the test."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class AgentProcess:
    home: Path  # the agent's TRUSTKIT_HOME (what it trusts)
    server_url: str
    extra_args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    plugin: bool = False
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        # Unix socket paths are short: keep them out of pytest's long temporary paths.
        self.directory = Path(tempfile.mkdtemp(prefix="tk-agent-"))
        self.socket = self.directory / "agent.sock"
        self.plugin_socket = self.directory / "plugin.sock"
        self.log = self.directory / "agent.log"

    def start(self) -> AgentProcess:
        plugin = str(self.plugin_socket) if self.plugin else "off"
        args = [
            sys.executable,
            "-m",
            "trustkit",
            "agent",
            "--socket",
            str(self.socket),
            "--plugin-socket",
            plugin,
            *self.extra_args,
        ]
        env = {
            "PATH": os.environ.get("PATH", ""),
            "TRUSTKIT_HOME": str(self.home),
            "TRUSTKIT_SERVER": self.server_url,
            **self.env,
        }
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        ready = [self.socket] + ([self.plugin_socket] if self.plugin else [])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"agent exited: {self.log.read_text()}")
            if all(path.is_socket() for path in ready) and "answering" in self.log.read_text():
                return self
            time.sleep(0.05)
        raise RuntimeError(f"agent did not start: {self.log.read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    @property
    def cli_env(self) -> dict[str, str]:
        """What a trustkit command needs to ask this agent."""
        return {"TRUSTKIT_AGENT": str(self.socket)}
