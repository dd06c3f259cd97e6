"""The argument vectors the gate hands Docker, Podman or skopeo, and running them.

Each ``*_command(s)`` function takes ``pin``: the host's decision on one image
reference (``trustkit.agent_wire.AgentDecision``, whether the host agent made it or the
command did through ``client.gate.Gate``), and builds the exact argument vectors with
each image replaced by its pinned form and every other argument untouched. When a
decision is a refusal, ``pin`` raises and no command is built, so the tool is never
invoked. Nothing here imports python-tuf, cryptography or httpx: with an agent
answering, ``trustkit pull``/``run``/``create`` cost no more than asking it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from client.docker_cli import FALSE_VALUES, find_image, parse_pull, pull_options
from trustkit.agent_wire import AgentDecision
from trustkit.errors import UsageError
from trustkit.names import DEFAULT_TAG, may_name_an_image_id, parse_reference

__all__ = [
    "TOOLS",
    "Pin",
    "Tool",
    "execute",
    "pull_commands",
    "refuse_image_ids",
    "run_command",
]

TOOLS = ("docker", "podman", "skopeo")

# An image reference as typed -> the host's decision on it (raises to refuse)
Pin = Callable[[str], AgentDecision]


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


def pull_commands(
    pin: Pin,
    tool: Tool,
    args: Sequence[str],
    *,
    head: Sequence[str] = ("pull",),
    dest: str | None = None,
) -> tuple[AgentDecision, list[list[str]]]:
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
    pinned = pin(image)
    host = pinned.gun.split("/", 1)[0]
    if tool.kind == "skopeo":
        target = dest or f"containers-storage:{pinned.gun}:{pinned.tag}"
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
    pin: Pin, tool: Tool, args: Sequence[str], *, head: Sequence[str]
) -> tuple[AgentDecision, list[str]]:
    """``run|create [options] IMAGE [command…]`` with the image pinned."""
    if tool.kind == "skopeo":
        raise UsageError(
            "skopeo cannot run containers", hint="use --via docker or --via podman, or pull"
        )
    index = find_image(args, podman=tool.kind == "podman", what=" ".join(head))
    refuse_image_ids(args[index])
    pinned = pin(args[index])
    options = _with_image_mounts_pinned(pin, list(args[:index]))
    return pinned, [tool.binary, *head, *options, pinned.image, *args[index + 1 :]]


def refuse_image_ids(image: str) -> None:
    """A container's image named by something Docker may take for an image ID runs
    whatever local image has that ID: never verified, so refused."""
    if may_name_an_image_id(image):
        raise UsageError(
            f"'{image}' may name a local image by its ID, which trustkit cannot verify",
            hint="run images by their signed name: NAME:TAG or NAME@sha256:…",
        )


def _with_image_mounts_pinned(pin: Pin, options: list[str]) -> list[str]:
    """``--mount type=image,source=IMAGE`` (Docker 28) runs an image's files in the
    container too: each such image is decided as the container's own and pinned."""
    # Every word after a "--mount" is read as a mount, even one that another option
    # may take as its value (--label --mount --mount type=image,…): pinning a word that
    # is no image mount changes nothing, and none is skipped.
    pinned = list(options)
    for index, option in enumerate(options):
        if option == "--mount" and index + 1 < len(options):
            pinned[index + 1] = _pinned_mount(pin, options[index + 1])
        elif option.startswith("--mount="):
            pinned[index] = "--mount=" + _pinned_mount(pin, option.split("=", 1)[1])
    return pinned


def _pinned_mount(pin: Pin, value: str) -> str:
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
    decision = pin(parsed[sources[0]][1].strip())
    parsed[sources[0]] = [parsed[sources[0]][0], decision.image]
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(["=".join(item) for item in parsed])
    return out.getvalue()


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
