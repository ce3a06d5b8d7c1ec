"""A pod's volumes on the node: a registry of volume plugins and their mount lifecycle.

As upstream's volume manager, every volume of a pod is handled by the one plugin that
supports its source (``emptyDir``, ``hostPath``, ``configMap``, ``secret``, ``projected``,
``downwardAPI``; for a ``persistentVolumeClaim`` or generic ``ephemeral`` volume, the
source of the PersistentVolume the claim is bound to: ``hostPath``, ``local``, ``csi``).
A plugin's ``set_up`` makes the volume's host directory (under
``<root>/pods/<uid>/volumes/kubernetes.io~<plugin>/<name>`` unless the volume *is* a host
path) before the pod's sandbox and containers start, and is re-run on resync (it must be
idempotent); ``tear_down`` undoes it once the pod is gone. Volume directories of pods
the kubelet no longer knows (a kubelet restart in between) are found on disk, torn down
by the plugin their directory names, and removed (:meth:`PodVolumes.cleanup_orphans`).

The CSI plugin is the place CSI node plugins hook in: a driver registered with it
(:class:`CSINodeDriver`) is asked to publish and unpublish its volumes; an unknown driver
fails with upstream's "not found in the list of registered CSI drivers".
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pyk8s.api.pvbinding import ephemeral_claim_name
from pyk8s.api.quantity import value
from pyk8s.csi import volume_capability
from pyk8s.kubelet.payloads import (
    DATA_DIR,
    DEFAULT_MODE,
    Lookup,
    Payload,
    TokenSource,
    VolumeError,
    configmap_payload,
    downward_api_payload,
    projected_payload,
    secret_payload,
    write_payload,
)

__all__ = [
    "DATA_DIR",
    "DEFAULT_MODE",
    "CSIPlugin",
    "ClaimError",
    "MountedVolume",
    "PodVolumes",
    "VolumeError",
    "VolumeLookups",
    "VolumePlugin",
    "VolumeSpec",
    "configmap_payload",
    "default_plugins",
    "downward_api_payload",
    "projected_payload",
    "secret_payload",
    "write_payload",
]


def _nothing(_name: str) -> Mapping[str, Any] | None:
    return None


class ClaimError(VolumeError):
    """A claim volume cannot be resolved to its PersistentVolume (upstream's
    desired-state populator errors: ``error processing PVC ns/name: …``)."""


@dataclass
class VolumeLookups:
    """How the kubelet fetches objects in the pod's namespace for its volumes."""

    configmap: Lookup
    secret: Lookup
    service_account_token: TokenSource | None = None
    #: PersistentVolumeClaims of the pod's namespace, and PersistentVolumes, by name
    claim: Lookup = _nothing
    persistent_volume: Lookup = _nothing
    #: CSIDriver objects by driver name, this node's VolumeAttachments by PV name
    csi_driver: Lookup = _nothing
    volume_attachment: Lookup = _nothing


@dataclass(frozen=True)
class VolumeSpec:
    """Upstream's ``volume.Spec``: a pod volume, or the PersistentVolume its claim is
    bound to (``pv``), whose source is then what the plugin mounts."""

    name: str
    volume: Mapping[str, Any]
    pv: Mapping[str, Any] | None = None
    claim: Mapping[str, Any] | None = None

    @property
    def source(self) -> Mapping[str, Any]:
        return (self.pv.get("spec") or {}) if self.pv is not None else self.volume


@dataclass
class MountContext:
    """What ``set_up`` gets besides the spec: the pod, the lookups and its directory."""

    pod: Mapping[str, Any]
    lookups: VolumeLookups
    dir: Path


class VolumePlugin(Protocol):
    """Upstream's ``VolumePlugin`` with its Mounter/Unmounter folded in."""

    #: upstream's plugin name, e.g. ``kubernetes.io/empty-dir``
    name: str
    #: API data volumes (configMap, secret, …): mounted read-only whatever the pod says
    read_only: bool

    def can_support(self, spec: VolumeSpec) -> bool: ...

    def set_up(self, spec: VolumeSpec, ctx: MountContext) -> Path: ...

    def tear_down(self, path: Path) -> None: ...


@dataclass
class MountedVolume:
    """A volume set up for a pod: its plugin, host path and claim (for stats)."""

    plugin: str
    path: Path
    claim: str = ""
    read_only: bool = False
    #: the plugin's own measurement (CSI NodeGetVolumeStats), else a directory walk
    metrics: Callable[[], dict[str, int] | None] | None = None


# ---------------------------------------------------------------------------- mounts


def _mounts_under(path: Path) -> list[Path]:
    found = []
    prefix = str(path)
    with open("/proc/mounts") as f:
        for line in f:
            point = line.split()[1].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(Path(point))
    return found


def _is_root() -> bool:
    return os.geteuid() == 0


_LIBC = ctypes.CDLL(None, use_errno=True)


def _check(result: int, target: Path) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno), str(target))


def _mount_tmpfs(path: Path, size: str | None) -> None:
    """``mount -t tmpfs`` as the mount(2) call itself (once: a resync finds it mounted):
    every pod's service account token is on one, and a fork and exec of mount(8) from
    the kubelet cost more than the mount (the largest part of a pod start's kubelet CPU
    in a profile)."""
    if not _is_root() or os.path.ismount(path):
        return
    data = f"size={value(size)}".encode() if size else None
    _check(_LIBC.mount(b"tmpfs", os.fsencode(path), b"tmpfs", 0, data), path)


def _unmount_all(path: Path) -> None:
    """Unmount every mount at or under ``path``, deepest first (umount(2))."""
    for point in sorted(_mounts_under(path), key=lambda p: len(p.parts), reverse=True):
        _check(_LIBC.umount2(os.fsencode(point), 0), point)


def _remove_dir(path: Path) -> None:
    _unmount_all(path)
    shutil.rmtree(path, ignore_errors=True)


def _host_path(source: Mapping[str, Any]) -> Path:
    path = Path(source["path"])
    kind = source.get("type", "")
    if kind == "DirectoryOrCreate":
        path.mkdir(mode=0o755, parents=True, exist_ok=True)
    elif kind == "FileOrCreate" and not path.exists():
        if not path.parent.is_dir():
            raise VolumeError(f"hostPath type check failed: {path.parent} is not a directory")
        path.touch(mode=0o644)
    checks = {"DirectoryOrCreate": Path.is_dir, "Directory": Path.is_dir,
              "FileOrCreate": Path.is_file, "File": Path.is_file,
              "Socket": Path.is_socket, "CharDevice": Path.is_char_device,
              "BlockDevice": Path.is_block_device}  # fmt: skip
    check = checks.get(kind)
    if check is not None and not check(path):
        what = kind.removesuffix("OrCreate").lower()
        raise VolumeError(f"hostPath type check failed: {path} is not a {what}")
    return path


# ---------------------------------------------------------------------------- plugins


class EmptyDirPlugin:
    name = "kubernetes.io/empty-dir"
    read_only = False

    def can_support(self, spec: VolumeSpec) -> bool:
        return spec.pv is None and "emptyDir" in spec.volume

    def set_up(self, spec: VolumeSpec, ctx: MountContext) -> Path:
        ed = spec.volume.get("emptyDir") or {}
        ctx.dir.mkdir(parents=True, exist_ok=True)
        ctx.dir.chmod(0o777)
        if ed.get("medium") == "Memory":
            _mount_tmpfs(ctx.dir, ed.get("sizeLimit"))
        return ctx.dir

    def tear_down(self, path: Path) -> None:
        _remove_dir(path)


class HostPathPlugin:
    """A pod's ``hostPath`` (type checks) or a hostPath PersistentVolume (created if
    missing, as pyk8s always did for claims)."""

    name = "kubernetes.io/host-path"
    read_only = False

    def can_support(self, spec: VolumeSpec) -> bool:
        return "hostPath" in spec.source

    def set_up(self, spec: VolumeSpec, ctx: MountContext) -> Path:
        source = spec.source["hostPath"]
        if spec.pv is not None and not source.get("type"):
            Path(source["path"]).mkdir(parents=True, exist_ok=True)
        return _host_path(source)

    def tear_down(self, path: Path) -> None:
        return None  # the host's data stays


class LocalPlugin:
    """A ``local`` PersistentVolume: a directory that must already exist on the node."""

    name = "kubernetes.io/local-volume"
    read_only = False

    def can_support(self, spec: VolumeSpec) -> bool:
        return spec.pv is not None and "local" in spec.source

    def set_up(self, spec: VolumeSpec, ctx: MountContext) -> Path:
        path = Path(spec.source["local"]["path"])
        if not path.exists():
            raise VolumeError(f'path "{path}" does not exist')
        return path

    def tear_down(self, path: Path) -> None:
        return None


class _PayloadPlugin:
    """configMap, secret, downwardAPI and projected: files written atomically."""

    name = ""
    read_only = True
    key = ""
    tmpfs = False

    def can_support(self, spec: VolumeSpec) -> bool:
        return spec.pv is None and self.key in spec.volume

    def payload(self, spec: VolumeSpec, ctx: MountContext) -> Payload:
        raise NotImplementedError

    def set_up(self, spec: VolumeSpec, ctx: MountContext) -> Path:
        payload = self.payload(spec, ctx)
        ctx.dir.mkdir(parents=True, exist_ok=True)
        if self.tmpfs:
            _mount_tmpfs(ctx.dir, None)
        write_payload(ctx.dir, payload)
        return ctx.dir

    def tear_down(self, path: Path) -> None:
        _remove_dir(path)


class ConfigMapPlugin(_PayloadPlugin):
    name, key = "kubernetes.io/configmap", "configMap"

    def payload(self, spec: VolumeSpec, ctx: MountContext) -> Payload:
        src = spec.volume["configMap"]
        return configmap_payload(src, ctx.lookups.configmap(src.get("name", "")), DEFAULT_MODE)


class SecretPlugin(_PayloadPlugin):
    name, key, tmpfs = "kubernetes.io/secret", "secret", True

    def payload(self, spec: VolumeSpec, ctx: MountContext) -> Payload:
        src = spec.volume["secret"]
        return secret_payload(src, ctx.lookups.secret(src.get("secretName", "")), DEFAULT_MODE)


class DownwardAPIPlugin(_PayloadPlugin):
    name, key = "kubernetes.io/downward-api", "downwardAPI"

    def payload(self, spec: VolumeSpec, ctx: MountContext) -> Payload:
        src = spec.volume["downwardAPI"]
        mode = src.get("defaultMode", DEFAULT_MODE)
        return downward_api_payload(src.get("items", []), ctx.pod, mode)


class ProjectedPlugin(_PayloadPlugin):
    name, key, tmpfs = "kubernetes.io/projected", "projected", True

    def payload(self, spec: VolumeSpec, ctx: MountContext) -> Payload:
        src = spec.volume["projected"]
        lk = ctx.lookups
        return projected_payload(
            src.get("sources") or [], ctx.pod, lk.configmap, lk.secret,
            lk.service_account_token, src.get("defaultMode", DEFAULT_MODE),
        )  # fmt: skip


class CSINodeDriver(Protocol):
    """A registered CSI node plugin as the kubelet's ``kubernetes.io/csi`` plugin uses it
    (:class:`pyk8s.kubelet.csi.GrpcCSIDriver` over gRPC; fakes in tests)."""

    @property
    def stage_unstage(self) -> bool:
        """The driver has STAGE_UNSTAGE_VOLUME."""

    @property
    def has_stats(self) -> bool:
        """The driver has GET_VOLUME_STATS."""

    @property
    def can_expand(self) -> bool:
        """The driver has EXPAND_VOLUME."""

    def node_stage(
        self, volume_id: str, staging: Path, capability: Any,
        context: Mapping[str, str], publish_context: Mapping[str, str],
    ) -> None: ...  # fmt: skip

    def node_unstage(self, volume_id: str, staging: Path) -> None: ...

    def node_publish(
        self, volume_id: str, target: Path, read_only: bool, context: Mapping[str, str],
        *, staging: Path | None = None, publish_context: Mapping[str, str] | None = None,
        capability: Any = None,
    ) -> None: ...  # fmt: skip

    def node_unpublish(self, volume_id: str, target: Path) -> None: ...

    def node_stats(
        self, volume_id: str, path: Path, staging: Path | None
    ) -> dict[str, int] | None: ...

    def node_expand(
        self, volume_id: str, path: Path, staging: Path | None, size: int, capability: Any
    ) -> int: ...


def csi_capability(volume: Mapping[str, Any]) -> Any:
    """The CSI VolumeCapability for a PV (or an inline volume: no access modes)."""
    spec = volume.get("spec") or {}
    csi = spec.get("csi") or {}
    return volume_capability(
        spec.get("accessModes") or ["ReadWriteOnce"], str(csi.get("fsType") or ""),
        spec.get("mountOptions") or [],
    )  # fmt: skip


class CSIPlugin:
    """``csi`` volumes (PersistentVolumes and inline): the named driver publishes them at
    ``<dir>/mount``, with upstream's ``vol_data.json`` beside it for the teardown.

    For a PV whose CSIDriver requires attaching (``attachRequired``, true when there is no
    CSIDriver object, as upstream) the VolumeAttachment must say ``attached`` first; its
    ``attachmentMetadata`` is the publish context. A driver with STAGE_UNSTAGE_VOLUME
    stages the volume once per node at
    ``<root>/plugins/kubernetes.io/csi/<driver>/<sha256(handle)>/globalmount`` and
    unstages it when the last pod on the node stops using it. ``podInfoOnMount`` adds
    the pod's name, namespace, uid and service account to the volume context."""

    name = "kubernetes.io/csi"
    read_only = False

    def __init__(self, drivers: Mapping[str, CSINodeDriver] | None = None) -> None:
        self.drivers: dict[str, CSINodeDriver] = dict(drivers or {})

    def can_support(self, spec: VolumeSpec) -> bool:
        return "csi" in spec.source

    def _driver(self, name: str) -> CSINodeDriver:
        driver = self.drivers.get(name)
        if driver is None:
            raise VolumeError(
                "kubernetes.io/csi: mounter.SetUpAt failed to get CSI client: driver name "
                f"{name} not found in the list of registered CSI drivers"
            )
        return driver

    def set_up(self, spec: VolumeSpec, ctx: MountContext) -> Path:
        csi = spec.source["csi"]
        name = str(csi.get("driver", ""))
        driver = self._driver(name)
        handle = str(csi.get("volumeHandle") or f"csi-{ctx.pod['metadata']['uid']}-{spec.name}")
        target = ctx.dir / "mount"
        if (ctx.dir / "vol_data.json").is_file() and target in _mounts_under(target):
            return target  # published already
        dspec = (ctx.lookups.csi_driver(name) or {}).get("spec") or {}
        publish_context: dict[str, str] = {}
        if spec.pv is not None and dspec.get("attachRequired", True) is not False:
            pv_name = str(spec.pv["metadata"]["name"])
            status = (ctx.lookups.volume_attachment(pv_name) or {}).get("status") or {}
            if not status.get("attached"):
                raise VolumeError(
                    f'MountVolume.WaitForAttach failed for volume "{pv_name}" : timed out '
                    f"waiting for external-attacher of {name} CSI driver to attach volume "
                    f"{handle}"
                )
            publish_context = {
                str(k): str(v) for k, v in (status.get("attachmentMetadata") or {}).items()
            }
        context = {str(k): str(v) for k, v in (csi.get("volumeAttributes") or {}).items()}
        if dspec.get("podInfoOnMount"):
            meta, pod_spec = ctx.pod["metadata"], ctx.pod.get("spec") or {}
            context.update({
                "csi.storage.k8s.io/pod.name": str(meta.get("name", "")),
                "csi.storage.k8s.io/pod.namespace": str(meta.get("namespace", "")),
                "csi.storage.k8s.io/pod.uid": str(meta.get("uid", "")),
                "csi.storage.k8s.io/serviceAccount.name": str(
                    pod_spec.get("serviceAccountName") or "default"
                ),
                "csi.storage.k8s.io/ephemeral": "false" if spec.pv is not None else "true",
            })  # fmt: skip
        capability = csi_capability(spec.pv or {"spec": {"csi": csi}})
        staging: Path | None = None
        if driver.stage_unstage and spec.pv is not None:
            staging = staging_path(ctx.dir.parents[4], name, handle)
            driver.node_stage(handle, staging, capability, context, publish_context)
        target.mkdir(parents=True, exist_ok=True)
        data = {"driverName": name, "volumeHandle": handle, "specVolID": spec.name}
        if staging is not None:
            data["stagingPath"] = str(staging)
        (ctx.dir / "vol_data.json").write_text(json.dumps(data))
        driver.node_publish(
            handle, target, bool(csi.get("readOnly")), context,
            staging=staging, publish_context=publish_context, capability=capability,
        )  # fmt: skip
        return target

    def _data(self, path: Path) -> tuple[Path, dict[str, str] | None]:
        base = path.parent if path.name == "mount" else path
        with_data = base / "vol_data.json"
        return base, json.loads(with_data.read_text()) if with_data.is_file() else None

    def tear_down(self, path: Path) -> None:
        base, data = self._data(path)
        if data is not None:
            driver = self._driver(str(data["driverName"]))
            handle = str(data["volumeHandle"])
            if (base / "mount").exists():
                driver.node_unpublish(handle, base / "mount")
            staging = data.get("stagingPath")
            if staging and not _published_elsewhere(base, data):
                driver.node_unstage(handle, Path(staging))
                _remove_dir(Path(staging).parent)
        _remove_dir(base)

    def metrics_for(self, path: Path) -> Callable[[], dict[str, int] | None] | None:
        """NodeGetVolumeStats for a volume whose driver has GET_VOLUME_STATS, else None
        (then the kubelet measures the directory)."""
        base, data = self._data(path)
        driver = self.drivers.get(str((data or {}).get("driverName")))
        if data is None or driver is None or not driver.has_stats:
            return None
        staging = Path(data["stagingPath"]) if data.get("stagingPath") else None
        return lambda: driver.node_stats(str(data["volumeHandle"]), base / "mount", staging)

    def expand(self, path: Path, size: int, volume: Mapping[str, Any]) -> int | None:
        """NodeExpandVolume to ``size`` bytes for the volume published at ``path``; None
        when its driver has no EXPAND_VOLUME (nothing to do on the node)."""
        base, data = self._data(path)
        if data is None:
            return None
        driver = self._driver(str(data["driverName"]))
        if not driver.can_expand:
            return None
        staging = Path(data["stagingPath"]) if data.get("stagingPath") else None
        return driver.node_expand(
            str(data["volumeHandle"]), base / "mount", staging, size, csi_capability(volume)
        )


def staging_path(root: Path, driver: str, handle: str) -> Path:
    """upstream's global mount path of a staged CSI volume on this node."""
    digest = hashlib.sha256(handle.encode()).hexdigest()
    return root / "plugins" / "kubernetes.io" / "csi" / driver / digest / "globalmount"


def _published_elsewhere(base: Path, data: Mapping[str, str]) -> bool:
    """Another pod's volume directory on this node still has the same CSI volume."""
    pods = base.parents[3]
    for other in pods.glob("*/volumes/kubernetes.io~csi/*/vol_data.json"):
        if other.parent == base:
            continue
        try:
            theirs = json.loads(other.read_text())
        except (OSError, ValueError):
            continue
        if (theirs.get("driverName"), theirs.get("volumeHandle")) == (
            data["driverName"], data["volumeHandle"]
        ):  # fmt: skip
            return True
    return False


def default_plugins(csi: CSIPlugin | None = None) -> list[VolumePlugin]:
    """Every in-tree plugin, as upstream's ``ProbeVolumePlugins``."""
    return [
        EmptyDirPlugin(), HostPathPlugin(), LocalPlugin(), ConfigMapPlugin(), SecretPlugin(),
        DownwardAPIPlugin(), ProjectedPlugin(), csi or CSIPlugin(),
    ]  # fmt: skip


def _dir_name(plugin: str) -> str:
    return plugin.replace("/", "~")


# ---------------------------------------------------------------------------- claims


def claim_name(pod: Mapping[str, Any], vol: Mapping[str, Any]) -> str | None:
    """The claim behind a ``persistentVolumeClaim`` or generic ``ephemeral`` volume."""
    if vol.get("persistentVolumeClaim"):
        return str(vol["persistentVolumeClaim"].get("claimName", ""))
    if vol.get("ephemeral"):
        return ephemeral_claim_name(dict(pod), dict(vol))
    return None


def resolve_claim(
    pod: Mapping[str, Any], vol: Mapping[str, Any], name: str, lookups: VolumeLookups
) -> VolumeSpec:
    """The spec of a claim volume: its bound PV (upstream's ``getPVCExtractPV`` and
    ``getPVSpec`` checks and messages)."""
    ns = pod["metadata"].get("namespace", "default")

    def fail(why: str) -> ClaimError:
        return ClaimError(f"error processing PVC {ns}/{name}: {why}")

    claim = lookups.claim(name)
    if claim is None:
        raise fail(
            f'failed to fetch PVC from API server: persistentvolumeclaims "{name}" not found'
        )
    if (claim.get("metadata") or {}).get("deletionTimestamp"):
        raise fail(f"can't start pod because PVC {ns}/{name} is being deleted")
    if vol.get("ephemeral"):
        uid = pod["metadata"].get("uid")
        owners = (claim.get("metadata") or {}).get("ownerReferences") or []
        if not any(o.get("controller") and o.get("uid") == uid for o in owners):
            raise fail(
                f"PVC {ns}/{name} was not created for pod {ns}/{pod['metadata']['name']} "
                "(pod is not owner)"
            )
    phase = (claim.get("status") or {}).get("phase", "")
    volume_name = (claim.get("spec") or {}).get("volumeName") or ""
    if phase != "Bound" or not volume_name:
        raise fail(
            f"PVC {ns}/{name} has non-bound phase ({json.dumps(phase)}) or empty "
            f"pvc.Spec.VolumeName ({json.dumps(volume_name)})"
        )
    pv = lookups.persistent_volume(volume_name)
    if pv is None:
        raise fail(
            f'failed to fetch PV "{volume_name}" from API server: '
            f'persistentvolumes "{volume_name}" not found'
        )
    ref = (pv.get("spec") or {}).get("claimRef")
    if not ref:
        raise fail(f'found PV object "{volume_name}" but it has a nil ClaimRef')
    claim_uid = (claim.get("metadata") or {}).get("uid")
    if ref.get("uid") != claim_uid:
        raise fail(
            f'found PV object "{volume_name}" but its ClaimRef.UID "{ref.get("uid")}" does not '
            f'point to the PVC\'s UID "{claim_uid}"'
        )
    return VolumeSpec(str(vol["name"]), vol, pv=pv, claim=claim)


# ---------------------------------------------------------------------------- manager


@dataclass
class PodVolumes:
    """Sets up and tears down the volumes of the pods on this node, plugin by plugin."""

    root: Path
    plugins: Sequence[VolumePlugin] = field(default_factory=default_plugins)
    #: pod uid -> volume name -> what was set up
    mounted: dict[str, dict[str, MountedVolume]] = field(default_factory=dict)
    #: pod uid -> namespace (volume stats label claims with it)
    namespaces: dict[str, str] = field(default_factory=dict)

    def pod_dir(self, uid: str) -> Path:
        return self.root / "pods" / uid

    def volume_dir(self, uid: str, plugin: str, name: str) -> Path:
        """``<pod dir>/volumes/kubernetes.io~<plugin>/<name>`` (``plugin`` without the
        ``kubernetes.io/`` prefix, or a full plugin name)."""
        full = plugin if "/" in plugin else f"kubernetes.io/{plugin}"
        return self.pod_dir(uid) / "volumes" / _dir_name(full) / name

    def plugin_for(self, spec: VolumeSpec) -> VolumePlugin:
        for p in self.plugins:
            if p.can_support(spec):
                return p
        raise VolumeError(f'volume "{spec.name}": unsupported volume type')

    def spec_for(
        self, pod: Mapping[str, Any], vol: Mapping[str, Any], lookups: VolumeLookups
    ) -> VolumeSpec:
        name = claim_name(pod, vol)
        if name is not None:
            return resolve_claim(pod, vol, name, lookups)
        return VolumeSpec(str(vol["name"]), vol)

    def setup(
        self, pod: Mapping[str, Any], lookups: VolumeLookups, only: Iterable[str] | None = None
    ) -> dict[str, Path]:
        """Set up every volume of ``pod`` (idempotent), or those named in ``only``; volume
        name -> host path. The first failure is raised; the volumes set up before it stay
        set up. Two calls for different volumes of a pod may run at once."""
        uid = pod["metadata"]["uid"]
        done = self.mounted.setdefault(uid, {})
        self.namespaces[uid] = str(pod["metadata"].get("namespace", ""))
        out: dict[str, Path] = {}
        names = None if only is None else set(only)
        for vol in (pod.get("spec") or {}).get("volumes") or []:
            if names is not None and vol["name"] not in names:
                continue
            try:
                spec = self.spec_for(pod, vol, lookups)
                plugin = self.plugin_for(spec)
                ctx = MountContext(pod, lookups, self.volume_dir(uid, plugin.name, spec.name))
                path = plugin.set_up(spec, ctx)
            except VolumeError as err:
                err.volume = str(vol["name"])
                raise
            claim = ""
            read_only = plugin.read_only
            if spec.claim is not None:
                claim = str(spec.claim["metadata"]["name"])
                pvc_source = vol.get("persistentVolumeClaim") or {}
                read_only = read_only or bool(pvc_source.get("readOnly"))
            metrics_for = getattr(plugin, "metrics_for", None)
            metrics = metrics_for(path) if metrics_for is not None else None
            done[spec.name] = MountedVolume(plugin.name, path, claim, read_only, metrics)
            out[spec.name] = path
        return out

    def read_only(self, uid: str) -> set[str]:
        """Volumes of ``uid`` every container mounts read-only (API data, read-only claims)."""
        return {n for n, m in self.mounted.get(uid, {}).items() if m.read_only}

    def teardown_volumes(self, uid: str) -> None:
        """Each volume directory torn down by its plugin (found on disk, so this works
        after a kubelet restart); the pod dir stays. Upstream's volume manager does this
        for a pod that has finished (Succeeded or Failed) but is not deleted: its
        volumes are unmounted, emptyDirs emptied, CSI volumes unpublished."""
        self.mounted.pop(uid, None)
        self.namespaces.pop(uid, None)
        by_dir = {_dir_name(p.name): p for p in self.plugins}
        volumes = self.pod_dir(uid) / "volumes"
        if volumes.is_dir():
            for plugin_dir in volumes.iterdir():
                plugin = by_dir.get(plugin_dir.name)
                for vol_dir in plugin_dir.iterdir() if plugin_dir.is_dir() else ():
                    if plugin is not None:
                        plugin.tear_down(vol_dir)

    def teardown(self, uid: str) -> None:
        """The volumes torn down (:meth:`teardown_volumes`), then whatever is still
        mounted, then the pod dir."""
        self.teardown_volumes(uid)
        _remove_dir(self.pod_dir(uid))

    def pod_uids_on_disk(self) -> set[str]:
        pods = self.root / "pods"
        return {p.name for p in pods.iterdir() if p.is_dir()} if pods.is_dir() else set()

    def cleanup_orphans(
        self, active: Iterable[str], on_disk: Iterable[str] | None = None
    ) -> list[str]:
        """Upstream's ``cleanupOrphanedPodDirs``: tear down and remove the directories of
        pods not in ``active``; the uids removed. ``on_disk`` is what
        :meth:`pod_uids_on_disk` found *before* ``active`` was taken (default: read now):
        read in that order, a pod that arrives in between has its directory made after
        the read, so it is not taken for an orphan."""
        found = self.pod_uids_on_disk() if on_disk is None else set(on_disk)
        orphans = sorted(found - set(active))
        for uid in orphans:
            self.teardown(uid)
        return orphans
