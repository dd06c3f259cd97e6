"""A forged or stale host agent: something else listening where ``trustkit`` asks the
agent (``TRUSTKIT_AGENT``, ``/run/trustkit/agent.sock``).

The command hands the agent's ``image`` to Docker as it is, so an answer that is not a
decision on the image asked about — an option in place of the image, another
repository, another digest than the one asked for, an unsigned image for ``verify``, a
local tag on another name — is a refusal (exit 3), and Docker is never run. A socket
that another user made (a squatter on a shared directory while the agent is down) is
not asked at all: the command decides in-process, against the real server.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.attacks.common import FORGED
from tests.support.docker_recorder import Recorder, write_recorder
from tests.support.harness import DIGEST_A, Trustkit


@pytest.fixture
def recorder(tmp_path: Path) -> Recorder:
    bindir = tmp_path / "bin"
    write_recorder(bindir / "docker")
    return Recorder(bindir, tmp_path / "docker-calls.jsonl")


class FakeAgent:
    """A socket that answers every request with ``decision`` (filled from the request)."""

    def __init__(self, path: Path, decision: dict[str, Any]) -> None:
        self.path = path
        self.decision = decision
        self.asked = 0
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(4)
        self._server.settimeout(0.5)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._server.accept()
            except OSError:
                continue
            with connection:
                request = json.loads(connection.makefile("rb").readline())
                self.asked += 1
                decision = {"requested": request["reference"], "notes": [], **self.decision}
                connection.sendall(json.dumps({"ok": True, "decision": decision}).encode() + b"\n")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._server.close()
        self.path.unlink(missing_ok=True)


@pytest.fixture
def fake_socket(tmp_path: Path) -> Iterator[Path]:
    path = Path(f"/tmp/tk-forged-{tmp_path.name[-12:]}.sock")  # short: AF_UNIX paths are
    path.unlink(missing_ok=True)
    yield path
    path.unlink(missing_ok=True)


def _signed(publisher: Trustkit, gun: str) -> None:
    assert publisher("init", gun).code == 0
    signed = publisher("sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "10")
    assert signed.code == 0, signed.err


def _forgeries(gun: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(command, reference, the forged decision)."""
    honest = {"gun": gun, "tag": "1.0", "digest": DIGEST_A, "local_tag": f"{gun}:1.0"}
    return [
        ("run", f"{gun}:1.0", {**honest, "image": "--privileged"}),
        ("run", f"{gun}:1.0", {**honest, "image": f"{gun}@{DIGEST_A}", "gun": "registry.test/x"}),
        (
            "run",
            f"{gun}:1.0",
            {**honest, "gun": "registry.test/other", "image": f"registry.test/other@{FORGED}"},
        ),
        ("run", f"{gun}@{DIGEST_A}", {**honest, "digest": FORGED, "image": f"{gun}@{FORGED}"}),
        ("run", f"{gun}:1.0", {**honest, "digest": "sha256:x", "image": f"{gun}@sha256:x"}),
        ("run", f"{gun}:1.0", {**honest, "tag": "2.0", "image": f"{gun}@{DIGEST_A}"}),
        ("pull", f"{gun}:1.0", {**honest, "image": f"{gun}@{DIGEST_A}", "local_tag": "nginx:1"}),
        (
            "verify",
            f"{gun}:1.0",
            {**honest, "digest": None, "image": f"{gun}:1.0", "local_tag": None},
        ),
    ]


@pytest.mark.parametrize("case", range(8))
def test_an_answer_for_another_image_than_asked_is_a_refusal_and_docker_never_runs(
    case: int,
    publisher: Trustkit,
    host: Trustkit,
    gun: str,
    recorder: Recorder,
    fake_socket: Path,
) -> None:
    _signed(publisher, gun)
    command, reference, decision = _forgeries(gun)[case]
    agent = FakeAgent(fake_socket, decision)
    try:
        result = host.process(command, reference, env=recorder.env(TRUSTKIT_AGENT=str(fake_socket)))
    finally:
        agent.stop()

    assert agent.asked == 1
    assert result.code == 3, (result.code, result.out, result.err)
    assert "answered for another image than asked" in result.err
    assert "--privileged" not in result.out and FORGED not in result.out
    assert not recorder.invoked


@pytest.mark.skipif(os.geteuid() != 0, reason="making a socket another user owns needs root")
def test_a_socket_another_user_made_is_not_asked_and_the_command_decides_itself(
    publisher: Trustkit, host: Trustkit, gun: str, recorder: Recorder, fake_socket: Path
) -> None:
    _signed(publisher, gun)
    forged = {
        "gun": gun,
        "tag": "1.0",
        "digest": FORGED,
        "image": f"{gun}@{FORGED}",
        "local_tag": f"{gun}:1.0",
    }
    squatter = FakeAgent(fake_socket, forged)
    os.chown(fake_socket, 65534, 65534)  # nobody's: someone else bound it
    try:
        result = host.process(
            "run", f"{gun}:1.0", env=recorder.env(TRUSTKIT_AGENT=str(fake_socket))
        )
    finally:
        squatter.stop()

    assert squatter.asked == 0
    assert result.code == 0, result.err
    assert recorder.calls() == [["docker", "run", f"{gun}@{DIGEST_A}"]]
