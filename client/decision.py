"""The one decision about an image reference: may it run on this host, and as what.

``verify_reference`` is the only place trustkit decides that: ``verify``, ``resolve``,
``pull``/``run``/``create``, ``trustkit docker`` and the base images of a build all
call it, so every command applies the same host policy (trust level and signers) to
the same canonical name. The steps, in order:

1. canonicalise the name the way Docker would reach it (``trustkit.names.parse_gun``);
   a name with no one spelling is refused;
2. look up the policy rule for the canonical name, and the trust server the policy
   routes it to (``[[route]]``; none: the command's server). A server the user named
   on the command line (``--server``, ``--mirror``) that is not the policy's for the
   repository is refused: on a host, the policy decides where trust comes from;
3. verify the repository's TUF metadata (python-tuf, through the caller's verifier of
   that server, whose trust store is that server's alone);
   ``unsigned-ok`` lets an image through unverified only when its repository has no
   trust data at all, or its server cannot be reached and this host holds no root
   for it;
4. find the signed digest of the tag (or the signed tag of a digest);
5. check the tag's signer against the rule's ``signers``.

The decision names the image to hand the tool: the canonical ``GUN@sha256:…`` when
signed, the canonical ``GUN:TAG`` when the policy let it through unsigned; never the
spelling the user typed. Nothing here prints, runs a tool or reads the environment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from client.policy import UNSIGNED_OK, HostPolicy, Rule
from client.trust_servers import TrustServer, same_server
from client.verify import TrustedRepository
from trustkit.agent_wire import AgentDecision
from trustkit.errors import (
    NotFoundError,
    ServerRefusedError,
    ServerUnreachableError,
    TrustkitError,
    UsageError,
    VerificationError,
)
from trustkit.metadata import ImageTarget, is_file_target
from trustkit.names import DEFAULT_TAG, ImageReference, parse_reference

if TYPE_CHECKING:
    from client.registry import Registry

__all__ = [
    "Decision",
    "RegistryComparison",
    "RepositorySource",
    "TrustServer",
    "compare_with_registry",
    "first_use_note",
    "refuse_other_server",
    "verify_reference",
]

# gun, tags whose hash bins to load (None: every bin), the trust server the policy
# routes it to (None: the command's) -> the verified repository
RepositorySource = Callable[[str, list[str] | None, TrustServer | None], TrustedRepository]
# gun, its trust server -> whether this host holds a root for it from that server
AnchorCheck = Callable[[str, TrustServer | None], bool]


@dataclass(frozen=True)
class Decision:
    """An image the policy lets through: pinned to its signed digest, or unsigned."""

    requested: str  # as the user wrote it
    reference: ImageReference  # canonical
    image: str  # what the tool is given
    digest: str | None  # the signed digest; None when the policy let it through unsigned
    target: ImageTarget | None = None  # the signed tag, when signed
    signer: str | None = None  # the role that signed it, when signed
    repository: TrustedRepository | None = None
    notes: tuple[str, ...] = ()
    # Why it was not verified, when the policy let it through unsigned.
    unverified: TrustkitError | None = None

    def to_wire(self) -> AgentDecision:
        """The decision as the agent sends it and the CLI renders it."""
        target = self.target
        repository = self.repository
        return AgentDecision(
            requested=self.requested,
            gun=self.reference.gun,
            tag=target.name if target is not None else self.reference.tag,
            image=self.image,
            digest=self.digest,
            local_tag=self.local_tag,
            signer=self.signer,
            size=target.size if target is not None else None,
            media_type=target.media_type if target is not None else None,
            notes=list(self.notes),
            first_use=(
                first_use_note(repository)
                if repository is not None and repository.trusted_on_first_use
                else None
            ),
        )

    @property
    def local_tag(self) -> str | None:
        """``GUN:TAG`` to point at the pinned image after a pull, when a tag was asked for."""
        if self.digest is None or self.reference.tag is None:
            return None
        return f"{self.reference.gun}:{self.reference.tag}"


def verify_reference(
    text: str,
    policy: HostPolicy,
    repositories: RepositorySource,
    has_anchor: AnchorCheck = lambda gun, server: False,
    *,
    given_server: str | None = None,
    given_mirror: str | None = None,
) -> Decision:
    """Decide whether ``text`` (``NAME[:TAG][@DIGEST]``, Docker's ``latest`` when it
    names neither) may run under ``policy``; raise the refusal otherwise.
    ``given_server``/``given_mirror``: what the user named on the command line."""
    reference = parse_reference(text, default_tag=DEFAULT_TAG)
    rule = policy.rule_for(reference.gun)
    server = policy.server_for(reference.gun)
    if server is not None:
        refuse_other_server(reference.gun, server, policy, given_server, given_mirror)
    tags = None if reference.tag is None else [reference.tag]
    try:
        repository = repositories(reference.gun, tags, server)
    except (NotFoundError, ServerUnreachableError) as error:
        # A repository this host holds a root for is known to be signed: an unreachable
        # or missing server must not switch verification off for it.
        if rule.trust != UNSIGNED_OK or has_anchor(reference.gun, server):
            raise
        return _unsigned(text, reference, policy, error)
    target = _signed_target(repository, reference)
    signer = repository.signer(target.name)
    _check_signer(rule, policy, reference, target, signer)
    notes = []
    if repository.trusted_on_first_use:
        notes.append(first_use_note(repository))
    notes.append(_signed_as(text, target.digest))
    return Decision(
        text,
        reference,
        reference.pinned(target.digest),
        target.digest,
        target,
        signer,
        repository,
        tuple(notes),
    )


def refuse_other_server(
    gun: str,
    server: TrustServer,
    policy: HostPolicy,
    given_server: str | None,
    given_mirror: str | None,
) -> None:
    """A command-line --server or --mirror that is not the policy's for ``gun``."""
    for flag, given, named in (
        ("--server", given_server, server.url),
        ("--mirror", given_mirror, server.mirror),
    ):
        if given is None or (named is not None and same_server(given, named)):
            continue
        what = flag.removeprefix("--")
        theirs = f"{what} {named}" if named is not None else f"no {what}"
        raise UsageError(
            f"{flag} {given} is not where this host reads {gun} from: {server.where} "
            f"names {theirs} for it",
            hint=f"leave {flag} out: on this host the policy decides which trust server "
            f"{gun} is verified against (or change the policy)",
        )


def first_use_note(repository: TrustedRepository) -> str:
    """What a host says when it trusts a repository's root on first use: which root keys,
    and how to provision hosts with a pinned root instead."""
    keys = ", ".join(keyid[:12] for keyid in repository.root.roles["root"].keyids)
    return (
        f"trusting the root of {repository.gun} on first use (root keys: {keys}); to "
        "provision hosts ahead of time, get root.json from its publisher and run: "
        f"trustkit trust pin {repository.gun} ROOT_JSON"
    )


@dataclass(frozen=True)
class RegistryComparison:
    """What the registry serves for a signed tag now, as ``verify`` checks it."""

    digest: str | None  # None: the registry could not be asked
    unasked: str | None = None  # why it could not be asked


def compare_with_registry(registry: Registry, decision: AgentDecision) -> RegistryComparison:
    """What the registry serves for the tag of ``decision`` now; a tag moved since
    signing is refused. A registry that cannot be asked is no refusal: the caller
    says so."""
    ref = ImageReference(decision.gun, decision.tag, None)
    try:
        with registry:
            current = registry.resolve(ref)
    except (NotFoundError, ServerRefusedError, ServerUnreachableError) as error:
        # The registry could not be asked; what it serves, when it answers, is checked.
        return RegistryComparison(None, error.message)
    if str(current.digest) != decision.digest:
        raise VerificationError(
            f"the registry now serves {ref.gun}:{ref.tag} as {current.digest}, but it is "
            f"signed as {decision.digest}",
            hint="the tag was moved after signing: pulling it by tag would get an unsigned "
            f"image. Pull the signed one with: trustkit pull {ref.gun}:{ref.tag}",
        )
    return RegistryComparison(str(current.digest))


def _unsigned(
    text: str, reference: ImageReference, policy: HostPolicy, why: TrustkitError
) -> Decision:
    image = str(reference)
    shown = text if image == text else f"{text} ({image})"
    note = f"{shown} runs unverified ({why.message}): {policy.source} allows it"
    return Decision(text, reference, image, None, notes=(note,), unverified=why)


def _signed_target(repository: TrustedRepository, reference: ImageReference) -> ImageTarget:
    """The signed tag the reference names: by its tag, or the first tag signed with
    its digest."""
    if reference.tag is not None:
        if is_file_target(repository.target_file(reference.tag)):
            raise NotFoundError(
                f"{reference.tag} in {reference.gun} is a signed file, not an image tag",
                hint=f"check the file with: trustkit verify-file {reference.gun} "
                f"{reference.tag} FILE",
            )
        target = repository.target(reference.tag)
        if reference.digest is not None and str(reference.digest) != target.digest:
            raise VerificationError(
                f"{_signed_as(f'{reference.gun}:{reference.tag}', target.digest)}, "
                f"not {reference.digest}"
            )
        return target
    assert reference.digest is not None  # parse_reference gives a tag or a digest
    tags = [
        tag
        for tag in repository.tags_with_digest(str(reference.digest))
        if not is_file_target(repository.target_file(tag))
    ]
    if not tags:
        raise NotFoundError(
            f"{reference.digest} is not signed under any tag of {reference.gun}",
            hint="use a signed tag (trustkit inspect lists them), or have it signed",
        )
    return repository.target(tags[0])


def _check_signer(
    rule: Rule, policy: HostPolicy, reference: ImageReference, target: ImageTarget, signer: str
) -> None:
    if rule.signers is not None and signer not in rule.signers:
        raise VerificationError(
            f"{reference.gun}:{target.name} is signed by '{signer}', but {policy.source} "
            f"accepts only {', '.join(rule.signers)} for {reference.gun}",
            hint="ask one of those signers to sign the tag, or change the policy",
        )


def _signed_as(name: str, digest: str) -> str:
    return f"{name} is signed as {digest}"
