"""The Docker gate: verify an image before Docker (Podman, skopeo) ever sees it.

``Gate.pin`` turns what a user typed (``app:1.4``) into the digest-pinned reference
(``registry.example.com/app@sha256:…``) through ``client.decision.verify_reference``,
the one decision every command makes. The argument vectors of pull, run and create, and
``execute``, are in ``client.docker_argv`` (importable from here too), which needs no
verifier: a host agent's decisions serve them as well. Here are the builds, whose base
images are decided through the gate. When a decision is a refusal, no command is built,
so the tool is never invoked.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from client.decision import (
    AnchorCheck,
    Decision,
    RepositorySource,
    refuse_other_server,
    verify_reference,
)
from client.docker_argv import TOOLS, Tool, execute, pull_commands, run_command
from client.docker_cli import (
    BUILDKIT_DRIVERS,
    BuildArgs,
    parse_build,
    parse_builder_create,
)
from client.dockerfile import pin_base_images
from client.policy import HostPolicy
from client.servers import ServerVerifiers
from client.trust_servers import TrustServer
from client.verify import TrustedRepository, Verifier
from trustkit.errors import UsageError
from trustkit.names import parse_gun

__all__ = [
    "TOOLS",
    "Gate",
    "Tool",
    "build_command",
    "builder_create_command",
    "execute",
    "pull_commands",
    "run_command",
]


@dataclass
class Gate:
    """Decides on the images of one command, as the host policy asks, through
    ``verify_reference``; each repository is verified once per command."""

    verify: RepositorySource
    policy: HostPolicy
    # Whether this host already trusts a root for the repository: then it is known to
    # be signed, and an unreachable or missing server must not switch verification off.
    has_anchor: AnchorCheck = lambda gun, server: False
    # The --server and --mirror the user typed, if any: refused for a repository the
    # policy routes elsewhere.
    given_server: str | None = None
    given_mirror: str | None = None
    # The verifier of each trust server, for the host commands that manage a
    # repository's trust store (trust pin, trust forget); None: the gate only decides.
    servers: ServerVerifiers | None = None
    _verified: dict[tuple[str, str, str | None], TrustedRepository] = field(default_factory=dict)

    def pin(self, text: str) -> Decision:
        """The decision on ``text``: pinned to its signed digest, or refused."""
        return verify_reference(
            text,
            self.policy,
            self._repository,
            self.has_anchor,
            given_server=self.given_server,
            given_mirror=self.given_mirror,
        )

    def verifier_for(self, gun: str) -> Verifier:
        """The verifier (and so the trust store) of the server the policy routes
        ``gun`` to, the command's when none; a --server or --mirror typed for a routed
        repository that is not its route's is refused, as a decision would."""
        assert self.servers is not None, "a gate built without its servers"
        canonical = parse_gun(gun)
        server = self.policy.server_for(canonical)
        if server is not None:
            refuse_other_server(
                canonical, server, self.policy, self.given_server, self.given_mirror
            )
        return self.servers.for_server(server)

    def _repository(
        self, gun: str, tags: list[str] | None, server: TrustServer | None
    ) -> TrustedRepository:
        """``gun`` verified against ``server``, with the hash bins of ``tags`` (every
        bin when None: a reference by digest alone is looked up in all tags)."""
        key = ("" if server is None else server.url, gun, None if tags is None else ",".join(tags))
        if key not in self._verified:
            self._verified[key] = self.verify(gun, tags, server)
        return self._verified[key]


# --- argument vectors ------------------------------------------------------------------


@dataclass(frozen=True)
class PreparedBuild:
    command: list[str]
    pinned: list[Decision]
    workdir: Path  # holds the rewritten Dockerfile; remove after the build


def build_command(
    gate: Gate, tool: Tool, args: Sequence[str], *, head: Sequence[str], env: Mapping[str, str]
) -> PreparedBuild:
    """``build [options] CONTEXT`` with every base image in the Dockerfile pinned."""
    build = parse_build(args)
    source = _dockerfile_path(build)
    try:
        data = source.read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read the Dockerfile {source}: {error.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UsageError(
            f"the Dockerfile {source} is not UTF-8 text (byte {error.start} is not); "
            "save it as UTF-8"
        ) from None
    build_args = {}
    for item in build.build_args:
        name, has_value, value = item.partition("=")
        if has_value:
            build_args[name] = value
        elif name in env:
            build_args[name] = env[name]
    pinned: list[Decision] = []

    def pin(image: str) -> str:
        pinned.append(gate.pin(image))
        return pinned[-1].image

    contexts = frozenset(name.lower() for name in build.named_contexts)
    rewritten, _ = pin_base_images(text, build_args, pin, contexts)
    other_args = build.with_context_images([pin(image) for _, _, image in build.image_contexts])
    workdir = Path(tempfile.mkdtemp(prefix="trustkit-build-"))
    try:
        written = workdir / source.name
        # Bytes in, bytes out: the builder gets the file as written but the image words.
        written.write_bytes(rewritten.encode("utf-8"))
        ignore = source.with_name(source.name + ".dockerignore")
        if ignore.exists():
            shutil.copyfile(ignore, workdir / ignore.name)
    except BaseException as error:
        shutil.rmtree(workdir, ignore_errors=True)
        if isinstance(error, OSError):
            raise UsageError(
                f"cannot write the checked Dockerfile to {workdir}: {error.strerror}"
            ) from None
        raise
    command = [tool.binary, *head, "--file", str(written), *other_args]
    return PreparedBuild(command, pinned, workdir)


def builder_create_command(
    gate: Gate, tool: Tool, args: Sequence[str], *, head: Sequence[str]
) -> tuple[list[Decision], list[str]]:
    """``buildx create``: the BuildKit image the builder starts, verified and pinned.

    A builder that starts no image (``--driver remote``, ``--leave``) needs no decision;
    one that would start buildx's default image must name it, so it can be verified."""
    create = parse_builder_create(args)
    if create.leave or create.driver == "remote":
        return [], [tool.binary, *head, *create.args]
    if create.driver not in BUILDKIT_DRIVERS:
        raise UsageError(
            f"trustkit does not know the buildx driver '{create.driver}', so it cannot tell "
            "which image it starts",
            hint=f"use --driver {', '.join(BUILDKIT_DRIVERS)} or remote",
        )
    if create.image is None:
        raise UsageError(
            f"a {create.driver} builder starts a BuildKit image, and none is named, so "
            "buildx would start its default one unverified",
            hint="name a signed BuildKit image: --driver-opt image=moby/buildkit:TAG",
        )
    decision = gate.pin(create.image)
    return [decision], [tool.binary, *head, *create.with_image(decision.image)]


def _dockerfile_path(build: BuildArgs) -> Path:
    if build.dockerfile == "-":
        raise UsageError(
            "a Dockerfile from standard input cannot be checked",
            hint="write it to a file and give it with -f FILE",
        )
    remote = build.context == "-" or "://" in build.context or build.context.startswith("git@")
    if remote and build.dockerfile is None:
        raise UsageError(
            f"the build context {build.context} is not a local directory, so its "
            "Dockerfile cannot be checked",
            hint="check out the context locally, or give the Dockerfile with -f FILE",
        )
    if build.dockerfile is not None:
        return Path(build.dockerfile)
    return Path(build.context) / "Dockerfile"
