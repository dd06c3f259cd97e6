"""A root key that lives in a PKCS#11 token (SoftHSM here) and never leaves it: imported
as a keystore record (public key and ``hsm:`` URI only), made the repository's only root
key by a rotation, and used to sign later roots with the PIN from the environment.

The trustkit commands that open the token run as real processes: PKCS#11 modules read
their configuration (``SOFTHSM2_CONF``) and securesystemslib its module (``PYKCS11LIB``)
from the process environment.

The token's user PIN differs from the root passphrase, as it would in life: the rotation
onto the token signs with the old root key (a keystore file, ``TRUSTKIT_ROOT_PASSPHRASE``)
and the token key (``TRUSTKIT_HSM_PIN``) at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from securesystemslib.signer import Key
from tuf.api.metadata import Root

from tests.support.harness import (
    DIGEST_A,
    DIGEST_B,
    ROOT_PASSPHRASE,
    ServerProcess,
    Trustkit,
    assert_verifies,
    sign_many,
)
from tests.support.server_side import served_metadata, served_version

SOFTHSM_MODULES = [
    Path("/usr/lib/softhsm/libsofthsm2.so"),
    Path("/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"),
]
TOKEN_LABEL = "trustkit-test"
KEY_LABEL = "root-2025"
SO_PIN = "security officer pin"
PIN = "token user pin 2468"
assert PIN != ROOT_PASSPHRASE

# Runs in its own process with the token's environment: makes an ECDSA P-256 key pair
# inside the token (the private half sensitive and not extractable) and prints its
# public half as PEM and whether the token would hand out the private value.
GENERATE = """
import os, sys
import pkcs11
from cryptography.hazmat.primitives.serialization import (
    Encoding, PublicFormat, load_der_public_key)
from pkcs11 import Attribute, KeyType
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

key_id, label, pin, public_is_private = sys.argv[1:5]
token = pkcs11.lib(os.environ["PYKCS11LIB"]).get_token(token_label=sys.argv[5])
with token.open(rw=True, user_pin=pin) as session:
    curve = {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}
    parameters = session.create_domain_parameters(KeyType.EC, curve, local=True)
    public, private = parameters.generate_keypair(
        store=True,
        id=bytes.fromhex(key_id),
        label=label,
        public_template={Attribute.PRIVATE: public_is_private == "yes"},
        private_template={
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.PRIVATE: True,
            Attribute.SIGN: True,
        },
    )
    try:
        private[Attribute.VALUE]
        exported = True
    except pkcs11.PKCS11Error:
        exported = False
    pem = load_der_public_key(encode_ec_public_key(public)).public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    print(pem.decode(), end="")
    print("EXPORTED" if exported else "KEPT")
"""


@dataclass
class Token:
    """A fresh SoftHSM token of the test's own."""

    env: dict[str, str]

    def generate(self, key_id: str, label: str, *, public_is_private: bool = False) -> str:
        """An EC P-256 key pair made inside the token; returns its public key as PEM."""
        flag = "yes" if public_is_private else "no"
        made = subprocess.run(
            [sys.executable, "-c", GENERATE, key_id, label, PIN, flag, TOKEN_LABEL],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            check=False,
        )
        assert made.returncode == 0, made.stderr
        pem, _, kept = made.stdout.rpartition("-----\n")
        assert kept.strip() == "KEPT", "the token handed out the private key"
        return pem + "-----\n"


@pytest.fixture
def token(tmp_path: Path) -> Token:
    modules = [module for module in SOFTHSM_MODULES if module.exists()]
    assert modules, "SoftHSM is missing: run scripts/system-packages (Debian: softhsm2)"
    tokens = tmp_path / "softhsm" / "tokens"
    tokens.mkdir(parents=True)
    conf = tmp_path / "softhsm" / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    env = {"SOFTHSM2_CONF": str(conf), "PYKCS11LIB": str(modules[0]), "TRUSTKIT_HSM_PIN": PIN}
    init = subprocess.run(
        [
            *("softhsm2-util", "--init-token", "--free", "--label", TOKEN_LABEL),
            *("--pin", PIN, "--so-pin", SO_PIN),
        ],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert init.returncode == 0, init.stderr
    return Token(env)


@pytest.fixture
def officer(publisher: Trustkit, token: Token) -> Trustkit:
    """The publisher's trustkit with the token at hand."""
    return Trustkit(publisher.home, publisher.server_url, {**publisher.env, **token.env})


# --- helpers ------------------------------------------------------------------------


def _init(publisher: Trustkit, gun: str) -> dict[str, str]:
    result = publisher("init", gun, "--json")
    assert result.code == 0, result.err
    return {role: ids[0] for role, ids in result.json["keys"].items()}


def _import(officer: Trustkit, gun: str, key: str) -> dict[str, Any]:
    result = officer.process(
        "key", "import", "--hsm", key, "--repository", gun, "--role", "root", "--json"
    )
    assert result.code == 0, result.err
    data: dict[str, Any] = result.json
    return data


def _rotate(officer: Trustkit, gun: str, *args: str, env: dict[str, str] | None = None) -> Any:
    return officer.process("key", "rotate", gun, *args, "--json", env=env)


def _root_in_token(officer: Trustkit, token: Token, gun: str) -> tuple[dict[str, str], str]:
    """An initialised repository whose only root key is now a key made in the token."""
    keys = _init(officer, gun)
    token.generate("01", KEY_LABEL)
    keyid = _import(officer, gun, KEY_LABEL)["keyid"]
    rotated = _rotate(officer, gun, "root", "--use", keyid)
    assert rotated.code == 0, rotated.err
    assert rotated.json["new_keys"] == [keyid]
    return keys, keyid


def _private_files(tk: Trustkit) -> dict[str, bytes]:
    private = tk.home / "private"
    if not private.is_dir():
        return {}
    return {path.name: path.read_bytes() for path in sorted(private.iterdir())}


def _only_root_key(server: ServerProcess, gun: str, keyid: str) -> Root:
    """The served root lists only KEYID for root and is signed by it."""
    metadata = served_metadata(server, gun, "root.json")
    root: Root = metadata.signed
    assert root.roles["root"].keyids == [keyid]
    assert root.roles["root"].threshold == 1
    root.verify_delegate("root", metadata.signed_bytes, metadata.signatures)
    assert keyid in metadata.signatures
    return root


# --- the token key as the root key ----------------------------------------------------


def test_a_root_key_in_the_token_signs_every_later_root(
    officer: Trustkit,
    token: Token,
    host: Trustkit,
    server: ServerProcess,
    gun: str,
    tmp_path: Path,
):
    """A security officer moves the repository's root key into an HSM: hosts that
    trusted the first root follow, and later rotations are signed inside the token."""
    keys = _init(officer, gun)
    sign_many(officer, gun, ["1.0"])
    assert_verifies(host, gun, "1.0", DIGEST_A)  # trusts root v1
    public_pem = token.generate("01", KEY_LABEL)

    imported = _import(officer, gun, "01")

    keyid = imported["keyid"]
    assert imported["uri"] == f"hsm:1?label={TOKEN_LABEL}"
    record = json.loads((officer.home / "private" / f"{keyid}.json").read_bytes())
    assert record["uri"] == imported["uri"]
    assert record["public"]["keyval"]["public"] == public_pem  # the token's own key
    assert Key.from_dict(keyid, record["public"]).keyid == keyid
    assert not (officer.home / "private" / f"{keyid}.p12").exists()
    assert (officer.home / "private" / f"{keyid}.json").stat().st_mode & 0o777 == 0o600
    listed = {k["keyid"]: k for k in officer("key", "list", "--json").json["keys"]}
    assert listed[keyid]["kept"] == imported["uri"]
    assert listed[keyid]["role"] == "root"
    assert listed[keyid]["keytype"] == "ecdsa"

    rotated = _rotate(officer, gun, "root", "--use", keyid)

    assert rotated.code == 0, rotated.err
    assert rotated.json["old_keys"] == [keys["root"]]
    assert rotated.json["new_keys"] == [keyid]
    root = _only_root_key(server, gun, keyid)
    assert root.version == 2
    assert keys["root"] not in root.keys
    assert root.keys[keyid].keyval["public"] == public_pem
    assert_verifies(host, gun, "1.0", DIGEST_A)
    inspected = {r["role"]: r for r in host("inspect", gun, "--json").json["roles"]}
    assert inspected["root"]["version"] == 2
    assert not (officer.home / "private" / f"{keys['root']}.p12").exists()  # retired

    # Rotating targets needs a root signature: made in the token, PIN from the env.
    again = _rotate(officer, gun, "targets")

    assert again.code == 0, again.err
    root = _only_root_key(server, gun, keyid)
    assert root.version == 3
    assert root.roles["targets"].keyids == again.json["new_keys"]
    signed = officer("sign", f"{gun}:2.0", "--digest", DIGEST_B, "--size", "10")
    assert signed.code == 0, signed.err
    fresh = Trustkit(tmp_path / "fresh" / ".trustkit", server.url)
    for each in (host, fresh):
        assert_verifies(each, gun, "1.0", DIGEST_A)
        assert_verifies(each, gun, "2.0", DIGEST_B)
    assert not list((officer.home / "private").glob(f"{keyid}*.p12"))
    listed = {k["keyid"]: k for k in officer("key", "list", "--json").json["keys"]}
    assert [k for k, v in listed.items() if v["role"] == "root"] == [keyid]


def test_a_wrong_pin_is_named_and_changes_nothing(
    officer: Trustkit, token: Token, server: ServerProcess, gun: str, tmp_path: Path
):
    keys, keyid = _root_in_token(officer, token, gun)
    root_version = served_version(server, gun, "root")
    targets_version = served_version(server, gun, "targets")
    before = _private_files(officer)

    refused = _rotate(officer, gun, "targets", env={"TRUSTKIT_HSM_PIN": "not the pin"})

    assert refused.code == 2, refused.err
    assert "Traceback" not in refused.err
    error = refused.json
    assert error["error"] == "passphrase"
    assert error["message"] == (
        f"wrong PIN for the root key of {gun} ({keyid[:12]}) at hsm:1?label={TOKEN_LABEL}"
    )
    assert "$TRUSTKIT_HSM_PIN" in error["hint"]
    assert served_version(server, gun, "root") == root_version
    assert served_version(server, gun, "targets") == targets_version
    assert _private_files(officer) == before

    # The right PIN from $TRUSTKIT_HSM_PIN_FILE works, and so does the role's own
    # --passphrase-file when no PIN variable is set (the behaviour before the PIN had
    # variables of its own).
    pin_file = tmp_path / "pin"
    pin_file.write_text(PIN + "\n")
    rotated = _rotate(
        officer,
        gun,
        "targets",
        env={"TRUSTKIT_HSM_PIN": "", "TRUSTKIT_HSM_PIN_FILE": str(pin_file)},
    )
    assert rotated.code == 0, rotated.err
    assert served_version(server, gun, "root") == root_version + 1
    assert rotated.json["old_keys"] == [keys["targets"]]
    again = _rotate(
        officer,
        gun,
        "targets",
        "--passphrase-file",
        str(pin_file),
        env={"TRUSTKIT_HSM_PIN": "", "TRUSTKIT_ROOT_PASSPHRASE": ""},
    )
    assert again.code == 0, again.err
    assert served_version(server, gun, "root") == root_version + 2


# --- import errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--hsm", "02"], {}, f"no EC key '02' in the PKCS#11 token '{TOKEN_LABEL}'"),
        (["--hsm", "root-2024"], {}, f"no EC key 'root-2024' in the PKCS#11 token '{TOKEN_LABEL}'"),
        (
            ["--hsm", "01", "--token", "other-token"],
            {},
            "no initialised PKCS#11 token labelled 'other-token'",
        ),
        (["--hsm", "01"], {"PYKCS11LIB": ""}, "PYKCS11LIB is not set"),
        (
            ["--hsm", "01"],
            {"PYKCS11LIB": "/nonexistent/libpkcs11.so"},
            "cannot load the PKCS#11 module /nonexistent/libpkcs11.so",
        ),
    ],
    ids=["unknown-id", "unknown-label", "unknown-token", "no-module", "bad-module"],
)
def test_importing_a_key_the_token_does_not_hold_writes_nothing(
    officer: Trustkit, token: Token, gun: str, args: list[str], env: dict[str, str], message: str
):
    _init(officer, gun)
    token.generate("01", KEY_LABEL)
    before = _private_files(officer)

    result = officer.process(
        "key", "import", *args, "--repository", gun, "--role", "root", "--json", env=env
    )

    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    assert result.json["error"] == "keystore"
    assert result.json["message"].startswith(message), result.json
    assert _private_files(officer) == before


def test_a_key_whose_public_half_needs_the_pin_is_found_with_it(
    officer: Trustkit, token: Token, gun: str
):
    """Some tokens show no public key before login: import logs in with the PIN."""
    public_pem = token.generate("0a", "hidden", public_is_private=True)
    without = officer.process(
        "key",
        "import",
        "--hsm",
        "hidden",
        "--repository",
        gun,
        "--role",
        "root",
        "--json",
        env={"TRUSTKIT_ROOT_PASSPHRASE": "", "TRUSTKIT_HSM_PIN": ""},
    )
    assert without.code == 2, without.err
    assert without.json["message"] == f"no EC key 'hidden' in the PKCS#11 token '{TOKEN_LABEL}'"
    assert _private_files(officer) == {}

    imported = _import(officer, gun, "hidden")

    assert imported["uri"] == f"hsm:10?label={TOKEN_LABEL}"
    [record] = [json.loads(b) for b in _private_files(officer).values()]
    assert record["public"]["keyval"]["public"] == public_pem


def test_the_same_token_key_is_not_imported_twice(officer: Trustkit, token: Token, gun: str):
    token.generate("01", KEY_LABEL)
    _import(officer, gun, KEY_LABEL)
    before = _private_files(officer)

    again = officer.process(
        "key", "import", "--hsm", "01", "--repository", gun, "--role", "root", "--json"
    )

    assert again.code == 2, again.err
    assert "already holds the key" in again.json["message"]
    assert _private_files(officer) == before
