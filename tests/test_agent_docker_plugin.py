"""Enforcement: the agent as the Docker daemon's authorization plugin. A plain ``docker
run`` — no trustkit on the command line — starts a signed image and nothing else: not an
unsigned tag, not a tag moved in the registry, not an image that came from ``docker
import``, ``commit`` or a local ``tag``. With the agent gone, the daemon refuses
(fail closed). Driven through the real docker CLI against a real daemon and registry."""

from __future__ import annotations

import base64
import json
import secrets
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.agent_process import AgentProcess
from tests.support.docker_daemon import DockerDaemon
from tests.support.harness import ServerProcess, Trustkit, publisher_cli
from tests.support.registry import RegistryProcess

PLUGIN_DIR = Path("/etc/docker/plugins")


class Enforced:
    """A daemon that asks the agent about every request, and the agent it asks."""

    def __init__(self, root: Path, server: ServerProcess, registry: RegistryProcess) -> None:
        self.root = root
        self.registry = registry
        self.name = f"trustkit-test-{secrets.token_hex(4)}"
        self.policy = root / "policy.toml"
        self.policy.write_text(
            textwrap.dedent(
                f"""\
                default = "signed"
                [[rule]]
                repositories = ["{registry.host}/open/**"]
                trust = "unsigned-ok"
                """
            )
        )
        self.daemon = DockerDaemon(root / "dockerd", (self.name,))
        self.agent = AgentProcess(
            root / "agent" / ".trustkit",
            server.url,
            ("--policy", str(self.policy), "--docker-socket", str(self.daemon.socket)),
            plugin=True,
        )
        self.spec = PLUGIN_DIR / f"{self.name}.spec"

    def start(self) -> Enforced:
        self.agent.start()
        PLUGIN_DIR.mkdir(parents=True, exist_ok=True)
        self.spec.write_text(f"unix://{self.agent.plugin_socket}\n")
        self.daemon.start()
        return self

    def stop(self) -> None:
        self.daemon.stop()
        self.agent.stop()
        self.spec.unlink(missing_ok=True)

    def docker(self, *args: str) -> tuple[int, str]:
        done = self.daemon.docker(*args, check=False)
        return done.returncode, done.stdout + done.stderr


@pytest.fixture(scope="module")
def enforced(
    tmp_path_factory: pytest.TempPathFactory, server: ServerProcess, registry: RegistryProcess
) -> Iterator[Enforced]:
    host = Enforced(tmp_path_factory.mktemp("enforced"), server, registry).start()
    yield host
    host.stop()


@pytest.fixture(scope="module")
def owner(tmp_path_factory: pytest.TempPathFactory, server: ServerProcess) -> Trustkit:
    return publisher_cli(tmp_path_factory.mktemp("owner") / ".trustkit", server.url)


def _push(enforced: Enforced, reference: str, marker: str) -> str:
    enforced.daemon.import_busybox(reference, marker)
    return enforced.daemon.push(reference)


def _signed_release(enforced: Enforced, owner: Trustkit, image: str, marker: str) -> str:
    digest = _push(enforced, f"{image}:1.0", marker)
    assert owner("init", image).code == 0
    signed = owner("sign", f"{image}:1.0")
    assert signed.code == 0, signed.err
    enforced.daemon.remove_all_images()
    return digest


def _run(enforced: Enforced, reference: str) -> tuple[int, str]:
    """``docker run REF cat /marker``: (0, what the container printed), or the refusal."""
    done = enforced.daemon.docker(
        "run", "--rm", "--network", "none", reference, "cat", "/marker", check=False
    )
    return done.returncode, done.stdout if done.returncode == 0 else done.stderr


def test_plain_docker_run_starts_a_signed_image(enforced: Enforced, owner: Trustkit, image: str):
    digest = _signed_release(enforced, owner, image, "signed release")

    pulled = enforced.docker("pull", f"{image}:1.0")
    by_tag = _run(enforced, f"{image}:1.0")
    by_digest = _run(enforced, f"{image}@{digest}")

    assert pulled[0] == 0, pulled[1]
    assert by_tag == (0, "signed release\n")
    assert by_digest == (0, "signed release\n")


def test_plain_docker_run_refuses_an_unsigned_tag(enforced: Enforced, owner: Trustkit, image: str):
    _signed_release(enforced, owner, image, "signed release")
    _push(enforced, f"{image}:2.0", "never signed")
    enforced.daemon.remove_all_images()
    assert enforced.docker("pull", f"{image}:2.0")[0] == 0  # a pull runs nothing

    code, output = _run(enforced, f"{image}:2.0")

    assert code != 0
    assert "authorization denied by plugin" in output
    assert f"no signed tag 2.0 in {image}" in output


def test_plain_docker_run_refuses_a_tag_moved_in_the_registry(
    enforced: Enforced, owner: Trustkit, image: str
):
    signed = _signed_release(enforced, owner, image, "signed release")
    moved = _push(enforced, f"{image}:1.0", "pushed over the tag")
    enforced.daemon.remove_all_images()
    assert enforced.docker("pull", f"{image}:1.0")[0] == 0  # gets the moved image

    code, output = _run(enforced, f"{image}:1.0")

    assert moved != signed
    assert code != 0
    assert f"is not the signed one: {image}:1.0 is signed as {signed}" in output
    assert _run(enforced, f"{image}@{signed}") == (0, "signed release\n")


@pytest.mark.parametrize("origin", ["import", "commit", "tag"])
def test_images_made_on_the_host_under_a_signed_name_are_refused(
    enforced: Enforced, owner: Trustkit, image: str, origin: str
):
    _signed_release(enforced, owner, image, "signed release")
    daemon = enforced.daemon
    if origin == "import":
        daemon.import_busybox(f"{image}:1.0", "imported")
    elif origin == "tag":
        daemon.import_busybox("local/other:1", "retagged")
        assert enforced.docker("tag", "local/other:1", f"{image}:1.0")[0] == 0
    else:
        assert enforced.docker("pull", f"{image}:1.0")[0] == 0
        container = enforced.docker("create", "--network", "none", f"{image}:1.0", "true")
        assert container[0] == 0, container[1]
        committed = enforced.docker("commit", container[1].strip().splitlines()[-1], f"{image}:1.0")
        assert committed[0] == 0, committed[1]

    code, output = _run(enforced, f"{image}:1.0")

    assert code != 0
    assert "is not the signed one" in output


def test_an_unsigned_ok_repository_runs_unsigned(enforced: Enforced, registry: RegistryProcess):
    open_image = f"{registry.host}/open/tools:1"
    _push(enforced, open_image, "anything goes here")

    assert _run(enforced, open_image) == (0, "anything goes here\n")


def test_builds_are_refused_where_images_must_be_signed(enforced: Enforced, tmp_path: Path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")

    code, output = enforced.docker("build", "-t", "local/built:1", str(tmp_path))

    assert code != 0
    assert "cannot be judged by trustkit" in output


def test_with_the_agent_gone_the_daemon_refuses(enforced: Enforced, owner: Trustkit, image: str):
    _signed_release(enforced, owner, image, "signed release")
    assert enforced.docker("pull", f"{image}:1.0")[0] == 0
    enforced.agent.stop()
    try:
        code, output = _run(enforced, f"{image}:1.0")
    finally:
        enforced.agent.start()

    # Nothing ran: the daemon answers every request with an error while it cannot
    # reach the plugin (even its ping), and runs again once the agent is back.
    assert code != 0
    assert "signed release" not in output
    assert "500" in output or "plugin" in output.lower()
    assert _run(enforced, f"{image}:1.0") == (0, "signed release\n")


def _daemon_request(enforced: Enforced, body: dict[str, object] | str) -> httpx.Response:
    """A raw API request to the daemon, as any program on the socket could send it."""
    content = body if isinstance(body, str) else json.dumps(body)
    transport = httpx.HTTPTransport(uds=str(enforced.daemon.socket))
    with httpx.Client(transport=transport, timeout=60) as daemon:
        return daemon.post(
            "http://docker/v1.41/containers/create",
            content=content,
            headers={"Content-Type": "application/json"},
        )


def _ask_plugin(enforced: Enforced, method: str, uri: str, body: dict[str, object]) -> Any:
    """The plugin's verdict on a request, asked as the daemon asks it."""
    request = {
        "RequestMethod": method,
        "RequestUri": uri,
        "RequestBody": base64.b64encode(json.dumps(body).encode()).decode(),
    }
    transport = httpx.HTTPTransport(uds=str(enforced.agent.plugin_socket))
    with httpx.Client(transport=transport, timeout=60) as plugin:
        return plugin.post("http://plugin/AuthZPlugin.AuthZReq", json=request).json()


def test_a_create_naming_the_image_twice_in_two_spellings_is_refused(
    enforced: Enforced, owner: Trustkit, image: str
):
    """Go reads JSON keys without regard to case and takes the last: {"Image": signed,
    "image": unsigned} would run the unsigned one."""
    _signed_release(enforced, owner, image, "signed release")
    _push(enforced, f"{image}:evil", "never signed")
    assert enforced.docker("pull", f"{image}:1.0")[0] == 0
    before = enforced.daemon.docker("ps", "--all", "--quiet").stdout.split()
    for second in ("image", "IMAGE", "iMaGe"):
        answer = _daemon_request(
            enforced,
            f'{{"Image": "{image}:1.0", "{second}": "{image}:evil", "Cmd": ["cat", "/marker"],'
            ' "HostConfig": {"NetworkMode": "none"}}',
        )
        assert answer.status_code == 403, (second, answer.text)
        assert "authorization denied" in answer.text
    assert enforced.daemon.docker("ps", "--all", "--quiet").stdout.split() == before


def test_an_image_mounted_into_a_container_is_judged_as_its_image(
    enforced: Enforced, owner: Trustkit, image: str
):
    _signed_release(enforced, owner, image, "signed release")
    assert enforced.docker("pull", f"{image}:1.0")[0] == 0
    mount = {"Type": "image", "Source": f"{image}:unsigned", "Target": "/x"}

    verdict = _ask_plugin(
        enforced,
        "POST",
        "/v1.50/containers/create",
        {"Image": f"{image}:1.0", "HostConfig": {"Mounts": [mount]}},
    )

    assert verdict["Allow"] is False
    assert f"no signed tag unsigned in {image}" in verdict["Msg"]


@pytest.mark.parametrize(
    "template",
    [
        {"Runtime": "plugin", "PluginSpec": {"Remote": "evil.example/plugin:1"}},
        {"ContainerSpec": {"Image": "x"}, "pluginspec": {"Remote": "evil.example/plugin:1"}},
    ],
    ids=["plugin-runtime", "plugin-spec"],
)
def test_a_service_that_installs_a_plugin_is_refused(enforced: Enforced, template: Any):
    verdict = _ask_plugin(enforced, "POST", "/v1.41/services/create", {"TaskTemplate": template})

    assert verdict["Allow"] is False
    assert "installs a plugin" in verdict["Msg"]


def test_a_flood_of_idle_cli_clients_does_not_stop_the_daemon(
    enforced: Enforced, owner: Trustkit, image: str
):
    """The plugin's connections are its own: idle clients on the CLI socket, as many as
    it takes at once, leave Docker's requests answered."""
    import socket

    _signed_release(enforced, owner, image, "signed release")
    assert enforced.docker("pull", f"{image}:1.0")[0] == 0
    idle = []
    try:
        for _ in range(300):
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.connect(str(enforced.agent.socket))
            idle.append(client)
        ran = _run(enforced, f"{image}:1.0")
    finally:
        for client in idle:
            client.close()

    assert ran == (0, "signed release\n")


def test_a_short_image_id_is_refused_even_where_unsigned_images_may_run(
    enforced: Enforced, registry: RegistryProcess
):
    """The daemon takes a bare hex string for an image ID prefix once no image has that
    name: judged as docker.io/library/<hex>, it could run any local image."""
    enforced.daemon.import_busybox(f"{registry.host}/open/local:1", "an unsigned image")
    short_id = enforced.daemon.docker("images", "--quiet", f"{registry.host}/open/local:1")
    prefix = short_id.stdout.strip()[:8]

    for spelling in (prefix, f"sha256:{prefix}"):
        code, output = _run(enforced, spelling)
        assert code != 0, spelling
        assert "may name an image by its ID" in output


def test_a_body_with_a_key_outside_ascii_is_refused(enforced: Enforced, image: str):
    answer = _daemon_request(enforced, f'{{"Image": "{image}:1.0", "\u0131mage": "x"}}')

    assert answer.status_code == 403, answer.text
