"""The Docker gate: verify an image before Docker (Podman, skopeo) ever sees it.

``Gate.pin`` turns what a user typed (``app:1.4``) into the digest-pinned reference
(``registry.example.com/app@sha256:…``) through ``client.decision.verify_reference``,
the one decision every command makes. The ``*_command(s)`` functions build the exact
argument vectors handed to the tool, with each image replaced and every other argument
untouched; ``execute`` runs them. When a decision is a refusal, no command is built, so
the tool is never invoked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from client.decision import AnchorCheck, Decision, RepositorySource, verify_reference
from client.docker_cli import (
    BUILDKIT_DRIVERS,
    FALSE_VALUES,
    BuildArgs,
    find_image,
    parse_build,
    parse_builder_create,
    parse_pull,
    pull_options,
)
from client.dockerfile import pin_base_images
from client.policy import HostPolicy
from client.trust_servers import TrustServer
from client.verify import TrustedRepository
from trustkit.errors import UsageError
from trustkit.names import DEFAULT_TAG, may_name_an_image_id, parse_reference

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

TOOLS = ("docker", "podman", "skopeo")


@dataclass(frozen=True)
class Tool:
    """The program the gate hands images to, and how registries are reached by it."""

    kind: str  # docker, podman or skopeo
    binary: str
    plain_http: Callable[[str], bool] = lambda host: False

    @classmethod
    def choose(
        cls, via: str | None, env: Mapping[str, str], plain_http: Callable[[str], bool]
    ) -> Tool:
        kind = via or "docker"
        if kind not in TOOLS:
            raise UsageError(f"--via {kind} is not one of {', '.join(TOOLS)}")
        binary = env.get("TRUSTKIT_DOCKER") if kind == "docker" else None
        return cls(kind, binary or kind, plain_http)


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


def pull_commands(
    gate: Gate,
    tool: Tool,
    args: Sequence[str],
    *,
    head: Sequence[str] = ("pull",),
    dest: str | None = None,
) -> tuple[Decision, list[list[str]]]:
    """``pull [options] IMAGE``: pull by digest, then tag it locally as asked."""
    options, image = parse_pull(args)
    # Usage errors first: they need no server and must not wait for one.
    if tool.kind != "skopeo" and dest is not None:
        raise UsageError("--dest is for --via skopeo; docker and podman pull into their store")
    digest_only = parse_reference(image, default_tag=DEFAULT_TAG).tag is None
    if tool.kind == "skopeo" and dest is None and digest_only:
        raise UsageError("pulling a digest with skopeo needs --dest, e.g. oci:DIR:TAG")
    if tool.kind == "skopeo":
        overrides, copy_options = _skopeo_options(options)
    pinned = gate.pin(image)
    host = pinned.reference.gun.split("/", 1)[0]
    if tool.kind == "skopeo":
        target = dest or f"containers-storage:{pinned.reference.gun}:{pinned.reference.tag}"
        tls = ["--src-tls-verify=false"] if tool.plain_http(host) else []
        source = f"docker://{pinned.image}"
        return pinned, [[tool.binary, *overrides, "copy", *tls, *copy_options, source, target]]
    tls = ["--tls-verify=false"] if tool.kind == "podman" and tool.plain_http(host) else []
    commands = [[tool.binary, *head, *tls, *options, pinned.image]]
    if pinned.local_tag is not None:
        # The same global options and the same form: "pull" → "tag", "image pull" → "image tag".
        commands.append([tool.binary, *head[:-1], "tag", pinned.image, pinned.local_tag])
    return pinned, commands


def _skopeo_options(options: Sequence[str]) -> tuple[list[str], list[str]]:
    """docker pull options as skopeo takes them: (global options, copy options)."""
    overrides: list[str] = []
    copy_options: list[str] = []
    for name, value in pull_options(options):
        if name == "platform" and value is not None:
            parts = value.split("/")
            if len(parts) not in (2, 3) or not all(parts):
                raise UsageError(
                    f"--platform {value} is not OS/ARCH or OS/ARCH/VARIANT, e.g. linux/arm64"
                )
            for option, part in zip(("os", "arch", "variant"), parts, strict=False):
                overrides += [f"--override-{option}", part]
        elif name in ("q", "quiet"):
            if value is None or value not in FALSE_VALUES:
                copy_options.append("--quiet")
        else:
            shown = f"-{name}" if len(name) == 1 else f"--{name}"
            raise UsageError(
                f"the docker pull option {shown} has no skopeo counterpart, so trustkit "
                "cannot hand it to skopeo; leave it out, or use --via docker or --via podman"
            )
    return overrides, copy_options


def run_command(
    gate: Gate, tool: Tool, args: Sequence[str], *, head: Sequence[str]
) -> tuple[Decision, list[str]]:
    """``run|create [options] IMAGE [command…]`` with the image pinned."""
    if tool.kind == "skopeo":
        raise UsageError(
            "skopeo cannot run containers", hint="use --via docker or --via podman, or pull"
        )
    index = find_image(args, podman=tool.kind == "podman", what=" ".join(head))
    refuse_image_ids(args[index])
    pinned = gate.pin(args[index])
    options = _with_image_mounts_pinned(gate, list(args[:index]))
    return pinned, [tool.binary, *head, *options, pinned.image, *args[index + 1 :]]


def refuse_image_ids(image: str) -> None:
    """A container's image named by something Docker may take for an image ID runs
    whatever local image has that ID: never verified, so refused."""
    if may_name_an_image_id(image):
        raise UsageError(
            f"'{image}' may name a local image by its ID, which trustkit cannot verify",
            hint="run images by their signed name: NAME:TAG or NAME@sha256:…",
        )


def _with_image_mounts_pinned(gate: Gate, options: list[str]) -> list[str]:
    """``--mount type=image,source=IMAGE`` (Docker 28) runs an image's files in the
    container too: each such image is decided as the container's own and pinned."""
    # Every word after a "--mount" is read as a mount, even one that another option
    # may take as its value (--label --mount --mount type=image,…): pinning a word that
    # is no image mount changes nothing, and none is skipped.
    pinned = list(options)
    for index, option in enumerate(options):
        if option == "--mount" and index + 1 < len(options):
            pinned[index + 1] = _pinned_mount(gate, options[index + 1])
        elif option.startswith("--mount="):
            pinned[index] = "--mount=" + _pinned_mount(gate, option.split("=", 1)[1])
    return pinned


def _pinned_mount(gate: Gate, value: str) -> str:
    import csv
    import io

    [fields] = list(csv.reader(io.StringIO(value))) or [[]]
    if not value.isascii():
        # Go lowercases some letters to ASCII that Python does not (İ is i): refused.
        raise UsageError(f"the mount '{value}' has characters other than ASCII; write it plainly")
    parsed = [field.split("=", 1) for field in fields]
    # Docker reads the keys without regard to case, and the last "type" wins.
    kinds = [item[1].strip().lower() for item in parsed if item[0].strip().lower() == "type"]
    if not kinds or kinds[-1] != "image":
        return value
    sources = [i for i, item in enumerate(parsed) if item[0].strip().lower() in ("source", "src")]
    if len(sources) != 1 or len(parsed[sources[0]]) != 2:
        raise UsageError(
            f"the image mount '{value}' names no single image to verify",
            hint="give it one source=IMAGE",
        )
    decision = gate.pin(parsed[sources[0]][1].strip())
    parsed[sources[0]] = [parsed[sources[0]][0], decision.image]
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(["=".join(item) for item in parsed])
    return out.getvalue()


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


# --- running ---------------------------------------------------------------------------


def _missing_tool_hint(binary: str) -> str:
    name = Path(binary).name
    if name == "docker" or binary != name:
        return "install Docker, or set TRUSTKIT_DOCKER to the docker binary"
    return f"install {name}, or choose another tool with --via docker|podman|skopeo"


def execute(commands: Sequence[Sequence[str]], *, replace_process: bool) -> int:
    """Run each command in turn, stopping at the first failure; the last may ``exec``."""
    for number, command in enumerate(commands, 1):
        last = number == len(commands)
        try:
            if last and replace_process:
                sys.stdout.flush()  # what is still buffered would be lost by exec
                sys.stderr.flush()
                os.execvp(command[0], list(command))
            completed = subprocess.run(list(command), check=False)
        except FileNotFoundError:
            raise UsageError(
                f"{command[0]} is not installed or not on PATH", hint=_missing_tool_hint(command[0])
            ) from None
        except OSError as error:
            raise UsageError(f"cannot run {command[0]}: {error.strerror}") from None
        if completed.returncode != 0 or last:
            return completed.returncode
    return 0
