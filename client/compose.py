"""Compose projects through the gate: every ``image:`` of a project verified and pinned
in an override file, so ``compose up`` starts exactly the signed digests.

The project is read as Compose itself resolves it (``COMPOSE config``: every ``-f``
file merged, variables interpolated, profiles and ``extends`` applied), so the images
pinned are the images Compose would run. The override names each service's image as
``NAME@sha256:…``; the original files are never changed. A service that builds its
image is refused: its base images are in a Dockerfile Compose builds without trustkit
(build it with ``trustkit docker build`` and give the service that image instead).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from client.decision import Decision
from trustkit.errors import UsageError
from trustkit.names import may_name_an_image_id

__all__ = [
    "PinnedProject",
    "PinnedRun",
    "compose_command",
    "pin_project",
    "pinned_compose_run",
    "project_files",
    "refuse_profiles",
    "read_project",
    "with_files",
    "with_override",
    "write_override",
]

# The files Compose reads when no -f (nor COMPOSE_FILE) names any, in its order.
DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
DEFAULT_OVERRIDES = (
    "compose.override.yaml",
    "compose.override.yml",
    "docker-compose.override.yaml",
    "docker-compose.override.yml",
)

OVERRIDE_NAME = "docker-compose.trustkit.yml"


@dataclass(frozen=True)
class PinnedProject:
    override: dict[str, Any]  # the override file's document
    decisions: list[Decision]


def compose_command(env: Mapping[str, str], docker: str) -> list[str]:
    """The Compose program: ``TRUSTKIT_COMPOSE`` (e.g. ``docker-compose``), else the
    ``docker compose`` plugin of the docker binary in use."""
    chosen = env.get("TRUSTKIT_COMPOSE")
    return chosen.split() if chosen else [docker, "compose"]


def read_project(
    compose: Sequence[str], options: Sequence[str], env: Mapping[str, str]
) -> dict[str, Any]:
    """The project as Compose resolves it, from ``COMPOSE [options] config``."""
    import yaml

    try:
        done = subprocess.run(
            [*compose, *options, "config"],
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except FileNotFoundError:
        raise UsageError(
            f"cannot run {compose[0]} to read the compose project",
            hint="install Docker Compose, or name it with TRUSTKIT_COMPOSE (e.g. docker-compose)",
        ) from None
    if done.returncode != 0:
        raise UsageError(
            f"{' '.join(compose)} config failed: {done.stderr.strip() or done.stdout.strip()}",
            hint="check the compose files and options",
        )
    try:
        project = yaml.safe_load(done.stdout)
    except yaml.YAMLError as error:
        raise UsageError(f"{' '.join(compose)} config printed no YAML: {error}") from None
    if not isinstance(project, dict) or not isinstance(project.get("services"), dict):
        raise UsageError("the compose project has no services")
    return project


def refuse_profiles(files: Sequence[str], cwd: Path) -> None:
    """Services behind a profile are left out of ``COMPOSE config`` unless the profile is
    on, yet ``compose run SERVICE`` turns a named service's profile on: such a service
    would run unpinned. Refused until trustkit pins every profile's services."""
    import yaml

    for name in files:
        path = cwd / name
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise UsageError(f"cannot read the compose file {path}: {error}") from None
        services = document.get("services") if isinstance(document, dict) else None
        for service, body in (services or {}).items():
            if isinstance(body, dict) and "profiles" in body:
                raise UsageError(
                    f"the compose service {service} in {name} is behind a profile, which "
                    "trustkit cannot pin yet",
                    hint="drop its profiles, or run that service with trustkit run",
                )


def pin_project(project: Mapping[str, Any], decide: Callable[[str], Decision]) -> PinnedProject:
    """Each service's image decided (verified and pinned) under the host policy."""
    services: dict[str, Any] = {}
    decisions = []
    for name, service in sorted(project["services"].items()):
        if not isinstance(service, dict):
            raise UsageError(f"the compose service {name} is not a mapping")
        if "build" in service:
            raise UsageError(
                f"the compose service {name} builds its image, whose base images trustkit "
                "cannot verify from here",
                hint="build it with 'trustkit docker build -t IMAGE …' and give the service "
                "that image",
            )
        image = service.get("image")
        if not isinstance(image, str) or not image:
            raise UsageError(f"the compose service {name} names no image")
        for volume in service.get("volumes") or []:
            if isinstance(volume, dict) and str(volume.get("type", "")).lower() == "image":
                raise UsageError(
                    f"the compose service {name} mounts an image (volumes: type: image), "
                    "which trustkit cannot pin yet",
                    hint="copy what it needs into the service's own image instead",
                )
        if may_name_an_image_id(image):
            raise UsageError(
                f"the compose service {name} names '{image}', which Docker may take for a "
                "local image's ID",
                hint="name the image: NAME:TAG",
            )
        decision = decide(image)
        decisions.append(decision)
        services[name] = {"image": decision.image}
    override: dict[str, Any] = {"services": services}
    if "version" in project:
        override = {"version": project["version"], **override}
    return PinnedProject(override, decisions)


def write_override(path: Path, pinned: PinnedProject) -> None:
    import yaml

    header = "# Written by trustkit compose pin: every image pinned to its signed digest.\n"
    path.write_text(header + yaml.safe_dump(pinned.override, sort_keys=False))


def project_files(options: Sequence[str], env: Mapping[str, str], cwd: Path) -> list[str]:
    """The compose files of a project, as Compose finds them: ``-f``/``--file`` options,
    else ``COMPOSE_FILE``, else the default file (and its override) in the project
    directory. Adding trustkit's override must not make Compose forget these."""
    named: list[str] = []
    directory = cwd
    index = 0
    while index < len(options):
        option = options[index]
        value = options[index + 1] if index + 1 < len(options) else None
        if option in ("-f", "--file") and value is not None:
            named.append(value)
            index += 2
            continue
        if option.startswith("--file="):
            named.append(option.split("=", 1)[1])
        elif option == "--project-directory" and value is not None:
            directory = cwd / value
            index += 2
            continue
        elif option.startswith("--project-directory="):
            directory = cwd / option.split("=", 1)[1]
        index += 1
    if named:
        return named
    if env.get("COMPOSE_FILE"):
        return env["COMPOSE_FILE"].split(env.get("COMPOSE_PATH_SEPARATOR", ":"))
    found = [name for name in DEFAULT_FILES if (directory / name).is_file()][:1]
    if not found:
        raise UsageError(
            f"no compose file in {directory}", hint="name one with -f FILE (or COMPOSE_FILE)"
        )
    overrides = [name for name in DEFAULT_OVERRIDES if (directory / name).is_file()][:1]
    return [str(directory / name) for name in found + overrides]


def with_override(options: Sequence[str], files: Sequence[str], override: Path) -> list[str]:
    """Compose options naming every project file and then ``override``, last, so its
    pinned images win."""
    return [*with_files(options, files), "-f", str(override)]


def with_files(options: Sequence[str], files: Sequence[str]) -> list[str]:
    """Compose options with every project file named by ``-f`` (and no other ``-f``)."""
    kept: list[str] = []
    index = 0
    while index < len(options):
        option = options[index]
        if option in ("-f", "--file"):
            index += 2
            continue
        if not option.startswith("--file="):
            kept.append(option)
        index += 1
    return [*kept, *(flag for name in files for flag in ("-f", name))]


@dataclass(frozen=True)
class PinnedRun:
    """A compose command to run with trustkit's override, and what was decided."""

    argv: list[str]
    pinned: PinnedProject
    override: Path


def pinned_compose_run(
    compose: Sequence[str],
    compose_options: Sequence[str],
    command: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    decide: Callable[[str], Decision],
    scratch: Path,
) -> PinnedRun:
    """``COMPOSE [options] COMMAND…`` with every image of the project pinned: the
    override is written to ``scratch`` and named last."""
    files = project_files(compose_options, env, cwd)
    refuse_profiles(files, cwd)
    project = read_project(compose, with_files(compose_options, files), env)
    pinned = pin_project(project, decide)
    override = scratch / OVERRIDE_NAME
    write_override(override, pinned)
    options = with_override(compose_options, files, override)
    return PinnedRun([*compose, *options, *command], pinned, override)
