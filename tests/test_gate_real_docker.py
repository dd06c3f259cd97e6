"""The Docker gate against the real thing: a real Docker daemon, a real registry on
127.0.0.1, images pushed by ``docker push`` and signed from the registry. A signed tag is
pulled and run by its signed digest; an unsigned tag, or one moved in the registry after
signing, never reaches the daemon as what the registry now serves."""

from __future__ import annotations

import pytest

from tests.support.docker_daemon import DockerDaemon, docker_client
from tests.support.harness import Trustkit


@pytest.fixture
def fresh_daemon(daemon: DockerDaemon) -> DockerDaemon:
    """The module's daemon holding no image, as a new host."""
    daemon.remove_all_images()
    return daemon


def on_daemon(host: Trustkit, daemon: DockerDaemon) -> Trustkit:
    """The host's trustkit handing images to the real docker CLI and daemon."""
    return Trustkit(
        host.home, host.server_url, {**host.env, **daemon.env, "TRUSTKIT_DOCKER": docker_client()}
    )


def pushed(daemon: DockerDaemon, reference: str, marker: str) -> str:
    daemon.import_busybox(reference, marker)
    return daemon.push(reference)


def test_a_signed_tag_is_pulled_and_run_by_its_signed_digest(
    fresh_daemon: DockerDaemon, publisher: Trustkit, host: Trustkit, image: str
):
    digest = pushed(fresh_daemon, f"{image}:1.0", "release one")
    assert publisher("init", image).code == 0
    signed = publisher("sign", f"{image}:1.0")
    assert signed.code == 0, signed.err
    fresh_daemon.remove_all_images()
    gate = on_daemon(host, fresh_daemon)

    pulled = gate.process("pull", f"{image}:1.0")
    ran = gate.process("run", "--rm", "--network", "none", f"{image}:1.0", "cat", "/marker")

    assert pulled.code == 0, pulled.err
    assert {f"{image}@{digest}", f"{image}:1.0"} <= fresh_daemon.images()
    assert ran.code == 0, ran.err
    assert ran.out.strip() == "release one"


def test_an_unsigned_tag_never_reaches_the_daemon(
    fresh_daemon: DockerDaemon, publisher: Trustkit, host: Trustkit, image: str
):
    pushed(fresh_daemon, f"{image}:1.0", "signed")
    pushed(fresh_daemon, f"{image}:2.0", "never signed")
    assert publisher("init", image).code == 0
    assert publisher("sign", f"{image}:1.0").code == 0
    fresh_daemon.remove_all_images()
    gate = on_daemon(host, fresh_daemon)

    pulled = gate.process("pull", f"{image}:2.0")
    ran = gate.process("run", "--rm", "--network", "none", f"{image}:2.0", "true")

    for refused in (pulled, ran):
        assert refused.code == 1, refused.err
        assert f"no signed tag 2.0 in {image}" in refused.err
    assert not [held for held in fresh_daemon.images() if held.startswith(image)]


def test_a_tag_moved_in_the_registry_runs_the_signed_image(
    fresh_daemon: DockerDaemon, publisher: Trustkit, host: Trustkit, image: str
):
    signed_digest = pushed(fresh_daemon, f"{image}:1.0", "what was signed")
    assert publisher("init", image).code == 0
    assert publisher("sign", f"{image}:1.0").code == 0
    moved_digest = pushed(fresh_daemon, f"{image}:1.0", "pushed over the tag later")
    assert moved_digest != signed_digest
    fresh_daemon.remove_all_images()
    gate = on_daemon(host, fresh_daemon)

    ran = gate.process("run", "--rm", "--network", "none", f"{image}:1.0", "cat", "/marker")

    assert ran.code == 0, ran.err
    assert ran.out.strip() == "what was signed"
    held = fresh_daemon.images()
    assert f"{image}@{signed_digest}" in held
    assert f"{image}@{moved_digest}" not in held


def test_the_daemon_harness_runs_containers_without_a_network(fresh_daemon: DockerDaemon):
    """The ground the other tests stand on: imported busybox runs, isolated."""
    fresh_daemon.import_busybox("local/busybox:probe", "probe")

    isolated = ("run", "--rm", "--network", "none", "local/busybox:probe")
    ran = fresh_daemon.docker(*isolated, "cat", "/marker")
    links = fresh_daemon.docker(*isolated, "ls", "/sys/class/net")

    assert ran.stdout.strip() == "probe"
    assert links.stdout.split() == ["lo"]
    assert fresh_daemon.repo_digests("local/busybox:probe") == []  # never pushed
