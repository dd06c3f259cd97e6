"""``trustkit key``: the keys of this keystore."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from trustkit.cli.context import Context, read_file
from trustkit.cli.options import Commands
from trustkit.cli.output import result_or_pending
from trustkit.errors import EXIT_OK, EXIT_USAGE, UsageError

if TYPE_CHECKING:
    pass


def cmd_key_list(ctx: Context) -> int:
    from client.lifecycle import describe_record, listed_by

    records = ctx.keystore().records()
    keys = [describe_record(record) for record in records]
    with ctx.session() as (_, verifier):
        # As this host last verified each repository (no network): keys it no longer
        # lists are marked, to be removed (trustkit key remove KEYID --yes).
        seen = {gun: verifier.last_verified(gun) for gun in {r.gun for r in records} - {"*"}}
    for record, key in zip(records, keys, strict=True):
        trusted = seen.get(record.gun)
        key["listed"] = "retired" if trusted and not listed_by(record, trusted) else "yes"
    lines = [f"{'ROLE':<10} {'KEY ID':<14} {'TYPE':<20} {'REPOSITORY':<40} KEPT IN"]
    lines += [
        f"{k['role']:<10} {k['keyid'][:12]:<14} {k['keytype']:<20} {k['repository']:<40} "
        f"{k['kept']}"
        + ("  (retired: the repository no longer lists it)" if k["listed"] == "retired" else "")
        for k in keys
    ]
    if not keys:
        lines = [f"no keys in {ctx.settings.home}"]
    ctx.out.result(lines, {"keys": keys})
    return EXIT_OK


def cmd_key_generate(ctx: Context) -> int:
    from client.lifecycle import validate_signer_name
    from keys.keystore import public_pem

    name = validate_signer_name(ctx.args.name)
    out = Path(ctx.args.out or f"{name}.pub")
    if out.exists():
        raise UsageError(f"{out} already exists", hint="choose another file with --out")
    record = ctx.keystore().generate("*", name, ctx.passphrases(), ctx.args.key_type)
    try:
        out.write_bytes(public_pem(record.public))
    except OSError as error:
        ctx.keystore().remove(record)
        raise UsageError(f"cannot write {out}: {error.strerror}") from None
    ctx.out.result(
        f"generated the signer key {name} ({record.keyid[:12]}); its public half is in {out}\n"
        f"  the repository owner adds it with: trustkit signer add {name} REPO --key {out}",
        {"name": name, "keyid": record.keyid, "public_key_file": str(out)},
    )
    return EXIT_OK


def cmd_key_load(ctx: Context) -> int:
    """A signer's own private key, kept under NAME as ``key generate NAME`` keeps one."""
    from securesystemslib.signer import CryptoSigner

    from client.lifecycle import validate_signer_name
    from keys.keystore import public_pem
    from keys.loading import load_signer_key, read_signer_key

    name = validate_signer_name(ctx.args.name)
    source = Path(ctx.args.file)
    out = Path(ctx.args.out or f"{name}.pub")
    passphrases = ctx.passphrases()
    private_key = read_signer_key(
        source,
        lambda: passphrases.named("TRUSTKIT_IMPORT_PASSPHRASE", f"passphrase of {source}"),
    )
    pem = public_pem(CryptoSigner(private_key).public_key)
    if out.exists() and _read_or_none(out) != pem:
        raise UsageError(
            f"{out} already exists and holds something else than this key's public half",
            hint="choose another file with --out",
        )
    keystore = ctx.keystore()
    loaded = load_signer_key(keystore, name, private_key, passphrases, source)
    record = loaded.record
    written = _read_or_none(out) != pem
    try:
        if written:
            out.write_bytes(pem)
    except OSError as error:
        if not loaded.already_here:
            keystore.remove(record)
        raise UsageError(f"cannot write {out}: {error.strerror}") from None
    done = f"loaded the signer key {name} ({record.keyid[:12]}) from {source}"
    if loaded.already_here:
        done = f"the signer key {name} ({record.keyid[:12]}) is already in this keystore; " + (
            "wrote its public half again" if written else "nothing changed"
        )
    ctx.out.result(
        f"{done}; its public half is in {out}\n"
        f"  the repository owner adds it with: trustkit signer add {name} REPO --key {out}\n"
        f"  then sign with: trustkit sign --signer {name} REPO:TAG",
        {
            "name": name,
            "keyid": record.keyid,
            "keytype": record.public.keytype,
            "public_key_file": str(out),
            "already_loaded": loaded.already_here,
        },
    )
    return EXIT_OK


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def cmd_key_export(ctx: Context) -> int:
    from keys.keystore import public_pem

    record = ctx.keystore().by_keyid(ctx.args.keyid)
    pem = public_pem(record.public).decode()
    if ctx.args.out:
        try:
            Path(ctx.args.out).write_text(pem)
        except OSError as error:
            raise UsageError(f"cannot write {ctx.args.out}: {error.strerror}") from None
        text = f"wrote the public {record.description} to {ctx.args.out}"
    else:
        text = pem.rstrip("\n")
    ctx.out.result(text, {"keyid": record.keyid, "role": record.role, "public_pem": pem})
    return EXIT_OK


def cmd_key_import(ctx: Context) -> int:
    from keys.keystore import pem_is_encrypted, read_pem_private_key
    from trustkit.names import parse_gun

    if ctx.args.from_docker_trust is not None:
        return _import_docker_trust(ctx)
    if not ctx.args.repository or not ctx.args.role:
        raise UsageError(
            "key import needs --repository REPO and --role root|targets",
            hint="e.g. trustkit key import key.pem --repository REPO --role targets",
        )
    gun = parse_gun(ctx.args.repository)
    if ctx.args.token is not None and ctx.args.hsm is None:
        raise UsageError("--token chooses the token of an --hsm key", hint="add --hsm KEY")
    if ctx.args.hsm is not None:
        from keys.hsm import HsmSettings, hsm_record

        record = hsm_record(
            gun,
            ctx.args.role,
            ctx.args.hsm,
            ctx.args.token,
            ctx.passphrases(),
            settings=HsmSettings.from_environment(ctx.env),
        )
        ctx.keystore().add_external(record)
        ctx.out.result(
            f"imported the {record.description}, kept at {record.uri}",
            {"keyid": record.keyid, "repository": gun, "role": record.role, "uri": record.uri},
        )
        return EXIT_OK
    data = read_file(ctx.args.file)
    password = None
    if pem_is_encrypted(data):
        password = ctx.passphrases().named(
            "TRUSTKIT_IMPORT_PASSPHRASE", f"passphrase of {ctx.args.file}"
        )
    key = read_pem_private_key(data, password, ctx.args.file)
    record = ctx.keystore().import_private(gun, ctx.args.role, key, ctx.passphrases())
    ctx.out.result(
        f"imported the {record.description}",
        {"keyid": record.keyid, "repository": gun, "role": record.role},
    )
    return EXIT_OK


def _import_docker_trust(ctx: Context) -> int:
    from keys.docker_trust import DockerTrustKey, import_docker_trust
    from trustkit.names import parse_gun

    if ctx.args.role or ctx.args.hsm or ctx.args.token:
        raise UsageError("--from-docker-trust takes each key's role from the key file")
    trust_dir = Path(ctx.args.from_docker_trust).expanduser()
    passphrases = ctx.passphrases()

    def notary_passphrase(key: DockerTrustKey) -> str:
        kind = "delegation" if key.is_delegation else key.role
        return ctx.env.get(f"NOTARY_{kind.upper()}_PASSPHRASE") or passphrases.named(
            "TRUSTKIT_IMPORT_PASSPHRASE", f"Notary passphrase of the {key.role} key {key.path.name}"
        )

    repository = parse_gun(ctx.args.repository) if ctx.args.repository else None
    done = import_docker_trust(
        ctx.keystore(), passphrases, notary_passphrase, trust_dir, repository
    )
    lines = [f"imported {len(done.imported)} key(s) from {trust_dir}"]
    lines += [
        f"  {each.record.role:<12} {each.record.gun:<40} {each.record.keyid[:12]}"
        f"  (notary key id {each.notary_keyid[:12]})"
        for each in done.imported
    ]
    if done.already_here:
        lines.append(f"  ({done.already_here} already in this keystore)")
    for key in done.skipped_snapshot:
        lines.append(
            f"  left out the snapshot key of {key.gun} ({key.notary_keyid[:12]}): "
            "the trustkit server signs snapshot"
        )
    ctx.out.result(
        "\n".join(lines),
        {
            "imported": [
                {
                    "keyid": each.record.keyid,
                    "notary_keyid": each.notary_keyid,
                    "repository": each.record.gun,
                    "role": each.record.role,
                }
                for each in done.imported
            ],
            "already_here": done.already_here,
            "skipped": [
                {"notary_keyid": key.notary_keyid, "repository": key.gun, "role": key.role}
                for key in done.skipped_snapshot
            ],
        },
    )
    return EXIT_OK


def cmd_key_passwd(ctx: Context) -> int:
    keystore = ctx.keystore()
    record = keystore.by_keyid(ctx.args.keyid)
    passphrases = ctx.passphrases()
    keystore.change_passphrase(
        record,
        passphrases,
        lambda: passphrases.named(
            "TRUSTKIT_NEW_PASSPHRASE", f"new passphrase for the {record.description}", new=True
        ),
    )
    ctx.out.result(
        f"changed the passphrase of the {record.description}",
        {"keyid": record.keyid, "changed": True},
    )
    return EXIT_OK


def cmd_key_remove(ctx: Context) -> int:
    keystore = ctx.keystore()
    record = keystore.by_keyid(ctx.args.keyid)
    if not ctx.args.yes:
        raise UsageError(
            f"removing the {record.description} deletes its private key from this keystore "
            "for good",
            hint=f"confirm with: trustkit key remove {ctx.args.keyid} --yes "
            "(export it first if you may need it)",
        )
    keystore.remove(record)
    ctx.out.result(f"removed the {record.description}", {"keyid": record.keyid, "removed": True})
    return EXIT_OK


def cmd_key_rotate(ctx: Context) -> int:
    from keys.keystore import public_key_from_pem
    from trustkit.names import parse_gun

    gun = parse_gun(ctx.args.repository)
    co_holders = [public_key_from_pem(read_file(path), path) for path in ctx.args.key or []]
    use = ctx.keystore().by_keyid(ctx.args.use) if ctx.args.use else None
    out = Path(ctx.args.out) if ctx.args.out else None
    with ctx.session() as (api, verifier):
        result = ctx.lifecycle(api, verifier).rotate(
            gun,
            ctx.args.role,
            ctx.args.key_type,
            use=use,
            co_holders=co_holders,
            threshold=ctx.args.threshold,
            out=out,
            held_by=ctx.args.held_by,
        )
    done = (
        f"rotated the {result.role} key of {gun}: "
        f"{', '.join(k[:12] for k in result.old_keys)} -> "
        f"{', '.join(k[:12] for k in result.new_keys)} (root v{result.root_version}); "
        "hosts follow the new root on their next verification"
    )
    if out is not None:
        done = (
            f"wrote root v{result.root_version} of {gun} to {out}, signed with this "
            f"keystore's keys; co-holders sign it with: trustkit approve {gun} --file {out}, "
            f"then send it: trustkit submit {gun} {out}"
        )
    elif result.pending is not None:
        done += " (once published, remove the old key here: trustkit key remove KEYID --yes)"
    result_or_pending(
        ctx.out,
        done,
        {
            "repository": gun,
            "role": result.role,
            "old_keys": result.old_keys,
            "new_keys": result.new_keys,
            "root_version": result.root_version,
            "published": out is None,
        },
        result.pending,
    )
    return EXIT_OK


def add_parsers(commands: Commands) -> None:
    """The sub-commands of this group."""
    add = commands.add
    common = commands.common
    signing = commands.signing
    key = add("key", lambda ctx: EXIT_USAGE, "list and rotate keys")
    key_commands = key.add_subparsers(dest="key_command", metavar="ACTION", required=True)
    listing = key_commands.add_parser(
        "list", parents=[common], help="the keys in this keystore (never anything secret)"
    )
    listing.set_defaults(handler=cmd_key_list)
    generate = key_commands.add_parser(
        "generate",
        parents=[common, signing],
        help="make a signer key for a person or pipeline; writes its public half to NAME.pub",
    )
    generate.set_defaults(handler=cmd_key_generate)
    generate.add_argument("name", metavar="NAME", help="the signer's name, e.g. releases")
    generate.add_argument(
        "--key-type",
        choices=["ed25519", "ecdsa"],
        default="ed25519",
        help="the new key's type (default %(default)s)",
    )
    generate.add_argument("--out", metavar="FILE", help="where to write the public key PEM")
    export = key_commands.add_parser(
        "export", parents=[common], help="print a key's public half as PEM (never the private)"
    )
    export.set_defaults(handler=cmd_key_export)
    export.add_argument("keyid", metavar="KEYID", help="the key id or its first 8+ characters")
    export.add_argument("--out", metavar="FILE", help="write the PEM to FILE")
    _add_import(key_commands, common, signing)
    load = key_commands.add_parser(
        "load",
        parents=[common, signing],
        help="keep a signer's own private key under NAME, as key generate NAME would "
        "(as docker trust key load); writes its public half to NAME.pub",
        description="PEM_FILE: a PEM private key (PKCS#8 or traditional; ed25519, ECDSA or "
        "RSA), or a Docker Content Trust key file; readable by you alone. An encrypted "
        "file is opened with TRUSTKIT_IMPORT_PASSPHRASE or a prompt; the key is kept "
        "encrypted under the delegation passphrase (TRUSTKIT_DELEGATION_PASSPHRASE, "
        "--passphrase-file, or a prompt). Loading the same key under the same name again "
        "changes nothing.",
    )
    load.set_defaults(handler=cmd_key_load)
    load.add_argument("file", metavar="PEM_FILE", help="the signer's private key file")
    load.add_argument(
        "--name",
        required=True,
        help="the signer's name, e.g. alice (lower-case letters, digits, '.', '_', '-')",
    )
    load.add_argument("--out", metavar="FILE", help="where to write the public key PEM")
    passwd = key_commands.add_parser(
        "passwd",
        parents=[common, signing],
        help="change a key's passphrase (the new one from TRUSTKIT_NEW_PASSPHRASE or a prompt)",
    )
    passwd.set_defaults(handler=cmd_key_passwd)
    passwd.add_argument("keyid", metavar="KEYID", help="the key id or its first 8+ characters")
    removing = key_commands.add_parser(
        "remove", parents=[common], help="delete a key from this keystore"
    )
    removing.set_defaults(handler=cmd_key_remove)
    removing.add_argument("keyid", metavar="KEYID", help="the key id or its first 8+ characters")
    removing.add_argument("--yes", action="store_true", help="confirm")
    _add_rotate(key_commands, common, signing)


def _add_import(
    key_commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    signing: argparse.ArgumentParser,
) -> None:
    importing = key_commands.add_parser(
        "import",
        parents=[common, signing],
        help="keep a PEM private key made elsewhere, encrypted in this keystore, or use a "
        "key in a PKCS#11 token (--hsm)",
        description="PEM_FILE: a private key, re-encrypted here. --hsm KEY: an EC key "
        "(P-256/P-384) that stays in a PKCS#11 token (HSM, smart card, SoftHSM); only its "
        "public half and its hsm: URI are kept here. The token's module comes from "
        "PYKCS11LIB (e.g. /usr/lib/softhsm/libsofthsm2.so); its PIN, when signing, from "
        "the role's passphrase (TRUSTKIT_ROOT_PASSPHRASE or TRUSTKIT_TARGETS_PASSPHRASE, "
        "--passphrase-file, or a prompt).",
    )
    importing.set_defaults(handler=cmd_key_import)
    source = importing.add_mutually_exclusive_group(required=True)
    source.add_argument("file", metavar="PEM_FILE", nargs="?", help="a PEM private key file")
    source.add_argument(
        "--hsm",
        metavar="KEY",
        help="the key in the token: its id in hex (as pkcs11-tool --list-objects shows it, "
        "e.g. 01) or its label",
    )
    importing.add_argument(
        "--token", metavar="LABEL", help="the token's label, when several are present"
    )
    source.add_argument(
        "--from-docker-trust",
        nargs="?",
        const="~/.docker/trust",
        metavar="DIR",
        help="every Notary / Docker Content Trust key in DIR/private (default ~/.docker/trust), "
        "each opened with NOTARY_{ROOT,TARGETS,SNAPSHOT,DELEGATION}_PASSPHRASE or "
        "TRUSTKIT_IMPORT_PASSPHRASE; with --repository, only that repository's keys (and root)",
    )
    importing.add_argument("--repository", help="the repository the key is for")
    importing.add_argument("--role", choices=["root", "targets"], help="the role the key is for")


def _add_rotate(
    key_commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    signing: argparse.ArgumentParser,
) -> None:
    rotate = key_commands.add_parser(
        "rotate",
        parents=[common, signing],
        help="replace a role's key in a new root version (snapshot and timestamp keys are "
        "made by the server); existing tags stay valid",
    )
    rotate.set_defaults(handler=cmd_key_rotate)
    rotate.add_argument("repository", help="the repository, e.g. registry.example.com/team/app")
    rotate.add_argument(
        "role",
        choices=["root", "targets", "snapshot", "timestamp"],
        help="the role whose keys are replaced",
    )
    rotate.add_argument(
        "--key-type",
        choices=["ed25519", "ecdsa"],
        default="ed25519",
        help="the new key's type (default %(default)s)",
    )
    rotate.add_argument(
        "--use",
        metavar="KEYID",
        help="make this keystore key (e.g. one in an HSM) the new key instead of a new one",
    )
    rotate.add_argument(
        "--key",
        action="append",
        metavar="PUB_PEM",
        help="another holder's public key to list beside this keystore's (repeatable)",
    )
    rotate.add_argument(
        "--threshold", type=int, help="signatures needed from the new keys (default 1)"
    )
    rotate.add_argument(
        "--out",
        metavar="FILE",
        help="write the signed new root to FILE for offline co-holders instead of uploading",
    )
    holder = rotate.add_mutually_exclusive_group()
    holder.add_argument(
        "--local",
        dest="held_by",
        action="store_const",
        const="publisher",
        help="snapshot only: keep the new snapshot key in this keystore and sign snapshot "
        "with every publish (TRUSTKIT_SNAPSHOT_PASSPHRASE)",
    )
    holder.add_argument(
        "--server-managed",
        dest="held_by",
        action="store_const",
        const="server",
        help="snapshot only: hand snapshot signing (back) to the server, with a new key",
    )
