"""The server on a network: tokens with scopes, TLS, the audit changefeed, and logs that
never hold a secret. Every test starts a real server and talks to it over HTTP, through
the CLI as users do or with raw requests as an attacker would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.support.harness import (
    DIGEST_A,
    DIGEST_B,
    ROOT_PASSPHRASE,
    TARGETS_PASSPHRASE,
    ServerProcess,
    Trustkit,
    assert_verifies,
    publisher_cli,
)
from tests.support.registry import TestCA
from tests.support.tokens import cli_as, issue_token

TEAM = "registry.test/team"


def _server_cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", "token", *args, "--data-dir", str(server.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _sign(tk: Trustkit, gun: str, tag: str, digest: str) -> Any:
    return tk("sign", f"{gun}:{tag}", "--digest", digest, "--size", "100")


def test_writes_need_a_token_whose_scope_covers_the_repository(
    server: ServerProcess, tmp_path: Path, gun: str
):
    app = f"{TEAM}/{gun.rsplit('/', 1)[1]}"
    anonymous = cli_as(tmp_path, server, "anonymous", None)
    refused = anonymous("init", app)
    assert refused.code == 1
    assert "needs a bearer token to push" in refused.err
    assert "TRUSTKIT_TOKEN" in refused.err

    ci = cli_as(tmp_path, server, "ci", issue_token(server, f"ci-{gun[-20:]}", f"push:{TEAM}/*"))
    assert ci("init", app).code == 0
    assert _sign(ci, app, "1.0", DIGEST_A).code == 0
    host = Trustkit(tmp_path / "host" / ".trustkit", server.url, {"TRUSTKIT_TOKEN": ""})
    assert_verifies(host, app, "1.0", DIGEST_A)  # reads are open by default

    elsewhere = ci("init", "registry.test/other/app")
    assert elsewhere.code == 1
    assert f"may not push registry.test/other/app (its scopes: push:{TEAM}/*;" in elsewhere.err

    raw = httpx.post(server.metadata_url(app), files={"files": ("targets.json", b"{}")})
    assert raw.status_code == 401
    assert raw.headers["www-authenticate"].startswith("Bearer")
    assert raw.json()["error"] == "unauthorized"
    wrong = httpx.post(
        server.metadata_url(app),
        files={"files": ("targets.json", b"{}")},
        headers={"Authorization": "Bearer tkt_" + "x" * 43},
    )
    assert wrong.status_code == 401
    assert "not valid" in wrong.json()["detail"]


def test_push_cannot_do_what_needs_admin_and_pull_cannot_push(
    server: ServerProcess, tmp_path: Path, gun: str
):
    owner = publisher_cli(tmp_path / "owner" / ".trustkit", server.url)
    assert owner("init", gun).code == 0
    suffix = gun[-24:]
    pusher = issue_token(server, f"push-{suffix}", f"push:{gun}")
    reader = issue_token(server, f"pull-{suffix}", f"pull:{gun}")

    for token, method, filename, needed in (
        (pusher, "POST", "snapshot.key", "admin"),
        (pusher, "DELETE", "", "admin"),
        (reader, "POST", "", "push"),
    ):
        answer = httpx.request(
            method,
            server.metadata_url(gun, filename),
            headers={"Authorization": f"Bearer {token}"},
            files={"files": ("targets.json", b"{}")} if method == "POST" and not filename else None,
        )
        assert answer.status_code == 403, (method, filename, answer.text)
        assert answer.json()["error"] == "forbidden"
        assert f"may not {needed} {gun}" in answer.json()["detail"]
    # The admin token does both.
    admin = server.auth_headers()
    assert httpx.post(server.metadata_url(gun, "snapshot.key"), headers=admin).status_code == 200
    assert httpx.delete(server.metadata_url(gun), headers=admin).status_code == 200


def test_a_revoked_token_stops_working_and_the_database_holds_no_token(
    server: ServerProcess, tmp_path: Path, gun: str
):
    name = f"rev-{gun[-24:]}"
    token = issue_token(server, name, f"push:{gun}")
    ci = cli_as(tmp_path, server, "ci", token)
    assert ci("init", gun).code == 0

    listed = _server_cli(server, "list")
    assert listed.returncode == 0
    assert name in listed.stdout and f"push:{gun}" in listed.stdout
    assert token not in listed.stdout + listed.stderr
    assert token.encode() not in server.database.read_bytes()
    wal = server.database.with_name("trustkit.db-wal")
    assert not wal.exists() or token.encode() not in wal.read_bytes()

    assert _server_cli(server, "revoke", name).returncode == 0
    refused = _sign(ci, gun, "1.0", DIGEST_A)
    assert refused.code == 1
    assert "not valid (unknown or revoked)" in refused.err
    again = _server_cli(server, "revoke", name)
    assert again.returncode == 2 and f"no live token named {name}" in again.stderr


def test_token_create_refuses_bad_scopes_and_names(server: ServerProcess):
    for args, message in (
        (["--name", "ci", "--scope", "write:*"], "'write:*' is not a scope"),
        (["--name", "ci", "--scope", "push"], "'push' is not a scope"),
        (["--name", "bad name", "--scope", "push:**"], "is not a token name"),
        (["--name", "ci", "--scope", "push:*"], "covers no repository"),
    ):
        done = _server_cli(server, "create", *args)
        assert done.returncode == 2, done.stderr
        assert message in done.stderr
        assert "Traceback" not in done.stderr
        assert done.stdout == ""


def test_with_read_auth_hosts_need_a_pull_token(start_server: Any, tmp_path: Path, gun: str):
    server: ServerProcess = start_server("--read-auth")
    publisher = publisher_cli(tmp_path / "publisher" / ".trustkit", server.url)
    assert publisher("init", gun).code == 0
    assert _sign(publisher, gun, "1.0", DIGEST_A).code == 0

    stranger = Trustkit(tmp_path / "stranger" / ".trustkit", server.url, {"TRUSTKIT_TOKEN": ""})
    refused = stranger("verify", f"{gun}:1.0", "--offline")
    assert refused.code == 1
    assert "needs an access token with a pull scope" in refused.err
    token_file = tmp_path / "pull.token"
    token_file.write_text(issue_token(server, "host", f"pull:{gun}") + "\n")
    reader = Trustkit(tmp_path / "reader" / ".trustkit", server.url, {"TRUSTKIT_TOKEN": ""})
    result = reader("verify", f"{gun}:1.0", "--offline", "--token-file", str(token_file))
    assert result.code == 0, result.err
    assert DIGEST_A in result.out


def test_the_changefeed_records_every_change_with_the_token_s_name(
    start_server: Any, tmp_path: Path, gun: str
):
    server: ServerProcess = start_server()
    ci = cli_as(tmp_path, server, "ci", issue_token(server, "ci-app", "push:registry.test/*"))
    assert ci("init", gun).code == 0
    assert _sign(ci, gun, "1.0", DIGEST_A).code == 0
    owner_admin = server.auth_headers()
    assert httpx.post(server.metadata_url(gun, "timestamp.key"), headers=owner_admin).is_success
    assert httpx.delete(server.metadata_url(gun), headers=owner_admin).is_success

    feed_url = f"{server.url}/v2/_trust/changefeed"
    everything = httpx.get(feed_url, headers=owner_admin).json()["entries"]
    assert [(e["action"], e["token"]) for e in everything] == [
        ("publish", "ci-app"),
        ("publish", "ci-app"),
        ("next_key", f"admin-file-{server.token_file.name}"),
        ("delete", f"admin-file-{server.token_file.name}"),
    ]
    assert {e["repository"] for e in everything} == {gun}
    assert everything[0]["versions"] == {"root": 1, "targets": 1, "snapshot": 1, "timestamp": 1}
    assert everything[1]["versions"]["targets"] == 2
    assert everything[2]["detail"].startswith("timestamp ")
    # Paged: after a seq, at most limit entries; "next" is where to go on from.
    page = httpx.get(feed_url, params={"after": 0, "limit": 2}, headers=owner_admin).json()
    assert [e["seq"] for e in page["entries"]] == [e["seq"] for e in everything[:2]]
    rest = httpx.get(feed_url, params={"after": page["next"]}, headers=owner_admin).json()
    assert [e["seq"] for e in rest["entries"]] == [e["seq"] for e in everything[2:]]

    assert httpx.get(feed_url).status_code == 401
    pusher = {"Authorization": f"Bearer {issue_token(server, 'pusher', 'push:**')}"}
    assert httpx.get(feed_url, headers=pusher).status_code == 403
    other = {"Authorization": f"Bearer {issue_token(server, 'other-admin', 'admin:elsewhere/*')}"}
    assert httpx.get(feed_url, headers=other).json()["entries"] == []


def test_no_token_or_passphrase_reaches_a_log(start_server: Any, tmp_path: Path, gun: str):
    server: ServerProcess = start_server("--log-level", "debug")
    token = issue_token(server, "ci-logs", "push:registry.test/*")
    ci = cli_as(tmp_path, server, "ci", token)
    results = [
        ci("init", gun),
        _sign(ci, gun, "1.0", DIGEST_A),
        _sign(ci, gun, "2.0", DIGEST_B),
        ci("verify", f"{gun}:1.0", "--offline", "--json"),
        ci(
            "sign",
            f"{gun}:3.0",
            "--digest",
            DIGEST_A,
            "--size",
            "100",
            env={"TRUSTKIT_TOKEN": token + "x"},
        ),
        ci("key", "rotate", gun, "targets"),
    ]
    assert [r.code for r in results] == [0, 0, 0, 0, 1, 0]
    server.stop()
    log = server.log_path.read_text()
    assert "POST /v2/" in log  # the access log was written
    secrets = [token, server.token, ROOT_PASSPHRASE, TARGETS_PASSPHRASE]
    for secret in secrets:
        assert secret not in log
        for result in results:
            assert secret not in result.out + result.err


def test_tls_server_with_the_client_given_its_ca(tmp_path: Path, gun: str):
    ca = TestCA(tmp_path / "tls")
    server = ServerProcess(
        tmp_path / "server",
        "--tls-cert",
        str(ca.cert_path),
        "--tls-key",
        str(ca.key_path),
        ca_file=ca.ca_path,
    ).start()
    try:
        assert server.url.startswith("https://")
        publisher = publisher_cli(tmp_path / "publisher" / ".trustkit", server.url)
        publisher.env["TRUSTKIT_CA_FILE"] = str(ca.ca_path)
        assert publisher("init", gun).code == 0
        assert _sign(publisher, gun, "1.0", DIGEST_A).code == 0
        host = Trustkit(tmp_path / "host" / ".trustkit", server.url)
        verified = host("verify", f"{gun}:1.0", "--offline", "--ca-file", str(ca.ca_path))
        assert verified.code == 0, verified.err
        untrusting = host("verify", f"{gun}:1.0", "--offline")
        assert untrusting.code == 3
        assert "CERTIFICATE_VERIFY_FAILED" in untrusting.err or "certificate" in untrusting.err
    finally:
        server.stop()


def test_tls_needs_both_certificate_and_key(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "server", "--data-dir", str(tmp_path), "--tls-cert", "x.pem"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--tls-cert and --tls-key go together" in done.stderr


def test_metrics_count_requests_publishes_and_refusals_without_naming_anything(
    start_server: Any, tmp_path: Path, gun: str
):
    server: ServerProcess = start_server()
    publisher = publisher_cli(tmp_path / "publisher" / ".trustkit", server.url)
    assert publisher("init", gun).code == 0
    assert _sign(publisher, gun, "1.0", DIGEST_A).code == 0
    refused = httpx.post(
        server.metadata_url(gun),
        files={"files": ("timestamp.json", b"{}")},
        headers=server.auth_headers(),
    )
    assert refused.status_code == 400

    text = httpx.get(f"{server.url}/_trustkit/metrics").text
    lines = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    assert lines["trustkit_publishes_total"] == "2"
    assert lines['trustkit_refusals_total{error="server_signed_role"}'] == "1"
    assert int(lines['trustkit_http_requests_total{method="POST",status="200"}']) == 2
    assert gun not in text and "registry.test" not in text


def test_token_create_refuses_a_data_dir_with_no_server_database(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "server", "token", "create", "--name", "ci", "--scope",
         "push:registry.test/**", "--data-dir", str(tmp_path / "not-the-server")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert done.returncode == 2, done.stderr
    assert done.stdout == ""  # no token that no server would ever accept
    assert f"no server database in {tmp_path / 'not-the-server'}" in done.stderr
    assert "give the server's --data-dir" in done.stderr
    assert not (tmp_path / "not-the-server").exists()


def test_a_token_says_which_database_it_went_into_and_a_stranger_token_gets_a_hint(
    server: ServerProcess, tmp_path: Path, gun: str
):
    made = subprocess.run(
        [sys.executable, "-m", "server", "token", "create", "--name", "where", "--scope",
         "push:registry.test/**", "--data-dir", str(server.data_dir)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    stranger = cli_as(tmp_path, server, "stranger", "tkt_not_made_by_this_server")

    refused = stranger("init", gun)

    assert made.returncode == 0, made.stderr
    assert f"in {server.data_dir / 'trustkit.db'}" in made.stderr
    assert refused.code == 1
    assert "the bearer token is not valid" in refused.err
    assert "trustkit-server token list --data-dir" in refused.err


def test_server_help_names_the_token_and_export_commands():
    shown = subprocess.run(
        [sys.executable, "-m", "server", "--help"], capture_output=True, text=True, check=True
    )

    assert "trustkit-server token create|list|revoke|generate" in shown.stdout
    assert "trustkit-server export --to DIR" in shown.stdout


def test_token_list_keeps_its_columns_aligned_whatever_the_names(server: ServerProcess):
    def server_cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "server", "token", *args, "--data-dir", str(server.data_dir)],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        return done.stdout

    server_cli("create", "--name", "a-rather-long-name-for-the-release-pipeline",
               "--scope", "push:registry.test/**")  # fmt: skip
    server_cli("create", "--name", "ci", "--scope", "pull:**")

    lines = server_cli("list").splitlines()

    header, rows = lines[0], lines[1:]
    created = header.index("CREATED")
    revoked = header.index("REVOKED")
    scopes = header.index("SCOPES")
    assert len(rows) >= 2
    for row in rows:
        assert row[created - 2 : created] == "  " and row[created].isdigit()
        assert row[revoked - 2 : revoked] == "  " and row[revoked] in "-0123456789"
        assert row[scopes - 2 : scopes] == "  "
