"""The ``FROM`` lines of a Dockerfile: find the base images, and pin them to digests.

This is what ``DOCKER_CONTENT_TRUST=1`` did for ``docker build``: every base image is
verified and its ``FROM`` line rewritten to ``IMAGE@sha256:…`` before the Dockerfile
reaches the builder. Build stages named by an earlier ``AS`` and ``scratch`` are not
images. Variables in ``FROM`` are expanded from global ``ARG`` defaults and
``--build-arg`` values, as the builder would; a ``FROM`` that cannot be expanded is
refused rather than guessed.

The gate must read the file exactly as BuildKit does, or an image could reach the
builder unverified. Where trustkit's reading might differ from BuildKit's (odd control
characters or Unicode blanks, quoting in FROM, heredocs it cannot delimit, an odd
stage name), the Dockerfile is refused rather than guessed; and after rewriting, every
line that starts with ``FROM`` must be one trustkit handled.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from trustkit.errors import UsageError

__all__ = ["BaseImage", "base_images", "pin_base_images"]

# BuildKit reads parser directives only in the block of directive lines at the very top;
# the first line that is not one (a comment, a blank line, an instruction, or a directive
# it does not know) ends the block.
_DIRECTIVE = re.compile(r"^#[ \t]*([a-zA-Z][a-zA-Z0-9]*)[ \t]*=[ \t]*(.+?)[ \t]*$")
_KNOWN_DIRECTIVES = frozenset({"escape", "syntax", "check"})
_WORD = re.compile(r"[^\t\n\v\f\r ]+")  # what BuildKit splits arguments on
_VARIABLE = re.compile(r"\$(?:\{(\w+)(?:(:?[-+])([^}]*))?\}|(\w+))")
_BOM = "\ufeff"
_STAGE_NAME = re.compile(r"[a-z][a-z0-9\-_.]*")  # BuildKit's, on the lowercased name
_FROM_FLAG = re.compile(r"--[A-Za-z][A-Za-z0-9-]*=[^\s'\"\\`]*")
_IMAGE_WORD = re.compile(r"[^\s'\"\\`{}$]+")  # what an expanded image may be made of
_HEREDOC = re.compile(r"(\d*)<<(-?)(.*)")
_HEREDOC_KEYWORDS = frozenset({"RUN", "COPY", "ADD"})
_UNCLEAR = object()  # an ARG value trustkit cannot be sure to read as BuildKit does


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
    text: str  # the whole instruction, continuation lines joined


def _refuse_odd_characters(text: str) -> None:
    """Refuse characters BuildKit might read differently from trustkit: control
    characters other than tab and newline, a carriage return not before a newline,
    blanks other than the ASCII space and tab, and a byte-order mark after the start."""
    lines = text.split("\n")
    for number, line in enumerate(lines):
        for position, character in enumerate(line):
            if character == "\r":
                if position == len(line) - 1 and number < len(lines) - 1:
                    continue
                what = "a carriage return that does not end the line"
            elif character == _BOM:
                if number == 0 and position == 0:
                    continue
                what = "a byte-order mark (U+FEFF) after the start of the file"
            elif character != "\t" and unicodedata.category(character) == "Cc":
                what = f"the control character U+{ord(character):04X}"
            elif character.isspace() and character not in " \t":
                what = f"the blank U+{ord(character):04X} (not a plain space)"
            else:
                continue
            raise UsageError(
                f"line {number + 1} of the Dockerfile has {what}, which the builder may read "
                "differently from trustkit; replace it with a plain space or remove it"
            )


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


def _shell_words(text: str, line: int) -> list[str]:
    """Words as BuildKit's shell lexer splits a line when it looks for heredocs: on
    blanks outside quotes, with quotes and backslash escapes kept in the word."""
    words: list[str] = []
    word: list[str] = []
    quote = ""
    characters = iter(text)
    for character in characters:
        if quote:
            word.append(character)
            if character == quote:
                quote = ""
            elif character == "\\" and quote == '"':
                word.append(next(characters, ""))
        elif character in " \t":
            if word:
                words.append("".join(word))
                word = []
        else:
            word.append(character)
            if character in "'\"":
                quote = character
            elif character == "\\":
                word.append(next(characters, ""))
    if quote:
        raise UsageError(
            f"cannot tell whether the instruction on line {line + 1} starts a heredoc: it has "
            "an unclosed quote; close it"
        )
    if word:
        words.append("".join(word))
    return words


def _heredocs(instruction: _Instruction) -> list[tuple[str, bool]]:
    """The heredocs a RUN, COPY or ADD opens, in order: (terminator, strip leading tabs)."""
    keyword, words = instruction.keyword, instruction.words
    if keyword == "ONBUILD" and words and words[0].text.isascii():
        keyword = words[0].text.upper()
    if keyword not in _HEREDOC_KEYWORDS or "<<" not in instruction.text:
        return []
    found = []
    for word in _shell_words(instruction.text, instruction.first_line):
        if "<<" not in word:
            continue
        unclear = "$" in word or "\\" in word
        match = _HEREDOC.fullmatch(word)
        name = match.group(3) if match else ""
        if name[:1] in ("'", '"') and len(name) > 1 and name[-1] == name[0]:
            name = name[1:-1]
        if match and match.group(3) and (unclear or not name or set(name) & set("'\"<")):
            raise UsageError(
                f"cannot tell where the heredoc '{word}' on line {instruction.first_line + 1} "
                "ends; name it plainly, e.g. <<EOF"
            )
        if unclear:
            raise UsageError(
                f"cannot tell whether '{word}' on line {instruction.first_line + 1} starts a "
                "heredoc; write the heredoc plainly, e.g. <<EOF"
            )
        if match and name:
            found.append((name, match.group(2) == "-"))
    return found


def _instructions(lines: list[str]) -> list[_Instruction]:
    """Instructions with the place of each word, continuation lines joined as BuildKit
    joins them: the escape character removed and nothing put in its place; comment
    lines and empty lines inside a continued instruction skipped; heredoc bodies of
    RUN, COPY and ADD skipped."""
    escape = _escape_character(lines)
    found: list[_Instruction] = []
    index = 0
    while index < len(lines):
        first = index
        raw = lines[index].removesuffix("\r")
        index += 1
        stripped = raw.lstrip(" \t")
        if not stripped or stripped.startswith("#"):
            continue
        text, continued = _trim_continuation(stripped, escape)
        pieces = [(first, len(raw) - len(stripped), text)]
        while continued and index < len(lines):
            raw = lines[index].removesuffix("\r")
            index += 1
            if not raw.strip(" \t") or raw.lstrip(" \t").startswith("#"):
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
        if not words:
            continue
        keyword = words[0].text.upper() if words[0].text.isascii() else words[0].text
        instruction = _Instruction(first, keyword, words[1:], joined)
        found.append(instruction)
        for name, strip_tabs in _heredocs(instruction):
            while index < len(lines):
                body = lines[index].removesuffix("\r")
                index += 1
                if (body.lstrip("\t") if strip_tabs else body) == name:
                    break
                if _LOOKS_LIKE_IMAGE_COPY.match(body):
                    # A builder without heredocs (an older frontend) reads this line
                    # as an instruction, which would take files from an unpinned image.
                    raise UsageError(
                        f"line {index} inside the heredoc opened on line {first + 1} reads "
                        "like an instruction that takes files from an image; builders "
                        "without heredocs would run it: move it out of the heredoc"
                    )
            else:
                raise UsageError(
                    f"the heredoc <<{name} opened on line {first + 1} never ends; "
                    f"end it with a line that is just {name}"
                )
    return found


MAX_EXPANDED = 64 * 1024
# A COPY or RUN (ONBUILD too) naming an image with --from or a mount's from=.
_LOOKS_LIKE_IMAGE_COPY = re.compile(
    r"(?is)\s*(?:onbuild\s+)?(?:copy|run|add)\b.*(?:--from|--mount|\bfrom\s*=)"
)


def _expand(
    text: str,
    variables: Mapping[str, str],
    on_unset: Callable[[str], str],
    unclear: Callable[[str], bool] = lambda _: False,
) -> str:
    """Expand ``$VAR``, ``${VAR}``, ``${VAR:-word}``, ``${VAR-word}``, ``${VAR:+word}``
    and ``${VAR+word}`` as the builder does; ``on_unset`` decides a bare unset ``$VAR``,
    and a variable ``unclear`` says trustkit cannot read is refused."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(4)
        if unclear(name):
            raise UsageError(
                f"cannot tell the value of ${name}: its ARG default has quotes or escapes "
                "trustkit does not read as the builder does; write it plainly",
            )
        operator, word = match.group(2), match.group(3)
        value = variables.get(name)
        if operator is None:
            return on_unset(name) if value is None else value
        present = bool(value) if operator.startswith(":") else value is not None
        if operator.endswith("+"):
            return _expand(word, variables, on_unset, unclear) if present else ""
        if present and value is not None:
            return value
        return _expand(word, variables, on_unset, unclear)

    expanded = _VARIABLE.sub(replace, text)
    if len(expanded) > MAX_EXPANDED:
        # ARG defaults that use each other can double with every word: refuse before
        # the doubling fills memory.
        raise UsageError(
            f"a variable in this Dockerfile expands to more than {MAX_EXPANDED} characters",
            hint="no image reference is that long; check the ARG lines",
        )
    return expanded


def _lines(text: str) -> list[str]:
    """The lines as the builder reads them: split on newlines only, without a BOM."""
    return text.removeprefix(_BOM).split("\n")


def _arg_default(default: str, escape: str) -> str | None:
    """An ARG default without its quotes, or None when trustkit cannot be sure to read
    it as the builder does (inner quotes, escapes, ``$`` in single quotes)."""
    if len(default) > 1 and default[0] in "'\"" and default[-1] == default[0]:
        inner = default[1:-1]
        if set(inner) & {"'", '"', "\\", escape} or (default[0] == "'" and "$" in inner):
            return None
        return inner
    if set(default) & {"'", '"', "\\", escape}:
        return None
    return default


def _read(
    text: str, build_args: Mapping[str, str], contexts: frozenset[str] = frozenset()
) -> tuple[list[BaseImage], set[int]]:
    """Every base image, and the lines of every FROM instruction (images or not).
    ``contexts`` names the build contexts given on the command line (``--from=NAME``
    may take files from them; the gate verifies those that are images)."""
    _refuse_odd_characters(text)
    lines = _lines(text)
    escape = _escape_character(lines)
    variables: dict[str, str] = {}  # global ARGs that have a value
    unclear: set[str] = set()  # global ARGs whose value trustkit cannot be sure of
    stages: set[str] = set()
    images: list[BaseImage] = []
    handled: set[int] = set()
    seen_from = False
    stage_count = 0
    for instruction in _instructions(lines):
        if instruction.keyword == "ARG" and not seen_from:
            for argument in instruction.words:
                name, has_default, default = argument.text.partition("=")
                unclear.discard(name)
                if name in build_args:
                    variables[name] = build_args[name]
                elif has_default:
                    value = _arg_default(default, escape)
                    if value is None:
                        unclear.add(name)
                        variables.pop(name, None)
                    else:
                        # A default may use ARGs declared above it; unset ones expand to "".
                        variables[name] = _expand(
                            value, variables, lambda _: "", unclear.__contains__
                        )
                elif name in variables:
                    unclear.add(name)  # declared again without a value: unset or not?
                    del variables[name]
            continue
        if instruction.keyword in ("COPY", "RUN", "ONBUILD"):
            _refuse_images_outside_from(instruction, stages | contexts, stage_count)
        if instruction.keyword != "FROM":
            continue
        seen_from = True
        stage_count += 1
        images.extend(_from(instruction, variables, unclear, stages, escape))
        handled.add(instruction.first_line)
    return images, handled


def _mount_sources(value: str) -> list[str]:
    """The ``from=`` of a ``RUN --mount=…`` value, however it is quoted or cased."""
    import csv
    import io

    rows = list(csv.reader(io.StringIO(value)))
    fields = rows[0] if rows else []
    return [
        field.partition("=")[2].strip()
        for field in fields
        if field.partition("=")[0].strip().lower() == "from"
    ]


def _refuse_images_outside_from(
    instruction: _Instruction, stages: set[str], stage_count: int
) -> None:
    """``COPY --from=IMAGE`` and ``RUN --mount=from=IMAGE`` pull an image the gate does
    not pin there: only earlier stages (by name or number) and named build contexts
    (in ``stages``) are accepted."""
    words = instruction.words
    keyword = instruction.keyword
    if keyword == "ONBUILD" and words and words[0].text.isascii():
        keyword, words = words[0].text.upper(), words[1:]
    for word in words:
        if not word.text.startswith("--"):
            break
        sources: list[str] = []
        if keyword in ("RUN", "COPY") and (
            # a backtick too: "# escape=`" makes it the escape character
            any(mark in word.text for mark in ("'", '"', "\\", "`")) or not word.text.isascii()
        ):
            # BuildKit takes quotes and escapes out of flags before reading them: a
            # mount or a --from spelled with them could name an image unseen here.
            raise UsageError(
                f"line {instruction.first_line + 1} has a flag with quotes, escapes or "
                f"characters other than ASCII ({word.text}); write it plainly",
                hint="e.g. RUN --mount=type=cache,target=/c …",
            )
        flag, _, value = word.text.partition("=")
        # Read as BuildKit reads them: a mount's fields as CSV, their keys in any case;
        # flag names are matched in any case too, to be safe.
        if keyword == "COPY" and flag.lower() == "--from":
            sources.append(value)
        elif keyword == "RUN" and flag.lower() == "--mount":
            sources += _mount_sources(value)
        for source in sources:
            earlier_stage = source.lower() in stages or (
                source.isascii() and source.isdigit() and int(source) < stage_count
            )
            if not earlier_stage:
                raise UsageError(
                    f"line {instruction.first_line + 1} takes files from '{source}', which is "
                    "not an earlier build stage: an image named there is not verified",
                    hint=f"add a stage 'FROM {source} AS NAME' above it (trustkit pins FROM "
                    "lines) and use --from=NAME",
                )


def _from(
    instruction: _Instruction,
    variables: Mapping[str, str],
    unclear: set[str],
    stages: set[str],
    escape: str,
) -> list[BaseImage]:
    """The image of one FROM instruction (none for a stage or scratch); adds its stage."""
    number = instruction.first_line + 1
    plainly = f"cannot tell which image line {number} pulls"
    if not instruction.text.isascii():
        raise UsageError(f"{plainly}: its FROM has characters other than ASCII; write it plainly")
    flags = 0
    while flags < len(instruction.words) and instruction.words[flags].text.startswith("--"):
        flag = instruction.words[flags].text
        if not _FROM_FLAG.fullmatch(flag) or escape in flag:
            raise UsageError(
                f"{plainly}: the FROM flag '{flag}' is not written as --NAME=VALUE; write it "
                "so, e.g. --platform=linux/amd64"
            )
        flags += 1
    words = instruction.words[flags:]
    if not words:
        raise UsageError(f"a FROM line on line {number} names no image")
    if len(words) not in (1, 3) or (len(words) == 3 and words[1].text.lower() != "as"):
        raise UsageError(
            f"{plainly}: a FROM is 'FROM [--platform=…] IMAGE [AS NAME]', with nothing "
            "more; write it so"
        )
    written = words[0].text
    if set(written) & {"'", '"', "\\", "`"}:
        raise UsageError(
            f"{plainly}: quotes and escapes in '{written}' are read by the builder's shell "
            "rules; write the image plainly"
        )

    def unset(name: str) -> str:
        raise UsageError(
            f"cannot tell which image 'FROM {written}' names: ${name} has no value",
            hint=f"give it with --build-arg {name}=… or a default in an ARG before FROM",
        )

    image = _expand(written, variables, unset, unclear.__contains__)
    if not _IMAGE_WORD.fullmatch(image):
        raise UsageError(
            f"{plainly}: 'FROM {written}' expands to '{image}', which is not a plain image "
            "name; write it plainly"
        )
    names_a_stage = image.lower() in stages  # only stages defined above count
    if len(words) == 3:
        stage = words[2].text.lower()
        if not _STAGE_NAME.fullmatch(stage):
            raise UsageError(
                f"the stage name '{words[2].text}' on line {number} is not one the builder "
                "accepts; name it with a letter, then letters, digits, '-', '_' or '.'"
            )
        stages.add(stage)
    if image.lower() == "scratch" or names_a_stage:
        return []
    return [BaseImage(words[0].line, written, image, words[0].column)]


def base_images(text: str, build_args: Mapping[str, str]) -> list[BaseImage]:
    """Every base image a Dockerfile pulls, in order (stages and ``scratch`` skipped)."""
    return _read(text, build_args)[0]


def _refuse_unhandled_from_lines(text: str, handled: set[int], escape: str) -> None:
    """The last check, on the rewritten text: every line that starts with FROM (also
    inside heredocs and continued instructions) must be a FROM trustkit read. A line
    that merely starts spelling it before an escape (``FR\\``) counts too."""
    for number, line in enumerate(_lines(text)):
        words = line.split()
        if not words or number in handled:
            continue
        token = words[0].lower()
        bare = token.rstrip("\\`" + escape)
        if bare == "from" or (bare != token and bare and "from".startswith(bare)):
            raise UsageError(
                f"cannot tell which image line {number + 1} pulls; write it plainly as "
                "its own FROM instruction, outside heredocs and continued lines"
            )


# BuildKit's directive grammar (Go's \s is these five characters).
_GO_DIRECTIVE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*\Z")


def _frontend(lines: list[str]) -> tuple[int, int, str] | None:
    """(line, column, image) of the frontend the builder pulls and runs to read the rest
    of the file, as BuildKit's DetectSyntax finds it: a ``#syntax=IMAGE [ARGS]``
    directive at the top (after a ``#!`` line); failing that, BuildKit also reads
    ``//syntax=`` lines and a JSON ``{"syntax": …}`` document, which are refused."""
    start = 1 if lines and lines[0].startswith("#!") else 0
    found = _syntax_directive(lines, start, "#")
    if found is None and (
        _syntax_directive(lines, start, "//") is not None or _json_syntax(lines[start:])
    ):
        raise UsageError(
            "the Dockerfile names its frontend in a // or JSON directive, which trustkit "
            "does not pin",
            hint="name it as '# syntax=IMAGE' on the first line",
        )
    return found


def _syntax_directive(lines: list[str], start: int, comment: str) -> tuple[int, int, str] | None:
    """The syntax directive among the directive lines at the top, read as BuildKit's
    DirectiveParser reads them: the first line that is not a known directive, or a
    directive given twice, ends them."""
    seen: set[str] = set()
    for number in range(start, len(lines)):
        line = lines[number].removesuffix("\r")
        if not line.startswith(comment):
            break
        body = line[len(comment) :].lstrip()
        match = _GO_DIRECTIVE.match(body)
        if match is None or match.group(1).lower() not in _KNOWN_DIRECTIVES:
            break
        key = match.group(1).lower()
        if key in seen:
            break
        seen.add(key)
        if key == "syntax":
            column = len(line) - len(body) + match.start(2)
            return number, column, match.group(2).split(" ", 1)[0]
    return None


def _json_syntax(lines: list[str]) -> bool:
    try:
        document = json.loads("\n".join(lines))
    except ValueError:
        return False
    return isinstance(document, dict) and "syntax" in document


def _pin_frontend(lines: list[str], pin: Callable[[str], str]) -> None:
    frontend = _frontend(lines)
    if frontend is None:
        return
    number, column, image = frontend
    if not _IMAGE_WORD.fullmatch(image):
        raise UsageError(f"the syntax directive on line {number + 1} is not a plain image name")
    reference = pin(image)
    if not _IMAGE_WORD.fullmatch(reference) or not reference.isascii():
        raise UsageError(f"cannot write '{reference}' into the syntax directive")
    line = lines[number]
    lines[number] = line[:column] + reference + line[column + len(image) :]


def pin_base_images(
    text: str,
    build_args: Mapping[str, str],
    pin: Callable[[str], str],
    contexts: frozenset[str] = frozenset(),
) -> tuple[str, list[tuple[str, str]]]:
    """Rewrite every base image to what ``pin`` returns; returns the new text and pairs.

    The frontend of a ``# syntax=IMAGE`` directive is pinned first, the same way.
    Only the image word itself is replaced, where it stands; everything else in the
    file (flags, stage names, comments, other instructions) is kept byte for byte.
    """
    bom = _BOM if text.startswith(_BOM) else ""
    images, handled = _read(text, build_args, contexts)
    lines = _lines(text)
    _pin_frontend(lines, pin)
    pinned: list[tuple[str, str]] = []
    for base in images:
        reference = pin(base.image)
        if base.column is None:
            raise UsageError(
                f"cannot rewrite the FROM on line {base.line + 1}: its image is split "
                "across lines; write it on one line"
            )
        if not _IMAGE_WORD.fullmatch(reference) or not reference.isascii():
            raise UsageError(f"cannot write '{reference}' into the FROM on line {base.line + 1}")
        line = lines[base.line]
        end = base.column + len(base.written)
        assert line[base.column : end] == base.written
        lines[base.line] = line[: base.column] + reference + line[end:]
        pinned.append((base.image, reference))
    rewritten = bom + "\n".join(lines)
    _refuse_unhandled_from_lines(rewritten, handled, _escape_character(lines))
    again, _ = _read(rewritten, build_args, contexts)
    if [base.image for base in again] != [reference for _, reference in pinned]:
        raise UsageError(
            "cannot tell which images the rewritten Dockerfile pulls; write its FROM lines "
            "plainly, one image per FROM"
        )
    return rewritten, pinned
