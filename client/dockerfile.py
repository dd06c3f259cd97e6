"""The ``FROM`` lines of a Dockerfile: find the base images, and pin them to digests.

This is what ``DOCKER_CONTENT_TRUST=1`` did for ``docker build``: every base image is
verified and its ``FROM`` line rewritten to ``IMAGE@sha256:…`` before the Dockerfile
reaches the builder. Build stages named by an earlier ``AS`` and ``scratch`` are not
images. Variables in ``FROM`` are expanded from global ``ARG`` defaults and
``--build-arg`` values, as the builder would; a ``FROM`` that cannot be expanded is
refused rather than guessed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from trustkit.errors import UsageError

__all__ = ["BaseImage", "base_images", "pin_base_images"]

# BuildKit reads parser directives only in the block of directive lines at the very top;
# the first line that is not one (a comment, a blank line, an instruction, or a directive
# it does not know) ends the block.
_DIRECTIVE = re.compile(r"^#[ \t]*([a-zA-Z][a-zA-Z0-9]*)[ \t]*=[ \t]*(.+?)[ \t]*$")
_KNOWN_DIRECTIVES = frozenset({"escape", "syntax", "check"})
_WORD = re.compile(r"[^\t\n\f\r ]+")  # Go's \s: what BuildKit splits arguments on
_VARIABLE = re.compile(r"\$(?:\{(\w+)(?:(:?[-+])([^}]*))?\}|(\w+))")
_BOM = "\ufeff"


@dataclass(frozen=True)
class BaseImage:
    """One ``FROM`` line's image: where it stands in the file and what it expands to."""

    line: int  # index of the line holding the image word (split on "\n")
    written: str  # as written in the Dockerfile
    image: str  # after variable expansion
    column: int | None = None  # where the image word starts; None: split across lines


@dataclass(frozen=True)
class _Word:
    text: str
    line: int  # the line its first character is on
    column: int | None  # where it starts on that line; None when split across lines


@dataclass(frozen=True)
class _Instruction:
    first_line: int
    keyword: str
    words: list[_Word]  # the arguments, after the keyword


def _escape_character(lines: list[str]) -> str:
    escape = "\\"
    for line in lines:
        match = _DIRECTIVE.match(line.strip())
        if not match or match.group(1).lower() not in _KNOWN_DIRECTIVES:
            break
        if match.group(1).lower() == "escape":
            if match.group(2) not in ("\\", "`"):
                raise UsageError(
                    f"the Dockerfile's escape directive '{match.group(2)}' is not \\ or `"
                )
            escape = match.group(2)
    return escape


def _trim_continuation(text: str, escape: str) -> tuple[str, bool]:
    """The line without a trailing escape character (and blanks after it), and if it had one."""
    match = re.search(re.escape(escape) + r"[ \t]*$", text)
    if match is None:
        return text, False
    return text[: match.start()], True


def _instructions(lines: list[str]) -> list[_Instruction]:
    """Instructions with the place of each word, continuation lines joined as BuildKit
    joins them: the escape character removed and nothing put in its place; comment
    lines and empty lines inside a continued instruction skipped."""
    escape = _escape_character(lines)
    found: list[_Instruction] = []
    index = 0
    while index < len(lines):
        first = index
        raw = lines[index].removesuffix("\r")
        index += 1
        stripped = raw.lstrip()
        if not stripped or stripped.startswith("#"):
            continue
        text, continued = _trim_continuation(stripped, escape)
        pieces = [(first, len(raw) - len(stripped), text)]
        while continued and index < len(lines):
            raw = lines[index].removesuffix("\r")
            index += 1
            if not raw.strip() or raw.lstrip().startswith("#"):
                continue
            text, continued = _trim_continuation(raw, escape)
            pieces.append((index - 1, 0, text))
        joined = "".join(text for _, _, text in pieces)
        places = [
            (line, column + offset) for line, column, text in pieces for offset in range(len(text))
        ]
        words = []
        for match in _WORD.finditer(joined):
            (line, column), (last_line, _) = places[match.start()], places[match.end() - 1]
            words.append(_Word(match.group(), line, column if line == last_line else None))
        if words:
            found.append(_Instruction(first, words[0].text.upper(), words[1:]))
    return found


def _expand(text: str, variables: Mapping[str, str], on_unset: Callable[[str], str]) -> str:
    """Expand ``$VAR``, ``${VAR}``, ``${VAR:-word}``, ``${VAR-word}``, ``${VAR:+word}``
    and ``${VAR+word}`` as the builder does; ``on_unset`` decides a bare unset ``$VAR``."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(4)
        operator, word = match.group(2), match.group(3)
        value = variables.get(name)
        if operator is None:
            return on_unset(name) if value is None else value
        present = bool(value) if operator.startswith(":") else value is not None
        if operator.endswith("+"):
            return _expand(word, variables, on_unset) if present else ""
        return value if present and value is not None else _expand(word, variables, on_unset)

    return _VARIABLE.sub(replace, text)


def _lines(text: str) -> list[str]:
    """The lines as the builder reads them: split on newlines only, without a BOM."""
    return text.removeprefix(_BOM).split("\n")


def base_images(text: str, build_args: Mapping[str, str]) -> list[BaseImage]:
    """Every base image a Dockerfile pulls, in order (stages and ``scratch`` skipped)."""
    variables: dict[str, str] = {}  # global ARGs that have a value
    stages: set[str] = set()
    images: list[BaseImage] = []
    seen_from = False
    for instruction in _instructions(_lines(text)):
        if instruction.keyword == "ARG" and not seen_from:
            for argument in instruction.words:
                name, has_default, default = argument.text.partition("=")
                if name in build_args:
                    variables[name] = build_args[name]
                elif has_default:
                    # A default may use ARGs declared above it; unset ones expand to "".
                    variables[name] = _expand(default.strip("\"'"), variables, lambda _: "")
            continue
        if instruction.keyword != "FROM":
            continue
        seen_from = True
        words = [word for word in instruction.words if not word.text.startswith("--")]
        if not words:
            raise UsageError(f"a FROM line on line {instruction.first_line + 1} names no image")
        written = words[0].text

        def unset(name: str, written: str = written) -> str:
            raise UsageError(
                f"cannot tell which image 'FROM {written}' names: ${name} has no value",
                hint=f"give it with --build-arg {name}=… or a default in an ARG before FROM",
            )

        image = _expand(written, variables, unset)
        names_a_stage = image.lower() in stages  # only stages defined above count
        if len(words) >= 3 and words[1].text.upper() == "AS":
            stages.add(words[2].text.lower())
        if image.lower() == "scratch" or names_a_stage:
            continue
        images.append(BaseImage(words[0].line, written, image, words[0].column))
    return images


def pin_base_images(
    text: str, build_args: Mapping[str, str], pin: Callable[[str], str]
) -> tuple[str, list[tuple[str, str]]]:
    """Rewrite every base image to what ``pin`` returns; returns the new text and pairs.

    Only the image word itself is replaced, where it stands; everything else in the
    file (flags, stage names, comments, other instructions) is kept byte for byte.
    """
    bom = _BOM if text.startswith(_BOM) else ""
    lines = _lines(text)
    pinned: list[tuple[str, str]] = []
    for base in base_images(text, build_args):
        reference = pin(base.image)
        if base.column is None:
            raise UsageError(
                f"cannot rewrite the FROM on line {base.line + 1}: its image is split "
                "across lines; write it on one line"
            )
        line = lines[base.line]
        end = base.column + len(base.written)
        assert line[base.column : end] == base.written
        lines[base.line] = line[: base.column] + reference + line[end:]
        pinned.append((base.image, reference))
    return bom + "\n".join(lines), pinned
