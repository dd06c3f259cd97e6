"""What every operation of a repository's key holder works with.

``KeyHolder`` holds the settings, the server, the keystore, the passphrases and the
verifier of one command, and the steps publishing, approving and rotating share:
this keystore's signers among a role's keys, an upload (with a snapshot when this
keystore holds its key), and moving tags into hash bins.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from securesystemslib.signer import Signer
from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import Metadata, MetaFile, Root, TargetFile, Targets

from client.pending import PendingChange, pending_from
from client.server_api import ServerAPI
from client.settings import ClientSettings
from client.verify import TrustedRepository, Verifier
from keys.keystore import KeyRecord, Keystore
from keys.passphrase import PassphraseSource
from trustkit.bins import BINS_ROLE, bins_delegation, bins_of, group_by_bin, lay_out_bins
from trustkit.errors import KeystoreError, TrustkitError, UsageError
from trustkit.metadata import new_targets, sign_with

__all__ = ["KeyHolder"]


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

    def _local_records(self, keyids: Iterable[str]) -> list[KeyRecord]:
        wanted = set(keyids)
        return [record for record in self._keystore.records() if record.keyid in wanted]

    def _local_signers(self, keyids: Iterable[str], what: str = "root") -> list[Signer]:
        """Signers for the keys of this keystore among ``keyids``; an error if none."""
        records = self._local_records(keyids)
        if not records:
            raise KeystoreError(
                f"this keystore ({self._keystore.home}) holds none of the {what} keys "
                f"({', '.join(k[:12] for k in keyids)})",
                hint="run this where such a key is, or import it (trustkit key import)",
            )
        return [self._keystore.signer(record, self._passphrases) for record in records]

    def _upload(
        self, gun: str, roles: dict[str, bytes], trusted: TrustedRepository
    ) -> PendingChange | None:
        """Upload (with a snapshot, if this keystore holds the snapshot key); the pending
        change if the server waits for co-signers, else None."""
        return pending_from(gun, self._api.upload(gun, self._with_snapshot(trusted, roles)))

    def _with_snapshot(
        self, trusted: TrustedRepository, roles: dict[str, bytes]
    ) -> dict[str, bytes]:
        """``roles`` and, when the publisher holds the snapshot key (it is in this
        keystore), a new snapshot naming them at their new versions. Versions only: the
        bytes of a role may still gain co-signers' signatures."""
        root = Metadata[Root].from_bytes(roles["root"]).signed if "root" in roles else trusted.root
        keyids = root.roles["snapshot"].keyids
        if "snapshot" in roles or trusted.snapshot is None or not self._local_records(keyids):
            return roles
        snapshot = trusted.edit_snapshot()  # a copy: the verified one stays as it was
        assert snapshot is not None
        for role, data in roles.items():
            if role not in ("root", "snapshot"):
                version = Metadata.from_bytes(data).signed.version
                snapshot.meta[f"{role}.json"] = MetaFile(version)
        snapshot.version += 1
        snapshot.expires = self._settings.expiry.expires("snapshot")
        signed = self._signed_bytes(snapshot, self._local_signers(keyids, "snapshot"))
        return {**roles, "snapshot": signed}

    def into_bins(
        self, trusted: TrustedRepository, count: int, targets: Targets | None = None
    ) -> dict[str, Targets]:
        """The roles that move every tag targets signs (``targets``, already changed, or
        the trusted one) and every tag in bins into ``count`` hash bins, signed by the
        targets keys: targets, ``bins`` and every bin that holds a tag or held one."""
        if not trusted.complete:
            raise AssertionError("moving tags into bins needs every bin loaded")
        targets = targets if targets is not None else trusted.edit_targets()
        if trusted.bins is None and bins_delegation(targets) is not None:
            raise UsageError(
                f"{trusted.gun} has a signer named {BINS_ROLE}, the name hash bins take",
                hint=f"remove it first: trustkit signer remove {BINS_ROLE} {trusted.gun}",
            )
        tags: dict[str, TargetFile] = {}
        for name, metadata in trusted.delegated.items():
            if _is_bin_role(trusted, name):
                tags.update(metadata.targets)
        tags.update(targets.targets)
        role = trusted.root.roles["targets"]
        keys = [trusted.root.keys[keyid] for keyid in role.keyids]
        expiry = self._settings.expiry
        targets.targets = {}
        bins_role = lay_out_bins(
            targets,
            keys,
            role.threshold,
            count,
            expiry.expires(BINS_ROLE),
            trusted.snapshot_versions.get(BINS_ROLE, 0) + 1,
        )
        bins = bins_of(bins_role)
        assert bins is not None
        targets.version += 1
        targets.expires = expiry.expires("targets")
        changed: dict[str, Targets] = {"targets": targets, BINS_ROLE: bins_role}
        grouped = group_by_bin(bins, tags)
        for name in bins.get_roles():
            held = grouped.get(name)
            if held is None and name not in trusted.snapshot_versions:
                continue  # never published: empty to every host already
            metadata = new_targets(expiry.expires(name))
            metadata.version = trusted.snapshot_versions.get(name, 0) + 1
            metadata.targets = {path: tags[path] for path in held or []}
            changed[name] = metadata
        return changed

    @staticmethod
    def _signed_bytes(signed: Any, signers: list[Signer]) -> bytes:
        try:
            return sign_with(signed, signers)
        except UnsignedMetadataError as error:
            raise TrustkitError(f"signing {signed.type} failed: {error}") from None


def _is_bin_role(trusted: TrustedRepository, role: str) -> bool:
    bins = trusted.bins
    return bins is not None and bins.is_delegated_role(role)
