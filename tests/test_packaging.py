"""An app host installs trustkit to verify, and gets no server stack with it.

The default install is built from a fresh copy of the repository into a new virtual
environment, as ``pipx install trustkit-tuf`` would make it, and used for real against
the test server: it verifies a signed tag, and its ``trustkit-server`` says how to get
the server instead of failing on an import.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.fresh_clone import fresh_copy, newcomer_env
from tests.support.harness import DIGEST_A, ServerProcess, Trustkit

SERVER_STACK = {"fastapi", "uvicorn", "uvloop", "httptools", "psycopg", "python-multipart"}


@pytest.fixture(scope="module")
def host_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding trustkit's default install (no extras); returns its bin dir."""
    root = tmp_path_factory.mktemp("lean")
    source = fresh_copy(root / "src")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    installed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(source)],
        env=newcomer_env(root / "home"),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr
    return venv / "bin"


def _installed_distributions(bin_dir: Path) -> set[str]:
    listed = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return {line.split("==")[0].lower() for line in listed.splitlines() if "==" in line}


def test_the_default_install_has_no_server_stack(host_install: Path):
    installed = _installed_distributions(host_install)

    assert "trustkit-tuf" in installed
    assert "tuf" in installed
    assert not SERVER_STACK & installed, SERVER_STACK & installed


def test_a_host_without_the_server_stack_verifies(
    host_install: Path, publisher: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    assert publisher("init", gun).code == 0
    assert publisher("sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "10").code == 0

    verified = subprocess.run(
        [str(host_install / "trustkit"), "resolve", f"{gun}:1.0"],
        env={
            **newcomer_env(tmp_path / "home"),
            "TRUSTKIT_HOME": str(tmp_path / "host"),
            "TRUSTKIT_SERVER": server.url,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.strip() == f"{gun}@{DIGEST_A}"


def test_trustkit_server_without_its_stack_says_how_to_install_it(host_install: Path):
    result = subprocess.run(
        [str(host_install / "trustkit-server"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "no server stack" in result.stderr
    assert "pip install 'trustkit-tuf[server]'" in result.stderr
