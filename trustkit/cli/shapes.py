"""Every ``--json`` document the command line prints, declared once.

Handlers build these; README's "``--json`` output" documents the stable ones (and
tests/test_json_shapes.py holds the two to the same keys). A key in ``NotRequired``
appears only in some answers, as its comment says.
"""

from typing import Any, NotRequired, TypedDict

__all__ = [
    "ApproveFileJSON",
    "ApproveJSON",
    "BinsJSON",
    "ChangefeedEntryJSON",
    "ChangefeedJSON",
    "ComposePinJSON",
    "DeleteJSON",
    "DockerTrustImportJSON",
    "ErrorJSON",
    "ExportJSON",
    "InitJSON",
    "InspectJSON",
    "KeyExportJSON",
    "KeyGenerateJSON",
    "KeyImportJSON",
    "KeyListJSON",
    "KeyPasswdJSON",
    "KeyRemoveJSON",
    "KeyRotateJSON",
    "MigrationFailedJSON",
    "MigrationJSON",
    "MigrationsJSON",
    "NothingToPublishJSON",
    "PendingJSON",
    "PublishJSON",
    "RefreshJSON",
    "ResetJSON",
    "SignerAddJSON",
    "SignerListJSON",
    "SignerRemoveJSON",
    "StagedJSON",
    "StatusJSON",
    "SubmitJSON",
    "TrustForgetJSON",
    "TrustPinJSON",
    "VerifyFileJSON",
    "VerifyJSON",
]


class ErrorJSON(TypedDict):
    """Any refusal; the exit code says which kind."""

    error: str
    message: str
    hint: str | None


class PendingJSON(TypedDict):
    """A change the server keeps until co-signers approve it."""

    id: str
    expires: str
    needs: list[dict[str, Any]]


class VerifyJSON(TypedDict):
    """verify and resolve."""

    repository: str
    tag: str | None
    digest: str | None  # None: the policy let an unsigned image through (resolve)
    size: NotRequired[int | None]  # signed only
    media_type: NotRequired[str | None]  # signed only
    reference: str
    registry_digest: NotRequired[str | None]  # verify only; None offline or unasked


class InspectTagJSON(TypedDict):
    tag: str
    digest: str
    size: int
    media_type: str | None
    signer: str


class InspectFileJSON(TypedDict):
    name: str
    sha256: str | None
    size: int
    signer: str


class InspectRoleJSON(TypedDict):
    role: str
    version: int
    expires: str
    signed_by: list[str]


class InspectBinsJSON(TypedDict):
    count: int
    published: int


class InspectJSON(TypedDict):
    repository: str
    tags: list[InspectTagJSON]
    files: list[InspectFileJSON]  # signed with sign-file
    roles: list[InspectRoleJSON]
    bins: NotRequired[InspectBinsJSON]  # with hash bins only


class ChangefeedEntryJSON(TypedDict):
    """One line of the audit changefeed, as the server sends it."""

    seq: int
    time: str
    repository: str
    action: str  # publish, pending, approve, withdraw, next_key, delete
    versions: dict[str, int]
    token: str | None  # the token's name; None on a server without auth
    detail: str | None


class ChangefeedJSON(TypedDict):
    """changefeed (without --follow, which prints one ChangefeedEntryJSON a line)."""

    entries: list[ChangefeedEntryJSON]
    next: int  # give it to --after to go on


class PublishJSON(TypedDict):
    """sign, sign-file, revoke, publish."""

    repository: str
    published: bool  # False while the change waits for co-signers
    role: str
    targets_version: int
    changes: int
    attempts: int
    pending: NotRequired[PendingJSON]


class StagedJSON(TypedDict):
    """sign, sign-file, revoke with --no-publish."""

    repository: str
    published: bool
    staged: str


class NothingToPublishJSON(TypedDict):
    repository: str
    published: bool
    changes: int


class InitJSON(TypedDict):
    repository: str
    keys: dict[str, list[str]]
    bins: int | None


class BinsJSON(TypedDict):
    repository: str
    published: bool
    tags: int
    bins_signed: int
    targets_version: int
    pending: NotRequired[PendingJSON]


class ResetJSON(TypedDict):
    repository: str
    dropped: int


class StatusRoleJSON(TypedDict):
    role: str
    version: int
    expires: str
    days_left: float
    keys: list[str]
    threshold: int
    warning: bool


class StatusJSON(TypedDict):
    repository: str
    pending_changes: int
    staged: list[str]
    lapsed: list[str]
    roles: list[StatusRoleJSON]
    warnings: list[str]


class RefreshJSON(TypedDict):
    repository: str
    renewed: dict[str, int]
    published: NotRequired[bool]  # False while waiting for co-signers
    pending: NotRequired[PendingJSON]


class ExportJSON(TypedDict):
    repository: str
    bundle: str
    files: dict[str, int]


class VerifyFileJSON(TypedDict):
    repository: str
    name: str
    length: int
    hashes: dict[str, str]


class TrustPinJSON(TypedDict):
    repository: str
    root_version: int
    root_keys: list[str]


class TrustForgetJSON(TypedDict):
    repository: str
    forgotten: bool


class DeleteJSON(TypedDict):
    repository: str
    deleted: bool


class ComposePinJSON(TypedDict):
    override: str
    services: dict[str, Any]
    files: list[str]


class MigrationJSON(TypedDict):
    repository: str
    root: str
    dry_run: bool
    tags: dict[str, dict[str, str]]
    published_changes: int
    unchanged: int
    signers: list[str]
    under_targets: dict[str, int]
    versions: dict[str, int]
    seconds: float
    text: NotRequired[str]  # with --all: each repository's report as text too


class MigrationFailedJSON(TypedDict):
    repository: str
    error: str


class MigrationsJSON(TypedDict):
    """migrate notary --all."""

    repositories: list[MigrationJSON | MigrationFailedJSON]
    migrated: int
    failed: int


class KeyListJSON(TypedDict):
    keys: list[dict[str, Any]]


class KeyGenerateJSON(TypedDict):
    name: str
    keyid: str
    public_key_file: str


class KeyExportJSON(TypedDict):
    keyid: str
    role: str
    public_pem: str


class KeyImportJSON(TypedDict):
    keyid: str
    repository: str
    role: str
    uri: NotRequired[str]  # --hsm only


class DockerTrustImportJSON(TypedDict):
    imported: list[dict[str, str]]
    already_here: int
    skipped: list[dict[str, str]]


class KeyPasswdJSON(TypedDict):
    keyid: str
    changed: bool


class KeyRemoveJSON(TypedDict):
    keyid: str
    removed: bool


class KeyRotateJSON(TypedDict):
    repository: str
    role: str
    old_keys: list[str]
    new_keys: list[str]
    root_version: int
    published: bool
    pending: NotRequired[PendingJSON]


class SignerAddJSON(TypedDict):
    repository: str
    signer: str
    keys: list[str]
    paths: list[str]
    threshold: int
    targets_version: int
    published: bool
    pending: NotRequired[PendingJSON]


class SignerRemoveJSON(TypedDict):
    repository: str
    signer: str
    targets_version: int
    published: NotRequired[bool]  # False while waiting for co-signers
    pending: NotRequired[PendingJSON]


class SignerListJSON(TypedDict):
    repository: str
    signers: list[dict[str, Any]]


class ApproveFileJSON(TypedDict):
    """approve --file."""

    repository: str
    file: NotRequired[str]  # when signed
    signed_with: list[str]


class ApproveJSON(TypedDict):
    repository: str
    results: list[dict[str, Any]]


class SubmitJSON(TypedDict):
    repository: str
    published: bool
    versions: dict[str, int]
    pending: NotRequired[PendingJSON]
