"""Compose projects through the gate, against a real Docker daemon and Debian's
docker-compose: every image pinned to its signed digest in an override file, or nothing
runs at all."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support.docker_daemon import DockerDaemon, docker_client
from tests.support.harness import Trustkit

COMPOSE = "/usr/bin/docker-compose"


def _project(directory: Path, services: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    document = {
        "version": "3.7",
        "services": {
            name: {"image": reference, "network_mode": "none", "command": ["cat", "/marker"]}
            for name, reference in services.items()
        },
    }
    compose = directory / "docker-compose.yml"
    compose.write_text(yaml.safe_dump(document))
    return compose


def _on_daemon(host: Trustkit, daemon: DockerDaemon) -> Trustkit:
    return Trustkit(
        host.home,
        host.server_url,
        {**host.env, **daemon.env, "TRUSTKIT_DOCKER": docker_client(), "TRUSTKIT_COMPOSE": COMPOSE},
    )


def _release(daemon: DockerDaemon, publisher: Trustkit, image: str, marker: str) -> str:
    daemon.import_busybox(f"{image}:1.0", marker)
    digest = daemon.push(f"{image}:1.0")
    assert publisher("init", image).code == 0
    signed = publisher("sign", f"{image}:1.0")
    assert signed.code == 0, signed.err
    return digest


def test_compose_pin_writes_every_image_pinned_to_its_signed_digest(
    daemon: DockerDaemon, publisher: Trustkit, host: Trustkit, image: str, tmp_path: Path
):
    digest = _release(daemon, publisher, image, "signed for compose")
    compose = _project(tmp_path / "project", {"app": f"{image}:1.0", "worker": f"{image}:1.0"})
    override = tmp_path / "pinned.yml"

    pinned = _on_daemon(host, daemon).process(
        "compose", "pin", "-f", str(compose), "-o", str(override)
    )

    assert pinned.code == 0, pinned.err
    document = yaml.safe_load(override.read_text())
    assert document["services"] == {
        "app": {"image": f"{image}@{digest}"},
        "worker": {"image": f"{image}@{digest}"},
    }
    assert f"pinned 2 image(s) into {override}" in pinned.out


def test_docker_compose_run_starts_the_signed_image_even_after_the_tag_moved(
    daemon: DockerDaemon, publisher: Trustkit, host: Trustkit, image: str, tmp_path: Path
):
    _release(daemon, publisher, image, "signed for compose")
    daemon.import_busybox(f"{image}:1.0", "pushed over the tag")
    daemon.push(f"{image}:1.0")
    daemon.remove_all_images()
    compose = _project(tmp_path / "project", {"app": f"{image}:1.0"})

    ran = _on_daemon(host, daemon).process(
        "docker", "compose", "-f", str(compose), "run", "--rm", "app", timeout=300
    )

    assert ran.code == 0, ran.err
    assert "signed for compose" in ran.out
    assert "pushed over the tag" not in ran.out


def test_a_project_with_one_unsigned_image_runs_nothing(
    daemon: DockerDaemon, publisher: Trustkit, host: Trustkit, image: str, tmp_path: Path
):
    _release(daemon, publisher, image, "signed for compose")
    daemon.import_busybox(f"{image}:2.0", "never signed")
    daemon.push(f"{image}:2.0")
    daemon.remove_all_images()
    compose = _project(tmp_path / "project", {"app": f"{image}:1.0", "sidecar": f"{image}:2.0"})

    refused = _on_daemon(host, daemon).process(
        "docker", "compose", "-f", str(compose), "up", "-d", timeout=300
    )

    assert refused.code == 1, refused.err
    assert f"no signed tag 2.0 in {image}" in refused.err
    assert daemon.docker("ps", "--all", "--quiet").stdout.strip() == ""
    assert not [held for held in daemon.images() if held.startswith(image)]


def test_a_service_that_builds_its_image_is_refused(
    daemon: DockerDaemon, host: Trustkit, tmp_path: Path
):
    project = tmp_path / "project"
    project.mkdir()
    (project / "Dockerfile").write_text("FROM busybox\n")
    (project / "docker-compose.yml").write_text('version: "3.7"\nservices:\n  app:\n    build: .\n')

    refused = _on_daemon(host, daemon).process(
        "compose", "pin", "-f", str(project / "docker-compose.yml")
    )

    assert refused.code == 2
    assert "the compose service app builds its image" in refused.err


def test_a_service_mounting_an_image_or_naming_an_image_id_is_refused():
    from client.compose import pin_project
    from trustkit.errors import UsageError

    def never(image: str) -> object:
        raise AssertionError(f"{image} should not be decided")

    mounting = {"services": {"app": {"image": "registry.test/a:1", "volumes": [
        {"type": "image", "source": "evil.example/x:1", "target": "/x"}]}}}  # fmt: skip
    by_id = {"services": {"app": {"image": "e49ceb9f"}}}

    for project, words in ((mounting, "mounts an image"), (by_id, "local image's ID")):
        with pytest.raises(UsageError, match=words):
            pin_project(project, never)  # type: ignore[arg-type]


def test_a_service_behind_a_profile_is_refused(
    daemon: DockerDaemon, host: Trustkit, tmp_path: Path
):
    """Compose leaves profiled services out of its config unless asked, yet runs one when
    it is named: it would run unpinned."""
    project = tmp_path / "project"
    project.mkdir()
    compose = project / "docker-compose.yml"
    compose.write_text(
        yaml.safe_dump(
            {
                "version": "3.9",
                "services": {
                    "app": {"image": "registry.test/app:1"},
                    "evil": {"image": "evil.example/x:1", "profiles": ["debug"]},
                },
            }
        )
    )

    pinned = _on_daemon(host, daemon).process("compose", "pin", "-f", str(compose))
    ran = _on_daemon(host, daemon).process("docker", "compose", "-f", str(compose), "run", "evil")

    for refused in (pinned, ran):
        assert refused.code == 2, refused.err
        assert "the compose service evil in" in refused.err
        assert "is behind a profile" in refused.err
