"""What a command works with: its settings, read at the edge, and the server,
keystore, passphrases and verifier they give, each built when first needed."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustkit import DEFAULT_SERVER
from trustkit.cli.output import Output
from trustkit.display import printable
from trustkit.errors import UsageError

if TYPE_CHECKING:
    import ssl

    import httpx

    from client.approval import Approver
    from client.gate import Gate, Tool
    from client.lifecycle import Lifecycle
    from client.policy import HostPolicy
    from client.publisher import Publisher
    from client.registry import Registry, RegistrySettings
    from client.server_api import ServerAPI
    from client.settings import ClientSettings
    from client.verify import TrustedRepository, Verifier
    from keys.keystore import Keystore
    from keys.passphrase import PassphraseSource


SYSTEM_POLICY = Path("/etc/trustkit/policy.toml")


def tls_context(ca_file: Path) -> ssl.SSLContext:
    import ssl

    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as error:
        raise UsageError(
            f"cannot use {ca_file} as CA certificates: {error}",
            hint="give a PEM file with the CA that signed the server's certificate",
        ) from None


@dataclass
class Context:
    """Everything a command needs, built lazily from settings read at the edge."""

    args: argparse.Namespace
    env: dict[str, str]
    out: Output
    _keystore: Keystore | None = field(default=None, init=False, repr=False)
    _passphrases: PassphraseSource | None = field(default=None, init=False, repr=False)
    # For --verbose: whether the host's agent was asked, and whether a session with the
    # server (a decision made in this process) was opened.
    _asked_agent: bool = field(default=False, init=False, repr=False)
    _sessions: int = field(default=0, init=False, repr=False)

    @cached_property
    def server_url(self) -> str:
        # Docker Content Trust's variable too, so pipelines written for it carry over.
        return (
            self.args.server
            or self.env.get("TRUSTKIT_SERVER")
            or self.env.get("DOCKER_CONTENT_TRUST_SERVER")
            or DEFAULT_SERVER
        )

    @cached_property
    def policy_path(self) -> str | None:
        """The host policy file in force: --policy, TRUSTKIT_POLICY, else the system's."""
        path = getattr(self.args, "policy", None) or self.env.get("TRUSTKIT_POLICY") or None
        if path is None and SYSTEM_POLICY.exists():
            path = str(SYSTEM_POLICY)
        return str(Path(path).absolute()) if path else None

    @cached_property
    def host_policy(self) -> HostPolicy:
        from client.policy import HostPolicy

        path = self.policy_path
        return HostPolicy.load(Path(path)) if path else HostPolicy()

    @property
    def agent_timeout(self) -> float:
        """How long the host's agent may take; read just before it is asked."""
        timeout = float(self.env.get("TRUSTKIT_AGENT_TIMEOUT") or 60)
        if self.out.verbose:
            from trustkit.agent_wire import socket_path

            self._asked_agent = True
            self.out.debug(f"asking the host's agent at {socket_path(self.env)}")
        return timeout

    def report_decision(self) -> None:
        """For --verbose: who decided, when the host's agent was asked."""
        if self._asked_agent:
            if self._sessions:
                self.out.debug("the agent did not decide (none, or another server or policy)")
            else:
                self.out.debug("the host's agent decided; no metadata was fetched here")

    @cached_property
    def settings(self) -> ClientSettings:
        from client.settings import ClientSettings

        home = Path(self.env.get("TRUSTKIT_HOME") or Path.home() / ".trustkit").expanduser()
        server = self.server_url
        if not server.startswith(("http://", "https://")):
            raise UsageError(
                f"--server '{server}' is not an http(s) URL", hint="e.g. https://notary.example.com"
            )
        from trustkit.expiry import ExpiryPolicy

        expiry = ExpiryPolicy.from_settings(self.args.expiry or [])
        ca_file = self.args.ca_file or self.env.get("TRUSTKIT_CA_FILE") or None
        mirror = self.args.mirror or self.env.get("TRUSTKIT_MIRROR") or None
        if mirror is not None and not mirror.startswith(("http://", "https://")):
            raise UsageError(f"--mirror '{mirror}' is not an http(s) URL")
        for flag, url in (("--server", server), ("--mirror", mirror)):
            _check_port(flag, url)
        auto_bins = self.env.get("TRUSTKIT_AUTO_BINS", "on")
        if auto_bins not in ("on", "off"):
            raise UsageError(f"TRUSTKIT_AUTO_BINS is '{auto_bins}'; use on or off")
        return ClientSettings(
            home=home,
            server_url=server,
            expiry=expiry,
            token=self._token(),
            ca_file=Path(ca_file) if ca_file else None,
            mirror_url=mirror,
            auto_bins=auto_bins == "on",
        )

    def _token(self) -> str | None:
        """The server access token: ``--token-file`` (a Docker secret), else
        ``TRUSTKIT_TOKEN``; never printed."""
        if self.args.token_file is not None:
            try:
                token = Path(self.args.token_file).read_text().strip()
            except OSError as error:
                raise UsageError(
                    f"cannot read the token file {self.args.token_file}: {error.strerror}"
                ) from None
            if not token:
                raise UsageError(f"the token file {self.args.token_file} is empty")
            return token
        return self.env.get("TRUSTKIT_TOKEN") or None

    @contextmanager
    def session(
        self, first_use: Callable[[str, bytes], None] | None = None
    ) -> Iterator[tuple[ServerAPI, Verifier]]:
        from client.anchors import first_use_check
        from client.fetcher import HttpxFetcher
        from client.server_api import ServerAPI
        from client.verify import Verifier

        settings = self.settings
        headers = {"Authorization": f"Bearer {settings.token}"} if settings.token else {}
        self._sessions += 1
        self.out.debug(
            f"deciding in this process: server {_shown_url(settings.server_url)}"
            + (f", mirror {_shown_url(settings.mirror_url)}" if settings.mirror_url else "")
            + (", with an access token" if settings.token else ", no access token")
            + f"; trust data in {settings.home}"
        )
        with contextlib.ExitStack() as stack:
            http = stack.enter_context(self._http_client(settings.server_url, headers))
            # A mirror (a CDN) gets its own client: the server's token never goes there.
            reads = http
            if settings.mirror_url is not None:
                reads = stack.enter_context(self._http_client(settings.mirror_url, {}))
            fetcher = HttpxFetcher(reads, deadline=self.deadline)
            # A host policy that declares trust anchors checks every first root.
            if first_use is None and self.policy_path:
                first_use = first_use_check(self.host_policy)
            verifier = Verifier(settings, fetcher, first_use)
            yield ServerAPI(settings.server_url, http, deadline=self.deadline), verifier

    @cached_property
    def deadline(self) -> float:
        """Seconds one metadata download or registry request may take in all
        (``TRUSTKIT_DEADLINE``, default 30): a stalled server cannot hold a host."""
        text = self.env.get("TRUSTKIT_DEADLINE", "30")
        try:
            seconds = float(text)
        except ValueError:
            seconds = 0.0
        if not 0 < seconds <= 3600:
            raise UsageError(f"TRUSTKIT_DEADLINE is '{text}'; give seconds, e.g. 30")
        return seconds

    def _http_client(self, url: str, headers: dict[str, str]) -> httpx.Client:
        import httpx

        # Building a TLS context costs ~30 ms of every command; a plain-http server (the
        # loopback default) never needs one, and redirects elsewhere are not followed,
        # so a token goes to this URL only.
        verify: bool | ssl.SSLContext = url.startswith("https://")
        if verify and self.settings.ca_file is not None:
            verify = tls_context(self.settings.ca_file)
        hooks = _request_log(self.out) if self.out.verbose else {}
        return httpx.Client(
            timeout=self.settings.timeout,
            follow_redirects=False,
            verify=verify,
            headers=headers,
            event_hooks=hooks,
        )

    def keystore(self) -> Keystore:
        """The command's one keystore: a key it opened (a bcrypt KDF run) is not
        opened again by another part of the same command."""
        if self._keystore is None:
            from keys.keystore import Keystore

            self._keystore = Keystore(self.settings.home)
        return self._keystore

    def passphrases(self) -> PassphraseSource:
        """The command's one passphrase source: a passphrase is asked for once."""
        if self._passphrases is None:
            from keys.passphrase import PassphraseSource

            self._passphrases = PassphraseSource.from_environment(
                self.env, self.args.passphrase_file
            )
        return self._passphrases

    @cached_property
    def registry_settings(self) -> RegistrySettings:
        from client.registry import RegistrySettings, insecure_hosts

        listed = self.env.get("TRUSTKIT_INSECURE_REGISTRIES", "").split(",")
        insecure = insecure_hosts([*(self.args.insecure_registry or []), *listed])
        ca = self.args.registry_ca or self.env.get("TRUSTKIT_REGISTRY_CA")
        home = Path(self.env.get("HOME") or Path.home())
        docker_dir = Path(self.env.get("DOCKER_CONFIG") or home / ".docker").expanduser()
        return RegistrySettings(
            docker_config=docker_dir / "config.json",
            insecure=insecure,
            ca_file=Path(ca) if ca else None,
            deadline=self.deadline,
        )

    def registry(self) -> Registry:
        from client.registry import Registry

        return Registry(self.registry_settings)

    def tool(self) -> Tool:
        from client.gate import Tool

        return Tool.choose(self.args.via, self.env, self.registry_settings.allows_plain_http)

    def gate(self, verifier: Verifier) -> Gate:
        """The gate of a host command: each repository verified against the trust
        server the host policy routes it to, else ``verifier``'s (the command's)."""
        import weakref

        from client.anchors import first_use_check
        from client.gate import Gate
        from client.servers import ServerVerifiers

        policy = self.host_policy
        first_use = first_use_check(policy) if self.policy_path else None
        # A bundle (--bundle FILE) is verified offline, whatever server a route names.
        online = getattr(self.args, "bundle", None) is None
        verifiers = ServerVerifiers(
            verifier, self.settings, deadline=self.deadline, first_use=first_use, routed=online
        )
        gate = Gate(
            verifiers.repository,
            policy,
            verifiers.has_anchor,
            self.args.server if online else None,
            self.args.mirror if online else None,
            verifiers,
        )
        weakref.finalize(gate, verifiers.close)  # the routed servers' HTTP clients
        return gate

    def lifecycle(self, api: ServerAPI, verifier: Verifier) -> Lifecycle:
        from client.lifecycle import Lifecycle

        return Lifecycle(self.settings, api, self.keystore(), self.passphrases(), verifier)

    def approver(self, api: ServerAPI, verifier: Verifier) -> Approver:
        from client.approval import Approver

        return Approver(self.settings, api, self.keystore(), self.passphrases(), verifier)

    def publisher(self, api: ServerAPI, verifier: Verifier) -> Publisher:
        from client.publisher import Publisher

        return Publisher(self.settings, api, self.keystore(), self.passphrases(), verifier)


@contextmanager
def verifier_for(ctx: Context, gun: str) -> Iterator[Verifier]:
    """The verifier of the command: on the server, or on ``--bundle FILE`` (of ``gun``)
    with no network at all."""
    bundle = getattr(ctx.args, "bundle", None)
    if bundle is None:
        with ctx.session() as (_, verifier):
            yield verifier
        return
    from dataclasses import replace

    from client.bundle import BundleFetcher, read_bundle
    from client.verify import Verifier

    files = read_bundle(Path(bundle), gun)
    settings = replace(ctx.settings, server_url=f"bundle:{Path(bundle).resolve()}")
    yield Verifier(settings, BundleFetcher(files))


def verified(ctx: Context, gun: str, tags: list[str] | None = None) -> TrustedRepository:
    """Verify ``gun`` from its server, or from ``--bundle FILE``; of its hash bins, only
    those of ``tags`` (all when None)."""
    with verifier_for(ctx, gun) as verifier:
        repository = verifier.trusted_repository(gun, tags=tags)
    note_first_use(ctx, repository)
    report_roles(ctx, repository)
    return repository


def report_roles(ctx: Context, repository: TrustedRepository | None) -> None:
    """For --verbose: the roles a verification trusted, with their versions."""
    if repository is None or not ctx.out.verbose:
        return
    roles = [f"{role.role} v{role.version}" for role in repository.roles]
    roles += [f"{name} v{role.version}" for name, role in sorted(repository.delegated.items())]
    ctx.out.debug(f"verified {repository.gun}: {', '.join(roles)}")


def _check_port(flag: str, url: str | None) -> None:
    """A usage error for a URL whose port is no port (``:+443``, ``:99999``): every
    client of it would fail on it later, with a traceback."""
    from urllib.parse import urlsplit

    try:
        if url is not None:
            urlsplit(url).port  # noqa: B018 (parsing is the check)
    except ValueError:
        raise UsageError(
            f"{flag} '{url}' has an invalid port", hint="give a port from 1 to 65535 in digits"
        ) from None


def _shown_url(url: str) -> str:
    """``url`` without what may be a secret: user, password, query."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _request_log(out: Output) -> dict[str, list[Callable[[Any], None]]]:
    """httpx hooks that say, for --verbose, every request, its answer and its time
    (never a header: the token is one)."""
    started: dict[int, float] = {}

    def request(sent: Any) -> None:
        started[id(sent)] = time.monotonic()

    def response(answer: Any) -> None:
        sent = answer.request
        took = time.monotonic() - started.pop(id(sent), time.monotonic())
        out.debug(
            f"{sent.method} {_shown_url(str(sent.url))} -> {answer.status_code} "
            f"({took * 1000:.0f} ms)"
        )

    return {"request": [request], "response": [response]}


def read_file(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None


def note_first_use(ctx: Context, repository: Any) -> None:
    from client.decision import first_use_note

    if repository is not None and repository.trusted_on_first_use:
        ctx.out.warning(f"trustkit: {first_use_note(repository)}")


def confirm(ctx: Context, question: str) -> bool:
    """Ask at a terminal; refuse without --yes anywhere else."""
    if ctx.args.yes:
        return True
    if sys.stdin is None or not sys.stdin.isatty():
        raise UsageError(
            f"{question} needs a confirmation", hint="review it above, then run again with --yes"
        )
    answer = input(printable(f"{question} [y/N] "))
    return answer.strip().lower() in ("y", "yes")
