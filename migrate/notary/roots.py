"""Root metadata as Notary's trust pinning checks it: root certificates whose CN is the
GUN, a threshold of their signatures, and rotation signed by the previous root."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from migrate.notary.canonical import notary_key_id
from migrate.notary.certificates import (
    certificate_problem,
    cn_matches,
    common_name,
    is_ca,
    pem_blocks,
)
from migrate.notary.errors import NotaryVerificationError, RootRotationError, ThresholdError
from migrate.notary.metadata import common_fields, refuse_if_expired
from migrate.notary.model import BASE_ROLES, ROOT, NotaryKey, NotaryRole
from migrate.notary.parsing import json_int, json_object
from migrate.notary.public_keys import make_key, parse_keys
from migrate.notary.signatures import Envelope, SigningRole, parse_envelope, verify_signatures


@dataclass(frozen=True)
class Root:
    envelope: Envelope
    version: int
    expires: datetime
    keys: Mapping[str, NotaryKey]
    roles: Mapping[str, tuple[tuple[str, ...], int]]  # role -> (key ids, threshold)

    def role(self, name: str) -> SigningRole:
        key_ids, threshold = self.roles[name]
        return SigningRole(name, {k: self.keys[k] for k in key_ids}, threshold, key_ids)


def parse_root(raw: bytes, source: str) -> Root:
    envelope = parse_envelope(raw, ROOT, source)
    try:
        version, expires = common_fields(envelope, "Root", ("keys", "roles", "consistent_snapshot"))
        keys = parse_keys(envelope.signed.get("keys"), "root keys")
        listed = envelope.signed.get("roles")
        if not isinstance(listed, dict):
            raise ValueError("roles is not an object")
        roles: dict[str, tuple[tuple[str, ...], int]] = {}
        for name in BASE_ROLES:  # isValidRootStructure: every base role, keys all present
            spec = json_object(listed.get(name), f"the {name} role", ("keyids", "threshold"))
            key_ids = spec.get("keyids") or []
            if not isinstance(key_ids, list) or not all(isinstance(k, str) for k in key_ids):
                raise ValueError(f"the {name} role's keyids is not a list of strings")
            missing = [k for k in key_ids if k not in keys]
            if missing:
                raise ValueError(f"the {name} role lists key {missing[0]} without the key")
            threshold = json_int(spec.get("threshold"), f"the {name} role's threshold", 1)
            roles[name] = (tuple(key_ids), threshold)
    except ValueError as error:
        raise NotaryVerificationError(
            f"root metadata is invalid: {error}", role=ROOT, source=source
        ) from None
    return Root(envelope, version, expires, keys, roles)


@dataclass(frozen=True)
class _RootCerts:
    leaves: Mapping[str, x509.Certificate]  # by the id Notary computes for the root key
    intermediates: Mapping[str, tuple[x509.Certificate, ...]]
    problems: tuple[str, ...]


def _root_certificates(root: Root) -> _RootCerts:
    """``parseAllCerts``: each root key's leaf certificate and its intermediates."""
    leaves: dict[str, x509.Certificate] = {}
    intermediates: dict[str, tuple[x509.Certificate, ...]] = {}
    problems = []
    for key_id in root.roles[ROOT][0]:
        key = root.keys[key_id]
        blocks = pem_blocks(key.public)
        try:
            if not blocks or any(block.kind != "CERTIFICATE" for block in blocks):
                raise ValueError("it is not a PEM certificate bundle")
            certificates = [x509.load_der_x509_certificate(block.der) for block in blocks]
        except ValueError as error:
            problems.append(f"root key {key_id[:12]}: {error}")
            continue
        leaf_list = [c for c in certificates if not is_ca(c)]
        if len(leaf_list) != 1 or is_ca(certificates[0]):
            problems.append(f"root key {key_id[:12]}: not exactly one leaf certificate, first")
            continue
        leaves[key.computed_id] = leaf_list[0]
        intermediates[key.computed_id] = tuple(c for c in certificates if is_ca(c))
    return _RootCerts(leaves, intermediates, tuple(problems))


def _valid_leaves(
    certs: _RootCerts, gun: str, now: datetime, *, check_expiry: bool
) -> tuple[dict[str, x509.Certificate], list[str]]:
    """``validRootLeafCerts``: leaves whose CN matches the GUN and that Notary accepts."""
    valid, problems = {}, list(certs.problems)
    for key_id, certificate in certs.leaves.items():
        cn = common_name(certificate)
        if not cn_matches(cn, gun):
            problems.append(f"root key {key_id[:12]}: certificate CN {cn!r} is not the GUN {gun}")
            continue
        problem = certificate_problem(certificate, now, check_expiry=check_expiry)
        if problem is not None:
            problems.append(f"root key {key_id[:12]}: {problem}")
            continue
        valid[key_id] = certificate
    return valid, problems


def _certs_to_keys(
    leaves: Mapping[str, x509.Certificate],
    intermediates: Mapping[str, Sequence[x509.Certificate]],
) -> dict[str, NotaryKey]:
    """``utils.CertsToKeys``: keys from the re-encoded PEM chains, under their own ids."""
    keys = {}
    for key_id, leaf in leaves.items():
        public_key = leaf.public_key()
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            keytype = "ecdsa-x509"
        elif isinstance(public_key, rsa.RSAPublicKey):
            keytype = "rsa-x509"
        else:
            continue
        chain = b"".join(
            c.public_bytes(serialization.Encoding.PEM)
            for c in (leaf, *intermediates.get(key_id, ()))
        )
        key = make_key(notary_key_id(keytype, chain), keytype, chain)
        keys[key.key_id] = key
    return keys


def validate_root(
    raw: bytes, gun: str, source: str, previous: Root | None, now: datetime
) -> tuple[Root, tuple[str, ...]]:
    """``trustpinning.ValidateRoot`` (trust on first use when ``previous`` is ``None``).

    Returns the root and the ids of the root keys whose signatures verified. Neither the
    root's expiry nor its version is checked here.
    """
    root = parse_root(raw, source)
    where = {"role": ROOT, "source": source}
    certs = _root_certificates(root)
    from_root, problems = _valid_leaves(certs, gun, now, check_expiry=True)
    if not from_root:
        raise NotaryVerificationError(
            f"root v{root.version} has no usable root certificate for {gun}: "
            + "; ".join(problems or ["it lists no root keys"]),
            **where,
        )
    if previous is not None:
        trusted_certs = _root_certificates(previous)
        trusted, _ = _valid_leaves(trusted_certs, gun, now, check_expiry=False)
        if not trusted:
            raise NotaryVerificationError(
                f"the trusted root v{previous.version} has no root certificate for {gun}",
                **where,
            )
        keys = _certs_to_keys(trusted, trusted_certs.intermediates)
        threshold = previous.roles[ROOT][1]
        try:
            verify_signatures(root.envelope, SigningRole(ROOT, keys, threshold, tuple(keys)))
        except ThresholdError:
            raise RootRotationError(
                f"root v{root.version} is not signed by the root keys of the trusted root "
                f"v{previous.version} ({', '.join(k[:12] for k in previous.roles[ROOT][0])})",
                **where,
            ) from None
    valid_intermediates = {
        key_id: tuple(c for c in chain if certificate_problem(c, now, check_expiry=True) is None)
        for key_id, chain in certs.intermediates.items()
    }
    keys = _certs_to_keys(from_root, valid_intermediates)
    try:
        signed_by = verify_signatures(
            root.envelope, SigningRole(ROOT, keys, root.roles[ROOT][1], tuple(keys))
        )
    except ThresholdError as error:
        raise NotaryVerificationError(
            f"root v{root.version} is not signed by a threshold of its own root keys: {error}",
            **where,
        ) from None
    return root, signed_by


def verify_root(
    raw: bytes,
    gun: str,
    *,
    previous: bytes | None = None,
    now: datetime | None = None,
    check_expiry: bool = True,
) -> NotaryRole:
    """Verify one root file as Notary would load it for ``gun``, alone or after ``previous``.

    Checks its structure, that a threshold of its own root certificates (CN = GUN, valid
    now) signed it, with ``previous`` that a threshold of that root's certificates signed
    it too and that its version is not lower, and (``check_expiry``) that it is unexpired.
    """
    moment = now or datetime.now(UTC)
    source = "(given root)"
    prior = validate_root(previous, gun, "(previous root)", None, moment)[0] if previous else None
    root, signed_by = validate_root(raw, gun, source, prior, moment)
    if prior is not None and root.version < prior.version:
        raise NotaryVerificationError(
            f"root v{root.version} is older than v{prior.version}", role=ROOT, source=source
        )
    if check_expiry:
        refuse_if_expired(ROOT, root.expires, moment, source)
    key_ids, threshold = root.roles[ROOT]
    return NotaryRole(ROOT, root.version, root.expires, threshold, key_ids, signed_by)
