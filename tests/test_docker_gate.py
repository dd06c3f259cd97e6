"""The Docker gate on an app host, end to end: a real trustkit server, a real registry
with images pushed by skopeo, tags signed from the digests the registry serves, and the
real ``trustkit`` process handing the verified image to Docker.

There is no Docker engine here, so ``docker`` and ``podman`` are recorders first on
PATH: each appends its argument vector (and, for a build, the Dockerfile it was given)
to a file, so the tests assert exactly what Docker would have run. Gate commands exec
the tool, so they always run as their own process. ``--via skopeo`` is the real skopeo,
copying from the real registry by digest.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from scripts.oci_layout import build_image
from tests.support.docker_recorder import Recorder, write_recorder
from tests.support.harness import (
    ServerProcess,
    TamperingProxy,
    Trustkit,
    edit_json,
    gun_for,
    publisher_cli,
    role_of,
)
from tests.support.registry import RegistryProcess, push, registry_digest


@pytest.fixture
def recorder(tmp_path: Path) -> Recorder:
    bindir = tmp_path / "bin"
    for name in ("docker", "podman"):
        write_recorder(bindir / name)
    return Recorder(bindir, tmp_path / "docker-calls.jsonl")


@dataclass(frozen=True)
class Signed:
    """Repositories signed once for the module; tests only read them."""

    app: str  # 1.0 -> one, latest -> two
    tools: str  # 1.0 -> three
    one: str
    two: str
    three: str


@pytest.fixture(scope="module")
def signed(
    tmp_path_factory: pytest.TempPathFactory, server: ServerProcess, registry: RegistryProcess
) -> Signed:
    work = tmp_path_factory.mktemp("gate-signed")
    publisher = publisher_cli(work / "publisher" / ".trustkit", server.url)
    one = build_image(work / "one", "1.0", b"image one")
    two = build_image(work / "two", "latest", b"image two")
    three = build_image(work / "three", "1.0", b"image three")
    push(one, registry, "docker-gate/app")
    push(two, registry, "docker-gate/app")
    push(three, registry, "docker-gate/tools")
    app, tools = f"{registry.host}/docker-gate/app", f"{registry.host}/docker-gate/tools"
    for repository in (app, tools):
        initialised = publisher("init", repository)
        assert initialised.code == 0, initialised.err
    for reference in (f"{app}:1.0", f"{app}:latest", f"{tools}:1.0"):
        signed = publisher("sign", reference)  # the digest the registry serves for the tag
        assert signed.code == 0, signed.err
    return Signed(app, tools, one.digest, two.digest, three.digest)


@pytest.fixture
def own_gun(request: pytest.FixtureRequest, registry: RegistryProcess) -> str:
    """A repository of the test's own on the real registry."""
    return f"{registry.host}/{gun_for(request.node.name).split('/', 1)[1]}"


def write_policy(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def assert_not_invoked(recorder: Recorder) -> None:
    assert not recorder.invoked, recorder.records()


# --------------------------------------------------------------------------- pull


def test_pull_pulls_the_signed_digest_then_tags_it(
    host: Trustkit, signed: Signed, recorder: Recorder
):
    result = host.process("pull", f"{signed.app}:1.0", env=recorder.env())

    assert result.code == 0, result.err
    pinned = f"{signed.app}@{signed.one}"
    assert recorder.calls() == [
        ["docker", "pull", pinned],
        ["docker", "tag", pinned, f"{signed.app}:1.0"],
    ]
    assert f"{signed.app}:1.0 is signed as {signed.one}" in result.err


def test_pull_without_a_tag_pulls_latest(host: Trustkit, signed: Signed, recorder: Recorder):
    result = host.process("pull", signed.app, env=recorder.env())

    assert result.code == 0, result.err
    pinned = f"{signed.app}@{signed.two}"
    assert recorder.calls() == [
        ["docker", "pull", pinned],
        ["docker", "tag", pinned, f"{signed.app}:latest"],
    ]


def test_pull_options_are_kept(host: Trustkit, signed: Signed, recorder: Recorder):
    result = host.process(
        "pull", "--platform", "linux/amd64", "-q", f"{signed.app}:1.0", env=recorder.env()
    )

    assert result.code == 0, result.err
    pinned = f"{signed.app}@{signed.one}"
    assert recorder.calls()[0] == ["docker", "pull", "--platform", "linux/amd64", "-q", pinned]


def test_pull_by_a_signed_digest_pulls_it_and_tags_nothing(
    host: Trustkit, signed: Signed, recorder: Recorder
):
    result = host.process("pull", f"{signed.app}@{signed.one}", env=recorder.env())

    assert result.code == 0, result.err
    assert recorder.calls() == [["docker", "pull", f"{signed.app}@{signed.one}"]]


def test_pull_by_a_digest_signed_under_no_tag_is_refused(
    host: Trustkit, signed: Signed, recorder: Recorder
):
    result = host.process("pull", f"{signed.app}@{signed.three}", env=recorder.env())

    assert result.code == 1
    assert f"{signed.three} is not signed under any tag of {signed.app}" in result.err
    assert_not_invoked(recorder)


def test_pull_of_a_tag_with_another_digest_is_refused(
    host: Trustkit, signed: Signed, recorder: Recorder
):
    result = host.process("pull", f"{signed.app}:1.0@{signed.two}", env=recorder.env())

    assert result.code == 1
    assert f"is signed as {signed.one}, not {signed.two}" in result.err
    assert_not_invoked(recorder)


@pytest.mark.parametrize(
    "command",
    [
        ("pull", "-qa"),
        ("docker", "pull", "--all-tags"),
        ("docker", "image", "pull", "-a"),
        ("docker", "image", "pull", "--all-tags=true"),
    ],
    ids=["pull", "docker-pull", "docker-image-pull", "docker-image-pull-true"],
)
def test_pull_all_tags_is_refused(
    host: Trustkit, signed: Signed, recorder: Recorder, command: tuple[str, ...]
):
    result = host.process(*command, signed.app, env=recorder.env())

    assert result.code == 2
    assert "pulling all tags cannot be verified" in result.err
    assert_not_invoked(recorder)


def test_a_failed_pull_is_not_tagged_and_its_exit_code_is_kept(
    host: Trustkit, signed: Signed, recorder: Recorder
):
    result = host.process("pull", f"{signed.app}:1.0", env=recorder.env(DOCKER_RECORD_EXIT="7"))

    assert result.code == 7
    assert recorder.calls() == [["docker", "pull", f"{signed.app}@{signed.one}"]]


# --------------------------------------------------------------------------- run / create


def test_run_hands_docker_every_argument_untouched_but_the_image(
    host: Trustkit, signed: Signed, recorder: Recorder
):
    options = ["-it", "--rm", "-e", "A=1", "-p", "8080:80", "--name", "x", "-v", "/a:/b"]
    options.append("--network=host")

    result = host.process(
        "run", *options, f"{signed.app}:1.0", "sh", "-c", "echo hi", env=recorder.env()
    )

    assert result.code == 0, result.err
    assert recorder.calls() == [
        ["docker", "run", *options, f"{signed.app}@{signed.one}", "sh", "-c", "echo hi"]
    ]


def test_run_exits_with_the_containers_code(host: Trustkit, signed: Signed, recorder: Recorder):
    result = host.process("run", f"{signed.app}:1.0", env=recorder.env(DOCKER_RECORD_EXIT="42"))

    assert result.code == 42
    assert recorder.calls() == [["docker", "run", f"{signed.app}@{signed.one}"]]


def test_create_pins_the_image(host: Trustkit, signed: Signed, recorder: Recorder):
    result = host.process(
        "create", "--name", "web", "-p8080:80", signed.app, "--port", "80", env=recorder.env()
    )

    assert result.code == 0, result.err
    pinned = f"{signed.app}@{signed.two}"
    assert recorder.calls() == [
        ["docker", "create", "--name", "web", "-p8080:80", pinned, "--port", "80"]
    ]


def test_unknown_option_before_the_image_is_refused(
    host: Trustkit, signed: Signed, recorder: Recorder
):
    refused = host.process("run", "--frobnicate", "x", f"{signed.app}:1.0", env=recorder.env())

    assert refused.code == 2
    assert "does not know the option --frobnicate" in refused.err
    assert "--frobnicate=VALUE" in refused.err
    assert_not_invoked(recorder)

    accepted = host.process("run", "--frobnicate=x", f"{signed.app}:1.0", env=recorder.env())

    assert accepted.code == 0, accepted.err
    assert recorder.calls() == [["docker", "run", "--frobnicate=x", f"{signed.app}@{signed.one}"]]


def test_trustkit_docker_names_the_docker_binary(
    host: Trustkit, signed: Signed, recorder: Recorder, tmp_path: Path
):
    other = write_recorder(tmp_path / "elsewhere" / "docker-cli")

    result = host.process(
        "run", "--rm", f"{signed.app}:1.0", env=recorder.env(TRUSTKIT_DOCKER=str(other))
    )

    assert result.code == 0, result.err
    assert recorder.calls() == [["docker-cli", "run", "--rm", f"{signed.app}@{signed.one}"]]


def test_via_podman_runs_podman(host: Trustkit, signed: Signed, recorder: Recorder):
    result = host.process(
        "run", "--via", "podman", "--rm", "--pod", "p1", f"{signed.app}:1.0", env=recorder.env()
    )

    assert result.code == 0, result.err
    assert recorder.calls() == [
        ["podman", "run", "--rm", "--pod", "p1", f"{signed.app}@{signed.one}"]
    ]


def test_via_podman_pull_allows_plain_http_to_a_loopback_registry(
    host: Trustkit, signed: Signed, recorder: Recorder
):
    result = host.process("pull", "--via", "podman", f"{signed.app}:1.0", env=recorder.env())

    assert result.code == 0, result.err
    pinned = f"{signed.app}@{signed.one}"
    assert recorder.calls() == [
        ["podman", "pull", "--tls-verify=false", pinned],
        ["podman", "tag", pinned, f"{signed.app}:1.0"],
    ]


# --------------------------------------------------------------------------- trustkit docker


def test_docker_passes_other_commands_through_untouched(host: Trustkit, recorder: Recorder):
    result = host.process("docker", "ps", "-a", "--format", "{{.ID}}", env=recorder.env())

    assert result.code == 0, result.err
    assert recorder.calls() == [["docker", "ps", "-a", "--format", "{{.ID}}"]]


def test_docker_keeps_global_options_in_place(host: Trustkit, signed: Signed, recorder: Recorder):
    result = host.process(
        "docker", "--context", "ctx", "run", "--rm", f"{signed.app}:1.0", "true", env=recorder.env()
    )

    assert result.code == 0, result.err
    assert recorder.calls() == [
        ["docker", "--context", "ctx", "run", "--rm", f"{signed.app}@{signed.one}", "true"]
    ]


def test_docker_image_pull_tags_with_image_tag(host: Trustkit, signed: Signed, recorder: Recorder):
    result = host.process("docker", "-D", "image", "pull", f"{signed.app}:1.0", env=recorder.env())

    assert result.code == 0, result.err
    pinned = f"{signed.app}@{signed.one}"
    assert recorder.calls() == [
        ["docker", "-D", "image", "pull", pinned],
        ["docker", "-D", "image", "tag", pinned, f"{signed.app}:1.0"],
    ]


def test_docker_container_create_and_run_are_gated(
    host: Trustkit, signed: Signed, recorder: Recorder
):
    created = host.process("docker", "container", "create", signed.app, env=recorder.env())
    refused = host.process("docker", "container", "run", f"{signed.app}:9.9", env=recorder.env())

    assert created.code == 0, created.err
    assert refused.code == 1
    assert recorder.calls() == [["docker", "container", "create", f"{signed.app}@{signed.two}"]]


def test_docker_run_refuses_an_unknown_option(host: Trustkit, signed: Signed, recorder: Recorder):
    result = host.process(
        "docker", "run", "--frobnicate", "x", f"{signed.app}:1.0", env=recorder.env()
    )

    assert result.code == 2
    assert "--frobnicate" in result.err
    assert_not_invoked(recorder)


def test_docker_help_says_what_trustkit_gates_before_dockers_own(
    host: Trustkit, recorder: Recorder
):
    result = host.process("docker", "--help", env=recorder.env())

    assert result.code == 0, result.err
    assert "trustkit docker: docker with every command that pulls or starts an image" in result.err
    assert recorder.calls() == [["docker", "--help"]]


def test_docker_run_help_passes_through(host: Trustkit, recorder: Recorder):
    result = host.process("docker", "run", "--help", env=recorder.env())

    assert result.code == 0, result.err
    assert recorder.calls() == [["docker", "run", "--help"]]


def test_docker_run_with_help_among_the_container_arguments_is_still_gated(
    host: Trustkit, signed: Signed, recorder: Recorder
):
    """``--help`` after the image belongs to the container's command, not to Docker."""
    result = host.process("docker", "run", f"{signed.app}:1.0", "ls", "--help", env=recorder.env())

    assert result.code == 0, result.err
    assert recorder.calls() == [["docker", "run", f"{signed.app}@{signed.one}", "ls", "--help"]]


def test_docker_run_with_help_as_an_option_value_does_not_skip_verification(
    host: Trustkit, signed: Signed, recorder: Recorder
):
    result = host.process("docker", "run", "-e", "--help", f"{signed.app}:9.9", env=recorder.env())

    assert result.code == 1
    assert "no signed tag 9.9" in result.err
    assert_not_invoked(recorder)


@pytest.mark.parametrize(
    "spelling",
    ["--mount", "--mount=", "--mount-upper"],
    ids=["option-value", "option-equals", "keys-in-upper-case"],
)
def test_an_image_mounted_into_a_container_is_verified_and_pinned(
    host: Trustkit, signed: Signed, recorder: Recorder, spelling: str
):
    """Docker 28 mounts an image's files (--mount type=image): gated as the image run."""
    value = f"type=image,source={signed.app}:1.0,target=/mnt"
    if spelling == "--mount-upper":
        value = f"Type=IMAGE,SRC={signed.app}:1.0,target=/mnt"
    args = ["--mount", value] if spelling != "--mount=" else [f"--mount={value}"]

    result = host.process("docker", "run", *args, f"{signed.tools}:1.0", env=recorder.env())
    unsigned = host.process(
        "docker", "run", "--mount", f"type=image,source={signed.app}:9.9,target=/mnt",
        f"{signed.tools}:1.0", env=recorder.env(),
    )  # fmt: skip

    assert result.code == 0, result.err
    [call] = recorder.calls()
    mounted = call[call.index("--mount") + 1] if "--mount" in call else call[2].split("=", 1)[1]
    assert f"{signed.app}@{signed.one}" in mounted and f"{signed.app}:1.0" not in mounted
    assert unsigned.code == 1
    assert "no signed tag 9.9" in unsigned.err
    assert len(recorder.calls()) == 1  # the unsigned one never reached docker


# --------------------------------------------------------------------------- build


def test_build_pins_every_base_image_and_only_those(
    host: Trustkit, signed: Signed, recorder: Recorder, tmp_path: Path
):
    context = tmp_path / "context"
    context.mkdir()
    dockerfile = textwrap.dedent(
        f"""\
        # syntax is not pinned; comments are kept: FROM {signed.app}:1.0
        ARG BASE={signed.app}:1.0
        FROM $BASE AS build
        RUN echo building \\
            && echo done
        FROM build
        FROM scratch
        FROM --platform=linux/amd64 {signed.tools}:1.0 AS tools
        FROM build AS final
        COPY --from=tools /content.txt /tools.txt
        """
    )
    (context / "Dockerfile").write_text(dockerfile)

    result = host.process(
        "docker", "build", "-t", "out:1", "--platform=linux/amd64", str(context),
        env=recorder.env(),
    )  # fmt: skip

    assert result.code == 0, result.err
    [record] = recorder.records()
    argv = record["argv"]
    assert argv[:3] == ["docker", "build", "--file"]
    assert argv[4:] == ["-t", "out:1", "--platform=linux/amd64", str(context)]
    written = Path(argv[3])
    assert written.name == "Dockerfile"
    assert written.parent != context
    assert not written.parent.exists()  # the temporary copy is removed after the build
    assert record["dockerfile"] == dockerfile.replace(
        "FROM $BASE AS build", f"FROM {signed.app}@{signed.one} AS build"
    ).replace(f"{signed.tools}:1.0 AS tools", f"{signed.tools}@{signed.three} AS tools")
    assert (context / "Dockerfile").read_text() == dockerfile  # the user's file is untouched


def test_build_uses_build_args_and_the_given_dockerfile(
    host: Trustkit, signed: Signed, recorder: Recorder, tmp_path: Path
):
    context = tmp_path / "context"
    context.mkdir()
    source = tmp_path / "Dockerfile.prod"
    source.write_text("ARG BASE\nFROM ${BASE} AS base\nFROM base\n")
    (tmp_path / "Dockerfile.prod.dockerignore").write_text("secret\n")

    result = host.process(
        "docker", "buildx", "build", "--build-arg", "BASE", "-qf", str(source), str(context),
        env=recorder.env(BASE=signed.app),
    )  # fmt: skip

    assert result.code == 0, result.err
    [record] = recorder.records()
    assert record["argv"][:3] == ["docker", "buildx", "build"]
    assert record["argv"][3] == "--file"
    assert Path(record["argv"][4]).name == "Dockerfile.prod"
    assert record["argv"][5:] == ["--build-arg", "BASE", "-q", str(context)]
    assert record["dockerfile"] == f"ARG BASE\nFROM {signed.app}@{signed.two} AS base\nFROM base\n"
    assert record["dockerignore"] == "secret\n"  # the Dockerfile's own ignore file goes along


def test_build_with_an_earlier_dockerfile_option_cannot_bypass_the_gate(
    host: Trustkit, signed: Signed, recorder: Recorder, tmp_path: Path
):
    (tmp_path / "unchecked").write_text(f"FROM {signed.app}:9.9\n")
    (tmp_path / "checked").write_text(f"FROM {signed.app}:1.0\n")

    result = host.process(
        "docker", "build", "-f", str(tmp_path / "unchecked"), "--file", str(tmp_path / "checked"),
        str(tmp_path), env=recorder.env(),
    )  # fmt: skip

    assert result.code == 0, result.err
    [record] = recorder.records()
    assert record["argv"][2] == "--file"
    assert record["argv"][4:] == [str(tmp_path)]  # no -f left to override the gate's
    assert record["dockerfile"] == f"FROM {signed.app}@{signed.one}\n"


def test_build_with_an_unsigned_base_image_is_refused(
    host: Trustkit, signed: Signed, recorder: Recorder, tmp_path: Path
):
    (tmp_path / "Dockerfile").write_text(
        f"FROM {signed.tools}:1.0 AS tools\nFROM {signed.app}:9.9\n"
    )

    result = host.process("docker", "build", str(tmp_path), env=recorder.env())

    assert result.code == 1
    assert "no signed tag 9.9" in result.err
    assert_not_invoked(recorder)


def test_build_with_an_unresolvable_from_is_refused(
    host: Trustkit, recorder: Recorder, tmp_path: Path
):
    (tmp_path / "Dockerfile").write_text("ARG BASE\nFROM $BASE\n")

    result = host.process("docker", "build", str(tmp_path), env=recorder.env())

    assert result.code == 2
    assert "$BASE has no value" in result.err
    assert_not_invoked(recorder)


def test_build_hands_the_builder_the_dockerfile_byte_for_byte(
    host: Trustkit, signed: Signed, recorder: Recorder, tmp_path: Path
):
    text = (
        f"\ufeffFROM {signed.app}:1.0 AS base\r\n"
        "RUN echo h\u00e9llo \\\r\n    && true\r\n"
        "COPY <<EOF /x\r\nFROM-ish text, not an instruction\r\nEOF\r\n"
        "FROM base\r\n"
    )
    (tmp_path / "Dockerfile").write_bytes(text.encode())

    result = host.process("docker", "build", str(tmp_path), env=recorder.env())

    assert result.code == 0, result.err
    [record] = recorder.records()
    expected = text.replace(f"{signed.app}:1.0", f"{signed.app}@{signed.one}")
    assert record["dockerfile"] == expected


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"FROM alpine:3\n\xff\xfe\n", "is not UTF-8 text"),
        (b"FROM\xc2\xa0evil:1\n", "line 1 of the Dockerfile has the blank U+00A0"),
        (b"FROM scratch\nRUN <<EOF\nFROM evil:1\nEOF\n", "cannot tell which image line 3"),
    ],
    ids=["not-utf8", "nbsp", "from-in-heredoc"],
)
def test_build_refuses_a_dockerfile_it_cannot_read_as_the_builder_does(
    host: Trustkit, recorder: Recorder, tmp_path: Path, content: bytes, message: str
):
    (tmp_path / "Dockerfile").write_bytes(content)

    result = host.process(
        "--server", "http://127.0.0.1:9", "docker", "build", str(tmp_path), env=recorder.env()
    )

    assert result.code == 2, result.err
    assert message in result.err
    assert "Traceback" not in result.err
    assert_not_invoked(recorder)


def test_build_leaves_no_temporary_directory_when_it_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from client import gate as gate_module
    from client.policy import HostPolicy

    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "Dockerfile.dockerignore").write_text("x\n")
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(gate_module.tempfile, "tempdir", str(temporary))

    def fail(*_: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(gate_module.shutil, "copyfile", fail)
    gate = gate_module.Gate(verify=lambda gun, tags: None, policy=HostPolicy.from_document({}, "t"))  # type: ignore[arg-type, return-value]
    tool = gate_module.Tool("docker", "docker")

    with pytest.raises(gate_module.UsageError, match="No space left on device"):
        gate_module.build_command(gate, tool, [str(tmp_path)], head=["build"], env={})

    assert list(temporary.iterdir()) == []


# --------------------------------------------------------------------------- docker CLI holes


@pytest.mark.parametrize(
    "before",
    [("--version",), ("-v",), ("--help",), ("-h", "--context", "ctx")],
    ids=["version", "v", "help", "h-then-more"],
)
def test_docker_version_or_help_before_the_command_does_not_skip_the_gate(
    host: Trustkit, signed: Signed, recorder: Recorder, before: tuple[str, ...]
):
    result = host.process("docker", *before, "run", f"{signed.app}:9.9", env=recorder.env())

    assert result.code == 1
    assert "no signed tag 9.9" in result.err
    assert_not_invoked(recorder)


def test_docker_version_alone_passes_through(host: Trustkit, recorder: Recorder):
    result = host.process("docker", "--version", env=recorder.env())

    assert result.code == 0, result.err
    assert recorder.calls() == [["docker", "--version"]]


def test_docker_short_flags_with_values_are_read_as_docker_reads_them(
    host: Trustkit, signed: Signed, recorder: Recorder
):
    result = host.process(
        "docker", "run", "-d=true", "-t=false", "-e=", f"{signed.app}:9.9", f"{signed.app}:1.0",
        env=recorder.env(),
    )  # fmt: skip

    assert result.code == 1  # -e's value is "=": the image is the unsigned 9.9
    assert "no signed tag 9.9" in result.err
    assert_not_invoked(recorder)


@pytest.mark.parametrize(
    "args",
    [
        ("buildx", "--builder", "bk", "build"),
        ("buildx", "-D", "b"),
        ("buildx", "b"),
        ("builder", "b"),
        ("builder", "--builder", "bk", "build"),
        ("image", "build"),
    ],
    ids=["builder-option", "debug-alias", "alias", "builder-alias", "builder-build", "image"],
)
def test_docker_buildx_build_forms_are_gated(
    host: Trustkit, signed: Signed, recorder: Recorder, tmp_path: Path, args: tuple[str, ...]
):
    (tmp_path / "Dockerfile").write_text(f"FROM {signed.app}:9.9\n")

    result = host.process("docker", *args, str(tmp_path), env=recorder.env())

    assert result.code == 1
    assert "no signed tag 9.9" in result.err
    assert_not_invoked(recorder)


@pytest.mark.parametrize(
    "args",
    [
        ("compose", "build"),
        ("compose", "-f", "c.yml", "-p", "x", "watch"),
        ("service", "create", "img:1"),
        ("stack", "deploy", "-c", "s.yml", "s"),
        ("buildx", "bake"),
        ("plugin", "install", "vieux/sshfs"),
    ],
    ids=["compose-build", "compose-options-watch", "service", "stack", "bake", "plugin"],
)
def test_docker_commands_that_pull_unverifiable_images_are_refused(
    host: Trustkit, recorder: Recorder, args: tuple[str, ...]
):
    result = host.process("docker", *args, env=recorder.env())

    assert result.code == 2
    assert "trustkit cannot verify the images" in result.err
    assert "trustkit resolve" in result.err or "trustkit docker build" in result.err
    assert_not_invoked(recorder)


@pytest.mark.parametrize(
    "args",
    [
        ("bake",),
        ("bake", "-f", "docker-bake.hcl", "app"),
        ("builder", "bake"),
        ("buildx", "f"),
        ("builder", "--builder", "bk", "bake", "t"),
        ("-c", "ctx", "bake"),
    ],
    ids=["bake", "bake-file", "builder-bake", "buildx-f", "builder-option-bake", "global-option"],
)
def test_every_spelling_of_docker_bake_is_refused(
    host: Trustkit, recorder: Recorder, args: tuple[str, ...]
):
    result = host.process("docker", *args, env=recorder.env())

    assert result.code == 2, result.err
    assert "trustkit cannot verify the images" in result.err
    assert "trustkit docker build" in result.err
    assert_not_invoked(recorder)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("frobnicate", "x"), "frobnicate"),
        (("container", "frobnicate"), "container frobnicate"),
        (("image", "frobnicate"), "image frobnicate"),
        (("compose", "frobnicate"), "compose frobnicate"),
        (("buildx", "frobnicate"), "buildx frobnicate"),
    ],
)
def test_docker_commands_trustkit_does_not_know_are_refused(
    host: Trustkit, recorder: Recorder, args: tuple[str, ...], words: str
):
    result = host.process("docker", *args, env=recorder.env())

    assert result.code == 2, result.err
    assert f"trustkit does not know the docker command '{words}'" in result.err
    assert_not_invoked(recorder)


@pytest.mark.parametrize(
    "args",
    [
        ("debug", "nginx"),
        ("ai", "run", "something"),
        ("model", "run", "ai/smollm2"),
        ("model", "pull", "ai/smollm2"),
        ("model", "install-runner"),
        ("service", "rollback", "web"),
        ("compose", "bridge", "convert"),
        ("compose", "alpha", "watch"),
        ("extension", "install", "vendor/ext"),
        ("mcp", "gateway", "run"),
        ("buildx", "debug", "build", "."),
    ],
)
def test_docker_commands_that_start_images_of_their_own_are_refused(
    host: Trustkit, recorder: Recorder, args: tuple[str, ...]
):
    result = host.process("docker", *args, env=recorder.env())

    assert result.code == 2, result.err
    assert "trustkit cannot verify the images" in result.err
    assert_not_invoked(recorder)


def test_docker_commands_that_start_no_image_pass_through(host: Trustkit, recorder: Recorder):
    commands = [
        ["ps", "-a"], ["container", "ls"], ["container", "list"], ["image", "ls"],
        ["images"], ["network", "create", "n"], ["volume", "rm", "v"], ["context", "use", "c"],
        ["manifest", "inspect", "x"], ["system", "df"], ["buildx", "ls"], ["builder", "prune"],
        ["exec", "-it", "c", "sh"], ["start", "c"], ["push", "x"], ["tag", "a", "b"],
        ["save", "-o", "x.tar", "x"], ["login", "r.example.com"], ["scout", "cves", "x"],
        ["service", "ls"], ["stack", "rm", "s"], ["plugin", "ls"], ["swarm", "init"],
        ["trust", "inspect", "x"], ["secret", "ls"], ["config", "ls"], ["node", "ls"],
        ["checkpoint", "ls", "c"], ["model", "ls"], ["image"], ["compose", "down"],
    ]  # fmt: skip
    for args in commands:
        result = host.process("docker", *args, env=recorder.env())
        assert result.code == 0, (args, result.err)

    assert recorder.calls() == [["docker", *args] for args in commands]


def test_build_context_images_are_verified_and_pinned(
    host: Trustkit, signed: Signed, recorder: Recorder, tmp_path: Path
):
    (tmp_path / "Dockerfile").write_text(f"FROM {signed.tools}:1.0\nCOPY --from=base / /\n")

    result = host.process(
        "docker", "buildx", "build", "--build-context", f"base=docker-image://{signed.app}:1.0",
        "--build-context=src=./src", str(tmp_path), env=recorder.env(),
    )  # fmt: skip

    assert result.code == 0, result.err
    [record] = recorder.records()
    assert record["argv"][5:] == [
        f"--build-context=base=docker-image://{signed.app}@{signed.one}",
        "--build-context=src=./src",
        str(tmp_path),
    ]


def test_an_unsigned_build_context_image_is_refused(
    host: Trustkit, signed: Signed, recorder: Recorder, tmp_path: Path
):
    (tmp_path / "Dockerfile").write_text(f"FROM {signed.tools}:1.0\n")

    result = host.process(
        "docker", "build", f"--build-context=alpine=docker-image://{signed.app}:9.9",
        str(tmp_path), env=recorder.env(),
    )  # fmt: skip

    assert result.code == 1
    assert "no signed tag 9.9" in result.err
    assert_not_invoked(recorder)


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        (("--cache-from", "IMAGE"), "imports build cache from a registry"),
        (("--cache-from=type=registry,ref=IMAGE",), "imports build cache from a registry"),
        (("--sbom=true",), "SBOM attestation runs a scanner image"),
        (("--attest", "type=sbom,generator=IMAGE"), "SBOM attestation runs a scanner image"),
        (("--build-arg", "BUILDKIT_SYNTAX=IMAGE"), "BUILDKIT_SYNTAX names a Dockerfile frontend"),
    ],
    ids=["cache-from", "cache-from-registry", "sbom", "attest-sbom", "buildkit-syntax"],
)
@pytest.mark.parametrize("build", [("build",), ("buildx", "build")], ids=["build", "buildx"])
def test_build_options_that_pull_unpinned_images_are_refused(
    host: Trustkit,
    signed: Signed,
    recorder: Recorder,
    tmp_path: Path,
    build: tuple[str, ...],
    options: tuple[str, ...],
    reason: str,
):
    (tmp_path / "Dockerfile").write_text(f"FROM {signed.tools}:1.0\n")
    written = [option.replace("IMAGE", f"{signed.app}:1.0") for option in options]

    result = host.process("docker", *build, *written, str(tmp_path), env=recorder.env())

    assert result.code == 2, result.err
    assert reason in result.err
    assert_not_invoked(recorder)


def test_a_local_build_cache_is_kept(
    host: Trustkit, signed: Signed, recorder: Recorder, tmp_path: Path
):
    (tmp_path / "Dockerfile").write_text(f"FROM {signed.tools}:1.0\n")

    result = host.process(
        "docker", "buildx", "build", "--cache-from", "type=local,src=/tmp/cache", str(tmp_path),
        env=recorder.env(),
    )  # fmt: skip

    assert result.code == 0, result.err
    assert recorder.calls()[0][5:] == ["--cache-from", "type=local,src=/tmp/cache", str(tmp_path)]


def test_build_pins_the_dockerfile_frontend(
    host: Trustkit, signed: Signed, recorder: Recorder, tmp_path: Path
):
    """The frontend named by # syntax= reads the rest of the file: it is an image that
    runs inside the build, and is verified like a base image."""
    dockerfile = f"# syntax={signed.app}:1.0\nFROM {signed.tools}:1.0\n"
    (tmp_path / "Dockerfile").write_text(dockerfile)

    result = host.process("docker", "build", str(tmp_path), env=recorder.env())

    assert result.code == 0, result.err
    assert recorder.records()[0]["dockerfile"] == (
        f"# syntax={signed.app}@{signed.one}\nFROM {signed.tools}@{signed.three}\n"
    )


@pytest.mark.parametrize(
    "dockerfile",
    [
        "# syntax=APP:9.9\nFROM TOOLS:1.0\n",
        "#!/usr/bin/env buildctl\n#syntax = APP:9.9 --some-arg\nFROM TOOLS:1.0\n",
    ],
    ids=["syntax", "after-shebang"],
)
def test_build_with_an_unsigned_frontend_is_refused(
    host: Trustkit, signed: Signed, recorder: Recorder, tmp_path: Path, dockerfile: str
):
    text = dockerfile.replace("APP", signed.app).replace("TOOLS", signed.tools)
    (tmp_path / "Dockerfile").write_text(text)

    result = host.process("docker", "build", str(tmp_path), env=recorder.env())

    assert result.code == 1, result.err
    assert "no signed tag 9.9" in result.err
    assert_not_invoked(recorder)


@pytest.mark.parametrize(
    ("dockerfile", "reason"),
    [
        ("//syntax=APP:1.0\nFROM TOOLS:1.0\n", "in a // or JSON directive"),
        ('{"syntax": "APP:1.0"}\n', "in a // or JSON directive"),
        ("FROM TOOLS:1.0\nCOPY --from=APP:1.0 /a /a\n", "not an earlier build stage"),
        ("FROM TOOLS:1.0\nRUN --mount=type=bind,from=APP:1.0,target=/x true\n", "earlier"),
        ("FROM TOOLS:1.0 AS t\nCOPY --from=later /a /a\nFROM TOOLS:1.0 AS later\n", "earlier"),
    ],
    ids=["c-style-syntax", "json-syntax", "copy-from-image", "mount-from-image", "later-stage"],
)
def test_build_with_images_outside_from_lines_is_refused(
    host: Trustkit, signed: Signed, recorder: Recorder, tmp_path: Path, dockerfile: str, reason: str
):
    text = dockerfile.replace("APP", signed.app).replace("TOOLS", signed.tools)
    (tmp_path / "Dockerfile").write_text(text)

    result = host.process("docker", "build", str(tmp_path), env=recorder.env())

    assert result.code == 2, result.err
    assert reason in result.err
    assert_not_invoked(recorder)


def test_copy_from_an_earlier_stage_is_kept(
    host: Trustkit, signed: Signed, recorder: Recorder, tmp_path: Path
):
    text = (
        f"FROM {signed.tools}:1.0 AS tools\nFROM {signed.app}:1.0\n"
        "COPY --from=tools /a /a\nCOPY --from=0 /b /b\nRUN --mount=from=tools,target=/t true\n"
    )
    (tmp_path / "Dockerfile").write_text(text)

    result = host.process("docker", "build", str(tmp_path), env=recorder.env())

    assert result.code == 0, result.err


@pytest.mark.parametrize("family", [("buildx",), ("builder",)])
def test_buildx_create_pins_the_buildkit_image(
    host: Trustkit, signed: Signed, recorder: Recorder, family: tuple[str, ...]
):
    result = host.process(
        "docker", *family, "create", "--name", "bk", "--driver", "docker-container",
        "--driver-opt", f"network=host,image={signed.app}:1.0", "--use", env=recorder.env(),
    )  # fmt: skip

    assert result.code == 0, result.err
    assert recorder.calls() == [
        [
            "docker", *family, "create", "--name", "bk", "--driver", "docker-container",
            f"--driver-opt=network=host,image={signed.app}@{signed.one}", "--use",
        ]
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "code", "reason"),
    [
        (("--name", "bk"), 2, "buildx would start its default one unverified"),
        (("--driver", "kubernetes"), 2, "buildx would start its default one unverified"),
        (("--driver-opt=image=APP:9.9",), 1, "no signed tag 9.9"),
        (("--driver", "frob", "--driver-opt=image=APP:1.0"), 2, "does not know the buildx driver"),
    ],
    ids=["default-image", "kubernetes-default", "unsigned-image", "unknown-driver"],
)
def test_buildx_create_that_would_start_an_unverified_image_is_refused(
    host: Trustkit,
    signed: Signed,
    recorder: Recorder,
    args: tuple[str, ...],
    code: int,
    reason: str,
):
    written = [arg.replace("APP", signed.app) for arg in args]

    result = host.process("docker", "buildx", "create", *written, env=recorder.env())

    assert result.code == code, result.err
    assert reason in result.err
    assert_not_invoked(recorder)


def test_buildx_create_of_a_remote_builder_starts_no_image(host: Trustkit, recorder: Recorder):
    args = ["buildx", "create", "--name", "r", "--driver", "remote", "tcp://buildkitd:1234"]

    result = host.process("docker", *args, env=recorder.env())

    assert result.code == 0, result.err
    assert recorder.calls() == [["docker", *args]]


def test_docker_compose_commands_that_pull_nothing_pass_through(host: Trustkit, recorder: Recorder):
    for args in (("compose", "ps"), ("compose", "-f", "c.yml", "down"), ("compose", "logs")):
        assert host.process("docker", *args, env=recorder.env()).code == 0
    assert recorder.calls() == [
        ["docker", "compose", "ps"],
        ["docker", "compose", "-f", "c.yml", "down"],
        ["docker", "compose", "logs"],
    ]


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "command",
    [("pull",), ("run", "--rm"), ("create",), ("docker", "run", "-d")],
    ids=["pull", "run", "create", "docker-run"],
)
def test_unsigned_tag_is_refused_and_docker_never_runs(
    host: Trustkit, signed: Signed, recorder: Recorder, command: tuple[str, ...]
):
    result = host.process(*command, f"{signed.app}:9.9", env=recorder.env())

    assert result.code == 1
    assert f"no signed tag 9.9 in {signed.app}" in result.err
    assert_not_invoked(recorder)


def test_unknown_repository_is_refused(
    host: Trustkit, registry: RegistryProcess, recorder: Recorder
):
    result = host.process(
        "run", f"{registry.host}/docker-gate/never-signed:1.0", env=recorder.env()
    )

    assert result.code == 1
    assert "is not signed" in result.err
    assert_not_invoked(recorder)


def _tamper_with_tag_1_0(proxy: TamperingProxy) -> None:
    def repoint(path: str, status: int, body: bytes) -> tuple[int, bytes]:
        if role_of(path) != "targets" or status != 200:
            return status, body
        return status, edit_json(
            body, lambda d: d["signed"]["targets"]["1.0"]["hashes"].update(sha256="e" * 64)
        )

    proxy.rewrite = repoint


def test_tampered_metadata_is_refused(
    signed: Signed, proxy: TamperingProxy, recorder: Recorder, tmp_path: Path
):
    _tamper_with_tag_1_0(proxy)
    host = Trustkit(tmp_path / "via-proxy" / ".trustkit", proxy.url)

    result = host.process("pull", f"{signed.app}:1.0", env=recorder.env())

    assert result.code == 1
    assert "does not match what was signed" in result.err or "bad signatures" in result.err
    assert any(role_of(path) == "targets" for path in proxy.requests)  # it was served
    assert_not_invoked(recorder)


def test_unreachable_server_is_exit_3_and_docker_never_runs(
    host: Trustkit, signed: Signed, recorder: Recorder
):
    result = host.process(
        "run", "--server", "http://127.0.0.1:9", f"{signed.app}:1.0", env=recorder.env()
    )

    assert result.code == 3
    assert_not_invoked(recorder)


# --------------------------------------------------------------------------- moved tags


def test_tag_moved_in_the_registry_still_pulls_and_runs_the_signed_digest(
    publisher: Trustkit,
    host: Trustkit,
    registry: RegistryProcess,
    own_gun: str,
    recorder: Recorder,
    tmp_path: Path,
):
    repository = own_gun.split("/", 1)[1]
    signed_image = build_image(tmp_path / "signed", "1.0", b"the signed one")
    push(signed_image, registry, repository)
    assert publisher("init", own_gun).code == 0
    assert publisher("sign", f"{own_gun}:1.0").code == 0
    moved = build_image(tmp_path / "moved", "1.0", b"pushed after signing")
    push(moved, registry, repository)
    assert registry_digest(registry, repository, "1.0") == moved.digest

    pulled = host.process("pull", f"{own_gun}:1.0", env=recorder.env())
    ran = host.process("run", "--rm", f"{own_gun}:1.0", env=recorder.env())

    assert (pulled.code, ran.code) == (0, 0), pulled.err + ran.err
    pinned = f"{own_gun}@{signed_image.digest}"
    assert recorder.calls() == [
        ["docker", "pull", pinned],
        ["docker", "tag", pinned, f"{own_gun}:1.0"],
        ["docker", "run", "--rm", pinned],
    ]


# --------------------------------------------------------------------------- skopeo


def _oci_tag_digest(layout: Path, tag: str) -> str:
    index = json.loads((layout / "index.json").read_text())
    [entry] = [
        m
        for m in index["manifests"]
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag
    ]
    return str(entry["digest"])


def test_via_skopeo_copies_the_signed_digest_even_after_the_tag_moved(
    publisher: Trustkit, host: Trustkit, registry: RegistryProcess, own_gun: str, tmp_path: Path
):
    repository = own_gun.split("/", 1)[1]
    signed_image = build_image(tmp_path / "signed", "1.0", b"signed for skopeo")
    push(signed_image, registry, repository)
    assert publisher("init", own_gun).code == 0
    assert publisher("sign", f"{own_gun}:1.0").code == 0

    before = host.process(
        "pull", "--via", "skopeo", "--dest", f"oci:{tmp_path / 'before'}:1.0", f"{own_gun}:1.0"
    )
    assert before.code == 0, before.err
    assert _oci_tag_digest(tmp_path / "before", "1.0") == signed_image.digest

    moved = build_image(tmp_path / "moved", "1.0", b"moved after signing")
    push(moved, registry, repository)
    assert registry_digest(registry, repository, "1.0") == moved.digest
    after = host.process(
        "pull", "--via", "skopeo", "--dest", f"oci:{tmp_path / 'after'}:1.0", f"{own_gun}:1.0"
    )

    assert after.code == 0, after.err
    assert _oci_tag_digest(tmp_path / "after", "1.0") == signed_image.digest
    manifest = tmp_path / "after" / "blobs" / "sha256" / signed_image.digest.split(":")[1]
    assert manifest.exists()


def test_via_skopeo_an_unsigned_tag_copies_nothing(host: Trustkit, signed: Signed, tmp_path: Path):
    result = host.process(
        "pull", "--via", "skopeo", "--dest", f"oci:{tmp_path / 'out'}:9.9", f"{signed.app}:9.9"
    )

    assert result.code == 1
    assert not (tmp_path / "out").exists()


def test_via_skopeo_platform_picks_the_platform_and_quiet_is_kept(
    publisher: Trustkit, host: Trustkit, registry: RegistryProcess, own_gun: str, tmp_path: Path
):
    repository = own_gun.split("/", 1)[1]
    image = build_image(
        tmp_path / "multi",
        "1.0",
        b"two platforms",
        platforms=[("linux", "amd64"), ("linux", "arm64")],
    )
    push(image, registry, repository)
    assert publisher("init", own_gun).code == 0
    assert publisher("sign", f"{own_gun}:1.0").code == 0

    result = host.process(
        "pull", "--via", "skopeo", "--dest", f"oci:{tmp_path / 'out'}:1.0",
        "--platform", "linux/arm64", "-q", f"{own_gun}:1.0",
    )  # fmt: skip

    assert result.code == 0, result.err
    assert _oci_tag_digest(tmp_path / "out", "1.0") == image.platform_digests["linux/arm64"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--disable-content-trust",), "--disable-content-trust has no skopeo counterpart"),
        (("--platform", "linux"), "--platform linux is not OS/ARCH"),
        (("--platform=linux/arm64/v8/x",), "is not OS/ARCH or OS/ARCH/VARIANT"),
    ],
    ids=["no-counterpart", "os-only", "too-long"],
)
def test_via_skopeo_refuses_pull_options_it_cannot_map(
    host: Trustkit, signed: Signed, tmp_path: Path, options: tuple[str, ...], message: str
):
    result = host.process(
        "pull", "--server", "http://127.0.0.1:9", "--via", "skopeo",
        "--dest", f"oci:{tmp_path / 'out'}:1.0", *options, f"{signed.app}:1.0",
    )  # fmt: skip

    assert result.code == 2, result.err
    assert message in result.err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--dest", "oci:/tmp/x:1"), "--dest is for --via skopeo"),
        (("--via", "skopeo"), "pulling a digest with skopeo needs --dest"),
    ],
    ids=["dest-without-skopeo", "skopeo-digest-without-dest"],
)
def test_pull_usage_errors_come_before_any_server_is_asked(
    host: Trustkit, signed: Signed, recorder: Recorder, args: tuple[str, ...], message: str
):
    result = host.process(
        "pull", "--server", "http://127.0.0.1:9", *args, f"{signed.app}@{signed.one}",
        env=recorder.env(),
    )  # fmt: skip

    assert result.code == 2, result.err
    assert message in result.err
    assert_not_invoked(recorder)


# --------------------------------------------------------------------------- host policy


@pytest.fixture
def unsigned_ok(tmp_path: Path, registry: RegistryProcess) -> Iterator[Path]:
    yield write_policy(
        tmp_path / "policy.toml",
        f"""\
        default = "signed"

        [[rule]]
        repositories = ["{registry.host}/docker-gate/**"]
        trust = "unsigned-ok"
        """,
    )


def test_unsigned_ok_lets_an_unsigned_repository_through_untouched(
    host: Trustkit, registry: RegistryProcess, recorder: Recorder, unsigned_ok: Path
):
    image = f"{registry.host}/docker-gate/not-signed:1.0"

    ran = host.process("run", "--policy", str(unsigned_ok), "--rm", image, env=recorder.env())
    pulled = host.process("pull", image, env=recorder.env(TRUSTKIT_POLICY=str(unsigned_ok)))

    assert (ran.code, pulled.code) == (0, 0), ran.err + pulled.err
    assert recorder.calls() == [["docker", "run", "--rm", image], ["docker", "pull", image]]
    assert f"{image} runs unverified" in ran.err
    assert str(unsigned_ok) in ran.err


def test_signed_default_policy_refuses_an_unsigned_repository(
    host: Trustkit, registry: RegistryProcess, recorder: Recorder, tmp_path: Path
):
    image = f"{registry.host}/docker-gate/not-signed:1.0"
    strict = write_policy(tmp_path / "strict.toml", 'default = "signed"\n')

    built_in = host.process("run", image, env=recorder.env())
    from_file = host.process("run", "--policy", str(strict), image, env=recorder.env())

    assert (built_in.code, from_file.code) == (1, 1)
    assert "is not signed" in built_in.err
    assert_not_invoked(recorder)


def test_unsigned_ok_does_not_let_an_unsigned_tag_of_a_signed_repository_through(
    host: Trustkit, signed: Signed, recorder: Recorder, unsigned_ok: Path
):
    """unsigned-ok is for repositories with no trust data: in a signed repository a tag
    that is not signed (never signed, or revoked) is refused like anywhere else."""
    unsigned = host.process(
        "run", "--policy", str(unsigned_ok), f"{signed.app}:9.9", env=recorder.env()
    )
    by_digest = host.process(
        "run", "--policy", str(unsigned_ok), f"{signed.app}@{signed.three}", env=recorder.env()
    )
    pinned = host.process(
        "run", "--policy", str(unsigned_ok), f"{signed.app}:1.0", env=recorder.env()
    )

    assert (unsigned.code, by_digest.code, pinned.code) == (1, 1, 0), pinned.err
    assert f"no signed tag 9.9 in {signed.app}" in unsigned.err
    assert f"{signed.three} is not signed under any tag" in by_digest.err
    assert recorder.calls() == [["docker", "run", f"{signed.app}@{signed.one}"]]
    assert "runs unverified" not in unsigned.err + by_digest.err + pinned.err


def test_unsigned_ok_still_refuses_tampered_metadata(
    signed: Signed, proxy: TamperingProxy, recorder: Recorder, unsigned_ok: Path, tmp_path: Path
):
    _tamper_with_tag_1_0(proxy)
    host = Trustkit(tmp_path / "via-proxy" / ".trustkit", proxy.url)

    result = host.process(
        "run", "--policy", str(unsigned_ok), f"{signed.app}:1.0", env=recorder.env()
    )

    assert result.code == 1
    assert "runs unverified" not in result.err
    assert_not_invoked(recorder)


def test_unsigned_ok_lets_images_through_when_the_server_is_unreachable(
    host: Trustkit, signed: Signed, recorder: Recorder, unsigned_ok: Path
):
    """As documented: unsigned-ok also covers a trust server that cannot be reached."""
    result = host.process(
        "run", "--server", "http://127.0.0.1:9", "--policy", str(unsigned_ok),
        f"{signed.app}:1.0", env=recorder.env(),
    )  # fmt: skip

    assert result.code == 0, result.err
    assert recorder.calls() == [["docker", "run", f"{signed.app}:1.0"]]
    assert "runs unverified" in result.err


def test_unsigned_ok_fails_closed_when_a_repository_this_host_trusts_is_unreachable(
    host: Trustkit, signed: Signed, recorder: Recorder, unsigned_ok: Path
):
    """Blocking the trust server must not switch verification off for a repository the
    host already knows is signed."""
    assert host.process("verify", "--offline", f"{signed.app}:1.0").code == 0

    result = host.process(
        "run", "--server", "http://127.0.0.1:9", "--policy", str(unsigned_ok),
        f"{signed.app}:1.0", env=recorder.env(),
    )  # fmt: skip

    assert result.code == 3, result.err
    assert "runs unverified" not in result.err
    assert_not_invoked(recorder)


def _signers_policy(path: Path, repository: str, signer: str, rest: str = "") -> Path:
    """A host policy whose rule for ``repository`` accepts only ``signer``'s tags."""
    rule = f'[[rule]]\nrepositories = ["{repository}"]\nsigners = ["{signer}"]\n'
    return write_policy(path, rule + rest)


def test_policy_signers_refuse_a_tag_signed_by_another_role(
    host: Trustkit, signed: Signed, recorder: Recorder, tmp_path: Path
):
    releases = _signers_policy(
        tmp_path / "releases.toml",
        signed.app,
        "targets/releases",
        '\n[[rule]]\nrepositories = ["**"]\ntrust = "unsigned-ok"\n',
    )
    targets = _signers_policy(tmp_path / "targets.toml", signed.app, "targets")

    refused = host.process(
        "run", "--policy", str(releases), f"{signed.app}:1.0", env=recorder.env()
    )
    assert refused.code == 1
    assert f"{signed.app}:1.0 is signed by 'targets'" in refused.err
    assert "accepts only targets/releases" in refused.err
    assert_not_invoked(recorder)

    allowed = host.process("run", "--policy", str(targets), f"{signed.app}:1.0", env=recorder.env())
    assert allowed.code == 0, allowed.err
    assert recorder.calls() == [["docker", "run", f"{signed.app}@{signed.one}"]]


@pytest.mark.parametrize(
    "command",
    [("resolve",), ("verify", "--offline"), ("pull",), ("run",), ("docker", "create")],
    ids=["resolve", "verify", "pull", "run", "docker-create"],
)
def test_every_command_refuses_a_tag_the_policy_signers_rule_refuses(
    host: Trustkit, signed: Signed, recorder: Recorder, tmp_path: Path, command: tuple[str, ...]
):
    """verify and resolve decide through the gate's one function: a resolved
    IMAGE@sha256:… written into a compose file obeys the same policy as trustkit pull."""
    releases = _signers_policy(tmp_path / "releases.toml", signed.app, "targets/releases")

    refused = host.process(
        *command, f"{signed.app}:1.0", env=recorder.env(TRUSTKIT_POLICY=str(releases))
    )

    assert refused.code == 1, refused.err
    assert f"{signed.app}:1.0 is signed by 'targets'" in refused.err
    assert "accepts only targets/releases" in refused.err
    assert refused.out == ""
    assert_not_invoked(recorder)


def test_resolve_and_verify_follow_the_policy_given_on_the_command_line(
    host: Trustkit, signed: Signed, tmp_path: Path
):
    releases = _signers_policy(tmp_path / "releases.toml", signed.app, "targets/releases")
    targets = write_policy(
        tmp_path / "targets.toml",
        f'[[rule]]\nrepositories = ["{signed.app}"]\nsigners = ["targets"]\n',
    )

    refused = host.process("resolve", "--policy", str(releases), f"{signed.app}:1.0")
    resolved = host.process("resolve", "--policy", str(targets), f"{signed.app}:1.0")
    verified = host.process("verify", "--offline", "--policy", str(targets), f"{signed.app}:1.0")

    assert refused.code == 1
    assert (resolved.code, verified.code) == (0, 0), resolved.err + verified.err
    assert resolved.out.strip() == f"{signed.app}@{signed.one}"
    assert verified.out.strip() == signed.one


def test_verify_refuses_an_unsigned_repository_the_policy_lets_run(
    host: Trustkit, registry: RegistryProcess, recorder: Recorder, unsigned_ok: Path
):
    """resolve answers as pull would (the unpinned name); verify says it is not signed."""
    image = f"{registry.host}/docker-gate/not-signed:1.0"

    resolved = host.process("resolve", "--policy", str(unsigned_ok), image)
    verified = host.process("verify", "--offline", "--policy", str(unsigned_ok), image)

    assert resolved.code == 0, resolved.err
    assert resolved.out.strip() == image
    assert "runs unverified" in resolved.err
    assert verified.code == 1
    assert "is not signed" in verified.err
    assert "runs unverified" not in verified.err


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('defualt = "unsigned-ok"\n', "unknown key(s) defualt"),
        (
            '[[rule]]\nrepositories = ["127.0.0.1/**"]\ntrust = "maybe"\n',
            "rule 1: trust 'maybe' is not one of signed, unsigned-ok",
        ),
        ('default = "unsigned-ok\n', "is not valid TOML"),
    ],
    ids=["unknown-key", "bad-trust", "bad-toml"],
)
def test_invalid_policy_is_a_usage_error_and_docker_never_runs(
    host: Trustkit, signed: Signed, recorder: Recorder, tmp_path: Path, text: str, reason: str
):
    policy = write_policy(tmp_path / "policy.toml", text)

    result = host.process("run", "--policy", str(policy), f"{signed.app}:1.0", env=recorder.env())

    assert result.code == 2
    assert f"trustkit: the policy {policy} is not valid" in result.err
    assert reason in result.err
    assert "Traceback" not in result.err
    assert_not_invoked(recorder)


@pytest.mark.parametrize(
    "mount",
    [
        "type=bind,type=image,source={image},target=/mnt",  # Docker takes the last type
        "type=\u0130mage,source={image},target=/mnt",  # Go lowercases İ to i
    ],
    ids=["type-twice", "dotted-capital-i"],
)
def test_image_mounts_cannot_hide_behind_another_spelling(
    host: Trustkit, signed: Signed, recorder: Recorder, mount: str
):
    result = host.process(
        "docker", "run", "--mount", mount.format(image=f"{signed.app}:9.9"),
        f"{signed.tools}:1.0", env=recorder.env(),
    )  # fmt: skip

    assert result.code in (1, 2), result.err
    assert_not_invoked(recorder)


@pytest.mark.parametrize("image", ["e49ceb9f", "e49ceb9f0a1", "sha256:e49ceb9f"])
def test_a_run_by_something_docker_may_take_for_an_image_id_is_refused(
    host: Trustkit, recorder: Recorder, tmp_path: Path, image: str
):
    policy = tmp_path / "policy.toml"
    policy.write_text('default = "unsigned-ok"\n')

    result = host.process("run", "--policy", str(policy), image, env=recorder.env())

    assert result.code == 2, result.err
    assert "may name a local image by its ID" in result.err
    assert_not_invoked(recorder)


def test_an_image_mount_cannot_hide_behind_another_options_value(
    host: Trustkit, signed: Signed, recorder: Recorder
):
    """Docker gives --label the word "--mount" as its value; the next --mount is real."""
    result = host.process(
        "docker", "run", "--label", "--mount", "--mount",
        f"type=image,source={signed.app}:9.9,target=/mnt", f"{signed.tools}:1.0",
        env=recorder.env(),
    )  # fmt: skip

    assert result.code == 1, result.err
    assert "no signed tag 9.9" in result.err
    assert_not_invoked(recorder)
