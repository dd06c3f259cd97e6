"""Trust anchors declared in the host policy: the check of the first root a host meets.

A host that has no root for a repository yet gets ``1.root.json`` from the server. With
no rule about it that root is trusted as served (trust on first use). A rule can refuse
that (``first_use = "refuse"``: only a pinned root is trusted), or declare the root keys
(``root_keys``, ``root_threshold``): the first root must then carry valid signatures by
that many distinct declared keys, or it is refused. Later roots chain from it through
python-tuf as always, so a key rotation the declared keys signed for is followed.
"""

from __future__ import annotations

from collections.abc import Callable

from securesystemslib.exceptions import UnverifiedSignatureError
from securesystemslib.signer import Key, Signature
from tuf.api.metadata import Metadata, Root

from client.policy import HostPolicy
from trustkit.errors import VerificationError
from trustkit.metadata import key_id_of, key_material_of

__all__ = ["FirstUseCheck", "first_use_check"]


class FirstUseCheck:
    """Called with a repository's first root before a host trusts it; raises to refuse."""

    def __init__(self, policy: HostPolicy | Callable[[], HostPolicy]) -> None:
        # A callable gives the policy in force at each check (the agent reads its
        # policy file again when it changes).
        self._policy = policy

    def __call__(self, gun: str, root_bytes: bytes) -> None:
        policy = self._policy() if callable(self._policy) else self._policy
        rule = policy.rule_for(gun)
        if rule.root_keys:
            _check_declared_keys(gun, root_bytes, rule.root_keys, rule.root_threshold, policy)
        elif rule.first_use == "refuse":
            raise VerificationError(
                f"this host holds no root for {gun}, and {policy.source} refuses to "
                "trust one on first use",
                hint=f"get root.json from the publisher, check it, and run: trustkit trust "
                f"pin {gun} ROOT_JSON (or declare its root_keys in the policy)",
            )


def first_use_check(policy: HostPolicy) -> FirstUseCheck | None:
    """The check for ``policy``, or None when no rule declares anything."""
    rules = [*policy.rules, policy.default]
    if any(rule.root_keys or rule.first_use == "refuse" for rule in rules):
        return FirstUseCheck(policy)
    return None


def _check_declared_keys(
    gun: str, root_bytes: bytes, declared: frozenset[str], threshold: int, policy: HostPolicy
) -> None:
    try:
        metadata = Metadata[Root].from_bytes(root_bytes)
    except Exception:
        raise VerificationError(f"the first root of {gun} is not TUF root metadata") from None
    signers: set[bytes] = set()
    for keyid, key in metadata.signed.keys.items():
        signature = metadata.signatures.get(keyid)
        if signature is None or key_id_of(key) != keyid:
            continue  # unsigned, or a key under another's id: never counted
        try:
            material = key_material_of(key)
        except ValueError:
            continue
        if f"id:{keyid}" not in declared and f"der:{material.hex()}" not in declared:
            continue
        if _verifies(key, signature, metadata.signed_bytes):
            signers.add(material)  # distinct keys, not key ids
    if len(signers) < threshold:
        raise VerificationError(
            f"the root of {gun} is signed by {len(signers)} of the root keys "
            f"{policy.source} declares for it, and {threshold} are needed",
            hint="the server may be serving another repository's root: check with the "
            "publisher, and correct root_keys in the policy if the keys changed",
        )


def _verifies(key: Key, signature: Signature, data: bytes) -> bool:
    try:
        key.verify_signature(signature, data)
    except UnverifiedSignatureError:
        return False
    return True
