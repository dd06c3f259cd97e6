"""A pipeline written for ``docker trust`` keeps its variables: DOCKER_CONTENT_TRUST_SERVER
and DOCKER_CONTENT_TRUST_{ROOT,REPOSITORY}_PASSPHRASE work where trustkit's own are unset,
and trustkit's own win where both are set."""

from __future__ import annotations

from pathlib import Path

from tests.support.harness import DIGEST_A, DIGEST_B, ServerProcess, Trustkit, assert_verifies

UNSET = {
    "TRUSTKIT_SERVER": "",
    "TRUSTKIT_ROOT_PASSPHRASE": "",
    "TRUSTKIT_TARGETS_PASSPHRASE": "",
    "TRUSTKIT_SNAPSHOT_PASSPHRASE": "",
}


def test_a_docker_trust_pipeline_signs_with_its_own_variables(
    server: ServerProcess, host: Trustkit, gun: str, tmp_path: Path
):
    pipeline = Trustkit(
        tmp_path / "ci" / ".trustkit",
        "http://127.0.0.1:9",  # nothing listens here: only the Docker variable is right
        {
            **UNSET,
            "DOCKER_CONTENT_TRUST_SERVER": server.url,
            "DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE": "docker root passphrase",
            "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE": "docker repository passphrase",
            "TRUSTKIT_TOKEN": server.token,
        },
    )

    initialised = pipeline("init", gun)
    signed = pipeline("sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "10")

    assert initialised.code == 0, initialised.err
    assert signed.code == 0, signed.err
    assert_verifies(host, gun, "1.0", DIGEST_A)
    # The targets key was sealed with the repository passphrase: another one fails.
    wrong = pipeline(
        "sign",
        f"{gun}:1.1",
        "--digest",
        DIGEST_B,
        "--size",
        "10",
        env={"DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE": "not it"},
    )
    assert wrong.code == 2
    assert "$DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE" in wrong.err


def test_trustkits_own_variables_win_over_dockers(publisher: Trustkit, host: Trustkit, gun: str):
    assert publisher("init", gun).code == 0

    signed = publisher(
        "sign",
        f"{gun}:1.0",
        "--digest",
        DIGEST_A,
        "--size",
        "10",
        env={
            "DOCKER_CONTENT_TRUST_SERVER": "http://127.0.0.1:9",
            "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE": "not the targets passphrase",
        },
    )

    assert signed.code == 0, signed.err
    assert_verifies(host, gun, "1.0", DIGEST_A)
