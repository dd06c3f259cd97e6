"""trustkit's verifier behind the TUF conformance suite's client-under-test CLI.

The tuf-conformance suite (theupdateframework/tuf-conformance, ``CLIENT-CLI.md``) drives
a client through three commands; options always precede the command::

    trustkit-conformance-client --metadata-dir DIR init ROOT_FILE
    trustkit-conformance-client --metadata-url URL --metadata-dir DIR refresh
    trustkit-conformance-client --metadata-url URL --metadata-dir DIR \\
        --target-name PATH [--target-name PATH ...] --target-dir DIR \\
        --target-base-url URL download

Each exits 0 on success and 1 on any failure (usage errors included).

This is trustkit's verifier, not a second one: the updater is built by
:func:`client.lookup.build_updater` (trustkit's ``UPDATER_CONFIG`` limits, every
download checked by its metadata guard) over trustkit's
:class:`~client.fetcher.HttpxFetcher`, and each target is decided by
:func:`client.lookup.decide_target`, the function ``trustkit verify`` decides with.
Only the directories differ: they are given on the command line instead of derived from
a repository's name. The trust anchor follows the ``trustkit trust pin`` semantics: the
root given to ``init`` is the anchor (checked to be a root signed by its own keys,
forgetting whatever was trusted before), and every later root must chain from it. Trust
on first use is deliberately absent: ``refresh`` without an anchor fails without touching
the network, which is what the conformance suite expects of a client whose ``init`` was
given an invalid root.

What the metadata directory holds is exactly the trusted roles, one flat file per role
(``ROLE.json``, a delegated role's name percent-encoded), each holding the bytes received,
written atomically as soon as it is verified. python-tuf (6.0 and later) keeps roots in a
``root_history/`` directory of versioned files behind a ``root.json`` symlink; the
updater here stores the trusted root as a plain ``root.json`` instead
(:class:`client.tuf_internals.FlatRootUpdater`).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn
from urllib.parse import quote

import httpx
from tuf.api import exceptions
from tuf.api.metadata import Metadata, Root, Snapshot, TargetFile, Targets, Timestamp
from tuf.ngclient import FetcherInterface, Updater

from client import lookup
from client.fetcher import HttpxFetcher
from client.tuf_internals import FlatRootUpdater
from keys.files import ensure_private_dir
from trustkit.errors import NotFoundError, TrustkitError, UsageError, VerificationError

__all__ = [
    "FlatMetadataUpdater",
    "build_updater",
    "download",
    "main",
    "pin_root",
    "refresh",
    "run",
    "target_filename",
]

PROG = "trustkit-conformance-client"
EXIT_OK = 0
EXIT_FAILED = 1
# The CLI's default (client.settings.ClientSettings.timeout).
TIMEOUT_SECONDS = 30.0
TOP_LEVEL_ROLES = (Root.type, Timestamp.type, Snapshot.type, Targets.type)


# python-tuf's updater storing the trusted root flat (it overrides private methods).
FlatMetadataUpdater = FlatRootUpdater


def build_updater(
    metadata_dir: Path,
    metadata_url: str,
    fetcher: FetcherInterface,
    *,
    target_dir: Path | None = None,
    target_base_url: str | None = None,
    bootstrap: bytes | None = None,
) -> Updater:
    """The verifier's updater (:func:`client.lookup.build_updater`), for explicit
    directories, storing the trusted root as a flat ``root.json``.

    ``fetcher`` is trustkit's :class:`~client.fetcher.HttpxFetcher` whenever the network
    is used. ``bootstrap=None`` makes the ``root.json`` in ``metadata_dir`` the trust
    anchor, as the verifier does for a repository it already trusts.
    """
    return lookup.build_updater(
        metadata_dir,
        metadata_url,
        fetcher,
        bootstrap=bootstrap,
        target_dir=target_dir,
        target_base_url=target_base_url,
        updater_class=FlatMetadataUpdater,
    )


@contextmanager
def _exclusive(directory: Path) -> Iterator[None]:
    """One run per metadata directory at a time (python-tuf's cache is single-writer).

    The lock is taken on the directory itself, so that it holds nothing but metadata.
    """
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class _OfflineFetcher(FetcherInterface):
    """For ``init``, which must make no request: any attempt is a bug, and fails."""

    def _fetch(self, url: str) -> Iterator[bytes]:
        raise exceptions.DownloadError(f"init makes no requests (tried {url})")


def pin_root(metadata_dir: Path, root_bytes: bytes) -> Root:
    """Make ``root_bytes`` the trust anchor stored in ``metadata_dir``, with no network.

    Like ``trustkit trust pin``: the bytes must be TUF root metadata, signed by a
    threshold of its own root keys, and whatever was trusted before is forgotten.
    """
    try:
        metadata = Metadata[Root].from_bytes(root_bytes)
    except Exception as error:
        raise UsageError(f"not a TUF root metadata file: {error}") from None
    root = metadata.signed
    if not isinstance(root, Root):
        raise UsageError(f"not a TUF root metadata file: it holds {root.type} metadata")
    try:
        root.verify_delegate(Root.type, metadata.signed_bytes, metadata.signatures)
    except (exceptions.UnsignedMetadataError, ValueError) as error:
        raise VerificationError(f"refusing to trust this root: {error}") from None
    ensure_private_dir(metadata_dir)
    with _exclusive(metadata_dir):
        for stale in metadata_dir.glob("*.json"):
            if stale.is_file() or stale.is_symlink():
                stale.unlink()
        # The updater verifies the root again as it loads it, then writes it as root.json.
        build_updater(metadata_dir, "", _OfflineFetcher(), bootstrap=root_bytes)
    return root


def _require_anchor(metadata_dir: Path) -> None:
    if not (metadata_dir / "root.json").is_file():
        raise NotFoundError(
            f"no trusted root in {metadata_dir}",
            hint=f"run: {PROG} --metadata-dir {metadata_dir} init ROOT_FILE",
        )


def refresh(metadata_dir: Path, metadata_url: str, fetcher: HttpxFetcher) -> dict[str, int]:
    """Refresh the top-level metadata from the repository; return each role's version."""
    _require_anchor(metadata_dir)
    with _exclusive(metadata_dir):
        updater = build_updater(metadata_dir, metadata_url, fetcher)
        updater.refresh()
    return _trusted_versions(metadata_dir)


def target_filename(target_path: str) -> str:
    """The one stable file name of a target: its path percent-encoded (as python-tuf
    names it), with the names ``.`` and ``..`` escaped too so that each is a file."""
    if not target_path:
        raise UsageError("a target path cannot be empty")
    name = quote(target_path, safe="")
    return name.replace(".", "%2E") if name in {".", ".."} else name


def download(
    metadata_dir: Path,
    metadata_url: str,
    fetcher: HttpxFetcher,
    target_dir: Path,
    target_base_url: str,
    target_paths: Sequence[str],
) -> list[Path]:
    """Refresh, then download each target in order with one updater; stop at the first
    failure. A target already downloaded with the signed length and hashes is kept."""
    _require_anchor(metadata_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    stored: list[Path] = []
    with _exclusive(metadata_dir):
        updater = build_updater(
            metadata_dir,
            metadata_url,
            fetcher,
            target_dir=target_dir,
            target_base_url=target_base_url,
        )
        updater.refresh()
        for target_path in target_paths:
            final = target_dir / target_filename(target_path)
            info = lookup.decide_target(updater, metadata_dir, target_path).target
            if info is None:
                raise NotFoundError(f"no target {target_path!r} is signed in the repository")
            if updater.find_cached_target(info, str(final)) is None:
                _download_verified(updater, info, final)
            stored.append(final)
    return stored


def _download_verified(updater: Updater, info: TargetFile, final: Path) -> None:
    """Download into a temporary file beside ``final``, which python-tuf fills only once
    the download matched the signed length and hashes; then rename it into place."""
    fd, temp_name = tempfile.mkstemp(dir=final.parent, prefix=".download.", suffix=".part")
    os.close(fd)
    temp = Path(temp_name)
    try:
        updater.download_target(info, filepath=temp_name)
        with temp.open("rb+") as handle:
            os.fsync(handle.fileno())
        temp.replace(final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


def _trusted_versions(metadata_dir: Path) -> dict[str, int]:
    versions: dict[str, int] = {}
    for role in TOP_LEVEL_ROLES:
        path = metadata_dir / f"{role}.json"
        if path.is_file():
            versions[role] = Metadata.from_file(str(path)).signed.version
    return versions


class _UsageFailure(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on a usage error; the protocol allows only 0 and 1."""

    def error(self, message: str) -> NoReturn:
        raise _UsageFailure(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        allow_abbrev=False,
        description="trustkit's TUF verifier behind the tuf-conformance client CLI "
        "(options come before the command)",
    )
    parser.add_argument("--metadata-dir", required=True, type=Path, metavar="DIR")
    parser.add_argument("--metadata-url", metavar="URL")
    parser.add_argument(
        "--target-name", action="append", default=[], metavar="PATH", dest="target_names"
    )
    parser.add_argument("--target-dir", type=Path, metavar="DIR")
    parser.add_argument("--target-base-url", metavar="URL")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    init = commands.add_parser("init", help="trust ROOT_FILE (no network)", allow_abbrev=False)
    init.add_argument("root_file", type=Path, metavar="ROOT_FILE")
    commands.add_parser("refresh", help="refresh top-level metadata", allow_abbrev=False)
    commands.add_parser("download", help="refresh, then download targets", allow_abbrev=False)
    return parser


def _required(args: argparse.Namespace, *names: str) -> None:
    missing = [f"--{name.replace('_', '-')}" for name in names if not getattr(args, name)]
    if missing:
        raise _UsageFailure(f"{args.command} needs {', '.join(missing)}")


def _http_client(url: str) -> httpx.Client:
    # As the trustkit CLI builds its client: no redirects followed, TLS checks for https.
    return httpx.Client(
        timeout=TIMEOUT_SECONDS, follow_redirects=False, verify=url.startswith("https://")
    )


def _execute(args: argparse.Namespace) -> str:
    metadata_dir: Path = args.metadata_dir
    if args.command == "init":
        root = pin_root(metadata_dir, args.root_file.read_bytes())
        return f"trusting root version {root.version} in {metadata_dir}"
    if args.command == "refresh":
        _required(args, "metadata_url")
        with _http_client(args.metadata_url) as http:
            versions = refresh(metadata_dir, args.metadata_url, HttpxFetcher(http))
        listed = ", ".join(f"{role} v{version}" for role, version in versions.items())
        return f"refreshed {metadata_dir}: {listed}"
    _required(args, "metadata_url", "target_names", "target_dir", "target_base_url")
    with _http_client(args.metadata_url) as http:
        stored = download(
            metadata_dir,
            args.metadata_url,
            HttpxFetcher(http),
            args.target_dir,
            args.target_base_url,
            args.target_names,
        )
    return "\n".join(f"downloaded {path}" for path in stored)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except _UsageFailure as error:
        print(f"{PROG}: usage error: {error}", file=sys.stderr)
        return EXIT_FAILED
    try:
        print(_execute(args))
    except _UsageFailure as error:
        print(f"{PROG}: usage error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except TrustkitError as error:
        print(f"{PROG}: {error.diagnostics()}", file=sys.stderr)
        return EXIT_FAILED
    except (exceptions.RepositoryError, exceptions.DownloadError) as error:
        kind = "refused" if isinstance(error, exceptions.RepositoryError) else "download failed"
        print(f"{PROG}: {kind}: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAILED
    except (OSError, ValueError) as error:
        print(f"{PROG}: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as error:  # the protocol knows only 0 and 1
        print(f"{PROG}: unexpected {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def run() -> None:
    sys.exit(main())
