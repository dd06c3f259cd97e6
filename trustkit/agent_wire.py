"""The host agent's wire format, shared by the agent and the ``trustkit`` CLI that asks it.

One request and one answer per connection over a Unix socket, each a single line of
JSON: ``{"v": 1, "op": "decide", "reference": "app:1.4", ...}`` and
``{"ok": true, "decision": {...}}`` or ``{"ok": false, "error": {...}}``. The CLI side
uses the standard library only, so that asking the agent costs no import of python-tuf,
cryptography or httpx. Nothing here decides anything.
"""

from __future__ import annotations

import json
import os
import socket
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_SOCKET",
    "MAX_MESSAGE_BYTES",
    "SOCKET_VARIABLE",
    "AgentDecision",
    "AgentRefusal",
    "AgentRequest",
    "ask",
    "socket_path",
]

VERSION = 1
DEFAULT_SOCKET = Path("/run/trustkit/agent.sock")
SOCKET_VARIABLE = "TRUSTKIT_AGENT"
MAX_MESSAGE_BYTES = 64 * 1024


@dataclass(frozen=True)
class AgentRequest:
    """Decide ``reference`` under the agent's policy. ``server`` and ``policy`` are what
    the asking command would use; the agent answers only if they are its own, so a
    command given another server or policy never gets another host's decision."""

    reference: str
    server: str | None = None
    policy: str | None = None
    require_signed: bool = False  # verify: a policy's unsigned-ok is no signature
    # The user typed --server: refused for a repository the policy routes elsewhere
    # (a server from the environment is only the default for repositories it routes not).
    server_given: bool = False
    op: str = "decide"
    v: int = VERSION

    def encode(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode() + b"\n"

    @classmethod
    def decode(cls, line: bytes) -> AgentRequest:
        document = json.loads(line)
        if not isinstance(document, dict) or document.get("v") != VERSION:
            raise ValueError("not a trustkit agent request of this version")
        if document.get("op") != "decide" or not isinstance(document.get("reference"), str):
            raise ValueError("the request names no reference to decide")
        for name in ("server", "policy"):
            if document.get(name) is not None and not isinstance(document[name], str):
                raise ValueError(f"'{name}' must be a string")
        known = {"v", "op", "reference", "server", "policy", "require_signed", "server_given"}
        unknown = set(document) - known
        if unknown:
            raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
        return cls(
            document["reference"],
            document.get("server"),
            document.get("policy"),
            document.get("require_signed") is True,
            document.get("server_given") is True,
        )


@dataclass(frozen=True)
class AgentDecision:
    """The image a reference may run as: pinned to its signed digest, or unsigned."""

    requested: str
    gun: str
    tag: str | None
    image: str  # what the tool is given: GUN@sha256:… (or GUN:TAG when unsigned-ok)
    digest: str | None
    local_tag: str | None
    signer: str | None = None
    size: int | None = None
    media_type: str | None = None
    notes: list[str] = field(default_factory=list)
    first_use: str | None = None  # the note of a root trusted on first use, if it was


@dataclass(frozen=True)
class AgentRefusal:
    """A refusal, as ``TrustkitError`` carries it: the same words and exit code as the
    command would have given in-process."""

    code: str
    message: str
    hint: str | None
    exit_code: int


def answer_line(result: AgentDecision | AgentRefusal) -> bytes:
    if isinstance(result, AgentDecision):
        document: dict[str, Any] = {"ok": True, "decision": asdict(result)}
    else:
        document = {"ok": False, "error": asdict(result)}
    return json.dumps(document, separators=(",", ":")).encode() + b"\n"


def socket_path(env: dict[str, str]) -> Path | None:
    """The agent's socket if this host runs one (``TRUSTKIT_AGENT``: a path, or ``off``)."""
    chosen = env.get(SOCKET_VARIABLE)
    if chosen == "off":
        return None
    path = Path(chosen) if chosen else DEFAULT_SOCKET
    return path if _agent_socket(path) else None


def _agent_socket(path: Path) -> bool:
    """Whether ``path`` is a socket the host's agent made: owned by root (the service)
    or by this user (an agent of one's own). A socket another user made, say on a
    shared directory while the agent is down, is not asked: the command decides itself."""
    try:
        status = path.stat()
    except OSError:
        return False
    return stat.S_ISSOCK(status.st_mode) and status.st_uid in (0, os.getuid())


def ask(path: Path, request: AgentRequest, timeout: float) -> AgentDecision | AgentRefusal | None:
    """The agent's answer, or None when there is no agent to ask (no socket, or nobody
    listening): the caller then decides in-process. An agent that answers with
    something unreadable is a refusal, never a silent fallback."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(timeout)
    try:
        try:
            client.connect(os.fspath(path))
        except (FileNotFoundError, ConnectionRefusedError, PermissionError):
            return None
        client.sendall(request.encode())
        received = b""
        while not received.endswith(b"\n") and len(received) <= MAX_MESSAGE_BYTES:
            chunk = client.recv(65536)
            if not chunk:
                break
            received += chunk
    except OSError as error:
        return _broken(f"the trustkit agent at {path} did not answer: {error}")
    finally:
        client.close()
    answer = _read_answer(received, path)
    if isinstance(answer, AgentDecision) and not _answers(answer, request):
        # The command hands ``image`` to Docker as it is: an answer for another image,
        # another digest than asked, an unsigned one for verify, or an option in place
        # of the image, is a refusal.
        return _broken(f"the trustkit agent at {path} answered for another image than asked")
    return answer


def _read_answer(line: bytes, path: Path) -> AgentDecision | AgentRefusal:
    try:
        document = json.loads(line)
        if document.get("ok") is True:
            return AgentDecision(**document["decision"])
        error = document["error"]
        return AgentRefusal(
            str(error["code"]), str(error["message"]), error.get("hint"), int(error["exit_code"])
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return _broken(f"the trustkit agent at {path} answered something unreadable")


def _answers(decision: AgentDecision, request: AgentRequest) -> bool:
    """Whether ``decision`` is a decision on the image the request asked about, in the
    one form ``client.decision`` makes: ``GUN@sha256:…`` of that repository (and of the
    asked digest, when one was), or the reference itself when it runs unsigned."""
    from trustkit.errors import UsageError
    from trustkit.names import DEFAULT_TAG, parse_digest, parse_reference

    try:
        asked = parse_reference(request.reference, default_tag=DEFAULT_TAG)
        digest = None if decision.digest is None else str(parse_digest(decision.digest))
        # The tag is named in a destination (skopeo's containers-storage:GUN:TAG).
        if decision.tag is not None:
            named = parse_reference(f"{asked.gun}:{decision.tag}", default_tag=DEFAULT_TAG)
            if named.tag != decision.tag or named.digest is not None:
                return False
    except (UsageError, AttributeError, TypeError):
        return False
    if decision.gun != asked.gun or (asked.tag is not None and decision.tag != asked.tag):
        return False
    if digest is None:
        return (
            not request.require_signed and decision.image == str(asked) and not (decision.local_tag)
        )
    local_tag = f"{asked.gun}:{asked.tag}" if asked.tag is not None else None
    return (
        digest == decision.digest
        and (asked.digest is None or str(asked.digest) == digest)
        and decision.image == f"{asked.gun}@{digest}"
        and decision.local_tag == local_tag
    )


def _broken(message: str) -> AgentRefusal:
    return AgentRefusal(
        "agent",
        message,
        "check the agent (systemctl status trustkit-agent) or bypass it with --no-agent",
        3,
    )
