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
from trustkit.errors import PassphraseError, UsageError


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
