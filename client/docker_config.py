"""Registry credentials the way Docker keeps them, read from Docker's ``config.json``.

``docker login`` writes either ``auths[host].auth`` (base64 ``user:password``), an
``identitytoken`` (an OAuth refresh token), or hands the secret to a credential helper
(``credsStore`` / ``credHelpers``: the ``docker-credential-NAME get`` protocol). This
module finds the credentials for one registry host; it never prints or logs them.
"""

from __future__ import annotations

import base64
import binascii
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trustkit.errors import UsageError
from trustkit.names import DOCKER_HUB_ALIASES, canonical_registry

__all__ = ["Credentials", "DockerConfig", "registry_aliases"]

DOCKER_HUB_SERVER_URL = "https://index.docker.io/v1/"
HELPER_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class Credentials:
    """A user name and secret, or an identity (refresh) token; ``repr`` hides secrets."""

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)


def registry_aliases(host: str) -> tuple[str, ...]:
    """The names a registry may be filed under in ``auths``: Docker Hub has several."""
    return DOCKER_HUB_ALIASES if host in DOCKER_HUB_ALIASES else (host,)


def _host_of(key: str) -> str:
    """The registry an ``auths`` key names, spelled as trustkit spells registries:
    ``https://index.docker.io/v1/`` → ``docker.io``, ``Reg:443`` → ``reg``."""
    without_scheme = key.split("://", 1)[-1]
    host = without_scheme.split("/", 1)[0]
    try:
        return canonical_registry(host)
    except UsageError:
        return host.lower()  # a key Docker wrote that trustkit cannot read names no GUN


@dataclass(frozen=True)
class DockerConfig:
    """Docker's client configuration file (``$DOCKER_CONFIG/config.json``)."""

    path: Path
    document: dict[str, Any] = field(repr=False)  # holds secrets

    @classmethod
    def load(cls, path: Path) -> DockerConfig:
        try:
            text = path.read_text()
        except FileNotFoundError:
            return cls(path, {})
        except OSError as error:
            raise UsageError(f"cannot read Docker's config {path}: {error.strerror}") from None
        except UnicodeDecodeError:
            raise UsageError(f"Docker's config {path} is not UTF-8 text") from None
        try:
            document = json.loads(text) if text.strip() else {}
        except ValueError as error:
            raise UsageError(
                f"Docker's config {path} is not valid JSON: {error}",
                hint="fix the file, or point DOCKER_CONFIG at another directory",
            ) from None
        if not isinstance(document, dict):
            raise UsageError(f"Docker's config {path} is not a JSON object")
        return cls(path, document)

    def credentials(self, host: str) -> Credentials | None:
        """Credentials for ``host``: a credential helper if one is named, else ``auths``."""
        aliases = registry_aliases(_host_of(host))
        helpers = self.document.get("credHelpers")
        if isinstance(helpers, dict):
            for key, helper in helpers.items():
                if _host_of(str(key)) in aliases and isinstance(helper, str):
                    return self._from_helper(helper, host)
        # As Docker does: a credential store, when configured, comes before "auths".
        store = self.document.get("credsStore")
        if isinstance(store, str) and store:
            stored = self._from_helper(store, host)
            if stored is not None:
                return stored
        return self._from_auths(aliases)

    def _from_auths(self, aliases: tuple[str, ...]) -> Credentials | None:
        auths = self.document.get("auths")
        if not isinstance(auths, dict):
            return None
        for key, entry in auths.items():
            if _host_of(str(key)) not in aliases or not isinstance(entry, dict):
                continue
            if entry.get("identitytoken"):
                return Credentials(identity_token=str(entry["identitytoken"]))
            if entry.get("auth"):
                return self._decode_auth(str(key), str(entry["auth"]))
            if entry.get("username"):
                return Credentials(str(entry["username"]), str(entry.get("password", "")))
        return None

    def _decode_auth(self, key: str, encoded: str) -> Credentials:
        try:
            decoded = base64.b64decode(encoded, validate=True).decode()
            username, sep, password = decoded.partition(":")
        except (binascii.Error, UnicodeDecodeError):
            sep = ""
        if not sep:
            raise UsageError(
                f"the credentials for {key} in {self.path} are not base64 'user:password'",
                hint=f"run: docker login {key}",
            )
        return Credentials(username, password)

    def _from_helper(self, helper: str, host: str) -> Credentials | None:
        program = f"docker-credential-{helper}"
        server = DOCKER_HUB_SERVER_URL if host in DOCKER_HUB_ALIASES else host
        try:
            completed = subprocess.run(
                [program, "get"],
                input=server,
                capture_output=True,
                text=True,
                timeout=HELPER_TIMEOUT_SECONDS,
                check=False,
            )
        except FileNotFoundError:
            raise UsageError(
                f"{self.path} names the credential helper '{helper}', but {program} is not on PATH",
                hint=f"install {program}, or remove it from {self.path}",
            ) from None
        except subprocess.TimeoutExpired:
            raise UsageError(f"the credential helper {program} did not answer in time") from None
        if completed.returncode != 0:
            # The protocol's answer for "no credentials for this server".
            if "credentials not found" in completed.stdout + completed.stderr:
                return None
            raise UsageError(f"the credential helper {program} failed for {host}")
        try:
            answer = json.loads(completed.stdout)
            username, secret = str(answer["Username"]), str(answer["Secret"])
        except (ValueError, KeyError, TypeError):
            raise UsageError(f"the credential helper {program} gave an unreadable answer") from None
        if username == "<token>":
            return Credentials(identity_token=secret)
        return Credentials(username, secret)
