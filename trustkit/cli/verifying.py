"""Commands of a host that verifies: verify, resolve (through the host's agent when
one runs), export, verify-file and inspect."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from trustkit.cli.context import Context, note_first_use, read_file, verified, verifier_for
from trustkit.cli.options import BUNDLE_HELP, Commands
from trustkit.cli.shapes import (
    InspectBinsJSON,
    InspectFileJSON,
    InspectJSON,
    InspectRoleJSON,
    InspectTagJSON,
    VerifyJSON,
)
from trustkit.errors import EXIT_OK, TrustkitError

if TYPE_CHECKING:
    from client.listing import Listing
    from trustkit.agent_wire import AgentDecision


def cmd_verify(ctx: Context) -> int:
    """verify and resolve: the host policy's decision on one reference (the gate's),
    from the host's agent when it runs one, else made here."""
    verify = ctx.args.command == "verify"
    decision = _ask_agent(ctx, ctx.args.reference, require_signed=verify)
    if decision is None:
        decision = _decide_here(ctx, ctx.args.reference, require_signed=verify)
    if decision.first_use is not None:
        ctx.out.warning(f"trustkit: {decision.first_use}")
    if decision.digest is None:
        for note in decision.notes:
            ctx.out.warning(f"trustkit: {note}")
        unsigned = VerifyJSON(
            repository=decision.gun, tag=decision.tag, digest=None, reference=decision.image
        )
        ctx.out.result(decision.image, unsigned)
        return EXIT_OK
    data = VerifyJSON(
        repository=decision.gun,
        tag=decision.tag,
        digest=decision.digest,
        size=decision.size,
        media_type=decision.media_type,
        reference=decision.image,
    )
    if verify:
        offline = ctx.args.offline or ctx.args.bundle
        data["registry_digest"] = None if offline else _registry_digest(ctx, decision)
    ctx.out.result(decision.image if not verify else decision.digest, data)
    return EXIT_OK


def _decide_here(ctx: Context, reference: str, *, require_signed: bool) -> AgentDecision:
    from trustkit.names import DEFAULT_TAG, parse_reference

    gun = parse_reference(reference, default_tag=DEFAULT_TAG).gun  # the bundle's
    with verifier_for(ctx, gun) as verifier:
        decision = ctx.gate(verifier).pin(reference)
    if require_signed and decision.unverified is not None:
        raise decision.unverified  # verify checks signatures, whatever the policy allows
    return decision.to_wire()


def _ask_agent(ctx: Context, reference: str, *, require_signed: bool) -> AgentDecision | None:
    """The host agent's decision, when one runs and serves this command's server and
    policy; None to decide in-process. Costs no import of python-tuf or httpx."""
    from trustkit.cli.agent import ask_agent

    return ask_agent(ctx, reference, require_signed=require_signed)


def _registry_digest(ctx: Context, decision: AgentDecision) -> str | None:
    """What the registry serves for the tag now; a tag moved since signing is refused."""
    from client.decision import compare_with_registry

    registry = ctx.registry()  # a bad --registry-ca is the user's error, not a skipped check
    compared = compare_with_registry(registry, decision)
    if compared.unasked is not None:
        ctx.out.note(
            f"trustkit: {decision.gun}:{decision.tag} verifies, but it could not be compared "
            f"with the registry: {compared.unasked}"
        )
    return compared.digest


def cmd_export(ctx: Context) -> int:
    from client.bundle import write_bundle
    from trustkit.names import parse_gun

    gun = parse_gun(ctx.args.repository)
    out = Path(ctx.args.output)
    with ctx.session() as (api, verifier):
        repository = verifier.trusted_repository(gun)
        files = write_bundle(
            out,
            repository,
            ctx.settings.trust_dir(gun),
            lambda version: api.metadata(gun, f"{version}.root.json"),
        )
    note_first_use(ctx, repository)
    ctx.out.result(
        f"wrote {out}: {len(files)} metadata files of {gun} ({sum(files.values())} bytes); "
        f"hosts verify with: trustkit verify --bundle {out} {gun}:TAG",
        {"repository": gun, "bundle": str(out), "files": files},
    )
    return EXIT_OK


def cmd_verify_file(ctx: Context) -> int:
    from tuf.api.exceptions import LengthOrHashMismatchError

    from trustkit.errors import VerificationError
    from trustkit.names import parse_gun, validate_target_name

    gun = parse_gun(ctx.args.repository)
    name = validate_target_name(ctx.args.name)
    data = read_file(ctx.args.file)
    repository = verified(ctx, gun, [name])
    info = repository.target_file(name)
    try:
        info.verify_length_and_hashes(data)
    except LengthOrHashMismatchError as error:
        raise VerificationError(
            f"{ctx.args.file} does not match the signed {name} in {gun}: {error}"
        ) from None
    ctx.out.result(
        f"{ctx.args.file} matches the signed {name} in {gun}",
        {"repository": gun, "name": name, "length": info.length, "hashes": info.hashes},
    )
    return EXIT_OK


def cmd_inspect(ctx: Context) -> int:
    """One repository: its object (or the refusal) as ever. Several: a section each, or
    a JSON array of the objects of those inspected; one that fails is reported on
    stderr and the others still printed, and the exit code is the first failure's."""
    references: list[str] = ctx.args.references
    if len(references) == 1:
        data, lines = _inspect(ctx, references[0])
        ctx.out.result(lines, data)
        return EXIT_OK
    inspected: list[InspectJSON] = []
    failure: TrustkitError | None = None
    for reference in references:
        try:
            data, lines = _inspect(ctx, reference)
        except TrustkitError as error:
            ctx.out.error(f"trustkit: {reference}: {error.diagnostics()}")
            failure = failure or error
            continue
        inspected.append(data)
        if not ctx.out.as_json:
            ctx.out.result([*([""] if len(inspected) > 1 else []), *lines], data)
    if ctx.out.as_json:
        print(json.dumps(inspected, indent=2, sort_keys=True))
    return EXIT_OK if failure is None else failure.exit_code


def _inspect(ctx: Context, reference: str) -> tuple[InspectJSON, list[str]]:
    from client.listing import list_repository
    from trustkit.names import parse_reference

    ref = parse_reference(reference)
    repository = verified(ctx, ref.gun, [ref.tag] if ref.tag else None)
    listing = list_repository(repository, ref.tag)
    data = InspectJSON(
        repository=ref.gun,
        tags=[
            InspectTagJSON(
                tag=t.tag, digest=t.digest, size=t.size, media_type=t.media_type, signer=t.signer
            )
            for t in listing.tags
        ],
        files=[
            InspectFileJSON(name=f.name, sha256=f.sha256, size=f.size, signer=f.signer)
            for f in listing.files
        ],
        roles=[
            InspectRoleJSON(
                role=r.role, version=r.version, expires=r.expires.isoformat(), signed_by=r.keyids
            )
            for r in listing.roles
        ],
    )
    if listing.bin_count is not None:
        data["bins"] = InspectBinsJSON(count=listing.bin_count, published=listing.bins_published)
    return data, _inspect_lines(listing, ref.gun)


def _inspect_lines(listing: Listing, gun: str) -> list[str]:
    """The listing as tables: tags, files (if any), roles."""
    lines = [gun, "", f"{'TAG':<30} {'DIGEST':<71} {'SIZE':>9}  {'SIGNER':<10} MEDIA TYPE"]
    lines += [
        f"{t.tag:<30} {t.digest:<71} {t.size:>9}  {t.signer:<10} {t.media_type or '-'}"
        for t in listing.tags
    ]
    if not listing.tags:
        lines.append("(no signed tags)")
    if listing.files:
        lines += ["", f"{'FILE':<30} {'SHA256':<71} {'SIZE':>9}  SIGNER"]
        lines += [
            f"{f.name:<30} {f.sha256 or '-':<71} {f.size:>9}  {f.signer}" for f in listing.files
        ]
    lines += ["", f"{'ROLE':<10} {'VERSION':>7}  {'EXPIRES':<26} KEYS"]
    lines += [
        f"{r.role:<10} {r.version:>7}  {r.expires.isoformat():<26} "
        + ", ".join(k[:12] for k in r.keyids)
        for r in listing.roles
    ]
    if listing.bin_count is not None:
        lines.append(
            f"tags are signed in {listing.bin_count} hash bins (bins-*: the first to expire)"
        )
    return lines


def add_parsers(commands: Commands) -> None:
    """The sub-commands of this group."""
    add = commands.add
    registry = commands.registry
    policy = commands.policy
    sub = add(
        "verify",
        cmd_verify,
        "verify a tag, check the registry still serves it, and print its signed digest",
        [registry, policy],
        signs=False,
    )
    sub.add_argument(
        "reference", metavar="IMAGE[:TAG]", help="e.g. registry.example.com/team/app:1.4.2"
    )
    sub.add_argument(
        "--offline", action="store_true", help="do not compare with the registry's current tag"
    )
    sub.add_argument("--bundle", metavar="FILE", help=BUNDLE_HELP)
    sub = add(
        "resolve",
        cmd_verify,
        "decide on IMAGE[:TAG] as pull would, and print the IMAGE@sha256:… to give docker",
        [policy],
        signs=False,
    )
    sub.add_argument(
        "reference", metavar="IMAGE[:TAG]", help="e.g. registry.example.com/team/app:1.4.2"
    )
    sub.add_argument("--bundle", metavar="FILE", help=BUNDLE_HELP)

    sub = add(
        "export",
        cmd_export,
        "write a bundle of a repository's verified metadata, for hosts with no network",
        signs=False,
    )
    sub.add_argument("repository", help="the repository, e.g. registry.example.com/team/app")
    sub.add_argument("-o", "--output", required=True, metavar="FILE", help="the bundle (tar)")

    sub = add("verify-file", cmd_verify_file, "verify a file against its signed NAME", signs=False)
    sub.add_argument("repository", help="the repository, e.g. registry.example.com/team/app")
    sub.add_argument("name", help="the file's name in the repository, e.g. charts/app-1.0.tgz")
    sub.add_argument("file", help="the file to check against what was signed")

    sub = add(
        "inspect",
        cmd_inspect,
        "show signed tags and every role's version and expiry, of one or more repositories",
        epilog="With several repositories: a section each (--json: an array of their "
        "objects). One that cannot be inspected is reported on stderr, the others are "
        "still shown, and the exit code is that of the first failure (1 unknown or not "
        "verified, 2 bad name, 3 unreachable).",
        signs=False,
    )
    sub.add_argument(
        "references",
        nargs="+",
        metavar="REPO[:TAG]",
        help="a repository, or one tag of it; several may be given",
    )
