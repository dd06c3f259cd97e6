"""Upload rules 12-19 (see ``server.validation``): versions, signatures and
delegations: a chained root, thresholds met, unexpired metadata, delegated paths,
the server's keys in the root, and the publisher's snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from securesystemslib.signer import Key
from tuf.api.metadata import (
    Metadata,
    Root,
    SuccinctRoles,
    Targets,
)

from server.storage import StoredMetadata
from server.upload_state import (
    Delegation,
    RepositoryAfterUpload,
    Shortfall,
    UploadRejected,
)
from trustkit.bins import (
    BINS_ROLE,
    bins_delegation,
    bins_of,
)
from trustkit.metadata import ONLINE_ROLES


def check_versions_increase(
    uploaded: Mapping[str, Metadata[Any]], stored: Mapping[str, StoredMetadata]
) -> None:
    for role, metadata in uploaded.items():
        version = metadata.signed.version
        previous = stored.get(role)
        if role == "root":
            expected = previous.version + 1 if previous else 1
            if previous and version <= previous.version:
                raise UploadRejected(
                    409,
                    "version_conflict",
                    role,
                    f"root version {version} is not newer than stored version "
                    f"{previous.version}; fetch the latest root and apply the change again",
                )
            if version != expected:
                raise UploadRejected(
                    400,
                    "root_version_gap",
                    role,
                    f"root version {version} must be {expected}: root versions are consecutive",
                )
        elif previous and version <= previous.version:
            raise UploadRejected(
                409,
                "version_conflict",
                role,
                f"{role} version {version} is not newer than stored version {previous.version}; "
                "someone published first: fetch the latest metadata and apply the changes again",
            )


def check_root_chained(
    uploaded: Mapping[str, Metadata[Any]], stored: Mapping[str, StoredMetadata]
) -> tuple[set[str], list[Shortfall]]:
    """The key ids whose signatures count for a new root, and what it still lacks.

    A root partly signed is a shortfall (kept pending) only when a key of the trusted,
    previous root signed it: a root signed only by the keys it lists itself is anyone's.
    """
    new_root = uploaded.get("root")
    if new_root is None:
        return set(), []
    previous: Root | None = None
    if "root" in stored:
        previous = Metadata[Root].from_bytes(stored["root"].data).signed
    result = new_root.signed.get_root_verification_result(
        previous, new_root.signed_bytes, new_root.signatures
    )
    first, second = result.first, result.second
    valid = set(first.signed) | set(second.signed)
    if result.verified:
        return valid, []
    version = new_root.signed.version
    if previous is None or not first.signed:
        if previous is not None:
            detail = (
                f"new root v{version} is signed by {len(first.signed)} of the "
                f"{first.threshold} previous root keys needed; sign it with the current root key"
            )
            error = "root_not_chained"
        else:
            detail = (
                f"root v{version} is signed by {len(second.signed)} of the "
                f"{second.threshold} root keys it lists"
            )
            error = "threshold_not_met"
        raise UploadRejected(400, error, "root", detail)
    shortfalls = []
    if not first.verified:
        shortfalls.append(
            Shortfall(
                "root",
                f"root v{version - 1}",
                sorted(first.signed),
                first.threshold,
                sorted(previous.roles["root"].keyids),
            )
        )
    if not second.verified:
        shortfalls.append(
            Shortfall(
                "root",
                f"root v{version}",
                sorted(second.signed),
                second.threshold,
                sorted(new_root.signed.roles["root"].keyids),
            )
        )
    return valid, shortfalls


def _signers_needed(
    delegator: Root | Targets, role: str, metadata: Metadata[Any]
) -> tuple[bool, set[str], int, list[str]]:
    result = delegator.get_verification_result(role, metadata.signed_bytes, metadata.signatures)
    return (
        result.verified,
        set(result.signed),
        result.threshold,
        sorted(result.unsigned | result.signed),
    )


def check_bins_signed_as_targets(state: RepositoryAfterUpload) -> None:
    """Hash bins are targets split up: hosts and co-signers see a tag in a bin as signed
    by the targets keys. So both steps of the delegation, targets -> ``bins`` and
    ``bins`` -> the bins, list exactly the keys and threshold root gives targets (else
    one holder of a 2-of-2 targets key could hand the bins to their key alone); ``bins``
    signs no tag itself and is the last of targets' delegations."""
    bins = state.get(BINS_ROLE)
    succinct = bins_of(bins.signed) if bins is not None else None
    if bins is None or succinct is None:
        return
    targets = state.get("targets")
    delegation = bins_delegation(targets.signed) if targets is not None else None
    if targets is None or delegation is None:
        raise UploadRejected(
            400,
            "bins_not_delegated",
            BINS_ROLE,
            f"{BINS_ROLE} delegates to hash bins but targets does not delegate to {BINS_ROLE}",
        )
    expected = state.root.roles["targets"]
    for name, role in (("targets", delegation), (BINS_ROLE, succinct)):
        if set(role.keyids) != set(expected.keyids) or role.threshold != expected.threshold:
            raise UploadRejected(
                400,
                "bins_keys_differ",
                name,
                f"{name} delegates the hash bins to {len(role.keyids)} key(s) with threshold "
                f"{role.threshold}; hash bins are signed by the targets keys with the targets "
                f"threshold (root lists {len(expected.keyids)} key(s), threshold "
                f"{expected.threshold}): delegate to exactly those (trustkit bins lays the "
                "bins out again)",
            )
    if bins.signed.targets:
        raise UploadRejected(
            400,
            "bins_signs_tags",
            BINS_ROLE,
            f"{BINS_ROLE} signs {len(bins.signed.targets)} tag(s) itself; it only delegates "
            "to the hash bins, which sign the tags",
        )
    delegations = targets.signed.delegations
    assert delegations is not None and delegations.roles is not None  # it delegates bins
    if list(delegations.roles)[-1] != BINS_ROLE:
        raise UploadRejected(
            400,
            "bins_not_last",
            "targets",
            f"targets delegates to {BINS_ROLE} before other roles; TUF's lookup ends in the "
            f"hash bins, so {BINS_ROLE} comes last",
        )


def check_signature_thresholds(state: RepositoryAfterUpload) -> None:
    roles = ["targets", *state.delegated_roles()]
    bins = state.bin_roles()
    others = [
        r
        for r in state.uploaded
        if r not in roles and r not in bins and r not in ("root", "snapshot")
    ]
    for role in [*roles, *bins, *others]:
        metadata = state.get(role)
        if metadata is None:
            continue
        delegator: Root | Targets
        if role == "targets":
            delegator_name, delegator = "root", state.root
        else:
            found = state.delegator(role)
            if found is None:
                raise UploadRejected(
                    400,
                    "unknown_role",
                    role,
                    f"{role} is not delegated by targets or any delegated role",
                )
            delegator_name, delegator, _ = found
        if role not in state.uploaded and delegator_name not in state.uploaded:
            continue  # neither the role nor what it is checked against changed
        verified, signed, threshold, keyids = _signers_needed(delegator, role, metadata)
        if role in state.uploaded:
            state.valid_signers[role] = signed
        if verified:
            continue
        if role in state.uploaded and signed:
            # Signed by some of the keys its delegator lists: co-signers may complete it.
            # (A delegator in this same upload was checked first: it is trusted, or itself
            # pending on the trusted keys.)
            state.shortfalls.append(
                Shortfall(role, delegator_name, sorted(signed), threshold, keyids)
            )
            continue
        if role in state.uploaded:
            raise UploadRejected(
                400,
                "threshold_not_met",
                role,
                f"{role} is signed by {len(signed)} of the {threshold} keys its delegator lists",
            )
        raise UploadRejected(
            400,
            "stale_role",
            role,
            f"stored {role} is not signed by the keys the new metadata lists; "
            f"re-sign {role} and upload it in the same publish",
        )


def check_not_expired(uploaded: Mapping[str, Metadata[Any]], now: datetime) -> None:
    for role, metadata in uploaded.items():
        if metadata.signed.is_expired(now):
            raise UploadRejected(
                400,
                "expired",
                role,
                f"{role} expired at {metadata.signed.expires.isoformat()}; "
                "sign it again with a future expiry",
            )


def check_delegated_paths(state: RepositoryAfterUpload) -> None:
    """A delegated role signs only paths that every delegation above it allows: a signer
    cannot widen its own paths by delegating on to a role of its own. A hash bin signs
    only the tags whose names hash into it, and delegates nothing."""
    for role, metadata in state.uploaded.items():
        if role in ("root", "targets", "snapshot"):
            continue
        chain = _delegation_chain(state, role)
        if isinstance(chain[0][1], SuccinctRoles) and metadata.signed.delegations is not None:
            raise UploadRejected(
                400, "bin_delegates", role, f"{role} is a hash bin: it may delegate nothing"
            )
        for path in metadata.signed.targets:
            for name, delegation in chain:
                if isinstance(delegation, SuccinctRoles):
                    if delegation.get_role_for_target(path) != name:
                        raise UploadRejected(
                            400,
                            "outside_delegated_paths",
                            role,
                            f"{role} signs '{path}', which belongs in the hash bin "
                            f"{delegation.get_role_for_target(path)}",
                        )
                elif not delegation.is_delegated_path(path):
                    allowed = delegation.paths or delegation.path_hash_prefixes or []
                    whose = "its" if name == role else f"its delegator {name}'s"
                    raise UploadRejected(
                        400,
                        "outside_delegated_paths",
                        role,
                        f"{role} signs '{path}', which is outside {whose} delegated paths "
                        f"({', '.join(allowed)})",
                    )


def _delegation_chain(state: RepositoryAfterUpload, role: str) -> list[tuple[str, Delegation]]:
    """The delegations from ``role`` up to targets: each role's name and its delegation."""
    chain: list[tuple[str, Delegation]] = []
    name = role
    while name != "targets" and len(chain) <= len(state.delegated_roles()):
        found = state.delegator(name)
        assert found is not None  # check_signature_thresholds ran first
        parent, _, delegation = found
        chain.append((name, delegation))
        name = parent
    return chain


def snapshot_held_by_server(root: Root, server_keys: Mapping[str, Sequence[Key]]) -> bool:
    """Whether ``root`` trusts the server's snapshot key (else the publisher holds it)."""
    usable = {key.keyid for key in server_keys.get("snapshot", ())}
    return bool(usable & set(root.roles["snapshot"].keyids))


def check_root_lists_server_keys(
    state: RepositoryAfterUpload, server_keys: Mapping[str, Sequence[Key]]
) -> None:
    """``server_keys`` are, per online role, the server's key and, during a rotation, the
    next one: a new root may list either. The timestamp key is always the server's; the
    snapshot key may be the publisher's instead."""
    if "root" not in state.uploaded:
        return
    root = state.root
    for role in ONLINE_ROLES:
        listed = root.roles[role]
        if role == "snapshot" and not snapshot_held_by_server(root, server_keys):
            continue
        usable = {key.keyid for key in server_keys.get(role, ())}
        if not usable & set(listed.keyids) or listed.threshold != 1:
            raise UploadRejected(
                400,
                "server_keys_missing",
                "root",
                f"root must list the server's {role} key with threshold 1 "
                f"(fetch it from {role}.key) so the server can sign {role}",
            )


def check_publisher_snapshot(
    state: RepositoryAfterUpload,
    parts: Mapping[str, bytes],
    server_keys: Mapping[str, Sequence[Key]],
) -> None:
    """A publisher who holds the snapshot key sends a snapshot with every upload: signed
    by a threshold of the snapshot keys root lists, naming every targets role at its
    version after the upload (and the hash of its bytes, if it gives one), dropping
    no role an earlier snapshot named."""
    root = state.root
    uploaded = state.uploaded.get("snapshot")
    if snapshot_held_by_server(root, server_keys):
        if uploaded is not None:
            raise UploadRejected(
                400,
                "server_signed_role",
                "snapshot",
                "snapshot is signed by the server for this repository; upload root, targets "
                "or delegated roles only",
            )
        return
    if uploaded is None:
        raise UploadRejected(
            400,
            "snapshot_missing",
            "snapshot",
            "the publisher holds the snapshot key of this repository: upload a new snapshot "
            "with every change (trustkit does when the key is in its keystore)",
        )
    verified, signed, threshold, _ = _signers_needed(root, "snapshot", uploaded)
    if not verified:
        raise UploadRejected(
            400,
            "threshold_not_met",
            "snapshot",
            f"snapshot is signed by {len(signed)} of the {threshold} snapshot keys root lists",
        )
    meta = {name.removesuffix(".json"): info for name, info in uploaded.signed.meta.items()}
    previous = state.get_stored("snapshot")
    if previous is not None:
        for name, info in previous.signed.meta.items():
            role = name.removesuffix(".json")
            if role not in meta or meta[role].version < info.version:
                raise UploadRejected(
                    400,
                    "snapshot_rollback",
                    "snapshot",
                    f"snapshot lists {role} at version "
                    f"{meta[role].version if role in meta else 'none'}, below the "
                    f"{info.version} hosts already trust",
                )
    for role in ["targets", *state.delegated_roles(), *state.bin_roles()]:
        current = state.get(role)
        if current is None:
            continue
        info = meta.get(role)
        if info is None or info.version != current.signed.version:
            raise UploadRejected(
                400,
                "snapshot_mismatch",
                "snapshot",
                f"snapshot lists {role} at version {info.version if info else 'none'}; "
                f"after this upload it is version {current.signed.version}",
            )
        data = parts.get(role) if role in state.uploaded else state.stored_bytes(role)
        if data is not None and (info.length is not None or info.hashes):
            try:
                info.verify_length_and_hashes(data)
            except Exception:  # python-tuf's LengthOrHashMismatchError
                raise UploadRejected(
                    400,
                    "snapshot_mismatch",
                    "snapshot",
                    f"snapshot gives a length or hash for {role} that its bytes do not have",
                ) from None
