"""The server image for real: built from the Dockerfile by a real Docker daemon, started
with the hardening docker-compose.yml asks for, healthy by its own HEALTHCHECK, and
serving a publisher and a host over TLS.

The daemon here has no bridge network, so the container runs with ``--network none``
and the clients join its network namespace (``nsenter --net``): they reach the server
at 127.0.0.1:4443 inside the container exactly as its command sets it up. Compose v2
is not in Debian, so the compose file's settings are read and turned into the
``docker run`` options compose would use.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.docker_daemon import DockerDaemon
from tests.support.harness import DIGEST_A, Result, publisher_cli
from tests.support.server_image import build_server_image, debian_rootfs, import_base

ROOT = Path(__file__).resolve().parent.parent
SECRETS = ("master.key", "admin.token", "tls.crt", "tls.key")
UID = 10001
GUN = "registry.test/team/app"


def compose_service() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return document["services"]["trustkit-server"]


def hardening_options(service: dict[str, Any]) -> list[str]:
    """The ``docker run`` options for the compose service's hardening settings."""
    options = ["--user", service["user"]]
    if service.get("read_only"):
        options.append("--read-only")
    options += [f"--tmpfs={mount}" for mount in service.get("tmpfs", [])]
    options += [f"--cap-drop={cap}" for cap in service.get("cap_drop", [])]
    options += [f"--security-opt={opt}" for opt in service.get("security_opt", [])]
    if service.get("init"):
        options.append("--init")
    options += [
        f"--memory={service['mem_limit']}",
        f"--memory-swap={service['memswap_limit']}",
        f"--pids-limit={service['pids_limit']}",
    ]
    for name, limit in service.get("ulimits", {}).items():
        options.append(f"--ulimit={name}={limit['soft']}:{limit['hard']}")
    return options


def secret_mounts(service: dict[str, Any], secrets_dir: Path) -> list[str]:
    """Each compose secret bind-mounted read-only at its target, as compose does."""
    files = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["secrets"]
    mounts = []
    for secret in service["secrets"]:
        source = secrets_dir / Path(files[secret["source"]]["file"]).name
        mounts += ["--volume", f"{source}:{secret['target']}:ro"]
    return mounts


def make_secrets(directory: Path) -> Path:
    """The four secrets, made with the commands of deploy/secrets/README.md."""
    secrets = directory / "secrets"
    secrets.mkdir(mode=0o700)
    (secrets / "master.key").write_bytes(os.urandom(32))
    token = subprocess.run(
        [str(Path(sys.executable).parent / "trustkit-server"), "token", "generate"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (secrets / "admin.token").write_text(token)
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=trustkit.example.com",
            "-addext",
            "subjectAltName=DNS:trustkit.example.com,DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(secrets / "tls.key"),
            "-out",
            str(secrets / "tls.crt"),
        ],
        capture_output=True,
        check=True,
    )
    for name in SECRETS:
        path = secrets / name
        path.chmod(0o440)
        os.chown(path, 0, UID)
    secrets.chmod(0o755)
    return secrets


@dataclass
class RunningServer:
    daemon: DockerDaemon
    container: str
    pid: int
    secrets: Path

    def exec(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.daemon.docker("exec", self.container, *args, check=False)

    def client(self, home: Path, token: str) -> Any:
        cli = publisher_cli(home, "https://127.0.0.1:4443")
        cli.env["TRUSTKIT_CA_FILE"] = str(self.secrets / "tls.crt")
        cli.env["TRUSTKIT_TOKEN"] = token
        return cli

    def run_client(self, cli: Any, *args: str) -> Result:
        """The trustkit CLI in the container's network namespace, as its own process."""
        done = subprocess.run(
            [
                "nsenter",
                f"--target={self.pid}",
                "--net",
                "--",
                sys.executable,
                "-m",
                "trustkit",
                *list(args),
            ],
            env=cli.environment(),
            capture_output=True,
            text=True,
            timeout=180,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def server_image(daemon: DockerDaemon, tmp_path_factory: pytest.TempPathFactory) -> str:
    scratch = tmp_path_factory.mktemp("base")
    base = import_base(daemon, debian_rootfs(scratch), "trustkit-test-base:latest")
    return build_server_image(daemon, ROOT, base, "trustkit-server:test")


@pytest.fixture(scope="module")
def running(
    daemon: DockerDaemon, server_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    assert shutil.which("nsenter"), "nsenter (util-linux) is missing"
    service = compose_service()
    secrets = make_secrets(tmp_path_factory.mktemp("deploy"))
    started = daemon.docker(
        "run",
        "--detach",
        "--name",
        "trustkit-server-test",
        "--network",
        "none",
        "--health-interval=1s",
        "--health-start-period=1s",
        "--volume",
        "trustkit-data:/var/lib/trustkit",
        *hardening_options(service),
        *secret_mounts(service, secrets),
        server_image,
    )
    container = started.stdout.strip()
    try:
        yield RunningServer(daemon, container, _pid(daemon, container), secrets)
    finally:
        daemon.docker("logs", container, check=False)
        daemon.docker("rm", "--force", container, check=False)
        daemon.docker("volume", "rm", "--force", "trustkit-data", check=False)


def _pid(daemon: DockerDaemon, container: str) -> int:
    return int(daemon.docker("inspect", "--format", "{{.State.Pid}}", container).stdout)


def _health(running: RunningServer) -> str:
    state = running.daemon.docker("inspect", "--format", "{{json .State}}", running.container)
    return str((json.loads(state.stdout).get("Health") or {}).get("Status"))


def wait_until_healthy(running: RunningServer) -> None:
    deadline = time.monotonic() + 90
    while _health(running) != "healthy" and time.monotonic() < deadline:
        time.sleep(0.5)
    logs = running.daemon.docker("logs", running.container, check=False)
    assert _health(running) == "healthy", f"server logs:\n{logs.stdout}{logs.stderr}"


def test_the_image_turns_healthy_by_its_own_health_check(running: RunningServer):
    wait_until_healthy(running)


def test_the_server_runs_unprivileged_on_a_read_only_root(running: RunningServer):
    wait_until_healthy(running)
    identity = running.exec("python", "-c", "import os;print(os.getuid(), os.getgid())")
    assert identity.stdout.split() == [str(UID), str(UID)]
    written = running.exec("python", "-c", "open('/opt/trustkit/x','w')")
    assert written.returncode != 0
    assert "Read-only file system" in written.stderr
    no_pip = running.exec("python", "-m", "pip", "--version")
    assert no_pip.returncode != 0, "the running image has no pip"


def test_docker_inspect_shows_the_hardening_compose_asks_for(running: RunningServer):
    shown = running.daemon.docker("inspect", running.container).stdout
    (container,) = json.loads(shown)
    host = container["HostConfig"]
    assert container["Config"]["User"] == f"{UID}:{UID}"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["PidsLimit"] == compose_service()["pids_limit"]
    secrets = {mount["Destination"]: mount for mount in container["Mounts"]}
    for secret in compose_service()["secrets"]:
        mount = secrets[secret["target"]]
        assert mount["Type"] == "bind"
        assert mount["RW"] is False
        assert running.exec("test", "-f", secret["target"]).returncode == 0


def test_every_console_script_runs_inside_the_image(running: RunningServer):
    """The wheel's console scripts all start in the image: a package the Dockerfile
    forgot to copy (as migrate/ once was) fails here."""
    wait_until_healthy(running)
    for script in ("trustkit", "trustkit-server"):
        started = running.exec(script, "--version")
        assert started.returncode == 0, f"{script}: {started.stderr}"
    conformance = running.exec("trustkit-conformance-client", "--help")
    assert conformance.returncode == 0, conformance.stderr
    imported = running.exec(
        "python", "-c", "import migrate.notary, migrate.orchestration, client.agent, server.app"
    )
    assert imported.returncode == 0, imported.stderr


def test_a_publisher_signs_and_a_host_verifies_through_the_container(
    running: RunningServer, tmp_path: Path
):
    wait_until_healthy(running)
    # A push token, made the way docs/deployment.md says (docker compose exec …).
    created = running.exec(
        "trustkit-server", "token", "create", "--name", "ci-app", "--scope", f"push:{GUN}"
    )
    assert created.returncode == 0, created.stderr
    token = created.stdout.split()[0]

    publisher = running.client(tmp_path / "publisher" / ".trustkit", token)
    assert running.run_client(publisher, "init", GUN).code == 0
    signed = running.run_client(
        publisher, "sign", f"{GUN}:1.0", "--digest", DIGEST_A, "--size", "10"
    )
    assert signed.code == 0, signed.err

    host = running.client(tmp_path / "host" / ".trustkit", "")
    verified = running.run_client(host, "verify", f"{GUN}:1.0", "--offline", "--json")
    assert verified.code == 0, verified.err
    assert json.loads(verified.out)["digest"] == DIGEST_A
    unsigned = running.run_client(host, "verify", f"{GUN}:2.0", "--offline")
    assert unsigned.code != 0
    assert "2.0" in unsigned.err

    # The data lives on the volume, not in the read-only image: after a restart the
    # server still serves the signed tag, and refuses a publish without a token.
    running.daemon.docker("restart", running.container)
    running.pid = _pid(running.daemon, running.container)
    wait_until_healthy(running)
    again = running.run_client(host, "verify", f"{GUN}:1.0", "--offline", "--json")
    assert again.code == 0, again.err
    assert json.loads(again.out)["digest"] == DIGEST_A
    stranger = running.client(tmp_path / "stranger" / ".trustkit", "tkt_not-a-token")
    assert running.run_client(stranger, "init", GUN).code != 0
