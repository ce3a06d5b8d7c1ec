"""What a pod's containers need from the API server, made ready on the node.

Before the pod worker can create a container it needs the objects the pod refers to:
configMaps and secrets for env vars and volumes, a ServiceAccount token (TokenRequest,
bound to the pod, refreshed at 80% of its life), the PersistentVolumes its claims are
bound to, pull secrets for its images, and the cluster's Services for the service
environment variables. :class:`PodInputs` fetches them, has the volume plugins of
:class:`~pyk8s.kubelet.volumes.PodVolumes` set the volumes up and turns ``volumeMounts``
into CRI mounts (plus the kubelet-managed ``/etc/hosts`` and termination-message file). Failures are
:class:`~pyk8s.kubelet.volumes.VolumeError` or
:class:`~pyk8s.kubelet.podconfig.EnvError`, which the pod worker reports as events and
waiting reasons.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyk8s.api.quantity import value as quantity_value
from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import Client, is_gone, is_not_found
from pyk8s.client.errors import ClientError
from pyk8s.client.events import EventRecorder
from pyk8s.csi import attachment_name
from pyk8s.kubelet import podconfig
from pyk8s.kubelet.cri import api_pb2 as pb
from pyk8s.kubelet.envvars import service_env
from pyk8s.kubelet.volumes import (
    ClaimError,
    CSIPlugin,
    PodVolumes,
    VolumeError,
    VolumeLookups,
    claim_name,
)

__all__ = ["NodeInfo", "PodInputs", "VolumeState"]

CONFIGMAPS: Resource = REGISTRY.get("", "v1", "configmaps")  # type: ignore[assignment]
SECRETS: Resource = REGISTRY.get("", "v1", "secrets")  # type: ignore[assignment]
SERVICEACCOUNTS: Resource = REGISTRY.get("", "v1", "serviceaccounts")  # type: ignore[assignment]
PVCS: Resource = REGISTRY.get("", "v1", "persistentvolumeclaims")  # type: ignore[assignment]
PVS: Resource = REGISTRY.get("", "v1", "persistentvolumes")  # type: ignore[assignment]
CSIDRIVERS: Resource = REGISTRY.get("storage.k8s.io", "v1", "csidrivers")  # type: ignore[assignment]
ATTACHMENTS: Resource = REGISTRY.get("storage.k8s.io", "v1", "volumeattachments")  # type: ignore[assignment]
#: seconds a pod's setup waits (on a watch) for its CSI volumes' VolumeAttachments to be attached
#: before reporting FailedMount and retrying at the next sync
ATTACH_WAIT = 10.0
TOKEN_REFRESH_FRACTION = 0.8

Obj = dict[str, Any]


class _Unfetched(Exception):
    """An object a volume refers to could not be read (the cause is the error)."""


async def _all(*aws: Awaitable[Any]) -> list[Any]:
    """Await ``aws`` at once, every one to its end; the first failure (in their order) is
    raised then, so no fetch is left running behind a failed one."""
    done = await asyncio.gather(*aws, return_exceptions=True)
    for result in done:
        if isinstance(result, BaseException):
            raise result
    return done


def _attached(va: Obj | None) -> bool:
    return bool(((va or {}).get("status") or {}).get("attached"))


@dataclass
class NodeInfo:
    """What a pod worker needs to know about its node (filled in by the kubelet)."""

    name: str
    host_ip: str = ""
    #: the node's address of the other family on a dual-stack node
    secondary_ips: tuple[str, ...] = ()
    machine_memory: int = 0
    allocatable: dict[str, str] = field(default_factory=dict)
    cluster_dns: list[str] = field(default_factory=list)
    cluster_domain: str = "cluster.local"


@dataclass
class VolumeState:
    """One pod's volumes on this node: host paths by volume name, cached tokens."""

    paths: dict[str, Path] = field(default_factory=dict)
    synced: float = 0.0
    tokens: dict[str, tuple[bytes, float]] = field(default_factory=dict)


class PodInputs:
    def __init__(
        self,
        client: Client,
        recorder: EventRecorder,
        node: NodeInfo,
        volumes: PodVolumes,
        services: Callable[[], Sequence[Mapping[str, Any]]],
    ) -> None:
        self.client = client
        self.recorder = recorder
        self.node = node
        self.volumes = volumes
        self.services = services

    async def pull_secrets(self, pod: Obj) -> list[Obj]:
        """The pod's imagePullSecrets that exist (upstream ignores missing ones)."""
        ns = pod["metadata"].get("namespace", "default")
        refs = (pod.get("spec") or {}).get("imagePullSecrets") or []
        found = [await self._get(SECRETS, r.get("name", ""), ns) for r in refs]
        return [s for s in found if s is not None]

    async def _get(self, res: Resource, name: str, ns: str) -> Obj | None:
        try:
            obj: Obj = await self.client.get(res, name, ns)
            return obj
        except ClientError as err:
            if is_not_found(err):
                return None
            raise

    async def env(
        self, pod: Obj, c: Mapping[str, Any], ip: str, ips: Sequence[str]
    ) -> list[tuple[str, str]]:
        ns = pod["metadata"].get("namespace", "default")
        cms: dict[str, Mapping[str, str]] = {}
        secrets: dict[str, Mapping[str, bytes | str]] = {}
        for src in [
            *(c.get("envFrom") or []),
            *((e.get("valueFrom") or {}) for e in c.get("env") or []),
        ]:
            for kind in ("configMapRef", "configMapKeyRef"):
                if kind in src and src[kind]["name"] not in cms:
                    obj = await self._get(CONFIGMAPS, src[kind]["name"], ns)
                    if obj is not None:
                        cms[src[kind]["name"]] = obj.get("data") or {}
            for kind in ("secretRef", "secretKeyRef"):
                if kind in src and src[kind]["name"] not in secrets:
                    obj = await self._get(SECRETS, src[kind]["name"], ns)
                    if obj is not None:
                        data = obj.get("data") or {}
                        secrets[src[kind]["name"]] = {
                            k: base64.b64decode(v) for k, v in data.items()
                        }
        spec = pod.get("spec") or {}
        links = spec.get("enableServiceLinks")
        return podconfig.resolve_env(
            pod,
            c,
            node_name=self.node.name,
            host_ip=self.node.host_ip,
            pod_ip=ip,
            config_maps=cms,
            secrets=secrets,
            service_env=service_env(self.services(), ns, links is None or bool(links)),
            node_allocatable=self.node.allocatable,
            pod_ips=list(ips) or [ip],
        )

    def mounts(
        self, pod: Obj, c: Mapping[str, Any], state: VolumeState, ip: str, attempt: int
    ) -> list[pb.Mount]:
        uid = pod["metadata"]["uid"]
        mounts: list[pb.Mount] = []
        # upstream mounts API-data volumes (and read-only claims) read-only
        read_only = self.volumes.read_only(uid)
        for m in c.get("volumeMounts") or []:
            host = state.paths.get(m["name"])
            if host is None:
                raise VolumeError(
                    f'unable to find volume "{m["name"]}" for container "{c["name"]}"'
                )
            if m.get("subPath"):
                host = host / m["subPath"]
                if not host.exists():
                    host.mkdir(parents=True, exist_ok=True)
            propagation = {
                "HostToContainer": pb.PROPAGATION_HOST_TO_CONTAINER,
                "Bidirectional": pb.PROPAGATION_BIDIRECTIONAL,
            }.get(m.get("mountPropagation") or "", pb.PROPAGATION_PRIVATE)
            mounts.append(
                pb.Mount(
                    container_path=m["mountPath"],
                    host_path=str(host),
                    readonly=bool(m.get("readOnly")) or m["name"] in read_only,
                    propagation=propagation,
                )
            )
        targets = {m.container_path for m in mounts}
        if "/etc/hosts" not in targets:
            self.volumes.pod_dir(uid).mkdir(parents=True, exist_ok=True)
            hosts = self.volumes.pod_dir(uid) / "etc-hosts"
            hosts.write_text(self._etc_hosts(pod, ip))
            mounts.append(pb.Mount(container_path="/etc/hosts", host_path=str(hosts)))
        path = c.get("terminationMessagePath") or "/dev/termination-log"
        if path not in targets:
            msg_dir = self.volumes.pod_dir(uid) / "containers" / c["name"]
            msg_dir.mkdir(parents=True, exist_ok=True)
            msg_file = msg_dir / f"{attempt}-{uuid.uuid4().hex[:8]}"
            msg_file.touch(mode=0o666)
            msg_file.chmod(0o666)
            mounts.append(pb.Mount(container_path=path, host_path=str(msg_file)))
        return mounts

    def _etc_hosts(self, pod: Obj, ip: str) -> str:
        spec = pod.get("spec") or {}
        if spec.get("hostNetwork"):
            try:
                return Path("/etc/hosts").read_text()
            except OSError:
                return ""
        lines = [
            "# Kubernetes-managed hosts file.",
            "127.0.0.1\tlocalhost",
            "::1\tlocalhost ip6-localhost ip6-loopback",
            "fe00::0\tip6-localnet",
            "fe00::0\tip6-mcastprefix",
            "fe00::1\tip6-allnodes",
            "fe00::2\tip6-allrouters",
        ]
        hostname = podconfig.pod_hostname(pod)
        if ip:
            sub = spec.get("subdomain")
            if sub:
                ns = pod["metadata"].get("namespace", "default")
                fqdn = f"{hostname}.{sub}.{ns}.svc.{self.node.cluster_domain}"
                lines.append(f"{ip}\t{fqdn}\t{hostname}")
            else:
                lines.append(f"{ip}\t{hostname}")
        for alias in spec.get("hostAliases") or []:
            lines.append(f"{alias.get('ip', '')}\t" + "\t".join(alias.get("hostnames") or []))
        return "\n".join(lines) + "\n"

    async def setup_volumes(self, pod: Obj, state: VolumeState) -> bool:
        """Fetch what the volumes refer to, then set every volume up through its plugin;
        a failure is a ``FailedMount`` event (upstream's wording) and False.

        As upstream's volume manager, which handles each volume on its own, the volumes
        without a claim are fetched and set up while the claims' volumes are being
        looked up (the claim, its PV, and for a CSI volume its driver and the wait for
        its attachment), and the objects of each kind are fetched at once."""
        ns = pod["metadata"].get("namespace", "default")
        spec = pod.get("spec") or {}
        cms: dict[str, Obj | None] = {}
        secrets: dict[str, Obj | None] = {}
        claims: dict[str, Obj | None] = {}
        pvs: dict[str, Obj | None] = {}
        csi_drivers: dict[str, Obj | None] = {}
        attachments: dict[str, Obj | None] = {}
        tokens: list[Mapping[str, Any]] = []
        claimed: list[str] = []
        direct: list[str] = []
        for vol in spec.get("volumes") or []:
            sources = [vol, *((vol.get("projected") or {}).get("sources") or [])]
            for src in sources:
                if "configMap" in src:
                    cms[src["configMap"].get("name", "")] = None
                if "secret" in src:
                    sname = src["secret"].get("secretName") or src["secret"].get("name", "")
                    secrets[sname] = None
                if "serviceAccountToken" in src:
                    tokens.append(src["serviceAccountToken"])
            claim = claim_name(pod, vol)
            if claim is not None:
                claims[claim] = None
            (claimed if claim is not None else direct).append(str(vol["name"]))

        def token(sat: dict[str, Any]) -> bytes:
            return state.tokens[str(sat.get("path"))][0]

        lookups = VolumeLookups(
            configmap=lambda n: cms.get(n),
            secret=lambda n: secrets.get(n),
            service_account_token=token,
            claim=lambda n: claims.get(n),
            persistent_volume=lambda n: pvs.get(n),
            csi_driver=lambda n: csi_drivers.get(n),
            volume_attachment=lambda n: attachments.get(n),
        )

        async def fetch_claim(name: str) -> None:
            claims[name] = obj = await self._get(PVCS, name, ns)
            volume = ((obj or {}).get("spec") or {}).get("volumeName")
            if volume:
                pvs[volume] = await self._get(PVS, volume, "")

        async def set_up(
            names: list[str], *fetches: Awaitable[Any], csi: bool = False
        ) -> dict[str, Path]:
            try:
                await _all(*fetches)
                if csi:
                    # a CSI volume published already (a resync) is not looked up again:
                    # as upstream, attaching is waited for before the first mount only
                    uid = pod["metadata"]["uid"]
                    published = {
                        m.claim
                        for m in self.volumes.mounted.get(uid, {}).values()
                        if m.plugin == CSIPlugin.name
                    }
                    todo = {
                        str(c["spec"]["volumeName"]): pvs.get(str(c["spec"]["volumeName"]))
                        for n, c in claims.items()
                        if n not in published and c and (c.get("spec") or {}).get("volumeName")
                    }
                    found_drivers, found_attachments = await self._csi_objects(todo)
                    csi_drivers.update(found_drivers)
                    attachments.update(found_attachments)
            except (ClientError, VolumeError) as err:
                raise _Unfetched(err) from err
            if not names:
                return {}
            return await asyncio.to_thread(self.volumes.setup, pod, lookups, names)

        done = await asyncio.gather(
            set_up(
                direct,
                *(self._fetch(cms, CONFIGMAPS, n, ns) for n in cms),
                *(self._fetch(secrets, SECRETS, n, ns) for n in secrets),
                *(self._refresh_token(pod, state, sat) for sat in tokens),
            ),
            set_up(claimed, *(fetch_claim(n) for n in claims), csi=True),
            return_exceptions=True,
        )
        paths: dict[str, Path] = {}
        for result in done:
            if isinstance(result, _Unfetched):
                msg = f"MountVolume.SetUp failed: {result.__cause__}"
            elif isinstance(result, VolumeError | OSError):
                msg = self._mount_failure(pod, result)
            elif isinstance(result, BaseException):
                raise result
            else:
                paths.update(result)
                continue
            self.recorder.event(pod, "Warning", "FailedMount", msg)
            return False
        await self._expand_volumes(pod, claims, pvs)
        state.paths = paths
        state.synced = time.monotonic()
        return True

    async def _fetch(self, into: dict[str, Obj | None], res: Resource, name: str, ns: str) -> None:
        into[name] = await self._get(res, name, ns)

    async def _csi_objects(
        self, pvs: Mapping[str, Obj | None]
    ) -> tuple[dict[str, Obj | None], dict[str, Obj | None]]:
        """The CSIDriver of each CSI PV's driver, and for those that need attaching the
        PV's VolumeAttachment to this node, waited for (up to :data:`ATTACH_WAIT`
        seconds) until ``status.attached``, as upstream's WaitForAttach (the volumes at
        once)."""
        drivers: dict[str, Obj | None] = {}
        waits: dict[str, str] = {}
        for name, pv in pvs.items():
            csi = ((pv or {}).get("spec") or {}).get("csi")
            if not csi:
                continue
            driver = str(csi.get("driver", ""))
            if driver not in drivers:
                drivers[driver] = await self._get(CSIDRIVERS, driver, "")
            if ((drivers[driver] or {}).get("spec") or {}).get("attachRequired") is False:
                continue
            waits[name] = attachment_name(str(csi.get("volumeHandle", "")), driver, self.node.name)
        found = await _all(*(self._wait_attached(va) for va in waits.values()))
        return drivers, dict(zip(waits, found, strict=True))

    async def _wait_attached(self, name: str) -> Obj | None:
        """VolumeAttachment ``name`` once its ``status.attached`` is true, else as last
        seen (``None``: not there) after :data:`ATTACH_WAIT` seconds.

        As upstream's ``waitForVolumeAttachment``: the object is read, then watched from
        that resourceVersion, so the wait ends on the attacher's status write itself. It
        is listed by name rather than read, so that a VolumeAttachment the attach/detach
        controller has yet to create has a resourceVersion to watch from too."""
        selector = f"metadata.name={name}"
        listed = await self.client.list(ATTACHMENTS, field_selector=selector)
        items = listed.get("items") or []
        va: Obj | None = items[0] if items else None
        if _attached(va):
            return va
        rv = str((listed.get("metadata") or {}).get("resourceVersion") or "")
        try:
            watch = self.client.watch(
                ATTACHMENTS, name=name, resource_version=rv,
                timeout_seconds=int(ATTACH_WAIT) + 1,
            )  # fmt: skip
            async with asyncio.timeout(ATTACH_WAIT), watch as events:  # closed on timeout too
                async for etype, obj in events:
                    va = None if etype == "DELETED" else obj
                    if _attached(va):
                        return va
        except TimeoutError:
            pass
        except ClientError as err:
            if not is_gone(err):
                raise
            return await self._get(ATTACHMENTS, name, "")  # compacted: read it once more
        return va

    async def _expand_volumes(
        self, pod: Obj, claims: Mapping[str, Obj | None], pvs: Mapping[str, Obj | None]
    ) -> None:
        """Finish an expansion the resizer left to the node (the claim's
        ``FileSystemResizePending``): NodeExpandVolume on the published volume, then the
        claim's ``status.capacity`` becomes the PV's and the condition goes, as upstream's
        kubelet does for a mounted volume (online expansion)."""
        uid = pod["metadata"]["uid"]
        csi_plugin = next((p for p in self.volumes.plugins if isinstance(p, CSIPlugin)), None)
        if csi_plugin is None:
            return
        mounted = self.volumes.mounted.get(uid, {})
        for claim in claims.values():
            status = (claim or {}).get("status") or {}
            pending = any(
                c.get("type") == "FileSystemResizePending" for c in status.get("conditions") or []
            )
            pv = pvs.get(str(((claim or {}).get("spec") or {}).get("volumeName") or ""))
            if claim is None or pv is None or not pending or not (pv.get("spec") or {}).get("csi"):
                continue
            cm = claim["metadata"]
            vol = next((m for m in mounted.values() if m.claim == cm["name"]), None)
            if vol is None:
                continue
            size = int(quantity_value(pv["spec"]["capacity"]["storage"]))
            pv_name = pv["metadata"]["name"]
            try:
                await asyncio.to_thread(csi_plugin.expand, vol.path, size, pv)
            except VolumeError as err:
                self.recorder.event(
                    pod, "Warning", "VolumeResizeFailed",
                    f"MountVolume.NodeExpandVolume failed for volume \"{pv_name}\" : {err}",
                )  # fmt: skip
                continue
            conditions = [
                c
                for c in status.get("conditions") or []
                if c.get("type") != "FileSystemResizePending"
            ]
            capacity = {"storage": pv["spec"]["capacity"]["storage"]}
            patch = {
                "status": {
                    "capacity": capacity,
                    "conditions": conditions,
                    "allocatedResourceStatuses": None,
                }
            }
            await self.client.patch(
                PVCS, cm["name"], patch, cm["namespace"], patch_type="merge", subresource="status"
            )
            self.recorder.event(
                pod, "Normal", "FileSystemResizeSuccessful",
                f'MountVolume.NodeExpandVolume succeeded for volume "{pv_name}" {self.node.name}',
            )  # fmt: skip

    def _mount_failure(self, pod: Obj, err: Exception) -> str:
        """Upstream's FailedMount messages: a claim that cannot be resolved fails the
        whole pod's wait for its volumes; a plugin's failure names its volume."""
        failing = getattr(err, "volume", "")
        if isinstance(err, ClaimError):
            done = self.volumes.mounted.get(pod["metadata"]["uid"], {})
            names = [v["name"] for v in (pod.get("spec") or {}).get("volumes") or []]
            unmounted = " ".join(n for n in names if n not in done or n == failing)
            return (
                f"Unable to attach or mount volumes: unmounted volumes=[{unmounted}], "
                f"unattached volumes=[], failed to process volumes=[{failing}]: {err}"
            )
        return f'MountVolume.SetUp failed for volume "{failing}" : {err}'

    async def _refresh_token(self, pod: Obj, state: VolumeState, sat: Mapping[str, Any]) -> None:
        path = str(sat.get("path"))
        cached = state.tokens.get(path)
        if cached is not None and time.time() < cached[1]:
            return
        meta, spec = pod["metadata"], pod.get("spec") or {}
        expiry = int(sat.get("expirationSeconds") or 3607)
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": [sat["audience"]] if sat.get("audience") else [],
                "expirationSeconds": expiry,
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": meta["name"],
                    "uid": meta["uid"],
                },
            },
        }
        resp = await self.client.create_subresource(
            SERVICEACCOUNTS,
            spec.get("serviceAccountName") or "default",
            "token",
            body,
            meta.get("namespace", "default"),
        )
        token = str((resp.get("status") or {}).get("token", "")).encode()
        state.tokens[path] = (token, time.time() + expiry * TOKEN_REFRESH_FRACTION)
