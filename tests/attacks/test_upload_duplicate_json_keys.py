"""Uploaded metadata with a key twice in one JSON object is refused.

Python's parser (the server's, python-tuf's) keeps the *last* value of a repeated key;
other parsers keep the first, or refuse. The server stores and serves an upload's bytes
as they came, so ``{"signed": FORGED, "signatures": [...], "signed": GENUINE}`` verified
here (the genuine part is signed) and went out to every client, one that reads the first
value seeing the forged one. The bytes of a publisher's snapshot also go into the list
of pending changes as they are, where the client's wire reader
(``trustkit.wire.loads``) refuses a repeated key: one such upload made the repository's
pending changes unreadable to every co-signer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tuf.api.metadata import Metadata

from tests.attacks.common import key_of, ok, sign, with_tag
from tests.support.harness import DIGEST_A, DIGEST_B, ServerProcess, Trustkit
from tests.support.server_side import post_upload, served_metadata


def test_metadata_with_a_key_twice_is_refused_not_stored(
    publisher: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    ok(publisher("init", gun))
    sign(publisher, gun, "1.0", DIGEST_A)

    def targets() -> Any:
        return served_metadata(server, gun, "targets.json").signed

    version = targets().version
    [keyid] = served_metadata(server, gun, "root.json").signed.roles["targets"].keyids
    genuine: Metadata[Any] = Metadata(with_tag(targets(), "2.0", DIGEST_A))
    genuine.sign(key_of(publisher, keyid))
    forged = with_tag(targets(), "2.0", DIGEST_B)
    data = genuine.to_bytes()
    assert data.startswith(b"{")
    twice = b'{"signed": ' + json.dumps(forged.to_dict()).encode() + b", " + data[1:]

    answer = post_upload(server, gun, targets=twice)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "malformed", answer.text
    assert "twice" in answer.json()["detail"]
    assert targets().version == version
    # The same role without the repeated key is taken.
    assert post_upload(server, gun, targets=data).status_code == 200
