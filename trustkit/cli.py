"""The ``trustkit`` command line: parses arguments, wires them to ``client`` and ``keys``,
and renders results. It holds no logic of its own.

Exit codes: 0 ok, 1 refused (verification or server), 2 usage error,
3 server or network unreachable. ``--json`` prints one JSON document on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustkit import __version__
from trustkit.errors import EXIT_OK, EXIT_USAGE, TrustkitError, UsageError

if TYPE_CHECKING:
    from client.publisher import Publisher
    from client.server_api import ServerAPI
    from client.settings import ClientSettings
    from client.verify import Verifier
    from keys.keystore import Keystore
    from keys.passphrase import PassphraseSource

__all__ = ["main", "run"]


@dataclass
class Output:
    """Where results go: a line of text for people, or one JSON document for scripts."""

    as_json: bool

    def result(self, text: str, data: dict[str, Any]) -> None:
        if self.as_json:
            print(json.dumps(data, indent=2, sort_keys=True))
        else:
            print(text)

    def note(self, text: str) -> None:
        print(text, file=sys.stderr)


@dataclass
class Context:
    """Everything a command needs, built lazily from settings read at the edge."""

    args: argparse.Namespace
    env: dict[str, str]
    out: Output

    @cached_property
    def settings(self) -> ClientSettings:
        from client.settings import DEFAULT_SERVER, ClientSettings

        home = Path(self.env.get("TRUSTKIT_HOME") or Path.home() / ".trustkit").expanduser()
        server = self.args.server or self.env.get("TRUSTKIT_SERVER") or DEFAULT_SERVER
        if not server.startswith(("http://", "https://")):
            raise UsageError(
                f"--server '{server}' is not an http(s) URL", hint="e.g. https://notary.example.com"
            )
        from trustkit.expiry import ExpiryPolicy

        expiry = ExpiryPolicy.from_settings(self.args.expiry or [])
        return ClientSettings(home=home, server_url=server, expiry=expiry)

    @contextmanager
    def session(self) -> Iterator[tuple[ServerAPI, Verifier]]:
        import httpx

        from client.fetcher import HttpxFetcher
        from client.server_api import ServerAPI
        from client.verify import Verifier

        settings = self.settings
        # Building a TLS context costs ~30 ms of every command; a plain-http server (the
        # loopback default) never needs one, and redirects elsewhere are not followed.
        tls = settings.server_url.startswith("https://")
        with httpx.Client(timeout=settings.timeout, follow_redirects=False, verify=tls) as http:
            api = ServerAPI(settings.server_url, http)
            yield api, Verifier(settings, HttpxFetcher(http))

    def keystore(self) -> Keystore:
        from keys.keystore import Keystore

        return Keystore(self.settings.home)

    def passphrases(self) -> PassphraseSource:
        from keys.passphrase import PassphraseSource

        return PassphraseSource.from_environment(self.env, self.args.passphrase_file)

    def publisher(self, api: ServerAPI, verifier: Verifier) -> Publisher:
        from client.publisher import Publisher

        return Publisher(self.settings, api, self.keystore(), self.passphrases(), verifier)


# --- commands -------------------------------------------------------------------------


def cmd_init(ctx: Context) -> int:
    from trustkit.names import parse_gun

    gun = parse_gun(ctx.args.repository)
    with ctx.session() as (api, verifier):
        result = ctx.publisher(api, verifier).init(gun, ctx.args.key_type)
    ctx.out.result(
        f"initialised {gun}\n  root key:    {result.keys['root'][0]}\n"
        f"  targets key: {result.keys['targets'][0]}",
        {"repository": gun, "keys": result.keys},
    )
    return EXIT_OK


def _stage(ctx: Context, gun: str, changes: list[Any], what: str) -> int:
    from client.changelist import Changelist
    from client.publisher import stage_or_publish

    changelist = Changelist(ctx.settings.changelist_path(gun))
    if ctx.args.no_publish:
        stage_or_publish(None, changelist, gun, changes)
        ctx.out.result(
            f"staged {what}; run: trustkit publish {gun}",
            {"repository": gun, "staged": what, "published": False},
        )
        return EXIT_OK
    with ctx.session() as (api, verifier):
        result = stage_or_publish(ctx.publisher(api, verifier), changelist, gun, changes)
    assert result is not None
    ctx.out.result(
        f"{what}; published {gun} (targets v{result.targets_version})",
        {
            "repository": gun,
            "published": True,
            "targets_version": result.targets_version,
            "changes": result.changes,
            "attempts": result.attempts,
        },
    )
    return EXIT_OK


def cmd_sign(ctx: Context) -> int:
    from client.changelist import Change
    from trustkit.metadata import image_target
    from trustkit.names import parse_digest, parse_reference

    ref = parse_reference(ctx.args.reference, require_tag=True)
    assert ref.tag is not None
    if ctx.args.digest is None or ctx.args.size is None:
        raise UsageError(
            "give the manifest --digest and --size to sign",
            hint="e.g. trustkit sign REPO:TAG --digest sha256:… --size 1234",
        )
    if ctx.args.size <= 0:
        raise UsageError(f"--size {ctx.args.size} must be a positive number of bytes")
    digest = parse_digest(ctx.args.digest)
    target = image_target(ref.tag, digest, ctx.args.size, ctx.args.media_type)
    return _stage(ctx, ref.gun, [Change.add(target)], f"signed {ref.gun}:{ref.tag} -> {digest}")


def cmd_sign_file(ctx: Context) -> int:
    from client.changelist import Change
    from trustkit.metadata import file_target
    from trustkit.names import parse_gun, validate_target_name

    gun = parse_gun(ctx.args.repository)
    name = validate_target_name(ctx.args.name)
    target = file_target(name, _read_file(ctx.args.file))
    return _stage(ctx, gun, [Change.add(target)], f"signed file {name} ({target.length} bytes)")


def cmd_revoke(ctx: Context) -> int:
    from client.changelist import Change, Changelist
    from trustkit.names import parse_reference

    ref = parse_reference(ctx.args.reference, require_tag=True)
    assert ref.tag is not None
    staged = Changelist(ctx.settings.changelist_path(ref.gun)).load()
    if not any(change.path == ref.tag for change in staged):
        with ctx.session() as (_, verifier):
            verifier.trusted_repository(ref.gun).target(ref.tag)  # raises if not signed
    return _stage(ctx, ref.gun, [Change.remove(ref.tag)], f"revoked {ref.gun}:{ref.tag}")


def cmd_publish(ctx: Context) -> int:
    from trustkit.names import parse_gun

    ctx.args.no_publish = False
    return _stage(ctx, parse_gun(ctx.args.repository), [], "published staged changes")


def cmd_verify(ctx: Context) -> int:
    from trustkit.names import parse_reference

    ref = parse_reference(ctx.args.reference, require_tag=True)
    assert ref.tag is not None
    with ctx.session() as (_, verifier):
        repository = verifier.trusted_repository(ref.gun)
    _note_first_use(ctx, repository)
    target = repository.target(ref.tag)
    if ref.digest is not None and str(ref.digest) != target.digest:
        from trustkit.errors import VerificationError

        raise VerificationError(
            f"{ref.gun}:{ref.tag} is signed as {target.digest}, not {ref.digest}"
        )
    pinned = f"{ref.gun}@{target.digest}"
    data = {
        "repository": ref.gun,
        "tag": ref.tag,
        "digest": target.digest,
        "size": target.size,
        "media_type": target.media_type,
        "reference": pinned,
    }
    text = pinned if ctx.args.command == "resolve" else target.digest
    ctx.out.result(text, data)
    return EXIT_OK


def cmd_verify_file(ctx: Context) -> int:
    from tuf.api.exceptions import LengthOrHashMismatchError

    from trustkit.errors import VerificationError
    from trustkit.names import parse_gun, validate_target_name

    gun = parse_gun(ctx.args.repository)
    name = validate_target_name(ctx.args.name)
    data = _read_file(ctx.args.file)
    with ctx.session() as (_, verifier):
        repository = verifier.trusted_repository(gun)
    _note_first_use(ctx, repository)
    info = repository.targets.targets.get(name)
    if info is None:
        raise repository.not_signed(name)
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
    from trustkit.metadata import describe_target
    from trustkit.names import parse_reference

    ref = parse_reference(ctx.args.reference)
    with ctx.session() as (_, verifier):
        repository = verifier.trusted_repository(ref.gun)
    _note_first_use(ctx, repository)
    names = [ref.tag] if ref.tag else repository.signed_tags()
    if ref.tag:
        repository.target(ref.tag)  # raises if not signed
    tags = [describe_target(repository.targets.targets[name]) for name in names]
    roles = [
        {
            "role": r.role,
            "version": r.version,
            "expires": r.expires.isoformat(),
            "signed_by": r.keyids,
        }
        for r in repository.roles
    ]
    lines = [f"{ref.gun}", "", f"{'TAG':<30} {'DIGEST':<71} {'SIZE':>9}  SIGNER"]
    lines += [f"{t.name:<30} {t.digest:<71} {t.size:>9}  targets" for t in tags]
    if not tags:
        lines.append("(no signed tags)")
    lines += ["", f"{'ROLE':<10} {'VERSION':>7}  {'EXPIRES':<26} KEYS"]
    lines += [
        f"{r.role:<10} {r.version:>7}  {r.expires.isoformat():<26} "
        + ", ".join(k[:12] for k in r.keyids)
        for r in repository.roles
    ]
    data = {
        "repository": ref.gun,
        "tags": [
            {
                "tag": t.name,
                "digest": t.digest,
                "size": t.size,
                "media_type": t.media_type,
                "signer": "targets",
            }
            for t in tags
        ],
        "roles": roles,
    }
    ctx.out.result("\n".join(lines), data)
    return EXIT_OK


def cmd_trust_pin(ctx: Context) -> int:
    from trustkit.names import parse_gun

    gun = parse_gun(ctx.args.repository)
    root_bytes = _read_file(ctx.args.root_file)
    with ctx.session() as (_, verifier):
        root = verifier.pin(gun, root_bytes)
    keyids = root.roles["root"].keyids
    ctx.out.result(
        f"pinned root v{root.version} of {gun} (root keys: {', '.join(k[:12] for k in keyids)})",
        {"repository": gun, "root_version": root.version, "root_keys": keyids},
    )
    return EXIT_OK


def cmd_trust_forget(ctx: Context) -> int:
    from trustkit.names import parse_gun

    gun = parse_gun(ctx.args.repository)
    with ctx.session() as (_, verifier):
        existed = verifier.forget(gun)
    ctx.out.result(
        f"forgot the trusted root of {gun}" if existed else f"no trusted root for {gun}",
        {"repository": gun, "forgotten": existed},
    )
    return EXIT_OK


def cmd_delete(ctx: Context) -> int:
    from trustkit.names import parse_gun

    gun = parse_gun(ctx.args.repository)
    if not ctx.args.yes:
        raise UsageError(
            f"deleting {gun} removes all its trust data from the server",
            hint=f"confirm with: trustkit delete {gun} --yes",
        )
    with ctx.session() as (api, verifier):
        api.delete(gun)
        verifier.forget(gun)
    ctx.out.result(f"deleted {gun} from the server", {"repository": gun, "deleted": True})
    return EXIT_OK


# --- wiring ---------------------------------------------------------------------------


def _read_file(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None


def _note_first_use(ctx: Context, repository: Any) -> None:
    if repository.trusted_on_first_use:
        ctx.out.note(
            f"trustkit: trusting the root of {repository.gun} on first use; "
            "pin it ahead of time with: trustkit trust pin"
        )


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--server",
        default=argparse.SUPPRESS,
        help="metadata server URL (env TRUSTKIT_SERVER, default http://127.0.0.1:4443)",
    )
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for scripts"
    )
    common.add_argument(
        "--passphrase-file",
        type=Path,
        default=argparse.SUPPRESS,
        help="read key passphrases from this file (e.g. /run/secrets/…)",
    )

    common.add_argument(
        "--expiry",
        action="append",
        default=argparse.SUPPRESS,
        metavar="ROLE=DURATION",
        help="lifetime of metadata you sign, e.g. targets=1y (roles: root, targets, "
        "delegation; defaults 10y, 3y, 3y)",
    )

    parser = argparse.ArgumentParser(
        prog="trustkit",
        description="Sign container image tags and verify them before they run.",
        parents=[common],
    )
    parser.set_defaults(server=None, json=False, passphrase_file=None, expiry=None)
    parser.add_argument("--version", action="version", version=f"trustkit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, handler: Callable[[Context], int], text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=text, description=text)
        sub.set_defaults(handler=handler)
        return sub

    sub = add("init", cmd_init, "create a signed repository: root and targets keys, root v1")
    sub.add_argument("repository", help="e.g. registry.example.com/team/app")
    sub.add_argument("--key-type", choices=["ed25519", "ecdsa"], default="ed25519")

    sub = add("sign", cmd_sign, "sign TAG -> digest and publish it")
    sub.add_argument("reference", metavar="REPO:TAG")
    sub.add_argument("--digest", help="manifest digest, sha256:…")
    sub.add_argument("--size", type=int, help="manifest size in bytes")
    sub.add_argument("--media-type", help="manifest media type")
    sub.add_argument("--no-publish", action="store_true", help="only stage the change")

    sub = add("sign-file", cmd_sign_file, "sign an arbitrary file under NAME")
    sub.add_argument("repository")
    sub.add_argument("name")
    sub.add_argument("file")
    sub.add_argument("--no-publish", action="store_true", help="only stage the change")

    sub = add("revoke", cmd_revoke, "remove a signed tag")
    sub.add_argument("reference", metavar="REPO:TAG")
    sub.add_argument("--no-publish", action="store_true", help="only stage the change")

    sub = add("publish", cmd_publish, "publish the staged changes of a repository")
    sub.add_argument("repository")

    sub = add("verify", cmd_verify, "verify a tag and print its signed digest")
    sub.add_argument("reference", metavar="REPO:TAG")
    sub = add("resolve", cmd_verify, "verify a tag and print REPO@sha256:… for docker")
    sub.add_argument("reference", metavar="REPO:TAG")

    sub = add("verify-file", cmd_verify_file, "verify a file against its signed NAME")
    sub.add_argument("repository")
    sub.add_argument("name")
    sub.add_argument("file")

    sub = add("inspect", cmd_inspect, "show signed tags and every role's version and expiry")
    sub.add_argument("reference", metavar="REPO[:TAG]")

    trust = add("trust", lambda ctx: EXIT_USAGE, "manage the roots this host trusts")
    trust_commands = trust.add_subparsers(dest="trust_command", metavar="ACTION", required=True)
    pin = trust_commands.add_parser("pin", parents=[common], help="trust this root for REPO")
    pin.set_defaults(handler=cmd_trust_pin)
    pin.add_argument("repository")
    pin.add_argument("root_file", metavar="ROOT_JSON")
    forget = trust_commands.add_parser(
        "forget", parents=[common], help="forget the trusted root (next use trusts anew)"
    )
    forget.set_defaults(handler=cmd_trust_forget)
    forget.add_argument("repository")

    sub = add("delete", cmd_delete, "delete a repository's trust data from the server")
    sub.add_argument("repository")
    sub.add_argument("--yes", action="store_true", help="confirm")
    return parser


def main(argv: Sequence[str] | None = None, env: dict[str, str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out = Output(as_json=bool(args.json))
    ctx = Context(args, dict(os.environ) if env is None else env, out)
    try:
        code: int = args.handler(ctx)
        return code
    except TrustkitError as error:
        if out.as_json:
            print(json.dumps({"error": error.code, "message": error.message, "hint": error.hint}))
        print(f"trustkit: {error.diagnostics()}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("trustkit: interrupted; nothing was changed", file=sys.stderr)
        return 130


def run() -> None:
    sys.exit(main())
