"""A real Docker daemon for the tests: Debian's ``dockerd``, run as root with its own
socket, data and exec roots, no bridge, no iptables and the vfs storage driver, so it
touches nothing of the machine's and runs containers with ``--network none``.

Images to run are made without any registry: ``docker import`` of a root filesystem
holding Debian's static busybox. Pushed to the test registry on 127.0.0.1 (which
Docker treats as insecure-allowed, being loopback) they get the registry digest a
publisher signs.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DOCKERD = "/usr/sbin/dockerd"
BUSYBOX = Path("/bin/busybox")
BUSYBOX_APPLETS = ("sh", "true", "false", "echo", "cat", "ls", "sleep")


def docker_client() -> str:
    """The docker CLI: the machine's newest (on PATH) or Debian's."""
    found = shutil.which("docker")
    assert found, "the docker CLI is missing: run scripts/system-packages (Debian: docker.io)"
    return found


@dataclass
class DockerDaemon:
    """One dockerd of the test session's own, under ``directory``."""

    directory: Path
    authorization_plugins: Sequence[str] = ()
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.directory / "docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def env(self) -> dict[str, str]:
        """What a docker CLI needs to talk to this daemon (and nothing of the user's)."""
        return {
            "DOCKER_HOST": self.host,
            "DOCKER_CONFIG": str(self.directory / "client-config"),
        }

    def start(self) -> DockerDaemon:
        assert os.geteuid() == 0, "the Docker daemon tests run as root, as CI does"
        assert Path(DOCKERD).exists(), "dockerd is missing: run scripts/system-packages"
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "client-config").mkdir(exist_ok=True)
        args = [
            DOCKERD,
            "-H",
            self.host,
            "--data-root",
            str(self.directory / "data"),
            "--exec-root",
            str(self.directory / "exec"),
            "--pidfile",
            str(self.directory / "docker.pid"),
            "--iptables=false",
            "--ip-forward=false",
            "--bridge=none",
            "--storage-driver=vfs",
            *(f"--authorization-plugin={name}" for name in self.authorization_plugins),
        ]
        log = (self.directory / "dockerd.log").open("wb")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dockerd exited:\n{self.log_tail()}")
            if self.socket.exists() and self.docker("version", check=False).returncode == 0:
                return self
            time.sleep(0.2)
        raise RuntimeError(f"dockerd did not come up:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None
        self._unmount_leftovers()

    def _unmount_leftovers(self) -> None:
        """dockerd leaves its network namespace mounted under the exec root; unmount
        what is still mounted under this daemon's directory, so it can be removed."""
        prefix = f"{self.directory.resolve()}/"
        mounted = [
            line.split()[1]
            for line in Path("/proc/mounts").read_text().splitlines()
            if line.split()[1].startswith(prefix)
        ]
        for point in sorted(mounted, key=len, reverse=True):
            subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)

    def log_tail(self, lines: int = 30) -> str:
        path = self.directory / "dockerd.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def docker(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [docker_client(), *args],
            env={"PATH": os.environ.get("PATH", ""), **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed: {done.stderr}")
        return done

    def images(self) -> set[str]:
        """``REPOSITORY:TAG`` and ``REPOSITORY@DIGEST`` of every image the daemon holds."""
        listed = self.docker(
            "images", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}"
        ).stdout
        held: set[str] = set()
        for line in listed.splitlines():
            repository, tag, digest = line.split()
            if tag != "<none>":
                held.add(f"{repository}:{tag}")
            if digest != "<none>":
                held.add(f"{repository}@{digest}")
        return held

    def repo_digests(self, image: str) -> list[str]:
        shown = self.docker(
            "image", "inspect", "--format", "{{range .RepoDigests}}{{.}} {{end}}", image
        ).stdout
        return shown.split()

    def import_busybox(self, name: str, marker: str) -> str:
        """A runnable image ``name`` whose /marker holds ``marker`` (so images differ)."""
        with tempfile.TemporaryDirectory() as scratch:
            tarball = Path(scratch) / "rootfs.tar"
            _busybox_rootfs(tarball, marker)
            self.docker("import", str(tarball), name)
        return name

    def push(self, image: str) -> str:
        """``docker push``; returns the registry's manifest digest (``sha256:…``)."""
        self.docker("push", image)
        repository = image.rsplit(":", 1)[0]
        for reference in self.repo_digests(image):
            if reference.startswith(f"{repository}@"):
                return reference.split("@", 1)[1]
        raise AssertionError(f"no repo digest of {image} after push")

    def remove_all_images(self) -> None:
        ids = self.docker("images", "--all", "--quiet").stdout.split()
        if ids:
            self.docker("rmi", "--force", *sorted(set(ids)), check=False)


def _busybox_rootfs(tarball: Path, marker: str) -> None:
    assert BUSYBOX.exists(), "static busybox is missing: run scripts/system-packages"
    with tarfile.open(tarball, "w") as tar:
        for directory in ("bin", "tmp", "etc"):
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        tar.add(BUSYBOX, "bin/busybox")
        for applet in BUSYBOX_APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            tar.addfile(link)
        data = marker.encode() + b"\n"
        info = tarfile.TarInfo("marker")
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))
