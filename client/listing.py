"""What ``trustkit inspect`` lists of a verified repository: its signed tags, its signed
files, and its roles (hash bins folded into one line, the first of them to expire)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from client.verify import RoleStatus, TrustedRepository
from trustkit.metadata import describe_target, is_file_target

__all__ = ["ListedFile", "ListedTag", "Listing", "list_repository", "roles_shown"]


@dataclass(frozen=True)
class ListedTag:
    tag: str
    digest: str
    size: int
    media_type: str | None
    signer: str


@dataclass(frozen=True)
class ListedFile:
    """A file signed with ``sign-file``: its hashes are no image digest."""

    name: str
    sha256: str | None
    size: int
    signer: str


@dataclass(frozen=True)
class Listing:
    gun: str
    tags: list[ListedTag]
    files: list[ListedFile]
    roles: list[RoleStatus]  # as shown: the hash bins as one "bins-*" role
    bin_count: int | None  # hash bins the tags are signed in; None without bins
    bins_published: int  # bin roles published (with the bins role itself)


def list_repository(repository: TrustedRepository, tag: str | None = None) -> Listing:
    """The signed tags and files of ``repository`` (only ``tag`` when given: an error
    if it is not signed), and its roles."""
    names = [tag] if tag else repository.signed_tags()
    if tag:
        repository.target(tag)  # raises if not signed
    files = [n for n in names if is_file_target(repository.target_file(n))]
    tags = [describe_target(repository.target_file(n)) for n in names if n not in files]
    shown = roles_shown(repository)
    bins = repository.bins
    return Listing(
        repository.gun,
        [
            ListedTag(t.name, t.digest, t.size, t.media_type, repository.signer(t.name))
            for t in tags
        ],
        [
            ListedFile(
                name,
                repository.target_file(name).hashes.get("sha256"),
                repository.target_file(name).length,
                repository.signer(name),
            )
            for name in files
        ],
        shown,
        bins.number_of_bins if bins is not None else None,
        len(repository.roles) - len(shown) + 1,
    )


def roles_shown(repository: TrustedRepository) -> list[RoleStatus]:
    """The roles as listings show them: hash bins folded into one line, the first of
    them to expire, with the keys that sign bins."""
    bins = repository.bins
    if bins is None:
        return list(repository.roles)
    shown = [r for r in repository.roles if not bins.is_delegated_role(r.role)]
    in_bins = [r for r in repository.roles if bins.is_delegated_role(r.role)]
    if in_bins:
        first = min(in_bins, key=lambda r: r.expires)
        # The keys every bin is signed with: those the bins role delegates them to.
        shown.append(replace(first, role="bins-*", keyids=sorted(bins.keyids)))
    return shown
