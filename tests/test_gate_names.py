"""Every spelling of an image name gets the rule and the trust data of its one
canonical name, or is refused: none reaches Docker unverified.

Docker reads ``host:443/x`` and ``host/x``, ``HOST/x``, ``nginx`` and
``registry-1.docker.io:443/library/nginx`` as different names of the same place. If the
gate looked the policy or the trust data up under the spelling the user typed, the
spelling would pick a weaker rule (here: the ``unsigned-ok`` default) and the image
would reach ``docker run`` unverified. The real ``trustkit`` process runs against a
real server; ``docker`` is a recorder (see ``tests/test_docker_gate.py``).
"""

from __future__ import annotations

import base64
import json
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from client.docker_config import DockerConfig
from tests.support.docker_recorder import Recorder, write_recorder
from tests.support.harness import ServerProcess, Trustkit, publisher_cli

DIGEST = "sha256:" + "4a" * 32
HOST = "names.example.com/team/app"  # canonical spellings of the signed repositories
HUB = "docker.io/library/trustkit-names-test"
LOOPBACK = "127.0.0.1:5000/names/app"

PROTECTED = """\
default = "unsigned-ok"

[[rule]]
repositories = ["names.example.com/team/**", "docker.io/library/trustkit-names-*",
                "127.0.0.1:5000/names/**", "[::1]:5000/names/**"]
signers = [SIGNERS]
"""

SPELLINGS = {
    HOST: [
        "names.example.com:443/team/app:1.0",
        "names.example.com:0443/team/app:1.0",
        "NAMES.Example.COM/team/app:1.0",
        "Names.Example.Com:00443/team/app:1.0",
    ],
    HUB: [
        "trustkit-names-test:1.0",
        "docker.io/trustkit-names-test:1.0",
        "docker.io:443/trustkit-names-test:1.0",
        "index.docker.io/trustkit-names-test:1.0",
        "index.docker.io/library/trustkit-names-test:1.0",
        "registry-1.docker.io/library/trustkit-names-test:1.0",
        "registry-1.docker.io:443/library/trustkit-names-test:1.0",
        "Registry-1.Docker.IO:443/library/trustkit-names-test:1.0",
    ],
    LOOPBACK: [
        "127.0.0.1:05000/names/app:1.0",
        "[::ffff:127.0.0.1]:5000/names/app:1.0",
        "[0:0:0:0:0:ffff:7f00:1]:5000/names/app:1.0",
    ],
}
EVERY_SPELLING = [(gun, written) for gun, spellings in SPELLINGS.items() for written in spellings]


@dataclass(frozen=True)
class Policies:
    targets: Path  # the tags' signer is accepted
    releases: Path  # only targets/releases is accepted: every tag here is refused


@pytest.fixture(scope="module")
def signed_names(tmp_path_factory: pytest.TempPathFactory, server: ServerProcess) -> Policies:
    work = tmp_path_factory.mktemp("gate-names")
    publisher = publisher_cli(work / "publisher" / ".trustkit", server.url)
    for gun in SPELLINGS:
        assert publisher("init", gun).code == 0
        signed = publisher("sign", f"{gun}:1.0", "--digest", DIGEST, "--size", "100")
        assert signed.code == 0, signed.err
    targets = work / "targets.toml"
    targets.write_text(PROTECTED.replace("SIGNERS", '"targets"'))
    releases = work / "releases.toml"
    releases.write_text(PROTECTED.replace("SIGNERS", '"targets/releases"'))
    return Policies(targets, releases)


@pytest.fixture
def recorder(tmp_path: Path) -> Recorder:
    bindir = tmp_path / "bin"
    write_recorder(bindir / "docker")
    return Recorder(bindir, tmp_path / "docker-calls.jsonl")


@pytest.mark.parametrize(("gun", "written"), EVERY_SPELLING)
def test_every_spelling_of_a_signed_image_runs_pinned_under_its_canonical_name(
    host: Trustkit, signed_names: Policies, recorder: Recorder, gun: str, written: str
):
    result = host.process(
        "run", "--policy", str(signed_names.targets), "--rm", written, env=recorder.env()
    )

    assert result.code == 0, result.err
    assert recorder.calls() == [["docker", "run", "--rm", f"{gun}@{DIGEST}"]]
    assert "runs unverified" not in result.err


@pytest.mark.parametrize(("gun", "written"), EVERY_SPELLING)
def test_another_spelling_cannot_pick_a_weaker_policy_rule(
    host: Trustkit, signed_names: Policies, recorder: Recorder, gun: str, written: str
):
    result = host.process(
        "run", "--policy", str(signed_names.releases), written, env=recorder.env()
    )

    assert result.code == 1, result.err
    assert f"{gun}:1.0 is signed by 'targets'" in result.err
    assert "accepts only targets/releases" in result.err
    assert not recorder.invoked


@pytest.mark.parametrize(
    "command",
    [("pull",), ("create",), ("docker", "run"), ("docker", "container", "create"), ("resolve",)],
    ids=["pull", "create", "docker-run", "docker-container-create", "resolve"],
)
def test_every_gated_command_decides_on_the_canonical_name(
    host: Trustkit, signed_names: Policies, recorder: Recorder, command: tuple[str, ...]
):
    written = "Registry-1.Docker.IO:443/library/trustkit-names-test:1.0"
    env = recorder.env(TRUSTKIT_POLICY=str(signed_names.releases))

    refused = host.process(*command, written, env=env)

    assert refused.code == 1, refused.err
    assert "accepts only targets/releases" in refused.err
    assert not recorder.invoked


def test_pull_tags_the_canonical_name(host: Trustkit, signed_names: Policies, recorder: Recorder):
    result = host.process(
        "pull", "--policy", str(signed_names.targets), "NAMES.example.com:443/team/app:1.0",
        env=recorder.env(),
    )  # fmt: skip

    assert result.code == 0, result.err
    assert recorder.calls() == [
        ["docker", "pull", f"{HOST}@{DIGEST}"],
        ["docker", "tag", f"{HOST}@{DIGEST}", f"{HOST}:1.0"],
    ]


def test_resolve_prints_the_canonical_pinned_name(host: Trustkit, signed_names: Policies):
    result = host.process(
        "resolve", "--policy", str(signed_names.targets), "index.docker.io/trustkit-names-test:1.0"
    )

    assert result.code == 0, result.err
    assert result.out.strip() == f"{HUB}@{DIGEST}"


def test_ipv6_spellings_of_one_address_get_one_rule(
    host: Trustkit, signed_names: Policies, recorder: Recorder
):
    """[::1]:5000 is protected and has no trust data: every spelling of it is refused."""
    for written in ("[::1]:5000/names/app:1.0", "[0:0::1]:5000/names/app:1.0"):
        result = host.process(
            "run", "--policy", str(signed_names.targets), written, env=recorder.env()
        )
        assert result.code in (1, 3), result.err
        assert "runs unverified" not in result.err
    assert not recorder.invoked


@pytest.mark.parametrize(
    ("written", "reason"),
    [
        ("names.example.com./team/app:1.0", "ends the registry host with a dot"),
        ("names.example.com:+443/team/app:1.0", "has no valid port number"),
        ("names.example.com:/team/app:1.0", "has no valid port number"),
        ("names.example.com:65979/team/app:1.0", "has no valid port number"),
        ("names%2eexample.com/team/app:1.0", "is not a valid registry host name"),
        ("names.example.com/team%2fapp:1.0", "not a valid repository path component"),
        ("n\u0430mes.example.com/team/app:1.0", "holds characters a repository name cannot"),
        ("names.example.com/te\u0430m/app:1.0", "holds characters a repository name cannot"),
        ("names.example.com//team/app:1.0", "not a valid repository path component"),
        ("names.example.com/team//app:1.0", "not a valid repository path component"),
        ("127.1:5000/names/app:1.0", "not an IPv4 address written as four decimal numbers"),
        ("127.000.0.1:5000/names/app:1.0", "not an IPv4 address written as four decimal"),
        ("0x7f.0.0.1:5000/names/app:1.0", "not an IPv4 address written as four decimal"),
        ("2130706433:5000/names/app:1.0", "not an IPv4 address written as four decimal"),
        ("[fe80::1%25eth0]:5000/names/app:1.0", "not a valid IPv6 registry address"),
        ("Team/app:1.0", "as a registry host, but it is not one"),
    ],
)
def test_a_name_without_one_spelling_is_refused_before_anything_runs(
    host: Trustkit, signed_names: Policies, recorder: Recorder, written: str, reason: str
):
    result = host.process("run", "--policy", str(signed_names.targets), written, env=recorder.env())

    assert result.code == 2, result.err
    assert reason in result.err
    assert "Traceback" not in result.err
    assert not recorder.invoked


def test_an_unsigned_image_the_policy_allows_reaches_docker_by_its_canonical_name(
    host: Trustkit, recorder: Recorder, tmp_path: Path
):
    """What Docker pulls is what the policy judged, not a spelling Docker might read
    otherwise."""
    policy = tmp_path / "open.toml"
    policy.write_text(textwrap.dedent('default = "unsigned-ok"\n'))

    result = host.process(
        "run", "--policy", str(policy), "Unsigned.Example.com:0443/a/b", env=recorder.env()
    )

    assert result.code == 0, result.err
    assert recorder.calls() == [["docker", "run", "unsigned.example.com/a/b:latest"]]
    assert "runs unverified" in result.err


@pytest.mark.parametrize(
    "key", ["Names.Example.com:443", "https://names.example.com:0443/v2/", "names.example.com"]
)
def test_docker_credentials_are_found_under_any_spelling_of_the_host(tmp_path: Path, key: str):
    config = tmp_path / "config.json"
    auth = base64.b64encode(b"ci:secret").decode()
    config.write_text(json.dumps({"auths": {key: {"auth": auth}}}))

    found = DockerConfig.load(config).credentials("names.example.com")

    assert found is not None and (found.username, found.password) == ("ci", "secret")
