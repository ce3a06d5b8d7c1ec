"""Registry credentials for an image pull, picked from a pod's imagePullSecrets.

A pod names Secrets of type ``kubernetes.io/dockerconfigjson`` (``{"auths": {...}}``)
or the older ``kubernetes.io/dockercfg`` (the ``auths`` map itself). Their keys are
registry locations: a host (``registry.example:5000``), optionally with a scheme, a
``/v1/`` or ``/v2/`` suffix, a repository path prefix, or ``*`` globs per DNS label.
The kubelet tries every entry that matches the image in turn, as Kubernetes' keyring
does: more specific keys (sorting later) first, and ``index.docker.io`` entries for
Docker Hub images. :func:`pull_with_secrets` is that loop over a CRI client.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from pyk8s.kubelet.cri import CRIError, ImageService, api_pb2

DOCKERCONFIGJSON = "kubernetes.io/dockerconfigjson"
DOCKERCFG = "kubernetes.io/dockercfg"
_DOCKER_HUB = "docker.io"
_DEFAULT_REGISTRY_KEY = "index.docker.io"


class PullSecretError(ValueError):
    """An imagePullSecret's data is not valid docker config JSON."""


def normalize_image(image: str) -> str:
    """The image's repository with its registry, without tag or digest.

    ``busybox:1.35`` -> ``docker.io/library/busybox``; ``host:5000/a/b@sha256:..`` ->
    ``host:5000/a/b``.
    """
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)
    if ":" in last[-1]:
        name = name[: name.rindex(":")]
    first, _, rest = name.partition("/")
    if not rest:
        return f"{_DOCKER_HUB}/library/{name}"
    if "." in first or ":" in first or first == "localhost":
        return name
    return f"{_DOCKER_HUB}/{name}"


def _split_host(netloc: str) -> tuple[list[str], str]:
    """DNS labels and port of ``host[:port]`` (``[v6]:port`` kept whole as one label)."""
    host, port = netloc, ""
    colon = netloc.rfind(":")
    if colon > netloc.rfind("]"):
        host, port = netloc[:colon], netloc[colon + 1 :]
    return host.split("."), port


def _location_key(location: str) -> str:
    """The keyring key of a docker config location: host plus a path prefix, no scheme."""
    if not location.startswith(("https://", "http://")):
        location = "https://" + location
    parsed = urlsplit(location)
    path = parsed.path
    if path.startswith(("/v1/", "/v2/")):
        path = path[3:]
    return parsed.netloc + path if path not in ("", "/") else parsed.netloc


def _matches(key: str, repo: str) -> bool:
    """Whether keyring key ``key`` (host labels may be globs) covers repository ``repo``."""
    glob, target = urlsplit("https://" + key), urlsplit("https://" + repo)
    glob_labels, glob_port = _split_host(glob.netloc)
    labels, port = _split_host(target.netloc)
    if glob_port != port or len(glob_labels) != len(labels):
        return False
    if not all(fnmatch.fnmatchcase(t, g) for g, t in zip(glob_labels, labels, strict=True)):
        return False
    return target.path.startswith(glob.path)


def _is_docker_hub(repo: str) -> bool:
    first, _, rest = repo.partition("/")
    if not first:
        return False
    if not rest or first == _DOCKER_HUB:
        return True
    return not any(c in first for c in ".:") and first != "localhost"


def _entry_auth(location: str, entry: Any) -> api_pb2.AuthConfig:
    if not isinstance(entry, Mapping):
        raise PullSecretError(f"docker config entry for {location!r} is not an object")
    username, password = str(entry.get("username", "")), str(entry.get("password", ""))
    if encoded := entry.get("auth"):
        try:
            decoded = base64.b64decode(str(encoded), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as err:
            raise PullSecretError(f"auth for {location!r} is not base64: {err}") from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise PullSecretError(f"auth for {location!r} is not base64 of user:password")
    return api_pb2.AuthConfig(username=username, password=password)


def _docker_configs(secrets: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The location -> entry maps of the secrets that carry docker credentials."""
    configs: list[Mapping[str, Any]] = []
    for secret in secrets:
        kind, data = secret.get("type"), secret.get("data") or {}
        field = {DOCKERCONFIGJSON: ".dockerconfigjson", DOCKERCFG: ".dockercfg"}.get(str(kind))
        if field is None or not data.get(field):
            continue
        name = (secret.get("metadata") or {}).get("name", "")
        try:
            parsed = json.loads(base64.b64decode(data[field]))
        except (ValueError, binascii.Error) as err:
            raise PullSecretError(f"secret {name!r}: invalid {field}: {err}") from None
        if kind == DOCKERCONFIGJSON:
            parsed = parsed.get("auths") if isinstance(parsed, dict) else None
        if not isinstance(parsed, dict):
            raise PullSecretError(f"secret {name!r}: {field} holds no registry map")
        configs.append(parsed)
    return configs


def credentials_for(image: str, secrets: Sequence[Mapping[str, Any]]) -> list[api_pb2.AuthConfig]:
    """Every credential in ``secrets`` (Secret objects, data base64) that applies to ``image``.

    Ordered as the kubelet tries them; empty when none applies (pull anonymously).
    Raises :class:`PullSecretError` for a malformed docker config secret.
    """
    keyring: dict[str, list[api_pb2.AuthConfig]] = {}
    for config in _docker_configs(secrets):
        for location, entry in config.items():
            keyring.setdefault(_location_key(location), []).append(_entry_auth(location, entry))
    repo = normalize_image(image)
    found = [auth for key in sorted(keyring, reverse=True) if _matches(key, repo)
             for auth in keyring[key]]  # fmt: skip
    if not found and _is_docker_hub(repo):
        found = list(keyring.get(_DEFAULT_REGISTRY_KEY, []))
    return found


async def pull_with_secrets(
    cri: ImageService,
    image: str,
    secrets: Sequence[Mapping[str, Any]],
    sandbox_config: api_pb2.PodSandboxConfig | None = None,
) -> str:
    """Pull ``image`` trying each matching credential (anonymous if none); returns the ref.

    Raises the :class:`CRIError` of the only attempt, or one listing every attempt's error.
    """
    candidates = credentials_for(image, secrets)
    if not candidates:
        return await cri.pull_image(image, sandbox_config=sandbox_config)
    errors: list[CRIError] = []
    for auth in candidates:
        try:
            return await cri.pull_image(image, auth=auth, sandbox_config=sandbox_config)
        except CRIError as err:
            errors.append(err)
    if len(errors) == 1:
        raise errors[0]
    raise CRIError("[" + ", ".join(str(e) for e in errors) + "]", errors[-1].code)
