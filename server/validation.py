"""Upload validation: the rules an upload must pass before anything is stored.

Each rule is one function named after it, applied in the order below; the first
broken rule stops the upload with an ``UploadRejected`` naming the role and the
rule. Together they guarantee that what the server publishes verifies for hosts:

1. ``check_role_names``            only root, targets and delegated roles are uploaded
2. ``check_size_limits``           every file and the upload as a whole are within limits
3. ``check_parses_as_role``        each file is TUF metadata of the type its name says
4. ``check_repository_exists``     a repository starts with a root
5. ``check_target_names``          a tag follows Docker's tag grammar, a signed file's
                                   name is a safe relative name; a media type is a string
6. ``check_delegated_role_names``  a delegated role has a valid role name, not a bin's
7. ``check_printable_strings``     no control, format or bidi character in any string
                                   that a host or a co-signer may later be shown
8. ``check_key_ids``               every key listed is under the id TUF computes for it
9. ``check_one_id_per_key``        no public key is listed under two ids
10. ``check_thresholds_reachable`` every role lists only keys that are defined, and a
                                   threshold no greater than their number
11. ``check_bin_layout``           only ``bins`` delegates to hash bins, and to no more
                                   than hosts accept
12. ``check_versions_increase``    versions strictly greater than stored (409 if not:
                                   someone published first); root versions consecutive
13. ``check_root_chained``         a new root is signed by a threshold of the previous
                                   root and of itself
14. ``check_bins_signed_as_targets`` hash bins are delegated to the targets keys with the
                                   targets threshold, at both steps of the delegation
15. ``check_signature_thresholds`` every role after the upload is signed by a threshold
                                   of the keys its delegator lists
16. ``check_not_expired``          uploaded metadata expires in the future
17. ``check_delegated_paths``      a delegated role signs only paths it was delegated
18. ``check_root_lists_server_keys`` the root trusts the keys the server signs with
19. ``check_publisher_snapshot``   a snapshot comes with every upload when, and only
                                   when, the publisher holds the snapshot key; it lists
                                   every role at its version after the upload

An uploaded role that falls short of its threshold only for want of co-signers (at
least one valid signature by a key the *currently trusted* metadata lists, but fewer
than needed) breaks no rule: it is a ``Shortfall``, and the upload as a whole is kept
pending until co-signers add theirs. Every other rule still applies to it in full.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from securesystemslib.signer import Key
from tuf.api.serialization import SerializationError

from server.rules_content import (
    check_delegated_role_names,
    check_parses_as_role,
    check_printable_strings,
    check_repository_exists,
    check_role_names,
    check_size_limits,
    check_target_names,
)
from server.rules_keys import (
    check_bin_layout,
    check_key_ids,
    check_one_id_per_key,
    check_thresholds_reachable,
)
from server.rules_signatures import (
    check_bins_signed_as_targets,
    check_delegated_paths,
    check_not_expired,
    check_publisher_snapshot,
    check_root_chained,
    check_root_lists_server_keys,
    check_signature_thresholds,
    check_versions_increase,
    snapshot_held_by_server,
)
from server.storage import StoredMetadata
from server.upload_state import (
    Limits,
    RepositoryAfterUpload,
    Shortfall,
    UploadRejected,
)

__all__ = [
    "Limits",
    "RepositoryAfterUpload",
    "Shortfall",
    "UploadRejected",
    "snapshot_held_by_server",
    "validate_upload",
]


def validate_upload(
    parts: Mapping[str, bytes],
    stored: Mapping[str, StoredMetadata],
    server_keys: Mapping[str, Sequence[Key]],
    limits: Limits,
    now: datetime,
) -> RepositoryAfterUpload:
    """Apply every rule in order; return the repository as it will be if all pass."""
    try:
        return _validate(parts, stored, server_keys, limits, now)
    except (SerializationError, UnicodeError) as error:
        # Signatures and key ids cover canonical JSON, which has no floats and no lone
        # surrogates: metadata holding them can be neither signed nor verified.
        raise UploadRejected(
            400,
            "malformed",
            None,
            f"the upload holds a value TUF's canonical JSON cannot encode: {error}",
        ) from None


def _validate(
    parts: Mapping[str, bytes],
    stored: Mapping[str, StoredMetadata],
    server_keys: Mapping[str, Sequence[Key]],
    limits: Limits,
    now: datetime,
) -> RepositoryAfterUpload:
    check_role_names(parts)
    check_size_limits(parts, limits)
    uploaded = check_parses_as_role(parts, limits)
    check_repository_exists(uploaded, stored)
    check_target_names(uploaded)
    check_delegated_role_names(uploaded)
    check_printable_strings(uploaded)
    check_key_ids(uploaded)
    check_one_id_per_key(uploaded)
    check_thresholds_reachable(uploaded)
    check_bin_layout(uploaded)
    check_versions_increase(uploaded, stored)
    root_signers, root_shortfalls = check_root_chained(uploaded, stored)
    state = RepositoryAfterUpload(uploaded, stored)
    if "root" in uploaded:
        state.valid_signers["root"] = root_signers
    state.shortfalls.extend(root_shortfalls)
    check_bins_signed_as_targets(state)
    check_signature_thresholds(state)
    check_not_expired(uploaded, now)
    check_delegated_paths(state)
    check_root_lists_server_keys(state, server_keys)
    check_publisher_snapshot(state, parts, server_keys)
    return state
