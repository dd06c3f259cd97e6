"""Which docker commands the gate pins, passes through or refuses.

Every docker command (Docker 28/29 and its common plugins) is classified as gated
(``pull``, ``run``, ``create``, ``build``, ``buildx create``, ``compose``), passed
through (it starts and pulls no image) or refused (it pulls or starts images trustkit
cannot verify); a command that is not known is refused. Nothing here runs anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from client.docker_options import (
    FALSE_VALUES,
    GLOBAL,
    GRAMMARS,
    HELP_ONLY,
    SUB_GRAMMARS,
    read_option,
    skip_options,
)
from trustkit.errors import UsageError

__all__ = ["DockerCommand", "parse_docker_command"]

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


def _asks_for_help(action: str, args: Sequence[str]) -> bool:
    """Whether Docker reads ``--help`` among the options of a gated command, and so
    prints help instead of acting. Not when it is an option's value (``-e --help``) or
    an argument of the container's command (``IMAGE ls --help``)."""
    grammar = GRAMMARS[action]
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
            option = read_option(args, index, grammar, f"docker {action}")
        except UsageError:
            return False  # the gate refuses it when it reads the arguments
        if "help" in option.names and option.value not in FALSE_VALUES:
            return True
        index = option.end
    return False


def parse_docker_command(args: Sequence[str]) -> DockerCommand:
    """Split ``docker`` arguments by what the wrapper must do with them: gate (pull,
    run, create, build, buildx create), pass through (commands that start or pull no
    image, and requests for help), or refuse (commands that pull or start images the
    gate cannot verify, and every command trustkit does not know)."""
    index = skip_options(args, 0, GLOBAL, "docker")
    if index >= len(args):
        return DockerCommand(None, list(args), [])  # docker alone prints its help
    command = args[index]
    entry = _TOP_LEVEL.get(command)
    words: tuple[str, ...] = (command,)
    end = index + 1
    if command in _FAMILIES:
        grammar = SUB_GRAMMARS.get(command, HELP_ONLY)
        sub = skip_options(args, end, grammar, f"docker {command}")
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
