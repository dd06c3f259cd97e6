"""The import contracts of .importlinter hold, and they do catch what they are for: a
cycle hidden in a function-level import, and client importing server."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("trustkit", "keys", "client", "server", "migrate")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def copy_of_the_tree(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    return tmp_path


def test_the_tree_keeps_every_contract():
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_a_cycle_behind_a_function_level_import_is_caught(tmp_path: Path):
    tree = copy_of_the_tree(tmp_path)
    (tree / "client" / "cycle_one.py").write_text("from client import cycle_two\n")
    (tree / "client" / "cycle_two.py").write_text(
        "def later() -> None:\n    from client import cycle_one  # noqa: F401\n"
    )
    done = lint_imports(tree)
    assert done.returncode != 0
    assert "No cycles are allowed in client" in done.stdout


def test_client_importing_server_is_caught(tmp_path: Path):
    tree = copy_of_the_tree(tmp_path)
    (tree / "client" / "reach.py").write_text("import server.app  # noqa: F401\n")
    done = lint_imports(tree)
    assert done.returncode != 0
    assert "client and server never import each other" in done.stdout
    assert "BROKEN" in done.stdout
