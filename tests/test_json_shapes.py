"""The ``--json`` documents: README's "``--json`` output" block, the TypedDicts of
trustkit/cli/shapes.py, and what the commands really print name the same keys."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.harness import DIGEST_A, Trustkit
from trustkit.cli import shapes

README = Path(__file__).resolve().parent.parent / "README.md"
# The README block's documents, in order, as the TypedDicts that declare them.
DOCUMENTED = [
    ("verify / resolve", shapes.VerifyJSON),
    ("inspect", shapes.InspectJSON),
    ("sign / sign-file / revoke / publish", shapes.PublishJSON),
    ("sign / sign-file / revoke / publish", shapes.StagedJSON),
    ("init", shapes.InitJSON),
    ("changefeed (with --follow: one entry object a line)", shapes.ChangefeedJSON),
    ("any refusal (the exit code says which kind)", shapes.ErrorJSON),
]
NESTED = {  # lists of objects inside a document, as their TypedDicts
    "tags": shapes.InspectTagJSON,
    "files": shapes.InspectFileJSON,
    "roles": shapes.InspectRoleJSON,
}


def _readme_documents() -> list[tuple[str, dict[str, Any]]]:
    """Each JSON document of README's jsonc block, under the comment that names it."""
    text = README.read_text()
    start = text.index("### `--json` output")
    block = text[text.index("```jsonc", start) + len("```jsonc") : text.index("```\n", start + 30)]
    documents: list[tuple[str, dict[str, Any]]] = []
    heading = ""
    source = ""
    for line in block.splitlines():
        if line.startswith("//"):
            heading = line.removeprefix("//").strip()
            continue
        source += " " + re.sub(r"//.*$", "", line)  # a trailing comment
        source = source.replace(", …]", "]")  # "and more" in a list
        try:
            documents.append((heading, json.loads(source)))
        except ValueError:
            continue  # the document goes on
        source = ""
    return documents


def _keys(shape: Any) -> tuple[frozenset[str], frozenset[str]]:
    """The keys a TypedDict always has, and every key it may have."""
    return shape.__required_keys__, shape.__required_keys__ | shape.__optional_keys__


def test_readme_documents_the_declared_shapes():
    documents = _readme_documents()

    assert [heading for heading, _ in documents] == [heading for heading, _ in DOCUMENTED]
    for (heading, document), (_, shape) in zip(documents, DOCUMENTED, strict=True):
        required, every = _keys(shape)
        assert required <= document.keys() <= every, heading
        for key, item_shape in NESTED.items():
            for item in document.get(key) or []:
                if isinstance(item, dict) and shape is shapes.InspectJSON:
                    item_required, item_every = _keys(item_shape)
                    assert item_required <= item.keys() <= item_every, (heading, key)


def _has_the_keys_of(document: dict[str, Any], shape: Any) -> bool:
    required, every = _keys(shape)
    return required <= document.keys() <= every


@pytest.mark.parametrize("staged", [False, True])
def test_sign_prints_its_shape(publisher: Trustkit, gun: str, staged: bool):
    assert publisher("init", gun).code == 0
    extra = ["--no-publish"] if staged else []

    signed = publisher("sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "10", "--json", *extra)

    assert signed.code == 0, signed.err
    assert _has_the_keys_of(signed.json, shapes.StagedJSON if staged else shapes.PublishJSON)


def test_init_verify_inspect_and_a_refusal_print_their_shapes(
    publisher: Trustkit, host: Trustkit, gun: str
):
    initialised = publisher("init", gun, "--json")
    publisher("sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "10")
    publisher("sign-file", gun, "notes.txt", str(README))

    verified = host("verify", f"{gun}:1.0", "--json")
    inspected = host("inspect", gun, "--json")
    refused = host("verify", f"{gun}:9.9", "--json")

    assert initialised.code == 0 and _has_the_keys_of(initialised.json, shapes.InitJSON)
    assert verified.code == 0 and _has_the_keys_of(verified.json, shapes.VerifyJSON)
    assert set(verified.json) == set(_keys(shapes.VerifyJSON)[1])  # verify has them all
    assert inspected.code == 0 and _has_the_keys_of(inspected.json, shapes.InspectJSON)
    for key, item_shape in NESTED.items():
        assert inspected.json[key], key
        assert all(_has_the_keys_of(item, item_shape) for item in inspected.json[key]), key
    assert refused.code == 1 and _has_the_keys_of(json.loads(refused.out), shapes.ErrorJSON)
