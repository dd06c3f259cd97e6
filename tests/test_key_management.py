"""Managing keys by hand, end to end through the CLI: a publisher exports a public key
for an auditor, imports a key made elsewhere, changes a passphrase, and removes a key;
a person at a terminal rotates a key and is asked for a passphrase of its own."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_public_key,
)
from securesystemslib.signer import SSlibKey

from keys.keystore import OPENSSH_PEM_BEGIN, KeyRecord, Keystore, PrivateKey, unseal
from keys.passphrase import PassphraseSource
from tests.support.harness import (
    DIGEST_A,
    ROOT_PASSPHRASE,
    TARGETS_PASSPHRASE,
    ServerProcess,
    Trustkit,
)
from tests.support.terminal import run_on_terminal
from trustkit.errors import PassphraseError

PEM_PASSPHRASE = "passphrase of the exported pem"
NEW_PASSPHRASE = "brand new targets passphrase"


# --- helpers ------------------------------------------------------------------------


def _init(tk: Trustkit, gun: str, *extra: str) -> dict[str, str]:
    """``trustkit init``; returns the root and targets key ids."""
    result = tk("init", gun, *extra, "--json")
    assert result.code == 0, result.err
    return {role: ids[0] for role, ids in result.json["keys"].items()}


def _record(tk: Trustkit, keyid: str) -> KeyRecord:
    [record] = [r for r in Keystore(tk.home).records() if r.keyid == keyid]
    return record


def _private_key(tk: Trustkit, keyid: str, passphrase: str) -> PrivateKey:
    """The private key as kept in ``tk``'s keystore, opened with ``passphrase``."""
    record = _record(tk, keyid)
    variable = (
        "TRUSTKIT_ROOT_PASSPHRASE" if record.role == "root" else "TRUSTKIT_TARGETS_PASSPHRASE"
    )
    return Keystore(tk.home)._load_private(record, PassphraseSource({variable: passphrase}))


def _secrets_of(private_key: PrivateKey) -> list[str]:
    """Every form in which the private half could leak into text."""
    der = private_key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    found = ["PRIVATE KEY", der.hex()[-64:], base64.b64encode(der).decode()[-40:]]
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        raw = private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        found += [raw.hex(), base64.b64encode(raw).decode()]
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        found.append(f"{private_key.private_numbers().private_value:064x}")
    return found


def _encrypted_pem(path: Path, private_key: PrivateKey, passphrase: str = PEM_PASSPHRASE) -> Path:
    path.write_bytes(
        private_key.private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(passphrase.encode())
        )
    )
    return path


def _keystore_files(tk: Trustkit) -> dict[str, bytes]:
    if not tk.home.exists():
        return {}
    return {str(p.relative_to(tk.home)): p.read_bytes() for p in tk.home.rglob("*") if p.is_file()}


def _listed(tk: Trustkit) -> list[str]:
    result = tk("key", "list", "--json")
    assert result.code == 0, result.err
    return [key["keyid"] for key in result.json["keys"]]


def _one_error_line(err: str, expected: str) -> None:
    """A usage error is one ``trustkit:`` line (and maybe a hint), never a traceback."""
    assert "Traceback" not in err
    first, *rest = err.strip().splitlines()
    assert first.startswith("trustkit: ") and expected in first, err
    assert all(line.strip().startswith("hint:") for line in rest), err


def _terminal_env(tk: Trustkit, *without: str) -> dict[str, str]:
    env = tk.environment()
    for variable in without:
        env.pop(variable, None)
    return env


def _signs(tk: Trustkit, gun: str, tag: str, env: dict[str, str] | None = None) -> None:
    result = tk("sign", f"{gun}:{tag}", "--digest", DIGEST_A, "--size", "100", env=env)
    assert result.code == 0, result.err


def _verifies(host: Trustkit, gun: str, tag: str) -> None:
    result = host("verify", f"{gun}:{tag}", "--offline")
    assert result.code == 0, result.err
    assert result.out.strip() == DIGEST_A


# --- export -------------------------------------------------------------------------


@pytest.mark.parametrize("keytype", ["ed25519", "ecdsa"])
def test_export_prints_the_public_key_that_matches_its_key_id(
    keytype: str, publisher: Trustkit, gun: str, tmp_path: Path
):
    """An auditor gets the public keys as PEM, which any tool reads and whose TUF key id
    is the one trustkit shows; nothing private is ever printed."""
    keys = _init(publisher, gun, "--key-type", keytype)
    scheme = "ed25519" if keytype == "ed25519" else "ecdsa-sha2-nistp256"

    for role, keyid in keys.items():
        passphrase = ROOT_PASSPHRASE if role == "root" else TARGETS_PASSPHRASE
        secrets = _secrets_of(_private_key(publisher, keyid, passphrase))
        secrets += [ROOT_PASSPHRASE, TARGETS_PASSPHRASE]
        out_file = tmp_path / f"{role}.pem"

        printed = publisher("key", "export", keyid[:8])
        written = publisher("key", "export", keyid, "--out", str(out_file))
        as_json = publisher("key", "export", keyid, "--json")

        for result in (printed, written, as_json):
            assert result.code == 0, result.err
            for secret in secrets:
                assert secret.lower() not in (result.out + result.err).lower()
        loaded = load_pem_public_key(printed.out.encode())
        assert isinstance(
            loaded, ed25519.Ed25519PublicKey if keytype == "ed25519" else ec.EllipticCurvePublicKey
        )
        from_pem = SSlibKey.from_crypto(loaded)
        assert from_pem.keyid == keyid
        assert from_pem.scheme == scheme
        assert from_pem == _record(publisher, keyid).public
        assert out_file.read_text().strip() == printed.out.strip()
        assert str(out_file) in written.out and "-----BEGIN" not in written.out
        assert as_json.json["keyid"] == keyid and as_json.json["role"] == role
        assert as_json.json["public_pem"].strip() == printed.out.strip()
        assert "PRIVATE" not in out_file.read_text()


def test_export_of_an_unknown_short_or_ambiguous_key_id_is_a_usage_error(
    publisher: Trustkit, gun: str, tmp_path: Path
):
    keys = _init(publisher, gun)
    keyid = keys["targets"]
    # A second record whose id shares the first 10 characters with the targets key.
    twin = keyid[:10] + ("1" if keyid[10] == "0" else "0") + keyid[11:]
    record = json.loads((publisher.home / "private" / f"{keyid}.json").read_text())
    record["keyid"] = twin
    (publisher.home / "private" / f"{twin}.json").write_text(json.dumps(record))
    unknown = next(
        c * 8 for c in "0123456789abcdef" if not any(k.startswith(c) for k in keys.values())
    )
    out_file = tmp_path / "never.pem"

    missing = publisher("key", "export", unknown)
    short = publisher("key", "export", keyid[:7])
    ambiguous = publisher("key", "export", keyid[:10], "--out", str(out_file))
    exact = publisher("key", "export", keyid)

    assert missing.code == 2
    _one_error_line(missing.err, f"no key {unknown} in the keystore")
    assert short.code == 2
    _one_error_line(short.err, f"'{keyid[:7]}' is too short to name a key")
    assert ambiguous.code == 2
    _one_error_line(ambiguous.err, f"'{keyid[:10]}' names several keys")
    assert not out_file.exists()
    assert missing.out == short.out == ambiguous.out == ""
    assert exact.code == 0, exact.err  # the whole id still names one key
    assert SSlibKey.from_crypto(load_pem_public_key(exact.out.encode())).keyid == keyid


# --- import -------------------------------------------------------------------------


def test_imported_key_is_kept_encrypted_and_signs_but_a_key_root_does_not_list_is_refused(
    publisher: Trustkit, host: Trustkit, gun: str, tmp_path: Path
):
    """The targets key was removed by mistake; importing some other key as targets puts
    it in the keystore, encrypted, and sign uses it, but the server refuses what it signs
    because the root does not list that key."""
    keys = _init(publisher, gun)
    assert publisher("key", "remove", keys["targets"], "--yes").code == 0
    outside = ed25519.Ed25519PrivateKey.generate()
    keyid = SSlibKey.from_crypto(outside.public_key()).keyid
    pem = _encrypted_pem(tmp_path / "outside.pem", outside)

    imported = publisher(
        "key",
        "import",
        str(pem),
        "--repository",
        gun,
        "--role",
        "targets",
        env={"TRUSTKIT_IMPORT_PASSPHRASE": PEM_PASSPHRASE},
    )

    assert imported.code == 0, imported.err
    assert f"imported the targets key of {gun} ({keyid[:12]})" in imported.out
    assert keyid in _listed(publisher)
    private_dir = publisher.home / "private"
    sealed_path, record_path = private_dir / f"{keyid}.p12", private_dir / f"{keyid}.json"
    assert stat.S_IMODE(os.stat(private_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(sealed_path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(record_path).st_mode) == 0o600
    sealed = sealed_path.read_bytes()
    raw = outside.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    der = outside.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    assert raw not in sealed and der not in sealed
    assert sealed.startswith(OPENSSH_PEM_BEGIN)  # sealed in the current format
    for wrong in (PEM_PASSPHRASE, ""):
        with pytest.raises(ValueError):
            unseal(sealed, wrong)
    opened = unseal(sealed, TARGETS_PASSPHRASE)
    assert isinstance(opened, ed25519.Ed25519PrivateKey)
    assert opened.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()) == raw
    assert json.loads(record_path.read_text())["role"] == "targets"
    record = _record(publisher, keyid)
    signer = Keystore(publisher.home).signer(
        record, PassphraseSource({"TRUSTKIT_TARGETS_PASSPHRASE": TARGETS_PASSPHRASE})
    )
    record.public.verify_signature(signer.sign(b"payload"), b"payload")

    signed = publisher("sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "100")

    # The key is not one root lists for targets: trustkit refuses before any upload.
    assert signed.code == 2, signed.err
    assert f"this keystore holds no key that may sign 1.0 in {gun}" in signed.err
    assert host("verify", f"{gun}:1.0", "--offline").code == 1  # nothing was published


@pytest.mark.parametrize(
    "make",
    [
        ed25519.Ed25519PrivateKey.generate,
        lambda: ec.generate_private_key(ec.SECP256R1()),
        lambda: ec.generate_private_key(ec.SECP384R1()),
        lambda: ec.generate_private_key(ec.SECP521R1()),
        lambda: rsa.generate_private_key(65537, 3072),
    ],
    ids=["ed25519", "ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "rsa-3072"],
)
def test_every_key_type_import_takes_is_sealed_in_the_openssh_format_and_exports_as_given(
    make: Any, publisher: Trustkit, gun: str, tmp_path: Path
):
    outside = make()
    pem = _encrypted_pem(tmp_path / "outside.pem", outside)
    keyid = SSlibKey.from_crypto(outside.public_key()).keyid

    imported = publisher(
        "key",
        "import",
        str(pem),
        "--repository",
        gun,
        "--role",
        "targets",
        env={"TRUSTKIT_IMPORT_PASSPHRASE": PEM_PASSPHRASE},
    )
    exported = publisher("key", "export", keyid)

    assert imported.code == 0, imported.err
    sealed = (publisher.home / "private" / f"{keyid}.p12").read_bytes()
    assert sealed.startswith(OPENSSH_PEM_BEGIN)
    opened = unseal(sealed, TARGETS_PASSPHRASE)
    as_der = (Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    assert opened.private_bytes(*as_der) == outside.private_bytes(*as_der)
    assert exported.code == 0, exported.err
    assert (
        exported.out.strip()
        == outside.public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        .decode()
        .strip()
    )
    record = _record(publisher, keyid)
    signer = Keystore(publisher.home).signer(
        record, PassphraseSource({"TRUSTKIT_TARGETS_PASSPHRASE": TARGETS_PASSPHRASE})
    )
    record.public.verify_signature(signer.sign(b"payload"), b"payload")


def test_original_targets_key_imported_into_another_keystore_signs_for_hosts(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    """The release machine is replaced: its targets key, exported as an encrypted PEM,
    is imported on the new machine under a passphrase of its own, and what the new
    machine signs is verified by hosts."""
    keys = _init(publisher, gun)
    original = _private_key(publisher, keys["targets"], TARGETS_PASSPHRASE)
    pem = _encrypted_pem(tmp_path / "targets.pem", original)
    other = Trustkit(
        tmp_path / "new-machine" / ".trustkit",
        server.url,
        {"TRUSTKIT_TARGETS_PASSPHRASE": "the new machine's passphrase"},
    )

    imported = other(
        "key",
        "import",
        str(pem),
        "--repository",
        gun,
        "--role",
        "targets",
        env={"TRUSTKIT_IMPORT_PASSPHRASE": PEM_PASSPHRASE},
    )

    assert imported.code == 0, imported.err
    assert _listed(other) == [keys["targets"]]
    assert stat.S_IMODE(os.stat(other.home).st_mode) == 0o700
    with pytest.raises(PassphraseError):
        _private_key(other, keys["targets"], TARGETS_PASSPHRASE)  # A's passphrase: no
    _signs(other, gun, "1.0")
    _verifies(host, gun, "1.0")


def test_import_with_a_wrong_passphrase_or_of_no_key_writes_nothing(
    publisher: Trustkit, gun: str, tmp_path: Path
):
    pem = _encrypted_pem(tmp_path / "key.pem", ed25519.Ed25519PrivateKey.generate())
    not_a_key = tmp_path / "notes.txt"
    not_a_key.write_text(
        "-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n"
    )
    public_only = tmp_path / "public.pem"
    public_only.write_bytes(
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )

    odd_curve = tmp_path / "secp256k1.pem"
    odd_curve.write_bytes(
        ec.generate_private_key(ec.SECP256K1()).private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        )
    )

    def importing(path: Path, passphrase: str | None = PEM_PASSPHRASE) -> tuple[int, str]:
        env = {"TRUSTKIT_IMPORT_PASSPHRASE": passphrase} if passphrase else {}
        result = publisher(
            "key", "import", str(path), "--repository", gun, "--role", "targets", env=env
        )
        return result.code, result.err

    outcomes = {
        "wrong passphrase": importing(pem, "not the pem passphrase"),
        "no passphrase": importing(pem, None),
        "not a key": importing(not_a_key),
        "public key": importing(public_only),
        "missing file": importing(tmp_path / "absent.pem"),
        "curve TUF cannot use": importing(odd_curve),
    }

    for what, (code, err) in outcomes.items():
        assert code == 2, (what, err)
        assert "Traceback" not in err, (what, err)
    _one_error_line(outcomes["wrong passphrase"][1], f"cannot read a private key from {pem}")
    assert "TRUSTKIT_IMPORT_PASSPHRASE" in outcomes["no passphrase"][1]
    _one_error_line(outcomes["not a key"][1], f"cannot read a private key from {not_a_key}")
    _one_error_line(outcomes["public key"][1], f"cannot read a private key from {public_only}")
    _one_error_line(outcomes["missing file"][1], "cannot read")
    _one_error_line(outcomes["curve TUF cannot use"][1], "unsupported curve 'secp256k1'")
    assert _keystore_files(publisher) == {}


def test_importing_a_key_the_keystore_already_holds_is_refused(
    publisher: Trustkit, gun: str, tmp_path: Path
):
    keys = _init(publisher, gun)
    pem = _encrypted_pem(
        tmp_path / "targets.pem", _private_key(publisher, keys["targets"], TARGETS_PASSPHRASE)
    )
    before = _keystore_files(publisher)

    again = publisher(
        "key",
        "import",
        str(pem),
        "--repository",
        gun,
        "--role",
        "root",
        env={"TRUSTKIT_IMPORT_PASSPHRASE": PEM_PASSPHRASE},
    )

    assert again.code == 2
    _one_error_line(again.err, f"already holds the key {keys['targets'][:12]}")
    assert _keystore_files(publisher) == before


# --- passwd -------------------------------------------------------------------------


def test_after_passwd_only_the_new_passphrase_opens_the_key(publisher: Trustkit, gun: str):
    keys = _init(publisher, gun)
    sealed_path = publisher.home / "private" / f"{keys['targets']}.p12"
    before = sealed_path.read_bytes()

    changed = publisher(
        "key", "passwd", keys["targets"][:8], env={"TRUSTKIT_NEW_PASSPHRASE": NEW_PASSPHRASE}
    )

    assert changed.code == 0, changed.err
    assert f"changed the passphrase of the targets key of {gun}" in changed.out
    for secret in (NEW_PASSPHRASE, TARGETS_PASSPHRASE):
        assert secret not in changed.out + changed.err
    assert sealed_path.read_bytes() != before
    assert stat.S_IMODE(os.stat(sealed_path).st_mode) == 0o600
    assert not [p.name for p in sealed_path.parent.iterdir() if p.name.endswith(".tmp")]

    with_old = publisher("sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "100")
    assert with_old.code == 2
    assert "wrong passphrase for the targets key" in with_old.err
    _signs(publisher, gun, "1.0", env={"TRUSTKIT_TARGETS_PASSPHRASE": NEW_PASSPHRASE})


def test_passwd_with_a_wrong_old_passphrase_leaves_the_key_file_untouched(
    publisher: Trustkit, gun: str
):
    keys = _init(publisher, gun)
    before = _keystore_files(publisher)

    result = publisher(
        "key",
        "passwd",
        keys["targets"],
        env={
            "TRUSTKIT_TARGETS_PASSPHRASE": "not the targets passphrase",
            "TRUSTKIT_NEW_PASSPHRASE": NEW_PASSPHRASE,
        },
    )

    assert result.code == 2
    _one_error_line(result.err, "wrong passphrase for the targets key")
    assert _keystore_files(publisher) == before
    _signs(publisher, gun, "1.0")  # the old passphrase still works


def test_passwd_at_a_terminal_asks_the_new_passphrase_twice(publisher: Trustkit, gun: str):
    keys = _init(publisher, gun)

    code, screen = run_on_terminal(
        ["key", "passwd", keys["targets"]],
        _terminal_env(publisher),
        {
            "New passphrase for the targets key": "typed new secret",
            "Repeat the new passphrase for the targets key": "typed new secret",
        },
    )

    assert code == 0, screen
    assert screen.count("New passphrase for the targets key") == 1
    assert screen.count("Repeat the new passphrase for the targets key") == 1
    assert "secret" not in screen  # typed, never echoed
    assert _private_key(publisher, keys["targets"], "typed new secret")
    with pytest.raises(PassphraseError):
        _private_key(publisher, keys["targets"], TARGETS_PASSPHRASE)


def test_passwd_at_a_terminal_with_a_mistyped_repeat_changes_nothing(publisher: Trustkit, gun: str):
    keys = _init(publisher, gun)
    before = _keystore_files(publisher)

    code, screen = run_on_terminal(
        ["key", "passwd", keys["targets"]],
        _terminal_env(publisher),
        {
            "New passphrase for the targets key": "one thing",
            "Repeat the new passphrase for the targets key": "another",
        },
    )

    assert code == 2, screen
    assert "the two passphrases differ; nothing was changed" in screen
    assert _keystore_files(publisher) == before


# --- rotation at a terminal ---------------------------------------------------------


def test_root_rotation_at_a_terminal_asks_a_passphrase_for_the_new_key(
    publisher: Trustkit, gun: str
):
    """The old root key's passphrase is asked once; the new key gets a passphrase of its
    own, asked twice: it does not silently reuse the old one."""
    keys = _init(publisher, gun)

    code, screen = run_on_terminal(
        ["key", "rotate", gun, "root"],
        _terminal_env(publisher, "TRUSTKIT_ROOT_PASSPHRASE"),
        {
            "Passphrase for the root key": ROOT_PASSPHRASE,
            "New passphrase for the new root key": "rotated root secret",
            "Repeat the passphrase for the new root key": "rotated root secret",
        },
    )

    assert code == 0, screen
    assert screen.count("Passphrase for the root key") == 1
    assert screen.count("New passphrase for the new root key") == 1
    assert screen.count("Repeat the passphrase for the new root key") == 1
    assert "secret" not in screen
    [new] = Keystore(publisher.home).find(gun, "root")
    assert new.keyid != keys["root"]
    assert not (publisher.home / "private" / f"{keys['root']}.p12").exists()
    assert _private_key(publisher, new.keyid, "rotated root secret")
    with pytest.raises(PassphraseError):
        _private_key(publisher, new.keyid, ROOT_PASSPHRASE)


def test_prompted_passphrases_are_remembered_per_key_not_per_role():
    """At a prompt each key has its own passphrase; from the environment, one per role."""
    asked: list[str] = []
    answers = iter(["old", "fresh", "fresh"])

    def prompt(text: str) -> str:
        asked.append(text)
        return next(answers)

    source = PassphraseSource({}, None, prompt=prompt)

    assert source.get("root", "root key of g (aaaa)") == "old"
    assert source.get("root", "new root key of g (bbbb)", new=True) == "fresh"
    assert source.get("root", "root key of g (bbbb)") == "fresh"  # the new key: no prompt
    assert source.get("root", "root key of g (aaaa)") == "old"
    assert asked == [
        "Passphrase for the root key of g (aaaa): ",
        "New passphrase for the new root key of g (bbbb): ",
        "Repeat the passphrase for the new root key of g (bbbb): ",
    ]
    from_env = PassphraseSource({"TRUSTKIT_ROOT_PASSPHRASE": "env"}, None, prompt=prompt)
    assert from_env.get("root", "new root key of g (cccc)", new=True) == "env"
    assert len(asked) == 3


# --- remove -------------------------------------------------------------------------


def test_remove_needs_yes_and_then_deletes_both_files(publisher: Trustkit, gun: str):
    keys = _init(publisher, gun)
    private_dir = publisher.home / "private"
    files = [private_dir / f"{keys['targets']}.{ext}" for ext in ("p12", "json")]

    unconfirmed = publisher("key", "remove", keys["targets"][:8])

    assert unconfirmed.code == 2
    _one_error_line(unconfirmed.err, "deletes its private key from this keystore for good")
    assert "--yes" in unconfirmed.err
    assert all(path.exists() for path in files)
    assert keys["targets"] in _listed(publisher)

    confirmed = publisher("key", "remove", keys["targets"][:8], "--yes")

    assert confirmed.code == 0, confirmed.err
    assert f"removed the targets key of {gun}" in confirmed.out
    assert not any(path.exists() for path in files)
    assert _listed(publisher) == [keys["root"]]
    listing = publisher("key", "list")
    assert keys["targets"][:12] not in listing.out and keys["root"][:12] in listing.out
    assert publisher("key", "remove", keys["targets"], "--yes").code == 2  # gone for good
