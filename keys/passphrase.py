"""Where passphrases come from: an environment variable per role, a file, or a TTY prompt.

A pipeline sets ``TRUSTKIT_TARGETS_PASSPHRASE`` (or mounts a secret file and passes
``--passphrase-file``); a person at a terminal is asked, twice when a key is created.
Passphrases are never logged, printed or kept beyond the command.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from trustkit.errors import PassphraseError

__all__ = [
    "DOCKER_ENV_FOR_ROLE",
    "ENV_FOR_ROLE",
    "PIN_FILE_VARIABLE",
    "PIN_VARIABLE",
    "PassphraseSource",
    "role_kind",
]

ENV_FOR_ROLE = {
    "root": "TRUSTKIT_ROOT_PASSPHRASE",
    "targets": "TRUSTKIT_TARGETS_PASSPHRASE",
    "snapshot": "TRUSTKIT_SNAPSHOT_PASSPHRASE",
    "delegation": "TRUSTKIT_DELEGATION_PASSPHRASE",
}
# Docker Content Trust's variables, read where trustkit's own are unset, so that CI
# scripts written for `docker trust` carry over: its "repository" key is the targets key,
# and it signs as a delegation with the same passphrase variable.
DOCKER_ENV_FOR_ROLE = {
    "root": "DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE",
    "targets": "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE",
    "snapshot": "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE",
    "delegation": "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE",
}

# A key in a PKCS#11 token is opened with the token's PIN. It has its own variable (or
# file) so that a rotation which signs with a key file and a token key at once can be
# scripted; with neither set, the PIN comes from the role's passphrase source as before.
PIN_VARIABLE = "TRUSTKIT_HSM_PIN"
PIN_FILE_VARIABLE = "TRUSTKIT_HSM_PIN_FILE"

Prompt = Callable[[str], str]


def role_kind(role: str) -> str:
    """``root``, ``targets`` and a publisher-held ``snapshot`` are themselves; every other
    offline role is a delegation."""
    return role if role in ("root", "targets", "snapshot") else "delegation"


class PassphraseSource:
    """Answers "what is the passphrase for this key?" from the sources the user set up."""

    def __init__(
        self,
        env: Mapping[str, str],
        passphrase_file: Path | None = None,
        prompt: Prompt | None = None,
    ) -> None:
        self._env = env
        self._file = passphrase_file
        self._prompt = prompt
        self._cache: dict[str, str] = {}

    @classmethod
    def from_environment(
        cls, env: Mapping[str, str], passphrase_file: Path | None
    ) -> PassphraseSource:
        """The CLI's source: prompt only when standard input is a terminal."""
        prompt = getpass.getpass if sys.stdin is not None and sys.stdin.isatty() else None
        return cls(env, passphrase_file, prompt)

    def origin(self, role: str) -> str:
        """Where the passphrase for ``role`` came from, for an error message."""
        kind = role_kind(role)
        for variable in (ENV_FOR_ROLE[kind], DOCKER_ENV_FOR_ROLE[kind]):
            if self._env.get(variable):
                return f"${variable}"
        if self._file is not None:
            return f"--passphrase-file {self._file}"
        return "the prompt"

    def pin(self, role: str, description: str) -> str:
        """The PIN of the token holding ``role``'s key: ``$TRUSTKIT_HSM_PIN``, the file
        ``$TRUSTKIT_HSM_PIN_FILE`` names, else the role's passphrase source."""
        if self._env.get(PIN_VARIABLE):
            return self._env[PIN_VARIABLE]
        pin_file = self._env.get(PIN_FILE_VARIABLE)
        if pin_file:
            try:
                return Path(pin_file).read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as error:
                raise PassphraseError(
                    f"cannot read the PIN file {pin_file} (${PIN_FILE_VARIABLE}): {error.strerror}"
                ) from None
        return self.get(role, description)

    def pin_origin(self, role: str) -> str:
        """Where the PIN for ``role``'s token key came from, for an error message."""
        if self._env.get(PIN_VARIABLE):
            return f"${PIN_VARIABLE}"
        if self._env.get(PIN_FILE_VARIABLE):
            return f"${PIN_FILE_VARIABLE} ({self._env[PIN_FILE_VARIABLE]})"
        return self.origin(role)

    def get(self, role: str, description: str, *, new: bool = False) -> str:
        kind = role_kind(role)
        # An environment variable or a file gives one passphrase per kind of role; at a
        # prompt each key has its own (a rotated-in key must not inherit the old one's).
        key = description.removeprefix("new ")
        cached = self._cache.get(kind) or self._cache.get(key)
        if cached is not None:
            return cached
        given = self._from_env(kind) or self._from_file()
        passphrase = given or self._ask(kind, description, new)
        if new and not passphrase:
            raise PassphraseError(f"the passphrase for the new {description} is empty")
        self._cache[kind if given else key] = passphrase
        return passphrase

    def named(self, variable: str, description: str, *, new: bool = False) -> str:
        """A passphrase that belongs to no role (a new one for ``key passwd``, or that
        of a key file being imported): from ``variable`` or the prompt, never a file."""
        passphrase = self._env.get(variable)
        if passphrase:
            return passphrase
        if self._prompt is None:
            raise PassphraseError(
                f"no {description}", hint=f"set {variable} (no terminal to prompt on)"
            )
        first = self._read(f"{description[0].upper()}{description[1:]}: ")
        if new:
            if not first:
                raise PassphraseError(f"the {description} is empty")
            if self._read(f"Repeat the {description}: ") != first:
                raise PassphraseError("the two passphrases differ; nothing was changed")
        return first

    def _from_env(self, kind: str) -> str | None:
        return self._env.get(ENV_FOR_ROLE[kind]) or self._env.get(DOCKER_ENV_FOR_ROLE[kind]) or None

    def _from_file(self) -> str | None:
        if self._file is None:
            return None
        try:
            text = self._file.read_text(encoding="utf-8")
        except OSError as error:
            raise PassphraseError(
                f"cannot read passphrase file {self._file}: {error.strerror}"
            ) from None
        return text.rstrip("\r\n")

    def _ask(self, kind: str, description: str, new: bool) -> str:
        if self._prompt is None:
            raise PassphraseError(
                f"no passphrase for the {description}",
                hint=f"set {ENV_FOR_ROLE[kind]} or pass --passphrase-file FILE "
                "(no terminal to prompt on)",
            )
        if not new:
            return self._read(f"Passphrase for the {description}: ")
        first = self._read(f"New passphrase for the {description}: ")
        if self._read(f"Repeat the passphrase for the {description}: ") != first:
            raise PassphraseError("the two passphrases differ; nothing was created")
        return first

    def _read(self, question: str) -> str:
        if self._prompt is None:
            raise PassphraseError("no terminal to prompt on for a passphrase")
        try:
            return self._prompt(question)
        except EOFError:  # Ctrl-D at the prompt: the person chose to give nothing
            print(file=sys.stderr)
            raise PassphraseError(
                "no passphrase given (end of input at the prompt); nothing was changed"
            ) from None
