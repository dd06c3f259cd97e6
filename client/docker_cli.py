"""The Docker (and Podman) command-line grammar, as far as the gate must understand it.

To gate ``docker run`` the gate must find the one argument that is the image, and it
must never guess: if ``--some-flag evil:latest`` were misread, an unverified image could
slip through. So every option of ``run``/``create``/``pull``/``build`` is known as
taking a value or not (:mod:`client.docker_options`); an option that is not known is
refused (``--flag=value`` is always unambiguous and accepted). Which docker commands
are gated, passed through or refused is :mod:`client.docker_commands`
(``parse_docker_command``, importable from here too). Nothing here runs anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from client.docker_commands import DockerCommand, parse_docker_command
from client.docker_options import (
    BUILD,
    BUILDER_CREATE,
    FALSE_VALUES,
    PODMAN_RUN,
    PULL,
    RUN,
    Option,
    read_option,
)
from trustkit.errors import UsageError

__all__ = [
    "BUILDKIT_DRIVERS",
    "FALSE_VALUES",
    "BuildArgs",
    "BuilderCreate",
    "DockerCommand",
    "find_image",
    "parse_build",
    "parse_builder_create",
    "parse_docker_command",
    "parse_pull",
    "pull_options",
]


def find_image(args: Sequence[str], *, podman: bool = False, what: str = "docker run") -> int:
    """Index of the image among ``docker run|create`` arguments (options come first)."""
    grammar = PODMAN_RUN if podman else RUN
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            index += 1
            break
        if not arg.startswith("-") or arg == "-":
            return index
        index = read_option(args, index, grammar, what).end
    if index < len(args):
        return index
    raise UsageError(f"'{what}' names no image", hint=f"e.g. trustkit {what.split()[-1]} IMAGE:TAG")


def parse_pull(args: Sequence[str]) -> tuple[list[str], str]:
    """Split ``docker pull`` arguments into (options, image)."""
    options: list[str] = []
    image: str | None = None
    index = 0
    options_end = False
    while index < len(args):
        arg = args[index]
        if arg == "--" and not options_end:
            options_end = True  # the rest are not options (the image may follow)
            index += 1
            continue
        if arg.startswith("-") and arg != "-" and not options_end:
            option = read_option(args, index, PULL, "docker pull")
            # -a in any cluster (-qa, -aq), and --all-tags=VALUE unless VALUE is false.
            all_tags = {"a", "all-tags"} & set(option.names)
            if all_tags and option.value not in FALSE_VALUES:
                raise UsageError(
                    "pulling all tags cannot be verified tag by tag",
                    hint="pull the tags you run one by one: trustkit pull IMAGE:TAG",
                )
            options.extend(args[index : option.end])
            index = option.end
            continue
        if image is not None:
            raise UsageError(f"'docker pull' takes one image, not '{image}' and '{arg}'")
        image = arg
        index += 1
    if image is None:
        raise UsageError("'docker pull' names no image", hint="e.g. trustkit pull IMAGE:TAG")
    return options, image


def pull_options(options: Sequence[str]) -> list[tuple[str, str | None]]:
    """Each option of ``docker pull`` options (as ``parse_pull`` returns them) with its
    value: (name without dashes, value or None); every letter of a cluster counts."""
    found: list[tuple[str, str | None]] = []
    index = 0
    while index < len(options):
        option = read_option(options, index, PULL, "docker pull")
        found.extend((name, None) for name in option.names[:-1])
        found.append((option.name, option.value))
        index = option.end
    return found


@dataclass(frozen=True)
class BuildArgs:
    """What the gate needs of ``docker build``: the Dockerfile, the context, build args,
    and the images named in options (``--build-context NAME=docker-image://IMAGE``)."""

    dockerfile: str | None  # the last -f/--file given, the one the builder would read
    other_args: tuple[str, ...]  # every argument but the -f/--file options, in order
    context: str
    build_args: tuple[str, ...]
    # (index in other_args, NAME, IMAGE) of each --build-context NAME=docker-image://IMAGE,
    # written there as one --build-context=NAME=docker-image://IMAGE argument.
    image_contexts: tuple[tuple[int, str, str], ...] = ()
    named_contexts: tuple[str, ...] = ()  # the NAME of every --build-context

    def with_context_images(self, pinned: Sequence[str]) -> tuple[str, ...]:
        """``other_args`` with each context image replaced by its pinned reference."""
        args = list(self.other_args)
        for (index, name, _), image in zip(self.image_contexts, pinned, strict=True):
            args[index] = f"--build-context={name}={DOCKER_IMAGE_SCHEME}{image}"
        return tuple(args)


DOCKER_IMAGE_SCHEME = "docker-image://"


def parse_build(args: Sequence[str]) -> BuildArgs:
    """Read ``docker build`` arguments.

    Every ``-f``/``--file`` is left out of ``other_args`` (the gate passes its own
    rewritten Dockerfile instead); an earlier one left in would win over the gate's.
    The other letters of a cluster such as ``-qf FILE`` are kept as ``-q``. Options
    that bring in images the gate cannot pin (a registry build cache, an SBOM scanner,
    a frontend named in a build argument) are refused.
    """
    dockerfile: str | None = None
    other_args: list[str] = []
    context: str | None = None
    build_args: list[str] = []
    image_contexts: list[tuple[int, str, str]] = []
    named_contexts: list[str] = []
    index = 0
    options_end = False
    while index < len(args):
        arg = args[index]
        if arg == "--" and not options_end:
            options_end = True
            other_args.append(arg)
            index += 1
            continue
        if arg.startswith("-") and arg != "-" and not options_end:
            option = read_option(args, index, BUILD, "docker build")
            if option.name in ("f", "file"):
                dockerfile = option.value
                if len(option.names) > 1:  # -qf FILE: keep -q
                    other_args.append("-" + "".join(option.names[:-1]))
            elif option.name == "build-context" and option.value is not None:
                name, _, source = option.value.partition("=")
                named_contexts.append(name)
                if source.startswith(DOCKER_IMAGE_SCHEME):
                    image = source.removeprefix(DOCKER_IMAGE_SCHEME)
                    image_contexts.append((len(other_args), name, image))
                    other_args.append(f"--build-context={option.value}")
                else:
                    other_args.extend(args[index : option.end])
            else:
                _refuse_unpinnable_build_option(option)
                if option.name == "build-arg" and option.value is not None:
                    build_args.append(option.value)
                other_args.extend(args[index : option.end])
            index = option.end
            continue
        if context is not None:
            raise UsageError(f"'docker build' takes one context, not '{context}' and '{arg}'")
        context = arg
        other_args.append(arg)
        index += 1
    if context is None:
        raise UsageError("'docker build' names no build context", hint="e.g. docker build .")
    return BuildArgs(
        dockerfile,
        tuple(other_args),
        context,
        tuple(build_args),
        tuple(image_contexts),
        tuple(named_contexts),
    )


def _refuse_unpinnable_build_option(option: Option) -> None:
    """Refuse the build options that make the builder pull an image by a name the gate
    cannot pin: cache layers from a registry stand in for build steps, an SBOM scanner
    runs inside the build, and BUILDKIT_SYNTAX swaps the Dockerfile frontend."""
    value = option.value or ""
    fields = value.split(",")
    if option.name == "cache-from" and "type=local" not in fields:
        raise UsageError(
            f"--cache-from {value} imports build cache from a registry, which trustkit "
            "cannot verify: its layers could stand in for any step of the build",
            hint="build without --cache-from, or use a local cache (type=local,src=DIR)",
        )
    sbom = option.name == "sbom" and value not in FALSE_VALUES
    if sbom or (option.name == "attest" and "type=sbom" in fields):
        raise UsageError(
            "an SBOM attestation runs a scanner image trustkit cannot verify",
            hint="build without --sbom / --attest type=sbom, and scan the pinned image after",
        )
    if option.name == "build-arg" and value.partition("=")[0] == "BUILDKIT_SYNTAX":
        raise UsageError(
            "--build-arg BUILDKIT_SYNTAX names a Dockerfile frontend image trustkit does not "
            "pin there",
            hint="name the frontend in the Dockerfile's '# syntax=IMAGE' line, which the "
            "gate verifies and pins",
        )


BUILDKIT_DRIVERS = ("docker-container", "kubernetes")  # drivers that start an image


@dataclass(frozen=True)
class BuilderCreate:
    """``docker buildx create``: the driver and the BuildKit image it would start."""

    args: tuple[str, ...]  # the arguments, each --driver-opt as one --driver-opt=VALUE
    driver: str
    leave: bool
    image: str | None  # from --driver-opt image=IMAGE
    image_at: tuple[int, tuple[str, ...], int] | None  # (arg index, fields, field index)

    def with_image(self, pinned: str) -> list[str]:
        """The arguments with the BuildKit image replaced by ``pinned``."""
        args = list(self.args)
        if self.image_at is not None:
            index, fields, field = self.image_at
            written = list(fields)
            written[field] = f"image={pinned}"
            args[index] = "--driver-opt=" + ",".join(written)
        return args


def parse_builder_create(args: Sequence[str]) -> BuilderCreate:
    """Read ``docker buildx create`` arguments: which driver, and which image."""
    out: list[str] = []
    driver = "docker-container"  # what buildx creates when no --driver is given
    leave = False
    image: str | None = None
    image_at: tuple[int, tuple[str, ...], int] | None = None
    endpoint: str | None = None
    index = 0
    while index < len(args):
        arg = args[index]
        if not arg.startswith("-") or arg == "-":
            if endpoint is not None:
                raise UsageError(f"'docker buildx create' takes one endpoint, not two ({arg})")
            endpoint = arg
            out.append(arg)
            index += 1
            continue
        option = read_option(args, index, BUILDER_CREATE, "docker buildx create")
        if option.name == "driver" and option.value is not None:
            driver = option.value
        leave = leave or (option.name == "leave" and option.value not in FALSE_VALUES)
        if option.name == "driver-opt" and option.value is not None:
            if '"' in option.value:
                raise UsageError(
                    f"--driver-opt {option.value} is quoted; trustkit reads driver options "
                    "only as plain KEY=VALUE,KEY=VALUE",
                )
            fields = tuple(option.value.split(","))
            for number, field in enumerate(fields):
                if field.partition("=")[0] == "image":
                    if image is not None:
                        raise UsageError("--driver-opt names the BuildKit image twice")
                    image = field.partition("=")[2]
                    image_at = (len(out), fields, number)
            out.append(f"--driver-opt={option.value}")
        else:
            out.extend(args[index : option.end])
        index = option.end
    return BuilderCreate(tuple(out), driver, leave, image, image_at)
