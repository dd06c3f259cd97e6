"""One host, several trust servers: the host policy's ``[[route]]`` tables send each
repository to the trust server that serves it, for ``verify``, ``resolve`` and the agent
alike. Each server's trust state is its own, a server typed on the command line cannot
override the policy, and a route with a doubtful URL is refused."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar
from urllib.parse import quote

import httpx
import pytest

from tests.support.agent_process import AgentProcess
from tests.support.harness import (
    DIGEST_A,
    DIGEST_B,
    ServerProcess,
    Trustkit,
    publisher_cli,
)
from tests.support.local_http import LocalHTTPServer
from trustkit.errors import UsageError

NOWHERE = "http://127.0.0.1:9"  # the host's own server: nothing listens there


@dataclass
class TwoServers:
    a: ServerProcess
    b: ServerProcess
    publish_a: Trustkit
    publish_b: Trustkit
    policy: Path
    host: Trustkit
    slug: str

    def gun(self, registry: str, name: str = "app") -> str:
        return f"{registry}/{name}-{self.slug}"

    def route(self, a_patterns: list[str], b_patterns: list[str], extra: str = "") -> None:
        """Route a_patterns to server A and b_patterns to server B."""
        self.policy.write_text(
            f"{extra}"
            f"[[route]]\nrepositories = {a_patterns!r}\nserver = {self.a.url!r}\n\n"
            f"[[route]]\nrepositories = {b_patterns!r}\nserver = {self.b.url!r}\n"
        )


def _init_and_sign(publisher: Trustkit, gun: str, tag: str, digest: str) -> None:
    initialised = publisher("init", gun)
    assert initialised.code == 0, initialised.err
    signed = publisher("sign", f"{gun}:{tag}", "--digest", digest, "--size", "10")
    assert signed.code == 0, signed.err


@pytest.fixture
def two(
    tmp_path: Path, start_server: Callable[..., ServerProcess], request: pytest.FixtureRequest
) -> TwoServers:
    a, b = start_server(), start_server()
    policy = tmp_path / "policy.toml"
    host = Trustkit(tmp_path / "host" / ".trustkit", NOWHERE, {"TRUSTKIT_POLICY": str(policy)})
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:60].strip("-")
    servers = TwoServers(
        a,
        b,
        publisher_cli(tmp_path / "pub-a" / ".trustkit", a.url),
        publisher_cli(tmp_path / "pub-b" / ".trustkit", b.url),
        policy,
        host,
        slug,
    )
    servers.route(["registry.a.test/**"], ["registry.b.test/**"])
    return servers


def _store(home: Path, server: ServerProcess, gun: str) -> Path:
    return home / "servers" / quote(server.url, safe="") / "tuf" / quote(gun, safe="")


def test_verify_and_resolve_each_repository_against_the_server_its_route_names(
    two: TwoServers,
):
    gun_a, gun_b = two.gun("registry.a.test"), two.gun("registry.b.test")
    _init_and_sign(two.publish_a, gun_a, "1.0", DIGEST_A)
    _init_and_sign(two.publish_b, gun_b, "1.0", DIGEST_B)

    verified_a = two.host("verify", f"{gun_a}:1.0", "--offline")
    verified_b = two.host("verify", f"{gun_b}:1.0", "--offline")
    resolved_a = two.host("resolve", f"{gun_a}:1.0")
    resolved_b = two.host("resolve", f"{gun_b}:1.0")

    assert (verified_a.code, verified_b.code) == (0, 0), verified_a.err + verified_b.err
    assert verified_a.out.strip() == DIGEST_A
    assert verified_b.out.strip() == DIGEST_B
    assert resolved_a.out.strip() == f"{gun_a}@{DIGEST_A}"
    assert resolved_b.out.strip() == f"{gun_b}@{DIGEST_B}"
    # Each server's trust state is kept apart, and none in the command's own store.
    assert (_store(two.host.home, two.a, gun_a) / "root.json").exists()
    assert (_store(two.host.home, two.b, gun_b) / "root.json").exists()
    assert not (two.host.home / "tuf" / quote(gun_a, safe="")).exists()


def test_a_repository_signed_on_one_server_but_routed_to_the_other_is_refused(
    two: TwoServers,
):
    gun = two.gun("registry.a.test", "elsewhere")
    _init_and_sign(two.publish_b, gun, "1.0", DIGEST_B)  # signed on B, routed to A

    verified = two.host("verify", f"{gun}:1.0", "--offline")
    resolved = two.host("resolve", f"{gun}:1.0")

    for result in (verified, resolved):
        assert result.code == 1, result.err
        assert two.a.url in result.err  # it asked the server the policy names
        assert DIGEST_B not in result.out
        assert "Traceback" not in result.err


def test_one_name_on_two_servers_never_shares_trust_state(two: TwoServers):
    """A staging and a production server may both serve registry.a.test/app, signed with
    different roots: what the host learned from one is never used for the other."""
    gun = two.gun("registry.a.test", "shared")
    _init_and_sign(two.publish_a, gun, "1.0", DIGEST_A)
    _init_and_sign(two.publish_b, gun, "1.0", DIGEST_B)

    first = two.host("verify", f"{gun}:1.0", "--offline")
    two.route(["registry.c.test/**"], ["registry.a.test/**"])  # the admin moves it to B
    moved = two.host("verify", f"{gun}:1.0", "--offline")
    two.route(["registry.a.test/**"], ["registry.b.test/**"])  # and back to A
    back = two.host("verify", f"{gun}:1.0", "--offline")

    assert first.out.strip() == DIGEST_A, first.err
    assert moved.out.strip() == DIGEST_B, moved.err  # B's root, not refused by A's
    assert back.out.strip() == DIGEST_A, back.err
    root_a = (_store(two.host.home, two.a, gun) / "root.json").read_bytes()
    root_b = (_store(two.host.home, two.b, gun) / "root.json").read_bytes()
    assert root_a != root_b


def test_a_route_with_declared_root_keys_refuses_the_other_servers_root(two: TwoServers):
    """The trust server is where bytes come from; the root is what is trusted. A rule
    that declares the first root refuses the root of a server it was not made for."""
    gun = two.gun("registry.a.test", "declared")
    _init_and_sign(two.publish_a, gun, "1.0", DIGEST_A)
    _init_and_sign(two.publish_b, gun, "1.0", DIGEST_B)
    root_a = two.host("verify", f"{gun}:1.0", "--offline", "--json")
    assert root_a.code == 0, root_a.err
    stored = (_store(two.host.home, two.a, gun) / "root.json").read_text()
    import json

    keyids = json.loads(stored)["signed"]["roles"]["root"]["keyids"]
    rule = f'[[rule]]\nrepositories = ["{gun}"]\nroot_keys = {keyids!r}\n\n'
    two.route(["registry.c.test/**"], ["registry.a.test/**"], extra=rule)

    moved = two.host("verify", f"{gun}:1.0", "--offline")

    assert moved.code == 1
    assert "root keys" in moved.err
    assert DIGEST_B not in moved.out


@pytest.fixture
def agent(two: TwoServers, tmp_path: Path) -> Iterator[AgentProcess]:
    process = AgentProcess(
        tmp_path / "agent" / ".trustkit", NOWHERE, env={"TRUSTKIT_POLICY": str(two.policy)}
    ).start()
    yield process
    process.stop()


def test_the_agent_routes_each_repository_to_its_server(two: TwoServers, agent: AgentProcess):
    gun_a, gun_b = two.gun("registry.a.test"), two.gun("registry.b.test")
    stray = two.gun("registry.b.test", "stray")
    _init_and_sign(two.publish_a, gun_a, "1.0", DIGEST_A)
    _init_and_sign(two.publish_b, gun_b, "1.0", DIGEST_B)
    _init_and_sign(two.publish_a, stray, "1.0", DIGEST_A)  # signed on A, routed to B

    verified_a = two.host("verify", f"{gun_a}:1.0", "--offline", env=agent.cli_env)
    resolved_b = two.host("resolve", f"{gun_b}:1.0", env=agent.cli_env)
    refused = two.host("resolve", f"{stray}:1.0", env=agent.cli_env)

    assert verified_a.out.strip() == DIGEST_A, verified_a.err
    assert resolved_b.out.strip() == f"{gun_b}@{DIGEST_B}", resolved_b.err
    assert refused.code == 1
    assert two.b.url in refused.err
    # The agent decided, in its own stores (one per server); the host's stayed empty.
    assert (_store(agent.home, two.a, gun_a) / "root.json").exists()
    assert (_store(agent.home, two.b, gun_b) / "root.json").exists()
    assert not (two.host.home / "servers").exists()


def test_the_agent_answers_a_routed_repository_whatever_default_server_the_command_has(
    two: TwoServers, agent: AgentProcess
):
    """The command's server (TRUSTKIT_SERVER) is only the default for repositories the
    policy routes nowhere: for a routed one, the agent's answer is the policy's."""
    gun = two.gun("registry.a.test")
    _init_and_sign(two.publish_a, gun, "1.0", DIGEST_A)

    resolved = two.host(
        "resolve", f"{gun}:1.0", env={**agent.cli_env, "TRUSTKIT_SERVER": two.b.url}
    )

    assert resolved.out.strip() == f"{gun}@{DIGEST_A}", resolved.err
    assert not (two.host.home / "servers").exists()  # the agent decided


@pytest.mark.parametrize("through_agent", [False, True], ids=["in-process", "agent"])
def test_a_server_on_the_command_line_that_is_not_the_policys_is_refused(
    two: TwoServers, agent: AgentProcess, through_agent: bool
):
    gun = two.gun("registry.a.test")
    _init_and_sign(two.publish_a, gun, "1.0", DIGEST_A)
    env = agent.cli_env if through_agent else {"TRUSTKIT_AGENT": "off"}

    other = two.host("verify", f"{gun}:1.0", "--offline", "--server", two.b.url, env=env)
    same = two.host("verify", f"{gun}:1.0", "--offline", "--server", two.a.url + "/", env=env)

    assert other.code == 2, other.err
    assert f"--server {two.b.url} is not where this host reads {gun} from" in other.err
    assert "route 1 of the policy" in other.err and two.a.url in other.err
    assert "leave --server out" in other.err
    assert other.out == ""
    assert same.code == 0, same.err  # the policy's own server, spelled another way
    assert same.out.strip() == DIGEST_A


def test_a_mirror_on_the_command_line_for_a_routed_repository_is_refused(two: TwoServers):
    gun = two.gun("registry.a.test")
    _init_and_sign(two.publish_a, gun, "1.0", DIGEST_A)

    result = two.host("verify", f"{gun}:1.0", "--offline", "--mirror", two.b.url)

    assert result.code == 2
    assert "--mirror" in result.err and "names no mirror for it" in result.err


def test_a_repository_no_route_names_uses_the_commands_server(two: TwoServers):
    gun = two.gun("registry.other.test")
    _init_and_sign(two.publish_b, gun, "1.0", DIGEST_B)

    nowhere = two.host("verify", f"{gun}:1.0", "--offline")
    given = two.host("verify", f"{gun}:1.0", "--offline", "--server", two.b.url)

    assert nowhere.code == 3  # the host's own server: unreachable
    assert given.out.strip() == DIGEST_B, given.err
    assert (two.host.home / "tuf" / quote(gun, safe="") / "root.json").exists()


def test_a_mirror_named_by_the_route_is_read_and_shares_the_servers_trust_store(
    two: TwoServers, tmp_path: Path
):
    from tests.support.harness import TamperingProxy

    gun = two.gun("registry.a.test")
    _init_and_sign(two.publish_a, gun, "1.0", DIGEST_A)
    mirror = TamperingProxy(two.a.url).start()
    try:
        two.policy.write_text(
            f'[[route]]\nrepositories = ["registry.a.test/**"]\nserver = "{two.a.url}"\n'
            f'mirror = "{mirror.url}"\n'
        )
        result = two.host("verify", f"{gun}:1.0", "--offline")
    finally:
        mirror.stop()

    assert result.out.strip() == DIGEST_A, result.err
    assert any(path.endswith("timestamp.json") for path in mirror.requests)
    assert (_store(two.host.home, two.a, gun) / "root.json").exists()


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        ('server = "http://trust.example.com"', "plain http to a host other than this one"),
        ('server = "https://admin:hunter2@trust.example.com"', "holds a user name or password"),
        ('server = "https://trust.example.com/\\u001b[31m"', "control or non-ASCII"),
        ('server = "https://trust.example.com\\n.evil"', "control or non-ASCII"),
        ('server = "https://tr\\u00fcst.example.com"', "control or non-ASCII"),
        ('server = "ftp://trust.example.com"', "is not an https:// URL"),
        ('server = "trust.example.com"', "is not an https:// URL"),
        ('server = "https://trust.example.com/?x=1"', "query or fragment"),
        ('server = "https://trust.example.com\\\\@evil.com"', "backslash"),
        ('server = "https://trust.example.com/a/../b"', "path trustkit does not accept"),
        ('server = "https://trust.example.com:99999"', "invalid port"),
        ('server = "https://trust_example.com"', "no valid host name"),
        ('server = ""', "must be a URL string"),
        ("server = 443", "must be a URL string"),
        ('server = "https://a.example"\nmirror = "http://cdn.example"', "mirror 'http://"),
        ('server = "https://a.example"\nca_file = "ca.pem"', "not an absolute path"),
        ('server = "https://a.example"\nca_file = "/nonexistent/ca.pem"', "cannot read ca_file"),
        ('mirror = "https://a.example"', "names no 'server'"),
        ('server = "https://a.example"\ntoken = "x"', "unknown key(s) token"),
    ],
    ids=lambda value: value if len(value) < 30 else value[:30],
)
def test_a_route_with_a_doubtful_server_is_refused_with_the_route_named(
    two: TwoServers, route: str, expected: str
):
    two.policy.write_text(f'[[route]]\nrepositories = ["registry.a.test/**"]\n{route}\n')

    result = two.host("resolve", "registry.a.test/app:1.0")

    assert result.code == 2
    assert f"the policy {two.policy} is not valid: route 1" in result.err
    assert expected in result.err
    assert "hunter2" not in result.err  # a password in a URL is never echoed
    assert "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) <= 2  # the error and its hint


def test_a_server_written_in_a_rule_is_pointed_to_routes(two: TwoServers):
    two.policy.write_text(
        '[[rule]]\nrepositories = ["registry.a.test/**"]\nserver = "https://a.example"\n'
    )

    result = two.host("resolve", "registry.a.test/app:1.0")

    assert result.code == 2
    assert "rule 1 names a trust server (server); servers are named in [[route]]" in result.err


def test_the_agent_refuses_everything_while_its_policy_has_a_bad_route(
    two: TwoServers, agent: AgentProcess
):
    gun = two.gun("registry.a.test")
    _init_and_sign(two.publish_a, gun, "1.0", DIGEST_A)
    assert two.host("resolve", f"{gun}:1.0", env=agent.cli_env).code == 0

    two.policy.write_text(
        '[[route]]\nrepositories = ["registry.a.test/**"]\nserver = "http://evil.example"\n'
    )
    refused = two.host("resolve", f"{gun}:1.0", env=agent.cli_env)

    assert refused.code == 2
    assert "refuses everything" in refused.err and "plain http" in refused.err


# --------------------------------------------------------------------------- the policy


def _policy(text: str) -> object:
    import tomllib

    from client.policy import HostPolicy

    return HostPolicy.from_document(tomllib.loads(text), "test.toml")


def test_routes_match_names_in_their_one_spelling_first_route_wins():
    from client.policy import HostPolicy

    policy = _policy(
        '[[route]]\nrepositories = ["docker.io/library/*"]\nserver = "HTTPS://Hub-Trust.Example:443/"\n'
        '[[route]]\nrepositories = ["docker.io/**"]\nserver = "https://other.example"\n'
    )
    assert isinstance(policy, HostPolicy)

    for spelling in ("nginx", "library/nginx", "docker.io/library/nginx", "index.docker.io/nginx"):
        server = policy.server_for(spelling)
        assert server is not None and server.url == "https://hub-trust.example", spelling
    other = policy.server_for("someone/app")
    assert other is not None and other.url == "https://other.example"
    assert policy.server_for("quay.io/someone/app") is None


def test_two_spellings_of_one_server_share_one_store_and_two_servers_never_do():
    from client.trust_servers import TrustServer, trust_url

    same = {trust_url(url, "server") for url in ("https://A.example/", "https://a.example:443")}
    stores = {
        TrustServer(trust_url(url, "server")).store
        for url in ("https://a.example", "https://a.example:8443", "https://a.example/tuf")
    }

    assert same == {"https://a.example"}
    assert len(stores) == 3
    assert all("/" not in store and store not in (".", "..") for store in stores)


def test_a_server_given_only_in_a_bad_spelling_is_not_the_policys():
    from client.trust_servers import same_server

    assert same_server("https://a.example/", "https://a.example")
    assert not same_server("https://a.example.evil.com", "https://a.example")
    assert not same_server("https://user@a.example", "https://a.example")
    with pytest.raises(UsageError):
        from client.trust_servers import trust_url

        trust_url("https://a.example/%2e%2e/", "server")


def test_trust_pin_and_forget_use_the_store_of_the_routes_server(two: TwoServers):
    """A root pinned for a routed repository is the one its verification starts from:
    a server serving another root for that name is then refused."""
    gun = two.gun("registry.a.test", "pinned")
    _init_and_sign(two.publish_a, gun, "1.0", DIGEST_A)
    _init_and_sign(two.publish_b, gun, "1.0", DIGEST_B)
    root_of_a = two.policy.parent / "root-a.json"
    fetched = two.publish_a("verify", f"{gun}:1.0", "--offline")
    assert fetched.code == 0, fetched.err
    root_of_a.write_bytes(
        (two.publish_a.home / "tuf" / quote(gun, safe="") / "root.json").read_bytes()
    )
    two.route(["registry.c.test/**"], ["registry.a.test/**"])  # served by B

    pinned = two.host("trust", "pin", gun, str(root_of_a))
    refused = two.host("verify", f"{gun}:1.0", "--offline")
    forgotten = two.host("trust", "forget", gun)
    trusted_anew = two.host("verify", f"{gun}:1.0", "--offline")

    assert pinned.code == 0, pinned.err
    assert (_store(two.host.home, two.b, gun) / "root.json").exists()
    assert refused.code == 1  # B's root does not chain from the pinned root of A
    assert DIGEST_B not in refused.out
    assert forgotten.code == 0 and "forgot the trusted root" in forgotten.out
    assert trusted_anew.out.strip() == DIGEST_B, trusted_anew.err


def test_trust_pin_with_another_server_than_the_routes_is_refused(two: TwoServers):
    root = two.policy.parent / "root.json"
    root.write_text("{}")

    result = two.host("trust", "pin", "registry.a.test/app", str(root), "--server", two.b.url)

    assert result.code == 2
    assert "is not where this host reads registry.a.test/app from" in result.err


class _Recording(BaseHTTPRequestHandler):
    """Forwards GETs to ``upstream`` and records the Authorization header of each."""

    upstream: ClassVar[str] = ""
    seen: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        type(self).seen.append(self.headers.get("Authorization"))
        answer = httpx.get(self.upstream + self.path, timeout=30)
        self.send_response(answer.status_code)
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    def log_message(self, format: str, *args: object) -> None:
        return


def test_the_commands_token_goes_to_a_routed_server_only_when_it_is_the_commands_own(
    two: TwoServers,
):
    gun = two.gun("registry.a.test")
    _init_and_sign(two.publish_a, gun, "1.0", DIGEST_A)
    _Recording.upstream, _Recording.seen = two.a.url, []
    with LocalHTTPServer(_Recording) as front:
        two.policy.write_text(
            f'[[route]]\nrepositories = ["registry.a.test/**"]\nserver = "{front}"\n'
        )
        token = {"TRUSTKIT_TOKEN": "tkt_secret_for_the_default_server"}
        elsewhere = two.host("verify", f"{gun}:1.0", "--offline", env=token)
        seen_elsewhere = list(_Recording.seen)
        _Recording.seen = []
        # The same server, spelled another way, as the command's own: its token goes.
        own = {**token, "TRUSTKIT_SERVER": front + "/", "TRUSTKIT_HOME": str(two.host.home) + "2"}
        same = two.host("verify", f"{gun}:1.0", "--offline", env=own)
        seen_same = list(_Recording.seen)

    assert elsewhere.out.strip() == DIGEST_A, elsewhere.err
    assert seen_elsewhere and set(seen_elsewhere) == {None}
    assert same.out.strip() == DIGEST_A, same.err
    assert set(seen_same) == {"Bearer tkt_secret_for_the_default_server"}


def test_a_bundle_is_verified_offline_whatever_server_a_route_names(two: TwoServers):
    gun = two.gun("registry.a.test")
    _init_and_sign(two.publish_a, gun, "1.0", DIGEST_A)
    bundle = two.policy.parent / "bundle.tar"
    exported = two.publish_a("export", gun, "-o", str(bundle))
    assert exported.code == 0, exported.err
    two.policy.write_text(
        f'[[route]]\nrepositories = ["registry.a.test/**"]\nserver = "{NOWHERE}"\n'
    )

    verified = two.host("verify", f"{gun}:1.0", "--bundle", str(bundle), "--offline")
    online = two.host("verify", f"{gun}:1.0", "--offline")

    assert verified.out.strip() == DIGEST_A, verified.err
    assert online.code == 3  # without the bundle, the route's (unreachable) server


def test_the_agent_never_answers_for_one_server_with_what_it_holds_from_another(
    two: TwoServers, tmp_path: Path
):
    """The agent keeps verified repositories by (server, name): when the admin routes a
    name to another server, the next decision is that server's, however fresh the
    state held from the first."""
    gun = two.gun("registry.a.test", "moved")
    _init_and_sign(two.publish_a, gun, "1.0", DIGEST_A)
    _init_and_sign(two.publish_b, gun, "1.0", DIGEST_B)
    lazy = AgentProcess(
        tmp_path / "lazy" / ".trustkit",
        NOWHERE,
        ("--freshness", "600"),
        env={"TRUSTKIT_POLICY": str(two.policy)},
    ).start()
    try:
        first = two.host("resolve", f"{gun}:1.0", env=lazy.cli_env)
        two.route(["registry.c.test/**"], ["registry.a.test/**"])
        moved = two.host("resolve", f"{gun}:1.0", env=lazy.cli_env)
    finally:
        lazy.stop()

    assert first.out.strip() == f"{gun}@{DIGEST_A}", first.err
    assert moved.out.strip() == f"{gun}@{DIGEST_B}", moved.err
    assert not (two.host.home / "servers").exists()  # both decided by the agent


def test_a_route_naming_the_hosts_own_server_keeps_the_roots_it_already_trusts(
    two: TwoServers, tmp_path: Path
):
    """Adding a route to the server the host already reads (for a mirror or a CA file,
    say) is no first use: a root the server changed since is still refused."""
    gun = two.gun("registry.c.test")
    _init_and_sign(two.publish_b, gun, "1.0", DIGEST_A)
    own_b = {"TRUSTKIT_SERVER": two.b.url}
    before = two.host("verify", f"{gun}:1.0", "--offline", env=own_b)
    assert before.out.strip() == DIGEST_A, before.err
    # The repository is made again on B with other keys, signing another digest.
    assert two.publish_b("delete", gun, "--yes").code == 0
    _init_and_sign(publisher_cli(tmp_path / "new-b" / ".trustkit", two.b.url), gun, "1.0", DIGEST_B)

    two.route(["registry.a.test/**"], ["registry.b.test/**", "registry.c.test/**"])
    routed = two.host("verify", f"{gun}:1.0", "--offline", env=own_b)

    assert routed.code == 1, routed.out + routed.err
    assert DIGEST_B not in routed.out
    assert "first use" not in routed.err
    assert not _store(two.host.home, two.b, gun).exists()
