"""``trustkit-server``: start the metadata server on uvicorn."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from server.connections import ConnectionLimits, uvicorn_options
from server.connections import configure as configure_connections
from server.settings import GZIP_DEFAULT, GZIP_ENV, ServerSettings
from server.validation import Limits
from trustkit import __version__
from trustkit.display import printable
from trustkit.errors import TrustkitError, UsageError
from trustkit.expiry import ExpiryPolicy

if TYPE_CHECKING:
    from fastapi import FastAPI

    from server.publishing import MetadataService
    from server.storage import TokenRecord

__all__ = ["WORKER_ARGV_ENV", "create_app_from_env", "main", "run"]

# How ``--workers N`` hands its command line to the worker processes uvicorn spawns:
# each parses it again, exactly as the parent did.
WORKER_ARGV_ENV = "TRUSTKIT_SERVER_WORKER_ARGV"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trustkit-server",
        description="The trustkit metadata server (embedded SQLite by default).",
        epilog="other commands: 'trustkit-server token create|list|revoke|generate' (access "
        "tokens), 'trustkit-server export --to DIR' (a static mirror) and "
        "'trustkit-server completion bash|zsh|fish'; each takes --help",
    )
    parser.add_argument("--version", action="version", version=f"trustkit-server {__version__}")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=4443, help="port to listen on (4443)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("TRUSTKIT_SERVER_DATA", "~/.trustkit-server")),
        help="where the SQLite database lives (~/.trustkit-server, env TRUSTKIT_SERVER_DATA)",
    )
    _database_option(parser)
    parser.add_argument(
        "--master-key-file",
        type=Path,
        help="32-byte key that seals online keys; created 0600 if absent "
        "(default DATA_DIR/master.key; e.g. /run/secrets/trustkit_master_key)",
    )
    parser.add_argument(
        "--expiry",
        action="append",
        default=[],
        metavar="ROLE=DURATION",
        help="lifetime of a role's metadata, e.g. timestamp=14d (repeatable; roles: root, "
        "targets, delegation, snapshot, timestamp; pending=7d is how long an upload waits "
        "for co-signers)",
    )
    parser.add_argument(
        "--admin-token-file",
        type=Path,
        help="a file holding an admin token (e.g. /run/secrets/trustkit_admin_token); it "
        "gets scope admin:**",
    )
    parser.add_argument(
        "--no-auth",
        action="store_true",
        help="let anyone who can reach the server write (for a loopback test server only)",
    )
    parser.add_argument(
        "--read-auth", action="store_true", help="reads need a token with a pull scope too"
    )
    parser.add_argument("--tls-cert", type=Path, help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", type=Path, help="the certificate's private key (PEM)")
    _limit_options(parser)
    _connection_options(parser)
    parser.add_argument(
        "--workers",
        type=_positive,
        default=1,
        metavar="N",
        help="server processes sharing the port (1); they share the database (SQLite in "
        "WAL mode, or --database), and each keeps its own /_trustkit/metrics counters",
    )
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning"],
        help="how much the server logs (info; -v is debug, -q is warning)",
    )
    _verbosity_options(parser, "log every request's details (as --log-level debug)")
    return parser


def _verbosity_options(parser: argparse.ArgumentParser, verbose: str) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", help=verbose)
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="only warnings and errors; no progress bar"
    )


def _log_level(args: argparse.Namespace) -> str:
    if args.verbose and args.quiet:
        raise UsageError("-q/--quiet and -v/--verbose contradict each other; give one")
    if getattr(args, "log_level", None) is not None and (args.verbose or args.quiet):
        raise UsageError("give --log-level or -v/-q, not both")
    given = getattr(args, "log_level", None)
    return str(given or ("debug" if args.verbose else "warning" if args.quiet else "info"))


def _limit_options(parser: argparse.ArgumentParser) -> None:
    """How much one request may hold."""
    limits = Limits()
    for flag, default, text in (
        ("--max-upload-bytes", 64 * 1024 * 1024, "bytes in one upload request"),
        ("--max-role-bytes", limits.max_role_bytes, "bytes in one role's metadata"),
        ("--max-roles-per-upload", limits.max_roles_per_upload, "roles in one upload"),
        ("--max-json-depth", limits.max_json_depth, "nesting of JSON objects and arrays"),
        ("--max-targets-per-role", limits.max_targets_per_role, "targets signed by one role"),
    ):
        parser.add_argument(flag, type=_positive, default=default, help=f"{text} ({default})")


def _connection_options(parser: argparse.ArgumentParser) -> None:
    """How long and how many connections and requests the server waits for."""
    bounds = ConnectionLimits()
    parser.add_argument(
        "--max-header-bytes",
        type=_positive,
        default=bounds.max_header_bytes,
        help=f"bytes in a request's line and headers; more: 400 ({bounds.max_header_bytes})",
    )
    parser.add_argument(
        "--header-timeout",
        type=_seconds,
        default=bounds.header_timeout,
        metavar="SECONDS",
        help="a request's line and headers must arrive within this time, or the connection "
        f"is closed ({bounds.header_timeout:g})",
    )
    parser.add_argument(
        "--body-timeout",
        type=_seconds,
        default=ServerSettings.body_timeout,
        metavar="SECONDS",
        help="a request's body must arrive within this time, or 408 "
        f"({ServerSettings.body_timeout:g})",
    )
    parser.add_argument(
        "--keep-alive-timeout",
        type=_seconds,
        default=bounds.keep_alive_timeout,
        metavar="SECONDS",
        help=f"an idle kept-alive connection is closed after this ({bounds.keep_alive_timeout:g})",
    )
    parser.add_argument(
        "--max-connections",
        type=_positive,
        default=bounds.max_connections,
        metavar="N",
        help="open connections per worker; more are closed at once, and requests past "
        f"it get 503 ({bounds.max_connections})",
    )


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds <= 3600:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds (0 to 3600)")
    return seconds


def connection_limits(args: argparse.Namespace) -> ConnectionLimits:
    return ConnectionLimits(
        max_header_bytes=args.max_header_bytes,
        header_timeout=args.header_timeout,
        keep_alive_timeout=args.keep_alive_timeout,
        max_connections=args.max_connections,
    )


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"'{text}' is not a positive whole number")
    return int(text)


def _data_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("TRUSTKIT_SERVER_DATA", "~/.trustkit-server")),
        help="the server's data dir (~/.trustkit-server, env TRUSTKIT_SERVER_DATA)",
    )
    _database_option(parser)


def _database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database",
        default=os.environ.get("TRUSTKIT_SERVER_DATABASE"),
        metavar="URL",
        help="postgresql://… to share one database between server replicas (env "
        "TRUSTKIT_SERVER_DATABASE); default: SQLite in the data dir",
    )


def _token_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trustkit-server token", description="Access tokens of the metadata server."
    )
    commands = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = commands.add_parser("create", help="make a token; it is printed once")
    create.add_argument("--name", required=True, help="who uses it, e.g. ci-app")
    create.add_argument(
        "--scope",
        action="append",
        required=True,
        metavar="ACTION:PATTERN",
        help="pull, push or admin on repositories matching PATTERN, e.g. "
        "push:registry.example.com/team/* (* within one path component, ** across; "
        "repeatable)",
    )
    _data_dir_option(create)
    listing = commands.add_parser("list", help="the tokens: name, scopes, created, revoked")
    _data_dir_option(listing)
    revoke = commands.add_parser("revoke", help="revoke the live token NAME")
    revoke.add_argument("name", metavar="NAME")
    _data_dir_option(revoke)
    commands.add_parser("generate", help="print a new random token (for an admin token file)")
    return parser


def _export_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trustkit-server export",
        description="Write every repository's metadata as static files, laid out as the "
        "server serves them; hosts verify from it with trustkit --mirror URL.",
    )
    parser.add_argument("--to", required=True, type=Path, metavar="DIR", help="where to write")
    parser.add_argument("--repository", action="append", help="only these (repeatable)")
    parser.add_argument("--master-key-file", type=Path, help="as for the server")
    _data_dir_option(parser)
    _verbosity_options(parser, "say each repository exported, its files and time")
    return parser


def export_command(argv: Sequence[str]) -> int:
    """``trustkit-server export --to DIR``: a static mirror for a CDN or object storage."""
    from server.online_keys import OnlineKeys
    from server.publishing import MetadataService
    from server.storage.opening import open_storage
    from trustkit.names import parse_gun

    args = _export_parser().parse_args(argv)
    data_dir: Path = args.data_dir.expanduser()
    settings = ServerSettings(
        data_dir=data_dir,
        master_key_file=(args.master_key_file or data_dir / "master.key").expanduser(),
    )
    if args.database is None and not settings.database_path.is_file():
        raise UsageError(f"no server database in {data_dir}", hint="give --data-dir")
    storage = open_storage(args.database, settings.database_path)
    try:
        from server.master_key import MasterKey

        keys = OnlineKeys(storage, MasterKey.load_or_create(settings.master_key_file))
        service = MetadataService(storage, keys, settings)
        guns = (
            [parse_gun(g) for g in args.repository]
            if args.repository
            else list(storage.repositories())
        )
        count = _export(service, args, guns)
    finally:
        storage.close()
    if not args.quiet:
        print(f"exported {len(guns)} repositories ({count} files) to {args.to}", file=sys.stderr)
    return 0


def _export(service: MetadataService, args: argparse.Namespace, guns: list[str]) -> int:
    """Export ``guns`` one by one: a bar at a terminal, a line each with --verbose."""
    from server.mirror import export_mirror
    from trustkit.progress import progress

    _log_level(args)  # -q with -v is an error here too
    count = 0
    with progress(len(guns), "exporting", "repo", wanted=not args.quiet) as bar:
        for gun in guns:
            bar.describe(gun)
            started = time.monotonic()
            written = export_mirror(service, args.to, [gun])
            count += written
            if args.verbose:
                line = escape_controls(
                    f"trustkit-server: exported {gun}: {written} files in "
                    f"{time.monotonic() - started:.3f} s"
                )
                if not bar.write(line):
                    print(line, file=sys.stderr)
            bar.advance()
    return count


def command_parser() -> argparse.ArgumentParser:
    """The whole grammar of ``trustkit-server`` in one parser, for completion scripts and
    man pages (``main`` dispatches ``token``, ``export`` and ``completion`` itself)."""
    parser = _parser()
    parser.epilog = None
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, sub, text in (
        ("token", _token_parser(), "access tokens: create, list, revoke, generate"),
        ("export", _export_parser(), "write a static mirror for a CDN (--to DIR)"),
        ("completion", _completion_parser(), "print the shell completion script"),
    ):
        added = commands.add_parser(
            name, parents=[sub], add_help=False, help=text, description=sub.description
        )
        added.prog = sub.prog
    return parser


def _completion_parser() -> argparse.ArgumentParser:
    from trustkit.completion import SHELLS

    parser = argparse.ArgumentParser(
        prog="trustkit-server completion",
        description="Print trustkit-server's completion script, e.g. in ~/.bashrc: "
        "source <(trustkit-server completion bash)",
    )
    parser.add_argument("shell", choices=SHELLS, help="the shell to complete in")
    return parser


def completion_command(argv: Sequence[str]) -> int:
    """``trustkit-server completion bash|zsh|fish``."""
    from trustkit.completion import script

    args = _completion_parser().parse_args(argv)
    sys.stdout.write(script(command_parser(), args.shell))
    return 0


def token_command(argv: Sequence[str]) -> int:
    """``trustkit-server token …``: works on the database, with or without the server up."""
    from server.auth import make_token, parse_scope, token_digest, token_lookup, validate_token_name
    from server.storage import TokenRecord
    from server.storage.opening import open_storage

    args = _token_parser().parse_args(argv)
    if args.action == "generate":
        print(make_token())
        return 0
    data_dir: Path = args.data_dir.expanduser()
    database = data_dir / "trustkit.db"
    if args.database is None and not database.is_file():
        # A token in a database no server reads is a token that never works.
        raise UsageError(
            f"no server database in {data_dir}",
            hint="give the server's --data-dir (or TRUSTKIT_SERVER_DATA); the server makes "
            "its database when it first starts",
        )
    where = "the PostgreSQL database" if args.database else str(database)
    storage = open_storage(args.database, database)
    try:
        if args.action == "create":
            scopes = tuple(str(parse_scope(scope)) for scope in args.scope)
            name = validate_token_name(args.name)
            token = make_token()
            record = TokenRecord(
                token_lookup(token), token_digest(token), name, scopes, datetime.now(UTC)
            )
            try:
                storage.add_token(record)
            except ValueError as error:
                raise UsageError(str(error), hint=f"revoke it first: token revoke {name}") from None
            print(token)
            print(
                f"made the token {name} ({', '.join(scopes)}) in {where}; it is shown only now",
                file=sys.stderr,
            )
        elif args.action == "list":
            print(_token_table(storage.tokens()))
        elif not storage.revoke_token(args.name):
            raise UsageError(f"no live token named {args.name}", hint="see: token list")
        else:
            print(f"revoked the token {args.name}", file=sys.stderr)
    finally:
        storage.close()
    return 0


def settings_from_args(args: argparse.Namespace) -> ServerSettings:
    data_dir: Path = args.data_dir.expanduser()
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if (args.tls_cert is None) != (args.tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together")
    return ServerSettings(
        data_dir=data_dir,
        master_key_file=(args.master_key_file or data_dir / "master.key").expanduser(),
        expiry=ExpiryPolicy.from_settings(args.expiry),
        database_url=args.database,
        gzip=os.environ.get(GZIP_ENV, GZIP_DEFAULT) == "1",
        require_auth=not args.no_auth,
        open_reads=not args.read_auth,
        admin_token_file=args.admin_token_file,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        max_upload_bytes=args.max_upload_bytes,
        body_timeout=args.body_timeout,
        limits=Limits(
            max_role_bytes=args.max_role_bytes,
            max_roles_per_upload=args.max_roles_per_upload,
            max_json_depth=args.max_json_depth,
            max_targets_per_role=args.max_targets_per_role,
        ),
    )


def create_app_from_env() -> FastAPI:
    """The app of one worker process of ``--workers N`` (a uvicorn factory): the parent's
    command line, from ``TRUSTKIT_SERVER_WORKER_ARGV``, parsed again here."""
    from server.app import create_app

    try:
        argv = json.loads(os.environ[WORKER_ARGV_ENV])
    except (KeyError, ValueError):
        raise UsageError(
            f"{WORKER_ARGV_ENV} holds no command line",
            hint="start worker processes with: trustkit-server --workers N",
        ) from None
    args = _parser().parse_args(argv)
    _configure_logging(_log_level(args))
    configure_connections(connection_limits(args))
    return create_app(settings_from_args(args))


def _configure_logging(level: str) -> None:
    """Every line of the server's log (uvicorn's access lines too) goes through
    ``OneLineFormatter``: a request cannot forge a log line."""
    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter("%(asctime)s %(name)s %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


class OneLineFormatter(logging.Formatter):
    """One record, one line: control characters in the message (a newline or a
    terminal escape that came in with a request: a path, a file name, a role) are
    escaped, and a traceback's lines are each marked as its continuation."""

    def format(self, record: logging.LogRecord) -> str:
        exc_info, stack_info = record.exc_info, record.stack_info
        message = escape_controls(record.getMessage())
        plain = logging.makeLogRecord({**record.__dict__, "msg": message, "args": None})
        plain.exc_info = plain.exc_text = plain.stack_info = None
        line = super().format(plain)
        extra = []
        if exc_info:
            extra += self.formatException(exc_info).splitlines()
        if stack_info:
            extra += self.formatStack(stack_info).splitlines()
        return "\n".join([line, *("  | " + escape_controls(text) for text in extra)])


def escape_controls(text: str) -> str:
    """``text`` with every unprintable character (newlines, escapes, line separators)
    written as its Python escape."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["token"], ["export"], ["completion"]):
        commands = {"token": token_command, "export": export_command}
        command = commands.get(argv[0], completion_command)
        try:
            return command(argv[1:])
        except TrustkitError as error:
            print(f"trustkit-server: {error.diagnostics()}", file=sys.stderr)
            return error.exit_code
    args = _parser().parse_args(argv)
    try:
        log_level = _log_level(args)
    except TrustkitError as error:
        print(f"trustkit-server: {error.diagnostics()}", file=sys.stderr)
        return error.exit_code
    _configure_logging(log_level)
    bounds = connection_limits(args)
    configure_connections(bounds)
    try:
        import uvicorn

        from server.app import create_app

        settings = settings_from_args(args)
        # With several workers this first app is never served: building it checks the
        # settings (a clear error, before any worker starts) and creates, once, what the
        # workers then share: the master key, the database schema and the admin token.
        app = create_app(settings)
    except TrustkitError as error:
        print(f"trustkit-server: {error.diagnostics()}", file=sys.stderr)
        return error.exit_code
    except OSError as error:
        print(f"trustkit-server: {error}", file=sys.stderr)
        return 2
    log = logging.getLogger("trustkit.server")
    if not settings.require_auth:
        log.warning(
            "--no-auth: anyone who can reach %s:%d can write to every repository",
            args.host,
            args.port,
        )
    served = {
        "host": args.host,
        "port": args.port,
        "log_level": log_level,
        "ssl_certfile": str(settings.tls_cert) if settings.tls_cert else None,
        "ssl_keyfile": str(settings.tls_key) if settings.tls_key else None,
        "log_config": None,  # uvicorn's loggers go through ours (_configure_logging)
        **uvicorn_options(bounds),
    }
    if args.workers == 1:
        uvicorn.run(app, **served)
        return 0
    app.state.service.storage.close()
    os.environ[WORKER_ARGV_ENV] = json.dumps(argv)
    log.info("starting %d worker processes", args.workers)
    uvicorn.run(f"{__name__}:create_app_from_env", factory=True, workers=args.workers, **served)
    return 0


def run() -> None:
    sys.exit(main())


def _token_table(tokens: Sequence[TokenRecord]) -> str:
    """The tokens as aligned columns (widths from the longest value; times to the
    second, in UTC); names and scopes escaped for the terminal."""
    rows = [("NAME", "CREATED", "REVOKED", "SCOPES")]
    for known in tokens:
        revoked = known.revoked.isoformat(timespec="seconds") if known.revoked else "-"
        rows.append(
            (
                printable(known.name),
                known.created.isoformat(timespec="seconds"),
                revoked,
                printable(", ".join(known.scopes)),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    return "\n".join(
        "  ".join(value.ljust(width) for value, width in zip(row[:3], widths, strict=True))
        + "  "
        + row[3]
        for row in rows
    )
