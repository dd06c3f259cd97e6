"""Key custody: encrypted keys, passphrase sources, and the server's sealed online keys."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import stat
import struct
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    pkcs12,
)
from securesystemslib.signer import SSlibKey

import keys.keystore
from keys.keystore import KeyRecord, Keystore, PrivateKey, unseal
from keys.passphrase import PassphraseSource
from server.master_key import MasterKey
from tests.support.harness import DIGEST_A, TARGETS_PASSPHRASE, Trustkit
from trustkit.errors import EXIT_USAGE, KeystoreError, PassphraseError, UsageError


def test_key_opens_only_with_its_passphrase(tmp_path):
    store = Keystore(tmp_path / "home")
    record = store.generate(
        "registry.test/app", "targets", PassphraseSource({"TRUSTKIT_TARGETS_PASSPHRASE": "right"})
    )

    signer = store.signer(record, PassphraseSource({"TRUSTKIT_TARGETS_PASSPHRASE": "right"}))
    with pytest.raises(PassphraseError) as error:
        store.signer(record, PassphraseSource({"TRUSTKIT_TARGETS_PASSPHRASE": "wrong"}))

    assert signer.public_key.keyid == record.keyid
    assert "wrong passphrase for the targets key of registry.test/app" in error.value.message
    assert "$TRUSTKIT_TARGETS_PASSPHRASE" in (error.value.hint or "")


def test_ecdsa_keys_are_supported(tmp_path):
    store = Keystore(tmp_path / "home")
    source = PassphraseSource({"TRUSTKIT_ROOT_PASSPHRASE": "pw"})

    record = store.generate("registry.test/app", "root", source, keytype="ecdsa")

    assert record.public.scheme == "ecdsa-sha2-nistp256"
    assert store.signers("registry.test/app", "root", source)[0].public_key == record.public


def test_new_key_passphrase_is_asked_twice_and_must_match(tmp_path):
    answers = iter(["first", "second"])
    source = PassphraseSource({}, None, prompt=lambda _: next(answers))

    with pytest.raises(PassphraseError, match="differ"):
        Keystore(tmp_path / "home").generate("registry.test/app", "root", source)

    assert not list((tmp_path / "home").rglob("*.p12"))


def test_passphrase_file_is_read_without_its_newline(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("from a file\n")
    source = PassphraseSource({}, secret)
    store = Keystore(tmp_path / "home")

    record = store.generate("registry.test/app", "targets", source)

    assert store.signer(record, PassphraseSource({"TRUSTKIT_TARGETS_PASSPHRASE": "from a file"}))


def test_no_passphrase_without_a_terminal_names_the_variable(tmp_path):
    with pytest.raises(PassphraseError) as error:
        Keystore(tmp_path / "home").generate("registry.test/app", "targets", PassphraseSource({}))

    assert "TRUSTKIT_TARGETS_PASSPHRASE" in (error.value.hint or "")


def test_server_master_key_is_created_private_and_seals_online_keys(start_server):
    server = start_server()
    admin = server.auth_headers()  # the first request for a key makes it: a write
    response = httpx.get(
        server.metadata_url("registry.test/sealed", "timestamp.key"), headers=admin
    )
    again = httpx.get(server.metadata_url("registry.test/sealed", "timestamp.key"), headers=admin)
    snapshot = httpx.get(server.metadata_url("registry.test/sealed", "snapshot.key"), headers=admin)
    root = httpx.get(server.metadata_url("registry.test/sealed", "root.key"), headers=admin)

    master_path = server.data_dir / "master.key"
    assert stat.S_IMODE(os.stat(master_path).st_mode) == 0o600
    assert response.status_code == 200
    assert response.json()["keyid"] == again.json()["keyid"]  # created once, then kept
    assert snapshot.json()["keyid"] != response.json()["keyid"]
    assert root.status_code == 404 and root.json()["error"] == "not_server_key"

    with sqlite3.connect(server.database) as db:
        keyid, sealed = db.execute(
            "SELECT keyid, sealed FROM online_keys WHERE role='timestamp'"
        ).fetchone()
    context = f"trustkit-online-key\0registry.test/sealed\0timestamp\0{keyid}".encode()
    assert MasterKey.load_or_create(master_path).open(sealed, context)
    with pytest.raises(UsageError, match="does not open"):
        MasterKey(b"\x01" * 32).open(sealed, context)


def test_key_kept_elsewhere_is_loaded_through_its_signer_uri(tmp_path):
    """A key record can point at any securesystemslib signer URI (HSM, KMS, file, …)."""
    from securesystemslib.signer import CryptoSigner

    outside = CryptoSigner.generate_ed25519()
    pem = tmp_path / "elsewhere.pem"
    pem.write_bytes(outside.private_bytes)
    store = Keystore(tmp_path / "home")
    record = KeyRecord(
        outside.public_key.keyid, "registry.test/app", "targets", outside.public_key, f"file2:{pem}"
    )
    (tmp_path / "home" / "private").mkdir(parents=True)
    (tmp_path / "home" / "private" / f"{record.keyid}.json").write_text(
        json.dumps(record.to_dict())
    )

    [signer] = store.signers("registry.test/app", "targets", PassphraseSource({}))

    assert signer.public_key == outside.public_key
    signature = signer.sign(b"payload")
    outside.public_key.verify_signature(signature, b"payload")


# --- opening keys once per command --------------------------------------------------

# A targets key as trustkit 0.1.0 wrote it (commit 6cd168e), passphrase "an old
# passphrase": PKCS#12, the key bag under PBES2 (PBKDF2-HMAC-SHA256, 600,000 rounds,
# AES-256-CBC). Keystores written then must open as long as trustkit reads PKCS#12.
OLD_FORMAT_PASSPHRASE = "an old passphrase"
OLD_FORMAT_KEYID = "702148c7ad33c1d9aa6652128823e4c96729349e14ca4b3ad490a8ce3cb974f1"
OLD_FORMAT_P12 = """
MIIBigIBAzCCAUAGCSqGSIb3DQEHAaCCATEEggEtMIIBKTCCASUGCSqGSIb3DQEHAaCCARYEggESMIIBDjCCAQoG
CyqGSIb3DQEMCgECoIGnMIGkMGAGCSqGSIb3DQEFDTBTMDIGCSqGSIb3DQEFDDAlBBDi7vileEDecklyli9nThJ4
AgMJJ8AwDAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEEHvSqqIk/GWH6Ayam5HUC5sEQCVvR6AeB2bJuiwErLs/
1tI85YqW+KRWdBcOH3iTMyxRkBMI5IkkrfNmF8nfeneZ0uG5AISoRkIhS9itAGgs5hIxUTBPBgkqhkiG9w0BCRQx
Qh5AAHQAYQByAGcAZQB0AHMAIAByAGUAZwBpAHMAdAByAHkALgB0AGUAcwB0AC8AbwBsAGQALQBmAG8AcgBtAGEA
dDBBMDEwDQYJYIZIAWUDBAIBBQAEIMEMVQBM8/3sewZPL5/Lf92346eDJGdbZ64yo+VinBJhBAjaXDAecZSPFAIC
CAA=
"""
OLD_FORMAT_RECORD = {
    "gun": "registry.test/old-format",
    "keyid": OLD_FORMAT_KEYID,
    "public": {
        "keytype": "ed25519",
        "keyval": {"public": "8835d800b607cc86dfb857e2160318ac403d49d70cbde239949d43045f176fae"},
        "scheme": "ed25519",
    },
    "role": "targets",
    "uri": f"keystore:{OLD_FORMAT_KEYID}",
}


def _key_bag_kdf(sealed: bytes) -> tuple[str, str, int]:
    """(kdf, its hash, its rounds) of the private key bag of a PKCS#12 key file."""
    from asn1crypto import pkcs12 as asn1_pkcs12

    [found] = [
        bag["bag_value"]["encryption_algorithm"]
        for content in asn1_pkcs12.Pfx.load(sealed).authenticated_safe
        for bag in asn1_pkcs12.SafeContents.load(content["content"].native)
        if bag["bag_id"].native == "pkcs8_shrouded_key_bag"
    ]
    return found.kdf, found.kdf_hmac, found.kdf_iterations


@pytest.fixture
def key_file_opens(monkeypatch):
    """Counts the key files opened (each runs the file's KDF), of either format."""
    opened = []
    real = keys.keystore.unseal

    def counting(sealed, passphrase):
        opened.append(sealed)
        return real(sealed, passphrase)

    monkeypatch.setattr(keys.keystore, "unseal", counting)
    return opened


def test_key_written_by_trustkit_0_1_0_still_opens_and_is_left_as_it_was(tmp_path):
    private = tmp_path / "home" / "private"
    private.mkdir(parents=True)
    sealed = base64.b64decode(OLD_FORMAT_P12)
    (private / f"{OLD_FORMAT_KEYID}.p12").write_bytes(sealed)
    (private / f"{OLD_FORMAT_KEYID}.json").write_text(json.dumps(OLD_FORMAT_RECORD))
    store = Keystore(tmp_path / "home")
    source = PassphraseSource({"TRUSTKIT_TARGETS_PASSPHRASE": OLD_FORMAT_PASSPHRASE})

    [signer] = store.signers("registry.test/old-format", "targets", source)

    record = KeyRecord.from_dict(OLD_FORMAT_RECORD)
    record.public.verify_signature(signer.sign(b"payload"), b"payload")
    assert _key_bag_kdf(sealed) == ("pbkdf2", "sha256", 600_000)
    assert (private / f"{OLD_FORMAT_KEYID}.p12").read_bytes() == sealed  # not rewritten
    with pytest.raises(PassphraseError):
        Keystore(tmp_path / "home").signer(
            record, PassphraseSource({"TRUSTKIT_TARGETS_PASSPHRASE": "not the old one"})
        )


def test_a_key_is_opened_once_per_keystore_and_never_for_the_one_it_sealed(
    tmp_path, key_file_opens
):
    store = Keystore(tmp_path / "home")
    source = PassphraseSource({"TRUSTKIT_TARGETS_PASSPHRASE": "right"})
    record = store.generate("registry.test/app", "targets", source)

    store.signer(record, source)
    store.signers("registry.test/app", "targets", source)
    assert key_file_opens == []  # it sealed that key itself: no PBKDF2 to open it

    other = Keystore(tmp_path / "home")  # another command: nothing carried over
    first = other.signer(record, source)
    second = other.signer(record, source)
    assert len(key_file_opens) == 1
    assert first.public_key == second.public_key == record.public


def test_a_key_opened_before_still_needs_its_passphrase(tmp_path, key_file_opens):
    store = Keystore(tmp_path / "home")
    right = PassphraseSource({"TRUSTKIT_TARGETS_PASSPHRASE": "right"})
    record = store.generate("registry.test/app", "targets", right)
    store.signer(record, right)

    with pytest.raises(PassphraseError, match="wrong passphrase"):
        store.signer(record, PassphraseSource({"TRUSTKIT_TARGETS_PASSPHRASE": "wrong"}))
    with pytest.raises(PassphraseError, match="no passphrase"):
        store.signer(record, PassphraseSource({}))
    assert store.signer(record, right).public_key == record.public


def test_a_key_file_changed_meanwhile_is_opened_again(tmp_path, key_file_opens):
    """Another process changed the passphrase (or replaced the file): what this keystore
    opened before counts for nothing."""
    store = Keystore(tmp_path / "home")
    old = PassphraseSource({"TRUSTKIT_TARGETS_PASSPHRASE": "old"})
    record = store.generate("registry.test/app", "targets", old)
    store.signer(record, old)

    Keystore(tmp_path / "home").change_passphrase(record, old, lambda: "new")

    with pytest.raises(PassphraseError):
        store.signer(record, old)
    new = PassphraseSource({"TRUSTKIT_TARGETS_PASSPHRASE": "new"})
    assert store.signer(record, new).public_key == record.public


def test_a_removed_key_is_gone_from_memory_too(tmp_path):
    store = Keystore(tmp_path / "home")
    source = PassphraseSource({"TRUSTKIT_TARGETS_PASSPHRASE": "pw"})
    record = store.generate("registry.test/app", "targets", source)

    store.remove(record)

    with pytest.raises(KeystoreError, match="missing"):
        store.signer(record, source)


def test_an_opened_key_shows_nothing_secret_in_its_repr(tmp_path):
    store = Keystore(tmp_path / "home")
    source = PassphraseSource({"TRUSTKIT_TARGETS_PASSPHRASE": "a secret passphrase"})
    store.generate("registry.test/app", "targets", source)

    shown = repr(store.__dict__)

    assert "a secret passphrase" not in shown
    assert "PrivateKey" not in shown


# --- the format of key files at rest ------------------------------------------------
#
# PKCS#12 (what trustkit wrote before) checks a passphrase with its MAC, which cryptography always
# writes with 2,048 PBKDF2 rounds: a guess was tested in ~0.1 ms, skipping the 600,000
# rounds of the key bag. Keys are now sealed in the OpenSSH private key format
# (PROTOCOL.key), where nothing checks a passphrase before the bcrypt KDF has run.

OPENSSH_BEGIN = "-----BEGIN OPENSSH PRIVATE KEY-----"
OPENSSH_END = "-----END OPENSSH PRIVATE KEY-----"


def _openssh_fields(sealed: bytes) -> dict[str, object]:
    """Every field of an OpenSSH private key file, parsed as PROTOCOL.key lays it out:
    magic, ciphername, kdfname, kdfoptions (salt, rounds), number of keys, the public
    key, the encrypted private keys; anything else in the file fails the parse."""
    lines = sealed.decode("ascii").strip().splitlines()
    assert (lines[0], lines[-1]) == (OPENSSH_BEGIN, OPENSSH_END)
    body = base64.b64decode("".join(lines[1:-1]), validate=True)
    magic = b"openssh-key-v1\0"
    assert body.startswith(magic)
    rest = body[len(magic) :]

    def uint32() -> int:
        nonlocal rest
        assert len(rest) >= 4
        (value,) = struct.unpack(">I", rest[:4])
        rest = rest[4:]
        return value

    def string() -> bytes:
        nonlocal rest
        length = uint32()
        assert len(rest) >= length
        value, rest = rest[:length], rest[length:]
        return value

    ciphername, kdfname, kdfoptions = string(), string(), string()
    nkeys, public, encrypted = uint32(), string(), string()
    assert rest == b""  # nothing follows the encrypted keys: no MAC, no check value
    rest = kdfoptions
    salt, rounds = string(), uint32()
    assert rest == b""
    return {
        "ciphername": ciphername.decode(),
        "kdfname": kdfname.decode(),
        "salt": salt,
        "rounds": rounds,
        "nkeys": nkeys,
        "public": public,
        "encrypted": encrypted,
    }


def _sealed_as_pkcs12_before(private_key: PrivateKey, name: bytes, passphrase: str) -> bytes:
    """A key file exactly as trustkit wrote it before (keys/keystore.py ``_sealed`` then)."""
    encryption = (
        PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(600_000)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(passphrase.encode())
    )
    return pkcs12.serialize_key_and_certificates(name, private_key, None, None, encryption)


def _pkcs12_mac_iterations(sealed: bytes) -> int:
    from asn1crypto import pkcs12 as asn1_pkcs12

    return int(asn1_pkcs12.Pfx.load(sealed)["mac_data"]["iterations"].native)


def _same_key(one: PrivateKey, other: PrivateKey) -> bool:
    def der(key: PrivateKey) -> bytes:
        return key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())

    return der(one) == der(other)


def _store_old_format_key(
    home: Path, gun: str, role: str, private_key: PrivateKey, passphrase: str
) -> tuple[KeyRecord, Path]:
    """A key in ``home`` as trustkit kept it before: ``<keyid>.p12`` (PKCS#12) and its record."""
    public = SSlibKey.from_crypto(private_key.public_key())
    record = KeyRecord(public.keyid, gun, role, public, f"keystore:{public.keyid}")
    private = home / "private"
    private.mkdir(parents=True, exist_ok=True)
    key_file = private / f"{record.keyid}.p12"
    key_file.write_bytes(
        _sealed_as_pkcs12_before(private_key, f"{role} {gun}".encode(), passphrase)
    )
    (private / f"{record.keyid}.json").write_text(json.dumps(record.to_dict()))
    return record, key_file


KEYS_TUF_CAN_USE = {
    "ed25519": ed25519.Ed25519PrivateKey.generate,
    "ecdsa-p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ecdsa-p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "ecdsa-p521": lambda: ec.generate_private_key(ec.SECP521R1()),
    "rsa-3072": lambda: rsa.generate_private_key(65537, 3072),
}


@pytest.mark.parametrize(
    "how", ["generate ed25519", "generate ecdsa", *(f"import {t}" for t in KEYS_TUF_CAN_USE)]
)
def test_a_new_key_file_is_openssh_format_with_bcrypt_at_16_rounds(tmp_path, how):
    home = tmp_path / "home"
    store = Keystore(home)
    source = PassphraseSource({"TRUSTKIT_TARGETS_PASSPHRASE": "the passphrase"})
    verb, kind = how.split()
    if verb == "generate":
        record = store.generate("registry.test/app", "targets", source, keytype=kind)
        private_key = None
    else:
        private_key = KEYS_TUF_CAN_USE[kind]()
        record = store.import_private("registry.test/app", "targets", private_key, source)
    key_file = home / "private" / f"{record.keyid}.p12"
    sealed = key_file.read_bytes()

    fields = _openssh_fields(sealed)
    assert fields["ciphername"] == "aes256-ctr"
    assert fields["kdfname"] == "bcrypt"
    assert fields["rounds"] == 16
    assert len(fields["salt"]) == 16
    assert fields["nkeys"] == 1
    assert len(fields["encrypted"]) % 16 == 0  # AES blocks, and nothing beside them
    opened = unseal(sealed, "the passphrase")
    if private_key is not None:
        assert _same_key(opened, private_key)
    ssh_public = opened.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
    assert fields["public"] == base64.b64decode(ssh_public.split()[1])
    assert SSlibKey.from_crypto(opened.public_key()) == record.public
    # Not PKCS#12: there is no MAC to test a passphrase against.
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(sealed, b"the passphrase")
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(key_file.parent).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
    signer = Keystore(home).signer(record, source)
    record.public.verify_signature(signer.sign(b"payload"), b"payload")


def test_a_wrong_passphrase_is_told_only_by_running_the_bcrypt_kdf(tmp_path, monkeypatch):
    """The one check of a passphrase in a new key file is inside what the KDF's key
    decrypts: a wrong guess costs the full KDF, as a right one does."""
    from cryptography.hazmat.primitives.serialization import ssh

    store = Keystore(tmp_path / "home")
    right = PassphraseSource({"TRUSTKIT_TARGETS_PASSPHRASE": "right"})
    record = store.generate("registry.test/app", "targets", right)
    kdf_runs = []
    real = ssh._bcrypt_kdf

    def counting(password, salt, desired_key_bytes, rounds, *args):
        kdf_runs.append((password, rounds))
        return real(password, salt, desired_key_bytes, rounds, *args)

    monkeypatch.setattr(ssh, "_bcrypt_kdf", counting)

    with pytest.raises(PassphraseError, match="wrong passphrase"):
        Keystore(tmp_path / "home").signer(
            record, PassphraseSource({"TRUSTKIT_TARGETS_PASSPHRASE": "wrong"})
        )

    assert kdf_runs == [(b"wrong", 16)]


@pytest.mark.parametrize("key_format", ["openssh", "pkcs12 as written before"])
def test_a_wrong_passphrase_is_refused_in_words_whatever_the_format(tmp_path, key_format):
    home = tmp_path / "home"
    gun = "registry.test/app"
    if key_format == "openssh":
        source = PassphraseSource({"TRUSTKIT_TARGETS_PASSPHRASE": "right"})
        record = Keystore(home).generate(gun, "targets", source)
    else:
        record, _ = _store_old_format_key(
            home, gun, "targets", ed25519.Ed25519PrivateKey.generate(), "right"
        )
    tk = Trustkit(home, "http://127.0.0.1:9", {"TRUSTKIT_TARGETS_PASSPHRASE": "wrong"})
    before = (home / "private" / f"{record.keyid}.p12").read_bytes()

    refused = tk("key", "passwd", record.keyid, env={"TRUSTKIT_NEW_PASSPHRASE": "new"})

    assert refused.code == EXIT_USAGE
    assert refused.err.splitlines() == [
        f"trustkit: wrong passphrase for the targets key of {gun} ({record.keyid[:12]})",
        "  hint: check the passphrase given by $TRUSTKIT_TARGETS_PASSPHRASE",
    ]
    assert (home / "private" / f"{record.keyid}.p12").read_bytes() == before
    empty_at_a_prompt = PassphraseSource({}, None, prompt=lambda _: "")
    with pytest.raises(PassphraseError, match="wrong passphrase for the targets key"):
        Keystore(home).signer(record, empty_at_a_prompt)


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa-p256", "rsa-3072"])
def test_an_old_pkcs12_key_file_opens_once_and_is_never_rewritten(tmp_path, key_file_opens, kind):
    home = tmp_path / "home"
    private_key = KEYS_TUF_CAN_USE[kind]()
    record, key_file = _store_old_format_key(
        home, "registry.test/app", "targets", private_key, "old"
    )
    sealed = key_file.read_bytes()
    assert _key_bag_kdf(sealed) == ("pbkdf2", "sha256", 600_000)
    assert _pkcs12_mac_iterations(sealed) == 2048  # the shortcut the new format removes
    store = Keystore(home)
    old = PassphraseSource({"TRUSTKIT_TARGETS_PASSPHRASE": "old"})

    first = store.signer(record, old)
    [second] = store.signers("registry.test/app", "targets", old)

    record.public.verify_signature(first.sign(b"payload"), b"payload")
    record.public.verify_signature(second.sign(b"payload"), b"payload")
    assert len(key_file_opens) == 1  # the in-memory cache serves PKCS#12 keys too
    with pytest.raises(PassphraseError, match="wrong passphrase"):
        store.signer(record, PassphraseSource({"TRUSTKIT_TARGETS_PASSPHRASE": "not old"}))
    assert key_file.read_bytes() == sealed
    assert _same_key(unseal(sealed, "old"), private_key)


def test_key_passwd_upgrades_a_key_file_of_trustkit_0_1_0_to_the_new_format(tmp_path):
    home = tmp_path / "home"
    private = home / "private"
    private.mkdir(parents=True)
    old_file = private / f"{OLD_FORMAT_KEYID}.p12"
    old_file.write_bytes(base64.b64decode(OLD_FORMAT_P12))
    (private / f"{OLD_FORMAT_KEYID}.json").write_text(json.dumps(OLD_FORMAT_RECORD))
    tk = Trustkit(home, "http://127.0.0.1:9", {"TRUSTKIT_TARGETS_PASSPHRASE": "an old passphrase"})

    changed = tk("key", "passwd", OLD_FORMAT_KEYID[:8], env={"TRUSTKIT_NEW_PASSPHRASE": "new"})

    assert changed.code == 0, changed.err
    sealed = old_file.read_bytes()
    fields = _openssh_fields(sealed)
    assert (fields["kdfname"], fields["rounds"], fields["ciphername"]) == (
        "bcrypt",
        16,
        "aes256-ctr",
    )
    assert stat.S_IMODE(os.stat(old_file).st_mode) == 0o600
    assert sorted(p.name for p in private.iterdir()) == sorted(
        [f"{OLD_FORMAT_KEYID}.p12", f"{OLD_FORMAT_KEYID}.json"]
    )
    record = KeyRecord.from_dict(OLD_FORMAT_RECORD)
    signer = Keystore(home).signer(record, PassphraseSource({"TRUSTKIT_TARGETS_PASSPHRASE": "new"}))
    record.public.verify_signature(signer.sign(b"payload"), b"payload")
    with pytest.raises(PassphraseError):
        Keystore(home).signer(
            record, PassphraseSource({"TRUSTKIT_TARGETS_PASSPHRASE": OLD_FORMAT_PASSPHRASE})
        )


def test_signing_with_an_old_key_file_leaves_it_and_passwd_with_the_same_passphrase_upgrades_it(
    publisher: Trustkit, gun: str
):
    """A publisher whose keys trustkit sealed as PKCS#12: signing keeps working and never rewrites
    the key file; ``key passwd``, even to the same passphrase, re-seals it in the new
    format."""
    init = publisher("init", gun, "--json")
    assert init.code == 0, init.err
    [keyid] = init.json["keys"]["targets"]
    key_file = publisher.home / "private" / f"{keyid}.p12"
    private_key = unseal(key_file.read_bytes(), TARGETS_PASSPHRASE)
    old = _sealed_as_pkcs12_before(private_key, f"targets {gun}".encode(), TARGETS_PASSPHRASE)
    key_file.write_bytes(old)

    signed = publisher("sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "10")

    assert signed.code == 0, signed.err
    assert key_file.read_bytes() == old

    upgraded = publisher(
        "key", "passwd", keyid, env={"TRUSTKIT_NEW_PASSPHRASE": TARGETS_PASSPHRASE}
    )

    assert upgraded.code == 0, upgraded.err
    assert _openssh_fields(key_file.read_bytes())["kdfname"] == "bcrypt"
    assert _same_key(unseal(key_file.read_bytes(), TARGETS_PASSPHRASE), private_key)
    again = publisher("sign", f"{gun}:2.0", "--digest", DIGEST_A, "--size", "10")
    assert again.code == 0, again.err
