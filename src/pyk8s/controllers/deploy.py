"""Auto-deployed manifests: k3s's ``DATA_DIR/server/manifests`` directory.

Every ``*.yaml``, ``*.yml`` and ``*.json`` file under the directory (multi-document YAML
and ``kind: List`` included) is applied at start and whenever it changes, with
server-side apply under the field manager ``pyk8s-deploy`` (forced: the file is the
source of truth for the fields it names, as in k3s). Each file is tracked by an
``Addon`` in ``kube-system`` — k3s's own ``k3s.cattle.io/v1`` kind, so ``kubectl get
addons -A`` reads the same as on k3s — named after the file (``apps/web.yaml`` →
``apps-web``), whose ``spec.source`` and ``spec.checksum`` (SHA-256) say what was applied
and whose ``status.objects`` lists what it made. Objects a new version of a file no
longer has are deleted; a removed file's objects are deleted with its Addon. A file
with a ``<file>.skip`` beside it (``web.yaml.skip``) is not applied (what it made before
stays). A file that does not parse, or an object the API server refuses, is reported as
a ``Warning ApplyManifestFailed`` event on the Addon and leaves the objects of the
previous version running.

Several servers (HA) each run a deployer over their own directory, as k3s's servers do,
and share the Addons: the same file on two servers is one Addon, applied by the first and
left alone by the others (same checksum). Each deployer applies a file again only when
that file changed on its own disk since it last looked (k3s re-applies on a changed
mtime), so servers holding different versions of one file do not undo each other on every
poll: the last to change or start wins, as on k3s. The Addon lists the servers holding its
file (annotation ``addon.pyk8s.io/servers``, each ``<node name>:<directory>``); a server
whose file is gone drops itself from the list, and the objects are deleted only when the
last holder's file is gone (k3s never deletes on a removed file; the issue asks for it).
A server gone for good is dropped from every list when its Node is deleted, the moment
its etcd member is removed (:func:`forget_node`, called by
:mod:`pyk8s.server.etcd_members`), so the survivors' removal of a file still deletes.

The directory is polled (every two seconds): manifests change rarely and a poll needs
no inotify binding. The Addon CustomResourceDefinition (:data:`ADDON_CRD`) must be
served: ``pyk8s server`` registers it when it starts, as k3s does
(:mod:`pyk8s.server.manifests`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pyk8s.client import ApiError, Client, ClientError, EventRecorder, Obj

__all__ = [
    "ADDON_CRD",
    "FIELD_MANAGER",
    "SERVERS_ANNOTATION",
    "ManifestDeployer",
    "addon_name",
    "forget_node",
    "parse_manifest",
]

log = logging.getLogger(__name__)

FIELD_MANAGER = "pyk8s-deploy"
ADDONS = ("k3s.cattle.io/v1", "Addon")
NAMESPACE = "kube-system"
#: the servers whose manifests directory holds an Addon's file (comma-separated)
SERVERS_ANNOTATION = "addon.pyk8s.io/servers"
SUFFIXES = (".yaml", ".yml", ".json")
_APPLY = "application/apply-patch+yaml"
_RETRY_FAILED = 30.0
#: applied first, so the objects in them and of them can follow in the same file
_FIRST = ("Namespace", "CustomResourceDefinition")

ADDON_CRD: Obj = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "addons.k3s.cattle.io"},
    "spec": {
        "group": "k3s.cattle.io",
        "names": {
            "kind": "Addon",
            "listKind": "AddonList",
            "plural": "addons",
            "singular": "addon",
        },
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "additionalPrinterColumns": [
                    {"name": "Source", "type": "string", "jsonPath": ".spec.source"},
                    {"name": "Checksum", "type": "string", "jsonPath": ".spec.checksum"},
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            },
                            "status": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            },
                        },
                    }
                },
            }
        ],
    },
}


class ManifestError(ValueError):
    """A manifest file that does not parse into Kubernetes objects."""


def addon_name(directory: Path, path: Path) -> str:
    """The Addon of a file: its path under the directory without the suffix, ``/`` as
    ``-``, in DNS-1123 form."""
    rel = path.relative_to(directory).as_posix()
    for suffix in SUFFIXES:
        if rel.endswith(suffix):
            rel = rel[: -len(suffix)]
            break
    name = re.sub(r"[^a-z0-9.-]+", "-", rel.lower()).strip("-.")
    return name[:253] or "manifest"


def parse_manifest(text: str) -> list[Obj]:
    """The objects of a manifest (YAML documents, JSON, ``kind: List``), in apply order."""
    try:
        docs = list(yaml.load_all(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    except yaml.YAMLError as err:
        raise ManifestError(str(err).replace("\n", " ")) from None
    objects: list[Obj] = []
    for i, doc in enumerate(docs):
        if doc is None:
            continue
        items = doc.get("items") if isinstance(doc, dict) and doc.get("kind") == "List" else None
        for obj in items if isinstance(items, list) else [doc]:
            if not isinstance(obj, dict):
                raise ManifestError(f"document {i + 1}: not a Kubernetes object")
            missing = [f for f in ("apiVersion", "kind") if not obj.get(f)]
            if not (obj.get("metadata") or {}).get("name"):
                missing.append("metadata.name")
            if missing:
                raise ManifestError(f"document {i + 1}: missing {', '.join(missing)}")
            objects.append(obj)
    return sorted(objects, key=lambda o: o["kind"] not in _FIRST)


@dataclass(frozen=True)
class _Ref:
    api_version: str
    kind: str
    namespace: str
    name: str

    def to_json(self) -> Obj:
        out = {"apiVersion": self.api_version, "kind": self.kind, "name": self.name}
        if self.namespace:
            out["namespace"] = self.namespace
        return out

    @staticmethod
    def of(doc: Any) -> _Ref:
        return _Ref(doc["apiVersion"], doc["kind"], doc.get("namespace", ""), doc["name"])


def _servers(addon: Obj) -> set[str]:
    value = ((addon.get("metadata") or {}).get("annotations") or {}).get(SERVERS_ANNOTATION, "")
    return {s for s in str(value).split(",") if s}


class ManifestDeployer:
    """Keeps the cluster in step with a manifests directory; ``await run(stop)``."""

    def __init__(
        self,
        client: Client,
        directory: Path,
        interval: float = 2.0,
        *,
        server: str = "",
        node: str = "",
    ) -> None:
        self.client = client
        self.directory = directory.resolve()
        #: this deployer among the servers sharing the Addons (stable across restarts):
        #: ``<node>:<directory>``, ``node`` the server's Node name (default: the host's)
        self.server = server or f"{node or socket.gethostname()}:{self.directory}"
        self.interval = interval
        self.recorder = EventRecorder(client, "deploy")
        #: checksum of a file whose last attempt failed -> when it may be tried again
        self._failed: dict[str, float] = {}
        #: Addon -> checksum of this server's file when last looked at (applied, or found
        #: applied): a different checksum in the Addon is another server's newer version
        self._seen: dict[str, str] = {}

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.warning("syncing %s failed: %s", self.directory, err)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
        await self.recorder.close()

    def _files(self) -> dict[str, Path]:
        out: dict[str, Path] = {}
        if not self.directory.is_dir():
            return out
        for path in sorted(self.directory.rglob("*")):
            rel = path.relative_to(self.directory).parts
            if any(p.startswith(".") for p in rel) or not path.name.endswith(SUFFIXES):
                continue
            if path.is_file() and not path.with_name(path.name + ".skip").exists():
                out[addon_name(self.directory, path)] = path
        return out

    def _skipped(self, source: str) -> bool:
        path = Path(source)
        return path.with_name(path.name + ".skip").exists()

    async def sync(self) -> None:
        """One pass: apply new and changed files, delete what removed files made."""
        files = await asyncio.to_thread(self._files)
        addons = {
            a["metadata"]["name"]: a
            for a in (await self.client.list(ADDONS, NAMESPACE)).get("items") or []
        }
        for name, path in files.items():
            await self._sync_file(name, path, addons.get(name))
        for name, addon in addons.items():
            if name in files or not self._holds(addon):
                continue
            source = str((addon.get("spec") or {}).get("source", ""))
            if await asyncio.to_thread(Path(source).exists) and await asyncio.to_thread(
                self._skipped, source
            ):
                continue  # disabled: what it made stays
            self._seen.pop(name, None)
            others = _servers(addon) - {self.server}
            if others:  # another server still has the file: its objects stay
                await _set_servers(self.client, addon, others)
            else:
                await _remove(self.client, addon)

    def _holds(self, addon: Obj) -> bool:
        """Whether this server's file is (or was) behind ``addon``: it is in its servers,
        or, for an Addon from before the list, the source is in this directory."""
        servers = _servers(addon)
        if servers:
            return self.server in servers
        source = str((addon.get("spec") or {}).get("source", ""))
        return source.startswith(f"{self.directory}/")

    async def _sync_file(self, name: str, path: Path, addon: Obj | None) -> None:
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError:
            return  # removed meanwhile: the next pass deletes it
        checksum = hashlib.sha256(data).hexdigest()
        if addon is not None and (
            (addon.get("spec") or {}).get("checksum") == checksum
            or self._seen.get(name) == checksum  # another server's version since: it stays
        ):
            self._seen[name] = checksum
            if self.server not in _servers(addon):
                await _set_servers(self.client, addon, {*_servers(addon), self.server})
            return
        loop = asyncio.get_running_loop()
        if self._failed.get(checksum, 0.0) > loop.time():
            return
        addon = await self._addon(name, path, addon)
        self.recorder.event(addon, "Normal", "ApplyingManifest", f'Applying manifest at "{path}"')
        try:
            objects = parse_manifest(data.decode(errors="replace"))
            applied = [await self._apply(obj) for obj in objects]
        except (ManifestError, ClientError) as err:
            self._failed[checksum] = loop.time() + _RETRY_FAILED
            self.recorder.event(
                addon, "Warning", "ApplyManifestFailed",
                f'Applying manifest at "{path}" failed: {err}',
            )  # fmt: skip
            log.warning("applying %s failed: %s", path, err)
            return
        self._failed.pop(checksum, None)
        before = {_Ref.of(r) for r in (addon.get("status") or {}).get("objects") or []}
        for ref in before - set(applied):
            await _delete(self.client, ref)
        addon["spec"] = {"source": str(path), "checksum": checksum}
        addon["status"] = {
            "objects": [r.to_json() for r in applied],
            "gvks": sorted({f"{r.api_version}, Kind={r.kind}" for r in applied}),
        }
        addon = await _set_servers(self.client, addon, {*_servers(addon), self.server})
        self._seen[name] = checksum
        self.recorder.event(addon, "Normal", "AppliedManifest", f'Applied manifest at "{path}"')

    async def _addon(self, name: str, path: Path, addon: Obj | None) -> Obj:
        if addon is not None:
            return addon
        body = {
            "apiVersion": ADDONS[0], "kind": ADDONS[1],
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"source": str(path)},
        }  # fmt: skip
        try:
            created: Obj = await self.client.create(ADDONS, body, NAMESPACE)
            return created
        except ApiError as err:
            if err.status != 409:
                raise
            found: Obj = await self.client.get(ADDONS, name, NAMESPACE)
            return found

    async def _apply(self, obj: Obj) -> _Ref:
        res = await self.client.resource(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        namespace = (meta.get("namespace") or "default") if res.namespaced else ""
        if namespace:
            obj = {**obj, "metadata": {**meta, "namespace": namespace}}
        await self.client.request(
            "PATCH",
            self.client.path(res, namespace or None, meta["name"]),
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
            body=json.loads(json.dumps(obj, default=str)),
            content_type=_APPLY,
        )
        return _Ref(obj["apiVersion"], obj["kind"], namespace, meta["name"])


async def forget_node(client: Client, node: str) -> list[str]:
    """Drop the servers of Node ``node`` (a server gone for good: its Node was deleted)
    from every Addon's servers; an Addon left with none goes with its objects, as when
    the last holder's file is removed. The Addons changed, by name."""
    try:
        addons = (await client.list(ADDONS, NAMESPACE)).get("items") or []
    except ApiError as err:
        if err.status == 404:  # the Addon kind is not served: no Addons
            return []
        raise
    changed: list[str] = []
    for addon in addons:
        servers = _servers(addon)
        gone = {s for s in servers if s.partition(":")[0] == node}
        if not gone:
            continue
        if servers - gone:
            await _set_servers(client, addon, servers - gone)
        else:
            await _remove(client, addon)
        changed.append(addon["metadata"]["name"])
        log.info(
            "dropped a deleted node's server from an addon",
            extra={"node": node, "addon": addon["metadata"]["name"], "left": len(servers - gone)},
        )
    return changed


async def _set_servers(client: Client, addon: Obj, servers: set[str]) -> Obj:
    meta = addon["metadata"]
    meta["annotations"] = {
        **(meta.get("annotations") or {}),
        SERVERS_ANNOTATION: ",".join(sorted(servers)),
    }
    updated: Obj = await client.update(ADDONS, addon, NAMESPACE)
    return updated


async def _delete(client: Client, ref: _Ref) -> None:
    try:
        await client.delete((ref.api_version, ref.kind), ref.name, ref.namespace or None)
    except ApiError as err:
        if err.status != 404:
            raise
    log.info("deleted %s %s/%s", ref.kind, ref.namespace, ref.name)


async def _remove(client: Client, addon: Obj) -> None:
    """Delete what ``addon`` made, then the Addon."""
    source = (addon.get("spec") or {}).get("source", "")
    refs: Iterable[Obj] = (addon.get("status") or {}).get("objects") or []
    for ref in refs:
        await _delete(client, _Ref.of(ref))
    try:
        await client.delete(ADDONS, addon["metadata"]["name"], NAMESPACE)
    except ApiError as err:
        if err.status != 404:
            raise
    log.info("removed the objects of %s", source)
