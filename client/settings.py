"""Client settings, built at the edge (the CLI) and passed inward."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from trustkit import DEFAULT_SERVER
from trustkit.expiry import ExpiryPolicy

__all__ = ["DEFAULT_SERVER", "ClientSettings"]


@dataclass(frozen=True)
class ClientSettings:
    home: Path
    server_url: str = DEFAULT_SERVER
    timeout: float = 30.0
    expiry: ExpiryPolicy = field(default_factory=ExpiryPolicy)
    token: str | None = field(default=None, repr=False)  # the server's access token
    ca_file: Path | None = None  # CA certificates for the server's TLS

    mirror_url: str | None = None  # where hosts read metadata, if not the server
    auto_bins: bool = True  # move a repository into hash bins once it grows large
    # The trust store of a server the host policy routes repositories to
    # (``TrustServer.store``); None: the command's own server's.
    trust_scope: str | None = None

    def metadata_url(self, gun: str) -> str:
        """Base URL of a repository's TUF metadata: ``{server}/v2/{gun}/_trust/tuf/``, or
        the same path on the mirror hosts read from."""
        base = self.mirror_url or self.server_url
        return f"{base.rstrip('/')}/v2/{gun}/_trust/tuf/"

    def trust_dir(self, gun: str) -> Path:
        """Where this host keeps the metadata it trusts for ``gun``: under ``tuf/`` for
        the command's server, under ``servers/SERVER/tuf/`` for a server the host policy
        names, so that one name served by two servers never shares trust state."""
        if self.trust_scope is None:
            return self.home / "tuf" / quote(gun, safe="")
        return self.home / "servers" / self.trust_scope / "tuf" / quote(gun, safe="")

    def changelist_path(self, gun: str) -> Path:
        return self.home / "changelists" / f"{quote(gun, safe='')}.json"
