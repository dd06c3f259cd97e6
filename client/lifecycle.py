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

import copy
import json
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from securesystemslib.signer import Key, Signer
from tuf.api.metadata import DelegatedRole, Delegations, Metadata, Role, Root

from client.approval import PendingChange, write_change_file
from client.publisher import KeyHolder
from client.settings import ClientSettings
from client.verify import TrustedRepository
from keys.files import write_private_file
from keys.keystore import KeyRecord, Keystore
from trustkit.bins import BINS_ROLE, is_bin_name
from trustkit.errors import UsageError
from trustkit.expiry import utc_now
from trustkit.metadata import ONLINE_ROLES, TOP_LEVEL_ROLES, new_targets

__all__ = [
    "OFFLINE_ROLES",
    "Lifecycle",
    "RefreshResult",
    "RoleExpiry",
    "RotationResult",
    "RotationsAwaiting",
    "SignerChange",
    "signers_of",
    "validate_signer_name",
    "describe_record",
    "listed_by",
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
    pending: PendingChange | None = None  # the new root waits for co-holders' signatures


@dataclass(frozen=True)
class SignerChange:
    gun: str
    name: str
    targets_version: int
    published: bool  # whether the signer's own role went up too
    pending: PendingChange | None = None


_SIGNER_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def validate_signer_name(name: str) -> str:
    reserved = name in (*TOP_LEVEL_ROLES, BINS_ROLE) or is_bin_name(name)
    if not _SIGNER_NAME.fullmatch(name) or reserved:
        raise UsageError(
            f"'{name}' is not a valid signer name",
            hint="use up to 64 lower-case letters, digits, '.', '_' or '-' (not a role of "
            "the repository such as targets, bins or bins-0a)",
        )
    return name


def signers_of(repository: TrustedRepository) -> list[dict[str, Any]]:
    """The signer roles of a repository, as ``trustkit signer list`` shows them."""
    delegations = repository.targets.delegations
    if delegations is None or not delegations.roles:
        return []
    return [
        {
            "name": role.name,
            "keys": list(role.keyids),
            "threshold": role.threshold,
            "paths": list(role.paths or []),
            "path_hash_prefixes": list(role.path_hash_prefixes or []),
            "terminating": role.terminating,
            "published": role.name in repository.delegated,
            "tags": sorted(
                tag
                for tag in repository.delegated.get(role.name, new_targets(utc_now())).targets
                if repository.lookup(tag) is not None and repository.signer(tag) == role.name
            ),
        }
        for role in delegations.roles.values()
        if role.name != BINS_ROLE
    ]


@dataclass(frozen=True)
class RefreshResult:
    gun: str
    renewed: dict[str, int]  # role -> new version
    pending: PendingChange | None = None


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
    bins = repository.bins
    statuses = [s for s in repository.roles if not (bins and bins.is_delegated_role(s.role))]
    in_bins = [s for s in repository.roles if bins and bins.is_delegated_role(s.role)]
    if in_bins:  # one line for all of them: the first to expire
        first = min(in_bins, key=lambda status: status.expires)
        statuses.append(replace(first, role=f"{BINS_ROLE}-* ({len(in_bins)} published)"))
    for status in statuses:
        role = repository.root.roles.get(status.role) or delegation_of(repository, status.role)
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


def delegation_of(repository: TrustedRepository, name: str) -> Role:
    """The delegation of a signer role or of the bins, from whichever verified role
    delegates it."""
    if name.startswith(f"{BINS_ROLE}-") and repository.bins is not None:
        return repository.bins
    for metadata in (repository.targets, *repository.delegated.values()):
        delegations = metadata.delegations
        if delegations is not None and delegations.roles and name in delegations.roles:
            return delegations.roles[name]
    raise UsageError(f"{name} is not a signer of {repository.gun}")


class Lifecycle(KeyHolder):
    """Rotation and renewal of a repository's offline roles."""

    def rotate(
        self,
        gun: str,
        role: str,
        keytype: str = "ed25519",
        *,
        use: KeyRecord | None = None,
        co_holders: list[Key] | None = None,
        threshold: int | None = None,
        out: Path | None = None,
        held_by: str | None = None,
    ) -> RotationResult:
        """Replace every key of ``role`` in a new root version.

        Root and targets get one key of this keystore (``use``, or a new one) plus the
        public keys of ``co_holders``, with ``threshold`` signatures needed (default 1).
        When the new root needs signatures this keystore cannot make, the server keeps
        it pending until the co-holders approve it. With ``out``, the signed change is
        written there for co-holders to sign offline (``approve --file``) and send
        (``submit``), and nothing is uploaded.

        Timestamp keys, and snapshot keys unless the publisher holds them, are made by
        the server, which signs with them from the moment it accepts the root that lists
        them. ``held_by`` ("publisher" or "server") moves the snapshot key: to a new key
        in this keystore, which then signs a snapshot with every upload, or back.
        """
        co_holders = co_holders or []
        needed = _check_rotation(gun, role, use, co_holders, threshold, held_by)
        trusted = self._verifier.trusted_repository(gun)
        root = trusted.edit_root()
        old_keys = list(root.roles[role].keyids)
        old_root_signers = self._local_signers(root.roles["root"].keyids)
        local = role in OFFLINE_ROLES
        if role == "snapshot":
            local = held_by == "publisher" or (
                held_by is None and bool(self._local_records(old_keys))
            )
        if not local:
            if use or co_holders or threshold or out:
                raise UsageError(
                    f"the server makes the {role} key: --use, --key, --threshold and --out "
                    "do not apply"
                )
            return self._rotate_server_key(gun, role, old_keys, old_root_signers, trusted)
        # Re-signing existing tags needs only the new key, not the old one: a lost
        # targets key can be rotated out as well as a stolen one.
        new = use or self._keystore.generate(gun, role, self._passphrases, keytype)
        try:
            self._replace_keys(root, role, old_keys, [new.public, *co_holders], needed)
            new_signers = [self._keystore.signer(new, self._passphrases)]
            root_signers = old_root_signers + (new_signers if role == "root" else [])
            upload = {"root": self._signed_bytes(root, root_signers)}
            upload |= self._resigned_by_new_targets_key(trusted, root, role, new_signers)
            upload = self._with_snapshot(trusted, upload)  # by the new key, if snapshot's
            pending = self._send_rotation(gun, upload, trusted, out)
        except BaseException:
            if use is None:
                self._keystore.remove(new)
            raise
        if pending is None:
            self._retire(gun, role, keep=new.keyid)
            self._verifier.trusted_repository(gun)  # this host follows its own rotation
        else:
            # Completed later, by a co-holder: the retired key goes then, as here.
            RotationsAwaiting(self._settings).add(gun, role, new.keyid)
        return RotationResult(
            gun, role, old_keys, [new.keyid, *(k.keyid for k in co_holders)], root.version, pending
        )

    def _resigned_by_new_targets_key(
        self, trusted: TrustedRepository, root: Root, role: str, new_signers: list[Signer]
    ) -> dict[str, bytes]:
        """When ``role`` is targets, what the new targets key must sign again: targets
        and, in a repository with hash bins, every bin (the targets keys sign them)."""
        if role != "targets":
            return {}
        if trusted.bins is not None:
            # The bins delegation lists the new root's targets keys.
            moved = self.into_bins(replace(trusted, root=root), trusted.bins.number_of_bins)
            return {name: self._signed_bytes(md, new_signers) for name, md in moved.items()}
        targets = trusted.edit_targets()
        targets.version += 1
        targets.expires = self._settings.expiry.expires("targets")
        return {"targets": self._signed_bytes(targets, new_signers)}

    def _send_rotation(
        self, gun: str, upload: dict[str, bytes], trusted: TrustedRepository, out: Path | None
    ) -> PendingChange | None:
        """Upload the rotation (None: published), or with ``out`` write it there for the
        co-holders to sign offline (the change they complete)."""
        if out is None:
            return self._upload(gun, upload, trusted)
        pending = PendingChange(
            gun, {name: Metadata.from_bytes(data) for name, data in upload.items()}
        )
        write_change_file(out, pending)
        return pending

    def _rotate_server_key(
        self,
        gun: str,
        role: str,
        old_keys: list[str],
        root_signers: list[Signer],
        trusted: TrustedRepository,
    ) -> RotationResult:
        new_key = self._api.next_server_key(gun, role)
        root = trusted.edit_root()
        self._replace_keys(root, role, old_keys, [new_key], 1)
        pending = self._upload(gun, {"root": self._signed_bytes(root, root_signers)}, trusted)
        if pending is None:
            self._retire(gun, role, keep=new_key.keyid)  # a snapshot key held here before
            self._verifier.trusted_repository(gun)
        return RotationResult(gun, role, old_keys, [new_key.keyid], root.version, pending)

    def _replace_keys(
        self, root: Root, role: str, old_keys: list[str], new_keys: list[Key], threshold: int
    ) -> None:
        for keyid in old_keys:
            root.revoke_key(keyid, role)
        for key in new_keys:
            root.add_key(key, role)
        root.roles[role].threshold = threshold
        root.version += 1
        root.expires = self._settings.expiry.expires("root")

    def refresh(self, gun: str, within: timedelta) -> RefreshResult:
        """Re-sign root and targets (and a snapshot held here) when they expire within
        ``within``; else nothing. Metadata that already expired is renewed too: it is
        verified in every way but its expiry before it is signed again."""
        trusted = self._verifier.trusted_repository(gun, allow_expired=True)
        now = utc_now()
        upload: dict[str, bytes] = {}
        renewed: dict[str, int] = {}
        for role, signed in (("root", trusted.edit_root()), ("targets", trusted.edit_targets())):
            if signed.expires - now > within:
                continue
            signed.version += 1
            signed.expires = self._settings.expiry.expires(role, now)
            keyids = trusted.root.roles[role].keyids
            upload[role] = self._signed_bytes(signed, self._local_signers(keyids, role))
            renewed[role] = signed.version
        bins = trusted.bins
        for name, published in trusted.delegated.items():
            if name != BINS_ROLE and not (bins and bins.is_delegated_role(name)):
                continue  # signers renew their own roles
            if published.expires - now > within:
                continue
            metadata = copy.deepcopy(published)
            metadata.version += 1
            metadata.expires = self._settings.expiry.expires(name, now)
            keyids = trusted.root.roles["targets"].keyids
            upload[name] = self._signed_bytes(metadata, self._local_signers(keyids, "targets"))
            renewed[name] = metadata.version
        snapshot = trusted.snapshot
        if snapshot is not None and snapshot.expires - now <= within:
            upload = self._with_snapshot(trusted, upload)
            if "snapshot" in upload:
                renewed["snapshot"] = Metadata.from_bytes(upload["snapshot"]).signed.version
        pending = None
        if upload:
            pending = self._upload(gun, upload, trusted)
            if pending is None:
                self._verifier.trusted_repository(gun)
        return RefreshResult(gun, renewed, pending)

    def add_signer(
        self,
        gun: str,
        name: str,
        keys: list[Key],
        paths: list[str],
        threshold: int,
        terminating: bool,
    ) -> SignerChange:
        """Delegate ``paths`` to a new signer role, in a new targets version.

        When this keystore holds enough of the signer's keys, the signer's empty first
        version goes up in the same upload, so hosts see the role at once.
        """
        validate_signer_name(name)
        if not keys:
            raise UsageError("a signer needs at least one --key")
        if not 1 <= threshold <= len(keys):
            raise UsageError(f"--threshold {threshold} must be between 1 and {len(keys)}")
        trusted = self._verifier.trusted_repository(gun)
        targets = trusted.edit_targets()
        if targets.delegations is None:
            targets.delegations = Delegations(keys={}, roles={})
        delegations = targets.delegations
        if delegations.roles is None or delegations.succinct_roles is not None:
            raise UsageError(f"{gun} delegates to hash bins; signers cannot be added to it")
        if name in delegations.roles:
            raise UsageError(
                f"{gun} already has a signer {name}",
                hint=f"remove it first: trustkit signer remove {name} {gun}",
            )
        for key in keys:
            delegations.keys[key.keyid] = key
        keyids = [key.keyid for key in keys]
        delegations.roles[name] = DelegatedRole(name, keyids, threshold, terminating, paths)
        if BINS_ROLE in delegations.roles:  # bins stay last: TUF's lookup ends in them
            delegations.roles[BINS_ROLE] = delegations.roles.pop(BINS_ROLE)
        targets.version += 1
        targets.expires = self._settings.expiry.expires("targets")
        signers = self._local_signers(trusted.root.roles["targets"].keyids, "targets")
        upload = {"targets": self._signed_bytes(targets, signers)}
        local = self._local_records(keyids)
        if name in trusted.snapshot_versions and len(local) < threshold:
            # The server still holds what a removed signer of this name signed: without
            # a fresh first version above it, those tags would count again.
            raise UsageError(
                f"a signer named {name} was removed from {gun} before, and what it signed "
                "is still on the server",
                hint=f"choose another name, or run this where {threshold} of {name}'s keys "
                "are (trustkit key import) so a fresh, empty version replaces it",
            )
        if len(local) >= threshold:
            first = new_targets(self._settings.expiry.expires(name))
            first.version = trusted.snapshot_versions.get(name, 0) + 1
            own = [self._keystore.signer(record, self._passphrases) for record in local]
            upload[name] = self._signed_bytes(first, own)
        pending = self._upload(gun, upload, trusted)
        return SignerChange(gun, name, targets.version, name in upload, pending)

    def remove_signer(self, gun: str, name: str) -> SignerChange:
        """Take a signer role out of targets: what it signed stops counting at once."""
        trusted = self._verifier.trusted_repository(gun)
        targets = trusted.edit_targets()
        delegations = targets.delegations
        if (
            delegations is None
            or not delegations.roles
            or name not in delegations.roles
            or name == BINS_ROLE
        ):
            raise UsageError(f"{gun} has no signer {name}", hint=f"see: trustkit signer list {gun}")
        removed = delegations.roles.pop(name)
        still_used = {keyid for role in delegations.roles.values() for keyid in role.keyids}
        for keyid in removed.keyids:
            if keyid not in still_used:
                delegations.keys.pop(keyid, None)
        if not delegations.roles:
            targets.delegations = None
        targets.version += 1
        targets.expires = self._settings.expiry.expires("targets")
        signers = self._local_signers(trusted.root.roles["targets"].keyids, "targets")
        upload = {"targets": self._signed_bytes(targets, signers)}
        pending = self._upload(gun, upload, trusted)
        return SignerChange(gun, name, targets.version, False, pending)

    def _retire(self, gun: str, role: str, *, keep: str) -> None:
        for record in self._keystore.find(gun, role):
            if record.keyid != keep:
                self._keystore.remove(record)


class RotationsAwaiting:
    """Rotations of this keystore that co-holders must complete, kept so that the keys
    they retire are removed once they are published (as a one-step rotation removes
    them at once): which key of which role of which repository replaces the others."""

    def __init__(self, settings: ClientSettings) -> None:
        self._path = settings.home / "rotations.json"

    def add(self, gun: str, role: str, new_keyid: str) -> None:
        entries = [e for e in self._load() if (e["gun"], e["role"]) != (gun, role)]
        entries.append({"gun": gun, "role": role, "new": new_keyid})
        self._save(entries)

    def retire_published(self, keystore: Keystore, trusted: TrustedRepository) -> list[KeyRecord]:
        """Remove the keys that ``trusted`` shows rotated out by a rotation of this
        keystore: its new key listed, theirs not. The keys removed."""
        removed: list[KeyRecord] = []
        kept = []
        for entry in self._load():
            if entry["gun"] != trusted.gun:
                kept.append(entry)
                continue
            listed = set(trusted.root.roles[entry["role"]].keyids)
            if entry["new"] not in listed:
                kept.append(entry)  # not published (yet): nothing is retired
                continue
            for record in keystore.find(trusted.gun, entry["role"]):
                if record.keyid not in listed:
                    keystore.remove(record)
                    removed.append(record)
        self._save(kept)
        return removed

    def _load(self) -> list[dict[str, str]]:
        try:
            entries = json.loads(self._path.read_bytes())
        except (FileNotFoundError, ValueError):
            return []
        return [e for e in entries if isinstance(e, dict) and {"gun", "role", "new"} <= set(e)]

    def _save(self, entries: list[dict[str, str]]) -> None:
        if not entries:
            self._path.unlink(missing_ok=True)
            return
        write_private_file(self._path, json.dumps(entries, indent=2).encode())


def listed_by(record: KeyRecord, trusted: TrustedRepository) -> bool:
    """Whether the repository, as last verified, still lists the key for its role."""
    roles = trusted.root.roles
    if record.role in roles:
        return record.keyid in roles[record.role].keyids
    delegations = trusted.targets.delegations
    role = delegations.roles.get(record.role) if delegations and delegations.roles else None
    return role is None or record.keyid in role.keyids


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


def _check_rotation(
    gun: str,
    role: str,
    use: KeyRecord | None,
    co_holders: list[Key],
    threshold: int | None,
    held_by: str | None,
) -> int:
    """Refuse a rotation the options cannot make; the threshold it needs."""
    if role not in (*OFFLINE_ROLES, *ONLINE_ROLES):
        raise UsageError(f"{role} is not a role of {gun} with keys of its own")
    if held_by is not None and role != "snapshot":
        raise UsageError(
            f"only the snapshot key can move between publisher and server, not {role}'s",
            hint="the timestamp key is always the server's; root and targets keys never are",
        )
    if use is not None and (use.gun, use.role) != (gun, role):
        raise UsageError(
            f"--use takes a key kept for the {role} of {gun}; {use.keyid[:12]} is the "
            f"{use.description}",
            hint=f"import it for that role first: trustkit key import --repository {gun} "
            f"--role {role} …",
        )
    needed = 1 if threshold is None else threshold
    if not 1 <= needed <= 1 + len(co_holders):
        raise UsageError(
            f"--threshold {needed} must be between 1 and {1 + len(co_holders)} "
            "(this keystore's key and one per --key)"
        )
    return needed
