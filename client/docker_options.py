"""The option grammar of the docker (and podman) commands the gate reads.

Every option of ``run``/``create``/``pull``/``build``/``buildx create`` and of docker
itself is known here as taking a value or not (:class:`Grammar`); :func:`read_option`
reads one as Docker's flag parser does, and refuses an option it does not know
(``--flag=value`` is always unambiguous and accepted): misreading which argument is
the image could let an unverified one through.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from trustkit.errors import UsageError

__all__ = [
    "BUILD",
    "BUILDER_CREATE",
    "FALSE_VALUES",
    "GLOBAL",
    "GRAMMARS",
    "HELP_ONLY",
    "PODMAN_RUN",
    "PULL",
    "RUN",
    "SUB_GRAMMARS",
    "Grammar",
    "Option",
    "read_option",
    "skip_options",
    "unknown_option",
]

# docker run / docker create (Docker 20 to 28), long options taking a value.
_RUN_VALUE_OPTIONS = frozenset(
    """
    add-host annotation attach blkio-weight blkio-weight-device cap-add cap-drop
    cgroup-parent cgroupns cidfile cpu-count cpu-percent cpu-period cpu-quota
    cpu-rt-period cpu-rt-runtime cpu-shares cpus cpuset-cpus cpuset-mems credentialspec
    detach-keys device device-cgroup-rule device-read-bps device-read-iops
    device-write-bps device-write-iops dns dns-opt dns-option dns-search domainname
    entrypoint env env-file expose gpus group-add health-cmd health-interval
    health-retries health-start-interval health-start-period health-timeout hostname
    io-maxbandwidth io-maxiops ip ip6 ipc isolation kernel-memory label label-file link
    link-local-ip log-driver log-opt mac-address memory memory-reservation memory-swap
    memory-swappiness mount name net net-alias network network-alias oom-score-adj pid
    pids-limit platform publish pull restart runtime security-opt shm-size stop-signal
    stop-timeout storage-opt sysctl tmpfs ulimit user userns uts volume volume-driver
    volumes-from workdir
    """.split()
)
_RUN_FLAG_OPTIONS = frozenset(
    """
    detach disable-content-trust help init interactive no-healthcheck oom-kill-disable
    privileged publish-all quiet read-only rm sig-proxy tty use-api-socket
    """.split()
)
_RUN_SHORT_VALUE = frozenset("acehlmpuvw")
_RUN_SHORT_FLAG = frozenset("diPqt")

# What podman run / create add to Docker's options.
_PODMAN_VALUE_OPTIONS = frozenset(
    """
    arch authfile cert-dir cgroup-conf cgroups chrootdirs conmon-pidfile creds
    decryption-key env-merge gidmap group-entry health-on-failure health-startup-cmd
    health-startup-interval health-startup-retries health-startup-success
    health-startup-timeout hostuser image-volume init-ctr init-path log-level os
    passwd-entry personality pidfile pod pod-id-file preserve-fd preserve-fds rdt-class
    requires retry retry-delay sdnotify seccomp-policy secret shm-size-systemd subgidname
    subuidname systemd timeout tz uidmap umask unsetenv variant
    """.split()
)
_PODMAN_FLAG_OPTIONS = frozenset(
    """
    env-host http-proxy no-hosts passwd read-only-tmpfs replace rmi rootfs tls-verify
    unsetenv-all
    """.split()
)

_PULL_VALUE_OPTIONS = frozenset({"platform"})
_PULL_FLAG_OPTIONS = frozenset({"all-tags", "disable-content-trust", "quiet", "help"})
_PULL_SHORT_FLAG = frozenset("aq")
# What Go's strconv.ParseBool reads as false, for --all-tags=VALUE.
FALSE_VALUES = frozenset({"0", "f", "F", "false", "FALSE", "False"})

# docker build / docker buildx build.
_BUILD_VALUE_OPTIONS = frozenset(
    """
    add-host allow annotation attest build-arg build-context builder cache-from cache-to
    call cgroup-parent cpu-period cpu-quota cpu-shares cpuset-cpus cpuset-mems file
    iidfile isolation label memory memory-swap metadata-file network no-cache-filter
    output platform progress secret security-opt shm-size ssh tag target ulimit
    """.split()
)
_BUILD_FLAG_OPTIONS = frozenset(
    """
    check compress debug disable-content-trust force-rm help load no-cache pull push
    quiet rm squash
    """.split()
)
_BUILD_SHORT_VALUE = frozenset("cfmot")
_BUILD_SHORT_FLAG = frozenset("qD")

# Options of the docker command itself, before the sub-command.
_GLOBAL_VALUE_OPTIONS = frozenset({"config", "context", "host", "log-level", "tlscacert"})
_GLOBAL_VALUE_OPTIONS |= frozenset({"tlscert", "tlskey"})
_GLOBAL_FLAG_OPTIONS = frozenset({"debug", "help", "tls", "tlsverify", "version"})
_GLOBAL_SHORT_VALUE = frozenset("cHl")
_GLOBAL_SHORT_FLAG = frozenset("Dhv")

_Options = tuple[frozenset[str], frozenset[str], frozenset[str], frozenset[str]]
# Options of docker buildx before its sub-command.
_BUILDX: _Options = (
    frozenset({"builder"}),
    frozenset({"debug", "help"}),
    frozenset(),
    frozenset("Dh"),
)
# Options of docker compose before its sub-command.
_COMPOSE: _Options = (
    frozenset(
        """
        ansi env-file file parallel profile progress project-directory project-name workdir
        """.split()
    ),
    frozenset("all-resources compatibility dry-run help version".split()),
    frozenset("fp"),
    frozenset("hv"),
)
# Options of docker stack, service and plugin before their sub-command.
_STACK: _Options = (
    frozenset({"kubeconfig", "orchestrator"}),
    frozenset({"help"}),
    frozenset(),
    frozenset("h"),
)


@dataclass(frozen=True)
class Grammar:
    value_options: frozenset[str]
    flag_options: frozenset[str]
    short_value: frozenset[str]
    short_flag: frozenset[str]


RUN = Grammar(_RUN_VALUE_OPTIONS, _RUN_FLAG_OPTIONS, _RUN_SHORT_VALUE, _RUN_SHORT_FLAG)
PODMAN_RUN = Grammar(
    _RUN_VALUE_OPTIONS | _PODMAN_VALUE_OPTIONS,
    _RUN_FLAG_OPTIONS | _PODMAN_FLAG_OPTIONS,
    _RUN_SHORT_VALUE,
    _RUN_SHORT_FLAG,
)
PULL = Grammar(_PULL_VALUE_OPTIONS, _PULL_FLAG_OPTIONS, frozenset(), _PULL_SHORT_FLAG)
BUILD = Grammar(_BUILD_VALUE_OPTIONS, _BUILD_FLAG_OPTIONS, _BUILD_SHORT_VALUE, _BUILD_SHORT_FLAG)
GLOBAL = Grammar(
    _GLOBAL_VALUE_OPTIONS, _GLOBAL_FLAG_OPTIONS, _GLOBAL_SHORT_VALUE, _GLOBAL_SHORT_FLAG
)
HELP_ONLY = Grammar(frozenset(), frozenset({"help"}), frozenset(), frozenset("h"))
SUB_GRAMMARS = {
    "buildx": Grammar(*_BUILDX),
    "builder": Grammar(*_BUILDX),
    "compose": Grammar(*_COMPOSE),
    "stack": Grammar(*_STACK),
    "service": Grammar(*_STACK),
    "plugin": Grammar(*_STACK),
}


@dataclass(frozen=True)
class Option:
    name: str  # without dashes; one letter for a short option (the last of a cluster)
    value: str | None
    end: int  # index of the first argument after this option (and its value)
    names: tuple[str, ...] = ()  # every option this argument sets: all letters of -itp


def read_option(args: Sequence[str], index: int, grammar: Grammar, what: str) -> Option:
    """Read the option at ``args[index]``, with its value when it takes one."""
    arg = args[index]
    if arg.startswith("--"):
        name, has_value, value = arg[2:].partition("=")
        if has_value:
            return Option(name, value, index + 1, (name,))
        if name in grammar.flag_options:
            return Option(name, None, index + 1, (name,))
        if name in grammar.value_options:
            if index + 1 >= len(args):
                raise UsageError(f"{arg} in '{what}' needs a value")
            return Option(name, args[index + 1], index + 2, (name,))
        raise unknown_option(arg, what)
    # A cluster of short options such as -it or -p8080:80 or -itp 80:80. As Docker's
    # flag parser reads it: "=" right after a letter starts that letter's value when
    # something follows it (-d=true, -e=A=1); a value option takes the rest as is (-e=).
    letters = arg[1:]
    for position, letter in enumerate(letters):
        names = tuple(letters[: position + 1])
        rest = letters[position + 1 :]
        if letter in grammar.short_flag:
            if rest.startswith("=") and len(rest) > 1:
                return Option(letter, rest[1:], index + 1, names)
            continue
        if letter in grammar.short_value:
            if rest.startswith("=") and len(rest) > 1:
                rest = rest[1:]
            if rest:
                return Option(letter, rest, index + 1, names)
            if index + 1 >= len(args):
                raise UsageError(f"-{letter} in '{what}' needs a value")
            return Option(letter, args[index + 1], index + 2, names)
        raise unknown_option(f"-{letter}", what)
    return Option(letters[-1], None, index + 1, tuple(letters))


def unknown_option(option: str, what: str) -> UsageError:
    return UsageError(
        f"trustkit does not know the option {option} of '{what}', so it cannot tell which "
        "argument is the image",
        hint=f"write it as {option}=VALUE if it takes a value, or leave it out",
    )


BUILDER_CREATE = Grammar(
    frozenset(
        """
        buildkitd-config buildkitd-flags config driver driver-opt name node platform timeout
        """.split()
    ),
    frozenset({"append", "bootstrap", "leave", "use", "help"}),
    frozenset(),
    frozenset("h"),
)
GRAMMARS = {
    "pull": PULL,
    "run": RUN,
    "create": RUN,
    "build": BUILD,
    "builder-create": BUILDER_CREATE,
}


def skip_options(args: Sequence[str], index: int, grammar: Grammar, what: str) -> int:
    """Index of the first argument at or after ``index`` that is not an option."""
    while index < len(args) and args[index].startswith("-") and args[index] != "-":
        index = read_option(args, index, grammar, what).end
    return index
