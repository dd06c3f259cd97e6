"""Commands that hand a verified image to a tool: pull, run, create, docker, and
compose pin.

pull, run and create (also as ``trustkit docker pull|run|create``) take each decision
from the host agent when one answers, and then import no verifier at all; otherwise, or
when the agent serves another server or policy, they decide in-process (``HostPins``).
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustkit.cli.context import Context
from trustkit.cli.options import Commands
from trustkit.cli.output import report_notes
from trustkit.errors import EXIT_OK, EXIT_USAGE, UsageError

if TYPE_CHECKING:
    from client.docker_argv import Tool
    from client.gate import Gate
    from trustkit.agent_wire import AgentDecision


class HostPins:
    """The decisions of one command: the host agent's when it answers, else made here
    through the gate (its server session opened on the first such decision)."""

    def __init__(self, ctx: Context, stack: contextlib.ExitStack) -> None:
        self._ctx = ctx
        self._stack = stack
        self._gate: Gate | None = None

    def __call__(self, text: str) -> AgentDecision:
        from trustkit.cli.agent import ask_agent

        answer = ask_agent(self._ctx, text, require_signed=False)
        if answer is not None:
            return answer
        if self._gate is None:
            _, verifier = self._stack.enter_context(self._ctx.session())
            self._gate = self._ctx.gate(verifier)
        return self._gate.pin(text).to_wire()


def _light_tool(ctx: Context) -> Tool:
    """``--via``'s tool, without the registry client (only podman and skopeo ask
    which registries are plain http, and only then is it loaded)."""
    from client.docker_argv import Tool

    def plain_http(host: str) -> bool:
        return ctx.registry_settings.allows_plain_http(host)

    return Tool.choose(ctx.args.via, ctx.env, plain_http)


def _note(ctx: Context, decisions: Sequence[AgentDecision]) -> None:
    for decision in decisions:
        for note in decision.notes:
            ctx.out.note(f"trustkit: {note}")


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
        report_notes(ctx.out, run.pinned.decisions)
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
    report_notes(ctx.out, pinned.decisions)
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


def cmd_pull(ctx: Context) -> int:
    from client.docker_argv import execute, pull_commands

    tool = _light_tool(ctx)
    with contextlib.ExitStack() as stack:
        pin = HostPins(ctx, stack)
        pinned, commands = pull_commands(pin, tool, ctx.args.docker_args, dest=ctx.args.dest)
    _note(ctx, [pinned])
    return execute(commands, replace_process=True)


def cmd_run(ctx: Context) -> int:
    from client.docker_argv import execute, run_command

    tool = _light_tool(ctx)
    with contextlib.ExitStack() as stack:
        pin = HostPins(ctx, stack)
        pinned, command = run_command(pin, tool, ctx.args.docker_args, head=[ctx.args.command])
    _note(ctx, [pinned])
    return execute([command], replace_process=True)


def cmd_docker(ctx: Context) -> int:
    """``docker ARGS…`` with pull, run, create, build and buildx create gated, the
    commands that start no image as they are, and every other command refused."""
    from client.docker_argv import execute, pull_commands, run_command
    from client.docker_cli import parse_docker_command

    tool = _light_tool(ctx)
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
    if command.action in ("pull", "run", "create"):
        with contextlib.ExitStack() as stack:
            pin = HostPins(ctx, stack)
            if command.action == "pull":
                pinned, commands = pull_commands(pin, tool, command.args, head=command.head)
            else:
                pinned, run = run_command(pin, tool, command.args, head=command.head)
                commands = [run]
        _note(ctx, [pinned])
        return execute(commands, replace_process=True)
    from client.gate import build_command, builder_create_command

    with ctx.session() as (_, verifier):
        gate = ctx.gate(verifier)
        if command.action == "compose":
            return _compose_through_gate(ctx, gate, tool.binary, command)
        elif command.action == "builder-create":
            decisions, create = builder_create_command(gate, tool, command.args, head=command.head)
            report_notes(ctx.out, decisions)
            commands = [create]
        else:
            build = build_command(gate, tool, command.args, head=command.head, env=ctx.env)
            report_notes(ctx.out, build.pinned)
            try:
                return execute([build.command], replace_process=False)
            finally:
                shutil.rmtree(build.workdir, ignore_errors=True)
    return execute(commands, replace_process=True)


def add_parsers(commands: Commands) -> None:
    """The sub-commands of this group."""
    add = commands.add
    common = commands.common
    registry = commands.registry
    policy = commands.policy
    gate = commands.gate
    runs = commands.runs
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
