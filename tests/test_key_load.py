"""``trustkit key load FILE --name NAME``: a signer's own private key, kept as
``key generate NAME`` keeps one (as ``docker trust key load key.pem --name alice``).

The loaded key signs exactly as a generated one does: the owner adds its public half,
the holder signs with ``--signer NAME``, hosts verify. Refusals write nothing.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from keys.keystore import Keystore, public_key_from_pem
from keys.passphrase import PassphraseSource
from tests.support.harness import DIGEST_B, ServerProcess, Trustkit, assert_verifies

SIGNER_PASSPHRASE = "alice's keystore passphrase"
FILE_PASSPHRASE = "the passphrase the file was encrypted with"


def _alice(tmp_path: Path, server_url: str = "http://127.0.0.1:9", **env: str) -> Trustkit:
    return Trustkit(
        tmp_path / "alice" / ".trustkit",
        server_url,
        {"TRUSTKIT_DELEGATION_PASSPHRASE": SIGNER_PASSPHRASE, **env},
    )


def _write_key(path: Path, key: object, encryption: object = None, mode: int = 0o600) -> Path:
    data = key.private_bytes(  # type: ignore[attr-defined]
        Encoding.PEM, PrivateFormat.PKCS8, encryption or NoEncryption()
    )
    path.write_bytes(data)
    path.chmod(mode)
    return path


def _public_pem(key: object) -> bytes:
    public = key.public_key()  # type: ignore[attr-defined]
    return bytes(public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))


def _nothing_written(tk: Trustkit, *files: Path) -> None:
    assert Keystore(tk.home).records() == []
    for path in files:
        assert not path.exists(), path


def test_a_loaded_key_signs_for_its_signer_exactly_like_a_generated_one(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    """alice made her key elsewhere (openssl, a vault): she loads it as alice, the
    owner adds alice.pub, she signs with --signer alice and hosts see her signature."""
    key = Ed25519PrivateKey.generate()
    pem = _write_key(tmp_path / "alice.pem", key)
    alice = _alice(tmp_path, server.url)
    out = tmp_path / "alice.pub"

    loaded = alice("key", "load", str(pem), "--name", "alice", "--out", str(out), "--json")

    assert loaded.code == 0, loaded.err
    assert loaded.json["name"] == "alice"
    assert loaded.json["already_loaded"] is False
    assert loaded.json["public_key_file"] == str(out)
    assert out.read_bytes() == _public_pem(key)
    [record] = Keystore(alice.home).records()
    assert (record.gun, record.role, record.keyid) == ("*", "alice", loaded.json["keyid"])
    assert key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()) not in (
        b"".join(path.read_bytes() for path in (alice.home / "private").iterdir())
    )  # kept encrypted

    assert publisher("init", gun).code == 0
    added = publisher("signer", "add", "alice", gun, "--key", str(out), "--json")
    assert added.code == 0, added.err
    assert added.json["keys"] == [loaded.json["keyid"]]
    signed = alice(
        "sign", f"{gun}:release-1", "--digest", DIGEST_B, "--size", "100", "--signer", "alice"
    )
    assert signed.code == 0, signed.err
    assert_verifies(host, gun, "release-1", DIGEST_B)
    inspected = host("inspect", gun, "--json")
    assert {t["tag"]: t["signer"] for t in inspected.json["tags"]} == {"release-1": "alice"}


def test_an_encrypted_pem_opens_with_the_import_passphrase_and_is_kept_under_the_signers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    key = ec.generate_private_key(ec.SECP256R1())
    pem = _write_key(tmp_path / "k.pem", key, BestAvailableEncryption(FILE_PASSPHRASE.encode()))
    monkeypatch.chdir(tmp_path)  # the public half goes to NAME.pub here by default
    alice = _alice(tmp_path, TRUSTKIT_IMPORT_PASSPHRASE=FILE_PASSPHRASE)

    loaded = alice("key", "load", str(pem), "--name", "alice")

    assert loaded.code == 0, loaded.err
    assert "loaded the signer key alice" in loaded.out
    assert "trustkit signer add alice REPO --key alice.pub" in loaded.out
    assert (tmp_path / "alice.pub").read_bytes() == _public_pem(key)
    [record] = Keystore(alice.home).records()
    signer = Keystore(alice.home).signer(
        record, PassphraseSource({"TRUSTKIT_DELEGATION_PASSPHRASE": SIGNER_PASSPHRASE})
    )
    record.public.verify_signature(signer.sign(b"x"), b"x")


def test_an_encrypted_pem_with_a_wrong_or_no_passphrase_writes_nothing(tmp_path: Path):
    key = Ed25519PrivateKey.generate()
    pem = _write_key(tmp_path / "k.pem", key, BestAvailableEncryption(FILE_PASSPHRASE.encode()))
    out = tmp_path / "alice.pub"

    wrong = _alice(tmp_path, TRUSTKIT_IMPORT_PASSPHRASE="not it")(
        "key", "load", str(pem), "--name", "alice", "--out", str(out)
    )
    missing = _alice(tmp_path)("key", "load", str(pem), "--name", "alice", "--out", str(out))

    assert wrong.code == 2 and "the passphrase is wrong" in wrong.err
    assert missing.code == 2 and "TRUSTKIT_IMPORT_PASSPHRASE" in missing.err
    for result in (wrong, missing):
        assert "Traceback" not in result.err and result.out == ""
    _nothing_written(_alice(tmp_path), out)


def test_a_docker_trust_key_loads_under_its_name_with_the_public_half_docker_wrote(
    tmp_path: Path,
):
    """``docker trust key generate alice`` (the real Docker CLI) leaves an encrypted key
    with a ``role: alice`` header in ~/.docker/trust/private and alice.pub beside."""
    config = tmp_path / "docker-config"
    made = subprocess.run(
        ["docker", "trust", "key", "generate", "alice", "--dir", str(tmp_path)],
        env={
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "DOCKER_CONFIG": str(config),
            "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE": FILE_PASSPHRASE,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    [key_file] = (config / "trust" / "private").glob("*.key")
    alice = _alice(tmp_path, TRUSTKIT_IMPORT_PASSPHRASE=FILE_PASSPHRASE)
    ours = tmp_path / "alice-trustkit.pub"

    loaded = alice("key", "load", str(key_file), "--name", "alice", "--out", str(ours), "--json")

    assert loaded.code == 0, loaded.err
    # The key Docker made: its alice.pub (with Docker's role header) names the same key,
    # so the owner may add either file.
    docker_pub = public_key_from_pem((tmp_path / "alice.pub").read_bytes(), "alice.pub")
    assert docker_pub.keyid == loaded.json["keyid"]
    assert public_key_from_pem(ours.read_bytes(), str(ours)).keyid == loaded.json["keyid"]


def test_the_same_key_loaded_twice_is_left_as_it_is(tmp_path: Path):
    pem = _write_key(tmp_path / "k.pem", Ed25519PrivateKey.generate())
    out = tmp_path / "alice.pub"
    alice = _alice(tmp_path)
    first = alice("key", "load", str(pem), "--name", "alice", "--out", str(out), "--json")
    kept = {p.name: p.read_bytes() for p in (alice.home / "private").iterdir()}

    # No new passphrase is needed: nothing is sealed again.
    again = Trustkit(alice.home, alice.server_url)(
        "key", "load", str(pem), "--name", "alice", "--out", str(out), "--json"
    )
    text = Trustkit(alice.home, alice.server_url)(
        "key", "load", str(pem), "--name", "alice", "--out", str(out)
    )

    assert again.code == 0, again.err
    assert again.json["already_loaded"] is True
    assert again.json["keyid"] == first.json["keyid"]
    assert "already in this keystore; nothing changed" in text.out
    assert {p.name: p.read_bytes() for p in (alice.home / "private").iterdir()} == kept

    # A lost public half is written again from the key, still without a passphrase.
    public = out.read_bytes()
    out.unlink()
    restored = Trustkit(alice.home, alice.server_url)(
        "key", "load", str(pem), "--name", "alice", "--out", str(out)
    )
    assert restored.code == 0, restored.err
    assert "wrote its public half again" in restored.out
    assert out.read_bytes() == public


def test_a_name_held_by_another_key_or_a_key_held_under_another_name_is_refused(
    tmp_path: Path,
):
    alice = _alice(tmp_path)
    first = _write_key(tmp_path / "first.pem", Ed25519PrivateKey.generate())
    other = _write_key(tmp_path / "other.pem", Ed25519PrivateKey.generate())
    loaded = alice("key", "load", str(first), "--name", "alice", "--out", str(tmp_path / "a.pub"))
    assert loaded.code == 0, loaded.err
    keyid = Keystore(alice.home).records()[0].keyid

    taken = alice("key", "load", str(other), "--name", "alice", "--out", str(tmp_path / "b.pub"))
    renamed = alice("key", "load", str(first), "--name", "bob", "--out", str(tmp_path / "c.pub"))

    assert taken.code == 2
    assert "the name alice is taken by another key" in taken.err
    assert f"trustkit key remove {keyid[:12]} --yes" in taken.err
    assert renamed.code == 2
    assert "holds that key already, as the signer key alice" in renamed.err
    assert [r.keyid for r in Keystore(alice.home).records()] == [keyid]
    assert not (tmp_path / "b.pub").exists() and not (tmp_path / "c.pub").exists()


def test_a_generated_signer_s_name_is_taken_too(tmp_path: Path):
    alice = _alice(tmp_path)
    generated = alice("key", "generate", "alice", "--out", str(tmp_path / "gen.pub"))
    assert generated.code == 0, generated.err
    pem = _write_key(tmp_path / "k.pem", Ed25519PrivateKey.generate())

    result = alice("key", "load", str(pem), "--name", "alice", "--out", str(tmp_path / "x.pub"))

    assert result.code == 2 and "the name alice is taken" in result.err
    assert len(Keystore(alice.home).records()) == 1


def _openssh(path: Path) -> Path:
    key = Ed25519PrivateKey.generate()
    path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()))
    path.chmod(0o600)
    return path


def _public(path: Path) -> Path:
    path.write_bytes(_public_pem(Ed25519PrivateKey.generate()))
    return path


def _garbage(path: Path) -> Path:
    path.write_bytes(b"not a key at all\n")
    path.chmod(0o600)
    return path


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda p: _public(p), "holds a public key or certificate, not a private key"),
        (lambda p: _garbage(p), "holds no PEM private key"),
        (lambda p: _openssh(p), "is an OpenSSH private key"),
        (lambda p: _write_key(p, dsa.generate_private_key(2048)), "TUF metadata cannot sign"),
        (lambda p: _write_key(p, ec.generate_private_key(ec.SECP256K1())), "cannot use"),
        (lambda p: _write_key(p, rsa.generate_private_key(65537, 1024)), "too weak"),
        (
            lambda p: _write_key(p, Ed25519PrivateKey.generate(), mode=0o644),
            "may be read or written by other users",
        ),
        (lambda p: p.parent / "missing.pem", "cannot read"),
    ],
    ids=["public", "garbage", "openssh", "dsa", "secp256k1", "rsa-1024", "0644", "missing"],
)
def test_a_file_that_holds_no_usable_private_key_is_refused(tmp_path: Path, make, says):
    path = make(tmp_path / "key.pem")
    alice = _alice(tmp_path)
    out = tmp_path / "alice.pub"

    result = alice("key", "load", str(path), "--name", "alice", "--out", str(out))

    assert result.code == 2, result.out
    assert says in result.err
    assert "hint:" in result.err or says == "cannot read"
    assert "Traceback" not in result.err and result.out == ""
    _nothing_written(alice, out)


@pytest.mark.parametrize(
    "name",
    [
        "Alice",
        "al/ice",
        "../alice",
        "al\x1b[2Kice",
        "alice\n",
        "\u0430lice",  # a Cyrillic a
        " alice",
        "",
        "targets",
        "bins-0a",
        "a" * 65,
    ],
)
def test_a_name_that_is_no_signer_name_is_refused_and_shown_escaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
):
    pem = _write_key(tmp_path / "k.pem", Ed25519PrivateKey.generate())
    monkeypatch.chdir(tmp_path)
    alice = _alice(tmp_path)

    result = alice("key", "load", str(pem), "--name", name)

    assert result.code == 2
    assert "is not a valid signer name" in result.err
    assert "\x1b" not in result.err and result.err.count("\n") == 2  # message + hint
    _nothing_written(alice)
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".pub"] == []


def test_an_existing_public_key_file_of_another_key_is_not_overwritten(tmp_path: Path):
    pem = _write_key(tmp_path / "k.pem", Ed25519PrivateKey.generate())
    out = tmp_path / "alice.pub"
    out.write_bytes(_public_pem(Ed25519PrivateKey.generate()))
    before = out.read_bytes()
    alice = _alice(tmp_path)

    result = alice("key", "load", str(pem), "--name", "alice", "--out", str(out))

    assert result.code == 2 and "already exists" in result.err and "--out" in result.err
    assert out.read_bytes() == before
    _nothing_written(alice)


def test_at_a_terminal_the_file_s_passphrase_and_a_new_one_are_asked_never_echoed(
    tmp_path: Path,
):
    """A person loads an encrypted key: asked for the file's passphrase, then the
    keystore's new one twice (as key generate asks), none of them shown."""
    from tests.support.terminal import run_on_terminal

    key = Ed25519PrivateKey.generate()
    pem = _write_key(tmp_path / "k.pem", key, BestAvailableEncryption(b"file secret"))
    out = tmp_path / "alice.pub"
    env = {"PATH": os.environ.get("PATH", ""), "TRUSTKIT_HOME": str(tmp_path / ".trustkit")}

    code, screen = run_on_terminal(
        ["key", "load", str(pem), "--name", "alice", "--out", str(out)],
        env,
        {
            f"Passphrase of {pem}": "file secret",
            "New passphrase for the imported signer key alice": "keystore secret",
            "Repeat the passphrase for the imported signer key alice": "keystore secret",
        },
    )

    assert code == 0, screen
    assert "loaded the signer key alice" in screen
    assert "secret" not in screen
    assert out.read_bytes() == _public_pem(key)
    [record] = Keystore(tmp_path / ".trustkit").records()
    opened = Keystore(tmp_path / ".trustkit").signer(
        record, PassphraseSource({"TRUSTKIT_DELEGATION_PASSPHRASE": "keystore secret"})
    )
    record.public.verify_signature(opened.sign(b"x"), b"x")
