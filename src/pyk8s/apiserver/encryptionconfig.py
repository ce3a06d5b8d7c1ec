"""``--encryption-provider-config``: upstream's EncryptionConfiguration, read at startup.

The file says which resources are encrypted at rest and with which providers and keys::

    apiVersion: apiserver.config.k8s.io/v1
    kind: EncryptionConfiguration
    resources:
    - resources: [secrets]              # or configmaps, deployments.apps, *.apps, *.*, ...
      providers:
      - aescbc:                         # the first provider (its first key) encrypts
          keys:
          - {name: key2, secret: <base64 of 32 random bytes>}
          - {name: key1, secret: <...>} # every key and provider is tried to decrypt
      - identity: {}                    # reads what was stored before encryption

:func:`load_encryption_config` checks it the way kube-apiserver does (upstream's field
paths and texts, e.g. ``resources[0].providers[0].aescbc.keys[0].secret: Invalid value:
"REDACTED": secret is not of the expected length, got 5, expected one of [16 24 32]``)
and raises :class:`EncryptionConfigError`, one line naming the file, when it cannot be
used. ``kms`` providers are refused: pyk8s has no KMS plugin client.

The result is a list of :class:`~pyk8s.storage.encryption.Rule`, one per configured
resource, keyed by the storage prefix pyk8s keeps that resource under.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pyk8s.api import errors
from pyk8s.api.errors import FieldError
from pyk8s.api.gofmt import GoStringSlice
from pyk8s.api.registry import REGISTRY
from pyk8s.storage.encryption import PROVIDERS, IdentityTransformer, Rule, Transformer

API_VERSION = "apiserver.config.k8s.io/v1"
KIND = "EncryptionConfiguration"

_AES_KEY_SIZES = (16, 24, 32)
_KEY_SIZES = {"aescbc": _AES_KEY_SIZES, "aesgcm": _AES_KEY_SIZES, "secretbox": (32,)}
_PROVIDER_NAMES = ("kms", "aesgcm", "aescbc", "secretbox", "identity")
_NON_REST = ("apiserveripinfo", "serviceipallocations", "servicenodeportallocations")


class EncryptionConfigError(ValueError):
    """Why the server cannot start with this configuration (one line)."""


@dataclass(frozen=True, slots=True)
class Key:
    """One provider key as configured."""

    provider: str
    name: str
    secret: bytes


def load_encryption_config(path: str | Path) -> list[Rule]:
    """The rules a configuration file asks for; EncryptionConfigError if it is bad."""
    return rules_of(read_encryption_config(path), path)


def read_encryption_config(path: str | Path) -> dict[str, Any]:
    """The file decoded (JSON or YAML) and checked to be an EncryptionConfiguration."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise EncryptionConfigError(
            f'error reading encryption provider configuration file "{path}": {err.strerror}'
        ) from None
    if not data.strip():
        raise EncryptionConfigError(f'encryption provider configuration file "{path}" is empty')
    try:
        doc = json.loads(data) if data.lstrip().startswith(b"{") else yaml.safe_load(data)
    except (ValueError, yaml.YAMLError) as err:
        first = str(err).splitlines()[0]
        raise EncryptionConfigError(
            f'error decoding encryption provider configuration file "{path}": {first}'
        ) from None
    if not isinstance(doc, dict):
        raise EncryptionConfigError(
            f'error decoding encryption provider configuration file "{path}": '
            "Object 'Kind' is missing"
        )
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if api_version != API_VERSION or kind != KIND:
        raise EncryptionConfigError(
            f'error decoding encryption provider configuration file "{path}": '
            f'no kind "{kind}" is registered for version "{api_version}"'
        )
    return doc


def rules_of(doc: dict[str, Any], path: str | Path) -> list[Rule]:
    """The rules of a decoded configuration; EncryptionConfigError with every problem."""
    problems: list[FieldError] = []
    entries = doc.get("resources")
    if not isinstance(entries, list) or not entries:
        problems.append(errors.required("resources", "at least one resources is required"))
        entries = []
    rules: list[Rule] = []
    for i, entry in enumerate(entries):
        base = f"resources[{i}]"
        if not isinstance(entry, dict):
            problems.append(errors.invalid(base, entry, "must be an object"))
            continue
        resources = _strings(entry.get("resources"), f"{base}.resources", problems)
        if not resources:
            problems.append(
                errors.required(f"{base}.resources", f"at least one {base}.resources is required")
            )
        problems += _resource_name_problems(resources, f"{base}.resources")
        transformers = _transformers(entry.get("providers"), f"{base}.providers", problems)
        for resource in resources:
            prefix = storage_prefix(resource)
            if prefix is not None:
                rules.append(Rule(prefix, tuple(transformers)))
    if problems:
        raise EncryptionConfigError(
            f'error while parsing file "{path}": '
            + errors.aggregate_message([str(p) for p in problems])
        )
    return rules


def storage_prefix(resource: str) -> str | None:
    """Where pyk8s stores a configured resource (``secrets``, ``deployments.apps``,
    ``*.apps``, ``*.`` for the core group, ``*.*`` for all); None for a bad name."""
    plural, _, group = resource.partition(".")
    if plural == "*" and group == "*":
        return "/registry/"
    if plural == "*":
        return f"/registry/{group or 'core'}/"
    known = REGISTRY.for_group_resource(group, plural)
    if known is not None:
        return known.key_prefix()
    return f"/registry/{group or 'core'}/{plural}/"


def _strings(value: Any, path: str, problems: list[FieldError]) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(errors.invalid(path, value, "must be a list of strings"))
        return []
    return value


def _resource_name_problems(resources: list[str], path: str) -> list[FieldError]:
    """Upstream's checks of the resource names (case, wildcards, groups, overlaps)."""
    out: list[FieldError] = []
    for j, res in enumerate(resources):
        at = f"{path}[{j}]"
        plural, _, group = res.partition(".")
        if res.lower() != res:
            out.append(errors.invalid(at, res, "resource name should not contain capital letters"))
        elif res == "*":
            out.append(
                errors.invalid(
                    at,
                    res,
                    "use '*.' to encrypt all the resources from core API group or *.* to "
                    "encrypt all resources",
                )
            )
        elif res in _NON_REST:
            out.append(
                errors.invalid(
                    at, res, "resources which do not have REST API/s cannot be encrypted"
                )
            )
        elif group == "events.k8s.io":
            out.append(
                errors.invalid(
                    at,
                    res,
                    "'*.events.k8s.io' objects are stored using the 'events' API group in "
                    "etcd. Use 'events' instead in the config file",
                )
            )
        elif group == "extensions":
            out.append(
                errors.invalid(
                    at, res, "'extensions' group has been removed and cannot be used for encryption"
                )
            )
        elif group == "*" and plural != "*":
            out.append(
                errors.invalid(
                    at, res, "encrypting the same resource across groups is not supported"
                )
            )
    if len(set(resources)) != len(resources):
        out.append(
            errors.invalid(
                path,
                GoStringSlice(resources),
                "the same resource cannot be specified multiple times",
            )
        )
    parsed = [r.partition(".")[::2] for r in resources]
    overlap = len(resources) > 1 and any(
        (p1, g1) == ("*", "*") or (g1 == g2 and "*" in (p1, p2))
        for i, (p1, g1) in enumerate(parsed)
        for j, (p2, g2) in enumerate(parsed)
        if i != j and (p1, g1) != (p2, g2)
    )
    if overlap:
        out.append(
            errors.invalid(
                path,
                GoStringSlice(resources),
                "using overlapping resources such as 'secrets' and '*.' in the same resource "
                "list is not allowed as they will be masked",
            )
        )
    return out


def _transformers(value: Any, path: str, problems: list[FieldError]) -> list[Transformer]:
    if not isinstance(value, list) or not value:
        problems.append(errors.required(path, f"at least one {path} is required"))
        return []
    out: list[Transformer] = []
    for j, provider in enumerate(value):
        at = f"{path}[{j}]"
        names = [n for n in _PROVIDER_NAMES if isinstance(provider, dict) and n in provider]
        if not names:
            problems.append(
                errors.invalid(
                    at,
                    provider,
                    "provider does not contain any of the expected providers: KMS, AESGCM, "
                    "AESCBC, Secretbox, Identity",
                )
            )
            continue
        if len(names) > 1:
            problems.append(
                errors.invalid(
                    at,
                    provider,
                    "more than one provider specified in a single element, should split into "
                    "different list elements",
                )
            )
            continue
        name = names[0]
        if name == "identity":
            out.append(IdentityTransformer())
        elif name == "kms":
            problems.append(
                errors.forbidden(
                    f"{at}.kms", "KMS providers are not supported by pyk8s (no KMS plugin client)"
                )
            )
        else:
            for key in _keys(provider[name], f"{at}.{name}.keys", name, problems):
                out.append(PROVIDERS[name](key.name, key.secret))
    return out


def _keys(config: Any, path: str, provider: str, problems: list[FieldError]) -> list[Key]:
    keys = config.get("keys") if isinstance(config, dict) else None
    if not isinstance(keys, list) or not keys:
        problems.append(errors.required(path, "at least one keys is required"))
        return []
    out: list[Key] = []
    sizes = _KEY_SIZES[provider]
    for k, key in enumerate(keys):
        at = f"{path}[{k}]"
        key = key if isinstance(key, dict) else {}
        name, secret = str(key.get("name") or ""), str(key.get("secret") or "")
        if not name:
            problems.append(errors.required(f"{at}.name", "name is a mandatory field for a key"))
        if not secret:
            problems.append(
                errors.required(f"{at}.secret", "secret is a mandatory field for a key")
            )
            continue
        try:
            raw = base64.b64decode(secret, validate=True)
        except (binascii.Error, ValueError):
            problems.append(
                errors.invalid(f"{at}.secret", "REDACTED", "secrets must be base64 encoded")
            )
            continue
        if len(raw) not in sizes:
            expected = "[" + " ".join(str(s) for s in sizes) + "]"
            problems.append(
                errors.invalid(
                    f"{at}.secret",
                    "REDACTED",
                    f"secret is not of the expected length, got {len(raw)}, expected one of "
                    f"{expected}",
                )
            )
            continue
        if name:
            out.append(Key(provider, name, raw))
    return out
