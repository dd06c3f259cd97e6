"""``trustkit migrate notary``: move repositories from Notary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from trustkit.cli.context import Context, read_file
from trustkit.cli.options import Commands
from trustkit.cli.shapes import MigrationFailedJSON, MigrationJSON, MigrationsJSON
from trustkit.errors import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, TrustkitError, UsageError

if TYPE_CHECKING:
    from migrate.orchestration import MigrationOutcome


def cmd_migrate_notary(ctx: Context) -> int:
    """Read, verify and republish Notary repositories; with --all, each one of a list."""
    from trustkit.names import parse_gun

    if ctx.args.all:
        if ctx.args.repository:
            raise UsageError("give either REPO or --all, not both")
        guns = _notary_repositories(ctx)
    elif ctx.args.repository:
        guns = [parse_gun(ctx.args.repository)]
    else:
        raise UsageError("name the repository to migrate, or --all --list FILE")
    if len(guns) == 1:
        text, report = _migrate_one(ctx, guns[0])
        ctx.out.result(text, report)
        return EXIT_OK
    reports: list[MigrationJSON | MigrationFailedJSON] = []
    failed = 0
    with ctx.out.progress(len(guns), "migrating", "repo") as bar:
        for number, gun in enumerate(guns, start=1):
            bar.describe(gun)
            ctx.out.note(f"trustkit: [{number}/{len(guns)}] {gun}")
            try:
                text, report = _migrate_one(ctx, gun)
                reports.append({**report, "text": text})
            except TrustkitError as error:
                failed += 1
                ctx.out.warning(f"trustkit: {gun} not migrated: {error.message}")
                reports.append(MigrationFailedJSON(repository=gun, error=error.message))
            bar.advance()
    done = len(guns) - failed
    ctx.out.result(
        f"migrated {done} of {len(guns)} repositories"
        + (f"; {failed} refused (see above)" if failed else ""),
        MigrationsJSON(repositories=reports, migrated=done, failed=failed),
    )
    return EXIT_REFUSED if failed else EXIT_OK


def _notary_repositories(ctx: Context) -> list[str]:
    from trustkit.names import parse_gun

    if ctx.args.list is None:
        raise UsageError(
            "--all needs the repositories: --list FILE (one per line)",
            hint="a notary-server keeps no catalog of its repositories",
        )
    lines = read_file(ctx.args.list).decode(errors="replace").splitlines()
    names = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    if not names:
        raise UsageError(f"{ctx.args.list} names no repository")
    return [parse_gun(name) for name in names]


def _migrate_one(ctx: Context, gun: str) -> tuple[str, MigrationJSON]:
    from migrate.notary import docker_trust_dir
    from migrate.orchestration import MigrationTarget, NotarySource, migrate_repository

    @contextmanager
    def here() -> Iterator[MigrationTarget]:
        with ctx.session() as (api, verifier):
            yield MigrationTarget(
                verifier,
                lambda: ctx.publisher(api, verifier),
                lambda: ctx.lifecycle(api, verifier),
                {record.keyid for record in ctx.keystore().records()},
            )

    source = NotarySource(
        ctx.args.source,
        ctx.args.source_ca,
        lambda: _notary_credentials(ctx),
        Path(ctx.args.trust_dir).expanduser() if ctx.args.trust_dir else docker_trust_dir(ctx.env),
        strict=not ctx.args.lenient,
    )
    outcome = migrate_repository(
        gun,
        source,
        here,
        dry_run=bool(ctx.args.dry_run),
        note=lambda text: ctx.out.note(f"trustkit: {text}"),
    )
    return _migration_text(outcome, ctx.args.source), _migration_json(outcome)


def _migration_text(outcome: MigrationOutcome, source: str) -> str:
    plan = outcome.plan
    lines = [
        f"{'would migrate' if outcome.dry_run else 'migrated'} {outcome.gun} from {source} "
        f"(root {outcome.root_source}): {len(plan.tags)} tags, {plan.to_publish} to publish, "
        f"{plan.unchanged} already there; {len(plan.signers)} signers"
    ]
    lines += [
        f"  signer {s.name} (Notary {s.notary_role}): keys "
        f"{', '.join(k.keyid[:12] for k in s.keys)}, threshold {s.threshold}, paths "
        f"{', '.join(s.paths)}{' (already there)' if s.exists else ''}"
        for s in plan.signers
    ]
    lines += [
        f"  {count} tag(s) of {role} go under targets: this keystore lacks its key "
        "(import it with trustkit key import --from-docker-trust, then run again)"
        for role, count in plan.under_targets.items()
    ]
    lines += [f"  note: {note}" for note in plan.notes]
    if outcome.dry_run:
        lines += [f"  {tag}: {digest} ({role})" for tag, (digest, role) in plan.tags.items()]
    return "\n".join(lines)


def _migration_json(outcome: MigrationOutcome) -> MigrationJSON:
    plan = outcome.plan
    return MigrationJSON(
        repository=outcome.gun,
        root=outcome.root_source,
        dry_run=outcome.dry_run,
        tags={tag: {"digest": d, "role": r} for tag, (d, r) in plan.tags.items()},
        published_changes=0 if outcome.dry_run else plan.to_publish,
        unchanged=plan.unchanged,
        signers=[s.name for s in plan.signers],
        under_targets=plan.under_targets,
        versions=outcome.versions,
        seconds=round(outcome.seconds, 3),
    )


def _notary_credentials(ctx: Context) -> tuple[str, str] | None:
    if not ctx.args.username:
        return None
    password = ctx.env.get("TRUSTKIT_NOTARY_PASSWORD")
    if password is None:
        password = ctx.passphrases().named(
            "TRUSTKIT_NOTARY_PASSWORD", f"password of {ctx.args.username} at {ctx.args.source}"
        )
    return ctx.args.username, password


def add_parsers(commands: Commands) -> None:
    """The sub-commands of this group."""
    add = commands.add
    common = commands.common
    signing = commands.signing
    migrate = add("migrate", lambda ctx: EXIT_USAGE, "move repositories from Notary")
    migrate_commands = migrate.add_subparsers(dest="migrate_command", metavar="FROM", required=True)
    notary = migrate_commands.add_parser(
        "notary",
        parents=[common, signing],
        help="read a Notary / Docker Content Trust repository, verify it, republish it here",
        description="Every tag keeps its digest and size; targets/NAME delegations become "
        "signers with the same keys, paths and threshold. Running again changes only what "
        "differs.",
    )
    notary.set_defaults(handler=cmd_migrate_notary)
    notary.add_argument(
        "repository", nargs="?", metavar="REPO", help="the repository to move (or --all)"
    )
    notary.add_argument("--from", dest="source", required=True, metavar="URL",
                        help="the Notary server, e.g. https://notary.example.com")  # fmt: skip
    notary.add_argument("--from-ca", dest="source_ca", metavar="FILE",
                        help="CA certificates for the Notary server's TLS")  # fmt: skip
    notary.add_argument("--username", help="for the Notary server's token service "
                        "(password from TRUSTKIT_NOTARY_PASSWORD or a prompt)")  # fmt: skip
    notary.add_argument("--trust-dir", metavar="DIR",
                        help="Docker's trust directory, whose roots pin each repository "
                        "(default ~/.docker/trust)")  # fmt: skip
    notary.add_argument("--dry-run", action="store_true", help="show what would change")
    notary.add_argument("--all", action="store_true", help="every repository of --list")
    notary.add_argument("--list", metavar="FILE", help="repositories to migrate, one per line")
    notary.add_argument("--lenient", action="store_true",
                        help="skip a delegation that is expired or short of signatures, as "
                        "Notary's client does, instead of refusing the repository")  # fmt: skip
