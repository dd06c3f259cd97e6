"""The Notary v1 reader (``migrate.notary``) against Debian's real notary-server and CLI.

One repository is built with the real ``notary`` client the way teams used Docker
Content Trust: tags signed by the owner, a ``targets/releases`` delegation with a
certificate (as ``docker trust signer add`` makes it) published by CI, a second signer
with a bare key and restricted paths, the snapshot key moved to the server, the targets
key rotated and the root key rotated twice. The reader must return exactly what
``notary list`` shows, and refuse a tampered, expired, rolled-back or wrongly pinned
repository, naming what failed.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID
from securesystemslib.formats import encode_canonical

from migrate.notary import (
    NotaryAuthError,
    NotaryExpiredError,
    NotaryNotFoundError,
    NotaryRepository,
    NotaryTarget,
    NotaryVerificationError,
    docker_trust_root,
    docker_trust_versions,
    notary_canonical_json,
    notary_key_id,
    read_notary_repository,
    verify_root,
)
from tests.support.notary_server import (
    DelegateKey,
    NotaryCLI,
    NotaryProxy,
    NotaryServer,
    flip_byte,
    image_target,
    make_delegate_key,
    publish_as_delegate,
    role_of,
)
from tests.support.registry import TokenService

GUN = "registry.test/team/app"
RELEASES = "targets/releases"
ALICE = "targets/alice"
SNEAKY = image_target("signed outside alice's paths")


@dataclass(frozen=True)
class Published:
    server: NotaryServer
    owner: NotaryCLI
    root_v1: bytes
    releases: DelegateKey
    alice: DelegateKey

    def read(self, **options: Any) -> NotaryRepository:
        return read_notary_repository(self.server.url, GUN, ca_file=self.server.ca_path, **options)


@pytest.fixture(scope="module")
def notary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NotaryServer]:
    server = NotaryServer(tmp_path_factory.mktemp("notary-server")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def published(notary: NotaryServer, tmp_path_factory: pytest.TempPathFactory) -> Published:
    base = tmp_path_factory.mktemp("notary-clients")
    owner = NotaryCLI(notary, base / "owner" / "trust")
    owner.init(GUN)
    owner.add_many(
        GUN,
        {
            "1.0": image_target("app 1.0"),
            "1.1": image_target("app 1.1"),
            "latest": image_target("app 1.1"),
            "big": image_target("big", size=1_234_567),  # past float64's %g switch to 1e+06
        },
    )
    root_v1 = notary.metadata(GUN, "1.root")
    owner.rotate(GUN, "snapshot", server_managed=True)  # so delegates can publish alone

    releases = make_delegate_key(base / "keys", "releases")
    alice = make_delegate_key(base / "keys", "alice")
    owner.add_delegation(GUN, RELEASES, [releases.cert_path], all_paths=True, publish=False)
    owner.add_delegation(GUN, ALICE, [alice.public_path], paths=["alice/", "2."], publish=False)
    owner.publish(GUN)

    ci = NotaryCLI(notary, base / "ci" / "trust")
    ci.import_key(releases.key_path, RELEASES)
    ci.add_many(
        GUN,
        {"2.0": image_target("app 2.0"), "1.1": image_target("app 1.1 rebuilt")},
        role=RELEASES,
    )
    dev = NotaryCLI(notary, base / "alice" / "trust")
    dev.import_key(alice.key_path, ALICE)
    dev.add_many(
        GUN, {"alice/tool": image_target("tool"), "2.1": image_target("app 2.1")}, role=ALICE
    )
    # Signed by alice's key, but outside her paths: the CLI will not make it, the server
    # takes it, and Notary's client ignores it.
    publish_as_delegate(
        notary,
        GUN,
        ALICE,
        alice,
        alice.public_key_id,
        lambda signed: signed["targets"].update(
            sneaky={
                "hashes": {"sha256": base64.b64encode(bytes.fromhex(SNEAKY.digest)).decode()},
                "length": SNEAKY.size,
            }
        ),
    )

    owner.rotate(GUN, "targets")
    owner.rotate_root(GUN)
    owner.rotate_root(GUN)  # the newest root is no longer signed by root v1's key
    owner.add(GUN, "1.2", image_target("app 1.2"))
    return Published(notary, owner, root_v1, releases, alice)


def _as_listed(targets: Mapping[str, NotaryTarget]) -> dict[str, tuple[str | None, int, str]]:
    return {name: (t.sha256, t.length, t.role) for name, t in targets.items()}


def _root_version(raw: bytes) -> int:
    return int(json.loads(raw)["signed"]["version"])


def test_reader_returns_what_notary_list_shows(published: Published) -> None:
    repository = published.read()

    listed = published.owner.list(GUN)
    assert _as_listed(repository.targets) == {
        name: (row.digest, row.size, row.role) for name, row in listed.items()
    }
    assert set(listed) == {"1.0", "1.1", "1.2", "latest", "big", "2.0", "2.1", "alice/tool"}
    assert repository.targets["big"].length == 1_234_567
    assert repository.targets["1.2"].digest == image_target("app 1.2").reference
    # a tag both roles sign: notary list takes targets, docker pull takes targets/releases
    assert repository.targets["1.1"].sha256 == image_target("app 1.1").digest
    assert repository.docker_tags["1.1"].role == RELEASES
    assert repository.docker_tags["1.1"].sha256 == image_target("app 1.1 rebuilt").digest
    # docker pull ignores tags of delegations other than targets/releases
    assert set(repository.docker_tags) == set(listed) - {"2.1", "alice/tool"}
    for role in (RELEASES, ALICE):
        by_role = published.owner.list(GUN, role)
        assert {n: repository.resolve(n, role) for n in by_role} == {
            n: repository.role_targets[row.role][n] for n, row in by_role.items()
        }
    # outside its paths: ignored by notary list, and by the reader
    assert "sneaky" not in listed
    assert "sneaky" not in {t.name for t in repository.all_targets}
    assert repository.ignored_targets == ((ALICE, "sneaky"),)

    assert repository.trusted_on_first_use
    assert repository.root_json == published.server.metadata(GUN, "root")
    assert repository.roles["root"].version == _root_version(repository.root_json)
    assert repository.root_versions == (repository.roles["root"].version,)


def test_delegations_come_with_their_keys_paths_and_threshold(published: Published) -> None:
    repository = published.read()
    assert set(repository.delegations) == {RELEASES, ALICE}

    releases = repository.delegations[RELEASES]
    assert (releases.parent, releases.threshold, releases.paths) == ("targets", 1, ("",))
    [key] = releases.keys.values()
    assert key.keytype == "ecdsa-x509"
    assert key.key_id == published.releases.certificate_key_id
    assert key.canonical_key_id == published.releases.public_key_id  # its private key's file
    assert key.certificate is not None
    assert key.certificate.subject.rfc4514_string() == "CN=releases"
    assert key.public_pem == published.releases.public_path.read_bytes()
    assert key.sslib_key is not None
    assert key.sslib_key.keytype == "ecdsa"
    assert key.sslib_key.keyval["public"].encode() == published.releases.public_path.read_bytes()
    assert repository.roles[RELEASES].signed_by == (key.key_id,)
    assert releases.version == repository.roles[RELEASES].version

    alice = repository.delegations[ALICE]
    assert alice.paths == alice.listed_paths == ("alice/", "2.")
    assert [k.keytype for k in alice.keys.values()] == ["ecdsa"]
    assert alice.key_ids == (published.alice.public_key_id,)
    assert alice.may_sign("2.1") and not alice.may_sign("sneaky")

    # the rotations: new root and targets keys, snapshot and timestamp on the server
    first = json.loads(published.root_v1)["signed"]
    assert set(repository.root_key_ids).isdisjoint(first["roles"]["root"]["keyids"])
    assert set(repository.roles["targets"].key_ids).isdisjoint(first["roles"]["targets"]["keyids"])
    assert repository.roles["snapshot"].signed_by == repository.roles["snapshot"].key_ids
    for key_id in repository.root_key_ids:  # Notary's key ids: sha256 of canonical key JSON
        root_key = repository.root_keys[key_id]
        assert notary_key_id(root_key.keytype, root_key.public) == key_id


def test_a_pinned_old_root_is_walked_forward_through_the_rotations(published: Published) -> None:
    latest = _root_version(published.server.metadata(GUN, "root"))
    repository = published.read(pinned_root=published.root_v1)
    assert repository.root_source == "pinned"
    assert not repository.trusted_on_first_use
    assert repository.root_versions == tuple(range(1, latest + 1))
    assert repository.targets.keys() == published.read().targets.keys()

    # what Docker pins: the root in the trust directory, and the versions it saw
    cached = docker_trust_root(GUN, published.owner.trust_dir)
    assert cached is not None
    seen = docker_trust_versions(GUN, published.owner.trust_dir)
    assert seen["root"] == latest and seen["targets"] >= 1
    repository = published.read(pinned_root=cached, min_versions=seen)
    assert repository.root_versions == (latest,)

    with pytest.raises(NotaryVerificationError, match="rollback refused: targets is version"):
        published.read(pinned_root=cached, min_versions={"targets": 10_000})


def test_a_wrong_pinned_root_is_refused(
    published: Published, notary: NotaryServer, tmp_path: Path
) -> None:
    other = "registry.test/team/other"
    published.owner.init(other)
    with pytest.raises(NotaryVerificationError, match=r"CN 'registry\.test/team/other' is not"):
        published.read(pinned_root=notary.metadata(other, "root"))

    # the same name, deleted and made again with new keys (or served by an impostor)
    reborn = "registry.test/team/reborn"
    first = NotaryCLI(notary, tmp_path / "first" / "trust")
    first.init(reborn)
    pinned = first.cached_root(reborn)
    first.delete(reborn)
    NotaryCLI(notary, tmp_path / "second" / "trust").init(reborn)
    with pytest.raises(NotaryVerificationError, match="not signed by the root keys of the trusted"):
        read_notary_repository(notary.url, reborn, ca_file=notary.ca_path, pinned_root=pinned)
    # on first use it would have been trusted: the CLI must warn when it is
    fresh = read_notary_repository(notary.url, reborn, ca_file=notary.ca_path)
    assert fresh.trusted_on_first_use


def test_an_expired_timestamp_is_refused_naming_it(published: Published) -> None:
    # notary-server signs timestamps for 14 days (not configurable, Go's clock cannot be
    # faked): verify the real repository as a host would two weeks from now.
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=15)
    with pytest.raises(NotaryExpiredError, match=r"timestamp metadata expired at 20") as refused:
        published.read(now=later)
    assert refused.value.role == "timestamp"
    assert refused.value.source is not None
    assert refused.value.source.endswith("/_trust/tuf/timestamp.json")
    assert refused.value.expires < later


@pytest.mark.parametrize(
    ("role", "marker", "failure"),
    [
        ("targets", b'"length":', "hash mismatch for targets: its sha256"),
        (RELEASES, b'"length":', "hash mismatch for targets/releases"),
        ("snapshot", b'"length":', "hash mismatch for snapshot"),
        ("timestamp", b'"version":', "signature verification failed for timestamp"),
        ("root", b'"expires":"2', "not signed by a threshold of its own root keys"),
    ],
)
def test_tampered_metadata_is_refused_naming_the_failure(
    published: Published, role: str, marker: bytes, failure: str
) -> None:
    proxy = NotaryProxy(published.server).start()
    try:

        def tamper(path: str, status: int, body: bytes) -> tuple[int, bytes]:
            if status == 200 and role_of(path) == role:
                return status, flip_byte(body, marker)
            return status, body

        proxy.rewrite = tamper
        with pytest.raises(NotaryVerificationError, match=failure) as refused:
            read_notary_repository(proxy.url, GUN)
        assert refused.value.role == role
        assert refused.value.source is not None and refused.value.source.startswith(proxy.url)
        proxy.rewrite = lambda path, status, body: (status, body)
        assert read_notary_repository(proxy.url, GUN).targets.keys() == {*published.owner.list(GUN)}
    finally:
        proxy.stop()


def test_a_signer_whose_key_was_removed_is_skipped_as_notary_does(
    notary: NotaryServer, tmp_path: Path
) -> None:
    gun = "registry.test/team/revoked"
    owner = NotaryCLI(notary, tmp_path / "owner" / "trust")
    owner.init(gun)
    owner.add(gun, "1.0", image_target("revoked 1.0"))
    owner.rotate(gun, "snapshot", server_managed=True)
    old, new = make_delegate_key(tmp_path, "old"), make_delegate_key(tmp_path, "new")
    owner.add_delegation(gun, ALICE, [old.cert_path], all_paths=True)
    signer = NotaryCLI(notary, tmp_path / "signer" / "trust")
    signer.import_key(old.key_path, ALICE)
    signer.add(gun, "2.0", image_target("revoked 2.0"), role=ALICE)
    # the signer's key is replaced; what it signed no longer has a valid signature
    owner.add_delegation(gun, ALICE, [new.cert_path], all_paths=True, publish=False)
    owner.remove_delegation_keys(gun, ALICE, [old.public_key_id])  # the id `delegation list` shows

    listed = owner.list(gun)
    assert set(listed) == {"1.0"}  # notary list skips targets/alice (and only warns)
    with pytest.raises(
        NotaryVerificationError, match="signature verification failed for targets/alice"
    ):
        read_notary_repository(notary.url, gun, ca_file=notary.ca_path)
    lenient = read_notary_repository(notary.url, gun, ca_file=notary.ca_path, strict=False)
    assert _as_listed(lenient.targets) == {n: (r.digest, r.size, r.role) for n, r in listed.items()}
    assert set(lenient.skipped_delegations) == {ALICE}
    assert lenient.delegations[ALICE].key_ids == (new.certificate_key_id,)
    assert lenient.delegations[ALICE].version is None  # nothing it publishes verifies


def test_a_missing_repository_is_not_found(notary: NotaryServer) -> None:
    with pytest.raises(NotaryNotFoundError, match=r"has no trust data for registry\.test/none"):
        read_notary_repository(notary.url, "registry.test/none", ca_file=notary.ca_path)


def test_token_auth_flow_against_a_real_token_service(tmp_path: Path) -> None:
    tokens = TokenService(
        tmp_path / "tokens", service="notary-server", issuer="trustkit-test-notary-auth"
    ).start()
    server = NotaryServer(tmp_path / "server", token_auth=tokens).start()
    try:
        gun = "registry.test/team/private"
        owner = NotaryCLI(server, tmp_path / "owner", credentials=("ci", "ci-secret"))
        owner.init(gun)
        owner.add(gun, "1.0", image_target("private 1.0"))
        # (``notary list`` cannot check this: the CLI reads anonymously, and this token
        # service gives no anonymous tokens)

        repository = read_notary_repository(
            server.url, gun, ca_file=server.ca_path, credentials=("ci", "ci-secret")
        )
        signed = image_target("private 1.0")
        assert _as_listed(repository.targets) == {"1.0": (signed.digest, signed.size, "targets")}
        assert any(
            r.credentials_valid and f"repository:{gun}:pull" in r.scopes for r in tokens.requests
        )
        with pytest.raises(NotaryAuthError, match="no credentials were given"):
            read_notary_repository(server.url, gun, ca_file=server.ca_path)
        with pytest.raises(NotaryAuthError, match="answered 401"):
            read_notary_repository(
                server.url, gun, ca_file=server.ca_path, credentials=("ci", "wrong")
            )
    finally:
        server.stop()
        tokens.stop()


# --------------------------------------------------------------------------- no server needed


def _synthetic_root(
    common_name: str, *, not_after: datetime.datetime | None = None
) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    """A root as ``notary init`` writes it, its one certificate with ``common_name``."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=400))
        .not_valid_after(not_after or now + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    key_id = notary_key_id("ecdsa-x509", pem)
    signed = {
        "_type": "Root",
        "consistent_snapshot": False,
        "expires": (now + datetime.timedelta(days=3650)).strftime("%Y-%m-%dT%H:%M:%S.123456789Z"),
        "keys": {
            key_id: {
                "keytype": "ecdsa-x509",
                "keyval": {"private": None, "public": base64.b64encode(pem).decode()},
            }
        },
        "roles": {
            role: {"keyids": [key_id], "threshold": 1}
            for role in ("root", "targets", "snapshot", "timestamp")
        },
        "version": 1,
    }
    message = encode_canonical(signed)
    assert message is not None
    r, s = decode_dss_signature(key.sign(message.encode(), ec.ECDSA(hashes.SHA256())))
    raw_sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    document = {
        "signed": signed,
        "signatures": [
            {"keyid": key_id, "method": "ecdsa", "sig": base64.b64encode(raw_sig).decode()}
        ],
    }
    return json.dumps(document).encode(), key


def test_root_certificate_common_name_must_be_the_gun() -> None:
    good, _ = _synthetic_root(GUN)
    assert verify_root(good, GUN).version == 1
    wildcard, _ = _synthetic_root("registry.test/team/*")
    assert verify_root(wildcard, GUN).signed_by

    other, _ = _synthetic_root("registry.test/team/other")
    with pytest.raises(NotaryVerificationError, match=r"CN 'registry\.test/team/other' is not"):
        verify_root(other, GUN)
    expired, _ = _synthetic_root(
        GUN, not_after=datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    )
    with pytest.raises(NotaryVerificationError, match="is not valid now"):
        verify_root(expired, GUN)
    # a root signed by another GUN's key does not follow a pinned one
    with pytest.raises(NotaryVerificationError, match="not signed by the root keys of the trusted"):
        verify_root(wildcard, GUN, previous=good)


def test_canonical_json_is_notarys() -> None:
    # only " and \ escaped, U+2028 and <&> raw (checked against notary-server's signatures),
    # integral floats as integers (Notary re-reads numbers as float64)
    value = {"b": 2.0, "a": 'x\u2028<&>"\\é', "n": 1_234_567}
    assert notary_canonical_json(value) == '{"a":"x\u2028<&>\\"\\\\é","b":2,"n":1234567}'.encode()
    for unsignable in ({"f": 1.5}, {"n": 2**53 + 1}):
        with pytest.raises(ValueError, match="number"):
            notary_canonical_json(unsignable)
    assert (
        notary_key_id("ed25519", b"\x00" * 32)
        == hashlib.sha256(
            b'{"keytype":"ed25519","keyval":{"private":null,"public":"'
            + base64.b64encode(b"\x00" * 32)
            + b'"}}'
        ).hexdigest()
    )


def test_credentials_are_only_sent_where_they_are_safe() -> None:
    basic = "Basic " + base64.b64encode(b"ci:secret").decode()
    bearer = (
        f'Bearer realm="https://token.example/token",service="notary",scope="repository:{GUN}:pull"'
    )
    seen: list[tuple[str, str | None]] = []

    def read(url: str, challenge: str) -> None:
        def answer(request: httpx.Request) -> httpx.Response:
            authorization = request.headers.get("Authorization")
            seen.append((request.url.host, authorization))
            if request.url.host == "token.example":
                return httpx.Response(200, json={"token": "t0ken"})
            if not authorization:
                return httpx.Response(401, headers={"WWW-Authenticate": challenge})
            return httpx.Response(404)  # authenticated: the real answer comes through

        with httpx.Client(transport=httpx.MockTransport(answer)) as client:
            read_notary_repository(url, GUN, credentials=("ci", "secret"), client=client)

    with pytest.raises(NotaryNotFoundError):
        read("http://127.0.0.1:4443", 'Basic realm="notary"')
    assert seen[-1] == ("127.0.0.1", basic)
    with pytest.raises(NotaryAuthError, match="over plain http"):
        read("http://notary.example", 'Basic realm="notary"')

    seen.clear()  # Docker's token flow: the realm gets the credentials, the server the token
    with pytest.raises(NotaryNotFoundError):
        read("https://notary.example", bearer)
    assert seen == [
        ("notary.example", None),
        ("token.example", basic),
        ("notary.example", "Bearer t0ken"),
    ]
    with pytest.raises(NotaryAuthError, match="over plain http"):
        read("https://notary.example", bearer.replace("https://token", "http://token"))
