"""``trustkit agent``: the host's resident verifier; and how the commands of a host ask
it (``ask_agent``), at no cost of python-tuf, cryptography or httpx."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from trustkit.cli.context import Context
from trustkit.cli.options import Commands
from trustkit.errors import EXIT_OK, TrustkitError, UsageError

if TYPE_CHECKING:
    from trustkit.agent_wire import AgentDecision, AgentRefusal


def ask_agent(ctx: Context, reference: str, *, require_signed: bool) -> AgentDecision | None:
    """The host agent's decision on ``reference``, when one runs and serves this
    command's server and policy; None to decide in-process. A refusal is raised as the
    agent made it. Costs no import of python-tuf, cryptography or httpx."""
    from trustkit.agent_wire import AgentRefusal, AgentRequest, ask, socket_path

    if ctx.args.no_agent or getattr(ctx.args, "bundle", None) or ctx.args.mirror:
        return None
    path = socket_path(ctx.env)
    if path is None:
        return None
    request = AgentRequest(
        reference, ctx.server_url, ctx.policy_path, require_signed, ctx.args.server is not None
    )
    answer = ask(path, request, timeout=ctx.agent_timeout)
    if answer is None or (isinstance(answer, AgentRefusal) and answer.code == "agent_mismatch"):
        return None
    if isinstance(answer, AgentRefusal):
        raise AgentRefused(answer)
    return answer


class AgentRefused(TrustkitError):
    """A refusal the agent made: its words, code and exit code, as made here."""

    def __init__(self, refusal: AgentRefusal) -> None:
        super().__init__(refusal.message, hint=refusal.hint)
        self.code = refusal.code
        self.exit_code = refusal.exit_code


def cmd_agent(ctx: Context) -> int:
    from client.agent import Agent, AgentLimits, AgentSockets, FreshRepositories, run_agent
    from client.anchors import FirstUseCheck
    from client.servers import ServerVerifiers
    from trustkit.agent_wire import DEFAULT_SOCKET, SOCKET_VARIABLE

    args = ctx.args
    if args.freshness < 0:
        raise UsageError(f"--freshness {args.freshness} must be 0 or more seconds")
    socket = Path(args.socket or ctx.env.get(SOCKET_VARIABLE) or DEFAULT_SOCKET)
    plugin = None if args.plugin_socket == "off" else Path(args.plugin_socket)
    docker_host = ctx.env.get("DOCKER_HOST", "")
    docker = Path(
        args.docker_socket
        or (docker_host.removeprefix("unix://") if docker_host.startswith("unix://") else "")
        or "/var/run/docker.sock"
    )
    agents: list[Agent] = []  # the verifier's first-use check follows the agent's policy
    first_use = FirstUseCheck(lambda: agents[0].policy)
    with ctx.session(first_use) as (_, verifier):
        verifiers = ServerVerifiers(
            verifier, ctx.settings, deadline=ctx.deadline, first_use=first_use
        )
        agent = Agent(
            FreshRepositories(verifiers, args.freshness),
            ctx.host_policy,
            ctx.policy_path,
            ctx.server_url,
            verifiers.has_anchor,
        )
        agents.append(agent)
        policy = agent.loaded
        sockets = AgentSockets(socket, plugin, docker, args.group)

        def ready() -> None:
            where = f"{socket}" + (f" and {plugin} (Docker authorization plugin)" if plugin else "")
            routes = f" ({len(policy.routes)} trust server route(s))" if policy.routes else ""
            ctx.out.note(f"trustkit agent: answering on {where}; policy: {policy.source}{routes}")

        try:
            run_agent(agent, sockets, AgentLimits(), ready)
        finally:
            verifiers.close()
    return EXIT_OK


def add_parsers(commands: Commands) -> None:
    """The sub-commands of this group."""
    add = commands.add
    policy = commands.policy
    sub = add(
        "agent",
        cmd_agent,
        "run the host's resident verifier: trustkit commands and Docker's authorization "
        "plugin ask it (see deploy/trustkit-agent.service)",
        [policy],
        signs=False,
    )
    sub.add_argument(
        "--socket",
        metavar="PATH",
        help="where trustkit commands ask (env TRUSTKIT_AGENT, default /run/trustkit/agent.sock)",
    )
    sub.add_argument(
        "--plugin-socket",
        metavar="PATH",
        default="/run/docker/plugins/trustkit.sock",
        help="where Docker asks, as authorization plugin 'trustkit' (default %(default)s; "
        "'off': no plugin)",
    )
    sub.add_argument(
        "--docker-socket",
        metavar="PATH",
        help="the Docker daemon's socket, to see which images it holds (default: DOCKER_HOST's "
        "unix socket, else /var/run/docker.sock)",
    )
    sub.add_argument("--group", metavar="NAME", help="group that may use the sockets (0660)")
    sub.add_argument(
        "--freshness",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="reuse a verification this long (default %(default)s; 0: verify every decision); "
        "expired metadata is never used",
    )
