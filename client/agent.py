"""``trustkit agent``: the resident verifier of a host.

It keeps each repository's verified TUF state in memory and answers "may REF run, and as
which digest?" over a Unix socket, for the ``trustkit`` CLI (``trustkit.agent_wire``) and
for Docker's authorization plugin protocol (``client.authz``). Every decision is
``client.decision.verify_reference`` under the host policy — the function ``trustkit
verify`` and the gate call in-process — so the words, refusals and exit codes are theirs.

Freshness is explicit: a decision uses a repository verified (the whole TUF client
workflow, timestamp first) no more than ``freshness`` seconds ago, and never one with a
role past its expiry; ``freshness`` 0 verifies on every decision. Bad input never stops
the agent: a request is bounded in size and in the time its sender may take, the number
of connections is bounded, and any failure is a refusal (fail closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from client.decision import AnchorCheck, Decision
from client.gate import Gate
from client.policy import HostPolicy
from client.servers import ServerVerifiers
from client.trust_servers import TrustServer
from client.verify import TrustedRepository
from trustkit.agent_wire import (
    MAX_MESSAGE_BYTES,
    AgentDecision,
    AgentRefusal,
    AgentRequest,
    answer_line,
)
from trustkit.errors import TrustkitError, UsageError
from trustkit.expiry import utc_now
from trustkit.names import DEFAULT_TAG, parse_reference

__all__ = [
    "Agent",
    "AgentLimits",
    "AgentSockets",
    "DockerDaemonImages",
    "FreshRepositories",
    "prepare_socket",
    "run_agent",
    "secure_socket",
    "serve_cli_socket",
    "serve_plugin_socket",
]

Clock = Callable[[], float]


@dataclass(frozen=True)
class AgentLimits:
    """What one client may cost the agent."""

    read_seconds: float = 5.0  # to send a whole request
    max_connections: int = 256  # at once, over both sockets
    max_request_bytes: int = MAX_MESSAGE_BYTES


@dataclass
class _Verified:
    repository: TrustedRepository
    at: float


@dataclass
class FreshRepositories:
    """Verified repositories kept in memory, each reused for ``freshness`` seconds and
    never past the expiry of any of its roles; one verification per repository at once.
    Kept by (trust server, repository): a name the policy routes to another server
    never gets the state verified against the first."""

    verifiers: ServerVerifiers
    freshness: float
    clock: Clock = time.monotonic
    _cache: dict[tuple[str, str], _Verified] = field(default_factory=dict)
    _locks: dict[tuple[str, str], threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def __call__(
        self, gun: str, tags: list[str] | None, server: TrustServer | None
    ) -> TrustedRepository:
        key = ("" if server is None else server.url, gun)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            kept = self._cache.get(key)
            if kept is not None and self._usable(kept, tags):
                return kept.repository
            # Verify every bin once rather than a bin per tag: the agent answers for
            # many tags of a repository, and the whole of it stays in memory. Each of
            # its tags is decided by python-tuf's get_targetinfo, as trustkit verify's.
            repository = self.verifiers.repository(gun, None, server)
            self._cache[key] = _Verified(repository, self.clock())
            return repository

    def __len__(self) -> int:
        return len(self._cache)

    def _usable(self, kept: _Verified, tags: list[str] | None) -> bool:
        if self.clock() - kept.at > self.freshness:
            return False
        now = utc_now()
        if any(role.expires <= now for role in kept.repository.roles):
            return False
        loaded = kept.repository.bins_for
        return kept.repository.complete or (
            tags is not None and loaded is not None and loaded.issuperset(tags)
        )

    def forget(self) -> None:
        with self._guard:
            self._cache.clear()


@dataclass
class Agent:
    """Decisions under one host policy: against the trust server the policy routes a
    repository to, else the agent's own (``server_url``).

    The policy file is read again whenever it changes (size, times or inode), before
    the next decision: a tightened policy applies at once. A policy that no longer
    reads refuses every decision until it is mended (fail closed)."""

    repositories: FreshRepositories
    loaded: HostPolicy
    policy_path: str | None
    server_url: str
    has_anchor: AnchorCheck = lambda gun, server: False
    _stamp: tuple[int, int, int, int] | None = field(default=None, repr=False)
    _broken: TrustkitError | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._stamp = self._file_stamp()

    @property
    def policy(self) -> HostPolicy:
        """The policy in force now, read again if its file changed."""
        if self.policy_path is None:
            return self.loaded
        with self._lock:
            stamp = self._file_stamp()
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self.loaded = HostPolicy.load(Path(self.policy_path))
                    self._broken = None
                except TrustkitError as error:
                    self._broken = error
            if self._broken is not None:
                raise UsageError(
                    f"the agent's policy {self.policy_path} does not read, so it refuses "
                    f"everything: {self._broken.message}",
                    hint="mend the policy file; the agent reads it again at once",
                )
            return self.loaded

    def _file_stamp(self) -> tuple[int, int, int, int] | None:
        if self.policy_path is None:
            return None
        try:
            status = Path(self.policy_path).stat()
        except OSError:
            return (0, 0, 0, 0)  # gone: HostPolicy.load says so, and everything is refused
        return (status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)

    def decide(self, reference: str, given_server: str | None = None) -> Decision:
        """The same decision ``trustkit verify``/``pull`` make in-process."""
        gate = Gate(self.repositories, self.policy, self.has_anchor, given_server)
        return gate.pin(reference)

    def answer(self, request: AgentRequest) -> AgentDecision | AgentRefusal:
        """A request of the CLI: refused as a usage error when it asks under another
        policy or server than the agent's (the CLI then decides in-process). For a
        repository the policy routes to a server, the policy's server is used, and a
        server the user typed (``server_given``) that is not it is refused."""
        if request.policy is not None and request.policy != self.policy_path:
            return AgentRefusal("agent_mismatch", "the agent applies another policy", None, 2)
        try:
            if request.server is not None and not self._serves(request):
                return AgentRefusal("agent_mismatch", "the agent serves another server", None, 2)
            given = request.server if request.server_given else None
            decision = self.decide(request.reference, given)
            if request.require_signed and decision.unverified is not None:
                raise decision.unverified  # verify checks signatures, whatever the policy
        except TrustkitError as error:
            return AgentRefusal(error.code, error.message, error.hint, error.exit_code)
        except Exception as error:  # fail closed, and keep serving
            return AgentRefusal(
                "agent", f"the agent could not decide on {request.reference}: {error}", None, 1
            )
        return decision.to_wire()

    def _serves(self, request: AgentRequest) -> bool:
        """Whether the agent decides with the server the request names: its own, or
        any for a repository the policy routes (the policy's server is used, and one
        the user typed that differs is refused by the decision)."""
        assert request.server is not None
        if request.server.rstrip("/") == self.server_url.rstrip("/"):
            return True
        gun = parse_reference(request.reference, default_tag=DEFAULT_TAG).gun
        return self.policy.server_for(gun) is not None


def prepare_socket(path: Path, group: str | None) -> None:
    """A fresh socket path in a 0750 directory; the socket itself is made 0660 (owner
    and ``group``) once it is bound."""
    path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    if path.is_socket():
        path.unlink()
    elif path.exists():
        raise UsageError(f"{path} exists and is not a socket", hint="choose another --socket")
    if group is not None:
        try:
            grp.getgrnam(group)
        except KeyError:
            raise UsageError(
                f"no group named {group}", hint="create it, or leave --group out"
            ) from None


def secure_socket(path: Path, group: str | None) -> None:
    gid = grp.getgrnam(group).gr_gid if group is not None else -1
    os.chown(path, -1, gid)
    path.chmod(0o660)


async def serve_cli_socket(
    agent: Agent, path: Path, limits: AgentLimits, slots: asyncio.Semaphore
) -> asyncio.base_events.Server:
    """Answer the CLI's one-line requests on ``path``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if slots.locked():
            writer.close()  # too many at once: cut, and keep answering the others
            return
        async with slots:
            with contextlib.suppress(Exception):
                line = await asyncio.wait_for(reader.readline(), limits.read_seconds)
                if not line.endswith(b"\n"):
                    return  # too long (past the reader's limit) or never finished
                try:
                    request = AgentRequest.decode(line)
                except ValueError as error:
                    result: AgentDecision | AgentRefusal = AgentRefusal(
                        "bad_request", f"not a trustkit agent request: {error}", None, 2
                    )
                else:
                    result = await asyncio.to_thread(agent.answer, request)
                writer.write(answer_line(result))
                await writer.drain()
            writer.close()

    return await asyncio.start_unix_server(
        handle, path=os.fspath(path), limit=limits.max_request_bytes
    )


# --- Docker's authorization plugin protocol --------------------------------------------

PLUGIN_CONTENT_TYPE = "application/vnd.docker.plugins.v1.2+json"
PLUGIN_MAX_BODY = 4 * 1024 * 1024  # the daemon forwards bodies of up to 1 MiB, base64'd


@dataclass
class DockerDaemonImages:
    """What the Docker daemon holds under an image name, asked over its socket (one
    client, kept: a decision costs a request, not a new connection pool)."""

    socket: Path
    timeout: float = 5.0
    _http: Any = field(default=None, repr=False)

    def __call__(self, name: str) -> list[str] | None:
        import httpx

        if self._http is None:
            # A Unix socket carries no TLS: no certificate context to build for it.
            transport = httpx.HTTPTransport(uds=os.fspath(self.socket), verify=False)
            self._http = httpx.Client(transport=transport, timeout=self.timeout)
        answer = self._http.get(f"http://docker/images/{quote(name, safe='')}/json")
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        digests = answer.json().get("RepoDigests") or []
        return [str(each) for each in digests]


async def serve_plugin_socket(
    agent: Agent,
    daemon_images: Callable[[str], list[str] | None],
    path: Path,
    limits: AgentLimits,
    slots: asyncio.Semaphore,
) -> asyncio.base_events.Server:
    """Answer the Docker daemon's authorization requests on ``path`` (HTTP/1.1 via h11)."""
    import h11

    from client.authz import AuthzRequest, Verdict, authorize

    def verdict_for(document: dict[str, Any]) -> Verdict:
        try:
            request = AuthzRequest.from_plugin(document)
        except (ValueError, TypeError):
            return Verdict(False, "trustkit: the request could not be read")
        try:
            policy = agent.policy
        except TrustkitError as error:
            return Verdict(False, f"trustkit: {error.diagnostics()}")
        return authorize(request, policy, agent.decide, daemon_images)

    async def respond(target: bytes, body: bytes) -> tuple[int, dict[str, Any]]:
        if target == b"/Plugin.Activate":
            return 200, {"Implements": ["authz"]}
        if target == b"/AuthZPlugin.AuthZRes":
            return 200, {"Allow": True}
        if target != b"/AuthZPlugin.AuthZReq":
            return 404, {"Err": "not found"}
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        if not isinstance(document, dict):
            return 200, Verdict(False, "trustkit: the request could not be read").to_plugin()
        # Most requests need no verification and are answered here; the rest wait for
        # the verifier on a thread, so the loop keeps answering the daemon.
        if str(document.get("RequestMethod", "")).upper() in ("GET", "HEAD"):
            return 200, Verdict(True).to_plugin()
        return 200, (await asyncio.to_thread(verdict_for, document)).to_plugin()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if slots.locked():
            writer.close()
            return
        async with slots:
            connection = h11.Connection(h11.SERVER, max_incomplete_event_size=16 * 1024)
            with contextlib.suppress(Exception):
                while True:
                    request, body = await _read_request(connection, reader, limits)
                    if request is None:
                        break
                    status, answer = await respond(request.target, body)
                    payload = json.dumps(answer).encode()
                    headers = [
                        ("Content-Type", PLUGIN_CONTENT_TYPE),
                        ("Content-Length", str(len(payload))),
                    ]
                    writer.write(connection.send(h11.Response(status_code=status, headers=headers)))
                    writer.write(connection.send(h11.Data(data=payload)))
                    writer.write(connection.send(h11.EndOfMessage()))
                    await writer.drain()
                    if connection.our_state is not h11.DONE:
                        break
                    connection.start_next_cycle()
            writer.close()

    return await asyncio.start_unix_server(handle, path=os.fspath(path))


async def _read_request(
    connection: Any, reader: asyncio.StreamReader, limits: AgentLimits
) -> tuple[Any, bytes]:
    """The next request and its body, or (None, b"") when the client is done. Bounded
    in size and in time: a client that never finishes is cut."""
    import h11

    request = None
    body = b""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limits.read_seconds
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError("the client took too long to send its request")
            data = await asyncio.wait_for(reader.read(65536), remaining)
            connection.receive_data(data)
            continue
        if isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > PLUGIN_MAX_BODY:
                raise ValueError("request body too large")
        elif isinstance(event, h11.EndOfMessage):
            return request, body
        elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return None, b""


# --- running ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentSockets:
    """Where the agent listens, and where the Docker daemon it judges for listens."""

    cli: Path
    plugin: Path | None  # None: no authorization plugin
    docker: Path  # the daemon's API socket, to read what images it holds
    group: str | None = None


def run_agent(
    agent: Agent, sockets: AgentSockets, limits: AgentLimits, ready: Callable[[], None]
) -> None:
    """Serve until SIGTERM or SIGINT; the sockets are removed on the way out."""
    asyncio.run(_serve(agent, sockets, limits, ready))


async def _serve(
    agent: Agent, sockets: AgentSockets, limits: AgentLimits, ready: Callable[[], None]
) -> None:
    import signal

    paths = [sockets.cli] + ([sockets.plugin] if sockets.plugin is not None else [])
    for path in paths:
        prepare_socket(path, sockets.group)
    # Each socket has connections of its own: a flood of CLI clients must not leave the
    # Docker daemon waiting (it refuses everything while its plugin does not answer).
    cli_slots = asyncio.Semaphore(limits.max_connections)
    servers = [await serve_cli_socket(agent, sockets.cli, limits, cli_slots)]
    if sockets.plugin is not None:
        images = DockerDaemonImages(sockets.docker)
        plugin_slots = asyncio.Semaphore(limits.max_connections)
        servers.append(
            await serve_plugin_socket(agent, images, sockets.plugin, limits, plugin_slots)
        )
    for path in paths:
        secure_socket(path, sockets.group)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, agent.repositories.forget)
    ready()
    try:
        await stop.wait()
    finally:
        for server in servers:
            server.close()
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
