"""Trust declared in the host policy, not learned on first use: a rule's root_keys must
sign the first root a host meets, and first_use = "refuse" trusts only pinned roots."""

from __future__ import annotations

from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.support.harness import DIGEST_A, ServerProcess, Trustkit


def _policy(tmp_path: Path, gun: str, body: str) -> Path:
    policy = tmp_path / "policy.toml"
    policy.write_text(f'[[rule]]\nrepositories = ["{gun}"]\n{body}\n')
    return policy


def _release(publisher: Trustkit, gun: str) -> str:
    keys = publisher("init", gun, "--json")
    assert keys.code == 0, keys.err
    signed = publisher("sign", f"{gun}:1.0", "--digest", DIGEST_A, "--size", "10")
    assert signed.code == 0, signed.err
    root_key: str = keys.json["keys"]["root"][0]
    return root_key


def _root_pem(publisher: Trustkit, root_key: str, out: Path) -> Path:
    shown = publisher("key", "export", root_key, "--json")  # public half only
    assert shown.code == 0, shown.err
    out.write_text(shown.json["public_pem"])
    return out


def test_a_first_root_signed_by_the_declared_key_is_trusted(
    publisher: Trustkit, host: Trustkit, gun: str, tmp_path: Path
):
    root_key = _release(publisher, gun)
    policy = _policy(tmp_path, gun, f'root_keys = ["{root_key}"]')

    verified = host("resolve", f"{gun}:1.0", "--policy", str(policy))

    assert verified.code == 0, verified.err
    assert verified.out.strip() == f"{gun}@{DIGEST_A}"


def test_a_declared_key_given_as_a_pem_file_is_matched_by_its_material(
    publisher: Trustkit, host: Trustkit, gun: str, tmp_path: Path
):
    root_key = _release(publisher, gun)
    pem = _root_pem(publisher, root_key, tmp_path / "root.pub")
    policy = _policy(tmp_path, gun, f'root_keys = ["{pem}"]')

    assert host("resolve", f"{gun}:1.0", "--policy", str(policy)).code == 0


def test_a_first_root_the_declared_keys_did_not_sign_is_refused(
    publisher: Trustkit, host: Trustkit, gun: str, tmp_path: Path
):
    _release(publisher, gun)
    other = Ed25519PrivateKey.generate().public_key()
    pem = tmp_path / "other.pub"
    pem.write_bytes(other.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    policy = _policy(tmp_path, gun, f'root_keys = ["{pem}", "{"a" * 64}"]')

    refused = host("resolve", f"{gun}:1.0", "--policy", str(policy))

    assert refused.code == 1
    assert f"the root of {gun} is signed by 0 of the root keys" in refused.err
    assert not list(host.home.glob("tuf/*/root.json"))  # nothing trusted


def test_first_use_refused_unless_the_root_is_pinned(
    publisher: Trustkit, host: Trustkit, server: ServerProcess, gun: str, tmp_path: Path
):
    _release(publisher, gun)
    policy = _policy(tmp_path, gun, 'first_use = "refuse"')

    refused = host("resolve", f"{gun}:1.0", "--policy", str(policy))
    root = tmp_path / "root.json"
    root.write_bytes(httpx.get(server.metadata_url(gun, "1.root.json")).content)
    pinned = host("trust", "pin", gun, str(root))
    allowed = host("resolve", f"{gun}:1.0", "--policy", str(policy))

    assert refused.code == 1, refused.err
    assert "refuses to trust one on first use" in refused.err
    assert f"trustkit trust pin {gun} ROOT_JSON" in refused.err
    assert pinned.code == 0, pinned.err
    assert allowed.code == 0, allowed.err


def test_policy_trust_anchor_mistakes_are_usage_errors(host: Trustkit, gun: str, tmp_path: Path):
    for body, words in (
        ('first_use = "maybe"', "first_use 'maybe' is not one of trust, refuse"),
        (f'root_keys = ["{"a" * 64}"]\nroot_threshold = 2', "root_threshold must be 1 to"),
        ('root_keys = ["/nonexistent/key.pub"]', "neither a key id nor a readable file"),
    ):
        policy = _policy(tmp_path, gun, body)
        refused = host("resolve", f"{gun}:1.0", "--policy", str(policy))
        assert refused.code == 2, (body, refused.err)
        assert words in refused.err, refused.err
