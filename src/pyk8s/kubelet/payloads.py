"""What configMap, secret, downwardAPI and projected volumes hold, and how it is written.

Containers only see bind mounts of host directories, so these volumes are files the
kubelet writes with upstream's atomic-writer scheme (a timestamped data dir behind a
``..data`` symlink that is flipped with a rename) so a running container never observes
a half-updated set of files. The payload builders are pure so every rule (items, modes,
optional, base64) is unit tested without I/O; the volume plugins in
:mod:`pyk8s.kubelet.volumes` call them.

Deliberate differences from upstream: a missing resource limit in a downward API
``resourceFieldRef`` falls back to ``node_allocatable`` only when given (else ``0``);
label/annotation values are quoted JSON-style (same as Go's ``%q`` for printable text).
"""

from __future__ import annotations

import base64
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pyk8s.kubelet import downward

DEFAULT_MODE = 0o644
DATA_DIR = "..data"

Payload = dict[str, tuple[bytes, int]]
Lookup = Callable[[str], "Mapping[str, Any] | None"]
TokenSource = Callable[["dict[str, Any]"], bytes]


class VolumeError(Exception):
    """A volume cannot be set up (missing object or key, failed hostPath check, ...)."""

    #: the pod volume that failed (set by the volume manager)
    volume: str = ""


# ---------------------------------------------------------------------------- atomic writer


def _check_path(rel: str) -> None:
    parts = rel.split("/")
    if not rel or rel.startswith("/") or ".." in parts or parts[0].startswith(".."):
        raise VolumeError(f"invalid payload path {rel!r}")


def _current(target_dir: Path) -> Payload | None:
    data = target_dir / DATA_DIR
    if not data.is_symlink():
        return None
    out: Payload = {}
    for path in (target_dir / os.readlink(data)).rglob("*"):
        if path.is_file():
            rel = path.relative_to(target_dir / os.readlink(data)).as_posix()
            out[rel] = (path.read_bytes(), path.stat().st_mode & 0o7777)
    return out


def write_payload(target_dir: Path, files: Mapping[str, tuple[bytes, int]]) -> bool:
    """Atomically replace the visible files of ``target_dir``; False when nothing changed."""
    for rel in files:
        _check_path(rel)
    target_dir.mkdir(parents=True, exist_ok=True)
    if _current(target_dir) == dict(files):
        return False
    ts = time.strftime("%Y_%m_%d_%H_%M_%S", time.gmtime()) + f".{time.time_ns() % 10**9:09d}"
    new_dir = target_dir / f"..{ts}"
    new_dir.mkdir()
    for rel, (content, mode) in files.items():
        path = new_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode)
    data = target_dir / DATA_DIR
    old = os.readlink(data) if data.is_symlink() else None
    tmp_link = target_dir / f"..data_tmp_{os.getpid()}"
    tmp_link.unlink(missing_ok=True)
    tmp_link.symlink_to(new_dir.name)
    tmp_link.rename(data)
    visible = {rel.split("/")[0] for rel in files}
    for name in visible:
        link = target_dir / name
        if link.is_symlink():
            continue
        if link.is_dir():
            shutil.rmtree(link)
        link.unlink(missing_ok=True)
        link.symlink_to(f"{DATA_DIR}/{name}")
    for entry in target_dir.iterdir():
        if not entry.name.startswith("..") and entry.name not in visible:
            if entry.is_symlink() or entry.is_file():
                entry.unlink()
            else:
                shutil.rmtree(entry)
    if old is not None and old != new_dir.name:
        shutil.rmtree(target_dir / old, ignore_errors=True)
    return True


# ---------------------------------------------------------------------------- payload builders


def _keyed_payload(
    kind: str,
    source: Mapping[str, Any],
    data: dict[str, bytes] | None,
    default_mode: int,
) -> Payload:
    name = source.get("name", "")
    optional = bool(source.get("optional", False))
    if data is None:
        if optional:
            return {}
        raise VolumeError(f'{kind} "{name}" not found')
    items = source.get("items")
    if not items:
        return {k: (v, default_mode) for k, v in data.items()}
    out: Payload = {}
    for item in items:
        key = item["key"]
        if key not in data:
            if optional:
                continue
            raise VolumeError(f"{kind} references non-existent {kind} key: {key}")
        out[item["path"]] = (data[key], item.get("mode", default_mode))
    return out


def configmap_payload(
    volume_source: Mapping[str, Any], configmap: Mapping[str, Any] | None, default_mode: int
) -> Payload:
    """Files of a configMap volume (``data`` as UTF-8, ``binaryData`` base64-decoded)."""
    data: dict[str, bytes] | None = None
    if configmap is not None:
        data = {k: v.encode() for k, v in (configmap.get("data") or {}).items()}
        for k, v in (configmap.get("binaryData") or {}).items():
            data[k] = base64.b64decode(v)
    mode = volume_source.get("defaultMode", default_mode)
    return _keyed_payload("configmap", volume_source, data, mode)


def secret_payload(
    volume_source: Mapping[str, Any], secret: Mapping[str, Any] | None, default_mode: int
) -> Payload:
    """Files of a secret volume (``data`` values are base64 in the API object)."""
    data: dict[str, bytes] | None = None
    if secret is not None:
        data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    source = dict(volume_source)
    source.setdefault("name", volume_source.get("secretName", ""))
    mode = volume_source.get("defaultMode", default_mode)
    return _keyed_payload("secret", source, data, mode)


def _resource_value(
    pod: Mapping[str, Any], ref: Mapping[str, Any], allocatable: Mapping[str, str]
) -> str:
    containers = pod.get("spec", {}).get("containers", [])
    wanted = ref.get("containerName") or (containers[0]["name"] if containers else "")
    container = next((c for c in containers if c.get("name") == wanted), None)
    if container is None:
        raise VolumeError(f'container "{wanted}" not found for resourceFieldRef')
    return downward.resource_value(container, ref, allocatable)


def downward_api_payload(
    items: Sequence[Mapping[str, Any]],
    pod: Mapping[str, Any],
    default_mode: int = DEFAULT_MODE,
    node_allocatable: Mapping[str, str] | None = None,
) -> Payload:
    """Files of a downwardAPI volume: pod metadata fields and container resources."""
    out: Payload = {}
    for item in items:
        if "fieldRef" in item:
            try:
                text = downward.field_value(pod, item["fieldRef"]["fieldPath"])
            except ValueError as err:
                raise VolumeError(str(err)) from None
        elif "resourceFieldRef" in item:
            text = _resource_value(pod, item["resourceFieldRef"], node_allocatable or {})
        else:
            raise VolumeError(f"downwardAPI item {item.get('path')!r} has no source")
        out[item["path"]] = (text.encode(), item.get("mode", default_mode))
    return out


def projected_payload(
    sources: Sequence[Mapping[str, Any]],
    pod: Mapping[str, Any],
    lookup_configmap: Lookup,
    lookup_secret: Lookup,
    service_account_token: TokenSource | None,
    default_mode: int = DEFAULT_MODE,
) -> Payload:
    """Merge configMap/secret/downwardAPI/serviceAccountToken projections into one payload."""
    out: Payload = {}
    for src in sources:
        if "configMap" in src:
            cm = src["configMap"]
            out.update(configmap_payload(cm, lookup_configmap(cm.get("name", "")), default_mode))
        elif "secret" in src:
            sec = src["secret"]
            out.update(secret_payload(sec, lookup_secret(sec.get("name", "")), default_mode))
        elif "downwardAPI" in src:
            out.update(downward_api_payload(src["downwardAPI"].get("items", []), pod, default_mode))
        elif "serviceAccountToken" in src:
            sat = src["serviceAccountToken"]
            if service_account_token is None:
                raise VolumeError("serviceAccountToken projection requested but no token source")
            out[sat["path"]] = (service_account_token(sat), default_mode)
    return out
