"""A malicious mirror serving metadata that python-tuf alone would accept, or would walk
without end: delegations deeper or wider than the bound, one key listed twice under two
key ids (so one signature meets a threshold of two), and hash bins beyond any count a
host can list. Hosts (``trustkit verify``) and the TUF conformance adapter decide
through the same function, so they refuse the same metadata with the same reason.

The mirror is a static TUF repository on 127.0.0.1 (the conformance tests' builder),
laid out as trustkit's server lays out a repository, so both clients read it.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from securesystemslib.signer import CryptoSigner, Key, Signature, SSlibKey
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    Root,
    SuccinctRoles,
    TargetFile,
    Targets,
)
from tuf.api.serialization.json import JSONSerializer

from tests.support.harness import Trustkit
from tests.support.static_repository import (
    IN_A_MONTH,
    Client,
    RepositoryServer,
    StaticRepository,
)

GUN = "registry.example.com/team/app"
TAG = "1.0"
MANIFEST = b'{"schemaVersion": 2}'
DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
BOUND = 32  # client.verify.MAX_DELEGATIONS, python-tuf's default


@pytest.fixture
def repo(tmp_path: Path) -> StaticRepository:
    return StaticRepository(tmp_path / "mirror")


@pytest.fixture
def mirror(repo: StaticRepository) -> Iterator[RepositoryServer]:
    """Serves the repository both at ``/metadata/`` (for the conformance adapter) and
    at ``/v2/GUN/_trust/tuf/`` (trustkit's layout, for hosts)."""
    base = repo.metadata_dir.parent
    trustkit_layout = base / "v2" / GUN / "_trust" / "tuf"
    trustkit_layout.parent.mkdir(parents=True)
    trustkit_layout.symlink_to(repo.metadata_dir)
    started = RepositoryServer(base)
    thread = threading.Thread(target=started.serve_forever, daemon=True)
    thread.start()
    yield started
    started.shutdown()
    started.server_close()
    thread.join()


@pytest.fixture
def host(tmp_path: Path, mirror: RepositoryServer) -> Trustkit:
    return Trustkit(tmp_path / "host" / ".trustkit", mirror.url)


@pytest.fixture
def adapter(tmp_path: Path, mirror: RepositoryServer) -> Client:
    workdir = tmp_path / "adapter"
    (workdir / "metadata").mkdir(parents=True)
    (workdir / "targets").mkdir()
    return Client(workdir, mirror)


def image(role: Targets, repo: StaticRepository) -> TargetFile:
    """TAG, signed in ROLE as trustkit signs an image (sha256 of the manifest), its
    manifest stored on the mirror (for the adapter to download)."""
    target = TargetFile.from_data(TAG, MANIFEST, ["sha256"])
    role.targets[TAG] = target
    repo.target_file(target).write_bytes(MANIFEST)
    return target


def delegate(repo: StaticRepository, parent: Targets, name: str, paths: list[str]) -> Targets:
    """PARENT delegates PATHS to a new role NAME with a key of its own."""
    signer = CryptoSigner.generate_ed25519()
    if parent.delegations is None:
        parent.delegations = Delegations(keys={}, roles={})
    assert parent.delegations.roles is not None
    parent.delegations.roles[name] = DelegatedRole(name, [], 1, False, paths)
    parent.add_key(signer.public_key, name)
    child = Targets(expires=IN_A_MONTH)
    repo.delegated[name] = child
    repo.delegated_signers[name] = signer
    return child


def chain(repo: StaticRepository, length: int) -> None:
    """targets → d1 → d2 → … → dLENGTH, every role delegating every path; the last
    signs TAG."""
    parent = repo.targets
    for depth in range(1, length + 1):
        parent = delegate(repo, parent, f"d{depth}", ["*"])
    image(parent, repo)
    repo.release()


def fan(repo: StaticRepository, width: int) -> None:
    """targets delegates every path to WIDTH roles in turn; only the last signs TAG."""
    roles = [delegate(repo, repo.targets, f"s{n}", ["*"]) for n in range(1, width + 1)]
    image(roles[-1], repo)
    repo.release()


def verify(host: Trustkit) -> tuple[int, str, str]:
    result = host("verify", f"{GUN}:{TAG}", "--offline")
    assert "Traceback" not in result.err
    return result.code, result.out.strip(), result.err


def download(adapter: Client, repo: StaticRepository) -> tuple[int, str]:
    init = adapter.init(repo.initial_root)
    assert init.code == 0, init
    run = adapter.download(TAG)
    assert "Traceback" not in run.stderr
    return run.code, run.stderr


# --- one verifier, one bound ---------------------------------------------------------


@pytest.mark.parametrize("build", [chain, fan], ids=["chain", "fan"])
def test_delegations_within_the_bound_are_followed_by_verify_and_the_adapter(
    repo: StaticRepository, host: Trustkit, adapter: Client, build
):
    build(repo, 5)
    assert verify(host)[:2] == (0, DIGEST)
    code, stderr = download(adapter, repo)
    assert code == 0, stderr


@pytest.mark.parametrize("build", [chain, fan], ids=["chain", "fan"])
def test_delegations_beyond_the_bound_are_refused_by_verify_and_the_adapter_alike(
    repo: StaticRepository, host: Trustkit, adapter: Client, build
):
    build(repo, BOUND + 3)
    reason = f"looking up {TAG} visits more than {BOUND} delegated roles"
    code, out, err = verify(host)
    assert (code, out) == (1, ""), err
    assert reason in err
    code, stderr = download(adapter, repo)
    assert code == 1
    assert reason in stderr


# --- one key under two key ids -------------------------------------------------------


def twice(key: Key) -> tuple[str, Key]:
    """The same public key under a second key id (the first in upper case)."""
    other = key.keyid.upper()
    return other, SSlibKey(other, key.keytype, key.scheme, dict(key.keyval))


def signed_twice(signed: Root | Targets, signer: CryptoSigner, other: str) -> bytes:
    """SIGNED with one signature, filed under both key ids of the signer's key."""
    metadata = Metadata(signed)
    signature = metadata.sign(signer)
    metadata.signatures[other] = Signature(other, signature.signature)
    return metadata.to_bytes(JSONSerializer(compact=False))


def timestamp_key_listed_twice(repo: StaticRepository) -> bytes:
    """Root v1 whose timestamp role lists its one key twice, threshold 2, and a
    timestamp signed once."""
    other, copy = twice(repo.signers["timestamp"].public_key)
    repo.root.keys[other] = copy
    repo.root.roles["timestamp"].keyids.append(other)
    repo.root.roles["timestamp"].threshold = 2
    repo.initial_root = repo.publish_root()
    repo.publish()
    repo.write("timestamp.json", signed_twice(repo.timestamp, repo.signers["timestamp"], other))
    return repo.initial_root


def test_root_listing_one_key_twice_is_refused(
    repo: StaticRepository, host: Trustkit, adapter: Client
):
    image(repo.targets, repo)
    timestamp_key_listed_twice(repo)
    code, out, err = verify(host)
    assert (code, out) == (1, ""), err
    assert "lists one key twice for the role timestamp" in err
    init = adapter.init(repo.initial_root)
    assert init.code == 1
    assert "lists one key twice for the role timestamp" in init.stderr


def test_new_root_in_the_chain_listing_one_key_twice_is_refused(
    repo: StaticRepository, host: Trustkit
):
    image(repo.targets, repo)
    repo.release()
    assert verify(host)[:2] == (0, DIGEST)  # the host trusts root v1
    other, copy = twice(repo.signers["timestamp"].public_key)
    repo.root.version += 1
    repo.root.keys[other] = copy
    repo.root.roles["timestamp"].keyids.append(other)
    repo.root.roles["timestamp"].threshold = 2
    repo.publish_root()  # signed by the root key of v1: it chains
    repo.release()
    repo.write("timestamp.json", signed_twice(repo.timestamp, repo.signers["timestamp"], other))
    code, out, err = verify(host)
    assert (code, out) == (1, ""), err
    assert "2.root.json lists one key twice for the role timestamp" in err


def test_delegation_listing_one_key_twice_is_refused(repo: StaticRepository, host: Trustkit):
    signer = delegate(repo, repo.targets, "team", ["*"])
    image(signer, repo)
    team = repo.delegated_signers["team"]
    assert repo.targets.delegations is not None
    other, copy = twice(team.public_key)
    repo.targets.delegations.keys[other] = copy
    assert repo.targets.delegations.roles is not None
    role = repo.targets.delegations.roles["team"]
    role.keyids.append(other)
    role.threshold = 2
    repo.release()
    repo.write(f"{signer.version}.team.json", signed_twice(signer, team, other))
    code, out, err = verify(host)
    assert (code, out) == (1, ""), err
    assert "lists one key twice for the role team" in err


# --- hash bins beyond any count ------------------------------------------------------


def bins_of(repo: StaticRepository, bit_length: int, *, key_twice: bool = False) -> None:
    """targets → ``bins`` → 2**BIT_LENGTH hash bins; TAG is signed in its bin. With
    KEY_TWICE the bins' one key is listed under two key ids, threshold 2, and the bin
    is signed once."""
    bins = delegate(repo, repo.targets, "bins", ["*"])
    signer = repo.delegated_signers["bins"]
    keys = {signer.public_key.keyid: signer.public_key}
    if key_twice:
        other, copy = twice(signer.public_key)
        keys[other] = copy
    succinct = SuccinctRoles(list(keys), len(keys), bit_length, "bins")
    bins.delegations = Delegations(keys=keys, succinct_roles=succinct)
    name = succinct.get_role_for_target(TAG)
    repo.delegated[name] = bin_role = Targets(expires=IN_A_MONTH)
    repo.delegated_signers[name] = signer
    image(bin_role, repo)
    repo.release()
    if key_twice:
        data = signed_twice(bin_role, signer, twice(signer.public_key)[0])
        repo.write(f"{bin_role.version}.{name}.json", data)


def test_bins_within_the_limit_are_followed(repo: StaticRepository, host: Trustkit):
    bins_of(repo, 4)
    assert verify(host)[:2] == (0, DIGEST)
    result = host("inspect", GUN)
    assert result.code == 0, result.err


def test_bins_with_a_bit_length_of_32_are_refused_at_once(repo: StaticRepository, host: Trustkit):
    bins_of(repo, 32)
    code, out, err = verify(host)
    assert (code, out) == (1, ""), err
    assert "delegates to 2**32 hash bins; trustkit allows at most 16384" in err
    # Listing every tag counted 2**32 bin names before: it never ended.
    result = host.process("inspect", GUN, timeout=60)
    assert result.code == 1, result.err
    assert "delegates to 2**32 hash bins" in result.err


def test_hash_bins_listing_one_key_twice_are_refused(repo: StaticRepository, host: Trustkit):
    bins_of(repo, 4, key_twice=True)
    code, out, err = verify(host)
    assert (code, out) == (1, ""), err
    assert "lists one key twice for the role bins-*" in err
