"""The ``trustkit`` command line: parses arguments, wires them to ``client`` and ``keys``,
and renders results. It holds no logic of its own.

Exit codes: 0 ok, 1 refused (verification or server), 2 usage error,
3 server or network unreachable. ``--json`` prints one JSON document on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustkit import DEFAULT_SERVER, __version__
from trustkit.display import printable, printable_lines
from trustkit.errors import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, TrustkitError, UsageError

if TYPE_CHECKING:
    import ssl

    import httpx

    from client.approval import Approver, PendingChange
    from client.decision import Decision
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
    from trustkit.agent_wire import AgentDecision, AgentRefusal

# Heavy modules (httpx, tuf, securesystemslib, cryptography) are imported by the
# commands that use them, through Context, never here: `trustkit --version` and
# `trustkit --help` load none of them. httpx imports its own command line (click, rich,
# pygments: up to ~40 ms of every command) whenever those are installed, and
# trustkit never runs it; a None entry in sys.modules makes that one import fail, and
# httpx then defines a stub in its place.
if "httpx" not in sys.modules:
    sys.modules["httpx._main"] = None  # type: ignore[assignment]

__all__ = ["main", "run"]

SYSTEM_POLICY = Path("/etc/trustkit/policy.toml")
COMMON_DEFAULTS: dict[str, Any] = {
    "server": None,
    "json": False,
    "passphrase_file": None,
    "expiry": None,
    "token_file": None,
    "ca_file": None,
    "mirror": None,
    "no_agent": False,
}
# Commands whose arguments after trustkit's own options belong to Docker, untouched.
PASSTHROUGH_COMMANDS = ("pull", "run", "create", "docker")
BUNDLE_HELP = (
    "verify from this bundle (trustkit export) with no network: expiry, thresholds and "
    "rollback still checked against what this host saw last"
)
SIGNER_HELP = (
    "sign as this role: targets or a signer (default: targets if its key is here, else "
    "the signer whose key is here and whose paths cover the tag)"
)


@dataclass
class Output:
    """Where results go: text for people, or one JSON document for scripts.

    Text is made safe for a terminal here, once, whatever it quotes (names from
    metadata, a server's words): see ``for_terminal``. JSON escapes by itself."""

    as_json: bool

    def result(self, text: str | Sequence[str], data: dict[str, Any]) -> None:
        if self.as_json:
            print(json.dumps(data, indent=2, sort_keys=True))
        else:
            print(for_terminal(text))

    def note(self, text: str | Sequence[str]) -> None:
        print(for_terminal(text), file=sys.stderr)


def for_terminal(text: str | Sequence[str]) -> str:
    """``text`` escaped for a terminal. A sequence is lines, each escaped whole (a line
    break inside one too, so a name cannot start a line of its own); a str keeps its
    line breaks."""
    if isinstance(text, str):
        return printable_lines(text)
    return "\n".join(printable(line) for line in text)


def _tls_context(ca_file: Path) -> ssl.SSLContext:
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
        return float(self.env.get("TRUSTKIT_AGENT_TIMEOUT") or 60)

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
            yield ServerAPI(settings.server_url, http), verifier

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
            verify = _tls_context(self.settings.ca_file)
        return httpx.Client(
            timeout=self.settings.timeout, follow_redirects=False, verify=verify, headers=headers
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
        from client.gate import Gate

        policy = self.host_policy

        def verify(gun: str, tags: list[str] | None) -> TrustedRepository:
            return verifier.trusted_repository(gun, tags=tags)

        return Gate(verify, policy, verifier.has_anchor)

    def lifecycle(self, api: ServerAPI, verifier: Verifier) -> Lifecycle:
        from client.lifecycle import Lifecycle

        return Lifecycle(self.settings, api, self.keystore(), self.passphrases(), verifier)

    def approver(self, api: ServerAPI, verifier: Verifier) -> Approver:
        from client.approval import Approver

        return Approver(self.settings, api, self.keystore(), self.passphrases(), verifier)

    def publisher(self, api: ServerAPI, verifier: Verifier) -> Publisher:
        from client.publisher import Publisher

        return Publisher(self.settings, api, self.keystore(), self.passphrases(), verifier)


# --- commands -------------------------------------------------------------------------


def cmd_init(ctx: Context) -> int:
    from trustkit.names import parse_gun

    gun = parse_gun(ctx.args.repository)
    with ctx.session() as (api, verifier):
        result = ctx.publisher(api, verifier).init(gun, ctx.args.key_type, ctx.args.bins)
    bins = f"\n  hash bins:   {ctx.args.bins}" if ctx.args.bins else ""
    ctx.out.result(
        f"initialised {gun}\n  root key:    {result.keys['root'][0]}\n"
        f"  targets key: {result.keys['targets'][0]}{bins}",
        {"repository": gun, "keys": result.keys, "bins": ctx.args.bins},
    )
    return EXIT_OK


def cmd_bins(ctx: Context) -> int:
    from trustkit.names import parse_gun

    gun = parse_gun(ctx.args.repository)
    with ctx.session() as (api, verifier):
        publisher = ctx.publisher(api, verifier)
        result = publisher.rebin(gun, ctx.args.count)
    count = sum(1 for role in result.roles if role.startswith("bins-"))
    _result_or_pending(
        ctx,
        f"moved {result.changes} tags of {gun} into hash bins ({count} bins signed, "
        f"targets v{result.targets_version}); hosts need no change",
        {
            "repository": gun,
            "published": True,
            "tags": result.changes,
            "bins_signed": count,
            "targets_version": result.targets_version,
        },
        result.pending,
    )
    return EXIT_OK


def _bin_count(text: str) -> int:
    from trustkit.bins import MAX_BINS, parse_bin_count

    try:
        parse_bin_count(int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a power of two from 2 to {MAX_BINS}"
        ) from None
    return int(text)


def _result_or_pending(
    ctx: Context, done: str, data: dict[str, Any], pending: PendingChange | None
) -> None:
    """Print what was published, or that it waits for co-signers and what it lacks."""
    if pending is None:
        ctx.out.result(done, data)
        return
    if pending.id is None:
        ctx.out.result(done, {**data, "published": False})
        return
    expires = pending.expires.isoformat() if pending.expires else "?"
    ctx.out.result(
        [
            f"signed, but not yet published: the server keeps pending change {pending.id} "
            f"until co-signers approve it (expires {expires}):",
            *(f"  {need.describe()}" for need in pending.needs),
            f"co-signers run: trustkit approve {pending.gun}",
        ],
        {
            **data,
            "published": False,
            "pending": {
                "id": pending.id,
                "expires": expires,
                "needs": [need.__dict__ for need in pending.needs],
            },
        },
    )


def _retire_completed_rotations(ctx: Context, repository: TrustedRepository | None) -> None:
    """Keys a rotation of this keystore retired, once co-holders published it: removed
    as a one-step rotation removes them."""
    from client.lifecycle import RotationsAwaiting

    if repository is None:
        return
    for record in RotationsAwaiting(ctx.settings).retire_published(ctx.keystore(), repository):
        ctx.out.note(
            f"trustkit: removed the retired {record.description}: the rotation that "
            "replaced it is published"
        )


def _note_lapsed(ctx: Context, gun: str, lapsed: int) -> None:
    if lapsed:
        ctx.out.note(
            f"trustkit: {lapsed} change(s) of your pending change lapsed (a co-signer "
            f"rejected or withdrew it, or it expired) and were not sent again: send them "
            f"with: trustkit publish {gun} --resend, or drop them with: trustkit reset {gun}"
        )


def _stage(ctx: Context, gun: str, changes: list[Any], what: str) -> int:
    from client.changelist import Changelist
    from client.publisher import NothingToPublishError, stage_or_publish

    changelist = Changelist(ctx.settings.changelist_path(gun))
    if ctx.args.no_publish:
        stage_or_publish(None, changelist, gun, changes)
        ctx.out.result(
            f"staged {what}; run: trustkit publish {gun}",
            {"repository": gun, "staged": what, "published": False},
        )
        return EXIT_OK
    resend = bool(getattr(ctx.args, "resend", False))
    with ctx.session() as (api, verifier):
        try:
            result = stage_or_publish(
                ctx.publisher(api, verifier),
                changelist,
                gun,
                changes,
                ctx.args.signer,
                resend=resend,
            )
        except NothingToPublishError:
            _note_lapsed(ctx, gun, len(changelist.load_lapsed()))
            raise
    assert result is not None
    _retire_completed_rotations(ctx, verifier.last_verified(gun))
    if result.replaced:
        ctx.out.note(
            f"trustkit: this upload carries the {result.folded} change(s) of your pending "
            f"change {result.replaced} too, and replaces it"
        )
    elif result.folded:
        ctx.out.note(
            f"trustkit: your earlier pending change was gone before it was replaced; its "
            f"{result.folded} change(s) go up with this one"
        )
    _note_lapsed(ctx, gun, result.lapsed)
    _result_or_pending(
        ctx,
        f"{what}; published {gun} ({result.role} v{result.targets_version})",
        {
            "repository": gun,
            "published": True,
            "role": result.role,
            "targets_version": result.targets_version,
            "changes": result.changes,
            "attempts": result.attempts,
        },
        result.pending,
    )
    return EXIT_OK


def cmd_sign(ctx: Context) -> int:
    from client.changelist import Change
    from client.signing import load_tag_list, tags_from_references, targets_to_sign
    from trustkit.names import parse_reference

    args = ctx.args
    if args.tag_list is not None:
        named = [parse_reference(text) for text in args.references]
        if (
            len(named) != 1
            or named[0].tag
            or named[0].digest
            or args.digest
            or args.size is not None
            or args.media_type
        ):
            raise UsageError(
                "with --from FILE, name only the repository (the file lists tags and digests)",
                hint="e.g. trustkit sign registry.example.com/team/app --from tags.txt",
            )
        gun = named[0].gun
        tags = load_tag_list(args.tag_list, sys.stdin)
    else:
        gun, tags = tags_from_references(
            args.references, digest=args.digest, size=args.size, media_type=args.media_type
        )
    targets = targets_to_sign(gun, tags, ctx.registry)
    if len(targets) == 1:
        [target] = targets
        media_type = target.unrecognized_fields.get("custom", {}).get("media_type")
        what = f"signed {gun}:{target.path} -> sha256:{target.hashes['sha256']} "
        what += f"({target.length} bytes" + (f", {media_type})" if media_type else ")")
    else:
        what = f"signed {len(targets)} tags of {gun}"
    return _stage(ctx, gun, [Change.add(target) for target in targets], what)


def cmd_sign_file(ctx: Context) -> int:
    from client.changelist import Change
    from trustkit.metadata import file_target
    from trustkit.names import parse_gun, validate_target_name

    gun = parse_gun(ctx.args.repository)
    name = validate_target_name(ctx.args.name)
    target = file_target(name, _read_file(ctx.args.file))
    return _stage(ctx, gun, [Change.add(target)], f"signed file {name} ({target.length} bytes)")


def cmd_revoke(ctx: Context) -> int:
    from client.changelist import Change, Changelist
    from client.signing import tags_to_revoke
    from trustkit.names import parse_reference

    ref = parse_reference(ctx.args.reference)
    if ref.digest is not None:
        raise UsageError(
            f"revoke takes REPO or REPO:TAG, not a digest ({ctx.args.reference})",
            hint=f"revoke the tags signed as it: trustkit inspect {ref.gun} lists them",
        )
    staged = Changelist(ctx.settings.changelist_path(ref.gun)).load()
    with ctx.session() as (_, verifier):
        revocation = tags_to_revoke(verifier, ref.gun, ref.tag, staged, ctx.args.signer)
    tags = revocation.tags
    what = f"revoked {ref.gun}:{ref.tag}" if ref.tag else f"revoked {len(tags)} tags of {ref.gun}"
    for role, left in revocation.left_to_signers.items():
        ctx.out.note(
            f"trustkit: {len(left)} tag(s) signed by the signer {role} stay signed; revoke "
            f"them with --signer {role}, or take the signer out (trustkit signer remove)"
        )
    return _stage(ctx, ref.gun, [Change.remove(tag) for tag in tags], what)


def cmd_publish(ctx: Context) -> int:
    from client.publisher import NothingToPublishError
    from trustkit.names import parse_gun

    gun = parse_gun(ctx.args.repository)
    ctx.args.no_publish = False
    try:
        return _stage(ctx, gun, [], "published staged changes")
    except NothingToPublishError:
        ctx.out.result(
            f"nothing to publish for {gun}: no staged changes (stage some with sign or "
            "revoke --no-publish)",
            {"repository": gun, "published": False, "changes": 0},
        )
        return EXIT_OK


def cmd_reset(ctx: Context) -> int:
    from client.changelist import Changelist
    from client.publisher import reset
    from trustkit.names import parse_gun

    gun = parse_gun(ctx.args.repository)
    dropped = reset(Changelist(ctx.settings.changelist_path(gun)), list(ctx.args.tags))
    which = f" of {', '.join(ctx.args.tags)}" if ctx.args.tags else ""
    ctx.out.result(
        f"dropped {dropped} staged or lapsed change(s){which} of {gun}; nothing was sent",
        {"repository": gun, "dropped": dropped},
    )
    return EXIT_OK


def cmd_verify(ctx: Context) -> int:
    """verify and resolve: the host policy's decision on one reference (the gate's),
    from the host's agent when it runs one, else made here."""
    verify = ctx.args.command == "verify"
    decision = _ask_agent(ctx, ctx.args.reference, require_signed=verify)
    if decision is None:
        decision = _decide_here(ctx, ctx.args.reference, require_signed=verify)
    if decision.first_use is not None:
        ctx.out.note(f"trustkit: {decision.first_use}")
    if decision.digest is None:
        for note in decision.notes:
            ctx.out.note(f"trustkit: {note}")
        ctx.out.result(
            decision.image,
            {"repository": decision.gun, "tag": decision.tag,
             "digest": None, "reference": decision.image},
        )  # fmt: skip
        return EXIT_OK
    data: dict[str, Any] = {
        "repository": decision.gun,
        "tag": decision.tag,
        "digest": decision.digest,
        "size": decision.size,
        "media_type": decision.media_type,
        "reference": decision.image,
    }
    if verify:
        offline = ctx.args.offline or ctx.args.bundle
        data["registry_digest"] = None if offline else _registry_digest(ctx, decision)
    ctx.out.result(decision.image if not verify else decision.digest, data)
    return EXIT_OK


def cmd_agent(ctx: Context) -> int:
    from client.agent import Agent, AgentLimits, AgentSockets, FreshRepositories, run_agent
    from client.anchors import FirstUseCheck
    from trustkit.agent_wire import DEFAULT_SOCKET, SOCKET_VARIABLE

    args = ctx.args
    if args.freshness < 0:
        raise UsageError(f"--freshness {args.freshness} must be 0 or more seconds")
    socket = Path(args.socket or ctx.env.get(SOCKET_VARIABLE) or DEFAULT_SOCKET)
    plugin = None if args.plugin_socket == "off" else Path(args.plugin_socket)
    docker_host = ctx.env.get("DOCKER_HOST", "")
    docker = Path(
        args.docker_socket
        or (docker_host.removeprefix("unix://") if docker_host.startswith("unix://") else "")
        or "/var/run/docker.sock"
    )
    agents: list[Agent] = []  # the verifier's first-use check follows the agent's policy
    with ctx.session(FirstUseCheck(lambda: agents[0].policy)) as (_, verifier):
        agent = Agent(
            FreshRepositories(verifier, args.freshness),
            ctx.host_policy,
            ctx.policy_path,
            ctx.server_url,
            verifier.has_anchor,
        )
        agents.append(agent)
        policy = agent.loaded
        sockets = AgentSockets(socket, plugin, docker, args.group)

        def ready() -> None:
            where = f"{socket}" + (f" and {plugin} (Docker authorization plugin)" if plugin else "")
            ctx.out.note(f"trustkit agent: answering on {where}; policy: {policy.source}")

        run_agent(agent, sockets, AgentLimits(), ready)
    return EXIT_OK


def _compose_through_gate(ctx: Context, gate: Gate, docker: str, command: Any) -> int:
    """``trustkit docker compose up|pull|run|create``: every image of the project pinned
    in an override, then compose run with it."""
    import tempfile

    from client.compose import compose_command, pinned_compose_run
    from client.gate import execute

    compose = compose_command(ctx.env, docker)
    if not ctx.env.get("TRUSTKIT_COMPOSE"):
        compose = [docker, *command.docker_options, "compose"]
    with tempfile.TemporaryDirectory(prefix="trustkit-compose-") as scratch:
        run = pinned_compose_run(
            compose,
            command.family_options,
            [command.head[-1], *command.args],
            ctx.env,
            Path.cwd(),
            gate.pin,
            Path(scratch),
        )
        _report(ctx, run.pinned.decisions)
        return execute([run.argv], replace_process=False)


def cmd_compose_pin(ctx: Context) -> int:
    from client.compose import (
        compose_command,
        pin_project,
        project_files,
        read_project,
        refuse_profiles,
        with_files,
        write_override,
    )

    args = ctx.args
    options = [flag for name in args.file or [] for flag in ("-f", name)]
    for flag, value in (
        ("--project-name", args.project_name),
        ("--project-directory", args.project_directory),
        ("--env-file", args.env_file),
    ):
        if value:
            options += [flag, value]
    for profile in args.profile or []:
        options += ["--profile", profile]
    files = project_files(options, ctx.env, Path.cwd())
    refuse_profiles(files, Path.cwd())
    compose = compose_command(ctx.env, ctx.env.get("TRUSTKIT_DOCKER") or "docker")
    project = read_project(compose, with_files(options, files), ctx.env)
    with ctx.session() as (_, verifier):
        pinned = pin_project(project, ctx.gate(verifier).pin)
    out = Path(args.output)
    write_override(out, pinned)
    _report(ctx, pinned.decisions)
    names = sorted(pinned.override["services"])
    lines = [f"pinned {len(names)} image(s) into {out}"] + [
        f"  {name}: {pinned.override['services'][name]['image']}" for name in names
    ]
    run_with = " ".join(f"-f {name}" for name in [*files, str(out)])
    lines.append(f"run with: docker compose {run_with} up")
    ctx.out.result(
        lines,
        {"override": str(out), "services": pinned.override["services"], "files": files},
    )
    return EXIT_OK


def _decide_here(ctx: Context, reference: str, *, require_signed: bool) -> AgentDecision:
    from trustkit.names import DEFAULT_TAG, parse_reference

    gun = parse_reference(reference, default_tag=DEFAULT_TAG).gun  # the bundle's
    with _verifier(ctx, gun) as verifier:
        decision = ctx.gate(verifier).pin(reference)
    if require_signed and decision.unverified is not None:
        raise decision.unverified  # verify checks signatures, whatever the policy allows
    return decision.to_wire()


def _ask_agent(ctx: Context, reference: str, *, require_signed: bool) -> AgentDecision | None:
    """The host agent's decision, when one runs and serves this command's server and
    policy; None to decide in-process. Costs no import of python-tuf or httpx."""
    from trustkit.agent_wire import AgentRefusal, AgentRequest, ask, socket_path

    if ctx.args.no_agent or getattr(ctx.args, "bundle", None) or ctx.args.mirror:
        return None
    path = socket_path(ctx.env)
    if path is None:
        return None
    request = AgentRequest(reference, ctx.server_url, ctx.policy_path, require_signed)
    answer = ask(path, request, timeout=ctx.agent_timeout)
    if answer is None or (isinstance(answer, AgentRefusal) and answer.code == "agent_mismatch"):
        return None
    if isinstance(answer, AgentRefusal):
        raise AgentRefused(answer)
    return answer


class AgentRefused(TrustkitError):
    """A refusal the agent made: its words, code and exit code, as made here."""

    def __init__(self, refusal: AgentRefusal) -> None:
        super().__init__(refusal.message, hint=refusal.hint)
        self.code = refusal.code
        self.exit_code = refusal.exit_code


@contextmanager
def _verifier(ctx: Context, gun: str) -> Iterator[Verifier]:
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


def _verified(ctx: Context, gun: str, tags: list[str] | None = None) -> TrustedRepository:
    """Verify ``gun`` from its server, or from ``--bundle FILE``; of its hash bins, only
    those of ``tags`` (all when None)."""
    with _verifier(ctx, gun) as verifier:
        repository = verifier.trusted_repository(gun, tags=tags)
    _note_first_use(ctx, repository)
    return repository


def cmd_migrate_notary(ctx: Context) -> int:
    """Read, verify and republish Notary repositories; with --all, each one of a list."""
    from trustkit.names import parse_gun

    if ctx.args.all:
        if ctx.args.repository:
            raise UsageError("give either REPO or --all, not both")
        guns = _notary_repositories(ctx)
    elif ctx.args.repository:
        guns = [parse_gun(ctx.args.repository)]
    else:
        raise UsageError("name the repository to migrate, or --all --list FILE")
    reports = []
    failed = 0
    for number, gun in enumerate(guns, start=1):
        if len(guns) > 1:
            ctx.out.note(f"trustkit: [{number}/{len(guns)}] {gun}")
        try:
            reports.append(_migrate_one(ctx, gun))
        except TrustkitError as error:
            if len(guns) == 1:
                raise
            failed += 1
            ctx.out.note(f"trustkit: {gun} not migrated: {error.message}")
            reports.append({"repository": gun, "error": error.message})
    if len(guns) > 1:
        done = len(guns) - failed
        ctx.out.result(
            f"migrated {done} of {len(guns)} repositories"
            + (f"; {failed} refused (see above)" if failed else ""),
            {"repositories": reports, "migrated": done, "failed": failed},
        )
        return EXIT_REFUSED if failed else EXIT_OK
    ctx.out.result(reports[0].pop("text"), reports[0])
    return EXIT_OK


def _notary_repositories(ctx: Context) -> list[str]:
    from trustkit.names import parse_gun

    if ctx.args.list is None:
        raise UsageError(
            "--all needs the repositories: --list FILE (one per line)",
            hint="a notary-server keeps no catalog of its repositories",
        )
    lines = _read_file(ctx.args.list).decode(errors="replace").splitlines()
    names = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    if not names:
        raise UsageError(f"{ctx.args.list} names no repository")
    return [parse_gun(name) for name in names]


def _migrate_one(ctx: Context, gun: str) -> dict[str, Any]:
    import time

    from migrate.notary import docker_trust_root, docker_trust_versions, read_notary_repository
    from migrate.republish import apply_plan, plan_migration
    from trustkit.errors import NotFoundError

    trust_dir = Path(ctx.args.trust_dir).expanduser() if ctx.args.trust_dir else None
    pinned = docker_trust_root(gun, trust_dir)
    started = time.monotonic()
    ctx.out.note(f"trustkit: reading {gun} from {ctx.args.source} and verifying it as Notary does")
    notary = read_notary_repository(
        ctx.args.source,
        gun,
        pinned_root=pinned,
        min_versions=docker_trust_versions(gun, trust_dir) if pinned else None,
        ca_file=ctx.args.source_ca,
        credentials=_notary_credentials(ctx),
        strict=not ctx.args.lenient,
    )
    if notary.trusted_on_first_use:
        ctx.out.note(
            f"trustkit: WARNING: no root of {gun} was pinned (none in Docker's trust "
            f"directory), so the root {ctx.args.source} served was trusted on first use. "
            "Compare its keys with what you expect before relying on this migration."
        )
    with ctx.session() as (api, verifier):
        try:
            trusted = verifier.trusted_repository(gun)
        except NotFoundError:
            trusted = None
        local = {record.keyid for record in ctx.keystore().records()}
        plan = plan_migration(notary, trusted, local)
        published: dict[str, int] = {}
        if not ctx.args.dry_run and (
            plan.new_repository
            or plan.to_publish
            or any(not signer.exists for signer in plan.signers)
        ):
            ctx.out.note(f"trustkit: publishing {plan.to_publish} tag change(s) of {gun}")
            published = apply_plan(plan, ctx.publisher(api, verifier), ctx.lifecycle(api, verifier))
    seconds = time.monotonic() - started
    lines = [
        f"{'would migrate' if ctx.args.dry_run else 'migrated'} {gun} from {ctx.args.source} "
        f"(root {notary.root_source}): {len(plan.tags)} tags, {plan.to_publish} to publish, "
        f"{plan.unchanged} already there; {len(plan.signers)} signers"
    ]
    lines += [
        f"  signer {s.name} (Notary {s.notary_role}): keys "
        f"{', '.join(k.keyid[:12] for k in s.keys)}, threshold {s.threshold}, paths "
        f"{', '.join(s.paths)}{' (already there)' if s.exists else ''}"
        for s in plan.signers
    ]
    lines += [
        f"  {count} tag(s) of {role} go under targets: this keystore lacks its key "
        "(import it with trustkit key import --from-docker-trust, then run again)"
        for role, count in plan.under_targets.items()
    ]
    lines += [f"  note: {note}" for note in plan.notes]
    if ctx.args.dry_run:
        lines += [f"  {tag}: {digest} ({role})" for tag, (digest, role) in plan.tags.items()]
    return {
        "text": "\n".join(lines),
        "repository": gun,
        "root": notary.root_source,
        "dry_run": bool(ctx.args.dry_run),
        "tags": {tag: {"digest": d, "role": r} for tag, (d, r) in plan.tags.items()},
        "published_changes": 0 if ctx.args.dry_run else plan.to_publish,
        "unchanged": plan.unchanged,
        "signers": [s.name for s in plan.signers],
        "under_targets": plan.under_targets,
        "versions": published,
        "seconds": round(seconds, 3),
    }


def _notary_credentials(ctx: Context) -> tuple[str, str] | None:
    if not ctx.args.username:
        return None
    password = ctx.env.get("TRUSTKIT_NOTARY_PASSWORD")
    if password is None:
        password = ctx.passphrases().named(
            "TRUSTKIT_NOTARY_PASSWORD", f"password of {ctx.args.username} at {ctx.args.source}"
        )
    return ctx.args.username, password


def cmd_export(ctx: Context) -> int:
    from client.bundle import write_bundle
    from trustkit.names import parse_gun

    gun = parse_gun(ctx.args.repository)
    out = Path(ctx.args.output)
    with ctx.session() as (api, verifier):
        repository = verifier.trusted_repository(gun)
        files = write_bundle(
            out,
            repository,
            ctx.settings.trust_dir(gun),
            lambda version: api.metadata(gun, f"{version}.root.json"),
        )
    _note_first_use(ctx, repository)
    ctx.out.result(
        f"wrote {out}: {len(files)} metadata files of {gun} ({sum(files.values())} bytes); "
        f"hosts verify with: trustkit verify --bundle {out} {gun}:TAG",
        {"repository": gun, "bundle": str(out), "files": files},
    )
    return EXIT_OK


def _registry_digest(ctx: Context, decision: AgentDecision) -> str | None:
    """What the registry serves for the tag now; a tag moved since signing is refused."""
    from trustkit.errors import (
        NotFoundError,
        ServerRefusedError,
        ServerUnreachableError,
        VerificationError,
    )
    from trustkit.names import ImageReference

    ref = ImageReference(decision.gun, decision.tag, None)
    registry = ctx.registry()  # a bad --registry-ca is the user's error, not a skipped check
    try:
        with registry:
            current = registry.resolve(ref)
    except (NotFoundError, ServerRefusedError, ServerUnreachableError) as error:
        # The registry could not be asked; what it serves, when it answers, is checked.
        ctx.out.note(
            f"trustkit: {ref.gun}:{ref.tag} verifies, but it could not be compared with the "
            f"registry: {error.message}"
        )
        return None
    if str(current.digest) != decision.digest:
        raise VerificationError(
            f"the registry now serves {ref.gun}:{ref.tag} as {current.digest}, but it is "
            f"signed as {decision.digest}",
            hint="the tag was moved after signing: pulling it by tag would get an unsigned "
            f"image. Pull the signed one with: trustkit pull {ref.gun}:{ref.tag}",
        )
    return str(current.digest)


def cmd_verify_file(ctx: Context) -> int:
    from tuf.api.exceptions import LengthOrHashMismatchError

    from trustkit.errors import VerificationError
    from trustkit.names import parse_gun, validate_target_name

    gun = parse_gun(ctx.args.repository)
    name = validate_target_name(ctx.args.name)
    data = _read_file(ctx.args.file)
    repository = _verified(ctx, gun, [name])
    info = repository.target_file(name)
    try:
        info.verify_length_and_hashes(data)
    except LengthOrHashMismatchError as error:
        raise VerificationError(
            f"{ctx.args.file} does not match the signed {name} in {gun}: {error}"
        ) from None
    ctx.out.result(
        f"{ctx.args.file} matches the signed {name} in {gun}",
        {"repository": gun, "name": name, "length": info.length, "hashes": info.hashes},
    )
    return EXIT_OK


def cmd_inspect(ctx: Context) -> int:
    from trustkit.metadata import describe_target, is_file_target
    from trustkit.names import parse_reference

    ref = parse_reference(ctx.args.reference)
    repository = _verified(ctx, ref.gun, [ref.tag] if ref.tag else None)
    names = [ref.tag] if ref.tag else repository.signed_tags()
    if ref.tag:
        repository.target(ref.tag)  # raises if not signed
    # Signed files (sign-file) are listed apart: their hashes are no image digests.
    files = [n for n in names if is_file_target(repository.target_file(n))]
    tags = [describe_target(repository.target_file(n)) for n in names if n not in files]
    shown = _roles_shown(repository)
    roles = [
        {
            "role": r.role,
            "version": r.version,
            "expires": r.expires.isoformat(),
            "signed_by": r.keyids,
        }
        for r in shown
    ]
    lines = [
        f"{ref.gun}",
        "",
        f"{'TAG':<30} {'DIGEST':<71} {'SIZE':>9}  {'SIGNER':<10} MEDIA TYPE",
    ]
    lines += [
        f"{t.name:<30} {t.digest:<71} {t.size:>9}  {repository.signer(t.name):<10} "
        f"{t.media_type or '-'}"
        for t in tags
    ]
    if not tags:
        lines.append("(no signed tags)")
    if files:
        lines += ["", f"{'FILE':<30} {'SHA256':<71} {'SIZE':>9}  SIGNER"]
        lines += [
            f"{name:<30} {repository.target_file(name).hashes.get('sha256', '-'):<71} "
            f"{repository.target_file(name).length:>9}  {repository.signer(name)}"
            for name in files
        ]
    lines += ["", f"{'ROLE':<10} {'VERSION':>7}  {'EXPIRES':<26} KEYS"]
    lines += [
        f"{r.role:<10} {r.version:>7}  {r.expires.isoformat():<26} "
        + ", ".join(k[:12] for k in r.keyids)
        for r in shown
    ]
    data: dict[str, Any] = {
        "repository": ref.gun,
        "tags": [
            {
                "tag": t.name,
                "digest": t.digest,
                "size": t.size,
                "media_type": t.media_type,
                "signer": repository.signer(t.name),
            }
            for t in tags
        ],
        "files": [
            {
                "name": name,
                "sha256": repository.target_file(name).hashes.get("sha256"),
                "size": repository.target_file(name).length,
                "signer": repository.signer(name),
            }
            for name in files
        ],
        "roles": roles,
    }
    bins = repository.bins
    if bins is not None:
        data["bins"] = {
            "count": bins.number_of_bins,
            "published": len(repository.roles) - len(shown) + 1,
        }
        lines.append(
            f"tags are signed in {bins.number_of_bins} hash bins (bins-*: the first to expire)"
        )
    ctx.out.result(lines, data)
    return EXIT_OK


def _roles_shown(repository: TrustedRepository) -> list[Any]:
    """The roles as listings show them: hash bins folded into one line, the first of
    them to expire."""
    from dataclasses import replace

    bins = repository.bins
    if bins is None:
        return list(repository.roles)
    shown = [r for r in repository.roles if not bins.is_delegated_role(r.role)]
    in_bins = [r for r in repository.roles if bins.is_delegated_role(r.role)]
    if in_bins:
        first = min(in_bins, key=lambda r: r.expires)
        shown.append(replace(first, role="bins-*"))
    return shown


def cmd_trust_pin(ctx: Context) -> int:
    from trustkit.names import parse_gun

    gun = parse_gun(ctx.args.repository)
    root_bytes = _read_file(ctx.args.root_file)
    with ctx.session() as (_, verifier):
        root = verifier.pin(gun, root_bytes)
    keyids = root.roles["root"].keyids
    ctx.out.result(
        f"pinned root v{root.version} of {gun} (root keys: {', '.join(k[:12] for k in keyids)})",
        {"repository": gun, "root_version": root.version, "root_keys": keyids},
    )
    return EXIT_OK


def cmd_trust_forget(ctx: Context) -> int:
    from trustkit.names import parse_gun

    gun = parse_gun(ctx.args.repository)
    with ctx.session() as (_, verifier):
        existed = verifier.forget(gun)
    ctx.out.result(
        f"forgot the trusted root of {gun}" if existed else f"no trusted root for {gun}",
        {"repository": gun, "forgotten": existed},
    )
    return EXIT_OK


def cmd_delete(ctx: Context) -> int:
    from trustkit.names import parse_gun

    gun = parse_gun(ctx.args.repository)
    if not ctx.args.yes:
        raise UsageError(
            f"deleting {gun} removes all its trust data from the server",
            hint=f"confirm with: trustkit delete {gun} --yes",
        )
    with ctx.session() as (api, verifier):
        api.delete(gun)
        verifier.forget(gun)
    ctx.out.result(f"deleted {gun} from the server", {"repository": gun, "deleted": True})
    return EXIT_OK


def cmd_key_list(ctx: Context) -> int:
    from client.lifecycle import describe_record, listed_by

    records = ctx.keystore().records()
    keys = [describe_record(record) for record in records]
    with ctx.session() as (_, verifier):
        # As this host last verified each repository (no network): keys it no longer
        # lists are marked, to be removed (trustkit key remove KEYID --yes).
        seen = {gun: verifier.last_verified(gun) for gun in {r.gun for r in records} - {"*"}}
    for record, key in zip(records, keys, strict=True):
        trusted = seen.get(record.gun)
        key["listed"] = "retired" if trusted and not listed_by(record, trusted) else "yes"
    lines = [f"{'ROLE':<10} {'KEY ID':<14} {'TYPE':<20} {'REPOSITORY':<40} KEPT IN"]
    lines += [
        f"{k['role']:<10} {k['keyid'][:12]:<14} {k['keytype']:<20} {k['repository']:<40} "
        f"{k['kept']}"
        + ("  (retired: the repository no longer lists it)" if k["listed"] == "retired" else "")
        for k in keys
    ]
    if not keys:
        lines = [f"no keys in {ctx.settings.home}"]
    ctx.out.result(lines, {"keys": keys})
    return EXIT_OK


def cmd_key_generate(ctx: Context) -> int:
    from client.lifecycle import validate_signer_name
    from keys.keystore import public_pem

    name = validate_signer_name(ctx.args.name)
    out = Path(ctx.args.out or f"{name}.pub")
    if out.exists():
        raise UsageError(f"{out} already exists", hint="choose another file with --out")
    record = ctx.keystore().generate("*", name, ctx.passphrases(), ctx.args.key_type)
    try:
        out.write_bytes(public_pem(record.public))
    except OSError as error:
        ctx.keystore().remove(record)
        raise UsageError(f"cannot write {out}: {error.strerror}") from None
    ctx.out.result(
        f"generated the signer key {name} ({record.keyid[:12]}); its public half is in {out}\n"
        f"  the repository owner adds it with: trustkit signer add {name} REPO --key {out}",
        {"name": name, "keyid": record.keyid, "public_key_file": str(out)},
    )
    return EXIT_OK


def cmd_signer_add(ctx: Context) -> int:
    from keys.keystore import public_key_from_pem
    from trustkit.names import parse_gun

    gun = parse_gun(ctx.args.repository)
    keys = [public_key_from_pem(_read_file(path), path) for path in ctx.args.key]
    paths = ctx.args.paths or ["*"]
    with ctx.session() as (api, verifier):
        change = ctx.lifecycle(api, verifier).add_signer(
            gun, ctx.args.name, keys, paths, ctx.args.threshold, ctx.args.terminating
        )
    note = "" if change.published else f"; its role appears once {change.name} first signs"
    _result_or_pending(
        ctx,
        f"added the signer {change.name} to {gun} for {', '.join(paths)} "
        f"(targets v{change.targets_version}){note}",
        {
            "repository": gun,
            "signer": change.name,
            "keys": [key.keyid for key in keys],
            "paths": paths,
            "threshold": ctx.args.threshold,
            "targets_version": change.targets_version,
            "published": change.published,
        },
        change.pending,
    )
    return EXIT_OK


def cmd_signer_remove(ctx: Context) -> int:
    from trustkit.names import parse_gun

    gun = parse_gun(ctx.args.repository)
    with ctx.session() as (api, verifier):
        change = ctx.lifecycle(api, verifier).remove_signer(gun, ctx.args.name)
    _result_or_pending(
        ctx,
        f"removed the signer {change.name} from {gun} (targets v{change.targets_version}); "
        "what it signed no longer verifies",
        {"repository": gun, "signer": change.name, "targets_version": change.targets_version},
        change.pending,
    )
    return EXIT_OK


def cmd_signer_list(ctx: Context) -> int:
    from client.lifecycle import signers_of
    from trustkit.names import parse_gun

    gun = parse_gun(ctx.args.repository)
    repository = _verified(ctx, gun)
    signers = signers_of(repository)
    lines = [f"{'SIGNER':<20} {'THRESHOLD':>9}  {'PATHS':<30} {'TAGS':>5}  KEYS"]
    lines += [
        f"{s['name']:<20} {s['threshold']:>9}  {_signer_paths(s):<30} {len(s['tags']):>5}  "
        + ", ".join(k[:12] for k in s["keys"])
        + (", terminating" if s["terminating"] else "")
        + ("" if s["published"] else "  (not published yet)")
        for s in signers
    ]
    if not signers:
        lines = [f"{gun} has no signers: only the targets key signs"]
    ctx.out.result(lines, {"repository": gun, "signers": signers})
    return EXIT_OK


def _signer_paths(signer: dict[str, Any]) -> str:
    """What a signer may sign: its path patterns, or the hash prefixes of its paths."""
    if signer["path_hash_prefixes"]:
        return "hash prefixes " + ", ".join(signer["path_hash_prefixes"])
    return ", ".join(signer["paths"])


def cmd_key_export(ctx: Context) -> int:
    from keys.keystore import public_pem

    record = ctx.keystore().by_keyid(ctx.args.keyid)
    pem = public_pem(record.public).decode()
    if ctx.args.out:
        try:
            Path(ctx.args.out).write_text(pem)
        except OSError as error:
            raise UsageError(f"cannot write {ctx.args.out}: {error.strerror}") from None
        text = f"wrote the public {record.description} to {ctx.args.out}"
    else:
        text = pem.rstrip("\n")
    ctx.out.result(text, {"keyid": record.keyid, "role": record.role, "public_pem": pem})
    return EXIT_OK


def cmd_key_import(ctx: Context) -> int:
    from keys.keystore import pem_is_encrypted, read_pem_private_key
    from trustkit.names import parse_gun

    if ctx.args.from_docker_trust is not None:
        return _import_docker_trust(ctx)
    if not ctx.args.repository or not ctx.args.role:
        raise UsageError(
            "key import needs --repository REPO and --role root|targets",
            hint="e.g. trustkit key import key.pem --repository REPO --role targets",
        )
    gun = parse_gun(ctx.args.repository)
    if ctx.args.token is not None and ctx.args.hsm is None:
        raise UsageError("--token chooses the token of an --hsm key", hint="add --hsm KEY")
    if ctx.args.hsm is not None:
        from keys.hsm import hsm_record

        record = hsm_record(gun, ctx.args.role, ctx.args.hsm, ctx.args.token, ctx.passphrases())
        ctx.keystore().add_external(record)
        ctx.out.result(
            f"imported the {record.description}, kept at {record.uri}",
            {"keyid": record.keyid, "repository": gun, "role": record.role, "uri": record.uri},
        )
        return EXIT_OK
    data = _read_file(ctx.args.file)
    password = None
    if pem_is_encrypted(data):
        password = ctx.passphrases().named(
            "TRUSTKIT_IMPORT_PASSPHRASE", f"passphrase of {ctx.args.file}"
        )
    key = read_pem_private_key(data, password, ctx.args.file)
    record = ctx.keystore().import_private(gun, ctx.args.role, key, ctx.passphrases())
    ctx.out.result(
        f"imported the {record.description}",
        {"keyid": record.keyid, "repository": gun, "role": record.role},
    )
    return EXIT_OK


def _import_docker_trust(ctx: Context) -> int:
    from keys.docker_trust import DockerTrustKey, import_docker_trust
    from trustkit.names import parse_gun

    if ctx.args.role or ctx.args.hsm or ctx.args.token:
        raise UsageError("--from-docker-trust takes each key's role from the key file")
    trust_dir = Path(ctx.args.from_docker_trust).expanduser()
    passphrases = ctx.passphrases()

    def notary_passphrase(key: DockerTrustKey) -> str:
        kind = "delegation" if key.is_delegation else key.role
        return ctx.env.get(f"NOTARY_{kind.upper()}_PASSPHRASE") or passphrases.named(
            "TRUSTKIT_IMPORT_PASSPHRASE", f"Notary passphrase of the {key.role} key {key.path.name}"
        )

    repository = parse_gun(ctx.args.repository) if ctx.args.repository else None
    done = import_docker_trust(
        ctx.keystore(), passphrases, notary_passphrase, trust_dir, repository
    )
    lines = [f"imported {len(done.imported)} key(s) from {trust_dir}"]
    lines += [
        f"  {each.record.role:<12} {each.record.gun:<40} {each.record.keyid[:12]}"
        f"  (notary key id {each.notary_keyid[:12]})"
        for each in done.imported
    ]
    if done.already_here:
        lines.append(f"  ({done.already_here} already in this keystore)")
    for key in done.skipped_snapshot:
        lines.append(
            f"  left out the snapshot key of {key.gun} ({key.notary_keyid[:12]}): "
            "the trustkit server signs snapshot"
        )
    ctx.out.result(
        "\n".join(lines),
        {
            "imported": [
                {
                    "keyid": each.record.keyid,
                    "notary_keyid": each.notary_keyid,
                    "repository": each.record.gun,
                    "role": each.record.role,
                }
                for each in done.imported
            ],
            "already_here": done.already_here,
            "skipped": [
                {"notary_keyid": key.notary_keyid, "repository": key.gun, "role": key.role}
                for key in done.skipped_snapshot
            ],
        },
    )
    return EXIT_OK


def cmd_key_passwd(ctx: Context) -> int:
    keystore = ctx.keystore()
    record = keystore.by_keyid(ctx.args.keyid)
    passphrases = ctx.passphrases()
    keystore.change_passphrase(
        record,
        passphrases,
        lambda: passphrases.named(
            "TRUSTKIT_NEW_PASSPHRASE", f"new passphrase for the {record.description}", new=True
        ),
    )
    ctx.out.result(
        f"changed the passphrase of the {record.description}",
        {"keyid": record.keyid, "changed": True},
    )
    return EXIT_OK


def cmd_key_remove(ctx: Context) -> int:
    keystore = ctx.keystore()
    record = keystore.by_keyid(ctx.args.keyid)
    if not ctx.args.yes:
        raise UsageError(
            f"removing the {record.description} deletes its private key from this keystore "
            "for good",
            hint=f"confirm with: trustkit key remove {ctx.args.keyid} --yes "
            "(export it first if you may need it)",
        )
    keystore.remove(record)
    ctx.out.result(f"removed the {record.description}", {"keyid": record.keyid, "removed": True})
    return EXIT_OK


def cmd_key_rotate(ctx: Context) -> int:
    from keys.keystore import public_key_from_pem
    from trustkit.names import parse_gun

    gun = parse_gun(ctx.args.repository)
    co_holders = [public_key_from_pem(_read_file(path), path) for path in ctx.args.key or []]
    use = ctx.keystore().by_keyid(ctx.args.use) if ctx.args.use else None
    out = Path(ctx.args.out) if ctx.args.out else None
    with ctx.session() as (api, verifier):
        result = ctx.lifecycle(api, verifier).rotate(
            gun,
            ctx.args.role,
            ctx.args.key_type,
            use=use,
            co_holders=co_holders,
            threshold=ctx.args.threshold,
            out=out,
            held_by=ctx.args.held_by,
        )
    done = (
        f"rotated the {result.role} key of {gun}: "
        f"{', '.join(k[:12] for k in result.old_keys)} -> "
        f"{', '.join(k[:12] for k in result.new_keys)} (root v{result.root_version}); "
        "hosts follow the new root on their next verification"
    )
    if out is not None:
        done = (
            f"wrote root v{result.root_version} of {gun} to {out}, signed with this "
            f"keystore's keys; co-holders sign it with: trustkit approve {gun} --file {out}, "
            f"then send it: trustkit submit {gun} {out}"
        )
    elif result.pending is not None:
        done += " (once published, remove the old key here: trustkit key remove KEYID --yes)"
    _result_or_pending(
        ctx,
        done,
        {
            "repository": gun,
            "role": result.role,
            "old_keys": result.old_keys,
            "new_keys": result.new_keys,
            "root_version": result.root_version,
            "published": out is None,
        },
        result.pending,
    )
    return EXIT_OK


def _confirm(ctx: Context, question: str) -> bool:
    """Ask at a terminal; refuse without --yes anywhere else."""
    if ctx.args.yes:
        return True
    if sys.stdin is None or not sys.stdin.isatty():
        raise UsageError(
            f"{question} needs a confirmation", hint="review it above, then run again with --yes"
        )
    answer = input(printable(f"{question} [y/N] "))
    return answer.strip().lower() in ("y", "yes")


def cmd_approve(ctx: Context) -> int:
    from client.approval import describe_change, read_change_file, write_change_file
    from trustkit.errors import ServerRefusedError
    from trustkit.names import parse_gun

    gun = parse_gun(ctx.args.repository)
    if ctx.args.file:
        if ctx.args.reject or ctx.args.export or ctx.args.id:
            raise UsageError(
                "--file signs the change in a file; --reject, --export and --id are for "
                "changes pending on the server",
                hint="to drop a change kept in a file, delete the file",
            )
        path = Path(ctx.args.file)
        change = read_change_file(path, gun)
        with ctx.session() as (api, verifier):  # offline: nothing is fetched
            cached = verifier.last_verified(gun)
            if cached is None:
                ctx.out.note(
                    f"trustkit: this machine never verified {gun}: the change is shown in "
                    "full, not compared with what hosts trust now"
                )
            else:
                ctx.out.note(
                    f"trustkit: compared with what this machine verified last of {gun} "
                    f"(root v{cached.root.version}, targets v{cached.targets.version})"
                )
            ctx.out.note(describe_change(change, cached))
            if not _confirm(ctx, f"sign this change to {gun}?"):
                ctx.out.result("not signed", {"repository": gun, "signed_with": []})
                return EXIT_OK
            _, keyids = ctx.approver(api, verifier).sign(change)
        write_change_file(path, change)
        ctx.out.result(
            f"signed {path} with {', '.join(k[:12] for k in keyids)}; send it when complete: "
            f"trustkit submit {gun} {path}",
            {"repository": gun, "file": str(path), "signed_with": keyids},
        )
        return EXIT_OK
    results: list[dict[str, Any]] = []
    lines: list[str] = []
    with ctx.session() as (api, verifier):
        approver = ctx.approver(api, verifier)
        changes = [c for c in approver.pending(gun) if ctx.args.id in (None, c.id)]
        if ctx.args.id and not changes:
            raise UsageError(
                f"{gun} has no pending change {ctx.args.id}", hint=f"see: trustkit approve {gun}"
            )
        if not changes:
            ctx.out.result(f"nothing of {gun} is pending", {"repository": gun, "results": []})
            return EXIT_OK
        if ctx.args.export and len(changes) > 1:
            raise UsageError(
                f"{gun} has {len(changes)} pending changes; --export writes one",
                hint="choose it with --id: " + ", ".join(str(c.id) for c in changes),
            )
        trusted = verifier.trusted_repository(gun)
        for change in changes:
            ctx.out.note(describe_change(change, trusted))
            if ctx.args.export:
                write_change_file(Path(ctx.args.export), change)
                lines.append(f"wrote pending change {change.id} to {ctx.args.export}")
                results.append({"id": change.id, "exported": ctx.args.export})
                break
            verb = "withdraw" if ctx.args.reject else "sign"
            if not _confirm(ctx, f"{verb} pending change {change.id}?"):
                lines.append(f"skipped pending change {change.id}")
                results.append({"id": change.id, "skipped": True})
                continue
            if ctx.args.reject:
                approver.withdraw(change)
                lines.append(f"withdrew pending change {change.id}")
                results.append({"id": change.id, "withdrawn": True})
                continue
            try:
                outcome = approver.approve(change)
            except ServerRefusedError as refusal:
                if refusal.status != 404:
                    raise
                # Published, withdrawn or made stale since the list was read.
                lines.append(f"pending change {change.id} is gone: {refusal.message}")
                results.append({"id": change.id, "gone": True})
                continue
            signed = ", ".join(k[:12] for k in outcome.signed_with)
            if outcome.still_pending is not None:
                needs = "; ".join(n.describe() for n in outcome.still_pending.needs)
                lines.append(f"signed pending change {change.id} with {signed}; still: {needs}")
            else:
                versions = ", ".join(f"{r} v{v}" for r, v in outcome.versions.items())
                lines.append(
                    f"signed pending change {change.id} with {signed}; published {versions}"
                )
            results.append(
                {
                    "id": change.id,
                    "signed_with": outcome.signed_with,
                    "published": outcome.still_pending is None,
                    "versions": outcome.versions,
                }
            )
    ctx.out.result(lines, {"repository": gun, "results": results})
    return EXIT_OK


def cmd_submit(ctx: Context) -> int:
    from client.approval import read_change_file
    from trustkit.names import parse_gun

    gun = parse_gun(ctx.args.repository)
    change = read_change_file(Path(ctx.args.file), gun)
    with ctx.session() as (api, verifier):
        outcome = ctx.approver(api, verifier).submit(change)
        if outcome.still_pending is None:
            verifier.trusted_repository(gun)
    versions = ", ".join(f"{r} v{v}" for r, v in outcome.versions.items())
    _result_or_pending(
        ctx,
        f"published {gun} from {ctx.args.file}: {versions}",
        {"repository": gun, "published": True, "versions": outcome.versions},
        outcome.still_pending,
    )
    return EXIT_OK


def _local_changes(ctx: Context, gun: str) -> dict[str, Any]:
    """This machine's changes of ``gun``: staged, awaiting co-signers, lapsed."""
    from client.changelist import Changelist

    changelist = Changelist(ctx.settings.changelist_path(gun))
    awaiting = changelist.load_awaiting()

    def shown(change: Any) -> str:
        if change.action == "remove":
            return f"revoke {change.path}"
        digest = change.target.get("hashes", {}).get("sha256", "?")
        return f"sign {change.path} -> sha256:{digest}"

    return {
        "staged": [shown(c) for c in changelist.load()],
        "awaiting": len(awaiting.changes) if awaiting else 0,
        "lapsed": [shown(c) for c in changelist.load_lapsed()],
    }


def cmd_status(ctx: Context) -> int:
    from client.lifecycle import expiry_report
    from trustkit.expiry import parse_duration
    from trustkit.names import parse_gun

    gun = parse_gun(ctx.args.repository)
    with ctx.session() as (api, verifier):
        repository = verifier.trusted_repository(gun)
        waiting = len(api.pending(gun))
    _note_first_use(ctx, repository)
    _retire_completed_rotations(ctx, repository)
    report = expiry_report(
        repository, parse_duration(ctx.args.warn_within), parse_duration(ctx.args.warn_online)
    )
    lines = [gun, "", f"{'ROLE':<10} {'VERSION':>7}  {'EXPIRES':<26} {'DAYS':>7}  KEYS"]
    for role in report:
        flag = "  <- expires soon: run trustkit refresh" if role.warning else ""
        if role.warning and role.role in ("snapshot", "timestamp"):
            flag = "  <- expires soon: the server is not refreshing it"
        keys = ", ".join(k[:12] for k in role.keys)
        lines.append(
            f"{role.role:<10} {role.version:>7}  {role.expires.isoformat():<26} "
            f"{role.days_left:>7.1f}  {keys} (threshold {role.threshold}){flag}"
        )
    if waiting:
        lines += ["", f"{waiting} change(s) waiting for co-signers: trustkit approve {gun}"]
    local = _local_changes(ctx, gun)
    if local["staged"]:
        lines += [f"{len(local['staged'])} staged change(s) here: trustkit publish {gun}"]
        lines += [f"  {change}" for change in local["staged"]]
    if local["awaiting"]:
        lines += [f"{local['awaiting']} change(s) of this machine's upload await co-signers"]
    if local["lapsed"]:
        lines += [
            f"{len(local['lapsed'])} change(s) lapsed (rejected, withdrawn or expired): "
            f"trustkit publish {gun} --resend, or trustkit reset {gun}"
        ]
        lines += [f"  {change}" for change in local["lapsed"]]
    warnings = [role.role for role in report if role.warning]
    data = {
        "repository": gun,
        "pending_changes": waiting,
        "staged": local["staged"],
        "lapsed": local["lapsed"],
        "roles": [
            {
                "role": r.role,
                "version": r.version,
                "expires": r.expires.isoformat(),
                "days_left": round(r.days_left, 2),
                "keys": r.keys,
                "threshold": r.threshold,
                "warning": r.warning,
            }
            for r in report
        ],
        "warnings": warnings,
    }
    ctx.out.result(lines, data)
    if warnings and ctx.args.check:
        ctx.out.note(
            f"trustkit: {', '.join(warnings)} of {gun} expire(s) soon; see the table above",
        )
        return EXIT_REFUSED
    return EXIT_OK


def cmd_refresh(ctx: Context) -> int:
    from trustkit.expiry import parse_duration
    from trustkit.names import parse_gun

    gun = parse_gun(ctx.args.repository)
    within = parse_duration(ctx.args.within)
    with ctx.session() as (api, verifier):
        result = ctx.lifecycle(api, verifier).refresh(gun, within)
    text = (
        "re-signed " + ", ".join(f"{role} (v{version})" for role, version in result.renewed.items())
        if result.renewed
        else f"nothing of {gun} expires within {ctx.args.within}; nothing re-signed"
    )
    _result_or_pending(ctx, text, {"repository": gun, "renewed": result.renewed}, result.pending)
    return EXIT_OK


def cmd_pull(ctx: Context) -> int:
    from client.gate import execute, pull_commands

    tool = ctx.tool()
    with ctx.session() as (_, verifier):
        pinned, commands = pull_commands(
            ctx.gate(verifier), tool, ctx.args.docker_args, dest=ctx.args.dest
        )
    _report(ctx, [pinned])
    return execute(commands, replace_process=True)


def cmd_run(ctx: Context) -> int:
    from client.gate import execute, run_command

    tool = ctx.tool()
    with ctx.session() as (_, verifier):
        pinned, command = run_command(
            ctx.gate(verifier), tool, ctx.args.docker_args, head=[ctx.args.command]
        )
    _report(ctx, [pinned])
    return execute([command], replace_process=True)


def cmd_docker(ctx: Context) -> int:
    """``docker ARGS…`` with pull, run, create, build and buildx create gated, the
    commands that start no image as they are, and every other command refused."""
    from client.docker_cli import parse_docker_command
    from client.gate import (
        build_command,
        builder_create_command,
        execute,
        pull_commands,
        run_command,
    )

    tool = ctx.tool()
    if tool.kind == "skopeo":
        raise UsageError("trustkit docker wraps docker or podman, not skopeo")
    if ctx.args.docker_args in ([], ["--help"], ["-h"]):
        ctx.out.note(
            "trustkit docker: docker with every command that pulls or starts an image "
            "verified first (pull, run, create, build, buildx create, compose up/pull/run/"
            "create), commands that start no image passed through, and every other command "
            "refused; trustkit's own options (--policy, --via, --no-agent, …) go before "
            "'docker'. Docker's help follows.\n"
        )
    command = parse_docker_command(ctx.args.docker_args)
    if command.action is None:
        return execute([[tool.binary, *command.head, *command.args]], replace_process=True)
    with ctx.session() as (_, verifier):
        gate = ctx.gate(verifier)
        if command.action == "pull":
            pinned, commands = pull_commands(gate, tool, command.args, head=command.head)
            _report(ctx, [pinned])
        elif command.action in ("run", "create"):
            pinned, run = run_command(gate, tool, command.args, head=command.head)
            _report(ctx, [pinned])
            commands = [run]
        elif command.action == "compose":
            return _compose_through_gate(ctx, gate, tool.binary, command)
        elif command.action == "builder-create":
            decisions, create = builder_create_command(gate, tool, command.args, head=command.head)
            _report(ctx, decisions)
            commands = [create]
        else:
            build = build_command(gate, tool, command.args, head=command.head, env=ctx.env)
            _report(ctx, build.pinned)
            try:
                return execute([build.command], replace_process=False)
            finally:
                shutil.rmtree(build.workdir, ignore_errors=True)
    return execute(commands, replace_process=True)


def _report(ctx: Context, pinned: Sequence[Decision]) -> None:
    for image in pinned:
        for note in image.notes:
            ctx.out.note(f"trustkit: {note}")


# --- wiring ---------------------------------------------------------------------------


def _read_file(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None


def _note_first_use(ctx: Context, repository: Any) -> None:
    from client.decision import first_use_note

    if repository is not None and repository.trusted_on_first_use:
        ctx.out.note(f"trustkit: {first_use_note(repository)}")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--server",
        default=argparse.SUPPRESS,
        help="metadata server URL (env TRUSTKIT_SERVER or DOCKER_CONTENT_TRUST_SERVER, "
        "default http://127.0.0.1:4443)",
    )
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for scripts"
    )
    common.add_argument(
        "--token-file",
        type=Path,
        default=argparse.SUPPRESS,
        help="the metadata server's access token, from this file (else env TRUSTKIT_TOKEN)",
    )
    common.add_argument(
        "--mirror",
        default=argparse.SUPPRESS,
        metavar="URL",
        help="read metadata from this static mirror or CDN (trustkit-server export) instead "
        "of the server (env TRUSTKIT_MIRROR); writes still go to the server",
    )
    common.add_argument(
        "--no-agent",
        action="store_true",
        default=argparse.SUPPRESS,
        help="decide here, not through the host's trustkit agent (as TRUSTKIT_AGENT=off)",
    )
    common.add_argument(
        "--ca-file",
        type=Path,
        default=argparse.SUPPRESS,
        help="CA certificates for the metadata server's TLS (env TRUSTKIT_CA_FILE)",
    )

    # Options of the commands that sign: not offered where nothing is signed.
    signing = argparse.ArgumentParser(add_help=False)
    signing.add_argument(
        "--passphrase-file",
        type=Path,
        default=argparse.SUPPRESS,
        help="read key passphrases from this file (e.g. /run/secrets/…)",
    )
    signing.add_argument(
        "--expiry",
        action="append",
        default=argparse.SUPPRESS,
        metavar="ROLE=DURATION",
        help="lifetime of metadata you sign, e.g. targets=1y (roles: root, targets, "
        "delegation; defaults 10y, 3y, 3y)",
    )

    registry = argparse.ArgumentParser(add_help=False)
    registry.add_argument(
        "--insecure-registry",
        action="append",
        default=argparse.SUPPRESS,
        metavar="HOST[:PORT]",
        help="allow plain http to this registry (env TRUSTKIT_INSECURE_REGISTRIES, "
        "comma-separated; loopback registries always may)",
    )
    registry.add_argument(
        "--registry-ca",
        default=argparse.SUPPRESS,
        metavar="FILE",
        help="PEM CA certificates that sign the registry's TLS certificate "
        "(env TRUSTKIT_REGISTRY_CA)",
    )
    policy = argparse.ArgumentParser(add_help=False)
    policy.add_argument(
        "--policy",
        default=argparse.SUPPRESS,
        metavar="FILE",
        help="host policy (env TRUSTKIT_POLICY, default /etc/trustkit/policy.toml)",
    )
    # pull may hand images to skopeo too; run and create need a tool that runs them.
    gate, runs = (argparse.ArgumentParser(add_help=False, parents=[policy]) for _ in range(2))
    for parent, tools in ((gate, ["docker", "podman", "skopeo"]), (runs, ["docker", "podman"])):
        parent.add_argument(
            "--via",
            choices=tools,
            default=argparse.SUPPRESS,
            help="the tool to hand the verified image to (default docker; TRUSTKIT_DOCKER "
            "names the docker binary)",
        )

    parser = argparse.ArgumentParser(
        prog="trustkit",
        description="Sign container image tags and verify them before they run.",
        epilog="exit codes: 0 ok, 1 refused (verification, or by the server), 2 usage "
        "error, 3 server or network unreachable",
        parents=[common, signing],
    )
    # Options of every command: set where missing after parsing (see main), because a
    # parser default would also reach the sub-commands sharing these option objects and
    # overwrite a value given before the command.
    parser.set_defaults(
        insecure_registry=None,
        registry_ca=None,
        via=None,
        policy=None,
        signer=None,
        dest=None,
        offline=False,
        docker_args=[],
    )
    parser.add_argument("--version", action="version", version=f"trustkit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(
        name: str,
        handler: Callable[[Context], int],
        text: str,
        parents: Sequence[argparse.ArgumentParser] = (),
        epilog: str | None = None,
        *,
        signs: bool = True,
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            parents=[common, *([signing] if signs else []), *parents],
            help=text,
            description=text,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.set_defaults(handler=handler)
        return sub

    sub = add("init", cmd_init, "create a signed repository: root and targets keys, root v1")
    sub.add_argument("repository", help="e.g. registry.example.com/team/app")
    sub.add_argument(
        "--key-type",
        choices=["ed25519", "ecdsa"],
        default="ed25519",
        help="the new key's type (default %(default)s)",
    )
    sub.add_argument(
        "--bins",
        type=_bin_count,
        metavar="N",
        help="sign tags in N hash bins (a power of two, 2 to 16384) for a repository "
        "expected to hold many thousands of tags; without it, a repository moves into "
        "bins by itself once it holds more than 1024 tags",
    )

    sub = add(
        "bins",
        cmd_bins,
        "move every tag of a repository into hash bins (or into a new number of them)",
        epilog="Signing one tag then re-signs one bin, and a host verifying one tag "
        "downloads one bin. Hosts need no change. Needs the targets key.",
    )
    sub.add_argument("repository", help="the repository, e.g. registry.example.com/team/app")
    sub.add_argument(
        "--count",
        type=_bin_count,
        metavar="N",
        help="number of bins, a power of two (default: chosen from the number of tags)",
    )

    sub = add(
        "sign",
        cmd_sign,
        "sign TAG -> digest and publish it (the digest is read from the registry unless "
        "--digest and --size are given)",
        [registry],
    )
    sub.add_argument(
        "references",
        nargs="+",
        metavar="IMAGE:TAG[@DIGEST]",
        help="tags of one repository to sign in one publish (with --from: the repository)",
    )
    sub.add_argument(
        "--from",
        dest="tag_list",
        metavar="FILE",
        help="sign every tag FILE lists ('-': standard input): lines TAG DIGEST SIZE "
        "[MEDIA_TYPE], or JSON [{tag, digest, size, media_type}]",
    )
    sub.add_argument("--digest", help="manifest digest, sha256:… (default: ask the registry)")
    sub.add_argument("--size", type=int, help="manifest size in bytes (default: ask the registry)")
    sub.add_argument("--media-type", help="manifest media type")
    sub.add_argument("--no-publish", action="store_true", help="only stage the change")
    sub.add_argument("--signer", metavar="NAME", help=SIGNER_HELP)

    sub = add("sign-file", cmd_sign_file, "sign an arbitrary file under NAME")
    sub.add_argument("repository", help="the repository, e.g. registry.example.com/team/app")
    sub.add_argument("name", help="the file's name in the repository, e.g. charts/app-1.0.tgz")
    sub.add_argument("file", help="the file to sign")
    sub.add_argument("--no-publish", action="store_true", help="only stage the change")
    sub.add_argument("--signer", metavar="NAME", help=SIGNER_HELP)

    sub = add("revoke", cmd_revoke, "remove a signed tag, or every tag of a repository")
    sub.add_argument(
        "reference",
        metavar="REPO[:TAG]",
        help="the tag to revoke; a repository alone revokes every signed tag in it",
    )
    sub.add_argument("--no-publish", action="store_true", help="only stage the change")
    sub.add_argument("--signer", metavar="NAME", help=SIGNER_HELP)

    sub = add("publish", cmd_publish, "publish the staged changes of a repository")
    sub.add_argument("repository", help="the repository, e.g. registry.example.com/team/app")
    sub.add_argument(
        "--resend",
        action="store_true",
        help="send again the changes of your pending change that lapsed (rejected, "
        "withdrawn or expired); they are never sent again without it",
    )
    sub.add_argument("--signer", metavar="NAME", help=SIGNER_HELP)

    sub = add(
        "reset",
        cmd_reset,
        "drop staged changes (and lapsed ones) without sending anything",
        signs=False,
    )
    sub.add_argument("repository", help="the repository, e.g. registry.example.com/team/app")
    sub.add_argument("tags", nargs="*", metavar="TAG", help="only the changes of these tags")

    sub = add(
        "verify",
        cmd_verify,
        "verify a tag, check the registry still serves it, and print its signed digest",
        [registry, policy],
        signs=False,
    )
    sub.add_argument(
        "reference", metavar="IMAGE[:TAG]", help="e.g. registry.example.com/team/app:1.4.2"
    )
    sub.add_argument(
        "--offline", action="store_true", help="do not compare with the registry's current tag"
    )
    sub.add_argument("--bundle", metavar="FILE", help=BUNDLE_HELP)
    sub = add(
        "resolve",
        cmd_verify,
        "decide on IMAGE[:TAG] as pull would, and print the IMAGE@sha256:… to give docker",
        [policy],
        signs=False,
    )
    sub.add_argument(
        "reference", metavar="IMAGE[:TAG]", help="e.g. registry.example.com/team/app:1.4.2"
    )
    sub.add_argument("--bundle", metavar="FILE", help=BUNDLE_HELP)

    compose = add("compose", lambda ctx: EXIT_USAGE, "verify and pin compose projects")
    compose_commands = compose.add_subparsers(
        dest="compose_command", metavar="COMMAND", required=True
    )
    pin = compose_commands.add_parser(
        "pin",
        parents=[common, policy],
        help="verify every image: of a compose project and write them pinned to their "
        "signed digests into an override file",
    )
    pin.set_defaults(handler=cmd_compose_pin)
    pin.add_argument("-f", "--file", action="append", metavar="FILE", help="compose file(s)")
    pin.add_argument("-p", "--project-name", metavar="NAME", help="compose project name")
    pin.add_argument("--project-directory", metavar="DIR", help="compose project directory")
    pin.add_argument("--env-file", metavar="FILE", help="compose environment file")
    pin.add_argument("--profile", action="append", metavar="NAME", help="compose profile(s)")
    pin.add_argument(
        "-o",
        "--output",
        default="docker-compose.trustkit.yml",
        metavar="FILE",
        help="the override file to write (default %(default)s)",
    )

    sub = add(
        "agent",
        cmd_agent,
        "run the host's resident verifier: trustkit commands and Docker's authorization "
        "plugin ask it (see deploy/trustkit-agent.service)",
        [policy],
        signs=False,
    )
    sub.add_argument(
        "--socket",
        metavar="PATH",
        help="where trustkit commands ask (env TRUSTKIT_AGENT, default /run/trustkit/agent.sock)",
    )
    sub.add_argument(
        "--plugin-socket",
        metavar="PATH",
        default="/run/docker/plugins/trustkit.sock",
        help="where Docker asks, as authorization plugin 'trustkit' (default %(default)s; "
        "'off': no plugin)",
    )
    sub.add_argument(
        "--docker-socket",
        metavar="PATH",
        help="the Docker daemon's socket, to see which images it holds (default: DOCKER_HOST's "
        "unix socket, else /var/run/docker.sock)",
    )
    sub.add_argument("--group", metavar="NAME", help="group that may use the sockets (0660)")
    sub.add_argument(
        "--freshness",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="reuse a verification this long (default %(default)s; 0: verify every decision); "
        "expired metadata is never used",
    )

    migrate = add("migrate", lambda ctx: EXIT_USAGE, "move repositories from Notary")
    migrate_commands = migrate.add_subparsers(dest="migrate_command", metavar="FROM", required=True)
    notary = migrate_commands.add_parser(
        "notary",
        parents=[common, signing],
        help="read a Notary / Docker Content Trust repository, verify it, republish it here",
        description="Every tag keeps its digest and size; targets/NAME delegations become "
        "signers with the same keys, paths and threshold. Running again changes only what "
        "differs.",
    )
    notary.set_defaults(handler=cmd_migrate_notary)
    notary.add_argument(
        "repository", nargs="?", metavar="REPO", help="the repository to move (or --all)"
    )
    notary.add_argument("--from", dest="source", required=True, metavar="URL",
                        help="the Notary server, e.g. https://notary.example.com")  # fmt: skip
    notary.add_argument("--from-ca", dest="source_ca", metavar="FILE",
                        help="CA certificates for the Notary server's TLS")  # fmt: skip
    notary.add_argument("--username", help="for the Notary server's token service "
                        "(password from TRUSTKIT_NOTARY_PASSWORD or a prompt)")  # fmt: skip
    notary.add_argument("--trust-dir", metavar="DIR",
                        help="Docker's trust directory, whose roots pin each repository "
                        "(default ~/.docker/trust)")  # fmt: skip
    notary.add_argument("--dry-run", action="store_true", help="show what would change")
    notary.add_argument("--all", action="store_true", help="every repository of --list")
    notary.add_argument("--list", metavar="FILE", help="repositories to migrate, one per line")
    notary.add_argument("--lenient", action="store_true",
                        help="skip a delegation that is expired or short of signatures, as "
                        "Notary's client does, instead of refusing the repository")  # fmt: skip

    sub = add(
        "export",
        cmd_export,
        "write a bundle of a repository's verified metadata, for hosts with no network",
        signs=False,
    )
    sub.add_argument("repository", help="the repository, e.g. registry.example.com/team/app")
    sub.add_argument("-o", "--output", required=True, metavar="FILE", help="the bundle (tar)")

    sub = add("verify-file", cmd_verify_file, "verify a file against its signed NAME", signs=False)
    sub.add_argument("repository", help="the repository, e.g. registry.example.com/team/app")
    sub.add_argument("name", help="the file's name in the repository, e.g. charts/app-1.0.tgz")
    sub.add_argument("file", help="the file to check against what was signed")

    sub = add(
        "inspect", cmd_inspect, "show signed tags and every role's version and expiry", signs=False
    )
    sub.add_argument("reference", metavar="REPO[:TAG]", help="a repository, or one tag of it")

    trust = add("trust", lambda ctx: EXIT_USAGE, "manage the roots this host trusts")
    trust_commands = trust.add_subparsers(dest="trust_command", metavar="ACTION", required=True)
    pin = trust_commands.add_parser("pin", parents=[common], help="trust this root for REPO")
    pin.set_defaults(handler=cmd_trust_pin)
    pin.add_argument("repository", help="the repository, e.g. registry.example.com/team/app")
    pin.add_argument(
        "root_file", metavar="ROOT_JSON", help="the repository's root.json, checked out of band"
    )
    forget = trust_commands.add_parser(
        "forget", parents=[common], help="forget the trusted root (next use trusts anew)"
    )
    forget.set_defaults(handler=cmd_trust_forget)
    forget.add_argument("repository", help="the repository, e.g. registry.example.com/team/app")

    key = add("key", lambda ctx: EXIT_USAGE, "list and rotate keys")
    key_commands = key.add_subparsers(dest="key_command", metavar="ACTION", required=True)
    listing = key_commands.add_parser(
        "list", parents=[common], help="the keys in this keystore (never anything secret)"
    )
    listing.set_defaults(handler=cmd_key_list)
    generate = key_commands.add_parser(
        "generate",
        parents=[common, signing],
        help="make a signer key for a person or pipeline; writes its public half to NAME.pub",
    )
    generate.set_defaults(handler=cmd_key_generate)
    generate.add_argument("name", metavar="NAME", help="the signer's name, e.g. releases")
    generate.add_argument(
        "--key-type",
        choices=["ed25519", "ecdsa"],
        default="ed25519",
        help="the new key's type (default %(default)s)",
    )
    generate.add_argument("--out", metavar="FILE", help="where to write the public key PEM")
    export = key_commands.add_parser(
        "export", parents=[common], help="print a key's public half as PEM (never the private)"
    )
    export.set_defaults(handler=cmd_key_export)
    export.add_argument("keyid", metavar="KEYID", help="the key id or its first 8+ characters")
    export.add_argument("--out", metavar="FILE", help="write the PEM to FILE")
    importing = key_commands.add_parser(
        "import",
        parents=[common, signing],
        help="keep a PEM private key made elsewhere, encrypted in this keystore, or use a "
        "key in a PKCS#11 token (--hsm)",
        description="PEM_FILE: a private key, re-encrypted here. --hsm KEY: an EC key "
        "(P-256/P-384) that stays in a PKCS#11 token (HSM, smart card, SoftHSM); only its "
        "public half and its hsm: URI are kept here. The token's module comes from "
        "PYKCS11LIB (e.g. /usr/lib/softhsm/libsofthsm2.so); its PIN, when signing, from "
        "the role's passphrase (TRUSTKIT_ROOT_PASSPHRASE or TRUSTKIT_TARGETS_PASSPHRASE, "
        "--passphrase-file, or a prompt).",
    )
    importing.set_defaults(handler=cmd_key_import)
    source = importing.add_mutually_exclusive_group(required=True)
    source.add_argument("file", metavar="PEM_FILE", nargs="?", help="a PEM private key file")
    source.add_argument(
        "--hsm",
        metavar="KEY",
        help="the key in the token: its id in hex (as pkcs11-tool --list-objects shows it, "
        "e.g. 01) or its label",
    )
    importing.add_argument(
        "--token", metavar="LABEL", help="the token's label, when several are present"
    )
    source.add_argument(
        "--from-docker-trust",
        nargs="?",
        const="~/.docker/trust",
        metavar="DIR",
        help="every Notary / Docker Content Trust key in DIR/private (default ~/.docker/trust), "
        "each opened with NOTARY_{ROOT,TARGETS,SNAPSHOT,DELEGATION}_PASSPHRASE or "
        "TRUSTKIT_IMPORT_PASSPHRASE; with --repository, only that repository's keys (and root)",
    )
    importing.add_argument("--repository", help="the repository the key is for")
    importing.add_argument("--role", choices=["root", "targets"], help="the role the key is for")
    passwd = key_commands.add_parser(
        "passwd",
        parents=[common, signing],
        help="change a key's passphrase (the new one from TRUSTKIT_NEW_PASSPHRASE or a prompt)",
    )
    passwd.set_defaults(handler=cmd_key_passwd)
    passwd.add_argument("keyid", metavar="KEYID", help="the key id or its first 8+ characters")
    removing = key_commands.add_parser(
        "remove", parents=[common], help="delete a key from this keystore"
    )
    removing.set_defaults(handler=cmd_key_remove)
    removing.add_argument("keyid", metavar="KEYID", help="the key id or its first 8+ characters")
    removing.add_argument("--yes", action="store_true", help="confirm")
    rotate = key_commands.add_parser(
        "rotate",
        parents=[common, signing],
        help="replace a role's key in a new root version (snapshot and timestamp keys are "
        "made by the server); existing tags stay valid",
    )
    rotate.set_defaults(handler=cmd_key_rotate)
    rotate.add_argument("repository", help="the repository, e.g. registry.example.com/team/app")
    rotate.add_argument(
        "role",
        choices=["root", "targets", "snapshot", "timestamp"],
        help="the role whose keys are replaced",
    )
    rotate.add_argument(
        "--key-type",
        choices=["ed25519", "ecdsa"],
        default="ed25519",
        help="the new key's type (default %(default)s)",
    )
    rotate.add_argument(
        "--use",
        metavar="KEYID",
        help="make this keystore key (e.g. one in an HSM) the new key instead of a new one",
    )
    rotate.add_argument(
        "--key",
        action="append",
        metavar="PUB_PEM",
        help="another holder's public key to list beside this keystore's (repeatable)",
    )
    rotate.add_argument(
        "--threshold", type=int, help="signatures needed from the new keys (default 1)"
    )
    rotate.add_argument(
        "--out",
        metavar="FILE",
        help="write the signed new root to FILE for offline co-holders instead of uploading",
    )
    holder = rotate.add_mutually_exclusive_group()
    holder.add_argument(
        "--local",
        dest="held_by",
        action="store_const",
        const="publisher",
        help="snapshot only: keep the new snapshot key in this keystore and sign snapshot "
        "with every publish (TRUSTKIT_SNAPSHOT_PASSPHRASE)",
    )
    holder.add_argument(
        "--server-managed",
        dest="held_by",
        action="store_const",
        const="server",
        help="snapshot only: hand snapshot signing (back) to the server, with a new key",
    )

    approve = add(
        "approve",
        cmd_approve,
        "show changes waiting for co-signers and sign them (multi-signature approval)",
    )
    approve.add_argument("repository", help="the repository, e.g. registry.example.com/team/app")
    approve.add_argument("--id", help="only this pending change")
    approve.add_argument("--yes", action="store_true", help="sign without asking")
    approve.add_argument("--reject", action="store_true", help="withdraw instead of signing")
    approve.add_argument(
        "--export", metavar="FILE", help="write the pending change to FILE (for offline holders)"
    )
    approve.add_argument(
        "--file", metavar="FILE", help="sign the change in FILE here, offline, and save it"
    )
    submit = add("submit", cmd_submit, "send a change from a file (approve --file) to the server")
    submit.add_argument("repository", help="the repository, e.g. registry.example.com/team/app")
    submit.add_argument("file", metavar="FILE", help="the change file approve --file signed")

    signer = add("signer", lambda ctx: EXIT_USAGE, "who may sign which tags (delegations)")
    signer_commands = signer.add_subparsers(dest="signer_command", metavar="ACTION", required=True)
    adding = signer_commands.add_parser(
        "add", parents=[common, signing], help="let NAME's keys sign tags matching --paths"
    )
    adding.set_defaults(handler=cmd_signer_add)
    adding.add_argument("name", metavar="NAME", help="the signer's name, e.g. releases")
    adding.add_argument("repository", help="the repository, e.g. registry.example.com/team/app")
    adding.add_argument(
        "--key", action="append", required=True, metavar="PUB_PEM", help="a public key file"
    )
    adding.add_argument(
        "--paths", action="append", metavar="PATTERN", help="tags it may sign (default '*')"
    )
    adding.add_argument("--threshold", type=int, default=1, help="signatures needed (1)")
    adding.add_argument(
        "--terminating", action="store_true", help="tags it may sign are looked up nowhere else"
    )
    dropping = signer_commands.add_parser(
        "remove",
        parents=[common, signing],
        help="take a signer out; its tags stop verifying",
    )
    dropping.set_defaults(handler=cmd_signer_remove)
    dropping.add_argument("name", metavar="NAME", help="the signer to take out")
    dropping.add_argument("repository", help="the repository, e.g. registry.example.com/team/app")
    listing_signers = signer_commands.add_parser(
        "list", parents=[common], help="signers, their paths, keys and tags"
    )
    listing_signers.set_defaults(handler=cmd_signer_list)
    listing_signers.add_argument(
        "repository", help="the repository, e.g. registry.example.com/team/app"
    )

    sub = add(
        "status", cmd_status, "every role's version, keys and expiry, with warnings", signs=False
    )
    sub.add_argument("repository", help="the repository, e.g. registry.example.com/team/app")
    sub.add_argument(
        "--warn-within",
        default="30d",
        metavar="DURATION",
        help="warn this long before root or targets expire (30d)",
    )
    sub.add_argument(
        "--warn-online",
        default="3d",
        metavar="DURATION",
        help="warn this long before snapshot or timestamp expire (3d; the server renews "
        "them at half their lifetime)",
    )
    sub.add_argument(
        "--check", action="store_true", help="exit 1 when a role expires within the window"
    )
    sub = add("refresh", cmd_refresh, "re-sign root and targets when they expire soon")
    sub.add_argument("repository", help="the repository, e.g. registry.example.com/team/app")
    sub.add_argument(
        "--within", default="30d", metavar="DURATION", help="re-sign what expires within (30d)"
    )

    sub = add("delete", cmd_delete, "delete a repository's trust data from the server", signs=False)
    sub.add_argument("repository", help="the repository, e.g. registry.example.com/team/app")
    sub.add_argument("--yes", action="store_true", help="confirm")
    passthrough = (
        "trustkit's own options go right after the command, before Docker's; everything "
        "after them is handed to the tool untouched, with the image pinned to its digest."
    )
    sub = add(
        "pull",
        cmd_pull,
        "verify IMAGE[:TAG], pull it by digest and tag it locally",
        [registry, gate],
        "usage: trustkit pull [--via docker|podman|skopeo] [--dest DEST] [docker pull "
        "options] IMAGE[:TAG]\n\n" + passthrough,
        signs=False,
    )
    sub.add_argument(
        "--dest",
        metavar="TRANSPORT:REF",
        help="with --via skopeo: where to copy the image "
        "(default containers-storage:IMAGE:TAG; e.g. oci:DIR:TAG)",
    )
    for name in ("run", "create"):
        add(
            name,
            cmd_run,
            f"verify the image, then docker {name} it pinned to its signed digest",
            [registry, runs],
            f"usage: trustkit {name} [--via docker|podman] [docker {name} options] IMAGE[:TAG] "
            "[COMMAND…]\n\n" + passthrough,
            signs=False,
        )
    add(
        "docker",
        cmd_docker,
        "docker with pull, run, create and build gated (alias docker='trustkit docker')",
        [registry, runs],
        "usage: trustkit docker [--via docker|podman] DOCKER-ARGS…\n\nBase images in FROM "
        "lines, --build-context images and a buildx builder's BuildKit image are pinned; "
        "commands that start no image pass through; commands that pull images trustkit "
        "cannot verify (compose up, bake, service create, …) and unknown commands are "
        "refused.",
        signs=False,
    )
    return parser


def _split_passthrough(
    parser: argparse.ArgumentParser, argv: Sequence[str]
) -> tuple[list[str], list[str] | None]:
    """Split ``trustkit [options] run [trustkit options] DOCKER-ARGS…`` in two.

    argparse would read Docker's options as its own; so the arguments of a passthrough
    command, after any trustkit options right behind the command, are kept aside.
    """
    index = 0
    while index < len(argv) and argv[index].startswith("-"):
        action = parser._option_string_actions.get(argv[index].split("=", 1)[0])
        takes_value = action is not None and action.nargs != 0 and "=" not in argv[index]
        index += 2 if takes_value else 1
    if index >= len(argv) or argv[index] not in PASSTHROUGH_COMMANDS:
        return list(argv), None
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    command = argv[index]
    own = subparsers.choices[command]._option_string_actions
    end = index + 1
    while end < len(argv):
        name = argv[end].split("=", 1)[0]
        ours = name in own and name.startswith("--")
        if not ours or (command == "docker" and name == "--help"):
            break  # the rest is Docker's (its -h is --host or --hostname)
        end += 2 if own[name].nargs != 0 and "=" not in argv[end] else 1
    return list(argv[:end]), list(argv[end:])


def main(argv: Sequence[str] | None = None, env: dict[str, str] | None = None) -> int:
    parser = _parser()
    own, docker_args = _split_passthrough(parser, sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(own)
    for name, default in COMMON_DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, default)
    if docker_args is not None:
        args.docker_args = docker_args
    out = Output(as_json=bool(args.json))
    ctx = Context(args, dict(os.environ) if env is None else env, out)
    try:
        code: int = args.handler(ctx)
        return code
    except TrustkitError as error:
        if out.as_json:
            print(json.dumps({"error": error.code, "message": error.message, "hint": error.hint}))
        print(f"trustkit: {error.diagnostics()}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("trustkit: interrupted; nothing was changed", file=sys.stderr)
        return 130


def run() -> None:
    sys.exit(main())
