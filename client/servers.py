"""One verifier per trust server: the command's own, and one for each server the host
policy routes repositories to (``[[route]]``, ``client.trust_servers``).

A routed server gets a verifier of its own: its own HTTP client (its CA file, the
command's token only if it is the command's own server, never a mirror's), and its own
trust store on the host (``ClientSettings.trust_scope``), so a repository name served
by two servers never shares TUF state between them: a root, a version number or a
cached snapshot learned from one server is never used for the other. A mirror serves
its server's metadata, so it shares the server's store.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import TYPE_CHECKING

from client.fetcher import HttpxFetcher
from client.settings import ClientSettings
from client.trust_servers import TrustServer, same_server
from client.verify import TrustedRepository, Verifier
from trustkit.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable

    import httpx

__all__ = ["ServerVerifiers"]


class ServerVerifiers:
    """The verifier for each trust server; built when a repository first needs it,
    kept until ``close``. Safe to use from several threads (the agent does)."""

    def __init__(
        self,
        own: Verifier,
        settings: ClientSettings,
        *,
        deadline: float,
        first_use: Callable[[str, bytes], None] | None = None,
        routed: bool = True,
    ) -> None:
        # routed False: every repository is verified by ``own`` (a bundle's verifier
        # reads no server at all).
        self._routed = routed
        self._own = own
        self._settings = settings
        self._deadline = deadline
        self._first_use = first_use
        self._verifiers: dict[TrustServer, Verifier] = {}
        self._clients: list[httpx.Client] = []
        self._lock = threading.Lock()

    def for_server(self, server: TrustServer | None) -> Verifier:
        """The verifier of ``server``; the command's own for None."""
        if server is None or not self._routed:
            return self._own
        with self._lock:
            verifier = self._verifiers.get(server)
            if verifier is None:
                verifier = self._verifiers[server] = self._build(server)
            return verifier

    def repository(
        self, gun: str, tags: list[str] | None, server: TrustServer | None
    ) -> TrustedRepository:
        return self.for_server(server).trusted_repository(gun, tags=tags)

    def has_anchor(self, gun: str, server: TrustServer | None) -> bool:
        return self.for_server(server).has_anchor(gun)

    def close(self) -> None:
        with self._lock:
            for client in self._clients:
                client.close()
            self._clients.clear()
            self._verifiers.clear()

    def _build(self, server: TrustServer) -> Verifier:
        own = self._settings
        # The command's token is for the command's server: it goes to a routed server
        # only when that is the same server, and never to a mirror.
        token = own.token if same_server(own.server_url, server.url) else None
        settings = replace(
            own,
            server_url=server.url,
            mirror_url=server.mirror,
            ca_file=server.ca_file or own.ca_file,
            token=token,
            # The command's own server keeps the host's own store, however it is reached
            # (a route naming it to add a mirror or CA file): its pinned roots and
            # versions stay the ones every later verification starts from.
            trust_scope=None if same_server(own.server_url, server.url) else server.store,
        )
        reads = server.mirror or server.url
        headers = {"Authorization": f"Bearer {token}"} if token and reads == server.url else {}
        client = _http_client(reads, settings, headers)
        self._clients.append(client)
        return Verifier(settings, HttpxFetcher(client, deadline=self._deadline), self._first_use)


def _http_client(url: str, settings: ClientSettings, headers: dict[str, str]) -> httpx.Client:
    import ssl

    import httpx

    # Plain http only ever reaches a loopback host (trust_url refuses any other).
    verify: bool | ssl.SSLContext = url.startswith("https://")
    if verify and settings.ca_file is not None:
        try:
            verify = ssl.create_default_context(cafile=str(settings.ca_file))
        except (OSError, ssl.SSLError) as error:
            raise UsageError(
                f"cannot use {settings.ca_file} as CA certificates for {url}: {error}",
                hint="give a PEM file with the CA that signed the server's certificate",
            ) from None
    return httpx.Client(
        timeout=settings.timeout, follow_redirects=False, verify=verify, headers=headers
    )
