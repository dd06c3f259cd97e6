"""Publishing: store uploaded roles and sign a new snapshot and timestamp, atomically.

Also keeps repositories fresh: online roles are re-signed once half their lifetime is
gone, both by the background task and lazily when a host asks for ``timestamp.json``,
so a repository nobody touches still verifies.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from tuf.api.metadata import Metadata, MetaFile, Snapshot, Timestamp

from server.online_keys import OnlineKeys
from server.settings import ServerSettings
from server.storage import Storage, StoredMetadata, VersionConflict, WriteTransaction
from server.validation import RepositoryAfterUpload, UploadRejected, validate_upload
from trustkit.expiry import utc_now
from trustkit.metadata import ONLINE_ROLES, meta_for, new_snapshot, new_timestamp, sign_with

__all__ = ["MetadataService", "PublishResult"]


@dataclass(frozen=True)
class PublishResult:
    versions: dict[str, int]


class MetadataService:
    """Everything the HTTP routes do, without HTTP."""

    def __init__(self, storage: Storage, online_keys: OnlineKeys, settings: ServerSettings) -> None:
        self.storage = storage
        self.online_keys = online_keys
        self.settings = settings
        self._online_expiry: dict[tuple[str, str], datetime] = {}
        self._expiry_lock = threading.Lock()

    def metadata(self, gun: str, role: str, version: int | None) -> bytes | None:
        if version is not None:
            stored = self.storage.version(gun, role, version)
            return stored.data if stored else None
        if role == "timestamp" and self._renewal_due(gun):
            self.refresh(gun)
        latest = self.storage.latest(gun, role)
        return latest.data if latest else None

    def publish(self, gun: str, parts: Mapping[str, bytes]) -> PublishResult:
        server_keys = {
            role: [
                key
                for key in (
                    self.online_keys.existing_public_key(gun, role),
                    self.online_keys.existing_next_public_key(gun, role),
                )
                if key is not None
            ]
            for role in ONLINE_ROLES
        }
        try:
            with self.storage.write(gun) as transaction:
                stored = transaction.latest()
                state = validate_upload(parts, stored, server_keys, self.settings.limits, utc_now())
                versions: dict[str, int] = {}
                for role, metadata in state.uploaded.items():
                    transaction.put(role, metadata.signed.version, parts[role])
                    versions[role] = metadata.signed.version
                self._promote_rotated_keys(gun, transaction, state)
                versions.update(self._sign_online_roles(gun, transaction, stored, state, parts))
        except VersionConflict as conflict:
            raise UploadRejected(
                409,
                "version_conflict",
                None,
                f"{conflict}: someone published first; fetch and apply the changes again",
            ) from None
        return PublishResult(versions)

    def refresh(self, gun: str) -> bool:
        """Re-sign snapshot and timestamp if due; True if anything was signed."""
        with self.storage.write(gun) as transaction:
            latest = transaction.latest()
            if "timestamp" not in latest or "snapshot" not in latest:
                return False
            now = utc_now()
            snapshot: Snapshot = Metadata[Snapshot].from_bytes(latest["snapshot"].data).signed
            timestamp: Timestamp = Metadata[Timestamp].from_bytes(latest["timestamp"].data).signed
            expiry = self.settings.expiry
            snapshot_due = expiry.renewal_due("snapshot", snapshot.expires, now)
            self._remember_expiry(gun, "snapshot", snapshot.expires)
            if not snapshot_due and not expiry.renewal_due("timestamp", timestamp.expires, now):
                self._remember_expiry(gun, "timestamp", timestamp.expires)
                return False
            snapshot_meta = timestamp.snapshot_meta
            if snapshot_due:
                snapshot.version += 1
                snapshot.expires = expiry.expires("snapshot", now)
                data = self._sign(gun, snapshot)
                transaction.put("snapshot", snapshot.version, data)
                self._remember_expiry(gun, "snapshot", snapshot.expires)
                snapshot_meta = meta_for(data, snapshot.version)
            self._put_timestamp(gun, transaction, timestamp.version + 1, snapshot_meta, now)
        return True

    def refresh_all(self) -> int:
        """Renew every repository that is due; the rest cost one read, not a write lock."""
        return sum(
            1 for gun in self.storage.repositories() if self._renewal_due(gun) and self.refresh(gun)
        )

    def delete(self, gun: str) -> bool:
        deleted = self.storage.delete_repository(gun)
        self.online_keys.forget(gun)
        with self._expiry_lock:
            for role in ONLINE_ROLES:
                self._online_expiry.pop((gun, role), None)
        return deleted

    def _promote_rotated_keys(
        self, gun: str, transaction: WriteTransaction, state: RepositoryAfterUpload
    ) -> None:
        """A new root that lists the server's next key for a role completes a rotation:
        from this transaction on, the server signs that role with it."""
        if "root" not in state.uploaded:
            return
        for role in ONLINE_ROLES:
            upcoming = self.online_keys.existing_next_public_key(gun, role)
            if upcoming is not None and upcoming.keyid in state.root.roles[role].keyids:
                transaction.promote_online_key(role)

    def _sign_online_roles(
        self,
        gun: str,
        transaction: WriteTransaction,
        stored: Mapping[str, StoredMetadata],
        state: RepositoryAfterUpload,
        parts: Mapping[str, bytes],
    ) -> dict[str, int]:
        now = utc_now()
        previous: dict[str, MetaFile] = {}
        if "snapshot" in stored:
            old: Snapshot = Metadata[Snapshot].from_bytes(stored["snapshot"].data).signed
            previous = {name.removesuffix(".json"): info for name, info in old.meta.items()}
        # A role once in snapshot stays there (hosts refuse a snapshot that drops one, as
        # a rollback): a signer taken out keeps its last entry, though nothing
        # delegates to it any more.
        meta: dict[str, MetaFile] = dict(previous)
        for role in ["targets", *state.delegated_roles()]:
            if role in state.uploaded:
                meta[role] = meta_for(parts[role], state.uploaded[role].signed.version)
            elif role in previous:
                meta[role] = previous[role]
            elif role in stored:
                meta[role] = meta_for(stored[role].data, stored[role].version)
        snapshot_version = stored["snapshot"].version + 1 if "snapshot" in stored else 1
        snapshot = new_snapshot(
            snapshot_version, meta, self.settings.expiry.expires("snapshot", now)
        )
        snapshot_bytes = self._sign(gun, snapshot)
        transaction.put("snapshot", snapshot_version, snapshot_bytes)
        self._remember_expiry(gun, "snapshot", snapshot.expires)
        timestamp_version = stored["timestamp"].version + 1 if "timestamp" in stored else 1
        self._put_timestamp(
            gun, transaction, timestamp_version, meta_for(snapshot_bytes, snapshot_version), now
        )
        return {"snapshot": snapshot_version, "timestamp": timestamp_version}

    def _put_timestamp(
        self,
        gun: str,
        transaction: WriteTransaction,
        version: int,
        snapshot_meta: MetaFile,
        now: datetime,
    ) -> None:
        expires = self.settings.expiry.expires("timestamp", now)
        timestamp = new_timestamp(version, snapshot_meta, expires)
        transaction.put("timestamp", version, self._sign(gun, timestamp))
        self._remember_expiry(gun, "timestamp", expires)

    def _sign(self, gun: str, signed: Snapshot | Timestamp) -> bytes:
        return sign_with(signed, [self.online_keys.signer(gun, signed.type)])

    def _remember_expiry(self, gun: str, role: str, expires: datetime) -> None:
        with self._expiry_lock:
            self._online_expiry[(gun, role)] = expires

    def _renewal_due(self, gun: str) -> bool:
        """Whether snapshot or timestamp of ``gun`` needs re-signing (cached expiry times).

        A cached time can only be earlier than the stored one (another replica may have
        renewed since), so a stale cache costs a needless check, never a missed renewal.
        """
        for role in ONLINE_ROLES:
            with self._expiry_lock:
                expires = self._online_expiry.get((gun, role))
            if expires is None:
                latest = self.storage.latest(gun, role)
                if latest is None:
                    return False
                signed = json.loads(latest.data)["signed"]
                expires = datetime.fromisoformat(signed["expires"].replace("Z", "+00:00"))
                self._remember_expiry(gun, role, expires)
            if self.settings.expiry.renewal_due(role, expires):
                return True
        return False
