"""The hardened deployment: Dockerfile, docker-compose.yml, .dockerignore, secrets.

There is no Docker engine here, so the files are parsed and their properties asserted;
what can run without Docker runs: the builder stage's pip build from the same sources,
and the health check's Python against a real TLS server.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERIGNORE = ROOT / ".dockerignore"
SECRETS_README = ROOT / "deploy" / "secrets" / "README.md"
DEPLOYMENT_DOCS = ROOT / "docs" / "deployment.md"

SERVICE = "trustkit-server"
DATA_DIR = "/var/lib/trustkit"
PORT = 4443
UID = 10001
PINNED_BASE = re.compile(r"^python:3\.11-slim-bookworm@sha256:(?P<digest>[0-9a-f]{64})$")
SECRET_WORDS = re.compile(r"secret|token|passw|passphrase|private|key", re.IGNORECASE)

# The server flags that name secret files, and where the image expects them.
SECRET_FLAGS = {
    "--master-key-file": "/run/secrets/trustkit_master_key",
    "--admin-token-file": "/run/secrets/trustkit_admin_token",
    "--tls-cert": "/run/secrets/trustkit_tls_cert",
    "--tls-key": "/run/secrets/trustkit_tls_key",
}


# --- reading the Dockerfile -------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


@dataclass(frozen=True)
class Stage:
    base: str
    name: str | None
    instructions: tuple[Instruction, ...]

    def all(self, keyword: str) -> list[Instruction]:
        return [each for each in self.instructions if each.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert found, f"stage {self.name or self.base} has no {keyword}"
        return found[-1]


def parse_dockerfile(text: str) -> list[Instruction]:
    """Logical instructions: continuation lines joined, comments and blank lines gone."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def stages(instructions: list[Instruction]) -> list[Stage]:
    """The build stages; a FROM's ``${ARG}`` is the default of the ARG before it."""
    found: list[Stage] = []
    defaults: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword == "ARG" and not found:
            name, _, default = instruction.args.partition("=")
            defaults[name] = default
        elif instruction.keyword == "FROM":
            words = re.sub(
                r"\$\{(\w+)\}", lambda match: defaults[match[1]], instruction.args
            ).split()
            assert not words[0].startswith("--"), "FROM --platform is not expected"
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            assert len(words) in (1, 3), f"unexpected FROM {instruction.args}"
            found.append(Stage(words[0], name, ()))
        else:
            assert found, f"{instruction.keyword} before the first FROM"
            last = found[-1]
            found[-1] = Stage(last.base, last.name, (*last.instructions, instruction))
    return found


def exec_form(args: str) -> list[str]:
    """The JSON array of an exec-form instruction; fails on shell form."""
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        pytest.fail(f"not exec form (a JSON array): {args}")
    assert isinstance(value, list)
    assert value
    assert all(isinstance(word, str) for word in value)
    return value


def healthcheck_of(stage: Stage) -> tuple[dict[str, str], list[str]]:
    """A HEALTHCHECK's options and its exec-form command."""
    match = re.fullmatch(
        r"(?P<options>(?:--[a-z-]+=\S+\s+)*)CMD\s+(?P<cmd>\[.*\])", stage.last("HEALTHCHECK").args
    )
    assert match, "HEALTHCHECK must be: [--option=value …] CMD [exec form]"
    options = dict(option.removeprefix("--").split("=", 1) for option in match["options"].split())
    return options, exec_form(match["cmd"])


@pytest.fixture(scope="module")
def dockerfile() -> list[Stage]:
    return stages(parse_dockerfile(DOCKERFILE.read_text()))


@pytest.fixture(scope="module")
def runtime(dockerfile: list[Stage]) -> Stage:
    return dockerfile[-1]


@pytest.fixture(scope="module")
def builder(dockerfile: list[Stage]) -> Stage:
    named = [stage for stage in dockerfile if stage.name == "builder"]
    assert len(named) == 1, "one stage named builder"
    return named[0]


# --- reading the compose file ------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def service(compose: dict[str, Any]) -> dict[str, Any]:
    assert list(compose["services"]) == [SERVICE], "exactly one service, trustkit-server"
    answer = compose["services"][SERVICE]
    assert isinstance(answer, dict)
    return answer


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR-default}``."""

    def value(match: re.Match[str]) -> str:
        name, operator, default = match["name"], match["op"], match["default"] or ""
        if operator == ":-":
            return env.get(name) or default
        if operator == "-":
            return env.get(name, default)
        return env.get(name, "")

    return re.sub(r"\$\{(?P<name>\w+)(?:(?P<op>:?-)(?P<default>[^}]*))?\}", value, text)


def memory_bytes(size: str | int) -> int:
    match = re.fullmatch(r"(\d+)([bkmg]?)b?", str(size).lower())
    assert match, f"not a memory size: {size}"
    return int(match[1]) * 1024 ** "bkmg".index(match[2] or "b")


# --- reading .dockerignore ----------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as Docker's pattern matcher reads it (paths relative to
    the context, ``**`` any number of directories, ``*`` and ``?`` within one)."""
    pattern = pattern.strip("/")
    out = ""
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**/", index):
            out += "(?:.*/)?"
            index += 3
            continue
        if pattern.startswith("**", index):
            out += ".*"
            index += 2
            continue
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[":
            end = pattern.index("]", index)
            out += pattern[index : end + 1]
            index = end
        else:
            out += re.escape(char)
        index += 1
    return re.compile(out)


def docker_ignored(path: str, patterns: list[str]) -> bool:
    """Whether the build context leaves ``path`` out: the last matching pattern wins,
    and a pattern that matches a parent directory matches everything under it."""
    parts = path.split("/")
    candidates = ["/".join(parts[: end + 1]) for end in range(len(parts))]
    ignored = False
    for pattern in patterns:
        exclude = not pattern.startswith("!")
        regex = _pattern_regex(pattern.removeprefix("!"))
        if any(regex.fullmatch(candidate) for candidate in candidates):
            ignored = exclude
    return ignored


@pytest.fixture(scope="module")
def ignore_patterns() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


# --- Dockerfile ---------------------------------------------------------------------------


def test_every_base_image_is_pinned_by_digest(dockerfile: list[Stage]):
    digests = set()
    for stage in dockerfile:
        match = PINNED_BASE.fullmatch(stage.base)
        assert match, f"FROM {stage.base} is not python:3.11-slim-bookworm@sha256:<64 hex>"
        digests.add(match["digest"])
    assert len(digests) == 1, "builder and runtime must use the same base image"


def test_the_docs_name_the_pinned_digest(dockerfile: list[Stage]):
    docs = DEPLOYMENT_DOCS.read_text()
    assert dockerfile[0].base in docs, "docs/deployment.md must show the digest in use"
    assert "refresh" in docs.lower()


def test_builder_stage_builds_a_wheel_into_a_venv(builder: Stage):
    run = " && ".join(each.args for each in builder.all("RUN"))
    assert "pip wheel --no-deps" in run
    assert "python -m venv /opt/trustkit" in run
    installs = r"/opt/trustkit/bin/python -m pip install "
    assert re.search(installs + r"\"\$\(ls /wheels/trustkit_tuf-\S*\.whl\)\[server\]\"", run)


def test_runtime_stage_copies_only_the_venv_from_the_builder(
    dockerfile: list[Stage], runtime: Stage
):
    assert len(dockerfile) >= 2, "a multi-stage build"
    assert runtime.name != "builder"
    copies = runtime.all("COPY") + runtime.all("ADD")
    assert copies, "the runtime stage must copy the venv"
    for copy in copies:
        assert copy.keyword == "COPY"
        assert copy.args.split() == ["--from=builder", "/opt/trustkit", "/opt/trustkit"], (
            f"the runtime stage copies something else: {copy.args}"
        )


def test_runtime_stage_runs_as_a_fixed_non_root_user(runtime: Stage):
    users = runtime.all("USER")
    assert users, "the runtime stage must set USER"
    assert users[-1].args == f"{UID}:{UID}"
    after_user = runtime.instructions[runtime.instructions.index(users[-1]) :]
    assert not [each for each in after_user if each.keyword == "RUN"], "no RUN after USER"
    run = " ".join(each.args for each in runtime.all("RUN"))
    assert f"groupadd --gid {UID} trustkit" in run
    assert f"useradd --uid {UID} --gid {UID}" in run


def test_no_secrets_in_build_arguments_environment_or_copies(dockerfile: list[Stage]):
    for stage in dockerfile:
        for instruction in stage.all("ARG") + stage.all("ENV"):
            names = re.findall(r"(\w+)=", instruction.args) or instruction.args.split()[:1]
            for name in names:
                assert not SECRET_WORDS.search(name), f"{instruction.keyword} {name} looks secret"
        for copy in stage.all("COPY") + stage.all("ADD"):
            for source in copy.args.split()[:-1]:
                assert "secrets" not in source
                assert not source.endswith((".key", ".pem", ".token", ".crt"))
        for run in stage.all("RUN"):
            assert "/run/secrets" not in run.args, "secrets are for the running server only"


def test_entrypoint_command_and_healthcheck_are_exec_form(runtime: Stage):
    assert exec_form(runtime.last("ENTRYPOINT").args) == ["trustkit-server"]
    exec_form(runtime.last("CMD").args)
    healthcheck_of(runtime)


def test_command_serves_https_on_all_container_addresses_with_secret_files(runtime: Stage):
    from server.main import _parser

    command = exec_form(runtime.last("CMD").args)
    args = _parser().parse_args(command)  # the real server accepts every flag

    assert args.host == "0.0.0.0"  # inside the container; compose decides what is public
    assert args.port == PORT
    assert str(args.data_dir) == DATA_DIR
    for flag, path in SECRET_FLAGS.items():
        assert command[command.index(flag) + 1] == path
    assert not args.no_auth


def test_port_volume_and_python_environment(runtime: Stage):
    assert runtime.last("EXPOSE").args == str(PORT)
    assert exec_form(runtime.last("VOLUME").args) == [DATA_DIR]
    env = " ".join(each.args for each in runtime.all("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "PYTHONUNBUFFERED=1" in env
    assert f"TRUSTKIT_SERVER_DATA={DATA_DIR}" in env
    # The volume's mount point exists, owned by the server's user, before VOLUME.
    run = " ".join(each.args for each in runtime.all("RUN"))
    assert f"--owner={UID} --group={UID} --mode=0700 {DATA_DIR}" in run


def test_healthcheck_probes_health_over_verified_tls(runtime: Stage):
    options, command = healthcheck_of(runtime)
    assert command[:2] == ["python", "-c"]
    code = command[2]
    assert f"https://127.0.0.1:{PORT}/_trustkit/health" in code
    assert "cafile='/run/secrets/trustkit_tls_cert'" in code
    for weakening in ("CERT_NONE", "_create_unverified_context", "verify=False", "http://"):
        assert weakening not in code
    for option in ("interval", "timeout", "retries"):
        assert option in options


# --- the health check, run for real ---------------------------------------------------


@dataclass(frozen=True)
class Certificates:
    leaf: Path  # the server's certificate, for a public DNS name, issued by a CA
    key: Path
    chain: Path  # leaf, then the CA
    stranger: Path  # a self-signed certificate of someone else


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    directory = tmp_path_factory.mktemp("tls")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("deployment test CA", ca_key, None, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    leaf = _certificate("trustkit.example.com", server_key, (ca.subject, ca_key), ca=False)
    stranger_key = ec.generate_private_key(ec.SECP256R1())
    stranger = _certificate("trustkit.example.com", stranger_key, None, ca=True)

    paths = Certificates(
        directory / "tls.crt", directory / "tls.key", directory / "chain.crt", directory / "x.crt"
    )
    paths.leaf.write_bytes(_pem(leaf))
    paths.chain.write_bytes(_pem(leaf) + _pem(ca))
    paths.stranger.write_bytes(_pem(stranger))
    paths.key.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    paths.key.chmod(0o600)
    return paths


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def tls_server(
    certificates: Certificates, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    """``trustkit-server`` serving HTTPS with the leaf certificate, as in the container."""
    directory = tmp_path_factory.mktemp("tls-server")
    token = directory / "admin.token"
    token.write_text("tkt_" + "a" * 43)
    port = _free_port()
    log = (directory / "server.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            str(directory / "data"),
            "--admin-token-file",
            str(token),
            "--tls-cert",
            str(certificates.leaf),
            "--tls-key",
            str(certificates.key),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"server exited: {(directory / 'server.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("the TLS server did not start in 30 s")
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _probe(runtime: Stage, port: int, cert: Path) -> subprocess.CompletedProcess[str]:
    """The image's HEALTHCHECK command, pointed at the test server and certificate."""
    _, command = healthcheck_of(runtime)
    code = command[2]
    assert "/run/secrets/trustkit_tls_cert" in code
    assert f"127.0.0.1:{PORT}/" in code
    code = code.replace("/run/secrets/trustkit_tls_cert", str(cert))
    code = code.replace(f"127.0.0.1:{PORT}/", f"127.0.0.1:{port}/")
    return subprocess.run(
        [sys.executable, *command[1:2], code],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_healthcheck_passes_against_the_server_with_its_mounted_certificate(
    runtime: Stage, tls_server: int, certificates: Certificates
):
    # The certificate names trustkit.example.com and is no CA; the probe dials 127.0.0.1.
    assert _probe(runtime, tls_server, certificates.leaf).returncode == 0
    assert _probe(runtime, tls_server, certificates.chain).returncode == 0


def test_healthcheck_fails_when_the_server_shows_another_certificate(
    runtime: Stage, tls_server: int, certificates: Certificates
):
    result = _probe(runtime, tls_server, certificates.stranger)

    assert result.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in result.stderr


def test_healthcheck_fails_when_nothing_listens(runtime: Stage, certificates: Certificates):
    assert _probe(runtime, _free_port(), certificates.leaf).returncode != 0


# --- the builder stage's pip steps, without Docker -----------------------------------------


def test_builder_sources_build_a_wheel_with_the_server_and_its_console_script(
    builder: Stage, tmp_path: Path
):
    context = tmp_path / "src"
    context.mkdir()
    for copy in builder.all("COPY"):
        *sources, _ = copy.args.split()
        for source in sources:
            origin = ROOT / source
            if origin.is_dir():
                shutil.copytree(
                    origin, context / source, ignore=shutil.ignore_patterns("__pycache__")
                )
            else:
                shutil.copy2(origin, context / source)

    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "--wheel-dir",
            str(tmp_path / "wheels"),
            ".",
        ],
        cwd=context,
        check=True,
        timeout=120,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )

    (wheel,) = (tmp_path / "wheels").glob("trustkit_tuf-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (entry_points,) = [name for name in names if name.endswith(".dist-info/entry_points.txt")]
        scripts = archive.read(entry_points).decode()
    for module in (
        "server/main.py",
        "server/launcher.py",
        "server/app.py",
        "migrate/notary/__init__.py",
        "server/auth.py",
        "keys/__init__.py",
        "trustkit/__init__.py",
        "client/__init__.py",
    ):
        assert module in names
    assert not [name for name in names if name.startswith("tests/")]
    for script in (
        "trustkit = trustkit.cli:run",
        "trustkit-server = server.launcher:run",
        "trustkit-conformance-client = client.conformance:run",
    ):
        assert script in scripts


# --- docker-compose.yml -------------------------------------------------------------------


def test_compose_builds_the_dockerfile_and_never_pulls_a_look_alike(service: dict[str, Any]):
    assert service["build"] == {"context": ".", "dockerfile": "Dockerfile"}
    assert "image" not in service


def test_compose_runs_read_only_with_a_small_tmp(service: dict[str, Any]):
    assert service["read_only"] is True
    (tmp,) = service["tmpfs"]
    path, _, options = tmp.partition(":")
    assert path == "/tmp"
    assert {"noexec", "nosuid", "nodev"} <= set(options.split(","))


def test_compose_drops_every_capability_and_privilege_escalation(service: dict[str, Any]):
    assert service["cap_drop"] == ["ALL"]
    assert "cap_add" not in service
    assert "no-new-privileges:true" in service["security_opt"]
    assert not service.get("privileged", False)
    for namespace in ("network_mode", "pid", "ipc", "userns_mode"):
        assert service.get(namespace) != "host"


def test_compose_user_is_the_image_user(service: dict[str, Any], runtime: Stage):
    assert service["user"] == runtime.last("USER").args == f"{UID}:{UID}"


def test_compose_mounts_every_secret_the_command_reads_under_run_secrets(
    compose: dict[str, Any], service: dict[str, Any], runtime: Stage
):
    command = exec_form(runtime.last("CMD").args)
    wanted = {command[command.index(flag) + 1] for flag in SECRET_FLAGS}
    mounted = {}
    for secret in service["secrets"]:
        assert secret["target"].startswith("/run/secrets/")
        mounted[secret["target"]] = secret["source"]
    assert set(mounted) == wanted
    defined = compose["secrets"]
    assert set(defined) == set(mounted.values())
    for name in mounted.values():
        assert set(defined[name]) == {"file"}
        assert defined[name]["file"].startswith("./deploy/secrets/")
    assert "command" not in service  # the image's command, with these paths
    for name in service.get("environment", {}) or {}:
        assert not SECRET_WORDS.search(str(name)), "secrets go in files, not the environment"


def test_secrets_readme_names_every_secret_file(compose: dict[str, Any]):
    readme = SECRETS_README.read_text()
    for definition in compose["secrets"].values():
        assert Path(definition["file"]).name in readme
    assert "head -c 32 /dev/urandom > deploy/secrets/master.key" in readme


def test_compose_publishes_on_loopback_unless_told_otherwise(
    service: dict[str, Any], runtime: Stage
):
    (port,) = service["ports"]
    host, host_port, container_port = interpolate(port, {}).rsplit(":", 2)
    assert (host, host_port, container_port) == ("127.0.0.1", str(PORT), str(PORT))
    assert container_port == runtime.last("EXPOSE").args
    assert interpolate(port, {"TRUSTKIT_BIND": "192.0.2.10"}).startswith("192.0.2.10:")


def test_compose_keeps_data_in_a_named_volume(compose: dict[str, Any], service: dict[str, Any]):
    (volume,) = service["volumes"]
    source, target = volume.split(":")
    assert target == DATA_DIR
    assert not source.startswith((".", "/", "~")), "a named volume, not a host path"
    assert source in compose["volumes"]


def test_compose_healthcheck_is_the_image_healthcheck(service: dict[str, Any], runtime: Stage):
    _, image_command = healthcheck_of(runtime)
    check = service["healthcheck"]
    assert check["test"] == ["CMD", *image_command]
    assert not check.get("disable", False)
    for option in ("interval", "timeout", "retries", "start_period"):
        assert option in check


def test_compose_restarts_limits_resources_and_bounds_logs(service: dict[str, Any]):
    assert service["restart"] == "unless-stopped"
    memory = memory_bytes(service["mem_limit"])
    assert 64 * 1024**2 <= memory <= 2 * 1024**3
    assert memory_bytes(service["memswap_limit"]) == memory, "no swap beyond the limit"
    assert 32 <= int(service["pids_limit"]) <= 1024
    assert 0 < float(service["cpus"]) <= 4
    logging = service["logging"]
    assert logging["driver"] in ("json-file", "local")
    assert memory_bytes(logging["options"]["max-size"]) <= 100 * 1024**2
    assert 1 <= int(logging["options"]["max-file"]) <= 10


# --- .dockerignore and .gitignore ---------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        ".git/config",
        "deploy/secrets/master.key",
        "deploy/secrets/admin.token",
        "deploy/secrets/tls.crt",
        "deploy/secrets/backup-notes.txt",
        "tls.key",
        "server/leftover.pem",
        "somewhere/deep/server.key",
        ".venv/bin/python",
        "server/__pycache__/app.cpython-311.pyc",
        "server/__pycache__",
        ".mypy_cache/3.11/server/app.data.json",
        ".ruff_cache/0.6.0/1234",
        ".pytest_cache/v/cache/nodeids",
        "tests/test_deployment.py",
        "bench/run.py",
        ".trustkit/keys/root.key",
        ".trustkit/trust/registry.example.com/team/app/root.json",
        ".trustkit-server/trustkit.db",
        "trustkit.db",
        "data/trustkit.db-wal",
        ".env",
    ],
)
def test_dockerignore_keeps_out(path: str, ignore_patterns: list[str]):
    assert docker_ignored(path, ignore_patterns)


def test_dockerignore_keeps_everything_the_builder_copies(
    builder: Stage, ignore_patterns: list[str]
):
    sources = [source for copy in builder.all("COPY") for source in copy.args.split()[:-1]]
    assert {"pyproject.toml", "README.md", "server"} <= set(sources)
    for source in sources:
        origin = ROOT / source
        files = [origin] if origin.is_file() else sorted(origin.rglob("*.py"))
        assert files, f"{source} is empty"
        for file in files:
            relative = file.relative_to(ROOT).as_posix()
            if "__pycache__" not in relative:
                assert not docker_ignored(relative, ignore_patterns), relative


def test_dockerignore_matcher_can_tell_kept_from_left_out():
    assert docker_ignored("a/b/c.key", ["**/*.key"])
    assert not docker_ignored("a/b/c.py", ["**/*.key"])
    assert not docker_ignored("x.key", ["**/*.key", "!x.key"])
    assert docker_ignored("tests/deep/file.py", ["tests"])


def _git_ignored(path: str) -> bool:
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", "--quiet", path],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    return result.returncode == 0


@pytest.mark.parametrize(
    "path", ["deploy/secrets/master.key", "deploy/secrets/admin.token", "deploy/secrets/tls.key"]
)
def test_git_ignores_the_secrets(path: str):
    assert _git_ignored(path)


def test_git_keeps_the_secrets_readme():
    assert SECRETS_README.is_file()
    assert not _git_ignored("deploy/secrets/README.md")
