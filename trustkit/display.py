"""Text from metadata or from a server, made safe to show on a terminal.

Tag names, signer names, key names and a server's error details are chosen by whoever
wrote the metadata or runs the server. Shown raw, a name can carry terminal escape
sequences that erase or rewrite the line a reviewer reads (``ESC [2K``, a carriage
return), bidirectional overrides that show characters in another order, or invisible
characters that make two names look alike. Every character that is not plainly
printable is shown as a visible escape instead: ``\\x1b``, ``\\u202e``.

The CLI applies this once, where it prints (results, notes and errors); JSON output
needs nothing more, as JSON escapes control characters itself. This module never
decides what is valid: names are refused or accepted elsewhere, and shown here.
"""

from __future__ import annotations

__all__ = ["printable", "printable_lines"]


def printable(text: str) -> str:
    """``text`` with every character a terminal could act on or hide shown as an escape.

    Escaped: C0 and C1 control characters and DEL (line breaks and tabs too), format
    characters (bidirectional overrides and isolates, zero-width spaces and joiners,
    the byte order mark), line and paragraph separators, spaces other than the plain
    space, lone surrogates, private-use and unassigned code points: every character
    that Python's ``str.isprintable`` rejects. Letters of any script stay as they are
    (``café`` reads ``café``)."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)


def printable_lines(text: str) -> str:
    """``printable`` for text of several lines: its line breaks are kept, everything else
    is escaped. Where a line holds an untrusted name, escape that line with
    ``printable`` instead, so the name cannot start a line of its own."""
    return "\n".join(printable(line) for line in text.split("\n"))


def _escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
