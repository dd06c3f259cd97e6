"""Docker's authorization plugin protocol, answered by the host agent: every request to
the Docker daemon is shown to trustkit first, so a plain ``docker run`` — or anything
else that talks to the Docker socket — starts only images the host policy lets through.

What is decided, for a repository the policy says must be signed:

- **creating a container** (``POST /containers/create``): allowed when the image is
  named by a signed digest (``NAME@sha256:…``), or by a tag whose signed digest the
  daemon holds under that name (the image's RepoDigests). Images that came from
  ``docker load``, ``import``, ``commit``, a build or a local ``tag`` have no such digest
  and are refused, and so is an image the daemon does not hold yet (pull it first:
  the retried create is judged on what was pulled). Image IDs are refused: run images
  by their signed name.
- **services** (``POST /services/create``, ``…/update``): the image must carry the
  digest its tag is signed as (``docker service create`` adds it by default).
- **pulls, tags, loads, imports, commits, pushes**: allowed; they run nothing, and what
  they bring can only be run through a create judged as above.
- **builds** (``POST /build``, BuildKit's ``/session`` and ``/grpc``) and **plugin
  installs**: refused. The daemon shows no Dockerfile to an authorization plugin, and
  build steps and plugins run code from images it cannot judge.
- ``exec``, ``start`` and everything on existing containers, networks, volumes, swarm
  objects and the system: allowed (a container was judged when it was created).
- any other request that changes state: refused (fail closed).

When the policy lets every repository through unsigned (``default = "unsigned-ok"`` and
no rule says "signed"), only creations are judged. Errors, timeouts and anything
unreadable are refusals.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from client.decision import Decision
from client.policy import SIGNED, HostPolicy
from trustkit.display import printable
from trustkit.errors import TrustkitError
from trustkit.names import may_name_an_image_id, parse_reference

__all__ = ["AuthzRequest", "DaemonImage", "Verdict", "authorize"]

_VERSION_PREFIX = re.compile(r"^/v[0-9]+(?:\.[0-9]+)?(?=/)")
# State-changing requests that run nothing from an image, or act on what was judged.
_ALLOWED_WRITES = re.compile(
    r"^/(?:"
    r"containers/(?!create$)[^/]+(?:/[a-z]+)?"  # start, stop, kill, exec, attach, wait…
    r"|containers/prune|exec/[^/]+/(?:start|resize)|commit|auth"
    r"|images/(?:create|load|prune|[^?]+/(?:tag|push))|images/[^?]+"
    r"|networks(?:/.*)?|volumes(?:/.*)?|swarm(?:/.*)?|nodes/.*|secrets(?:/.*)?"
    r"|configs(?:/.*)?|services/[^/]+|tasks/.*|system/.*|build/prune|distribution/.*"
    r")$"
)
_REFUSED_WRITES = re.compile(r"^/(?:build|session|grpc|plugins(?:/.*)?)$")


@dataclass(frozen=True)
class AuthzRequest:
    method: str
    path: str  # without the API version prefix
    query: dict[str, list[str]]
    body: dict[str, Any] | None

    @classmethod
    def from_plugin(cls, document: dict[str, Any]) -> AuthzRequest:
        """The daemon's ``AuthZReq``: method, URI, and the body when it is JSON."""
        method = str(document.get("RequestMethod", "")).upper()
        # The daemon names it RequestUri (moby's pkg/authorization); accept either case.
        uri = urlsplit(str(document.get("RequestUri") or document.get("RequestURI") or ""))
        path = _VERSION_PREFIX.sub("", unquote(uri.path)).rstrip("/") or "/"
        body = None
        raw = document.get("RequestBody")
        if raw:
            decoded = json.loads(base64.b64decode(raw), object_pairs_hook=_one_spelling_per_key)
            body = decoded if isinstance(decoded, dict) else None
        return cls(method, path, parse_qs(uri.query), body)


def _one_spelling_per_key(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object the daemon reads as this module does. Go's encoding/json matches
    keys without regard to case (Unicode folding: a long s, U+017F, is s) and takes the
    last match: ``{"Image": A, "image": B}`` runs B. Any key spelled twice is refused."""
    seen: set[str] = set()
    for key, _ in pairs:
        if not key.isascii():
            # Go folds some letters Python does not (and newer Go folds more): a key
            # outside ASCII could be read as "Image" by the daemon and not here.
            raise ValueError(f"the key {key!r} is not ASCII")
        folded = key.casefold()
        if folded in seen:
            raise ValueError(f"the key {key!r} appears twice (in some spelling)")
        seen.add(folded)
    return dict(pairs)


def _field(document: Any, name: str) -> Any:
    """``document[name]`` as the daemon reads it: in any case (keys are unique by
    ``_one_spelling_per_key``)."""
    if not isinstance(document, dict):
        return None
    folded = name.casefold()
    for key, value in document.items():
        if key.casefold() == folded:
            return value
    return None


@dataclass(frozen=True)
class Verdict:
    allow: bool
    message: str = ""

    def to_plugin(self) -> dict[str, Any]:
        return {"Allow": self.allow, "Msg": self.message, "Err": ""}


ALLOW = Verdict(True)

# The image the daemon holds under a name: its repo digests (``NAME@sha256:…``), or
# None when it holds no image by that name.
DaemonImage = Callable[[str], list[str] | None]
Decide = Callable[[str], Decision]


def authorize(
    request: AuthzRequest, policy: HostPolicy, decide: Decide, daemon_image: DaemonImage
) -> Verdict:
    """The verdict on one request to the Docker daemon; never raises."""
    try:
        return _authorize(request, policy, decide, daemon_image)
    except TrustkitError as error:
        return _refused(error.diagnostics())
    except Exception as error:  # anything unexpected: refuse, and say so
        return _refused(f"trustkit could not judge this request ({type(error).__name__})")


def _authorize(
    request: AuthzRequest, policy: HostPolicy, decide: Decide, daemon_image: DaemonImage
) -> Verdict:
    if request.method in ("GET", "HEAD"):
        return ALLOW
    if request.method == "POST" and request.path == "/containers/create":
        return _container_create(request, decide, daemon_image)
    if request.method == "POST" and (
        request.path == "/services/create" or re.fullmatch(r"/services/[^/]+/update", request.path)
    ):
        return _service(request, decide)
    if not _any_signed(policy):
        return ALLOW
    if _REFUSED_WRITES.match(request.path):
        return _refused(
            f"{request.method} {request.path} cannot be judged by trustkit (the daemon "
            "shows it no image to verify), and the host policy requires signed images: "
            "build and install plugins on a host whose policy allows them"
        )
    if request.method in ("POST", "PUT", "DELETE") and _ALLOWED_WRITES.match(request.path):
        return ALLOW
    return _refused(f"{request.method} {request.path} is not a request trustkit knows to be safe")


def _container_create(request: AuthzRequest, decide: Decide, daemon_image: DaemonImage) -> Verdict:
    image = _field(request.body, "Image")
    if not isinstance(image, str) or not image:
        return _refused("a container create that names no image cannot be judged")
    verdict = _judge_image(image, decide, daemon_image)
    if not verdict.allow:
        return verdict
    # Docker 28 mounts images into containers (--mount type=image): each is judged as
    # the container's own image is.
    mounts = _field(_field(request.body, "HostConfig"), "Mounts") or []
    if not isinstance(mounts, list):
        return _refused("a container create whose mounts cannot be read cannot be judged")
    for mount in mounts:
        if str(_field(mount, "Type") or "").casefold() != "image":
            continue
        source = _field(mount, "Source")
        if not isinstance(source, str) or not source:
            return _refused("an image mount that names no image cannot be judged")
        verdict = _judge_image(source, decide, daemon_image)
        if not verdict.allow:
            return verdict
    return ALLOW


def _judge_image(image: str, decide: Decide, daemon_image: DaemonImage) -> Verdict:
    """An image a container runs or mounts: signed and held by its signed digest."""
    if may_name_an_image_id(image):
        return _refused(
            f"{image} may name an image by its ID; run images by their signed name "
            "(NAME:TAG or NAME@DIGEST)"
        )
    decision = decide(image)
    if decision.digest is None:
        return ALLOW  # the policy lets this repository run unsigned
    reference = parse_reference(image)
    if reference.digest is not None:
        return ALLOW  # content-addressed: the daemon runs exactly the signed manifest
    held = daemon_image(image)
    signed = f"{decision.reference.gun}@{decision.digest}"
    if held is None:
        return _refused(
            f"the daemon holds no image {image} yet; pull it first (docker pull {image}, "
            f"or trustkit pull {image}), then run it"
        )
    if signed in {_canonical_repo_digest(each) for each in held}:
        return ALLOW
    return _refused(
        f"the image the daemon holds as {image} is not the signed one: {image} is signed as "
        f"{decision.digest}. Pull the signed image with: trustkit pull {image}"
    )


def _service(request: AuthzRequest, decide: Decide) -> Verdict:
    template = _field(request.body, "TaskTemplate")
    runtime = str(_field(template, "Runtime") or "container").casefold()
    if runtime != "container" or _field(template, "PluginSpec") is not None:
        return _refused(
            "a service that installs a plugin runs code from an image trustkit cannot judge"
        )
    image = _field(_field(template, "ContainerSpec"), "Image")
    if not isinstance(image, str) or not image:
        return _refused("a service that names no image cannot be judged")
    decision = decide(image)
    if decision.digest is None or parse_reference(image).digest is not None:
        return ALLOW  # unsigned-ok, or pinned to the digest decide() found signed
    return _refused(
        f"a service runs whatever its tag names on each node: give {image} with its "
        f"signed digest ({decision.reference.gun}@{decision.digest})"
    )


def _canonical_repo_digest(text: str) -> str:
    try:
        reference = parse_reference(text)
    except TrustkitError:
        return ""
    return f"{reference.gun}@{reference.digest}"


def _any_signed(policy: HostPolicy) -> bool:
    return policy.default.trust == SIGNED or any(rule.trust == SIGNED for rule in policy.rules)


def _refused(message: str) -> Verdict:
    return Verdict(False, f"trustkit: {printable(message)}")
