"""Read a Notary v1 / Docker Content Trust repository and verify it as Notary's client does.

``read_notary_repository(server, gun)`` fetches a repository from a notary-server and
returns its signed targets (tags), its delegations with their public keys, and every
role's version, expiry and keys — or refuses, naming the role, the URL and what failed.
Nothing it returns has not been verified.

What Notary does, and so what this package does (notary 0.7, ``tuf/``, ``trustpinning/``
and ``client/tufclient.go``; checked against Debian's notary-server 0.7 byte for byte):

* **URLs.** ``GET {server}/v2/{gun}/_trust/tuf/{role}.json`` is the newest version of a
  role; ``{N}.root.json`` a given root version; ``{role}.{sha256 hex}.json`` the role
  whose bytes have that hash. Notary's client fetches ``root.json`` and
  ``timestamp.json`` by name and everything else by hash (``snapshot.<hex>.json``,
  ``targets.<hex>.json``, ``targets/releases.<hex>.json``), with the length the
  referring role gives as a download limit — and so do we.
* **Envelope.** ``{"signed": {...}, "signatures": [{"keyid", "method", "sig"}]}``,
  ``_type`` capitalised (``Root``, ``Targets``, ``Snapshot``, ``Timestamp``; delegations
  are ``Targets``), ``expires`` RFC 3339 with nanoseconds, hashes and signatures base64.
  A signature covers the canonical JSON of ``signed`` (docker/go/canonical: keys sorted,
  no whitespace, only ``"`` and ``\\`` escaped, everything else raw UTF-8). That is
  securesystemslib's ``encode_canonical`` with one difference handled here: Notary
  re-reads numbers as float64 before canonicalising, so an integral float such as
  ``2.0`` signs as ``2``, a fractional one cannot be verified at all, and integers beyond
  2**53 change. See ``notary_canonical_json``.
* **Keys.** ``{"keytype", "keyval": {"private": null, "public": base64}}``; its id is the
  sha256 of that canonical JSON (``private: null`` included). ``ecdsa``/``rsa`` public
  values are DER SubjectPublicKeyInfo, ``ed25519`` the raw 32 bytes, ``ecdsa-x509``/
  ``rsa-x509`` a PEM certificate (chain). Root keys are ``ecdsa-x509`` certificates whose
  CN must be the GUN (or a ``prefix*`` wildcard). Docker's delegation keys are certificates
  too; ``notary delegation add`` also takes bare public keys (``ecdsa``).
* **Signatures.** ``ecdsa``: SHA-256, raw ``r || s`` (newer Notary also accepts DER);
  ``eddsa``: Ed25519; ``rsapss``: PSS, SHA-256, salt 32; ``rsapkcs1v15``. A signature
  listed under a key id whose content hashes differently is an error.
* **Root.** The first root is trusted on first use (TOFU) unless a root is pinned — as
  ``~/.docker/trust/tuf/<gun>/metadata/root.json`` pins it for Docker. A root counts
  only with a threshold of signatures by its own root certificates that match the GUN and
  are valid now (their PEM re-encoded, as Notary's ``CertsToKeys`` does). A newer root
  must also be signed by a threshold of the trusted root's certificates; if it is not,
  the versions in between are walked (``{N}.root.json``), each signed by the previous.
  ``notary key rotate GUN root`` writes a root signed by both the old and the new key.
  Only the newest root must be unexpired; it must also match the snapshot's hash of it.
* **The rest.** Timestamp (signed by the root's timestamp keys) → snapshot (hash and
  length from the timestamp) → targets (hash and length from the snapshot) → each
  delegation the snapshot lists, pre-order, keys and threshold from its parent, its paths
  cut down to those inside its parent's (``RestrictDelegationPathPrefixes``; a path is a
  plain prefix). A delegate's target outside its paths is ignored, as Notary does; a
  delegation the snapshot does not list has published nothing and is skipped. Notary's
  client only warns about (and skips) a delegation that is expired or short of
  signatures; here that is refused unless ``strict=False``.
* **Which signer wins.** ``notary list``: the first role in a breadth-first walk from
  ``targets`` that signs the name. ``docker pull``: ``targets/releases`` first, then the
  walk from ``targets`` — and a tag found first in any other delegation is refused
  (``NotaryRepository.docker_tags``).
"""

from __future__ import annotations

from migrate.notary.canonical import notary_canonical_json, notary_key_id
from migrate.notary.errors import (
    NotaryAuthError,
    NotaryExpiredError,
    NotaryNotFoundError,
    NotaryServerError,
    NotaryUnreachableError,
    NotaryVerificationError,
)
from migrate.notary.model import (
    BASE_ROLES,
    MAX_DOWNLOAD_SIZE,
    MAX_TIMESTAMP_SIZE,
    RELEASES_ROLE,
    NotaryDelegation,
    NotaryKey,
    NotaryRepository,
    NotaryRole,
    NotaryTarget,
)
from migrate.notary.reader import read_notary_repository
from migrate.notary.roots import verify_root
from migrate.notary.trust_dir import docker_trust_dir, docker_trust_root, docker_trust_versions

__all__ = [
    "BASE_ROLES",
    "MAX_DOWNLOAD_SIZE",
    "MAX_TIMESTAMP_SIZE",
    "RELEASES_ROLE",
    "NotaryAuthError",
    "NotaryDelegation",
    "NotaryExpiredError",
    "NotaryKey",
    "NotaryNotFoundError",
    "NotaryRepository",
    "NotaryRole",
    "NotaryServerError",
    "NotaryTarget",
    "NotaryUnreachableError",
    "NotaryVerificationError",
    "docker_trust_dir",
    "docker_trust_root",
    "docker_trust_versions",
    "notary_canonical_json",
    "notary_key_id",
    "read_notary_repository",
    "verify_root",
]
