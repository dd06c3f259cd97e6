"""Progress bars: on standard error when it is a terminal (a real pty here), never on
standard output, never when piped, never with --quiet or --json; notes said meanwhile
print above the bar."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from scripts.oci_layout import build_image
from tests.support.harness import DIGEST_A, ServerProcess, Trustkit, publisher_cli, sign_many
from tests.support.registry import RegistryProcess, push
from tests.test_migrate_notary import GUN, OTHER, Notary, notary  # noqa: F401  (fixture)


def run_at_terminal(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Run ``argv`` with standard error on a pty (100 columns), standard output piped."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    process = subprocess.Popen(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave
    )
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the pty closed: the process is done
            break
        if not chunk:
            break
        seen += chunk
    assert process.stdout is not None
    out = process.stdout.read().decode()
    code = process.wait(timeout=120)
    os.close(master)
    return code, out, seen.decode(errors="replace")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "trustkit", *args]


@pytest.fixture
def tagged(publisher: Trustkit, gun: str) -> str:
    assert publisher("init", gun).code == 0
    sign_many(publisher, gun, ["1.0", "1.1", "1.2"], DIGEST_A)
    return gun


def test_bins_shows_a_bar_at_a_terminal(publisher: Trustkit, tagged: str):
    code, out, err = run_at_terminal(_cli("bins", tagged, "--count", "16"), publisher.environment())

    assert code == 0, err
    assert "signing bins:" in err and "%|" in err and " role" in err
    assert "moved 3 tags" in out
    assert "signing bins" not in out and "\r" not in out


def test_no_bar_when_piped(publisher: Trustkit, tagged: str):
    piped = publisher.process("bins", tagged, "--count", "16")

    assert piped.code == 0, piped.err
    assert "signing bins" not in piped.err and "\r" not in piped.err


@pytest.mark.parametrize("flag", ["--quiet", "--json"])
def test_no_bar_with_quiet_or_json(publisher: Trustkit, tagged: str, flag: str):
    code, out, err = run_at_terminal(
        _cli("bins", tagged, "--count", "16", flag), publisher.environment()
    )

    assert code == 0, err
    assert "signing bins" not in err
    assert ("moved 3 tags" in out) if flag == "--quiet" else ('"tags": 3' in out)


def _export(server: ServerProcess, to: Path, *extra: str) -> tuple[int, str, str]:
    argv = [
        sys.executable,
        "-m",
        "server",
        "export",
        "--to",
        str(to),
        "--data-dir",
        str(server.data_dir),
        *extra,
    ]
    return run_at_terminal(argv, {"PATH": os.environ.get("PATH", "")})


def test_export_shows_a_bar_at_a_terminal(server: ServerProcess, tagged: str, tmp_path: Path):
    code, out, err = _export(server, tmp_path / "mirror")

    assert code == 0, err
    assert "exporting:" in err and "exported " in err
    assert out == ""
    assert (tmp_path / "mirror" / "v2" / tagged / "_trust" / "tuf" / "timestamp.json").is_file()


def test_export_quiet_shows_no_bar_and_no_summary(
    server: ServerProcess, tagged: str, tmp_path: Path
):
    code, _, err = _export(server, tmp_path / "mirror", "-q")

    assert code == 0, err
    assert err.strip() == ""
    assert (tmp_path / "mirror" / "v2" / tagged / "_trust" / "tuf" / "timestamp.json").is_file()


def test_export_verbose_names_each_repository(server: ServerProcess, tagged: str, tmp_path: Path):
    piped = subprocess.run(
        [
            sys.executable,
            "-m",
            "server",
            "export",
            "--to",
            str(tmp_path / "m"),
            "-v",
            "--data-dir",
            str(server.data_dir),
            "--repository",
            tagged,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert piped.returncode == 0, piped.stderr
    assert f"trustkit-server: exported {tagged}: " in piped.stderr
    assert "exporting:" not in piped.stderr  # piped: no bar


def test_migrate_all_shows_a_bar_and_keeps_notes_above_it(
    notary: Notary,  # noqa: F811  (the fixture imported above)
    server: ServerProcess,
    tmp_path: Path,
):
    listing = tmp_path / "repositories.txt"
    listing.write_text(f"{GUN}\n{OTHER}\nregistry.test/team/missing\n")
    owner = publisher_cli(tmp_path / "owner" / ".trustkit", server.url)
    argv = _cli(
        "migrate", "notary", "--all", "--list", str(listing), "--dry-run",
        "--from", notary.server.url, "--from-ca", str(notary.server.ca_path),
    )  # fmt: skip

    code, out, err = run_at_terminal(argv, owner.environment())

    assert code == 1  # one of three is missing on the Notary server
    assert "migrating:" in err and " repo" in err
    assert "[1/3] registry.test/team/app" in err
    assert "registry.test/team/missing not migrated" in err
    assert "migrated 2 of 3 repositories" in out and "migrating:" not in out


def test_tqdm_and_shtab_load_only_where_used():
    """A command that shows no bar and prints no completion never imports either."""
    probe = (
        "import sys\nfrom trustkit import cli\n"
        "for argv in (['--version'], ['completion', '--help'], ['verify', '--help']):\n"
        "    try:\n        cli.main(argv, {})\n    except SystemExit:\n        pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tqdm', 'shtab')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )

    assert done.stdout.splitlines()[-1] == "[]"


def test_signing_many_tags_from_the_registry_shows_a_bar(
    publisher: Trustkit, registry: RegistryProcess, tmp_path: Path
):
    """sign asks the registry for each tag's manifest: a bar counts them."""
    path = "progress/many"
    gun = f"{registry.host}/{path}"
    image = build_image(tmp_path / "layout", "1.0", b"progress bar image")
    tags = ["1.0", "1.1", "1.2", "1.3"]
    for tag in tags:
        push(image, registry, path, tag)
    assert publisher("init", gun).code == 0

    code, out, err = run_at_terminal(
        _cli("sign", *(f"{gun}:{tag}" for tag in tags)), publisher.environment()
    )

    assert code == 0, err
    assert f"reading digests of {gun}:" in err and "/4 [" in err and " tag" in err
    assert f"signed 4 tags of {gun}" in out and "reading digests" not in out
