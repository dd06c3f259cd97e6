"""Every place trustkit reaches past python-tuf's public API, each guarded, and why.

python-tuf's public client API is ``Updater.refresh()``, ``get_targetinfo()``,
``find_cached_target()`` and ``download_target()``. trustkit decides through those
alone; it needs python-tuf's internals for four things the public API does not offer:

1. **Renewing expired metadata** (:func:`ignore_expiry`). A key holder re-signs root
   or targets that already expired; every check must still apply but expiry.
   ``UpdaterConfig`` has no clock, but the updater's trusted metadata set compares
   every expiry with its ``reference_time``; an early one passes them all. Hosts
   never use it.
2. **Loading one delegated role** (:func:`load_delegated_role`). A listing of every
   tag (``inspect``, the agent) and a publisher's edit need every signer role, each
   verified against its delegator and snapshot; ``get_targetinfo`` loads only the
   roles one target path leads to, and no public call loads one role.
3. **A lookup that reached a role missing from snapshot**
   (:func:`is_unpublished_role_error`). python-tuf raises a plain ``RepositoryError``
   for it; only its message tells it from other refusals.
4. **Storing the trusted root as a flat ``root.json``** (:class:`FlatRootUpdater`,
   for the conformance adapter): python-tuf 6 and later keep a ``root_history/``
   directory behind a symlink, through two private methods the subclass overrides.

Each reach checks, at import or at use, that the internal it needs is still there,
and fails loudly (:class:`TufInternalsChanged`) rather than silently deciding
differently on a python-tuf that changed. ``tests/test_tuf_internals.py`` pins the
behaviour each one relies on.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tuf.api import exceptions
from tuf.api.metadata import Root, Targets
from tuf.ngclient import Updater

__all__ = [
    "FlatRootUpdater",
    "TufInternalsChanged",
    "ignore_expiry",
    "is_unpublished_role_error",
    "load_delegated_role",
    "require_flat_root_internals",
]

# Earlier than any expiry: with it as the reference time nothing has expired.
_BEFORE_ANY_EXPIRY = datetime(1970, 1, 1, tzinfo=UTC)

# What python-tuf's Updater._load_targets says of a delegated role missing from snapshot.
_UNPUBLISHED_ROLE_MESSAGE = "is not part of snapshot"


class TufInternalsChanged(RuntimeError):
    """The installed python-tuf no longer has an internal trustkit relies on."""

    def __init__(self, internal: str, why: str) -> None:
        super().__init__(
            f"the installed python-tuf has no {internal}, which trustkit needs {why}; "
            "install the python-tuf version trustkit declares (pyproject.toml)"
        )
        self.internal = internal


def _require(owner: Any, name: str, internal: str, why: str) -> Any:
    found = getattr(owner, name, None)
    if found is None:
        raise TufInternalsChanged(internal, why)
    return found


def ignore_expiry(updater: Updater) -> None:
    """Make ``updater`` check everything but expiry (a key holder renewing metadata).

    Call it before ``refresh()``."""
    why = "to renew metadata that already expired"
    trusted_set = _require(updater, "_trusted_set", "Updater._trusted_set", why)
    if not isinstance(getattr(trusted_set, "reference_time", None), datetime):
        raise TufInternalsChanged("TrustedMetadataSet.reference_time", why)
    trusted_set.reference_time = _BEFORE_ANY_EXPIRY


def load_delegated_role(updater: Updater, role: str, delegator: str) -> Targets:
    """The delegated targets role ``role``, verified by ``updater`` against
    ``delegator`` (already loaded) and snapshot: from its cache, else downloaded."""
    load = _require(updater, "_load_targets", "Updater._load_targets", "to load every signer role")
    loaded = load(role, delegator)
    if not isinstance(loaded, Targets):
        raise TufInternalsChanged("Updater._load_targets returning Targets", "to list tags")
    return loaded


def is_unpublished_role_error(error: exceptions.RepositoryError) -> bool:
    """Whether python-tuf refused a lookup because it reached a delegated role that is
    not in snapshot (python-tuf has no error type of its own for it)."""
    return type(error) is exceptions.RepositoryError and _UNPUBLISHED_ROLE_MESSAGE in str(error)


def require_flat_root_internals(updater_class: type[Updater] = Updater) -> None:
    """Fail unless ``updater_class`` still has the private methods
    :class:`FlatRootUpdater` overrides or calls: an override of a method python-tuf no
    longer calls would silently do nothing."""
    for method in ("_persist_root", "_update_root_symlink", "_persist_metadata"):
        _require(updater_class, method, f"Updater.{method}", "to store the trusted root flat")


require_flat_root_internals()


class FlatRootUpdater(Updater):
    """python-tuf's updater, storing each trusted root as a plain ``root.json``.

    Every other behaviour (the order of requests, what is verified, when each role is
    written) is python-tuf's. Each verified root replaces ``root.json`` at once, so the
    file always holds the newest root this client trusts: the local root-history lookup
    of ``_load_root`` finds nothing and newer roots come from the repository.
    """

    def _persist_root(self, version: int, data: bytes) -> None:
        self._persist_metadata(Root.type, data)

    def _update_root_symlink(self) -> None:
        """``root.json`` is written as each root is verified: there is no link to move."""
