"""The pure parts of the Docker gate: Docker's command-line grammar, Dockerfile FROM
lines, and the host policy. No server, no registry, no processes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from client.docker_cli import (
    DockerCommand,
    find_image,
    parse_build,
    parse_docker_command,
    parse_pull,
)
from client.dockerfile import base_images, pin_base_images
from client.policy import SIGNED, UNSIGNED_OK, HostPolicy
from trustkit.errors import UsageError

# --------------------------------------------------------------------------- docker run

RUN_MIX = [
    *("-it", "--rm", "-e", "A=1", "-p", "8080:80", "--name", "x", "-v", "/a:/b"),
    *("--network=host", "img", "sh", "-c", "echo hi"),
]


@pytest.mark.parametrize(
    ("args", "index"),
    [
        (["alpine"], 0),
        (["alpine", "--rm", "-it"], 0),  # after the image: the container's command
        (RUN_MIX, 11),
        (["-p8080:80", "img"], 1),
        (["-itp", "80:80", "img"], 2),
        (["-itp80:80", "img"], 1),
        (["-e=A=1", "img"], 1),
        (["-dit", "img"], 1),
        (["-h", "myhost", "img"], 2),  # -h is --hostname for run, not help
        (["--rm", "--", "img", "--rm"], 2),
        (["--", "img"], 1),
        (["--frobnicate=x", "img"], 1),  # --opt=value is never ambiguous
        (["--rm=false", "--detach=true", "img"], 2),
        (["--entrypoint", "", "img"], 2),
        (["--net", "host", "--pull", "always", "img"], 4),
    ],
)
def test_find_image(args: list[str], index: int):
    assert find_image(args) == index


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--frobnicate", "x", "img"], "--frobnicate"),
        (["-Z", "img"], "-Z"),
        (["-iZ", "img"], "-Z"),
        (["--pod", "p1", "img"], "--pod"),  # podman's, not docker's
    ],
)
def test_find_image_refuses_unknown_options(args: list[str], option: str):
    with pytest.raises(UsageError, match=f"does not know the option {option} of 'docker run'"):
        find_image(args)


def test_find_image_knows_podmans_options_only_for_podman():
    assert find_image(["--pod", "p1", "--tls-verify", "img"], podman=True) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name"], "--name in 'docker run' needs a value"),
        (["-e"], "-e in 'docker run' needs a value"),
        (["--rm", "-it"], "'docker run' names no image"),
        ([], "'docker run' names no image"),
        (["--rm", "--"], "'docker run' names no image"),
    ],
)
def test_find_image_refuses_incomplete_commands(args: list[str], message: str):
    with pytest.raises(UsageError, match=message):
        find_image(args)


# --------------------------------------------------------------------------- docker pull


@pytest.mark.parametrize(
    ("args", "parsed"),
    [
        (["img"], ([], "img")),
        (["--platform", "linux/arm64", "-q", "img"], (["--platform", "linux/arm64", "-q"], "img")),
        (["img", "--quiet"], (["--quiet"], "img")),  # docker pull takes options anywhere
        (["--platform=linux/arm64", "img"], (["--platform=linux/arm64"], "img")),
        (["--all-tags=false", "img"], (["--all-tags=false"], "img")),
        (["--", "img"], ([], "img")),
    ],
)
def test_parse_pull(args: list[str], parsed: tuple[list[str], str]):
    assert parse_pull(args) == parsed


@pytest.mark.parametrize(
    "args",
    [
        ["-a", "img"],
        ["--all-tags", "img"],
        ["-qa", "img"],
        ["-aq", "img"],
        ["--all-tags=true", "img"],
        ["--all-tags=1", "img"],
        ["--all-tags=TRUE", "img"],
    ],
)
def test_parse_pull_refuses_all_tags(args: list[str]):
    with pytest.raises(UsageError, match="pulling all tags cannot be verified"):
        parse_pull(args)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["a", "b"], "takes one image, not 'a' and 'b'"),
        ([], "names no image"),
        (["-q"], "names no image"),
        (["--frobnicate", "x", "img"], "does not know the option --frobnicate"),
        (["-p", "img"], "does not know the option -p"),
    ],
)
def test_parse_pull_refuses(args: list[str], message: str):
    with pytest.raises(UsageError, match=message):
        parse_pull(args)


# --------------------------------------------------------------------------- docker build


def test_parse_build_finds_the_dockerfile_context_and_build_args():
    build = parse_build(
        ["-t", "out:1", "-f", "df", "--build-arg", "A=1", "--build-arg=B", "--pull", "ctx"]
    )

    assert build.dockerfile == "df"
    assert build.context == "ctx"
    assert build.build_args == ("A=1", "B")
    assert build.other_args == (
        *("-t", "out:1", "--build-arg", "A=1", "--build-arg=B", "--pull"),
        "ctx",
    )


@pytest.mark.parametrize(
    ("args", "dockerfile", "other_args"),
    [
        (["--file=df", "."], "df", (".",)),
        (["-fdf", "."], "df", (".",)),
        (["-f", "a", "--file=b", "-t", "x", "."], "b", ("-t", "x", ".")),  # all removed
        (["-qf", "df", "."], "df", ("-q", ".")),  # -q is kept
        (["-qfdf", "."], "df", ("-q", ".")),
        ([".", "-f", "df"], "df", (".",)),
        (["."], None, (".",)),
        (["-"], None, ("-",)),
    ],
)
def test_parse_build_leaves_out_every_dockerfile_option(
    args: list[str], dockerfile: str | None, other_args: tuple[str, ...]
):
    build = parse_build(args)

    assert (build.dockerfile, build.other_args) == (dockerfile, other_args)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "names no build context"),
        (["-t", "x"], "names no build context"),
        (["a", "b"], "takes one context, not 'a' and 'b'"),
        (["--frobnicate", "x", "."], "does not know the option --frobnicate"),
        (["-f"], "-f in 'docker build' needs a value"),
    ],
)
def test_parse_build_refuses(args: list[str], message: str):
    with pytest.raises(UsageError, match=message):
        parse_build(args)


# --------------------------------------------------------------------------- docker ARGS…


@pytest.mark.parametrize(
    ("args", "action", "head", "rest"),
    [
        (["ps", "-a"], None, ["ps", "-a"], []),
        (["image", "ls"], None, ["image", "ls"], []),
        ([], None, [], []),
        (["run", "--rm", "img"], "run", ["run"], ["--rm", "img"]),
        (["create", "img"], "create", ["create"], ["img"]),
        (["pull", "img"], "pull", ["pull"], ["img"]),
        (["build", "."], "build", ["build"], ["."]),
        (["image", "pull", "img"], "pull", ["image", "pull"], ["img"]),
        (["container", "run", "img"], "run", ["container", "run"], ["img"]),
        (["container", "create", "img"], "create", ["container", "create"], ["img"]),
        (["image", "build", "."], "build", ["image", "build"], ["."]),
        (["buildx", "build", "."], "build", ["buildx", "build"], ["."]),
        (["builder", "build", "."], "build", ["builder", "build"], ["."]),
        (
            ["--context", "ctx", "-D", "image", "pull", "img"],
            "pull",
            ["--context", "ctx", "-D", "image", "pull"],
            ["img"],
        ),
        (["-H", "unix:///x.sock", "run", "img"], "run", ["-H", "unix:///x.sock", "run"], ["img"]),
        (["--tlsverify=true", "-l", "debug", "run", "i"], "run", ["--tlsverify=true"], None),
        (["--version"], None, ["--version"], []),
        (["-v"], None, ["-v"], []),
        (["--help", "run", "img"], "run", ["--help", "run"], ["img"]),  # still gated
        (["-v", "run", "img"], "run", ["-v", "run"], ["img"]),
        (["--version", "-D", "pull", "img"], "pull", ["--version", "-D", "pull"], ["img"]),
        (["-hv", "create", "img"], "create", ["-hv", "create"], ["img"]),
        (["-v", "ps"], None, ["-v", "ps"], []),
        (["buildx", "b", "."], "build", ["buildx", "b"], ["."]),
        (
            ["buildx", "--builder", "bk", "-D", "build", "."],
            "build",
            ["buildx", "--builder", "bk", "-D", "build"],
            ["."],
        ),
        (["buildx", "--debug", "b", "."], "build", ["buildx", "--debug", "b"], ["."]),
        (["buildx", "--builder=bk", "ls"], None, ["buildx", "--builder=bk", "ls"], []),
        (["compose", "ps"], None, ["compose", "ps"], []),
        (["compose", "-f", "c.yml", "-p", "x", "down"], None, None, None),
        (["compose", "logs", "-f"], None, ["compose", "logs", "-f"], []),
        (["stack", "ls"], None, ["stack", "ls"], []),
        (["service", "ls"], None, ["service", "ls"], []),
        (["plugin", "ls"], None, ["plugin", "ls"], []),
        (["-h"], None, ["-h"], []),
    ],
)
def test_parse_docker_command(
    args: list[str], action: str | None, head: list[str] | None, rest: list[str] | None
):
    command = parse_docker_command(args)

    assert command.action == action
    if head is None:  # passed through whole
        assert (command.head, command.args) == (args, [])
    elif rest is None:  # only the start of head given
        assert command.head[: len(head)] == head
        assert command.head + command.args == args
    else:
        assert (command.head, command.args) == (head, rest)


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--help"],
        ["run", "--rm", "--help", "img"],
        ["container", "create", "-it", "--help"],
        ["--context", "ctx", "image", "pull", "--help"],
        ["pull", "img", "--help"],  # docker pull reads options after the image too
        ["build", ".", "--help"],
        ["run", "--help=true"],
    ],
)
def test_a_help_request_is_passed_through_whole(args: list[str]):
    assert parse_docker_command(args) == DockerCommand(None, args, [])


@pytest.mark.parametrize(
    ("args", "action"),
    [
        (["run", "img", "ls", "--help"], "run"),  # the container's command
        (["run", "-e", "--help", "img"], "run"),  # the value of -e
        (["run", "--name", "--help", "img"], "run"),
        (["run", "--", "img", "--help"], "run"),
        (["run", "--help=false", "img"], "run"),
        (["build", "--build-arg", "--help", "."], "build"),
        (["run", "--frobnicate", "--help", "img"], "run"),  # refused later, not passed
    ],
)
def test_help_that_docker_does_not_read_as_help_is_still_gated(args: list[str], action: str):
    command = parse_docker_command(args)

    assert command.action == action
    assert command.head + command.args == args


@pytest.mark.parametrize(
    ("args", "words", "hint"),
    [
        (["service", "create", "img"], "service create", "trustkit resolve"),
        (["service", "update", "--image", "img", "s"], "service update", "trustkit resolve"),
        (["stack", "deploy", "-c", "s.yml", "s"], "stack deploy", "into the stack file"),
        (["compose", "build"], "compose build", "trustkit compose pin"),
        (["compose", "-f", "c.yml", "-p", "x", "watch"], "compose watch", "trustkit compose pin"),
        (["buildx", "bake"], "buildx bake", "trustkit docker build"),
        (["buildx", "--builder", "b", "bake", "t"], "buildx bake", "trustkit docker build"),
        (["plugin", "install", "vieux/sshfs"], "plugin install", "trustkit resolve"),
        (["plugin", "upgrade", "p", "vieux/sshfs"], "plugin upgrade", "trustkit resolve"),
    ],
)
def test_commands_that_pull_images_the_gate_cannot_verify_are_refused(
    args: list[str], words: str, hint: str
):
    with pytest.raises(UsageError, match=f"cannot verify the images 'docker {words}' pulls") as e:
        parse_docker_command(args)

    assert e.value.hint is not None and hint in e.value.hint
    assert "docker binary directly" in e.value.hint or "trustkit docker build" in e.value.hint


@pytest.mark.parametrize(
    ("args", "options", "command"),
    [
        (["compose", "up", "-d"], [], ["up", "-d"]),
        (["compose", "pull"], [], ["pull"]),
        (["compose", "run", "web"], [], ["run", "web"]),
        (["compose", "create"], [], ["create"]),
        (["compose", "-f", "c.yml", "-p", "x", "up"], ["-f", "c.yml", "-p", "x"], ["up"]),
        (["compose", "--file=c.yml", "--dry-run", "pull"], ["--file=c.yml", "--dry-run"], ["pull"]),
        (["-H", "unix:///x", "compose", "up"], [], ["up"]),
    ],
)
def test_compose_commands_that_start_images_are_pinned_through_the_gate(
    args: list[str], options: list[str], command: list[str]
):
    parsed = parse_docker_command(args)

    assert parsed.action == "compose"
    assert parsed.family_options == options
    assert [parsed.head[-1], *parsed.args] == command


def test_an_unknown_compose_option_before_its_command_is_refused():
    with pytest.raises(UsageError, match="does not know the option --frob of 'docker compose'"):
        parse_docker_command(["compose", "--frob", "x", "up"])


@pytest.mark.parametrize(
    ("args", "index"),
    [
        (["-d=true", "img"], 1),
        (["-t=false", "img"], 1),
        (["-it=false", "img"], 1),
        (["-e=A=1", "img"], 1),
        (["-e=", "evil", "img"], 1),  # -e is "=", as Docker reads it; evil is the image
    ],
)
def test_short_options_with_an_equals_sign(args: list[str], index: int):
    assert find_image(args) == index


def test_short_value_with_an_equals_sign_is_the_value_after_it():
    assert parse_build(["-t=out:1", "-f=df", "."]).dockerfile == "df"
    assert parse_pull(["-q=true", "img"]) == (["-q=true"], "img")
    assert parse_pull(["-a=false", "img"]) == (["-a=false"], "img")
    with pytest.raises(UsageError, match="pulling all tags"):
        parse_pull(["-a=true", "img"])
    with pytest.raises(UsageError, match="does not know the option -="):
        find_image(["-d=", "img"])  # Docker refuses it too


def test_parse_docker_command_refuses_an_unknown_global_option():
    with pytest.raises(UsageError, match="does not know the option --frobnicate of 'docker'"):
        parse_docker_command(["--frobnicate", "x", "run", "img"])


# --------------------------------------------------------------------------- Dockerfile


def images(text: str, build_args: dict[str, str] | None = None) -> list[str]:
    return [base.image for base in base_images(text, build_args or {})]


def test_base_images_skip_stages_and_scratch():
    text = (
        "FROM alpine:3 AS Build\n"
        "FROM build\n"  # stage names are case-insensitive
        "FROM BUILD AS second\n"
        "FROM scratch\n"
        "FROM --platform=linux/amd64 debian:12 AS deb\n"
        "FROM second\n"
    )

    assert [(b.line, b.written, b.image) for b in base_images(text, {})] == [
        (0, "alpine:3", "alpine:3"),
        (4, "debian:12", "debian:12"),
    ]


def test_only_stages_defined_above_are_stages():
    assert images("FROM build\nFROM alpine:3 AS build\nFROM build\n") == ["build", "alpine:3"]


def test_lowercase_keywords_and_leading_blanks():
    assert images("  from alpine:3 as base\n\tFrom base\n") == ["alpine:3"]


def test_comments_are_not_instructions():
    text = "# FROM evil:1\n  # FROM evil:2\nFROM \\\n# FROM evil:3\n  alpine:3\n"

    assert images(text) == ["alpine:3"]


def test_continuation_lines_are_joined():
    text = "FROM \\\n  --platform=linux/amd64 \\\n  alpine:3 \\\n  AS base\nFROM base\n"

    assert [(b.line, b.image) for b in base_images(text, {})] == [(2, "alpine:3")]


def test_continuation_joins_without_a_space_and_skips_empty_lines():
    assert images("FROM alp\\\nine:3\n") == ["alpine:3"]
    assert images("FROM \\\n\n   \n  alpine:3\n") == ["alpine:3"]


def test_escape_directive_changes_the_continuation_character():
    hidden = "RUN echo \\\nFROM tools:1\n"

    assert images(hidden) == []  # a continued RUN, as the builder reads it
    assert images("# escape=`\n" + hidden) == ["tools:1"]
    assert images("# syntax=docker/dockerfile:1\n#ESCAPE = `\n" + hidden) == ["tools:1"]
    assert images("\ufeff# escape=`\n" + hidden) == ["tools:1"]  # after a byte-order mark
    assert images("# escape=`\nFROM `\n  alpine:3\n") == ["alpine:3"]


def test_escape_directive_after_a_comment_is_just_a_comment():
    text = "# a comment\n# escape=`\nRUN echo `\nFROM evil:1\n"

    assert images(text) == ["evil:1"]
    assert images("\n# escape=`\nRUN echo `\nFROM evil:1\n") == ["evil:1"]


def test_invalid_escape_directive_is_refused():
    with pytest.raises(UsageError, match="escape directive 'x'"):
        base_images("# escape=x\nFROM alpine:3\n", {})


def test_arg_defaults_and_build_arg_overrides():
    text = "ARG BASE=alpine:3\nFROM $BASE\n"

    assert images(text) == ["alpine:3"]
    assert images(text, {"BASE": "debian:12"}) == ["debian:12"]
    assert images('ARG BASE="alpine:3"\nFROM ${BASE}\n') == ["alpine:3"]
    assert images("ARG A=alpine B=3\nFROM $A:$B\n") == ["alpine:3"]


def test_arg_defaults_can_use_earlier_args():
    text = "ARG REG=r.example.com\nARG BASE=${REG}/app:1\nFROM $BASE\n"

    assert images(text) == ["r.example.com/app:1"]
    assert images(text, {"REG": "mirror.example.com"}) == ["mirror.example.com/app:1"]


def test_only_args_declared_before_the_first_from_count():
    text = "ARG TAG=3\nFROM alpine:$TAG\nARG TAG=4\nFROM alpine:$TAG\n"

    assert images(text) == ["alpine:3", "alpine:3"]
    assert images("FROM alpine:${TAG:-3}\n", {"TAG": "4"}) == ["alpine:3"]  # TAG undeclared


def test_variable_defaults_and_alternatives():
    assert images("ARG TAG\nFROM alpine:${TAG:-3.19}\n") == ["alpine:3.19"]
    assert images("ARG TAG\nFROM alpine:${TAG:-3.19}\n", {"TAG": "3.20"}) == ["alpine:3.20"]
    assert images("ARG TAG=\nFROM alpine:${TAG:-3.19}\n") == ["alpine:3.19"]
    assert images("ARG TAG=\nFROM alpine${TAG-:3.19}\n") == ["alpine"]  # set, though empty
    assert images("ARG SLIM=1\nFROM debian:12${SLIM:+-slim}\n") == ["debian:12-slim"]
    assert images("ARG SLIM\nFROM debian:12${SLIM:+-slim}\n") == ["debian:12"]


@pytest.mark.parametrize(
    "text",
    ["FROM $BASE\n", "ARG BASE\nFROM $BASE\n", "ARG BASE\nFROM ${BASE}:1\nFROM alpine:3\n"],
)
def test_unresolved_variable_is_refused(text: str):
    with pytest.raises(UsageError, match=r"\$BASE has no value") as raised:
        base_images(text, {})

    assert raised.value.hint is not None and "--build-arg BASE=" in raised.value.hint


def test_from_without_an_image_is_refused():
    with pytest.raises(UsageError, match="FROM line on line 2 names no image"):
        base_images("ARG X=1\nFROM --platform=linux/amd64\n", {})


def pinned_as(image: str) -> str:
    return f"pinned.example.com/{image.replace(':', '-')}@sha256:{'a' * 64}"


def test_pin_base_images_rewrites_only_the_image_words():
    text = (
        "# syntax=docker/dockerfile:1\n"
        "ARG BASE=alpine:3\n"
        "ARG BASE_PLATFORM=linux/amd64\n"
        "FROM --platform=$BASE_PLATFORM $BASE AS build\n"
        "RUN echo FROM alpine:3\n"
        "FROM build\n"
        "FROM scratch\n"
        "FROM --platform=linux/arm64 \\\n"
        "    debian:12   AS deb  \n"
        "COPY --from=build /a /a\n"
    )
    asked: list[str] = []

    def pin(image: str) -> str:
        asked.append(image)
        return pinned_as(image)

    rewritten, pairs = pin_base_images(text, {}, pin)

    assert asked == ["docker/dockerfile:1", "alpine:3", "debian:12"]  # the frontend too
    assert pairs == [("alpine:3", pinned_as("alpine:3")), ("debian:12", pinned_as("debian:12"))]
    assert rewritten == text.replace(
        "$BASE_PLATFORM $BASE AS", f"$BASE_PLATFORM {pinned_as('alpine:3')} AS"
    ).replace("    debian:12   AS", f"    {pinned_as('debian:12')}   AS").replace(
        "syntax=docker/dockerfile:1", f"syntax={pinned_as('docker/dockerfile:1')}"
    )


def test_pin_base_images_keeps_line_endings_and_byte_order_mark():
    text = "\ufeffFROM alpine:3 AS b\r\nFROM b\r\n"

    rewritten, _ = pin_base_images(text, {}, pinned_as)

    assert rewritten == f"\ufeffFROM {pinned_as('alpine:3')} AS b\r\nFROM b\r\n"


def test_pin_base_images_refuses_an_image_split_across_lines():
    with pytest.raises(UsageError, match="write it on one line"):
        pin_base_images("FROM alp\\\nine:3\n", {}, pinned_as)


def test_pin_base_images_stops_at_the_first_refusal():
    def pin(image: str) -> str:
        raise UsageError(f"refused {image}")

    with pytest.raises(UsageError, match="refused alpine:3"):
        pin_base_images("FROM alpine:3\nFROM debian:12\n", {}, pin)


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("FROM alpine:3\vAS x\n", "control character U+000B"),
        ("FROM alpine:3\fAS x\n", "control character U+000C"),
        ("FROM alpine:3\x1cAS x\n", "control character U+001C"),
        ("FROM alpine:3\x00\n", "control character U+0000"),
        ("RUN true\rFROM evil:1\n", "carriage return that does not end the line"),
        ("FROM alpine:3\r", "carriage return that does not end the line"),
        ("FROM\u00a0evil:1\n", "blank U+00A0"),
        ("FROM alpine:3\u0085\n", "U+0085"),
        ("FROM\u2003evil:1\n", "blank U+2003"),
        ("FROM\u3000evil:1\n", "blank U+3000"),
        ("FROM alpine:3\n\ufeffFROM evil:1\n", "byte-order mark"),
    ],
)
def test_characters_the_builder_may_read_differently_are_refused(text: str, what: str):
    with pytest.raises(UsageError, match=f"line [12] of the Dockerfile has .*{re.escape(what)}"):
        pin_base_images(text, {}, pinned_as)


def test_crlf_tabs_and_non_ascii_text_elsewhere_are_fine():
    text = "FROM\talpine:3 AS b\r\nRUN echo héllo\r\n"

    rewritten, _ = pin_base_images(text, {}, pinned_as)

    assert rewritten == text.replace("alpine:3", pinned_as("alpine:3"))


@pytest.mark.parametrize("marker", ["<<EOF", "<<-EOF", '<<"EOF"', "<<'EOF'", "0<<EOF"])
def test_heredoc_bodies_are_skipped_and_not_rewritten(marker: str):
    text = f"FROM alpine:3 AS base\nRUN {marker}\n\tARG X=1\n  RUN echo \\\nEOF\nFROM base\n"

    rewritten, pairs = pin_base_images(text, {}, pinned_as)

    assert pairs == [("alpine:3", pinned_as("alpine:3"))]
    assert rewritten == text.replace("FROM alpine:3", f"FROM {pinned_as('alpine:3')}")


def test_a_heredoc_hides_nothing_from_the_builder():
    """Without heredocs, "RUN echo \\" would swallow the FROM below as its continuation."""
    text = "FROM alpine:3\nCOPY <<EOF /x\nRUN echo \\\nEOF\nFROM debian:12\n"

    assert images(text) == ["alpine:3", "debian:12"]
    assert images("FROM alpine:3\nCOPY <<A <<B /x\nA\nFROM x\nB\nFROM debian:12\n") == [
        "alpine:3",
        "debian:12",
    ]


def test_a_from_inside_a_heredoc_is_refused():
    text = "FROM alpine:3\nRUN <<EOF\nFROM evil:1\nEOF\n"

    assert images(text) == ["alpine:3"]
    with pytest.raises(UsageError, match="cannot tell which image line 3 pulls; write it plainly"):
        pin_base_images(text, {}, pinned_as)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM alpine:3\nRUN <<EOF\necho\n", "heredoc <<EOF opened on line 2 never ends"),
        ("FROM alpine:3\nRUN <<$E\nx\n", "heredoc"),
        ('FROM alpine:3\nRUN <<"E\nx\n', "unclosed quote"),
        ('FROM alpine:3\nRUN <<E"O"F\nx\n', "heredoc"),
    ],
)
def test_heredocs_trustkit_cannot_delimit_are_refused(text: str, message: str):
    with pytest.raises(UsageError, match=message):
        pin_base_images(text, {}, pinned_as)


@pytest.mark.parametrize(
    "text",
    [
        "FROM alpine:3\nRUN echo \\\nFROM evil:1\n",  # a continuation line
        "FROM alpine:3\nRUN echo \\\n  from evil:1\n",
        "FROM alpine:3\nLABEL a=b \\\nFR\\\nOM evil:1\n",
    ],
)
def test_a_from_line_trustkit_did_not_read_as_one_is_refused(text: str):
    with pytest.raises(UsageError, match="cannot tell which image line 3 pulls; write it plainly"):
        pin_base_images(text, {}, pinned_as)


@pytest.mark.parametrize("name", ["Build-1", "a.b_c", "x"])
def test_valid_stage_names(name: str):
    assert images(f"FROM alpine:3 AS {name}\nFROM {name.lower()}\n") == ["alpine:3"]


@pytest.mark.parametrize("name", ["1st", "-x", "a/b", "a:b", "_x", "a$b"])
def test_stage_names_the_builder_refuses_are_refused(name: str):
    with pytest.raises(UsageError, match=f"stage name '{re.escape(name)}' on line 1"):
        base_images(f"FROM alpine:3 AS {name}\n", {})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM --platform linux/amd64 alpine:3\n", "flag '--platform' is not written as"),
        ("FROM --platform=linux/amd64 -- alpine:3\n", "flag '--' is not written as"),
        ('FROM --platform="linux/amd64 x" alpine:3\n', "is not written as --NAME=VALUE"),
        ("FROM alpine:3 evil:1\n", "nothing more"),
        ("FROM alpine:3 AS a b\n", "nothing more"),
        ("FROM alpine:3 ASS a\n", "nothing more"),
        ('FROM "evil:1"\n', "quotes and escapes"),
        ("FROM ev\\il:1\n", "quotes and escapes"),
        ("FROM alpine:3 AS \u212aelvin\n", "other than ASCII"),
        ("ARG B=x\nFROM ${B:-${C}}\n", "not a plain image name"),
        ("ARG B='$A'\nFROM $B\n", r"cannot tell the value of \$B"),
        ('ARG B="a b"\nFROM $B\n', r"cannot tell the value of \$B"),
        ("ARG B=a\\ b\nFROM $B\n", r"cannot tell the value of \$B"),
    ],
)
def test_from_lines_trustkit_might_read_differently_are_refused(text: str, message: str):
    with pytest.raises(UsageError, match=message):
        base_images(text, {})


def test_pin_refuses_a_reference_it_cannot_write_plainly():
    with pytest.raises(UsageError, match="cannot write 'a b'"):
        pin_base_images("FROM alpine:3\n", {}, lambda _: "a b")


# --------------------------------------------------------------------------- policy


def policy(document: dict[str, Any]) -> HostPolicy:
    return HostPolicy.from_document(document, "test.toml")


def test_empty_policy_requires_signatures():
    host_policy = policy({})

    assert host_policy.rule_for("docker.io/library/nginx").trust == SIGNED
    assert host_policy.rule_for("docker.io/library/nginx").signers is None


def test_first_matching_rule_wins():
    host_policy = policy(
        {
            "default": "unsigned-ok",
            "rule": [
                {"repositories": ["r.example.com/team/**"], "trust": "unsigned-ok"},
                {"repositories": ["r.example.com/**"], "signers": ["targets/releases"]},
                {"repositories": ["r.example.com/team/app"], "signers": ["never"]},
            ],
        }
    )

    team = host_policy.rule_for("r.example.com/team/app")
    other = host_policy.rule_for("r.example.com/other")
    elsewhere = host_policy.rule_for("docker.io/library/nginx")

    assert (team.trust, team.signers) == (UNSIGNED_OK, None)
    assert (other.trust, other.signers) == (SIGNED, ("targets/releases",))
    assert (elsewhere.trust, elsewhere.signers) == (UNSIGNED_OK, None)


@pytest.mark.parametrize(
    ("pattern", "gun", "matches"),
    [
        ("r.example.com/team/*", "r.example.com/team/app", True),
        ("r.example.com/team/*", "r.example.com/team/app/sub", False),
        ("r.example.com/team/*", "r.example.com/team", False),
        ("r.example.com/team/**", "r.example.com/team/app/sub", True),
        ("r.example.com/team/**", "r.example.com/teams/app", False),
        ("r.example.com/*/app", "r.example.com/team/app", True),
        ("r.example.com/*/app", "r.example.com/a/b/app", False),
        ("r.example.com/**/app", "r.example.com/a/b/app", True),
        ("*.example.com/app", "eu.example.com/app", True),
        ("*.example.com/app", "example.com/x/app", False),
        ("r.example.com/app", "r.example.com/app", True),
        ("r.example.com/app", "r.example.com/app2", False),  # whole names only
        ("r.example.com/app", "xr.example.com/app", False),
        ("r.example.com/app", "rxexample.com/app", False),  # '.' is not a wildcard
        ("127.0.0.1:5000/**", "127.0.0.1:5000/a/b", True),
        ("**", "docker.io/library/nginx", True),
    ],
)
def test_patterns(pattern: str, gun: str, matches: bool):
    host_policy = policy({"rule": [{"repositories": [pattern], "trust": "unsigned-ok"}]})

    assert (host_policy.rule_for(gun).trust == UNSIGNED_OK) is matches


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"defualt": "signed"}, "unknown key(s) defualt"),
        ({"default": "maybe"}, "default: trust 'maybe' is not one of signed, unsigned-ok"),
        ({"default": True}, "default: trust 'True' is not one of"),
        ({"rule": {"repositories": ["r.io/a"]}}, "'rule' must be an array of tables"),
        ({"rule": ["r.io/a"]}, "rule 1 is not a table"),
        ({"rule": [{"repositories": ["r.io/a"], "trusts": "signed"}]}, "unknown key(s) trusts"),
        ({"rule": [{"trust": "signed"}]}, "rule 1 needs 'repositories'"),
        ({"rule": [{"repositories": []}]}, "rule 1 needs 'repositories'"),
        ({"rule": [{"repositories": "r.io/a"}]}, "rule 1 needs 'repositories'"),
        ({"rule": [{"repositories": [""]}]}, "rule 1 needs 'repositories'"),
        ({"rule": [{"repositories": ["nginx"]}]}, "'nginx' is not a full repository name"),
        (
            {"rule": [{"repositories": ["r.io/a"]}, {"repositories": ["library/nginx"]}]},
            "rule 2: 'library/nginx' is not a full repository name",
        ),
        ({"rule": [{"repositories": ["r.io"]}]}, "'r.io' is not a full repository name"),
        (
            {"rule": [{"repositories": ["r.io/a"], "trust": "signed-ish"}]},
            "rule 1: trust 'signed-ish' is not one of",
        ),
        ({"rule": [{"repositories": ["r.io/a"], "signers": "targets"}]}, "'signers' must be"),
        ({"rule": [{"repositories": ["r.io/a"], "signers": []}]}, "'signers' must be"),
        ({"rule": [{"repositories": ["r.io/a"], "signers": [1]}]}, "'signers' must be"),
    ],
)
def test_invalid_policies_are_refused_with_the_reason(document: dict[str, Any], reason: str):
    with pytest.raises(UsageError) as raised:
        policy(document)

    assert raised.value.message.startswith("the policy test.toml is not valid: ")
    assert reason in raised.value.message


def test_policy_load_reads_toml(tmp_path: Path):
    path = tmp_path / "policy.toml"
    path.write_text(
        'default = "signed"\n\n[[rule]]\nrepositories = ["docker.io/library/*"]\n'
        'trust = "unsigned-ok"\n'
    )

    host_policy = HostPolicy.load(path)

    assert host_policy.rule_for("docker.io/library/nginx").trust == UNSIGNED_OK
    assert host_policy.rule_for("docker.io/team/nginx").trust == SIGNED
    assert str(path) in host_policy.source


def test_policy_load_refuses_bad_toml_and_missing_files(tmp_path: Path):
    bad = tmp_path / "bad.toml"
    bad.write_text('default = "signed\n')

    with pytest.raises(UsageError, match="is not valid TOML"):
        HostPolicy.load(bad)
    with pytest.raises(UsageError, match="cannot read the policy"):
        HostPolicy.load(tmp_path / "missing.toml")


# --------------------------------------------------------------------------- command table


@pytest.mark.parametrize(
    ("args", "action"),
    [
        (["builder", "b", "."], "build"),
        (["builder", "build", "."], "build"),
        (["builder", "--builder", "bk", "b", "."], "build"),
        (["buildx", "create", "--name", "b"], "builder-create"),
        (["builder", "create"], "builder-create"),
        (["container", "run", "img"], "run"),
        (["image", "pull", "img"], "pull"),
        (["container", "ls"], None),
        (["image", "--help"], None),
        (["compose"], None),
        ([], None),
    ],
)
def test_every_docker_command_family_is_classified(args: list[str], action: str | None):
    assert parse_docker_command(args).action == action


@pytest.mark.parametrize(
    "args",
    [
        ["bake"],
        ["builder", "bake"],
        ["buildx", "f"],
        ["debug", "img"],
        ["model", "run", "m"],
        ["service", "rollback", "s"],
        ["extension", "install", "e"],
        ["compose", "bridge", "convert"],
    ],
)
def test_commands_that_start_images_of_their_own_are_refused(args: list[str]):
    with pytest.raises(UsageError, match="trustkit cannot verify the images"):
        parse_docker_command(args)


@pytest.mark.parametrize(
    "args", [["frob"], ["container", "frob"], ["buildx", "frob"], ["model", "frob"]]
)
def test_unknown_docker_commands_are_refused(args: list[str]):
    with pytest.raises(UsageError, match="does not know the docker command"):
        parse_docker_command(args)


# --------------------------------------------------------------------------- build options


def test_build_context_images_are_found_and_rewritten():
    build = parse_build(
        ["--build-context", "a=docker-image://img:1", "--build-context=b=./dir", "-t", "x", "."]
    )

    assert build.image_contexts == ((0, "a", "img:1"),)
    assert build.named_contexts == ("a", "b")
    assert build.with_context_images(["img@sha256:" + "a" * 64]) == (
        "--build-context=a=docker-image://img@sha256:" + "a" * 64,
        "--build-context=b=./dir",
        "-t",
        "x",
        ".",
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cache-from", "img:1", "."], "imports build cache from a registry"),
        (["--cache-from=type=registry,ref=img", "."], "imports build cache from a registry"),
        (["--cache-from", "type=gha", "."], "imports build cache from a registry"),
        (["--sbom=true", "."], "SBOM"),
        (["--attest=type=sbom", "."], "SBOM"),
        (["--build-arg", "BUILDKIT_SYNTAX=x/y", "."], "BUILDKIT_SYNTAX"),
        (["--build-arg=BUILDKIT_SYNTAX", "."], "BUILDKIT_SYNTAX"),
    ],
)
def test_build_options_that_pull_unpinned_images_are_refused(args: list[str], message: str):
    with pytest.raises(UsageError, match=message):
        parse_build(args)


def test_local_cache_provenance_and_false_sbom_are_kept():
    args = ["--cache-from", "type=local,src=d", "--sbom=false", "--attest=type=provenance", "."]

    assert parse_build(args).other_args == tuple(args)


def test_buildx_create_options_are_read():
    from client.docker_cli import parse_builder_create

    create = parse_builder_create(
        ["--name", "b", "--driver-opt", "network=host,image=moby/buildkit:v1", "--use"]
    )

    assert (create.driver, create.image, create.leave) == (
        "docker-container",
        "moby/buildkit:v1",
        False,
    )
    assert create.with_image("pinned") == [
        "--name", "b", "--driver-opt=network=host,image=pinned", "--use"
    ]  # fmt: skip
    with pytest.raises(UsageError, match="names the BuildKit image twice"):
        parse_builder_create(["--driver-opt", "image=a", "--driver-opt=image=b"])
    with pytest.raises(UsageError, match="quoted"):
        parse_builder_create(["--driver-opt", '"image=a,b"'])


# --------------------------------------------------------------------------- Dockerfile images


@pytest.mark.parametrize(
    "text",
    [
        "FROM a:1\nCOPY --from=evil:1 / /\n",
        "FROM a:1\nRUN --mount=type=cache,target=/c,from=evil:1 true\n",
        # BuildKit lowercases a mount's keys and reads its fields as CSV:
        "FROM a:1\nRUN --mount=type=bind,FROM=evil:1,target=/x true\n",
        "FROM a:1\nRUN --mount=type=bind,From=evil:1,target=/x true\n",
        'FROM a:1\nRUN --mount=type=bind,"from=evil:1",target=/x true\n',
        "FROM a:1\nCOPY --FROM=evil:1 / /\n",
        # BuildKit takes quotes and escapes out of flags before reading them:
        'FROM a:1\nRUN --mount="type=bind,from=evil:1,target=/x" true\n',
        "FROM a:1\nRUN --mount=type=bind,'from=evil:1',target=/x true\n",
        'FROM a:1\nRUN --"mount"=type=bind,from=evil:1,target=/x true\n',
        "FROM a:1\nRUN --mount=type=bind,fr\\om=evil:1,target=/x true\n",
        'FROM a:1\nCOPY --"from"=evil:1 / /\n',
        "# escape=`\nFROM a:1\nRUN --mount=type=bind,fr`om=evil:1,target=/x true\n",
        # A builder without heredocs reads these lines as instructions:
        "FROM a:1\nRUN true # <<#x\nCOPY --from=evil:1 /e /e\n#x\n",
        "FROM a:1\nRUN <<EOF\nRUN --mount=type=bind,from=evil:1,target=/m true\nEOF\n",
        "FROM a:1\nONBUILD COPY --from=evil:1 / /\n",
        "FROM a:1\nCOPY --from=1 / /\n",  # stage 1 does not exist yet
        "//syntax=evil/frontend\nFROM a:1\n",
        '{"syntax": "evil/frontend"}',
    ],
)
def test_images_outside_from_lines_are_refused(text: str):
    with pytest.raises(UsageError):
        pin_base_images(text, {}, pinned_as)


def test_earlier_stages_and_named_contexts_may_be_copied_from():
    text = (
        "FROM a:1 AS one\nFROM b:1\nCOPY --from=one / /\nCOPY --from=0 / /\nCOPY --from=ctx / /\n"
    )

    rewritten, _ = pin_base_images(text, {}, pinned_as, frozenset({"ctx"}))

    assert rewritten.count("COPY --from=") == 3


@pytest.mark.parametrize(
    ("text", "frontend"),
    [
        ("# syntax=docker/dockerfile:1\nFROM a\n", "docker/dockerfile:1"),
        ("#syntax = x/fe:2 --arg\nFROM a\n", "x/fe:2"),
        ("#!/bin/x\n# escape=`\n# syntax=x/fe\nFROM a\n", "x/fe"),
    ],
)
def test_the_frontend_is_pinned_as_buildkit_finds_it(text: str, frontend: str):
    asked: list[str] = []

    def pin(image: str) -> str:
        asked.append(image)
        return pinned_as(image)

    rewritten, _ = pin_base_images(text, {}, pin)

    assert asked[0] == frontend
    assert pinned_as(frontend) in rewritten


def test_a_comment_that_is_no_directive_names_no_frontend():
    text = "  # syntax=x/fe\n# a note on syntax\nFROM a\n"

    rewritten, _ = pin_base_images(text, {}, pinned_as)

    assert rewritten.startswith("  # syntax=x/fe\n")
