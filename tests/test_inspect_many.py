"""``trustkit inspect REPO [REPO…]``, as ``docker trust inspect`` takes several images:
a section each, a JSON array of their objects, and a repository that cannot be inspected
reported without hiding the others, the exit code saying that one failed."""

from __future__ import annotations

from pathlib import Path

from tests.support.harness import DIGEST_A, DIGEST_B, Trustkit, free_port
from trustkit.cli import shapes

INSPECT_KEYS = shapes.InspectJSON.__required_keys__


def _failures(err: str) -> list[str]:
    """The lines that report a repository that failed (not first-use notes)."""
    return [
        line
        for line in err.splitlines()
        if line.startswith("trustkit: ") and not line.startswith("trustkit: trusting")
    ]


def _signed(publisher: Trustkit, gun: str, tag: str, digest: str) -> None:
    assert publisher("init", gun).code == 0
    signed = publisher("sign", f"{gun}:{tag}", "--digest", digest, "--size", "100")
    assert signed.code == 0, signed.err


def test_several_repositories_print_a_section_each_and_a_json_array(
    publisher: Trustkit, host: Trustkit, gun: str
):
    app, web = f"{gun}/app", f"{gun}/web"
    _signed(publisher, app, "1.0", DIGEST_A)
    _signed(publisher, web, "2.0", DIGEST_B)

    text = host("inspect", app, web)
    as_json = host("inspect", app, f"{web}:2.0", "--json")

    assert text.code == 0, text.err
    lines = text.out.splitlines()
    assert lines[0] == app and web in lines
    first, second = text.out.split(f"\n\n{web}\n")
    assert "1.0" in first and DIGEST_A in first and DIGEST_B not in first
    assert "2.0" in second and DIGEST_B in second and DIGEST_A not in second
    assert as_json.code == 0, as_json.err
    documents = as_json.json
    assert isinstance(documents, list)
    assert [d["repository"] for d in documents] == [app, web]
    assert all(d.keys() >= INSPECT_KEYS for d in documents)
    assert [t["digest"] for t in documents[1]["tags"]] == [DIGEST_B]


def test_one_repository_still_prints_the_readme_s_object(
    publisher: Trustkit, host: Trustkit, gun: str
):
    _signed(publisher, gun, "1.0", DIGEST_A)

    result = host("inspect", gun, "--json")

    assert result.code == 0, result.err
    assert isinstance(result.json, dict) and result.json["repository"] == gun


def test_an_unknown_repository_is_reported_and_the_others_are_still_printed(
    publisher: Trustkit, host: Trustkit, gun: str
):
    app, missing, web = f"{gun}/app", f"{gun}/never-made", f"{gun}/web"
    _signed(publisher, app, "1.0", DIGEST_A)
    _signed(publisher, web, "2.0", DIGEST_B)

    text = host("inspect", app, missing, web)
    as_json = host("inspect", app, missing, web, "--json")

    for result in (text, as_json):
        assert result.code == 1, result.out
        assert f"trustkit: {missing}: " in result.err
        assert len(_failures(result.err)) == 1
        assert "Traceback" not in result.err
    assert text.out.splitlines()[0] == app and f"\n{web}\n" in text.out
    assert missing not in text.out
    assert [d["repository"] for d in as_json.json] == [app, web]


def test_the_exit_code_is_the_first_failure_s(publisher: Trustkit, host: Trustkit, gun: str):
    _signed(publisher, gun, "1.0", DIGEST_A)
    bad = "registry.test/Upper/\x1b[2Kcase"
    missing = f"{gun}/never-made"

    bad_first = host("inspect", bad, missing, gun, "--json")
    missing_first = host("inspect", missing, bad, gun, "--json")

    assert bad_first.code == 2
    assert missing_first.code == 1
    for result in (bad_first, missing_first):
        assert [d["repository"] for d in result.json] == [gun]
        assert "\x1b" not in result.err and "\\x1b" in result.err  # shown, escaped
        assert len(_failures(result.err)) == 2


def test_an_unreachable_server_fails_every_repository_with_exit_3(tmp_path: Path):
    host = Trustkit(tmp_path / "host", f"http://127.0.0.1:{free_port()}")

    result = host("inspect", "registry.test/a", "registry.test/b", "--json")

    assert result.code == 3
    assert result.json == []
    assert "trustkit: registry.test/a: cannot fetch trust data" in result.err
    assert "trustkit: registry.test/b: cannot fetch trust data" in result.err


def test_hash_bins_show_the_keys_that_sign_them(publisher: Trustkit, host: Trustkit, gun: str):
    """The bins fold into one ``bins-*`` line; its KEYS column names their keys."""
    assert publisher("init", gun, "--bins", "4").code == 0
    signed = publisher("sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "100")
    assert signed.code == 0, signed.err

    as_json = host("inspect", gun, "--json")
    text = host("inspect", gun)

    roles = {r["role"]: r["signed_by"] for r in as_json.json["roles"]}
    assert roles["bins-*"] and roles["bins-*"] == roles["bins"]
    [line] = [line for line in text.out.splitlines() if line.startswith("bins-*")]
    assert roles["bins-*"][0][:12] in line
