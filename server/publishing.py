"""Publishing: store uploaded roles and sign a new snapshot and timestamp, atomically.

An upload that only lacks co-signers' signatures is kept pending instead: listed to
key holders, never served to hosts, published in the transaction whose approval brings
the last signature needed, and dropped when it expires or a publish makes it stale.

A pending change carries real signatures, so two rules guard it:

- Withdrawing one takes an ``admin`` token, or a signature over
  ``withdraw_statement(gun, id)`` by a key that the stored (trusted) metadata lists for
  one of its roles — for a change of root, a root key of the current root. A push
  token alone does not: anyone with one could otherwise drop a key ceremony in progress.
- Content withdrawn, expired or made stale is retired (the sha256 of each role's signed
  bytes, per repository) and never kept pending again: without that, any push-token
  holder could re-upload the signatures collected once and revive a change its key
  holders let go. A fresh proposal signs a new version; the same content with every
  signature it needs still publishes.

Listing pending changes is a read: what each lacks is stored with it and brought up to
date by every write that touches pending changes, which also drops the expired and
stale ones (a list leaves expired ones out until then).

Also keeps repositories fresh: online roles are re-signed once half their lifetime is
gone, both by the background task and lazily when a host asks for ``timestamp.json``,
so a repository nobody touches still verifies.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import secrets
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from securesystemslib.signer import Key, Signature
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, Timestamp

from server.online_keys import OnlineKeys
from server.pending_changes import (
    MAX_PENDING,
    PendingChange,
    adds_signatures,
    change_of,
    check_withdraw_proof,
    content_digest,
    counted_signatures_only,
    needs_of,
    parsed,
    same_content,
    versions_of,
    with_signatures,
)
from server.settings import ServerSettings
from server.storage import (
    PendingUpload,
    Storage,
    StoredMetadata,
    VersionConflict,
    WriteTransaction,
)
from server.validation import (
    RepositoryAfterUpload,
    UploadRejected,
    snapshot_held_by_server,
    validate_upload,
)
from trustkit.expiry import utc_now
from trustkit.metadata import (
    ONLINE_ROLES,
    meta_for,
    new_snapshot,
    new_timestamp,
    sign_with,
)

__all__ = ["MAX_PENDING", "MetadataService", "PendingChange", "PublishResult"]


@dataclass(frozen=True)
class PublishResult:
    versions: dict[str, int] = field(default_factory=dict)
    pending: PendingChange | None = None


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

    def fresh_timestamp(self, gun: str) -> bytes | None:
        """The newest timestamp of ``gun`` when it needs no renewal (known from the
        cached expiry times: no signing, no lock); None when it is due or unknown."""
        with self._expiry_lock:
            known = all((gun, role) in self._online_expiry for role in ONLINE_ROLES)
        if not known or self._renewal_due(gun):
            return None
        latest = self.storage.latest(gun, "timestamp")
        return latest.data if latest else None

    def publish(
        self, gun: str, parts: Mapping[str, bytes], actor: str | None = None
    ) -> PublishResult:
        """Validate an upload and publish it, or keep it pending if it lacks co-signers.

        A pending upload keeps only signatures that count, and one that signs what an
        earlier pending change signs joins it rather than making another. Content once
        withdrawn, expired or dropped is not kept pending again (a replay).
        """
        with self._conflicts_as_409(), self.storage.write(gun) as transaction:
            stored = transaction.latest()
            state = self._validate(gun, parts, stored)
            if not state.shortfalls:
                versions = self._store(gun, transaction, stored, state, parts)
                transaction.record_change("publish", versions, actor)
                self._sweep_pending(gun, transaction)
                return PublishResult(versions)
            waiting = self._sweep_pending(gun, transaction, stored)
            if transaction.is_retired(content_digest(state.uploaded)):
                raise UploadRejected(
                    409,
                    "withdrawn_content",
                    None,
                    f"this exact content was pending for {gun} before and was withdrawn or "
                    "expired; it is not taken again. Propose the change afresh (publish "
                    "again: it signs a new version) and have its co-signers sign that",
                )
            for upload in waiting:
                if same_content(upload.parts, parts):
                    return self._add_signatures(
                        gun, transaction, stored, upload, parts, actor, resent=True
                    )
            if len(waiting) >= MAX_PENDING:
                raise UploadRejected(
                    429,
                    "too_many_pending",
                    None,
                    f"{gun} already has {len(waiting)} changes waiting for co-signers; "
                    "approve or withdraw some first (trustkit approve)",
                )
            now = utc_now()
            upload = PendingUpload(
                secrets.token_hex(8),
                now,
                now + self.settings.expiry.pending_lifetime,
                counted_signatures_only(parts, state),
                needs_of(state),
            )
            transaction.put_pending(upload)
            transaction.record_change("pending", versions_of(state), actor, upload.id)
            return PublishResult(pending=change_of(upload))

    def pending(self, gun: str) -> list[PendingChange]:
        """The uploads waiting for co-signers, as last written: a read, which validates
        nothing and takes no write lock. Expired ones are left out here and dropped by
        the next write; stale ones were dropped by the write that made them stale."""
        if self.storage.latest(gun, "root") is None:
            raise UploadRejected(404, "not_found", None, f"no repository {gun}")
        uploads = self.storage.pending(gun)
        if any(upload.needs is None for upload in uploads):
            # Kept by a server from before pending changes carried what they lack:
            # worked out once, here, and stored.
            with self.storage.write(gun) as transaction:
                self._sweep_pending(gun, transaction)
            uploads = self.storage.pending(gun)
        now = utc_now()
        return [change_of(upload) for upload in uploads if upload.expires > now]

    def approve(
        self, gun: str, upload_id: str, parts: Mapping[str, bytes], actor: str | None = None
    ) -> PublishResult:
        """Add co-signers' signatures to a pending upload; publish it once complete."""
        with self._conflicts_as_409(), self.storage.write(gun) as transaction:
            stored = transaction.latest()
            upload = self._find_pending(gun, transaction, stored, upload_id)
            return self._add_signatures(gun, transaction, stored, upload, parts, actor)

    def _add_signatures(
        self,
        gun: str,
        transaction: WriteTransaction,
        stored: Mapping[str, StoredMetadata],
        upload: PendingUpload,
        parts: Mapping[str, bytes],
        actor: str | None,
        *,
        resent: bool = False,
    ) -> PublishResult:
        """Merge signatures into a pending upload. ``resent``: the same upload sent
        again, which changes nothing unless it brings a signature."""
        before = self._validate(gun, upload.parts, stored)
        merged = {**upload.parts}
        for role, data in parts.items():
            if role not in merged:
                raise UploadRejected(
                    400,
                    "not_in_pending_change",
                    role,
                    f"the pending change {upload.id} holds no {role}; it holds "
                    f"{', '.join(sorted(merged))}",
                )
            merged[role] = with_signatures(upload.id, role, merged[role], data)
        state = self._validate(gun, merged, stored)
        if not state.shortfalls:  # complete: publish (also when nothing new was needed)
            transaction.delete_pending(upload.id)
            versions = self._store(gun, transaction, stored, state, merged)
            transaction.record_change("publish", versions, actor, f"approved {upload.id}")
            self._sweep_pending(gun, transaction)
            return PublishResult(versions)
        if not adds_signatures(before, state):
            if resent:
                return PublishResult(pending=change_of(upload))
            raise UploadRejected(
                400,
                "no_new_signature",
                None,
                f"the approval adds no valid signature to the pending change {upload.id}: "
                "sign with a key that may sign it and has not yet",
            )
        upload = PendingUpload(
            upload.id,
            upload.created,
            upload.expires,
            counted_signatures_only(merged, state),
            needs_of(state),
        )
        transaction.put_pending(upload)
        transaction.record_change("approve", versions_of(state), actor, upload.id)
        return PublishResult(pending=change_of(upload))

    def withdraw(
        self,
        gun: str,
        upload_id: str,
        actor: str | None = None,
        *,
        proof: Sequence[Signature] = (),
        admin: bool = False,
    ) -> None:
        """Withdraw a pending change: for an ``admin`` caller, or one whose ``proof``
        holds a signature of ``withdraw_statement(gun, upload_id)`` by a key that the
        trusted metadata lists for a role of the change (for a change of root, a root
        key). Its content is retired: a re-upload of it is refused."""
        with self.storage.write(gun) as transaction:
            stored = transaction.latest()
            upload = self._find_pending(gun, transaction, stored, upload_id)
            if not admin:
                check_withdraw_proof(gun, upload, stored, proof)
            self._retire(transaction, upload)
            transaction.record_change("withdraw", {}, actor, upload_id)

    def _validate(
        self, gun: str, parts: Mapping[str, bytes], stored: Mapping[str, StoredMetadata]
    ) -> RepositoryAfterUpload:
        server_keys = {role: self._server_keys(gun, role) for role in ONLINE_ROLES}
        return validate_upload(parts, stored, server_keys, self.settings.limits, utc_now())

    def _server_keys(self, gun: str, role: str) -> list[Key]:
        """The server's key for an online role and, during a rotation, the next one."""
        return [
            key
            for key in (
                self.online_keys.existing_public_key(gun, role),
                self.online_keys.existing_next_public_key(gun, role),
            )
            if key is not None
        ]

    def _store(
        self,
        gun: str,
        transaction: WriteTransaction,
        stored: Mapping[str, StoredMetadata],
        state: RepositoryAfterUpload,
        parts: Mapping[str, bytes],
    ) -> dict[str, int]:
        versions: dict[str, int] = {}
        for role, metadata in state.uploaded.items():
            transaction.put(role, metadata.signed.version, parts[role])
            versions[role] = metadata.signed.version
        self._promote_rotated_keys(gun, transaction, state)
        now = utc_now()
        if "snapshot" in state.uploaded:  # the publisher holds the snapshot key
            snapshot = state.uploaded["snapshot"].signed
            self._remember_expiry(gun, "snapshot", snapshot.expires)
            snapshot_meta = meta_for(parts["snapshot"], snapshot.version)
        else:
            snapshot_meta = self._sign_snapshot(gun, transaction, stored, state, parts, now)
            versions["snapshot"] = snapshot_meta.version
        timestamp_version = stored["timestamp"].version + 1 if "timestamp" in stored else 1
        self._put_timestamp(gun, transaction, timestamp_version, snapshot_meta, now)
        versions["timestamp"] = timestamp_version
        return versions

    def _find_pending(
        self,
        gun: str,
        transaction: WriteTransaction,
        stored: Mapping[str, StoredMetadata],
        upload_id: str,
    ) -> PendingUpload:
        for upload in self._sweep_pending(gun, transaction, stored):
            if upload.id == upload_id:
                return upload
        raise UploadRejected(
            404,
            "no_such_pending_change",
            None,
            f"{gun} has no pending change {upload_id}: it was published, withdrawn, made "
            f"stale by a later publish, or expired (see: trustkit approve {gun})",
        )

    def _sweep_pending(
        self,
        gun: str,
        transaction: WriteTransaction,
        stored: Mapping[str, StoredMetadata] | None = None,
    ) -> list[PendingUpload]:
        """The pending uploads that can still be published, each with what it lacks now
        (stored again when that changed); the others are dropped and their content
        retired: expired ones, and those a publish made stale (it took their versions,
        or they no longer validate against what is stored). Runs in every write that
        touches pending changes, at most ``MAX_PENDING`` validations."""
        if stored is None:
            stored = transaction.latest()
        waiting: list[PendingUpload] = []
        now = utc_now()
        for upload in transaction.pending():
            if upload.expires <= now:
                self._retire(transaction, upload)
                continue
            try:
                state = self._validate(gun, upload.parts, stored)
            except UploadRejected:
                self._retire(transaction, upload)
                continue
            needs = needs_of(state)
            if needs != upload.needs:
                upload = dataclasses.replace(upload, needs=needs)
                transaction.put_pending(upload)
            waiting.append(upload)
        return waiting

    @staticmethod
    def _retire(transaction: WriteTransaction, upload: PendingUpload) -> None:
        transaction.delete_pending(upload.id)
        transaction.retire_content(content_digest(parsed(upload.parts)))

    @staticmethod
    @contextlib.contextmanager
    def _conflicts_as_409() -> Iterator[None]:
        try:
            yield
        except VersionConflict as conflict:
            raise UploadRejected(
                409,
                "version_conflict",
                None,
                f"{conflict}: someone published first; fetch and apply the changes again",
            ) from None

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
            snapshot_due = expiry.renewal_due(
                "snapshot", snapshot.expires, now
            ) and self._snapshot_held_by_server(gun, latest)
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

    def delete(self, gun: str, actor: str | None = None) -> bool:
        deleted = self.storage.delete_repository(gun, actor)
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

    def _sign_snapshot(
        self,
        gun: str,
        transaction: WriteTransaction,
        stored: Mapping[str, StoredMetadata],
        state: RepositoryAfterUpload,
        parts: Mapping[str, bytes],
        now: datetime,
    ) -> MetaFile:
        """Sign and store the snapshot of the repository after the upload; its meta for
        the timestamp."""
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
        for role in state.bin_roles():
            # A bin by version only: thousands of them, and every host downloads
            # snapshot. Its signature by the targets keys binds its content.
            if role in state.uploaded:
                meta[role] = MetaFile(state.uploaded[role].signed.version)
        snapshot_version = stored["snapshot"].version + 1 if "snapshot" in stored else 1
        snapshot = new_snapshot(
            snapshot_version, meta, self.settings.expiry.expires("snapshot", now)
        )
        snapshot_bytes = self._sign(gun, snapshot)
        transaction.put("snapshot", snapshot_version, snapshot_bytes)
        self._remember_expiry(gun, "snapshot", snapshot.expires)
        return meta_for(snapshot_bytes, snapshot_version)

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
            if self.settings.expiry.renewal_due(role, expires) and (
                role == "timestamp" or self._snapshot_held_by_server(gun)
            ):
                return True
        return False

    def _snapshot_held_by_server(
        self, gun: str, latest: Mapping[str, StoredMetadata] | None = None
    ) -> bool:
        """Whether the server signs snapshot (else the publisher does, and renews it)."""
        stored = latest["root"] if latest is not None else self.storage.latest(gun, "root")
        if stored is None:
            return False
        root: Root = Metadata[Root].from_bytes(stored.data).signed
        return snapshot_held_by_server(root, {"snapshot": self._server_keys(gun, "snapshot")})
