"""Fixtures of the attack tests, on top of ``tests/conftest.py``."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator

import pytest

import keys.keystore
from tests.support.harness import ServerProcess, TamperingProxy, gun_for


@pytest.fixture
def gun(request: pytest.FixtureRequest) -> str:
    """A repository of the test's own, named after its node id: test names here may
    repeat names elsewhere in the suite, and ``gun_for`` keeps only 80 characters."""
    unique = hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:12]
    return gun_for(f"attack-{unique}-{request.node.name}")


@pytest.fixture
def proxy(server: ServerProcess) -> Iterator[TamperingProxy]:
    """``tests/conftest.py``'s malicious mirror, stopped in the background: stopping
    waits for the server loop's half-second poll, and nearly every test here has one."""
    started = TamperingProxy(server.url).start()
    yield started
    threading.Thread(target=started.stop, daemon=True).start()


@pytest.fixture(autouse=True)
def _fewer_keystore_kdf_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Publishers' keys are sealed at rest with the bcrypt KDF (16 rounds, ~0.1 s), which
    is most of the time of ``init`` and ``sign``. The strength of that sealing plays no
    part in any attack here, so these tests seal with one round; keys are still sealed
    and opened the production way."""
    monkeypatch.setattr(keys.keystore, "BCRYPT_ROUNDS", 1)
