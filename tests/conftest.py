from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.docker_daemon import DockerDaemon
from tests.support.harness import ServerProcess, TamperingProxy, Trustkit, gun_for, publisher_cli
from tests.support.registry import RegistryProcess, TestCA, TokenService


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real server on 127.0.0.1 for the session; each test uses its own repository."""
    process = ServerProcess(tmp_path_factory.mktemp("server") / "data").start()
    yield process
    process.stop()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[object]:
    """Start a server of the test's own, with extra command-line options."""
    started: list[ServerProcess] = []

    def start(*args: str) -> ServerProcess:
        process = ServerProcess(tmp_path / f"server{len(started)}", *args).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def gun(request: pytest.FixtureRequest) -> str:
    return gun_for(request.node.name)


@pytest.fixture
def publisher(tmp_path: Path, server: ServerProcess) -> Trustkit:
    """A CD pipeline's trustkit: its own keystore, passphrases from the environment."""
    return publisher_cli(tmp_path / "publisher" / ".trustkit", server.url)


@pytest.fixture
def host(tmp_path: Path, server: ServerProcess) -> Trustkit:
    """An app host's trustkit: no keys, its own trust store."""
    return Trustkit(tmp_path / "host" / ".trustkit", server.url)


@pytest.fixture
def proxy(server: ServerProcess) -> Iterator[TamperingProxy]:
    started = TamperingProxy(server.url).start()
    yield started
    started.stop()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    """A real plain-http OCI registry (docker-registry 2.8) for the session."""
    process = RegistryProcess(tmp_path_factory.mktemp("registry") / "data").start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    """A registry that wants bearer tokens from a real token service (user ci / ci-secret).

    The token service is ``token_registry.token_auth``; its ``requests`` grow all session.
    """
    directory = tmp_path_factory.mktemp("token-registry")
    tokens = TokenService(directory, username="ci", password="ci-secret").start()
    process = RegistryProcess(directory / "data", token_auth=tokens).start()
    yield process
    process.stop()
    tokens.stop()


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    """A registry serving HTTPS with a certificate from a test CA at ``ca_path``."""
    directory = tmp_path_factory.mktemp("tls-registry")
    ca = TestCA(directory / "pki")
    process = RegistryProcess(
        directory / "data", tls=(ca.cert_path, ca.key_path), ca_path=ca.ca_path
    ).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerDaemon]:
    """A real Docker daemon for the module (its own socket and roots; see docker_daemon)."""
    process = DockerDaemon(tmp_path_factory.mktemp("dockerd")).start()
    yield process
    process.stop()


@pytest.fixture
def image(request: pytest.FixtureRequest, registry: RegistryProcess) -> str:
    """A repository of the test's own on the real registry."""
    return f"{registry.host}/{gun_for(request.node.name).split('/', 1)[1]}"
