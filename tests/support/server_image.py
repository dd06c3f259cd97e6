"""The server's container image, built for real from the repository's Dockerfile.

These machines cannot reach Docker Hub, so the Dockerfile's pinned base cannot be
pulled. The Dockerfile takes its base as a build argument (``BASE_IMAGE``); the tests
give it a local one of the same kind: Debian with its Python 3.11, made by
``debootstrap`` from the machine's own Debian mirror and ``docker import``-ed. What the
image adds on top (the venv, the user, the read-only layout, the entry point and the
health check) is the Dockerfile's own, built by the real daemon.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
from pathlib import Path

from tests.support.docker_daemon import DockerDaemon, docker_client

DEBOOTSTRAP = "/usr/sbin/debootstrap"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# Debian's Python 3.11 (as in the pinned python:3.11-slim-bookworm), its venv module
# (which brings pip into a venv), and CA certificates for pip inside the build.
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def _debian_suite() -> str:
    release = Path("/etc/os-release").read_text()
    match = re.search(r"^VERSION_CODENAME=(\w+)$", release, re.MULTILINE)
    return match[1] if match else "bookworm"


def _debian_mirror() -> str:
    """The first Debian archive this machine's apt uses (deb822 or one-line format)."""
    candidates = [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]
    for path in candidates:
        if not path.is_file():
            continue
        text = path.read_text()
        found = re.search(r"^URIs:\s*(\S+/debian)\s*$", text, re.MULTILINE) or re.search(
            r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+/debian)\s", text, re.MULTILINE
        )
        if found:
            return found[1]
    return DEFAULT_MIRROR


def debian_rootfs(directory: Path) -> Path:
    """A minimal Debian root file system with Python 3.11, as a tarball."""
    assert Path(DEBOOTSTRAP).exists(), "debootstrap is missing: run scripts/system-packages"
    root = directory / "rootfs"
    log = directory / "debootstrap.log"
    with log.open("wb") as output:
        done = subprocess.run(
            [
                DEBOOTSTRAP,
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                _debian_suite(),
                str(root),
                _debian_mirror(),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=900,
            check=False,
        )
    assert done.returncode == 0, f"debootstrap failed:\n{log.read_text()[-3000:]}"
    # `python` as the official image has it; the machine's CA bundle, so that pip in the
    # build trusts what this machine trusts (PIP_CERT below).
    (root / "usr/local/bin/python").symlink_to("/usr/bin/python3")
    shutil.copyfile(HOST_CA_BUNDLE, root / "etc/ssl/certs/ca-certificates.crt")
    for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
        shutil.rmtree(root / cache, ignore_errors=True)
    tarball = directory / "rootfs.tar"
    with tarfile.open(tarball, "w") as archive:
        archive.add(root, arcname=".")
    shutil.rmtree(root, ignore_errors=True)
    return tarball


def import_base(daemon: DockerDaemon, tarball: Path, name: str) -> str:
    daemon.docker(
        "import",
        "--change",
        f"ENV PIP_CERT={HOST_CA_BUNDLE}",
        "--change",
        'CMD ["/bin/bash"]',
        str(tarball),
        name,
        timeout=600,
    )
    return name


def build_server_image(daemon: DockerDaemon, context: Path, base: str, tag: str) -> str:
    """``docker build`` of the repository's Dockerfile on ``base``; host network, as the
    daemon has no bridge (pip in the builder stage fetches the server's dependencies)."""
    done = subprocess.run(
        [
            docker_client(),
            "build",
            "--network",
            "host",
            "--build-arg",
            f"BASE_IMAGE={base}",
            "--tag",
            tag,
            str(context),
        ],
        env={**daemon.env, "PATH": "/usr/local/bin:/usr/bin:/bin", "DOCKER_BUILDKIT": "0"},
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert done.returncode == 0, f"docker build failed:\n{done.stdout[-4000:]}\n{done.stderr}"
    return tag
