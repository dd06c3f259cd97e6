"""Names that talk to the terminal: a tag, a signer or a server's error detail that
carries escape sequences, bidirectional overrides or invisible characters.

Shown raw, ``ESC [1A ESC [2K CR`` in a tag name moves the cursor up and erases the line
above it: the line of a review that says a tag is being moved to another image. The
server refuses such names in uploads, so the attacker here gets them past it: a
malicious mirror (with the server's stolen online keys and a key that may sign) serves
them to hosts, and a tampering proxy slips them into the list of pending changes a
reviewer reads. Whatever the CLI prints must show them as visible escapes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tuf.api.metadata import DelegatedRole

from keys.keystore import Keystore
from keys.passphrase import PassphraseSource
from tests.attacks.common import (
    FORGED,
    generate,
    ok,
    online_signed,
    person,
    serve,
    sign,
)
from tests.support.harness import (
    DIGEST_A,
    DIGEST_B,
    ServerProcess,
    TamperingProxy,
    Trustkit,
    assert_verifies,
    edit_json,
)
from tests.support.server_side import served_metadata, stolen_online_signers
from trustkit.metadata import image_target, sign_with
from trustkit.names import parse_digest

# Erase the line above (the moved tag), return to the line start and draw a harmless one.
ERASE_ABOVE = "\x1b[1A\x1b[2K\r"
ERASE_ABOVE_SHOWN = "\\x1b[1A\\x1b[2K\\x0d"
# Right-to-left override: "1.0\u202egpj.exe" reads as "1.0exe.jpg" on a terminal.
REVERSED = "1.0\u202egpj.exe"
REVERSED_SHOWN = "1.0\\u202egpj.exe"
INVISIBLE = "1.0\u200b"  # looks exactly like 1.0
INVISIBLE_SHOWN = "1.0\\u200b"
RAW = ("\x1b", "\r", "\u202e", "\u200b", "\x9b")


def assert_no_raw_controls(*texts: str) -> None:
    for text in texts:
        for char in RAW:
            assert char not in text, (char, text)


def _mirror_with_tags(
    publisher: Trustkit, server: ServerProcess, gun: str, proxy: TamperingProxy, *names: str
) -> None:
    """The proxy serves targets one version up with NAMES signed (by the owner's
    targets key, as a thief who has it signs), pinned by the stolen online keys."""
    targets = served_metadata(server, gun, "targets.json").signed
    targets.version += 1
    for name in names:
        targets.targets[name] = image_target(name, parse_digest(DIGEST_B), 100, None)
    keystore = Keystore(publisher.home)
    [record] = keystore.find(gun, "targets")
    signed = sign_with(targets, [keystore.signer(record, PassphraseSource(publisher.env))])
    online = stolen_online_signers(server, gun)
    serve(proxy, online_signed(server, gun, online, {"targets": signed}))


def test_inspect_and_an_unknown_tag_show_escaped_names_from_metadata(
    publisher: Trustkit, server: ServerProcess, gun: str, proxy: TamperingProxy, tmp_path: Path
):
    ok(publisher("init", gun))
    sign(publisher, gun, "1.0", DIGEST_A)
    host = Trustkit(tmp_path / "host" / ".trustkit", proxy.url)
    assert_verifies(host, gun, "1.0", DIGEST_A)
    _mirror_with_tags(publisher, server, gun, proxy, f"2.0{ERASE_ABOVE}", REVERSED, INVISIBLE)

    inspected = host("inspect", gun)
    assert inspected.code == 0, inspected.err
    assert_no_raw_controls(inspected.out, inspected.err)
    for shown in (f"2.0{ERASE_ABOVE_SHOWN}", REVERSED_SHOWN, INVISIBLE_SHOWN):
        assert shown in inspected.out

    missing = host("verify", f"{gun}:9.9", "--offline")
    assert missing.code == 1
    assert_no_raw_controls(missing.out, missing.err)
    assert "signed tags:" in missing.err
    assert f"2.0{ERASE_ABOVE_SHOWN}" in missing.err and REVERSED_SHOWN in missing.err
    assert len(missing.err.strip().splitlines()) == 1  # still one line

    as_json = host("inspect", gun, "--json")
    tags = {tag["tag"] for tag in ok(as_json)["tags"]}
    assert {f"2.0{ERASE_ABOVE}", REVERSED, INVISIBLE} <= tags  # JSON keeps the exact names


def _pending_with_hidden_line(body: bytes) -> bytes:
    """The list of pending changes, with a tag named to erase the line above it."""

    def edit(document: dict[str, Any]) -> None:
        for change in document["pending"]:
            targets = change["roles"]["targets"]["signed"]["targets"]
            targets[f"1.0z{ERASE_ABOVE}  1.0: unchanged"] = targets["1.0"]

    return edit_json(body, edit)


def test_approve_shows_a_tag_name_that_would_erase_the_moved_tag_line_escaped(
    publisher: Trustkit,
    host: Trustkit,
    server: ServerProcess,
    gun: str,
    proxy: TamperingProxy,
    tmp_path: Path,
):
    """A co-holder proposes to move 1.0 to their image, and names another tag so that on
    a terminal it erases the line saying so. The reviewer must still see the move."""
    ok(publisher("init", gun))
    sign(publisher, gun, "1.0", DIGEST_A)
    bob = person(tmp_path, server.url, "bob")
    generate(bob, "bob", tmp_path / "bob.pub")
    args = ["--key", str(tmp_path / "bob.pub"), "--threshold", "2"]
    ok(publisher("key", "rotate", gun, "targets", *args, "--json"))
    ok(bob("approve", gun, "--yes", "--json"))
    assert sign(publisher, gun, "1.0", FORGED)["published"] is False

    def rewrite(path: str, status: int, body: bytes) -> tuple[int, bytes]:
        if path.endswith("/_trust/tuf/pending") and status == 200:
            return status, _pending_with_hidden_line(body)
        return status, body

    proxy.rewrite = rewrite
    reviewer = Trustkit(bob.home, proxy.url, bob.env)
    review = reviewer("approve", gun)  # no terminal, no --yes: shown, then refused
    assert review.code == 2
    assert_no_raw_controls(review.out, review.err)
    assert f"1.0: {DIGEST_A} -> {FORGED}" in review.err
    assert f"1.0z{ERASE_ABOVE_SHOWN}  1.0: unchanged: (new) -> {FORGED}" in review.err


def test_a_server_error_detail_is_shown_escaped(
    publisher: Trustkit, server: ServerProcess, gun: str, proxy: TamperingProxy, tmp_path: Path
):
    """A server's (or a man in the middle's) words reach the terminal too."""
    ok(publisher("init", gun))
    detail = f"try again{ERASE_ABOVE}\x1b]0;owned\x07\u202eok"

    def rewrite(path: str, status: int, body: bytes) -> tuple[int, bytes]:
        if path.endswith("/_trust/tuf/pending"):
            return 400, json.dumps({"error": "bad", "detail": detail}).encode()
        return status, body

    proxy.rewrite = rewrite
    refused = Trustkit(tmp_path / "reviewer" / ".trustkit", proxy.url)("approve", gun, "--yes")
    assert refused.code == 1
    assert_no_raw_controls(refused.out, refused.err)
    assert "\x07" not in refused.err
    assert f"try again{ERASE_ABOVE_SHOWN}\\x1b]0;owned\\x07\\u202eok" in refused.err

    as_json = Trustkit(tmp_path / "reviewer" / ".trustkit", proxy.url)("approve", gun, "--json")
    assert json.loads(as_json.out)["message"].endswith(detail)  # exact, JSON-escaped


def test_signer_list_and_status_show_escaped_signer_names(
    publisher: Trustkit, server: ServerProcess, gun: str, proxy: TamperingProxy, tmp_path: Path
):
    ok(publisher("init", gun))
    sign(publisher, gun, "1.0", DIGEST_A)
    signer = person(tmp_path, server.url, "release")
    generate(signer, "release", tmp_path / "release.pub")
    ok(publisher("signer", "add", "release", gun, "--key", str(tmp_path / "release.pub")))
    host = Trustkit(tmp_path / "host" / ".trustkit", proxy.url)
    assert_verifies(host, gun, "1.0", DIGEST_A)
    targets = served_metadata(server, gun, "targets.json").signed
    targets.version += 1
    assert targets.delegations is not None and targets.delegations.roles is not None
    [role] = targets.delegations.roles.values()
    role.paths = [f"release-*{ERASE_ABOVE}"]
    role.name = f"rel{ERASE_ABOVE}ease"
    prefixed = DelegatedRole("prefixed", role.keyids, 1, True, path_hash_prefixes=["0a", "ff"])
    targets.delegations.roles = {role.name: role, "prefixed": prefixed}
    keystore = Keystore(publisher.home)
    [record] = keystore.find(gun, "targets")
    signed = sign_with(targets, [keystore.signer(record, PassphraseSource(publisher.env))])
    online = stolen_online_signers(server, gun)
    serve(proxy, online_signed(server, gun, online, {"targets": signed}))

    listed = host("signer", "list", gun)
    assert listed.code == 0, listed.err
    assert_no_raw_controls(listed.out, listed.err)
    assert f"rel{ERASE_ABOVE_SHOWN}ease" in listed.out
    assert f"release-*{ERASE_ABOVE_SHOWN}" in listed.out
    [line] = [line for line in listed.out.splitlines() if line.startswith("prefixed ")]
    assert "hash prefixes 0a, ff" in line and "terminating" in line
    status = host("status", gun)
    assert status.code == 0, status.err
    assert_no_raw_controls(status.out, status.err)
