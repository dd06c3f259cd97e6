"""Shell completion and man pages, made from the parsers: bash completes commands and
actions (driven non-interactively: the script loaded, COMP_WORDS and COMP_CWORD set,
the completion function called, COMPREPLY read), Docker's words after a passthrough
command are never completed with trustkit's options, zsh and fish scripts are valid,
and scripts/setup installs man pages that name every command."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from trustkit.cli.parser import build_parser

REPO = Path(__file__).resolve().parent.parent
SHARE = Path(sys.prefix) / "share"


def _script(prog: str, shell: str) -> str:
    module = "trustkit" if prog == "trustkit" else "server"
    done = subprocess.run(
        [sys.executable, "-m", module, "completion", shell],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


@pytest.fixture(scope="module")
def bash_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("completion") / "trustkit.bash"
    path.write_text(_script("trustkit", "bash"))
    return path


def complete(script: Path, *words: str, prog: str = "trustkit") -> list[str]:
    """What bash offers for the last of ``words`` (the word being completed)."""
    line = " ".join([prog, *words])
    driver = f"""
source {script}
COMP_WORDS=({prog} {" ".join(f"'{w}'" for w in words)})
COMP_CWORD={len(words)}
COMP_LINE="{line}"
COMP_POINT=${{#COMP_LINE}}
function=$(complete -p {prog} | sed -E 's/.* -F ([^ ]+) .*/\\1/')
"$function" {prog} "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", driver],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=script.parent,
        check=True,
    )
    return [line for line in done.stdout.splitlines() if line]


def test_bash_completes_a_command(bash_script: Path):
    assert complete(bash_script, "ver") == ["verify", "verify-file"]
    assert complete(bash_script, "verify-") == ["verify-file"]


def test_bash_completes_the_actions_of_key(bash_script: Path):
    offered = complete(bash_script, "key", "")

    assert offered == ["list", "generate", "export", "import", "load", "passwd", "remove", "rotate"]


def test_bash_completes_options_and_choices(bash_script: Path):
    assert "--key-type" in complete(bash_script, "init", "--")
    assert complete(bash_script, "init", "--key-type", "") == ["ed25519", "ecdsa"]
    assert "--quiet" in complete(bash_script, "verify", "--")


def test_bash_completes_file_names_where_an_option_takes_a_file(bash_script: Path):
    (bash_script.parent / "ci.token").write_text("x")

    assert complete(bash_script, "verify", "--token-file", "ci.") == ["ci.token"]


def test_bash_offers_no_trustkit_option_among_dockers_words(bash_script: Path):
    """After `trustkit run`'s own options, every word is Docker's."""
    for words in (
        ("run", "--rm", "--"),
        ("run", "--via", "docker", "busybox", "--"),
        ("-v", "docker", "run", "--"),
        ("pull", "-q", "--"),
    ):
        offered = complete(bash_script, *words)
        assert "--server" not in offered and "--policy" not in offered, words


def test_bash_still_offers_trustkits_options_right_after_a_passthrough_command(
    bash_script: Path,
):
    offered = complete(bash_script, "run", "--")

    assert "--via" in offered and "--policy" in offered
    assert "--quiet" not in offered  # run's -q/--quiet is Docker's


def test_a_passthrough_command_hands_dockers_words_to_dockers_completion(
    bash_script: Path, tmp_path: Path
):
    """With Docker's bash completion loaded (a stand-in _docker here, which records
    what it was asked), Docker's words reach it as `docker run …` would."""
    fake = tmp_path / "docker-completion.bash"
    fake.write_text('_docker() { COMPREPLY=("words=${COMP_WORDS[*]}" "cword=$COMP_CWORD"); }\n')
    combined = tmp_path / "both.bash"
    combined.write_text(bash_script.read_text() + f"\nsource {fake}\n")

    offered = complete(combined, "--server", "http://x", "run", "--via", "docker", "--rm", "bu")

    assert offered == ["words=docker run --rm bu", "cword=3"]
    assert complete(combined, "docker", "ps", "-") == ["words=docker ps -", "cword=2"]


def test_trustkit_server_completion_knows_its_commands(tmp_path: Path):
    script = tmp_path / "trustkit-server.bash"
    script.write_text(_script("trustkit-server", "bash"))

    assert complete(script, "tok", prog="trustkit-server") == ["token"]
    assert complete(script, "token", "", prog="trustkit-server") == [
        "create",
        "list",
        "revoke",
        "generate",
    ]
    assert "--to" in complete(script, "export", "--", prog="trustkit-server")


@pytest.mark.parametrize("prog", ["trustkit", "trustkit-server"])
@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_scripts_are_valid(prog: str, shell: str, tmp_path: Path):
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed (scripts/system-packages installs it)")
    script = tmp_path / f"{prog}.{shell}"
    script.write_text(_script(prog, shell))

    checked = subprocess.run(
        [shell, "-n", str(script)], capture_output=True, text=True, timeout=60, check=False
    )

    assert checked.returncode == 0, checked.stderr
    assert "verify" in script.read_text() or prog == "trustkit-server"


def test_an_unknown_shell_is_a_usage_error():
    done = subprocess.run(
        [sys.executable, "-m", "trustkit", "completion", "tcsh"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2
    assert "invalid choice: 'tcsh'" in done.stderr


def _commands() -> list[str]:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return list(subparsers.choices)  # type: ignore[attr-defined]


def test_setup_installed_the_completion_files():
    for path in (
        SHARE / "bash-completion" / "completions" / "trustkit",
        SHARE / "bash-completion" / "completions" / "trustkit-server",
        SHARE / "zsh" / "site-functions" / "_trustkit",
        SHARE / "fish" / "vendor_completions.d" / "trustkit.fish",
    ):
        assert path.is_file(), f"{path} missing: scripts/setup makes it"
    assert "_shtab_trustkit" in (SHARE / "bash-completion/completions/trustkit").read_text()


def test_setup_installed_a_man_page_naming_every_command():
    page = SHARE / "man" / "man1" / "trustkit.1"
    assert page.is_file(), "scripts/setup writes the man pages"
    text = page.read_text()

    assert text.startswith(".TH TRUSTKIT ")
    for command in _commands():
        assert f"trustkit {command.replace('-', chr(92) + '-')}" in text, command
        sub = SHARE / "man" / "man1" / f"trustkit-{command}.1"
        assert sub.read_text().startswith(
            f".TH TRUSTKIT\\-{command.upper().replace('-', chr(92) + '-')} "
        )
    server = (SHARE / "man" / "man1" / "trustkit-server.1").read_text()
    assert "token" in server and "export" in server and "\\-\\-data\\-dir" in server


@pytest.mark.parametrize("name", ["trustkit", "trustkit-key", "trustkit-server"])
def test_the_man_pages_render_without_a_warning(name: str):
    if shutil.which("groff") is None:
        pytest.skip("groff is not installed")
    page = SHARE / "man" / "man1" / f"{name}.1"

    rendered = subprocess.run(
        ["groff", "-man", "-Tutf8", "-ww", str(page)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    shown = " ".join(re.sub(".\x08", "", rendered.stdout).split())  # no overstrike
    assert rendered.returncode == 0
    assert rendered.stderr == ""
    assert "EXIT STATUS 0 ok" in shown and "2 usage error" in shown
    assert "ENVIRONMENT" in shown
