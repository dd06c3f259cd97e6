"""The Docker (and Podman) command-line grammar, as far as the gate must understand it.

To gate ``docker run`` the gate must find the one argument that is the image, and it
must never guess: if ``--some-flag evil:latest`` were misread, an unverified image could
slip through. So every option of ``run``/``create``/``pull``/``build`` is known here as
taking a value or not; an option that is not known is refused (``--flag=value`` is
always unambiguous and accepted). Likewise every docker command (Docker 28/29 and its
common plugins) is classified as gated, passed through (it starts and pulls no image)
or refused (it pulls or starts images trustkit cannot verify); a command that is not
known is refused. Nothing here runs anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

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

# docker run / docker create (Docker 20 to 28), long options taking a value.
_RUN_VALUE_OPTIONS = frozenset(
    """
    add-host annotation attach blkio-weight blkio-weight-device cap-add cap-drop
    cgroup-parent cgroupns cidfile cpu-count cpu-percent cpu-period cpu-quota
    cpu-rt-period cpu-rt-runtime cpu-shares cpus cpuset-cpus cpuset-mems credentialspec
    detach-keys device device-cgroup-rule device-read-bps device-read-iops
    device-write-bps device-write-iops dns dns-opt dns-option dns-search domainname
    entrypoint env env-file expose gpus group-add health-cmd health-interval
    health-retries health-start-interval health-start-period health-timeout hostname
    io-maxbandwidth io-maxiops ip ip6 ipc isolation kernel-memory label label-file link
    link-local-ip log-driver log-opt mac-address memory memory-reservation memory-swap
    memory-swappiness mount name net net-alias network network-alias oom-score-adj pid
    pids-limit platform publish pull restart runtime security-opt shm-size stop-signal
    stop-timeout storage-opt sysctl tmpfs ulimit user userns uts volume volume-driver
    volumes-from workdir
    """.split()
)
_RUN_FLAG_OPTIONS = frozenset(
    """
    detach disable-content-trust help init interactive no-healthcheck oom-kill-disable
    privileged publish-all quiet read-only rm sig-proxy tty use-api-socket
    """.split()
)
_RUN_SHORT_VALUE = frozenset("acehlmpuvw")
_RUN_SHORT_FLAG = frozenset("diPqt")

# What podman run / create add to Docker's options.
_PODMAN_VALUE_OPTIONS = frozenset(
    """
    arch authfile cert-dir cgroup-conf cgroups chrootdirs conmon-pidfile creds
    decryption-key env-merge gidmap group-entry health-on-failure health-startup-cmd
    health-startup-interval health-startup-retries health-startup-success
    health-startup-timeout hostuser image-volume init-ctr init-path log-level os
    passwd-entry personality pidfile pod pod-id-file preserve-fd preserve-fds rdt-class
    requires retry retry-delay sdnotify seccomp-policy secret shm-size-systemd subgidname
    subuidname systemd timeout tz uidmap umask unsetenv variant
    """.split()
)
_PODMAN_FLAG_OPTIONS = frozenset(
    """
    env-host http-proxy no-hosts passwd read-only-tmpfs replace rmi rootfs tls-verify
    unsetenv-all
    """.split()
)

_PULL_VALUE_OPTIONS = frozenset({"platform"})
_PULL_FLAG_OPTIONS = frozenset({"all-tags", "disable-content-trust", "quiet", "help"})
_PULL_SHORT_FLAG = frozenset("aq")
# What Go's strconv.ParseBool reads as false, for --all-tags=VALUE.
FALSE_VALUES = frozenset({"0", "f", "F", "false", "FALSE", "False"})

# docker build / docker buildx build.
_BUILD_VALUE_OPTIONS = frozenset(
    """
    add-host allow annotation attest build-arg build-context builder cache-from cache-to
    call cgroup-parent cpu-period cpu-quota cpu-shares cpuset-cpus cpuset-mems file
    iidfile isolation label memory memory-swap metadata-file network no-cache-filter
    output platform progress secret security-opt shm-size ssh tag target ulimit
    """.split()
)
_BUILD_FLAG_OPTIONS = frozenset(
    """
    check compress debug disable-content-trust force-rm help load no-cache pull push
    quiet rm squash
    """.split()
)
_BUILD_SHORT_VALUE = frozenset("cfmot")
_BUILD_SHORT_FLAG = frozenset("qD")

# Options of the docker command itself, before the sub-command.
_GLOBAL_VALUE_OPTIONS = frozenset({"config", "context", "host", "log-level", "tlscacert"})
_GLOBAL_VALUE_OPTIONS |= frozenset({"tlscert", "tlskey"})
_GLOBAL_FLAG_OPTIONS = frozenset({"debug", "help", "tls", "tlsverify", "version"})
_GLOBAL_SHORT_VALUE = frozenset("cHl")
_GLOBAL_SHORT_FLAG = frozenset("Dhv")

_Options = tuple[frozenset[str], frozenset[str], frozenset[str], frozenset[str]]
# Options of docker buildx before its sub-command.
_BUILDX: _Options = (
    frozenset({"builder"}),
    frozenset({"debug", "help"}),
    frozenset(),
    frozenset("Dh"),
)
# Options of docker compose before its sub-command.
_COMPOSE: _Options = (
    frozenset(
        """
        ansi env-file file parallel profile progress project-directory project-name workdir
        """.split()
    ),
    frozenset("all-resources compatibility dry-run help version".split()),
    frozenset("fp"),
    frozenset("hv"),
)
# Options of docker stack, service and plugin before their sub-command.
_STACK: _Options = (
    frozenset({"kubeconfig", "orchestrator"}),
    frozenset({"help"}),
    frozenset(),
    frozenset("h"),
)

# How to go on when the wrapper refuses a command, by the kind of command.
_HOW_TO_PIN = {
    "service": "pin the image with 'trustkit resolve IMAGE:TAG' and give the pinned "
    "IMAGE@sha256:… to the docker binary directly",
    "stack": "pin every image with 'trustkit resolve IMAGE:TAG', write the pinned "
    "IMAGE@sha256:… into the stack file, then run the docker binary directly",
    "compose": "build with 'trustkit docker build -t IMAGE', give the services those "
    "images, and run 'trustkit docker compose up' (it pins every image), or write the "
    "pinned images with 'trustkit compose pin' and run compose with that file",
    "bake": "build each target with 'trustkit docker build', or pin every base image with "
    "'trustkit resolve IMAGE:TAG' in the Dockerfiles and run the docker binary directly",
    "plugin": "pin the plugin with 'trustkit resolve IMAGE:TAG' and give the pinned "
    "IMAGE@sha256:… to the docker binary directly",
    "debug": "start the container with 'trustkit run' and debug it with the docker binary directly",
    "model": "trustkit verifies container images, not models; run the docker binary "
    "directly if you trust the model",
    "opaque": "trustkit cannot tell which images it starts; pin them with 'trustkit resolve "
    "IMAGE:TAG' and run the docker binary directly",
}

# Every docker command, as the wrapper treats it: "pass" (starts and pulls no image, or
# only images an earlier gated command pinned), a gated action ("pull", "run",
# "create", "build", "builder-create"), or ("refuse", KIND) for commands that pull or
# start images trustkit cannot verify. A management command maps to the table of its
# sub-commands; a name in no table is refused (Docker 28/29, with its plugins).
_Entry = str | tuple[str, str]
_THROUGH = "pass-through"
_SHOW = ("inspect", "ls", "list", "rm", "remove", "prune")  # every family has some of these


def _passing(*names: str) -> dict[str, _Entry]:
    return dict.fromkeys(names, _THROUGH)


def _refusing(kind: str, *names: str) -> dict[str, _Entry]:
    return dict.fromkeys(names, ("refuse", kind))


_BUILDX_COMMANDS: dict[str, _Entry] = {
    **_passing(*_SHOW, "du", "history", "imagetools", "install", "stop", "uninstall", "use"),
    **_passing("version", "dial-stdio"),
    "build": "build",
    "b": "build",
    "create": "builder-create",
    **_refusing("bake", "bake", "f"),
    **_refusing("opaque", "debug", "dap"),
}
_FAMILIES: dict[str, dict[str, _Entry]] = {
    "container": {
        **_passing(*_SHOW, "ps", "attach", "commit", "cp", "diff", "exec", "export", "kill"),
        **_passing("logs", "pause", "port", "rename", "restart", "start", "stats", "stop"),
        **_passing("top", "unpause", "update", "wait"),
        "run": "run",
        "create": "create",
    },
    "image": {
        **_passing(*_SHOW, "history", "import", "load", "push", "save", "tag"),
        "pull": "pull",
        "build": "build",
    },
    "buildx": _BUILDX_COMMANDS,
    "builder": _BUILDX_COMMANDS,  # docker builder is buildx's alias since Docker 23
    "compose": {
        **_passing(*_SHOW, "attach", "commit", "config", "convert", "cp", "down", "events"),
        **_passing("exec", "export", "images", "kill", "logs", "pause", "port", "ps"),
        **_passing("publish", "push", "restart", "start", "stats", "stop", "top"),
        **_passing("unpause", "version", "volumes", "wait"),
        **dict.fromkeys(("up", "pull", "run", "create"), "compose"),
        **_refusing("compose", "build", "watch", "scale"),
        **_refusing("compose", "alpha", "bridge"),
    },
    "context": _passing(*_SHOW, "create", "export", "import", "show", "update", "use"),
    "manifest": _passing(*_SHOW, "annotate", "create", "push"),
    "network": _passing(*_SHOW, "connect", "create", "disconnect"),
    "volume": _passing(*_SHOW, "create", "update"),
    "system": _passing("df", "events", "info", "prune", "dial-stdio"),
    "trust": _passing("inspect", "key", "revoke", "sign", "signer"),
    "plugin": {
        **_passing(*_SHOW, "create", "disable", "enable", "push", "set"),
        **_refusing("plugin", "install", "upgrade"),
    },
    "swarm": _passing(
        "ca", "init", "join", "join-token", "leave", "unlock", "unlock-key", "update"
    ),
    "service": {
        **_passing(*_SHOW, "logs", "ps", "scale"),
        **_refusing("service", "create", "update", "rollback"),
    },
    "stack": {
        **_passing(*_SHOW, "config", "down", "ps", "services"),
        **_refusing("stack", "deploy", "up"),
    },
    "secret": _passing(*_SHOW, "create"),
    "config": _passing(*_SHOW, "create"),
    "node": _passing(*_SHOW, "demote", "promote", "ps", "update"),
    "checkpoint": _passing(*_SHOW, "create"),
    "model": {
        **_passing(*_SHOW, "df", "logs", "package", "ps", "push", "requests", "status"),
        **_passing("stop-runner", "tag", "uninstall-runner", "unload", "version"),
        **_refusing("model", "pull", "run", "install-runner", "reinstall-runner"),
        **_refusing("model", "start-runner", "compose", "configure"),
    },
}
_TOP_LEVEL: dict[str, _Entry] = {
    **_passing("attach", "commit", "cp", "diff", "events", "exec", "export", "history"),
    **_passing("images", "import", "info", "inspect", "kill", "load", "login", "logout"),
    **_passing("logs", "pause", "port", "ps", "push", "rename", "restart", "rm", "rmi"),
    **_passing("save", "search", "start", "stats", "stop", "tag", "top", "unpause"),
    **_passing("update", "version", "wait", "help"),
    # CLI plugins that analyse images or manage Docker Desktop, and start none.
    **_passing("scout", "sbom", "init", "desktop", "feedback"),
    "pull": "pull",
    "run": "run",
    "create": "create",
    "build": "build",
    **_refusing("bake", "bake"),
    **_refusing("debug", "debug"),
    # Plugins that start images of their own choosing.
    **_refusing("opaque", "ai", "extension", "mcp", "offload", "cloud", "dev"),
}


@dataclass(frozen=True)
class _Grammar:
    value_options: frozenset[str]
    flag_options: frozenset[str]
    short_value: frozenset[str]
    short_flag: frozenset[str]


_RUN = _Grammar(_RUN_VALUE_OPTIONS, _RUN_FLAG_OPTIONS, _RUN_SHORT_VALUE, _RUN_SHORT_FLAG)
_PODMAN_RUN = _Grammar(
    _RUN_VALUE_OPTIONS | _PODMAN_VALUE_OPTIONS,
    _RUN_FLAG_OPTIONS | _PODMAN_FLAG_OPTIONS,
    _RUN_SHORT_VALUE,
    _RUN_SHORT_FLAG,
)
_PULL = _Grammar(_PULL_VALUE_OPTIONS, _PULL_FLAG_OPTIONS, frozenset(), _PULL_SHORT_FLAG)
_BUILD = _Grammar(_BUILD_VALUE_OPTIONS, _BUILD_FLAG_OPTIONS, _BUILD_SHORT_VALUE, _BUILD_SHORT_FLAG)
_GLOBAL = _Grammar(
    _GLOBAL_VALUE_OPTIONS, _GLOBAL_FLAG_OPTIONS, _GLOBAL_SHORT_VALUE, _GLOBAL_SHORT_FLAG
)
_HELP_ONLY = _Grammar(frozenset(), frozenset({"help"}), frozenset(), frozenset("h"))
_SUB_GRAMMARS = {
    "buildx": _Grammar(*_BUILDX),
    "builder": _Grammar(*_BUILDX),
    "compose": _Grammar(*_COMPOSE),
    "stack": _Grammar(*_STACK),
    "service": _Grammar(*_STACK),
    "plugin": _Grammar(*_STACK),
}


@dataclass(frozen=True)
class _Option:
    name: str  # without dashes; one letter for a short option (the last of a cluster)
    value: str | None
    end: int  # index of the first argument after this option (and its value)
    names: tuple[str, ...] = ()  # every option this argument sets: all letters of -itp


def _read_option(args: Sequence[str], index: int, grammar: _Grammar, what: str) -> _Option:
    """Read the option at ``args[index]``, with its value when it takes one."""
    arg = args[index]
    if arg.startswith("--"):
        name, has_value, value = arg[2:].partition("=")
        if has_value:
            return _Option(name, value, index + 1, (name,))
        if name in grammar.flag_options:
            return _Option(name, None, index + 1, (name,))
        if name in grammar.value_options:
            if index + 1 >= len(args):
                raise UsageError(f"{arg} in '{what}' needs a value")
            return _Option(name, args[index + 1], index + 2, (name,))
        raise _unknown(arg, what)
    # A cluster of short options such as -it or -p8080:80 or -itp 80:80. As Docker's
    # flag parser reads it: "=" right after a letter starts that letter's value when
    # something follows it (-d=true, -e=A=1); a value option takes the rest as is (-e=).
    letters = arg[1:]
    for position, letter in enumerate(letters):
        names = tuple(letters[: position + 1])
        rest = letters[position + 1 :]
        if letter in grammar.short_flag:
            if rest.startswith("=") and len(rest) > 1:
                return _Option(letter, rest[1:], index + 1, names)
            continue
        if letter in grammar.short_value:
            if rest.startswith("=") and len(rest) > 1:
                rest = rest[1:]
            if rest:
                return _Option(letter, rest, index + 1, names)
            if index + 1 >= len(args):
                raise UsageError(f"-{letter} in '{what}' needs a value")
            return _Option(letter, args[index + 1], index + 2, names)
        raise _unknown(f"-{letter}", what)
    return _Option(letters[-1], None, index + 1, tuple(letters))


def _unknown(option: str, what: str) -> UsageError:
    return UsageError(
        f"trustkit does not know the option {option} of '{what}', so it cannot tell which "
        "argument is the image",
        hint=f"write it as {option}=VALUE if it takes a value, or leave it out",
    )


def find_image(args: Sequence[str], *, podman: bool = False, what: str = "docker run") -> int:
    """Index of the image among ``docker run|create`` arguments (options come first)."""
    grammar = _PODMAN_RUN if podman else _RUN
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            index += 1
            break
        if not arg.startswith("-") or arg == "-":
            return index
        index = _read_option(args, index, grammar, what).end
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
            option = _read_option(args, index, _PULL, "docker pull")
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
        option = _read_option(options, index, _PULL, "docker pull")
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
            option = _read_option(args, index, _BUILD, "docker build")
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


def _refuse_unpinnable_build_option(option: _Option) -> None:
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


@dataclass(frozen=True)
class DockerCommand:
    """``docker [global options] COMMAND [args]``: what the wrapper must gate, if anything.

    ``action`` is ``pull``, ``run``, ``create``, ``build``, ``builder-create`` or
    ``None`` (pass through,
    also for a gated command that asks for ``--help``, so nothing is run); ``head`` is
    everything up to and including the sub-command words (every argument when passed
    through), ``args`` the rest.
    """

    action: str | None
    head: list[str]
    args: list[str]
    # For ``compose``: docker's global options, and compose's own before its command.
    docker_options: list[str] = field(default_factory=list)
    family_options: list[str] = field(default_factory=list)


_BUILDER_CREATE = _Grammar(
    frozenset(
        """
        buildkitd-config buildkitd-flags config driver driver-opt name node platform timeout
        """.split()
    ),
    frozenset({"append", "bootstrap", "leave", "use", "help"}),
    frozenset(),
    frozenset("h"),
)
_GRAMMARS = {
    "pull": _PULL,
    "run": _RUN,
    "create": _RUN,
    "build": _BUILD,
    "builder-create": _BUILDER_CREATE,
}
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
        option = _read_option(args, index, _BUILDER_CREATE, "docker buildx create")
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


def _asks_for_help(action: str, args: Sequence[str]) -> bool:
    """Whether Docker reads ``--help`` among the options of a gated command, and so
    prints help instead of acting. Not when it is an option's value (``-e --help``) or
    an argument of the container's command (``IMAGE ls --help``)."""
    grammar = _GRAMMARS[action]
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            return False
        if not arg.startswith("-") or arg == "-":
            if action in ("run", "create"):
                return False  # the image: what follows is the container's
            index += 1  # pull and build take options after their argument too
            continue
        try:
            option = _read_option(args, index, grammar, f"docker {action}")
        except UsageError:
            return False  # the gate refuses it when it reads the arguments
        if "help" in option.names and option.value not in FALSE_VALUES:
            return True
        index = option.end
    return False


def _skip_options(args: Sequence[str], index: int, grammar: _Grammar, what: str) -> int:
    """Index of the first argument at or after ``index`` that is not an option."""
    while index < len(args) and args[index].startswith("-") and args[index] != "-":
        index = _read_option(args, index, grammar, what).end
    return index


def parse_docker_command(args: Sequence[str]) -> DockerCommand:
    """Split ``docker`` arguments by what the wrapper must do with them: gate (pull,
    run, create, build, buildx create), pass through (commands that start or pull no
    image, and requests for help), or refuse (commands that pull or start images the
    gate cannot verify, and every command trustkit does not know)."""
    index = _skip_options(args, 0, _GLOBAL, "docker")
    if index >= len(args):
        return DockerCommand(None, list(args), [])  # docker alone prints its help
    command = args[index]
    entry = _TOP_LEVEL.get(command)
    words: tuple[str, ...] = (command,)
    end = index + 1
    if command in _FAMILIES:
        grammar = _SUB_GRAMMARS.get(command, _HELP_ONLY)
        sub = _skip_options(args, end, grammar, f"docker {command}")
        if sub >= len(args):
            return DockerCommand(None, list(args), [])  # docker image: its help
        words, end = (command, args[sub]), sub + 1
        entry = _FAMILIES[command].get(args[sub])
    what = " ".join(words)
    if entry is None:
        raise UsageError(
            f"trustkit does not know the docker command '{what}', so it cannot tell "
            "whether it pulls or starts an image",
            hint="if it starts no image, run the docker binary directly; pull and run "
            "images with trustkit pull / trustkit run",
        )
    if isinstance(entry, tuple):
        raise UsageError(
            f"trustkit cannot verify the images 'docker {what}' pulls, so it does not run it",
            hint=_HOW_TO_PIN[entry[1]],
        )
    if entry == _THROUGH:
        return DockerCommand(None, list(args), [])
    if entry == "compose":
        # Pinned and run with an override whatever its options: never passed through.
        family = list(args[index + 1 : end - 1])
        return DockerCommand(
            "compose", list(args[:end]), list(args[end:]), list(args[:index]), family
        )
    return _gated(entry, args, end)


def _gated(action: str, args: Sequence[str], end: int) -> DockerCommand:
    if _asks_for_help(action, args[end:]):
        return DockerCommand(None, list(args), [])
    return DockerCommand(action, list(args[:end]), list(args[end:]))
