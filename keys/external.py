"""Why a key kept outside the keystore (in a PKCS#11 token, a KMS) failed, in words.

The keystore reports these when it loads such a key to sign; the PKCS#11 support when it
imports one. Both use this module, so neither needs the other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from securesystemslib.exceptions import UnsupportedLibraryError, UnverifiedSignatureError

from keys.records import KeyRecord
from trustkit.errors import KeystoreError, PassphraseError, TrustkitError

if TYPE_CHECKING:
    from keys.passphrase import PassphraseSource

__all__ = ["INSTALL_HINT", "LIBRARY_HINT", "LIBRARY_VARIABLE", "explained", "external_key_error"]

LIBRARY_VARIABLE = "PYKCS11LIB"
LIBRARY_HINT = (
    f"set {LIBRARY_VARIABLE} to the token's PKCS#11 module, e.g. "
    "/usr/lib/softhsm/libsofthsm2.so for SoftHSM (Debian: softhsm2)"
)
INSTALL_HINT = "install the PKCS#11 support: pip install 'trustkit-tuf[hsm]' (python-pkcs11)"


def external_key_error(
    record: KeyRecord, error: Exception, passphrases: PassphraseSource
) -> TrustkitError:
    """Why a key kept outside the keystore could not be loaded or sign, in words."""
    where = f"the {record.description} at {record.uri}"
    return explained(error, where, passphrases, record.role)


def explained(
    error: Exception, where: str, passphrases: PassphraseSource, role: str
) -> TrustkitError:
    """``error`` (from securesystemslib or python-pkcs11) about the key at ``where``."""
    name = type(error).__name__  # python-pkcs11 may be missing: match its errors by name
    if name in ("PinIncorrect", "PinInvalid", "PinLenRange"):
        return PassphraseError(
            f"wrong PIN for {where}",
            hint=f"check the PIN given by {passphrases.pin_origin(role)}",
        )
    if name == "PinLocked":
        return PassphraseError(
            f"the PIN of {where} is locked", hint="unlock it with the token's SO PIN"
        )
    if isinstance(error, UnverifiedSignatureError):
        return KeystoreError(
            f"{where} signs as another key than the one recorded for it",
            hint="the token holds a different key under that id now; import it again",
        )
    if isinstance(error, UnsupportedLibraryError):
        return KeystoreError(f"cannot use {where}: {error}", hint=INSTALL_HINT)
    if name == "PKCS11Error" or (isinstance(error, ValueError) and LIBRARY_VARIABLE in str(error)):
        return KeystoreError(f"cannot load the PKCS#11 module for {where}", hint=LIBRARY_HINT)
    detail = str(error) or name
    return KeystoreError(f"cannot use {where}: {detail}")
