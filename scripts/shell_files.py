"""Write trustkit's man pages and shell completion files under a prefix (a venv):
run by scripts/setup, so the README's commands install them.

    PREFIX/share/man/man1/trustkit.1             every command
    PREFIX/share/man/man1/trustkit-COMMAND.1     one per command (man trustkit-sign)
    PREFIX/share/man/man1/trustkit-server.1      the server, token, export
    PREFIX/share/bash-completion/completions/{trustkit,trustkit-server}
    PREFIX/share/zsh/site-functions/{_trustkit,_trustkit-server}
    PREFIX/share/fish/vendor_completions.d/{trustkit,trustkit-server}.fish

Both are made from the commands' own argparse parsers (argparse-manpage, shtab).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from argparse_manpage.manpage import Manpage

from trustkit import __version__
from trustkit.cli.options import EXIT_CODES, PASSTHROUGH_COMMANDS
from trustkit.cli.parser import build_parser
from trustkit.completion import script

MANUAL = "trustkit manual"
ENVIRONMENT = (
    "TRUSTKIT_SERVER (or DOCKER_CONTENT_TRUST_SERVER), TRUSTKIT_TOKEN, TRUSTKIT_HOME "
    "(~/.trustkit), TRUSTKIT_POLICY, TRUSTKIT_MIRROR, TRUSTKIT_CA_FILE, TRUSTKIT_AGENT, "
    "TRUSTKIT_DEADLINE, TRUSTKIT_DOCKER, TRUSTKIT_INSECURE_REGISTRIES, "
    "TRUSTKIT_REGISTRY_CA, TRUSTKIT_*_PASSPHRASE (or DOCKER_CONTENT_TRUST_*_PASSPHRASE)."
)


def manpage(
    name: str,
    parser: argparse.ArgumentParser,
    description: str,
    see_also: str,
    exit_status: str = EXIT_CODES.removeprefix("exit codes: ") + ".",
    environment: str = ENVIRONMENT,
) -> str:
    """The page ``name``(1) of ``parser``, as plain ASCII roff."""
    page = Manpage(
        parser,
        {
            "project_name": "trustkit",
            "version": __version__,
            "manual_title": MANUAL,
            "description": description,
        },
    )
    page.add_section("exit status", "=", exit_status)
    page.add_section("environment", "=", environment)
    page.add_section("see also", "=", see_also)
    lines = str(page).splitlines()
    parser._manpage = []  # type: ignore[attr-defined]  # the sections are the page's
    # The title names the page as man finds it (trustkit-key, not "TRUSTKIT KEY").
    title = name.upper().replace("-", "\\-")
    head = lines[0].split('"', 2)
    lines[0] = f'.TH {title} "{head[1]}"{head[2]}'
    # Any character beyond ASCII as a groff escape: renders under any locale.
    return "".join(c if ord(c) < 128 else f"\\[u{ord(c):04X}]" for c in "\n".join(lines) + "\n")


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def write_man_pages(man1: Path) -> list[Path]:
    from server.main import command_parser

    man1.mkdir(parents=True, exist_ok=True)
    trustkit = build_parser()
    commands = subcommands(trustkit)
    pages = {"trustkit": manpage("trustkit", trustkit, "sign container image tags and verify them",
                                 ", ".join(f"trustkit-{n}(1)" for n in commands)
                                 + ", trustkit-server(1)")}  # fmt: skip
    for name, sub in commands.items():
        pages[f"trustkit-{name}"] = manpage(
            f"trustkit-{name}", sub, sub.description or name, "trustkit(1)"
        )
    pages["trustkit-server"] = manpage(
        "trustkit-server", command_parser(), "the trustkit metadata server", "trustkit(1)"
    )
    written = []
    for name, text in pages.items():
        path = man1 / f"{name}.1"
        path.write_text(text)
        written.append(path)
    return written


def write_completions(share: Path) -> list[Path]:
    from server.main import command_parser

    written = []
    for prog, parser, passthrough in (
        ("trustkit", build_parser(), PASSTHROUGH_COMMANDS),
        ("trustkit-server", command_parser(), ()),
    ):
        for shell, path in (
            ("bash", share / "bash-completion" / "completions" / prog),
            ("zsh", share / "zsh" / "site-functions" / f"_{prog}"),
            ("fish", share / "fish" / "vendor_completions.d" / f"{prog}.fish"),
        ):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(script(parser, shell, passthrough))
            written.append(path)
    return written


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python scripts/shell_files.py PREFIX", file=sys.stderr)
        return 2
    share = Path(argv[0]) / "share"
    written = write_man_pages(share / "man" / "man1") + write_completions(share)
    print(f"wrote {len(written)} man pages and completion files under {share}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
