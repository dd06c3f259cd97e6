"""Checks on TUF metadata from the network that python-tuf does not make, applied
before python-tuf sees it.

python-tuf counts a threshold in key ids, so a root or delegation listing one public
key under two key ids (say, in upper and lower case hex) with threshold 2 is met by one
signature: hosts refuse metadata in which one role lists the same key material twice.
And a succinct (hash-bin) delegation names ``2**bit_length`` bins: anything beyond
trustkit's own limit (:data:`trustkit.bins.MAX_BINS`) is refused before any code
counts or lists them.

Every metadata file the updater downloads passes :class:`GuardedFetcher`; roots given
as trust anchors pass :func:`check_metadata` directly. Metadata that does not parse is
left to python-tuf, which refuses it with its own reason. This module never accepts
anything: it only refuses.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from cryptography.hazmat.primitives import serialization
from securesystemslib.signer import Key
from tuf.api import exceptions
from tuf.api.metadata import Delegations, Metadata, Root, Targets
from tuf.ngclient import FetcherInterface

from trustkit.bins import MAX_BINS

__all__ = ["GuardedFetcher", "UnsafeMetadataError", "check_metadata"]


class UnsafeMetadataError(exceptions.RepositoryError):
    """Metadata that python-tuf would accept but trustkit refuses."""


def check_metadata(data: bytes, what: str) -> None:
    """Raise :class:`UnsafeMetadataError` if ``data`` (metadata named ``what``) lists
    one key twice in a role or delegates to more hash bins than trustkit allows."""
    try:
        metadata = Metadata.from_bytes(data)
    except Exception:  # python-tuf refuses it itself, with its own reason
        return
    signed = metadata.signed
    if isinstance(signed, Root):
        for name, role in signed.roles.items():
            _refuse_repeated_keys(what, name, role.keyids, signed.keys)
    elif isinstance(signed, Targets) and signed.delegations is not None:
        _check_delegations(what, signed.delegations)


def _check_delegations(what: str, delegations: Delegations) -> None:
    for role in (delegations.roles or {}).values():
        _refuse_repeated_keys(what, role.name, role.keyids, delegations.keys)
    succinct = delegations.succinct_roles
    if succinct is None:
        return
    _refuse_repeated_keys(what, f"{succinct.name_prefix}-*", succinct.keyids, delegations.keys)
    if succinct.number_of_bins > MAX_BINS:
        raise UnsafeMetadataError(
            f"{what} delegates to 2**{succinct.bit_length} hash bins; trustkit allows at "
            f"most {MAX_BINS} (the metadata is hostile or broken)"
        )


def _refuse_repeated_keys(
    what: str, role: str, keyids: Iterable[str], keys: Mapping[str, Key]
) -> None:
    seen: dict[tuple[str, bytes | str], str] = {}
    for keyid in keyids:
        key = keys.get(keyid)
        if key is None:
            continue  # python-tuf refuses or ignores unknown key ids itself
        material = _key_material(key)
        if material in seen:
            raise UnsafeMetadataError(
                f"{what} lists one key twice for the role {role}, under the key ids "
                f"{seen[material][:16]}… and {keyid[:16]}…: its threshold would count one "
                "signer twice (the metadata is hostile or broken)"
            )
        seen[material] = keyid


def _key_material(key: Key) -> tuple[str, bytes | str]:
    """The public key itself, in one encoding, whatever way it was written down."""
    public = key.keyval.get("public")
    if not isinstance(public, str):
        return (key.keytype, repr(sorted(key.keyval.items())))
    try:
        if key.keytype == "ed25519":
            return ("ed25519", bytes.fromhex(public))
        loaded = serialization.load_pem_public_key(public.encode())
        der = loaded.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return ("spki", der)
    except (ValueError, TypeError):
        return (key.keytype, public.strip().lower())


class GuardedFetcher(FetcherInterface):
    """A fetcher that checks each metadata file it downloads (python-tuf downloads
    metadata with ``download_bytes``, targets with ``download_file``)."""

    def __init__(self, inner: FetcherInterface) -> None:
        self._inner = inner

    @classmethod
    def around(cls, fetcher: FetcherInterface) -> GuardedFetcher:
        return fetcher if isinstance(fetcher, cls) else cls(fetcher)

    def _fetch(self, url: str) -> Iterator[bytes]:
        return self._inner.fetch(url)

    def download_bytes(self, url: str, max_length: int) -> bytes:
        data = super().download_bytes(url, max_length)
        check_metadata(data, url.rsplit("/", 1)[-1])
        return data
