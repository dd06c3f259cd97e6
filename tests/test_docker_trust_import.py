"""Keys of Notary / Docker Content Trust, made by the real ``notary`` CLI, imported into
trustkit's keystore: re-encrypted under trustkit's passphrases, mapped to their roles,
and all or nothing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from asn1crypto import core as asn1_core
from asn1crypto import keys as asn1_keys
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from keys.docker_trust import DockerTrustKey, open_docker_trust_key
from keys.keystore import Keystore, public_pem
from tests.support.harness import Trustkit

NOTARY_PASSPHRASES = {
    "NOTARY_ROOT_PASSPHRASE": "notary root passphrase",
    "NOTARY_TARGETS_PASSPHRASE": "notary targets passphrase",
    "NOTARY_SNAPSHOT_PASSPHRASE": "notary snapshot passphrase",
}
TRUSTKIT_PASSPHRASES = {
    "TRUSTKIT_ROOT_PASSPHRASE": "trustkit root",
    "TRUSTKIT_TARGETS_PASSPHRASE": "trustkit targets",
    "TRUSTKIT_SNAPSHOT_PASSPHRASE": "trustkit snapshot",
}
APP = "registry.test/team/app"
WEB = "registry.test/team/web"


def _docker_trust_dir(tmp_path: Path) -> Path:
    """A trust dir as `docker trust` leaves it: one root key, and targets and snapshot
    keys for two repositories (notary makes them before it needs a server)."""
    trust = tmp_path / "docker-trust"
    for gun in (APP, WEB):
        done = subprocess.run(
            ["notary", "-d", str(trust), "-s", "https://127.0.0.1:9", "init", gun],
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **NOTARY_PASSPHRASES},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert "client is offline" in done.stderr + done.stdout  # keys made, not published
    assert len(list((trust / "private").glob("*.key"))) == 5
    return trust


def _notary_public_keys(trust: Path) -> dict[tuple[str, str | None], bytes]:
    """(role, gun) -> public key PEM, read from Notary's files by openssl: another
    implementation than the one under test."""
    keys = {}
    for path in (trust / "private").glob("*.key"):
        lines = path.read_text().splitlines()
        headers = dict(line.split(": ", 1) for line in lines if ": " in line)
        pem = "\n".join(line for line in lines if line and ": " not in line) + "\n"
        variable = f"NOTARY_{headers['role'].upper()}_PASSPHRASE"
        done = subprocess.run(
            ["openssl", "pkey", "-pubout", "-passin", f"pass:{NOTARY_PASSPHRASES[variable]}"],
            input=pem.encode(),
            capture_output=True,
            timeout=30,
            check=True,
        )
        keys[(headers["role"], headers.get("gun"))] = done.stdout
    return keys


def _notary_key_ids(trust: Path) -> set[str]:
    """The key ids ``notary key list`` prints for the trust dir."""
    listed = subprocess.run(
        ["notary", "-d", str(trust), "key", "list"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(trust.parent)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return {word for line in listed.splitlines() for word in line.split() if len(word) == 64}


def _trustkit(tmp_path: Path, **extra: str) -> Trustkit:
    env = {**NOTARY_PASSPHRASES, **TRUSTKIT_PASSPHRASES, **extra}
    return Trustkit(tmp_path / "trustkit" / ".trustkit", "http://127.0.0.1:9", env)


def test_every_notary_key_is_imported_under_its_role_and_trustkit_s_passphrase(
    tmp_path: Path,
):
    trust = _docker_trust_dir(tmp_path)
    tk = _trustkit(tmp_path)
    result = tk("key", "import", "--from-docker-trust", str(trust), "--json")
    assert result.code == 0, result.err
    imported = {(r["role"], r["repository"]) for r in result.json["imported"]}
    # Snapshot keys stay behind: the trustkit server signs snapshot.
    assert imported == {("root", "*"), ("targets", APP), ("targets", WEB)}
    assert {(r["role"], r["repository"]) for r in result.json["skipped"]} == {
        ("snapshot", APP),
        ("snapshot", WEB),
    }
    # Each key's Notary id (what `notary key list` shows) beside trustkit's.
    assert {r["notary_keyid"] for r in result.json["imported"] + result.json["skipped"]} == (
        _notary_key_ids(trust)
    )
    keystore = Keystore(tk.home)
    expected = _notary_public_keys(trust)
    for record in keystore.records():
        gun = None if record.role == "root" else record.gun
        assert public_pem(record.public) == expected[(record.role, gun)]
        sealed = (tk.home / "private" / f"{record.keyid}.p12").read_bytes()
        for notary_passphrase in NOTARY_PASSPHRASES.values():
            assert notary_passphrase.encode() not in sealed
    # Opened with trustkit's passphrase now, not Notary's.
    from keys.passphrase import PassphraseSource

    [targets] = keystore.find(APP, "targets")
    keystore.signer(targets, PassphraseSource(TRUSTKIT_PASSPHRASES)).sign(b"x")

    again = tk("key", "import", "--from-docker-trust", str(trust), "--json")
    assert again.code == 0, again.err
    assert again.json["imported"] == [] and again.json["already_here"] == 3


def test_with_a_repository_only_its_keys_and_the_root_key_come(tmp_path: Path):
    trust = _docker_trust_dir(tmp_path)
    tk = _trustkit(tmp_path)
    result = tk("key", "import", "--from-docker-trust", str(trust), "--repository", APP, "--json")
    assert result.code == 0, result.err
    assert {(r["role"], r["repository"]) for r in result.json["imported"]} == {
        ("root", APP),
        ("targets", APP),
    }


def test_snapshot_keys_need_no_passphrase_of_trustkit_s(tmp_path: Path):
    trust = _docker_trust_dir(tmp_path)
    tk = _trustkit(tmp_path, TRUSTKIT_SNAPSHOT_PASSPHRASE="")

    result = tk("key", "import", "--from-docker-trust", str(trust), "--repository", APP)

    assert result.code == 0, result.err
    assert "left out the snapshot key of registry.test/team/app" in result.out
    assert {record.role for record in Keystore(tk.home).records()} == {"root", "targets"}


def test_a_signer_s_trust_dir_with_only_a_delegation_key_imports_it_as_that_signer(
    tmp_path: Path,
):
    """On a signer's machine Notary holds just the delegation key (no repository in its
    file): it becomes signer ``releases`` of the repository the import names."""
    trust = tmp_path / "signer-trust"
    key = ec.generate_private_key(ec.SECP256R1())
    notary = {"NOTARY_DELEGATION_PASSPHRASE": "signer notary passphrase"}
    pem = tmp_path / "releases.pem"
    pem.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    done = subprocess.run(
        ["notary", "-d", str(trust), "key", "import", str(pem), "--role", "targets/releases"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **notary},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    [key_file] = (trust / "private").glob("*.key")
    assert "gun:" not in key_file.read_text()
    tk = _trustkit(tmp_path, **notary, TRUSTKIT_DELEGATION_PASSPHRASE="trustkit signer")

    result = tk("key", "import", "--from-docker-trust", str(trust), "--repository", APP, "--json")

    assert result.code == 0, result.err
    [imported] = result.json["imported"]
    assert (imported["role"], imported["repository"]) == ("releases", APP)
    assert imported["notary_keyid"] == key_file.stem
    [record] = Keystore(tk.home).records()
    assert (record.role, record.gun) == ("releases", APP)


def test_a_wrong_passphrase_or_an_unknown_repository_writes_nothing(tmp_path: Path):
    trust = _docker_trust_dir(tmp_path)
    wrong = _trustkit(tmp_path, NOTARY_TARGETS_PASSPHRASE="not it")
    result = wrong("key", "import", "--from-docker-trust", str(trust))
    assert result.code == 2
    assert "wrong passphrase for the targets key" in result.err
    assert "NOTARY_TARGETS_PASSPHRASE" in result.err
    assert "Traceback" not in result.err
    assert Keystore(wrong.home).records() == []

    unknown = _trustkit(tmp_path)("key", "import", "--from-docker-trust", str(trust),
                                  "--repository", "registry.test/nobody/here")  # fmt: skip
    assert unknown.code == 2
    assert "holds no key of registry.test/nobody/here" in unknown.err
    assert APP in unknown.err and WEB in unknown.err
    assert Keystore(wrong.home).records() == []
    missing = _trustkit(tmp_path)("key", "import", "--from-docker-trust", str(tmp_path / "no"))
    assert missing.code == 2 and "has no private/ folder" in missing.err


def _notary_shaped(private: ec.EllipticCurvePrivateKey, passphrase: str) -> bytes:
    """A key as Notary writes it: PKCS#8 marked version 1 (with no public key), in a
    PBES2 envelope of PBKDF2-HMAC-SHA256 and AES-256-CBC."""
    plain = private.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    info = asn1_keys.PrivateKeyInfo.load(plain)
    info["version"] = 1
    salt, iv = os.urandom(16), os.urandom(16)
    key = PBKDF2HMAC(hashes.SHA256(), 32, salt, 10_000).derive(passphrase.encode())
    padder = padding.PKCS7(128).padder()
    padded = padder.update(info.dump()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return asn1_keys.EncryptedPrivateKeyInfo(
        {
            "encryption_algorithm": {
                "algorithm": "pbes2",
                "parameters": {
                    "key_derivation_func": {
                        "algorithm": "pbkdf2",
                        "parameters": {
                            "salt": asn1_core.OctetString(salt),
                            "iteration_count": 10_000,
                            "prf": {"algorithm": "sha256"},
                        },
                    },
                    "encryption_scheme": {"algorithm": "aes256_cbc", "parameters": iv},
                },
            },
            "encrypted_data": encryptor.update(padded) + encryptor.finalize(),
        }
    ).dump()


def test_a_notary_ec_key_whose_scalar_starts_with_a_zero_byte_opens(tmp_path: Path) -> None:
    """One EC key in 256 has a private scalar shorter than 32 bytes; its fixed-length
    encoding starts with zero, which re-encoding the key would drop."""
    private = next(
        key
        for key in (ec.generate_private_key(ec.SECP256R1()) for _ in range(20_000))
        if key.private_numbers().private_value < 2**248
    )
    key = DockerTrustKey(tmp_path / "k.key", "root", None, _notary_shaped(private, "pw"))
    opened = open_docker_trust_key(key, "pw")
    assert isinstance(opened, ec.EllipticCurvePrivateKey)
    assert opened.private_numbers() == private.private_numbers()
