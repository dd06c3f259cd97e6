"""Key lifecycle for the holder of a repository's offline keys: rotation, expiry care.

Every change starts from the repository as a host verifies it, so a rotation can
never be built on metadata the server invented. A rotation is one upload: the new root
(signed by a threshold of the old root keys and of the new ones, so every host can walk
the chain) together with whatever must be re-signed under the new keys. Keys are
changed in the keystore only once the server has accepted the upload: a new key is
removed again when anything fails, and a rotated-out key is removed after success, so
it can never sign for the repository again by mistake.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from securesystemslib.signer import Key, Signer
from tuf.api.metadata import Root

from client.publisher import KeyHolder
from client.verify import TrustedRepository
from keys.keystore import KeyRecord
from trustkit.errors import UsageError
from trustkit.expiry import utc_now
from trustkit.metadata import ONLINE_ROLES

__all__ = [
    "OFFLINE_ROLES",
    "Lifecycle",
    "RefreshResult",
    "RoleExpiry",
    "RotationResult",
    "describe_record",
    "expiry_report",
]

OFFLINE_ROLES = ("root", "targets")


@dataclass(frozen=True)
class RotationResult:
    gun: str
    role: str
    old_keys: list[str]
    new_keys: list[str]
    root_version: int


@dataclass(frozen=True)
class RefreshResult:
    gun: str
    renewed: dict[str, int]  # role -> new version


@dataclass(frozen=True)
class RoleExpiry:
    role: str
    version: int
    expires: datetime
    keys: list[str]
    threshold: int
    days_left: float
    warning: bool


def expiry_report(
    repository: TrustedRepository, warn_within: timedelta, warn_online_within: timedelta
) -> list[RoleExpiry]:
    """Each role's version, expiry and keys; ``warning`` when it expires within the window.

    Snapshot and timestamp are re-signed by the server once half their lifetime is gone,
    so they always expire soon-ish; they get their own, shorter window, which a healthy
    server never lets them reach.
    """
    now = utc_now()
    report = []
    for status in repository.roles:
        role = repository.root.roles[status.role]
        left = status.expires - now
        window = warn_online_within if status.role in ONLINE_ROLES else warn_within
        report.append(
            RoleExpiry(
                status.role,
                status.version,
                status.expires,
                list(role.keyids),
                role.threshold,
                left.total_seconds() / 86400,
                left <= window,
            )
        )
    return report


class Lifecycle(KeyHolder):
    """Rotation and renewal of a repository's offline roles."""

    def rotate(self, gun: str, role: str, keytype: str = "ed25519") -> RotationResult:
        """Replace every key of ``role`` with one new key, in a new root version.

        Root and targets keys are made here and kept in the keystore; snapshot and
        timestamp keys are made by the server, which signs with them from the moment
        it accepts the root that lists them.
        """
        if role not in (*OFFLINE_ROLES, *ONLINE_ROLES):
            raise UsageError(f"{role} is not a role of {gun} with keys of its own")
        trusted = self._verifier.trusted_repository(gun)
        root = trusted.root
        old_keys = list(root.roles[role].keyids)
        old_root_signers = self._keystore.signers(gun, "root", self._passphrases)
        if role in ONLINE_ROLES:
            return self._rotate_server_key(gun, role, old_keys, old_root_signers, trusted)
        # Re-signing existing tags needs only the new key, not the old one: a lost
        # targets key can be rotated out as well as a stolen one.
        new = self._keystore.generate(gun, role, self._passphrases, keytype)
        try:
            self._replace_keys(root, role, old_keys, new.public)
            new_signers = [self._keystore.signer(new, self._passphrases)]
            root_signers = old_root_signers + (new_signers if role == "root" else [])
            upload = {"root": self._signed_bytes(root, root_signers)}
            if role == "targets":
                targets = trusted.targets
                targets.version += 1
                targets.expires = self._settings.expiry.expires("targets")
                upload["targets"] = self._signed_bytes(targets, new_signers)
            self._api.upload(gun, upload)
        except BaseException:
            self._keystore.remove(new)
            raise
        self._retire(gun, role, keep=new.keyid)
        self._verifier.trusted_repository(gun)  # this host follows its own rotation
        return RotationResult(gun, role, old_keys, [new.keyid], root.version)

    def _rotate_server_key(
        self,
        gun: str,
        role: str,
        old_keys: list[str],
        root_signers: list[Signer],
        trusted: TrustedRepository,
    ) -> RotationResult:
        new_key = self._api.next_server_key(gun, role)
        root = trusted.root
        self._replace_keys(root, role, old_keys, new_key)
        self._api.upload(gun, {"root": self._signed_bytes(root, root_signers)})
        self._verifier.trusted_repository(gun)
        return RotationResult(gun, role, old_keys, [new_key.keyid], root.version)

    def _replace_keys(self, root: Root, role: str, old_keys: list[str], new_key: Key) -> None:
        for keyid in old_keys:
            root.revoke_key(keyid, role)
        root.add_key(new_key, role)
        root.roles[role].threshold = 1  # one new key replaces them all
        root.version += 1
        root.expires = self._settings.expiry.expires("root")

    def refresh(self, gun: str, within: timedelta) -> RefreshResult:
        """Re-sign root and targets when they expire within ``within``; else nothing."""
        trusted = self._verifier.trusted_repository(gun)
        now = utc_now()
        upload: dict[str, bytes] = {}
        renewed: dict[str, int] = {}
        for role, signed in (("root", trusted.root), ("targets", trusted.targets)):
            if signed.expires - now > within:
                continue
            signed.version += 1
            signed.expires = self._settings.expiry.expires(role, now)
            signers = self._keystore.signers(gun, role, self._passphrases)
            upload[role] = self._signed_bytes(signed, signers)
            renewed[role] = signed.version
        if upload:
            self._api.upload(gun, upload)
            self._verifier.trusted_repository(gun)
        return RefreshResult(gun, renewed)

    def _retire(self, gun: str, role: str, *, keep: str) -> None:
        for record in self._keystore.find(gun, role):
            if record.keyid != keep:
                self._keystore.remove(record)


def describe_record(record: KeyRecord) -> dict[str, str]:
    """A key as ``trustkit key list`` shows it: never anything secret."""
    scheme = record.uri.partition(":")[0]
    where = "keystore (encrypted file)" if scheme == "keystore" else record.uri
    return {
        "keyid": record.keyid,
        "repository": record.gun,
        "role": record.role,
        "keytype": record.public.keytype,
        "kept": where,
    }
