"""Keys that live in a PKCS#11 token (an HSM, a smart card, SoftHSM) and never leave it.

The keystore keeps only a record for such a key: its public half and the signer URI
securesystemslib's ``HSMSigner`` reads, ``hsm:<CKA_ID as a number>?label=<token label>``.
Signing opens the token with its PIN: ``TRUSTKIT_HSM_PIN`` or the file
``TRUSTKIT_HSM_PIN_FILE`` names, else the passphrase of the key's role
(``TRUSTKIT_ROOT_PASSPHRASE``, ``--passphrase-file`` or a prompt). ``PYKCS11LIB`` names
the token's PKCS#11 module: the command line reads it into ``HsmSettings``
(``HsmSettings.from_environment``). securesystemslib's ``HSMSigner`` reads that variable
itself too, so the module given here must be the one it names.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from securesystemslib.signer import HSMSigner

from keys.external import INSTALL_HINT, LIBRARY_HINT, LIBRARY_VARIABLE, explained
from keys.external import external_key_error as external_key_error
from keys.records import KeyRecord
from trustkit.errors import KeystoreError, PassphraseError, TrustkitError

if TYPE_CHECKING:
    from keys.passphrase import PassphraseSource

__all__ = ["LIBRARY_VARIABLE", "HsmSettings", "external_key_error", "hsm_record"]


@dataclass(frozen=True)
class HsmSettings:
    """Where the token's PKCS#11 module is (``None``: not configured)."""

    library_path: str | None = None

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> HsmSettings:
        """The settings ``PYKCS11LIB`` in ``env`` gives (empty counts as not set)."""
        return cls(env.get(LIBRARY_VARIABLE) or None)


def hsm_record(
    gun: str,
    role: str,
    key: str,
    token: str | None,
    passphrases: PassphraseSource,
    settings: HsmSettings | None = None,
) -> KeyRecord:
    """The record of the EC key named ``key`` (its CKA_ID in hex, as ``pkcs11-tool`` and
    ``softhsm2-util`` show it, or its CKA_LABEL) in the token labelled ``token`` (or the
    only initialised token). Reads only public objects; logs in only when the token
    shows no public key without it. ``settings`` default to those of the process
    environment."""
    library = (settings or HsmSettings.from_environment(os.environ)).library_path
    pkcs11, library_path = _pkcs11(library)
    description = f"{role} key of {gun} in the PKCS#11 token (its PIN)"

    def pin(_name: str = "pin") -> str:
        return passphrases.pin(role, description)

    try:
        found = _find_token(pkcs11, library_path, token)
        with found.open() as session:
            ids = _matching_ids(pkcs11, session, key)
        if not ids:
            try:
                user_pin = pin()
            except PassphraseError:
                user_pin = None  # no PIN to hand: the key is simply not there
            if user_pin is not None:
                with found.open(user_pin=user_pin) as session:
                    ids = _matching_ids(pkcs11, session, key)
        if not ids:
            raise KeystoreError(
                f"no EC key '{key}' in the PKCS#11 token '{found.label}'",
                hint="give the key's id in hex or its label (see: pkcs11-tool --module "
                f"${LIBRARY_VARIABLE} --list-objects); generate the key in the token first",
            )
        if len(ids) > 1:
            shown = ", ".join(sorted(i.hex() for i in ids))
            raise KeystoreError(
                f"'{key}' names several keys in the token '{found.label}' (ids {shown})",
                hint="give the key's id in hex",
            )
        [key_id] = ids
        number = int.from_bytes(key_id, "big")
        if pkcs11.util.biginteger(number) != key_id:
            raise KeystoreError(
                f"the key '{key}' has the id {key_id.hex() or '(empty)'}, which an hsm: URI "
                "cannot name (a number: no empty id, no leading zero bytes)",
                hint="give the key a CKA_ID such as 01 when generating it",
            )
        uri, public = HSMSigner.import_(number, found.label, pin)
    except TrustkitError:
        raise
    except Exception as error:
        raise explained(error, f"the PKCS#11 token for '{key}'", passphrases, role) from None
    return KeyRecord(public.keyid, gun, role, public, uri)


def _pkcs11(library: str | None) -> tuple[Any, str]:
    """python-pkcs11 and the module path, or why they cannot be used."""
    try:
        import pkcs11
        import pkcs11.util
    except ImportError:
        raise KeystoreError("PKCS#11 support is not installed", hint=INSTALL_HINT) from None
    if not library:
        raise KeystoreError(f"{LIBRARY_VARIABLE} is not set", hint=LIBRARY_HINT)
    return pkcs11, library


def _find_token(pkcs11: Any, library: str, label: str | None) -> Any:
    try:
        loaded = pkcs11.lib(library)
    except pkcs11.exceptions.PKCS11Error as error:
        raise KeystoreError(
            f"cannot load the PKCS#11 module {library}: {error}",
            hint=LIBRARY_HINT,
        ) from None
    try:
        return loaded.get_token(token_label=label, token_flags=pkcs11.TokenFlag.TOKEN_INITIALIZED)
    except pkcs11.exceptions.NoSuchToken:
        named = f" labelled '{label}'" if label else ""
        raise KeystoreError(
            f"no initialised PKCS#11 token{named} in {library}",
            hint="check the token is plugged in and its label (e.g. softhsm2-util --show-slots)",
        ) from None
    except pkcs11.exceptions.MultipleTokensReturned:
        raise KeystoreError(
            "several PKCS#11 tokens are present", hint="choose one with --token LABEL"
        ) from None


def _matching_ids(pkcs11: Any, session: Any, key: str) -> set[bytes]:
    """CKA_IDs of the EC public keys whose id (hex) or label is ``key``."""
    try:
        wanted_id: bytes | None = bytes.fromhex(key.lower().removeprefix("0x").replace(":", ""))
    except ValueError:
        wanted_id = None
    attribute = pkcs11.Attribute
    ids = set()
    for public in session.get_objects(
        {attribute.CLASS: pkcs11.ObjectClass.PUBLIC_KEY, attribute.KEY_TYPE: pkcs11.KeyType.EC}
    ):
        key_id = bytes(public[attribute.ID])
        if key_id == wanted_id or public.label == key:
            ids.add(key_id)
    return ids
