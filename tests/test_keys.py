"""Key custody: encrypted keys, passphrase sources, and the server's sealed online keys."""

from __future__ import annotations

import os
import sqlite3
import stat

import httpx
import pytest

from keys.keystore import Keystore
from keys.passphrase import PassphraseSource
from server.master_key import MasterKey
from trustkit.errors import KeystoreError, PassphraseError, UsageError


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
    import json

    from securesystemslib.signer import CryptoSigner

    from keys.keystore import KeyRecord

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
    """Counts the key files opened (each runs the file's PBKDF2 rounds)."""
    from cryptography.hazmat.primitives.serialization import pkcs12

    opened = []
    real = pkcs12.load_key_and_certificates

    def counting(data, password, *args):
        opened.append(data)
        return real(data, password, *args)

    monkeypatch.setattr(pkcs12, "load_key_and_certificates", counting)
    return opened


def test_key_written_by_trustkit_0_1_0_still_opens_and_is_left_as_it_was(tmp_path):
    import base64
    import json

    from keys.keystore import KeyRecord

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


def test_new_keys_are_sealed_with_600000_pbkdf2_rounds(tmp_path):
    store = Keystore(tmp_path / "home")
    record = store.generate(
        "registry.test/app", "root", PassphraseSource({"TRUSTKIT_ROOT_PASSPHRASE": "pw"})
    )

    sealed = (tmp_path / "home" / "private" / f"{record.keyid}.p12").read_bytes()
    assert _key_bag_kdf(sealed) == ("pbkdf2", "sha256", 600_000)


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
