"""What a name from metadata looks like on a terminal: every character that a terminal
acts on, or that hides or reorders text, shown as a visible escape; text of any script
as it is."""

from __future__ import annotations

import pytest

from trustkit.cli import for_terminal
from trustkit.display import printable, printable_lines
from trustkit.errors import ServerRefusedError, VerificationError


@pytest.mark.parametrize(
    ("char", "shown"),
    [
        # C0 controls, line breaks and tabs included
        ("\x00", "\\x00"),
        ("\x07", "\\x07"),
        ("\x08", "\\x08"),
        ("\t", "\\x09"),
        ("\n", "\\x0a"),
        ("\r", "\\x0d"),
        ("\x1b", "\\x1b"),
        ("\x7f", "\\x7f"),  # DEL
        # C1 controls: 0x9b is a one-byte CSI to some terminals
        ("\x85", "\\x85"),
        ("\x9b", "\\x9b"),
        ("\x9d", "\\x9d"),
        # bidirectional embeddings, overrides and isolates
        ("\u202a", "\\u202a"),
        ("\u202b", "\\u202b"),
        ("\u202c", "\\u202c"),
        ("\u202d", "\\u202d"),
        ("\u202e", "\\u202e"),
        ("\u2066", "\\u2066"),
        ("\u2067", "\\u2067"),
        ("\u2068", "\\u2068"),
        ("\u2069", "\\u2069"),
        ("\u200e", "\\u200e"),
        ("\u200f", "\\u200f"),
        ("\u061c", "\\u061c"),
        # zero-width and invisible characters
        ("\u200b", "\\u200b"),
        ("\u200c", "\\u200c"),
        ("\u200d", "\\u200d"),
        ("\u2060", "\\u2060"),
        ("\ufeff", "\\ufeff"),
        ("\u00ad", "\\xad"),
        ("\U000e0041", "\\U000e0041"),  # a tag character
        # separators and spaces that look like a plain space
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
        ("\u00a0", "\\xa0"),
        ("\u3000", "\\u3000"),
        # lone surrogates (JSON can carry them; printing one raw would crash)
        ("\ud800", "\\ud800"),
        ("\udfff", "\\udfff"),
    ],
)
def test_a_character_a_terminal_would_act_on_or_hide_is_shown_escaped(char: str, shown: str):
    assert printable(f"1.0{char}x") == f"1.0{shown}x"


@pytest.mark.parametrize(
    "name", ["1.0", "v1.2.3-rc.1_build", "café", "日本語", "Ünïcödé", "ok 🙂", "a b", "\\x1b"]
)
def test_readable_text_stays_as_it_is(name: str):
    assert printable(name) == name


def test_an_erasing_sequence_becomes_visible_text():
    assert printable("2.0\x1b[1A\x1b[2K\r1.0") == "2.0\\x1b[1A\\x1b[2K\\x0d1.0"


def test_text_of_several_lines_keeps_its_line_breaks_and_nothing_else():
    assert printable_lines("a\x1b[2K\nb\r\n") == "a\\x1b[2K\nb\\x0d\n"


def test_the_cli_escapes_each_line_of_a_listing_whole():
    """A listing is printed as lines: a name cannot start a line of its own."""
    assert for_terminal(["tag 1.0\n  2.0: fine", "next"]) == "tag 1.0\\x0a  2.0: fine\nnext"
    assert for_terminal("first\nsecond\x1b") == "first\nsecond\\x1b"


def test_an_error_is_rendered_escaped_and_kept_exact_for_json():
    detail = "no such tag\x1b[2K\r\u202e"
    error = ServerRefusedError(f"the server refused: {detail}", status=400, error="bad")
    assert error.diagnostics() == "the server refused: no such tag\\x1b[2K\\x0d\\u202e"
    assert error.message.endswith(detail)
    hinted = VerificationError("bad\nline", hint="see\x1b")
    assert hinted.diagnostics() == "bad\\x0aline\n  hint: see\\x1b"
