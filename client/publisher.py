"""Publishing: create a repository, and apply staged changes to its targets.

``init`` makes the root and targets keys, asks the server for its online keys, and
uploads root v1 and targets v1. ``publish`` verifies the repository as a host would,
applies the changelist to the verified targets, signs and uploads; if someone else
published first (409) it starts again from the new state. Nothing is left behind in
the keystore or on the server when an operation fails.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from securesystemslib.signer import Signer
from tuf.api.exceptions import UnsignedMetadataError

from client.changelist import Change, Changelist, apply_changes
from client.server_api import ServerAPI
from client.settings import ClientSettings
from client.verify import Verifier
from keys.keystore import KeyRecord, Keystore
from keys.passphrase import PassphraseSource
from trustkit.errors import PublishConflictError, TrustkitError, UsageError
from trustkit.expiry import utc_now
from trustkit.metadata import ONLINE_ROLES, new_root, new_targets, sign_with

__all__ = ["InitResult", "KeyHolder", "PublishResult", "Publisher", "stage_or_publish"]

MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class InitResult:
    gun: str
    keys: dict[str, list[str]]


@dataclass(frozen=True)
class PublishResult:
    gun: str
    targets_version: int
    attempts: int
    changes: int


class KeyHolder:
    """What every operation of a repository's key holder works with."""

    def __init__(
        self,
        settings: ClientSettings,
        api: ServerAPI,
        keystore: Keystore,
        passphrases: PassphraseSource,
        verifier: Verifier,
    ) -> None:
        self._settings = settings
        self._api = api
        self._keystore = keystore
        self._passphrases = passphrases
        self._verifier = verifier

    @staticmethod
    def _signed_bytes(signed: Any, signers: list[Signer]) -> bytes:
        try:
            return sign_with(signed, signers)
        except UnsignedMetadataError as error:
            raise TrustkitError(f"signing {signed.type} failed: {error}") from None


class Publisher(KeyHolder):
    def init(self, gun: str, keytype: str = "ed25519") -> InitResult:
        if self._api.has_metadata(gun, "1.root.json"):
            raise UsageError(
                f"{gun} already exists on {self._settings.server_url}",
                hint="sign tags with trustkit sign; to start over, delete it on the server",
            )
        online = {role: self._api.public_key(gun, role) for role in ONLINE_ROLES}
        created: list[KeyRecord] = []
        records: dict[str, KeyRecord] = {}
        try:
            for role in ("root", "targets"):
                existing = self._keystore.find(gun, role)
                if existing:  # left by an earlier init that the server never accepted
                    records[role] = existing[0]
                else:
                    records[role] = self._keystore.generate(gun, role, self._passphrases, keytype)
                    created.append(records[role])
            root_record, targets_record = records["root"], records["targets"]
            expiry = self._settings.expiry
            now = utc_now()
            root = new_root(
                {
                    "root": [root_record.public],
                    "targets": [targets_record.public],
                    **{role: [key] for role, key in online.items()},
                },
                expiry.expires("root", now),
            )
            root_bytes = self._signed_bytes(
                root, self._keystore.signers(gun, "root", self._passphrases)
            )
            targets = new_targets(expiry.expires("targets", now))
            targets_bytes = self._signed_bytes(
                targets, self._keystore.signers(gun, "targets", self._passphrases)
            )
            self._api.upload(gun, {"root": root_bytes, "targets": targets_bytes})
        except BaseException:
            for record in created:
                self._keystore.remove(record)
            raise
        self._verifier.pin(gun, root_bytes)
        return InitResult(gun, {"root": [root_record.keyid], "targets": [targets_record.keyid]})

    def publish(self, gun: str, changes: list[Change]) -> PublishResult:
        if not changes:
            raise UsageError(f"nothing to publish for {gun}: the changelist is empty")
        signers = self._keystore.signers(gun, "targets", self._passphrases)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            trusted = self._verifier.trusted_repository(gun)
            targets = trusted.targets
            apply_changes(targets, changes)
            targets.version += 1
            targets.expires = self._settings.expiry.expires("targets")
            try:
                self._api.upload(gun, {"targets": self._signed_bytes(targets, signers)})
            except PublishConflictError:
                if attempt == MAX_ATTEMPTS:
                    raise
                time.sleep(random.uniform(0.01, 0.05) * attempt)  # noqa: S311 - jitter only
                continue
            return PublishResult(gun, targets.version, attempt, len(changes))
        raise AssertionError("unreachable")


def stage_or_publish(
    publisher: Publisher | None,
    changelist: Changelist,
    gun: str,
    new_changes: list[Change],
) -> PublishResult | None:
    """Add changes to the staged ones; publish them all unless ``publisher`` is None.

    The changelist on disk changes only on success: staged changes are saved only when
    not publishing, and cleared only once the server has accepted them.
    """
    changes = changelist.load() + new_changes
    if publisher is None:
        changelist.save(changes)
        return None
    result = publisher.publish(gun, changes)
    changelist.clear()
    return result
