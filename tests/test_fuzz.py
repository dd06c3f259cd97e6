"""Fuzzing: the parsers of names, Dockerfiles and docker command lines with Hypothesis,
and a real server's upload endpoint with hostile bodies, then its OpenAPI schema with
Schemathesis.

A parser either returns a value or raises trustkit's own ``TrustkitError``; the server
answers every bad request with a JSON 4xx that has an ``error`` field, never a 500.
The number of cases run per target is printed at the end of the module (``-s``).
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, assume, example, given, reject, settings
from hypothesis import strategies as st

from client.docker_cli import (
    find_image,
    parse_build,
    parse_docker_command,
    parse_pull,
    pull_options,
)
from client.dockerfile import base_images, pin_base_images
from tests.support.harness import DIGEST_A, ServerProcess, Trustkit, publisher_cli
from trustkit.errors import TrustkitError, UsageError
from trustkit.expiry import ExpiryPolicy, parse_duration
from trustkit.names import (
    DOCKER_HUB_ALIASES,
    ImageReference,
    parse_digest,
    parse_gun,
    parse_reference,
    validate_tag,
    validate_target_name,
)

T = TypeVar("T")

CASES: Counter[str] = Counter()  # fuzz cases run, per target
# In CI the same cases run every time, so a red build names a bug, not bad luck; on a
# developer's machine each run explores new ones (and any failure becomes a fixed case).
IN_CI = bool(os.environ.get("CI"))

PARSER_SETTINGS = settings(
    max_examples=300,
    deadline=timedelta(seconds=2),  # a parser that backtracks or loops for ever fails
    database=None,  # write nothing into the checkout
    derandomize=IN_CI,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
SERVER_SETTINGS = settings(
    max_examples=200,
    deadline=None,  # a hang ends in httpx's timeout instead
    database=None,
    derandomize=IN_CI,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
)

# A valid GUN, tag and digest as Docker's reference grammar has them, end to end.
_GUN = re.compile(r"[a-z0-9.-]+(?::[0-9]+)?(?:/[a-z0-9._-]+)+")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


@pytest.fixture(scope="module", autouse=True)
def _report_case_counts() -> Iterator[None]:
    yield
    print("\nfuzz cases run:")
    for target, count in sorted(CASES.items()):
        print(f"  {target:<40} {count}")
    print(f"  {'total':<40} {sum(CASES.values())}")


def _refused_or(parse: Callable[[], T]) -> T | None:
    """The parser's value, or None when it refused with trustkit's own error; any other
    exception escapes and fails the test."""
    try:
        return parse()
    except TrustkitError as error:
        assert error.message, "a refusal says why"
        return None


# --------------------------------------------------------------------------- names

_NAME_ALPHABET = st.sampled_from("abcz019.-_/:@ AZ\t\n\r\x00é")
junk_names = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=_NAME_ALPHABET, max_size=80),
    st.text(alphabet=st.characters(codec="ascii"), max_size=80),
)

_COMPONENT = st.from_regex(r"[a-z0-9]{1,8}(?:(?:[._]|__|-{1,2})[a-z0-9]{1,8}){0,2}", fullmatch=True)
_LABEL = st.from_regex(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,6}[a-zA-Z0-9])?", fullmatch=True)


def _not_numeric(labels: list[str]) -> bool:
    return not all(re.fullmatch(r"0x[0-9a-f]*|[0-9]+", label.lower()) for label in labels)


@st.composite
def valid_references(draw: st.DrawFn) -> tuple[str, str, str | None, str | None]:
    """(text, expected GUN, tag, digest) built from Docker's reference grammar."""
    # Hosts of digits only are IPv4 addresses, refused unless written a.b.c.d, and :443
    # is left out of a GUN (tests/test_names.py covers both): not drawn here.
    labels = draw(st.lists(_LABEL, min_size=2, max_size=3).filter(_not_numeric))
    port = draw(st.none() | st.integers(1, 65535).filter(lambda number: number != 443))
    domain = ".".join(labels) + (f":{port}" if port else "")
    path = "/".join(draw(st.lists(_COMPONENT, min_size=1, max_size=3)))
    tag = draw(st.none() | st.from_regex(_TAG, fullmatch=True))
    digest = draw(st.none() | st.from_regex(r"[a-f0-9]{64}", fullmatch=True))
    text = f"{domain}/{path}" + (f":{tag}" if tag else "") + (f"@sha256:{digest}" if digest else "")
    return text, f"{domain.lower()}/{path}", tag, f"sha256:{digest}" if digest else None


def _insert(text: str, position: int, piece: str) -> str:
    position %= len(text) + 1
    return text[:position] + piece + text[position:]


references = valid_references().map(lambda reference: reference[0])
names = st.one_of(
    junk_names,
    references,
    st.builds(_insert, references, st.integers(0, 500), _NAME_ALPHABET | st.text(max_size=3)),
)


@PARSER_SETTINGS
@given(text=names)
@example(text="localhost:5000")
def test_parse_gun_returns_a_plain_name_or_refuses(text: str) -> None:
    CASES["parse_gun"] += 1
    gun = _refused_or(lambda: parse_gun(text))
    if gun is None:
        return
    assert _GUN.fullmatch(gun), f"parse_gun({text!r}) accepted {gun!r}"
    assert len(gun) <= 255
    assert parse_gun(gun) == gun  # normalising is idempotent


@PARSER_SETTINGS
@given(text=names)
@example(text="a@b@c")
def test_parse_reference_round_trips_or_refuses(text: str) -> None:
    CASES["parse_reference"] += 1
    ref = _refused_or(lambda: parse_reference(text))
    if ref is None:
        return
    assert _GUN.fullmatch(ref.gun), f"parse_reference({text!r}) accepted {ref.gun!r}"
    assert ref.tag is None or _TAG.fullmatch(ref.tag), f"tag {ref.tag!r} from {text!r}"
    assert parse_reference(str(ref)) == ref


@PARSER_SETTINGS
@given(reference=valid_references())
def test_valid_references_parse_to_their_parts(
    reference: tuple[str, str, str | None, str | None],
) -> None:
    CASES["parse_reference (grammar)"] += 1
    text, gun, tag, digest = reference
    assume(gun.split("/")[0] not in DOCKER_HUB_ALIASES)
    if len(gun) > 255:
        with pytest.raises(UsageError):
            parse_reference(text)
        return
    ref = parse_reference(text)
    assert ref == ImageReference(gun, tag, parse_digest(digest) if digest else None)
    assert parse_reference(str(ref)) == ref


@PARSER_SETTINGS
@given(text=names | st.from_regex(r"sha256:[a-f0-9]{64}", fullmatch=True))
def test_parse_digest_round_trips_or_refuses(text: str) -> None:
    CASES["parse_digest"] += 1
    digest = _refused_or(lambda: parse_digest(text))
    if digest is None:
        return
    assert re.fullmatch(r"sha256:[a-f0-9]{64}", str(digest))
    assert parse_digest(str(digest)) == digest


@PARSER_SETTINGS
@given(text=names)
def test_validate_tag_accepts_only_docker_tags(text: str) -> None:
    CASES["validate_tag"] += 1
    tag = _refused_or(lambda: validate_tag(text))
    if tag is not None:
        assert _TAG.fullmatch(tag), f"validate_tag accepted {tag!r}"


@PARSER_SETTINGS
@given(text=names | st.text(alphabet=st.sampled_from("ab./"), max_size=20))
def test_validate_target_name_accepts_only_safe_relative_names(text: str) -> None:
    CASES["validate_target_name"] += 1
    name = _refused_or(lambda: validate_target_name(text))
    if name is None:
        return
    assert name == text
    assert not name.startswith("/")
    assert all(part not in ("", ".", "..") for part in name.split("/"))


@PARSER_SETTINGS
@given(
    text=names
    | st.from_regex(r"[0-9]{1,30}[smhdwy]", fullmatch=True)
    | st.integers(0, 10**30).map(lambda n: f"{n}y")
)
def test_expiry_settings_return_a_lifetime_or_refuse(text: str) -> None:
    """``--expiry ROLE=DURATION`` of the CLI and the server: a lifetime, or a refusal."""
    CASES["parse_duration / --expiry"] += 1
    duration = _refused_or(lambda: parse_duration(text))
    if duration is None:
        return
    assert duration > timedelta(0)
    policy = _refused_or(lambda: ExpiryPolicy.from_settings([f"targets={text}"]))
    if policy is not None:  # a lifetime it accepted must give an expiry date
        policy.expires("targets")


@pytest.mark.parametrize(
    ("parse", "text"),
    [
        (parse_gun, "registry.test/app\n/x"),
        (parse_gun, "registry.test\n/app"),
        (validate_tag, "v1\n"),
        (lambda text: parse_reference(text).tag, "registry.test/app:v1\n@sha256:" + "a" * 64),
    ],
    ids=["gun-component", "gun-host", "tag", "reference-tag"],
)
def test_names_with_a_newline_are_refused(parse: Callable[[str], object], text: str) -> None:
    """Python's ``$`` also matches before a final newline: ``re.match("^[a-z]+$", "a\\n")``."""
    CASES["names: newline regressions"] += 1
    with pytest.raises(UsageError):
        print(f"{text!r} was accepted as {parse(text)!r}")


@pytest.mark.parametrize("text", ["99999999999999999999y", "1" * 5000 + "s", "9000y"])
def test_huge_expiry_settings_are_refused(text: str) -> None:
    """``trustkit --expiry targets=…`` and ``trustkit-server --expiry …`` end in a
    traceback (OverflowError, ValueError) instead of a usage error."""
    CASES["expiry: huge-duration regressions"] += 1
    with pytest.raises(UsageError):
        ExpiryPolicy.from_settings([f"targets={text}"]).expires("targets")


# --------------------------------------------------------------------------- Dockerfiles

_IMAGES = ["alpine", "alpine:3.20", "registry.test/app:1.0", "${IMG}", "$IMG", "${IMG:-alpine}"]
_DOCKERFILE_LINES = st.one_of(
    st.sampled_from(
        [
            "FROM alpine",
            "FROM alpine:3.20 AS build",
            "FROM --platform=linux/amd64 registry.test/app:1.0",
            "FROM build",
            "FROM scratch",
            "from alpine as base",
            "FROM ${IMG}",
            "FROM $IMG:${TAG:-latest}",
            "FROM \\",
            "  alpine",
            "FR\\",
            "OM alpine",
            "ARG IMG=alpine",
            "ARG IMG",
            "ARG TAG=1.0",
            'ARG IMG="alpine"',
            "ARG IMG=$TAG",
            "RUN echo hi",
            "RUN <<EOF",
            "RUN <<-'EOT' cat",
            "EOF",
            "\tEOT",
            "COPY --from=build / /",
            "ONBUILD RUN <<EOF",
            "# escape=`",
            "# syntax=docker/dockerfile:1",
            "# a comment",
            "",
            "   ",
            "FROM alpine `",
        ]
    ),
    st.text(max_size=40),
)
_FROM_LINES = st.builds(
    lambda flag, image, stage: f"FROM {flag}{image}{stage}",
    st.sampled_from(["", "--platform=linux/arm64 ", "--platform=$P ", "--x "]),
    st.sampled_from(_IMAGES) | references | st.text(max_size=15),
    st.sampled_from(["", " AS s1", " as S2", " AS 1bad", " AS"]),
)
dockerfiles = st.one_of(
    st.tuples(
        st.lists(_DOCKERFILE_LINES, max_size=6),
        _FROM_LINES,
        st.lists(_DOCKERFILE_LINES | _FROM_LINES, max_size=6),
        st.sampled_from(["\n", "\r\n"]),
    ).map(lambda parts: parts[3].join([*parts[0], parts[1], *parts[2]])),
    st.text(max_size=300),
)
build_args = st.dictionaries(
    st.sampled_from(["IMG", "TAG", "P", "X"]),
    st.sampled_from(["alpine", "registry.test/app", "", "a b", "$X", "1.0"]) | st.text(max_size=8),
    max_size=3,
)


def _pin(image: str) -> str:
    return f"pinned.test/{len(image)}@{DIGEST_A}"


@PARSER_SETTINGS
@given(text=dockerfiles, args=build_args)
@example(text="# syntax=docker/dockerfile:1\nFROM alpine", args={})
def test_dockerfile_from_parser_returns_images_or_refuses(text: str, args: dict[str, str]) -> None:
    CASES["dockerfile base_images/pin_base_images"] += 1
    images = _refused_or(lambda: base_images(text, args))
    if images is None:
        return
    pinned = _refused_or(lambda: pin_base_images(text, args, _pin))
    if pinned is None:
        return
    rewritten, pairs = pinned
    assert [image for image, _ in pairs] == [base.image for base in images]
    assert [base.image for base in base_images(rewritten, args)] == [ref for _, ref in pairs]
    # Only the image words change: every other line is kept byte for byte, but for
    # the '# syntax=' frontend directive, which is pinned too.
    changed = {base.line for base in images}
    before, after = text.split("\n"), rewritten.split("\n")
    assert len(before) == len(after)
    for number, (was, now) in enumerate(zip(before, after, strict=True)):
        if number in changed or was == now:
            continue
        assert re.match(r"#\s*syntax\s*=", was, re.IGNORECASE), (was, now)
        assert "pinned.test/" in now, (was, now)


def test_dockerfile_arg_defaults_do_not_grow_exponentially() -> None:
    """Each ``A=$A$A`` doubles A: 24 of them in a 200-byte Dockerfile make a 16-MiB
    image name (and 40 of them a terabyte) before anything looks at it."""
    CASES["dockerfile ARG doubling"] += 1
    text = "ARG A=x\nARG " + " ".join(["A=$A$A"] * 24) + "\nFROM img$A\n"
    images = _refused_or(lambda: base_images(text, {}))
    size = len(images[0].image) if images else 0
    assert size < 2**20, f"a {len(text)}-byte Dockerfile expands to a {size}-character image"


# --------------------------------------------------------------------------- docker CLI

_ARG_WORDS = st.sampled_from(
    [
        *("run", "create", "pull", "build", "image", "container", "buildx", "builder"),
        *("compose", "stack", "service", "plugin", "bake", "up", "b", "ls"),
        *("--", "-", "--help", "-h", "--rm", "-it", "-itp", "-e", "-e=A=1", "--env", "A=1"),
        *("-p8080:80", "-a", "-qa", "--all-tags", "--all-tags=false", "--platform"),
        *("linux/amd64", "-f", "--file", "Dockerfile", "-qf", "--build-arg", "X=1", "."),
        *("--frobnicate", "--frobnicate=x", "-Z", "--context", "--config", "-H", "--tls"),
        *("alpine", "alpine:3.20", "registry.test/app@sha256:" + "a" * 64, "--detach=true"),
    ]
)
_ARGS = st.lists(_ARG_WORDS | st.text(max_size=12), max_size=10)
_GLOBAL_OPTIONS = st.lists(
    st.sampled_from(["--context", "ctx", "-H", "unix:///run/d.sock", "--tls", "-D", "--config"]),
    max_size=3,
)
_COMMANDS = st.sampled_from(
    [
        *(["run"], ["create"], ["pull"], ["build"], ["image", "pull"], ["container", "run"]),
        *(["buildx", "build"], ["buildx", "--builder", "b", "build"], ["builder", "build"]),
        *(["compose", "up"], ["compose", "-f", "c.yml", "up"], ["stack", "deploy"], ["ps"]),
    ]
)
docker_args = st.one_of(
    _ARGS, st.tuples(_GLOBAL_OPTIONS, _COMMANDS, _ARGS).map(lambda p: p[0] + p[1] + p[2])
)


@PARSER_SETTINGS
@given(args=docker_args, podman=st.booleans())
def test_docker_run_arguments_find_an_image_or_refuse(args: list[str], podman: bool) -> None:
    CASES["docker_cli find_image"] += 1
    index = _refused_or(lambda: find_image(args, podman=podman))
    if index is not None:
        assert 0 <= index < len(args)


@PARSER_SETTINGS
@given(args=docker_args)
def test_docker_pull_arguments_split_or_refuse(args: list[str]) -> None:
    CASES["docker_cli parse_pull/pull_options"] += 1
    parsed = _refused_or(lambda: parse_pull(args))
    if parsed is None:
        return
    options, image = parsed
    assert image in args
    assert all(option in args for option in options)
    _refused_or(lambda: pull_options(options))  # what parse_pull kept, it reads again


@PARSER_SETTINGS
@given(args=docker_args)
def test_docker_build_arguments_split_or_refuse(args: list[str]) -> None:
    CASES["docker_cli parse_build"] += 1
    build = _refused_or(lambda: parse_build(args))
    if build is not None:
        assert build.context in args
        assert build.context in build.other_args


@PARSER_SETTINGS
@given(args=docker_args)
def test_docker_command_line_splits_or_refuses(args: list[str]) -> None:
    CASES["docker_cli parse_docker_command"] += 1
    command = _refused_or(lambda: parse_docker_command(args))
    if command is not None:
        assert command.head + command.args == args
        assert command.action in (
            None,
            "pull",
            "run",
            "create",
            "build",
            "builder-create",
            "compose",
        )


# --------------------------------------------------------------------------- the server

GUN = "registry.test/fuzz/upload"
NEW_GUN = "registry.test/fuzz/nothing-here"


class Fuzzed:
    """One real server for the module, with one repository whose metadata seeds the
    mutations."""

    def __init__(self, server: ServerProcess, publisher: Trustkit) -> None:
        self.server = server
        self.publisher = publisher
        self.http = httpx.Client(timeout=60)
        self.seeds = {
            role: json.loads(self.http.get(server.metadata_url(GUN, f"{role}.json")).content)
            for role in ("root", "targets", "snapshot")
        }

    def upload(self, gun: str, body: bytes, content_type: bytes | None) -> httpx.Response:
        headers = [(b"Authorization", f"Bearer {self.server.token}".encode())]
        if content_type is not None:
            headers.append((b"Content-Type", content_type))
        return self.http.post(self.server.metadata_url(gun), content=body, headers=headers)

    def upload_files(self, gun: str, files: list[tuple[str, bytes]]) -> httpx.Response:
        parts = [("files", (name, data, "application/json")) for name, data in files]
        return self.http.post(
            self.server.metadata_url(gun), files=parts, headers=self.server.auth_headers()
        )


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    directory = tmp_path_factory.mktemp("fuzz-server")
    server = ServerProcess(directory / "data").start()
    publisher = publisher_cli(directory / "publisher" / ".trustkit", server.url)
    assert publisher("init", GUN).code == 0
    signed = publisher("sign", f"{GUN}:1.0", "--digest", DIGEST_A, "--size", "100")
    assert signed.code == 0, signed.err
    fuzzed = Fuzzed(server, publisher)
    yield fuzzed
    fuzzed.http.close()
    server.stop()


def assert_json_refusal(response: httpx.Response) -> None:
    """A 4xx whose body is JSON with an ``error`` field; never a 5xx."""
    where = f"{response.request.method} {response.request.url.path}"
    assert response.status_code < 500, f"{where}: {response.status_code} {response.text[:300]}"
    assert 400 <= response.status_code < 500, (
        f"{where}: accepted ({response.status_code}) {response.text[:300]}"
    )
    assert response.headers.get("content-type", "").startswith("application/json"), where
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str), body


def _multipart(boundary: bytes, parts: list[tuple[bytes, bytes]]) -> bytes:
    """A multipart body from raw (header block, content) pairs: nothing is escaped."""
    body = b""
    for headers, content in parts:
        body += b"--" + boundary + b"\r\n" + headers + b"\r\n\r\n" + content + b"\r\n"
    return body + b"--" + boundary + b"--\r\n"


_ROLE_FILENAMES = st.sampled_from(
    [
        *("root.json", "targets.json", "snapshot.json", "timestamp.json", "targets", "a/b.json"),
        *("../root.json", ".json", "", "root.json.json", "x" * 200 + ".json", "pending"),
    ]
)
_RAW_HEADER_BLOCKS = st.one_of(
    st.builds(
        lambda field, name: (
            b'Content-Disposition: form-data; name="' + field + b'"; filename="' + name + b'"'
        ),
        st.sampled_from([b"files", b"root", b"", b'"', b"\xff"]),
        st.binary(max_size=40) | _ROLE_FILENAMES.map(str.encode),
    ),
    st.binary(max_size=120),
)


@SERVER_SETTINGS
@given(
    boundary=st.sampled_from([b"b0undary", b"x", b""]) | st.binary(min_size=1, max_size=70),
    parts=st.lists(st.tuples(_RAW_HEADER_BLOCKS, st.binary(max_size=300)), max_size=4),
    raw=st.none() | st.binary(max_size=500),
    content_type=st.sampled_from(
        [
            *(b"multipart/form-data; boundary=", b"multipart/form-data", b"application/json"),
            *(b"multipart/form-data; boundary=;", b"multipart/mixed; boundary=", b"text/plain"),
            None,
        ]
    ),
    gun=st.sampled_from([GUN, NEW_GUN]),
)
def test_upload_random_multipart_bodies(
    fuzzed: Fuzzed,
    boundary: bytes,
    parts: list[tuple[bytes, bytes]],
    raw: bytes | None,
    content_type: bytes | None,
    gun: str,
) -> None:
    CASES["server upload: raw multipart bodies"] += 1
    body = raw if raw is not None else _multipart(boundary, parts)
    if content_type is not None and content_type.endswith(b"boundary="):
        content_type += boundary
    try:
        response = fuzzed.upload(gun, body, content_type)
    except httpx.LocalProtocolError:  # a header httpx itself will not send (\r, \n, \0)
        reject()
    if content_type is not None and any((b < 32 and b != 9) or b == 127 for b in content_type):
        # A control character in a header value is not HTTP (RFC 9110, 5.5): the HTTP
        # parser refuses the request before any route sees it.
        assert response.status_code == 400, response.text
        assert response.text == "Invalid HTTP request received."
        return
    assert_json_refusal(response)


@SERVER_SETTINGS
@given(
    files=st.lists(
        st.tuples(
            _ROLE_FILENAMES | st.text(max_size=40),
            st.binary(max_size=200) | st.sampled_from([b"{}", b"[]", b"null", b'{"signed": 1}']),
        ),
        min_size=1,
        max_size=5,
    ),
    gun=st.sampled_from([GUN, NEW_GUN]),
)
def test_upload_random_role_names(fuzzed: Fuzzed, files: list[tuple[str, bytes]], gun: str) -> None:
    CASES["server upload: role names and bytes"] += 1
    assert_json_refusal(fuzzed.upload_files(gun, files))


_STRINGS = st.text(max_size=20) | st.text(st.characters(categories=["Cs"]), max_size=3)
_NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=2**62 - 2, max_value=2**64 + 2),
    st.floats(allow_nan=True, allow_infinity=True),
)
json_values = st.recursive(
    st.none() | st.booleans() | _NUMBERS | _STRINGS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(_STRINGS | st.sampled_from(["signed", "_type", "version"]), children)
    ),
    max_leaves=20,
)


@st.composite
def hostile_json_bytes(draw: st.DrawFn) -> bytes:
    """Bytes that look like JSON: deep nesting, huge numbers, invalid UTF-8, or any value."""
    kind = draw(st.sampled_from(["deep", "number", "utf8", "value"]))
    if kind == "deep":
        depth = draw(st.integers(1, 100_000))
        opening, closing = draw(
            st.sampled_from([("[", "]"), ('{"a":', "}"), ('{"signed":[', "]}")])
        )
        return (opening * depth + "1" + closing * depth).encode()
    if kind == "number":
        digits = "9" * draw(st.integers(1, 200_000))
        number = draw(
            st.sampled_from([digits, f"-{digits}", f"1e{digits}", f"0.{digits}", f"{digits}.5"])
        )
        return ('{"signed": {"_type": "targets", "version": ' + number + "}}").encode()
    if kind == "utf8":
        junk = draw(st.binary(min_size=1, max_size=20).filter(_not_utf8))
        return b'{"signed": {"_type": "targets", "spec_version": "' + junk + b'"}}'
    return json.dumps(draw(json_values)).encode()


def _not_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return True
    return False


@SERVER_SETTINGS
@given(
    data=hostile_json_bytes(),
    role=st.sampled_from(["root", "targets", "snapshot", "a-delegated-role"]),
    gun=st.sampled_from([GUN, NEW_GUN]),
)
@example(data=b"[" * 100_000 + b"]" * 100_000, role="targets", gun=GUN)
@example(data=b'{"a":' * 100_000 + b"1" + b"}" * 100_000, role="root", gun=NEW_GUN)
@example(data=b'{"signed": {"version": ' + b"9" * 100_000 + b"}}", role="targets", gun=GUN)
@example(data=b'{"signed": {"version": 1e999999}}', role="targets", gun=GUN)
@example(data=b'{"signed": "\xff\xfe\xc3"}', role="targets", gun=GUN)
@example(data=b"\xef\xbb\xbf{}", role="root", gun=NEW_GUN)
def test_upload_hostile_json(fuzzed: Fuzzed, data: bytes, role: str, gun: str) -> None:
    CASES["server upload: hostile JSON"] += 1
    assert_json_refusal(fuzzed.upload_files(gun, [(f"{role}.json", data)]))


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a JSON document, the root included."""
    yield prefix
    if isinstance(node, dict | list):
        for key, child in node.items() if isinstance(node, dict) else enumerate(node):
            yield from _paths(child, (*prefix, key))


_METADATA_STRINGS = st.sampled_from(
    [
        *("2000-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "10000-01-01T00:00:00Z"),
        *("2030-02-30T00:00:00Z", "2030-01-01T00:00:00+01:00", "1.0.31", "2.0", "1"),
        *("ed25519", "ecdsa-sha2-nistp256", "rsassa-pss-sha256", "sha256", "sha512"),
        *("root", "targets", "snapshot", "timestamp", "*", "../x", "a" * 64, "0" * 128, ""),
    ]
)


def _like(value: Any) -> st.SearchStrategy[Any]:
    """Values of the same JSON type as ``value``, so a mutation often still parses and
    reaches the checks after parsing."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.integers() | st.sampled_from([0, -1, value + 1, 2**31, 2**63, 10**40])
    if isinstance(value, str):
        return _METADATA_STRINGS | _STRINGS | st.just(value + "0")
    if isinstance(value, list):
        return st.lists(json_values, max_size=3)
    return json_values


def _at(document: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        document = document[key]
    return document


def _mutate(document: Any, path: tuple[Any, ...], operation: str, value: Any) -> Any:
    """Replace, delete or wrap the node at ``path``, or add a key to it (a dict)."""
    parent: Any = None
    node = document
    for key in path:
        parent, node = node, node[key]
    if operation == "add" and isinstance(node, dict):
        node[f"x{len(node)}"] = value
    elif parent is None:
        return [document] if operation == "wrap" else value
    elif operation == "delete":
        del parent[path[-1]]
    elif operation == "wrap":
        parent[path[-1]] = [node]
    else:
        parent[path[-1]] = value
    return document


@SERVER_SETTINGS
@given(
    seed=st.sampled_from(["root", "targets", "snapshot"]),
    upload_as=st.sampled_from(["same", "root", "targets", "snapshot", "delegated"]),
    bump=st.booleans(),
    data=st.data(),
)
def test_upload_mutated_real_metadata(
    fuzzed: Fuzzed, seed: str, upload_as: str, bump: bool, data: st.DataObject
) -> None:
    """The repository's own signed metadata with a few values replaced (mostly by one of
    the same type), deleted, wrapped in a list, or keys added: much of it parses and
    reaches the key, version and signature checks."""
    CASES["server upload: mutated real metadata"] += 1
    document = copy.deepcopy(fuzzed.seeds[seed])
    # Gentle: values swapped for ones of the same type and keys added, so the metadata
    # mostly still parses; rough: anything goes.
    gentle = data.draw(st.sampled_from([True, True, False]), label="gentle")
    operations = ["like", "like", "like", "add"] if gentle else ["replace", "delete", "wrap"]
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        paths = list(_paths(document))
        leaves = [path for path in paths if not isinstance(_at(document, path), dict | list)]
        path = data.draw(st.sampled_from(leaves if gentle and leaves else paths), label="path")
        operation = data.draw(st.sampled_from(operations), label="op")
        if operation == "add" and not isinstance(_at(document, path), dict):
            path = path[:-1]  # add to the dict that holds the leaf
        like = _like(_at(document, path))
        value = data.draw(like if operation == "like" else json_values, label="value")
        document = _mutate(document, path, operation, value)
    signed = document.get("signed") if isinstance(document, dict) else None
    if bump and isinstance(signed, dict) and isinstance(signed.get("version"), int):
        signed["version"] += 1
    role = {"same": seed, "delegated": "team"}.get(upload_as, upload_as)
    body = json.dumps(document).encode()  # lone surrogates are written as \ud800 escapes
    assert_json_refusal(fuzzed.upload_files(GUN, [(f"{role}.json", body)]))


@SERVER_SETTINGS
@given(path=st.text(min_size=1, max_size=60), filename=st.text(max_size=30))
def test_post_to_random_paths(fuzzed: Fuzzed, path: str, filename: str) -> None:
    CASES["server upload: random paths"] += 1
    assume(filename not in ("snapshot.key", "timestamp.key"))  # a key rotation: a 200
    for target in (path, f"{GUN}/_trust/tuf/{filename}"):
        # httpx resolves dot segments, which would leave /v2/ (FastAPI's own 404)
        assume(all(segment not in (".", "..") for segment in target.split("/")))
        url = f"{fuzzed.server.url}/v2/{quote(target, safe='/')}"
        response = fuzzed.http.post(url, content=b"{}", headers=fuzzed.server.auth_headers())
        assert_json_refusal(response)


@SERVER_SETTINGS
@given(filename=st.text(max_size=40) | st.from_regex(r"[0-9]{1,25}\.[a-z]{1,9}\.(json|key)"))
@example(filename="999999999999999999.targets.json")
@example(filename="0.root.json")
def test_get_random_metadata_files(fuzzed: Fuzzed, filename: str) -> None:
    CASES["server GET: random metadata files"] += 1
    url = f"{fuzzed.server.metadata_url(GUN)}{quote(filename, safe='')}"
    response = fuzzed.http.get(url)  # no token: reads are open, key creation is not
    if response.status_code != 200:
        assert_json_refusal(response)


@SERVER_SETTINGS
@given(after=st.integers(), limit=st.integers())
def test_changefeed_query_numbers(fuzzed: Fuzzed, after: int, limit: int) -> None:
    CASES["server GET: changefeed after/limit"] += 1
    response = fuzzed.http.get(
        f"{fuzzed.server.url}/v2/_trust/changefeed",
        params={"after": str(after), "limit": str(limit)},
        headers=fuzzed.server.auth_headers(),
    )
    assert response.status_code < 500, f"after={after} limit={limit}: {response.text}"


def _with_float(signed: dict[str, Any]) -> None:
    signed["x-custom"] = 0.5  # an unrecognised field: TUF keeps it, and signs it


def _with_float_in_target(signed: dict[str, Any]) -> None:
    signed["targets"]["1.0"]["custom"] = {"build": 1.5}


def _with_surrogate(signed: dict[str, Any]) -> None:
    signed["targets"]["\ud800"] = signed["targets"]["1.0"]  # JSON "\ud800": a lone surrogate


def _with_surrogate_type(signed: dict[str, Any]) -> None:
    signed["_type"] = "\ud800"  # refused as the wrong type, with the type in the reason


@pytest.mark.parametrize(
    "edit", [_with_float, _with_float_in_target, _with_surrogate, _with_surrogate_type]
)
def test_upload_that_cannot_be_canonicalised_is_refused(
    fuzzed: Fuzzed, edit: Callable[[dict[str, Any]], None]
) -> None:
    """JSON allows floats and escaped lone surrogates; Python parses both, but canonical
    JSON, which signatures are checked over, encodes neither: tuf raises
    SerializationError while the server checks the signatures."""
    CASES["server: canonical-JSON regressions"] += 1
    document = copy.deepcopy(fuzzed.seeds["targets"])
    document["signed"]["version"] += 1
    edit(document["signed"])
    assert_json_refusal(fuzzed.upload_files(GUN, [("targets.json", json.dumps(document).encode())]))


def test_changefeed_after_beyond_64_bits_is_refused(fuzzed: Fuzzed) -> None:
    CASES["server: changefeed int64 regression"] += 1
    response = fuzzed.http.get(
        f"{fuzzed.server.url}/v2/_trust/changefeed",
        params={"after": str(2**63)},
        headers=fuzzed.server.auth_headers(),
    )
    assert response.status_code < 500, response.text


@pytest.mark.parametrize("path", ["a%0Ab", f"{GUN}/_trust/tuf/root%0A.json"])
def test_paths_with_a_newline_get_the_json_refusal(fuzzed: Fuzzed, path: str) -> None:
    """Starlette's ``{path:path}`` does not match across a newline, so such a request
    never reaches trustkit's routes: FastAPI answers ``{"detail": "Not Found"}``."""
    CASES["server: newline-path regression"] += 1
    response = fuzzed.http.post(
        f"{fuzzed.server.url}/v2/{path}", content=b"{}", headers=fuzzed.server.auth_headers()
    )
    assert_json_refusal(response)


def test_schemathesis_finds_no_server_error(fuzzed: Fuzzed, tmp_path: Path) -> None:
    """Schemathesis on the server's own OpenAPI schema, with the admin token."""
    report = tmp_path / "schemathesis.json"
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "run"),
        f"{fuzzed.server.url}/openapi.json",
        *("--checks", "not_a_server_error", "--max-examples", "100", "--seed", "1"),
        *("--phases", "examples,coverage,fuzzing", "--workers", "2"),
        *("--request-timeout", "60", "--header", f"Authorization: Bearer {fuzzed.server.token}"),
        *("--report", "json", "--report-json-path", str(report)),
    ]
    ran = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False
    )
    assert report.exists(), ran.stdout + ran.stderr
    result = json.loads(report.read_text())
    CASES["schemathesis (OpenAPI)"] += result["test_cases"]["generated"]
    assert result["operations"]["tested"] == result["operations"]["total"]
    assert not result["errors"], result["errors"]
    assert not result["failures"], ran.stdout[-4000:]
    assert ran.returncode == 0, ran.stdout[-4000:]


def test_fuzzing_changed_nothing(fuzzed: Fuzzed, tmp_path: Path) -> None:
    """No fuzzed upload was published: a fresh host sees the repository as it was."""
    host = Trustkit(tmp_path / "host" / ".trustkit", fuzzed.server.url)
    inspected = host("inspect", GUN, "--json")
    assert inspected.code == 0, inspected.err
    assert [(t["tag"], t["digest"]) for t in inspected.json["tags"]] == [("1.0", DIGEST_A)]
    versions = {role["role"]: role["version"] for role in inspected.json["roles"]}
    assert versions["targets"] == fuzzed.seeds["targets"]["signed"]["version"]
    assert versions["root"] == 1
    assert fuzzed.http.get(fuzzed.server.metadata_url(NEW_GUN, "root.json")).status_code == 404


def test_root_with_a_key_that_cannot_be_canonicalised_is_refused(fuzzed: Fuzzed) -> None:
    """A key id is the sha256 of the key's canonical JSON: a lone surrogate in a public
    key value cannot be encoded, which is a refusal, not a crash."""
    CASES["server: canonical-JSON regressions"] += 1
    document = copy.deepcopy(fuzzed.seeds["root"])
    document["signed"]["version"] += 1
    key = next(iter(document["signed"]["keys"].values()))
    key["keyval"]["public"] = "\ud800"
    assert_json_refusal(fuzzed.upload_files(GUN, [("root.json", json.dumps(document).encode())]))
