"""Pod specs: containers, ports, env, volumes, resources, probes, scheduling fields.

One ``validate_pod_spec`` serves Pods and every pod template (Deployments, Jobs,
DaemonSets, ...), as upstream's ``ValidatePodSpec`` does, so a missing image reads
``spec.containers[0].image: Required value`` on a Pod and
``spec.template.spec.containers[0].image: Required value`` on a Deployment.

Fields the defaulter always fills (``imagePullPolicy``, ``terminationMessagePolicy``,
``restartPolicy``, ``dnsPolicy``, protocols, probe thresholds) are checked when present;
when absent they are taken as defaulted rather than reported, so a defaulter gap never
turns into a rejected write.
"""

from __future__ import annotations

import re
from typing import Any

from pyk8s.api import errors
from pyk8s.api.gofmt import GoStringSlice
from pyk8s.api.quantity import QuantityError, canonical, milli_value, parse_quantity
from pyk8s.api.validation import names
from pyk8s.api.validation._util import (
    JSON,
    Errs,
    child,
    d,
    i,
    idx,
    is_int,
    key,
    lst,
    nonneg,
    not_found,
    s,
    smap,
)
from pyk8s.api.validation.meta import (
    validate_label_name,
    validate_label_selector,
    validate_labels,
    validate_qualified_name,
    validate_selector_requirement,
    validate_template_meta,
)

MAX_INT32 = 2**31 - 1
FILE_MODE_MSG = "must be a number between 0 and 0777 (octal), both inclusive"

PROTOCOLS = ["SCTP", "TCP", "UDP"]
PULL_POLICIES = ["Always", "IfNotPresent", "Never"]
RESTART_POLICIES = ["Always", "OnFailure", "Never"]
DNS_POLICIES = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"]
TERMINATION_MESSAGE_POLICIES = ["File", "FallbackToLogsOnError"]
TAINT_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"]
HOST_PATH_TYPES = [
    "",
    "BlockDevice",
    "CharDevice",
    "Directory",
    "DirectoryOrCreate",
    "File",
    "FileOrCreate",
    "Socket",
]

# (JSON key, path shown in "may not specify more than 1 volume type", path for its checks)
# in upstream's check order, typos included
_VOLUME_SOURCES: list[tuple[str, str, str]] = [
    ("emptyDir", "emptyDir", "emptyDir"),
    ("hostPath", "hostPath", "hostPath"),
    ("gitRepo", "gitRepo", "gitRepo"),
    ("gcePersistentDisk", "gcePersistentDisk", "persistentDisk"),
    ("awsElasticBlockStore", "awsElasticBlockStore", "awsElasticBlockStore"),
    ("secret", "secret", "secret"),
    ("nfs", "nfs", "nfs"),
    ("iscsi", "iscsi", "iscsi"),
    ("glusterfs", "glusterfs", "glusterfs"),
    ("flocker", "flocker", "flocker"),
    ("persistentVolumeClaim", "persistentVolumeClaim", "persistentVolumeClaim"),
    ("rbd", "rbd", "rbd"),
    ("cinder", "cinder", "cinder"),
    ("cephfs", "cephFS", "cephfs"),
    ("quobyte", "quobyte", "quobyte"),
    ("downwardAPI", "downwarAPI", "downwardAPI"),
    ("fc", "fc", "fc"),
    ("flexVolume", "flexVolume", "flexVolume"),
    ("configMap", "configMap", "configMap"),
    ("azureFile", "azureFile", "azureFile"),
    ("vsphereVolume", "vsphereVolume", "vsphereVolume"),
    ("photonPersistentDisk", "photonPersistentDisk", "photonPersistentDisk"),
    ("portworxVolume", "portworxVolume", "portworxVolume"),
    ("azureDisk", "azureDisk", "azureDisk"),
    ("storageos", "storageos", "storageos"),
    ("projected", "projected", "projected"),
    ("scaleIO", "scaleIO", "scaleIO"),
    ("csi", "csi", "csi"),
    ("ephemeral", "ephemeral", "ephemeral"),
    ("image", "image", "image"),
]

#: each volume source's place in :data:`_VOLUME_SOURCES`, by its JSON key
_SOURCE_AT: dict[str, int] = {key: n for n, (key, _, _) in enumerate(_VOLUME_SOURCES)}


class PodOptions:
    """What differs between a Pod and a pod template."""

    def __init__(self, is_pod: bool = False, pod_name: str = "") -> None:
        self.is_pod = is_pod
        self.pod_name = pod_name


# ---------------------------------------------------------------- paths and files


def validate_local_descending_path(target: str, path: str) -> Errs:
    errs: Errs = []
    if target.startswith("/"):
        errs.append(errors.invalid(path, target, "must be a relative path"))
    return errs + validate_path_no_backsteps(target, path)


def validate_path_no_backsteps(target: str, path: str) -> Errs:
    if ".." in target.split("/"):
        return [errors.invalid(path, target, "must not contain '..'")]
    return []


def validate_local_non_reserved_path(target: str, path: str) -> Errs:
    errs = validate_local_descending_path(target, path)
    if target.startswith(".."):
        errs.append(errors.invalid(path, target, "must not start with '..'"))
    return errs


def _file_mode(v: Any, path: str) -> Errs:
    if is_int(v) and not 0 <= v <= 0o777:
        return [errors.invalid(path, v, FILE_MODE_MSG)]
    return []


def _key_to_path(kp: JSON, path: str) -> Errs:
    errs: Errs = []
    if not s(kp.get("key")):
        errs.append(errors.required(child(path, "key")))
    p = s(kp.get("path"))
    if not p:
        errs.append(errors.required(child(path, "path")))
    errs += validate_local_non_reserved_path(p, child(path, "path"))
    return errs + _file_mode(kp.get("mode"), child(path, "mode"))


# ---------------------------------------------------------------- volumes


def _volume_source_checks(name: str, src: JSON, path: str, opts: PodOptions) -> Errs:
    errs: Errs = []
    if name == "emptyDir":
        limit = src.get("sizeLimit")
        if limit is not None and _quantity_sign(limit) < 0:
            errs.append(
                errors.forbidden(
                    child(path, "sizeLimit"), "SizeLimit field must be a valid resource quantity"
                )
            )
    elif name == "hostPath":
        p = s(src.get("path"))
        if not p:
            return [errors.required(child(path, "path"))]
        errs += validate_path_no_backsteps(p, child(path, "path"))
        t = src.get("type")
        if isinstance(t, str) and t not in HOST_PATH_TYPES:
            errs.append(errors.not_supported(child(path, "type"), t, HOST_PATH_TYPES))
    elif name == "gitRepo":
        if not s(src.get("repository")):
            errs.append(errors.required(child(path, "repository")))
        errs += validate_local_descending_path(s(src.get("directory")), child(path, "directory"))
    elif name == "secret":
        if not s(src.get("secretName")):
            errs.append(errors.required(child(path, "secretName")))
        errs += _file_mode(src.get("defaultMode"), child(path, "defaultMode"))
        for n, kp in enumerate(lst(src.get("items"))):
            errs += _key_to_path(d(kp), idx(child(path, "items"), n))
    elif name == "configMap":
        if not s(src.get("name")):
            errs.append(errors.required(child(path, "name")))
        errs += _file_mode(src.get("defaultMode"), child(path, "defaultMode"))
        for n, kp in enumerate(lst(src.get("items"))):
            errs += _key_to_path(d(kp), idx(child(path, "items"), n))
    elif name == "persistentVolumeClaim":
        if not s(src.get("claimName")):
            errs.append(errors.required(child(path, "claimName")))
    elif name == "nfs":
        if not s(src.get("server")):
            errs.append(errors.required(child(path, "server")))
        p = s(src.get("path"))
        if not p:
            errs.append(errors.required(child(path, "path")))
        if not p.startswith("/"):
            errs.append(errors.invalid(child(path, "path"), p, "must be an absolute path"))
    elif name == "downwardAPI":
        errs += _file_mode(src.get("defaultMode"), child(path, "defaultMode"))
        for item in lst(src.get("items")):
            errs += _downward_api_file(d(item), path)
    elif name == "projected":
        errs += _projected(src, path)
    elif name == "csi":
        errs += validate_csi_driver_name(s(src.get("driver")), child(path, "driver"))
    elif name == "ephemeral" and not isinstance(src.get("volumeClaimTemplate"), dict):
        errs.append(errors.required(child(path, "volumeClaimTemplate")))
    return errs


def validate_csi_driver_name(driver: str, path: str) -> Errs:
    errs: Errs = []
    if not driver:
        errs.append(errors.required(path))
    if len(driver) > 63:
        errs.append(errors.too_long(path, 63))
    errs += [errors.invalid(path, driver, m) for m in names.is_dns1123_subdomain(driver.lower())]
    return errs


def _downward_api_file(f: JSON, path: str) -> Errs:
    errs: Errs = []
    p = s(f.get("path"))
    if not p:
        errs.append(errors.required(child(path, "path")))
    errs += validate_local_non_reserved_path(p, child(path, "path"))
    if isinstance(f.get("fieldRef"), dict):
        errs += _object_field_selector(
            d(f["fieldRef"]), _VOLUME_FIELD_PATHS, child(path, "fieldRef")
        )
        if isinstance(f.get("resourceFieldRef"), dict):
            errs.append(
                errors.invalid(
                    path,
                    "resource",
                    "fieldRef and resourceFieldRef can not be specified simultaneously",
                )
            )
    elif isinstance(f.get("resourceFieldRef"), dict):
        errs += _resource_field_selector(
            d(f["resourceFieldRef"]), child(path, "resourceFieldRef"), volume=True
        )
    else:
        errs.append(errors.required(path, "one of fieldRef and resourceFieldRef is required"))
    return errs + _file_mode(f.get("mode"), child(path, "mode"))


def _projected(src: JSON, path: str) -> Errs:
    errs: Errs = []
    all_paths: set[str] = set()
    for n, source in enumerate(lst(src.get("sources"))):
        source = d(source)
        sp = idx(child(path, "sources"), n)
        count = 0
        for kind in ("secret", "configMap"):
            if not isinstance(source.get(kind), dict):
                continue
            count += 1
            ref = d(source[kind])
            pp = child(sp, kind)
            if not s(ref.get("name")):
                errs.append(errors.required(child(pp, "name")))
            for j, kp in enumerate(lst(ref.get("items"))):
                kp = d(kp)
                errs += _key_to_path(kp, idx(child(pp, "items"), j))
                cur = s(kp.get("path"))
                if cur:
                    if cur in all_paths:
                        errs.append(
                            errors.invalid(path, s(ref.get("name")), "conflicting duplicate paths")
                        )
                    all_paths.add(cur)
        if isinstance(source.get("downwardAPI"), dict):
            count += 1
            for item in lst(d(source["downwardAPI"]).get("items")):
                errs += _downward_api_file(d(item), child(sp, "downwardAPI"))
        if isinstance(source.get("serviceAccountToken"), dict):
            count += 1
            tok = d(source["serviceAccountToken"])
            tp = child(sp, "serviceAccountToken")
            exp = tok.get("expirationSeconds")
            if is_int(exp) and exp < 10 * 60:
                errs.append(
                    errors.invalid(
                        child(tp, "expirationSeconds"),
                        exp,
                        "may not specify a duration less than 10 minutes",
                    )
                )
            if is_int(exp) and exp > 1 << 32:
                errs.append(
                    errors.invalid(
                        child(tp, "expirationSeconds"),
                        exp,
                        "may not specify a duration larger than 2^32 seconds",
                    )
                )
            if not s(tok.get("path")):
                errs.append(errors.required(child(tp, "path")))
        if isinstance(source.get("clusterTrustBundle"), dict):
            count += 1
        if count > 1:
            errs.append(errors.forbidden(sp, "may not specify more than 1 volume type per source"))
    return errs


def validate_volumes(volumes: Any, path: str, opts: PodOptions) -> tuple[dict[str, JSON], Errs]:
    """Upstream's ``ValidateVolumes``: the usable volumes by name, and the errors."""
    errs: Errs = []
    seen: set[str] = set()
    vols: dict[str, JSON] = {}
    for n, vol in enumerate(lst(volumes)):
        vol = d(vol)
        p = idx(path, n)
        name = s(vol.get("name"))
        el: Errs = []
        count = 0
        # the sources the volume names, in upstream's order (one, as a rule: looked up
        # from the volume's few keys rather than for each of the thirty)
        for at in sorted(_SOURCE_AT[k] for k in vol if k in _SOURCE_AT):
            json_key, forbidden_name, check_name = _VOLUME_SOURCES[at]
            src = vol[json_key]
            if not isinstance(src, dict):
                continue
            if count > 0:
                el.append(
                    errors.forbidden(
                        child(p, forbidden_name), "may not specify more than 1 volume type"
                    )
                )
            else:
                count += 1
                el += _volume_source_checks(json_key, src, child(p, check_name), opts)
        if count == 0:
            el.append(errors.required(p, "must specify a volume type"))
        if not name:
            el.append(errors.required(child(p, "name")))
        else:
            el += [errors.invalid(child(p, "name"), name, m) for m in names.is_dns1123_label(name)]
        if name in seen:
            el.append(errors.duplicate(child(p, "name"), name))
        if not el:
            seen.add(name)
            vols[name] = vol
        else:
            errs += el
    return vols, errs


# ---------------------------------------------------------------- env


_ENV_FIELD_PATHS = [
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
]
_VOLUME_FIELD_PATHS = [
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
]
_DOWNWARD_LABELS = {
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.serviceAccountName",
    "spec.schedulerName",
    "status.phase",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
}
_SUBSCRIPT = re.compile(r"^(metadata\.(?:annotations|labels))\['(.*)'\]$")
_RESOURCE_FIELDS = [
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
]


def _object_field_selector(fs: JSON, expressions: list[str], path: str) -> Errs:
    api_version, field_path = s(fs.get("apiVersion")), s(fs.get("fieldPath"))
    if "apiVersion" in fs and not api_version:
        return [errors.required(child(path, "apiVersion"))]
    if not field_path:
        return [errors.required(child(path, "fieldPath"))]
    m = _SUBSCRIPT.match(field_path)
    if api_version not in ("", "v1"):
        err = f"unsupported pod version: {api_version}"
    elif m is None and field_path not in _DOWNWARD_LABELS:
        err = f"field label not supported: {field_path}"
    else:
        err = ""
    if err:
        return [
            errors.invalid(
                child(path, "fieldPath"), field_path, f"error converting fieldPath: {err}"
            )
        ]
    if m is not None:
        base, sub = m.group(1), m.group(2)
        return validate_qualified_name(sub.lower() if base.endswith("annotations") else sub, path)
    if field_path not in expressions:
        return [errors.not_supported(child(path, "fieldPath"), field_path, sorted(expressions))]
    return []


def _resource_field_selector(fs: JSON, path: str, volume: bool) -> Errs:
    errs: Errs = []
    res = s(fs.get("resource"))
    if volume and not s(fs.get("containerName")):
        errs.append(errors.required(child(path, "containerName")))
    elif not res:
        errs.append(errors.required(child(path, "resource")))
    elif res not in _RESOURCE_FIELDS and not res.startswith(
        ("requests.hugepages-", "limits.hugepages-")
    ):
        errs.append(errors.not_supported(child(path, "resource"), res, _RESOURCE_FIELDS))
    return errs


def _key_selector(sel: JSON, path: str) -> Errs:
    errs = [
        errors.invalid(child(path, "name"), s(sel.get("name")), m)
        for m in names.name_is_dns_subdomain(s(sel.get("name")), False)
    ]
    k = s(sel.get("key"))
    if not k:
        errs.append(errors.required(child(path, "key")))
    else:
        errs += [errors.invalid(child(path, "key"), k, m) for m in names.is_config_map_key(k)]
    return errs


def validate_env(env: Any, path: str) -> Errs:
    errs: Errs = []
    for n, ev in enumerate(lst(env)):
        ev = d(ev)
        p = idx(path, n)
        name = s(ev.get("name"))
        if not name:
            errs.append(errors.required(child(p, "name")))
        else:
            errs += [errors.invalid(child(p, "name"), name, m) for m in names.is_env_var_name(name)]
        vf = ev.get("valueFrom")
        if not isinstance(vf, dict):
            continue
        vp = child(p, "valueFrom")
        count = 0
        if isinstance(vf.get("fieldRef"), dict):
            count += 1
            errs += _object_field_selector(vf["fieldRef"], _ENV_FIELD_PATHS, child(vp, "fieldRef"))
        if isinstance(vf.get("resourceFieldRef"), dict):
            count += 1
            errs += _resource_field_selector(
                vf["resourceFieldRef"], child(vp, "resourceFieldRef"), volume=False
            )
        if isinstance(vf.get("configMapKeyRef"), dict):
            count += 1
            errs += _key_selector(vf["configMapKeyRef"], child(vp, "configMapKeyRef"))
        if isinstance(vf.get("secretKeyRef"), dict):
            count += 1
            errs += _key_selector(vf["secretKeyRef"], child(vp, "secretKeyRef"))
        if count == 0:
            errs.append(
                errors.invalid(
                    vp,
                    "",
                    "must specify one of: `fieldRef`, "
                    "`resourceFieldRef`, `configMapKeyRef` or "
                    "`secretKeyRef`",
                )
            )
        elif s(ev.get("value")):
            errs.append(errors.invalid(vp, "", "may not be specified when `value` is not empty"))
        elif count > 1:
            errs.append(
                errors.invalid(vp, "", "may not have more than one field specified at a time")
            )
    return errs


def validate_env_from(env_from: Any, path: str) -> Errs:
    errs: Errs = []
    for n, ev in enumerate(lst(env_from)):
        ev = d(ev)
        p = idx(path, n)
        prefix = s(ev.get("prefix"))
        if prefix:
            errs += [
                errors.invalid(child(p, "prefix"), prefix, m) for m in names.is_env_var_name(prefix)
            ]
        count = 0
        for kind in ("configMapRef", "secretRef"):
            ref = ev.get(kind)
            if not isinstance(ref, dict):
                continue
            count += 1
            name = s(ref.get("name"))
            if not name:
                errs.append(errors.required(child(child(p, kind), "name")))
            else:
                errs += [
                    errors.invalid(child(child(p, kind), "name"), name, m)
                    for m in names.name_is_dns_subdomain(name, True)
                ]
        if count == 0:
            errs.append(
                errors.invalid(path, "", "must specify one of: `configMapRef` or `secretRef`")
            )
        elif count > 1:
            errs.append(
                errors.invalid(path, "", "may not have more than one field specified at a time")
            )
    return errs


# ---------------------------------------------------------------- ports, mounts


def validate_container_ports(ports: Any, path: str) -> Errs:
    errs: Errs = []
    seen: set[str] = set()
    for n, port in enumerate(lst(ports)):
        port = d(port)
        p = idx(path, n)
        name = s(port.get("name"))
        if name:
            msgs = names.is_valid_port_name(name)
            if msgs:
                errs += [errors.invalid(child(p, "name"), name, m) for m in msgs]
            elif name in seen:
                errs.append(errors.duplicate(child(p, "name"), name))
            else:
                seen.add(name)
        cp = i(port.get("containerPort"))
        if cp == 0:
            errs.append(errors.required(child(p, "containerPort")))
        else:
            errs += [
                errors.invalid(child(p, "containerPort"), cp, m)
                for m in names.is_valid_port_num(cp)
            ]
        hp = i(port.get("hostPort"))
        if hp != 0:
            errs += [
                errors.invalid(child(p, "hostPort"), hp, m) for m in names.is_valid_port_num(hp)
            ]
        errs += _protocol(port, child(p, "protocol"))
    return errs


def _protocol(obj: JSON, path: str) -> Errs:
    if "protocol" not in obj or obj["protocol"] is None:
        return []  # defaulted to TCP
    proto = s(obj.get("protocol"))
    if not proto:
        return [errors.required(path)]
    if proto not in PROTOCOLS:
        return [errors.not_supported(path, proto, PROTOCOLS)]
    return []


def _volume_mounts(mounts: Any, devices: Any, vols: dict[str, JSON], path: str) -> Errs:
    errs: Errs = []
    seen_paths: set[str] = set()
    dev_map = {s(d(x).get("name")): s(d(x).get("devicePath")) for x in lst(devices)}
    for n, m in enumerate(lst(mounts)):
        m = d(m)
        p = idx(path, n)
        name, mount_path = s(m.get("name")), s(m.get("mountPath"))
        if not name:
            errs.append(errors.required(child(p, "name")))
        if name not in vols:
            errs.append(not_found(child(p, "name"), name))
        if not mount_path:
            errs.append(errors.required(child(p, "mountPath")))
        if mount_path in seen_paths:
            errs.append(errors.invalid(child(p, "mountPath"), mount_path, "must be unique"))
        seen_paths.add(mount_path)
        if name in dev_map:
            errs.append(
                errors.invalid(child(p, "name"), name, "must not already exist in volumeDevices")
            )
        if mount_path in dev_map.values():
            errs.append(
                errors.invalid(
                    child(p, "mountPath"),
                    mount_path,
                    "must not already exist as a path in volumeDevices",
                )
            )
        sub = s(m.get("subPath"))
        if sub:
            errs += validate_local_descending_path(sub, child(path, "subPath"))
        expr = s(m.get("subPathExpr"))
        if expr:
            if sub:
                errs.append(
                    errors.invalid(
                        child(p, "subPathExpr"),
                        expr,
                        "subPathExpr and subPath are mutually exclusive",
                    )
                )
            errs += validate_local_descending_path(expr, child(path, "subPathExpr"))
        prop = m.get("mountPropagation")
        modes = ["Bidirectional", "HostToContainer", "None"]
        if isinstance(prop, str) and prop not in modes:
            errs.append(errors.not_supported(child(path, "mountPropagation"), prop, modes))
    return errs


def _volume_devices(devices: Any, mounts: Any, vols: dict[str, JSON], path: str) -> Errs:
    errs: Errs = []
    mount_map = {s(d(x).get("name")): s(d(x).get("mountPath")) for x in lst(mounts)}
    seen_names: set[str] = set()
    seen_paths: set[str] = set()
    for n, dev in enumerate(lst(devices)):
        dev = d(dev)
        p = idx(path, n)
        name, dev_path = s(dev.get("name")), s(dev.get("devicePath"))
        vol = vols.get(name)
        if not name:
            errs.append(errors.required(child(p, "name")))
        if name in seen_names:
            errs.append(errors.invalid(child(p, "name"), name, "must be unique"))
        if vol is not None and not (
            isinstance(vol.get("persistentVolumeClaim"), dict)
            or isinstance(vol.get("ephemeral"), dict)
        ):
            errs.append(
                errors.invalid(
                    child(p, "name"),
                    name,
                    "can only use volume source type "
                    "of PersistentVolumeClaim or Ephemeral for block mode",
                )
            )
        if vol is None:
            errs.append(not_found(child(p, "name"), name))
        if not dev_path:
            errs.append(errors.required(child(p, "devicePath")))
        if dev_path in seen_paths:
            errs.append(errors.invalid(child(p, "devicePath"), dev_path, "must be unique"))
        if dev_path and ".." in dev_path.split("/"):
            errs.append(
                errors.invalid(child(p, "devicePath"), dev_path, "can not contain backsteps ('..')")
            )
        else:
            seen_paths.add(dev_path)
        if name in mount_map:
            errs.append(
                errors.invalid(child(p, "name"), name, "must not already exist in volumeMounts")
            )
        if dev_path in mount_map.values():
            errs.append(
                errors.invalid(
                    child(p, "devicePath"),
                    dev_path,
                    "must not already exist as a path in volumeMounts",
                )
            )
        if name:
            seen_names.add(name)
    return errs


# ---------------------------------------------------------------- resources


_STANDARD_RESOURCES = {
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "persistentvolumeclaims",
    "configmaps",
    "requests.storage",
    "storage",
    "services.nodeports",
    "services.loadbalancers",
}
_STANDARD_CONTAINER_RESOURCES = {"cpu", "memory", "ephemeral-storage"}
_INTEGER_RESOURCES = {
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "services.nodeports",
    "services.loadbalancers",
    "storage",
    "requests.storage",
}


def _is_hugepages(name: str) -> bool:
    return name.startswith("hugepages-")


def is_native_resource(name: str) -> bool:
    return "/" not in name or "kubernetes.io/" in name


def is_extended_resource(name: str) -> bool:
    if is_native_resource(name) or name.startswith("requests."):
        return False
    return not names.is_qualified_name("requests." + name)


def _overcommit_allowed(name: str) -> bool:
    return is_native_resource(name) and not _is_hugepages(name)


def _is_standard_resource(name: str) -> bool:
    return (
        name in _STANDARD_RESOURCES or _is_hugepages(name) or name.startswith("requests.hugepages-")
    )


def validate_resource_name(name: str, path: str) -> Errs:
    errs = [errors.invalid(path, name, m) for m in names.is_qualified_name(name)]
    if errs:
        return errs
    if "/" not in name and not _is_standard_resource(name):
        return [errors.invalid(path, name, "must be a standard resource type or fully qualified")]
    return []


def validate_container_resource_name(name: str, path: str) -> Errs:
    errs = validate_resource_name(name, path)
    if "/" not in name:
        if name not in _STANDARD_CONTAINER_RESOURCES and not _is_hugepages(name):
            errs.append(errors.invalid(path, name, "must be a standard resource for containers"))
    elif not is_native_resource(name) and not is_extended_resource(name):
        errs.append(errors.invalid(path, name, "doesn't follow extended resource name standard"))
    return errs


def _quantity_sign(v: Any) -> int:
    try:
        q = parse_quantity(v)
    except (QuantityError, TypeError):
        return 0
    return (q > 0) - (q < 0)


def _canon(v: Any) -> str:
    try:
        return canonical(v)
    except (QuantityError, TypeError):
        return str(v)


def validate_quantity_value(name: str, value: Any, path: str) -> Errs:
    """Upstream's ``ValidateResourceQuantityValue``: not negative; whole where it must be."""
    try:
        q = parse_quantity(value)
    except (QuantityError, TypeError):
        return []  # a decode error, reported before validation
    if q < 0:
        return [errors.invalid(path, _canon(value), "must be greater than or equal to 0")]
    if (name in _INTEGER_RESOURCES or is_extended_resource(name)) and milli_value(q) % 1000:
        return [errors.invalid(path, _canon(value), "must be an integer")]
    return []


def validate_resource_requirements(res: Any, path: str) -> Errs:
    res = d(res)
    errs: Errs = []
    lim_path, req_path = child(path, "limits"), child(path, "requests")
    limits, requests = d(res.get("limits")), d(res.get("requests"))
    has_cpu_mem = has_huge = False
    for name, q in limits.items():
        p = key(lim_path, name)
        errs += validate_container_resource_name(name, p)
        errs += validate_quantity_value(name, q, p)
        if _is_hugepages(name):
            has_huge = True
            errs += _hugepages_value(name, q, p)
        if name in ("cpu", "memory"):
            has_cpu_mem = True
    for name, q in requests.items():
        p = key(req_path, name)
        errs += validate_container_resource_name(name, p)
        errs += validate_quantity_value(name, q, p)
        if name in limits:
            try:
                rq, lq = parse_quantity(q), parse_quantity(limits[name])
                comparable = True
            except (QuantityError, TypeError):
                comparable = False
            if comparable:
                if rq != lq and not _overcommit_allowed(name):
                    errs.append(
                        errors.invalid(
                            req_path,
                            _canon(q),
                            f"must be equal to {name} limit of {_canon(limits[name])}",
                        )
                    )
                elif rq > lq:
                    errs.append(
                        errors.invalid(
                            req_path,
                            _canon(q),
                            f"must be less than or equal to {name} limit of {_canon(limits[name])}",
                        )
                    )
        elif not _overcommit_allowed(name):
            errs.append(
                errors.required(lim_path, "Limit must be set for non overcommitable resources")
            )
        if _is_hugepages(name):
            has_huge = True
            errs += _hugepages_value(name, q, p)
        if name in ("cpu", "memory"):
            has_cpu_mem = True
    if has_huge and not has_cpu_mem:
        errs.append(errors.forbidden(path, "HugePages require cpu or memory"))
    return errs


def _hugepages_value(name: str, q: Any, path: str) -> Errs:
    try:
        size, amount = parse_quantity(name[len("hugepages-") :]), parse_quantity(q)
    except (QuantityError, TypeError):
        return []
    if size > 0 and amount % size != 0:
        return [
            errors.invalid(
                path, _canon(q), f"{_canon(q)} is not positive integer multiple of {name}"
            )
        ]
    return []


# ---------------------------------------------------------------- probes, handlers


def validate_port_num_or_name(port: Any, path: str) -> Errs:
    if isinstance(port, str):
        return [errors.invalid(path, port, m) for m in names.is_valid_port_name(port)]
    n = i(port)
    return [errors.invalid(path, n, m) for m in names.is_valid_port_num(n)]


def _handler(h: JSON, grace: Any, path: str, allow_sleep: bool, allow_grpc: bool) -> Errs:
    errs: Errs = []
    count = 0
    kinds = (
        ["exec", "httpGet", "tcpSocket"]
        + (["grpc"] if allow_grpc else [])
        + (["sleep"] if allow_sleep else [])
    )
    for kind in kinds:
        v = h.get(kind)
        if not isinstance(v, dict):
            continue
        if count > 0:
            errs.append(
                errors.forbidden(child(path, kind), "may not specify more than 1 handler type")
            )
            continue
        count += 1
        p = child(path, kind)
        if kind == "exec":
            if not lst(v.get("command")):
                errs.append(errors.required(child(p, "command")))
        elif kind == "httpGet":
            if "path" in v and not s(v.get("path")):
                errs.append(errors.required(child(p, "path")))
            errs += validate_port_num_or_name(v.get("port"), child(p, "port"))
            scheme = v.get("scheme")
            if isinstance(scheme, str) and scheme not in ("HTTP", "HTTPS"):
                errs.append(errors.not_supported(child(p, "scheme"), scheme, ["HTTP", "HTTPS"]))
            for hdr in lst(v.get("httpHeaders")):
                hn = s(d(hdr).get("name"))
                errs += [
                    errors.invalid(child(p, "httpHeaders"), hn, m)
                    for m in names.is_http_header_name(hn)
                ]
        elif kind == "tcpSocket":
            errs += validate_port_num_or_name(v.get("port"), child(p, "port"))
        elif kind == "grpc":
            errs += validate_port_num_or_name(i(v.get("port")), child(p, "port"))
        elif kind == "sleep":
            secs = i(v.get("seconds"))
            if is_int(grace) and (secs <= 0 or secs > grace):
                errs.append(
                    errors.invalid(
                        p,
                        secs,
                        "must be greater than 0 and less than "
                        f"terminationGracePeriodSeconds ({grace}). Enable "
                        "AllowPodLifecycleSleepActionZeroValue feature gate "
                        "for zero sleep.",
                    )
                )
    if count == 0:
        errs.append(errors.required(path, "must specify a handler type"))
    return errs


def _probe(probe: Any, grace: Any, path: str, kind: str) -> Errs:
    if not isinstance(probe, dict):
        return []
    errs = _handler(probe, grace, path, allow_sleep=False, allow_grpc=True)
    for f in (
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ):
        errs += nonneg(probe.get(f), child(path, f))
    tgp = probe.get("terminationGracePeriodSeconds")
    if is_int(tgp) and tgp <= 0:
        errs.append(
            errors.invalid(
                child(path, "terminationGracePeriodSeconds"), tgp, "must be greater than 0"
            )
        )
    st = probe.get("successThreshold")
    if kind in ("liveness", "startup") and is_int(st) and st != 1:
        errs.append(errors.invalid(child(path, "successThreshold"), st, "must be 1"))
    if kind == "readiness" and tgp is not None:
        errs.append(
            errors.invalid(
                child(path, "terminationGracePeriodSeconds"),
                tgp,
                "must not be set for readinessProbes",
            )
        )
    return errs


def _lifecycle(lc: Any, grace: Any, path: str) -> Errs:
    errs: Errs = []
    for hook in ("postStart", "preStop"):
        h = d(lc).get(hook)
        if isinstance(h, dict):
            errs += _handler(h, grace, child(path, hook), allow_sleep=True, allow_grpc=False)
    return errs


def _probes_and_lifecycle(c: JSON, grace: Any, path: str) -> Errs:
    errs: Errs = []
    if isinstance(c.get("lifecycle"), dict):
        errs += _lifecycle(c["lifecycle"], grace, child(path, "lifecycle"))
    errs += _probe(c.get("livenessProbe"), grace, child(path, "livenessProbe"), "liveness")
    errs += _probe(c.get("readinessProbe"), grace, child(path, "readinessProbe"), "readiness")
    errs += _probe(c.get("startupProbe"), grace, child(path, "startupProbe"), "startup")
    return errs


# ---------------------------------------------------------------- containers


def _enum(obj: JSON, field: str, values: list[str], path: str) -> Errs:
    """A defaulted enum: absent is fine, "" is Required, anything else must be listed."""
    if field not in obj or obj[field] is None:
        return []
    v = s(obj.get(field))
    if not v:
        return [errors.required(path)]
    if v not in values:
        return [errors.not_supported(path, v, values)]
    return []


def _security_context(sc: Any, path: str) -> Errs:
    if not isinstance(sc, dict):
        return []
    errs: Errs = []
    for f in ("runAsUser", "runAsGroup"):
        v = sc.get(f)
        if is_int(v):
            errs += [errors.invalid(child(path, f), v, m) for m in names.is_valid_user_id(v)]
    if sc.get("allowPrivilegeEscalation") is False and sc.get("privileged") is True:
        errs.append(
            errors.invalid(
                path, sc, "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"
            )
        )
    pm = sc.get("procMount")
    if isinstance(pm, str) and pm not in ("Default", "Unmasked"):
        errs.append(errors.not_supported(child(path, "procMount"), pm, ["Default", "Unmasked"]))
    errs += _seccomp(sc.get("seccompProfile"), child(path, "seccompProfile"))
    return errs


def _seccomp(sp: Any, path: str) -> Errs:
    if not isinstance(sp, dict):
        return []
    t = s(sp.get("type"))
    kinds = ["Localhost", "RuntimeDefault", "Unconfined"]
    errs: Errs = []
    if not t:
        errs.append(errors.required(child(path, "type")))
    elif t not in kinds:
        errs.append(errors.not_supported(child(path, "type"), t, kinds))
    if t == "Localhost":
        lp = sp.get("localhostProfile")
        if not isinstance(lp, str):
            errs.append(
                errors.required(
                    child(path, "localhostProfile"), "must be set when seccomp type is Localhost"
                )
            )
        else:
            errs += validate_local_descending_path(lp, child(path, "localhostProfile"))
    elif sp.get("localhostProfile") is not None:
        errs.append(
            errors.invalid(
                child(path, "localhostProfile"),
                sp,
                "can only be set when seccomp type is Localhost",
            )
        )
    return errs


def _container_common(c: JSON, vols: dict[str, JSON], path: str) -> Errs:
    errs: Errs = []
    name = s(c.get("name"))
    if not name:
        errs.append(errors.required(child(path, "name")))
    else:
        errs += [errors.invalid(child(path, "name"), name, m) for m in names.is_dns1123_label(name)]
    if not s(c.get("image")):
        errs.append(errors.required(child(path, "image")))
    errs += _enum(
        c,
        "terminationMessagePolicy",
        TERMINATION_MESSAGE_POLICIES,
        child(path, "terminationMessagePolicy"),
    )
    errs += validate_container_ports(c.get("ports"), child(path, "ports"))
    errs += validate_env(c.get("env"), child(path, "env"))
    errs += validate_env_from(c.get("envFrom"), child(path, "envFrom"))
    errs += _volume_mounts(
        c.get("volumeMounts"), c.get("volumeDevices"), vols, child(path, "volumeMounts")
    )
    errs += _volume_devices(
        c.get("volumeDevices"), c.get("volumeMounts"), vols, child(path, "volumeDevices")
    )
    errs += _enum(c, "imagePullPolicy", PULL_POLICIES, child(path, "imagePullPolicy"))
    errs += validate_resource_requirements(c.get("resources"), child(path, "resources"))
    errs += _security_context(c.get("securityContext"), child(path, "securityContext"))
    return errs


def _host_port_conflicts(containers: list[Any], path: str, seen: set[str]) -> Errs:
    errs: Errs = []
    for ci, c in enumerate(containers):
        for pi, port in enumerate(lst(d(c).get("ports"))):
            port = d(port)
            hp = i(port.get("hostPort"))
            if hp == 0:
                continue
            k = f"{s(port.get('protocol')) or 'TCP'}/{s(port.get('hostIP'))}/{hp}"
            if k in seen:
                errs.append(
                    errors.duplicate(child(idx(child(idx(path, ci), "ports"), pi), "hostPort"), k)
                )
            else:
                seen.add(k)
    return errs


def validate_containers(containers: Any, vols: dict[str, JSON], grace: Any, path: str) -> Errs:
    items = lst(containers)
    if not items:
        return [errors.required(path)]
    errs: Errs = []
    seen: set[str] = set()
    for n, c in enumerate(items):
        c = d(c)
        p = idx(path, n)
        errs += _container_common(c, vols, p)
        name = s(c.get("name"))
        if name in seen:
            errs.append(errors.duplicate(child(p, "name"), name))
        else:
            seen.add(name)
        errs += _probes_and_lifecycle(c, grace, p)
        if c.get("restartPolicy") is not None:
            errs.append(
                errors.forbidden(
                    child(p, "restartPolicy"), "may not be set for non-init containers"
                )
            )
    return errs + _host_port_conflicts(items, path, set())


def validate_init_containers(
    init: Any, regular: Any, vols: dict[str, JSON], grace: Any, path: str
) -> Errs:
    errs: Errs = []
    seen = {s(d(c).get("name")) for c in lst(regular)}
    for n, c in enumerate(lst(init)):
        c = d(c)
        p = idx(path, n)
        errs += _container_common(c, vols, p)
        rp = c.get("restartPolicy")
        restartable = False
        if rp is not None:
            if rp != "Always":
                errs.append(errors.not_supported(child(p, "restartPolicy"), rp, ["Always"]))
            restartable = rp == "Always"
        name = s(c.get("name"))
        if name in seen:
            errs.append(errors.duplicate(child(p, "name"), name))
        elif name:
            seen.add(name)
        errs += _host_port_conflicts([c], path, set())
        if restartable:
            errs += _probes_and_lifecycle(c, grace, p)
        else:
            for f in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe"):
                if c.get(f) is not None:
                    errs.append(
                        errors.forbidden(
                            child(p, f),
                            "may not be set for init containers without restartPolicy=Always",
                        )
                    )
        if lst(c.get("resizePolicy")) and not restartable:
            errs.append(
                errors.invalid(
                    child(p, "resizePolicy"),
                    c["resizePolicy"],
                    "must not be set for init containers",
                )
            )
    return errs


def _ephemeral_containers(eph: Any, spec: JSON, vols: dict[str, JSON], path: str) -> Errs:
    errs: Errs = []
    others = {
        s(d(c).get("name")) for c in lst(spec.get("containers")) + lst(spec.get("initContainers"))
    }
    all_names = set(others)
    for n, c in enumerate(lst(eph)):
        c = d(c)
        p = idx(path, n)
        errs += _container_common(c, vols, p)
        name = s(c.get("name"))
        if name in all_names:
            errs.append(errors.duplicate(child(p, "name"), name))
        else:
            all_names.add(name)
        target = s(c.get("targetContainerName"))
        if target and target not in others:
            errs.append(not_found(child(p, "targetContainerName"), target))
        for f in (
            "ports",
            "resources",
            "livenessProbe",
            "readinessProbe",
            "startupProbe",
            "lifecycle",
        ):
            if c.get(f):
                errs.append(
                    errors.forbidden(child(p, f), "cannot be set for an Ephemeral Container")
                )
    return errs


# ---------------------------------------------------------------- scheduling


def validate_tolerations(tolerations: Any, path: str) -> Errs:
    errs: Errs = []
    for n, t in enumerate(lst(tolerations)):
        t = d(t)
        p = idx(path, n)
        k, op, v, effect = (
            s(t.get("key")),
            s(t.get("operator")),
            s(t.get("value")),
            s(t.get("effect")),
        )
        if k:
            errs += validate_label_name(k, child(p, "key"))
        if not k and op != "Exists":
            errs.append(
                errors.invalid(
                    child(p, "operator"),
                    op,
                    "operator must be Exists when "
                    '`key` is empty, which means "match all values and all '
                    'keys"',
                )
            )
        if t.get("tolerationSeconds") is not None and effect != "NoExecute":
            errs.append(
                errors.invalid(
                    child(p, "effect"),
                    effect,
                    "effect must be 'NoExecute' when `tolerationSeconds` is set",
                )
            )
        if op in ("Equal", ""):
            msgs = names.is_label_value(v)
            if msgs:
                errs.append(errors.invalid(child(p, "operator"), v, ";".join(msgs)))
        elif op == "Exists":
            if v:
                errs.append(
                    errors.invalid(
                        child(p, "operator"), v, "value must be empty when `operator` is 'Exists'"
                    )
                )
        else:
            errs.append(errors.not_supported(child(p, "operator"), op, ["Equal", "Exists"]))
        if effect and effect not in TAINT_EFFECTS:
            errs.append(errors.not_supported(child(p, "effect"), effect, TAINT_EFFECTS))
    return errs


def validate_taints(taints: Any, path: str) -> Errs:
    errs: Errs = []
    unique: dict[str, set[str]] = {}
    for n, t in enumerate(lst(taints)):
        t = d(t)
        p = idx(path, n)
        k, v, effect = s(t.get("key")), s(t.get("value")), s(t.get("effect"))
        errs += validate_label_name(k, child(p, "key"))
        msgs = names.is_label_value(v)
        if msgs:
            errs.append(errors.invalid(child(p, "value"), v, ";".join(msgs)))
        if not effect:
            errs.append(errors.required(child(p, "effect")))
        elif effect not in TAINT_EFFECTS:
            errs.append(errors.not_supported(child(p, "effect"), effect, TAINT_EFFECTS))
        if k in unique.get(effect, set()):
            err = errors.duplicate(p, t)
            errs.append(
                errors.FieldError(
                    err.type, err.field, err.value, "taints must be unique by key and effect pair"
                )
            )
            continue
        unique.setdefault(effect, set()).add(k)
    return errs


def _node_selector_term(term: JSON, path: str, check_values: bool) -> Errs:
    errs: Errs = []
    for n, rq in enumerate(lst(term.get("matchExpressions"))):
        errs += validate_selector_requirement(
            d(rq), idx(child(path, "matchExpressions"), n), check_values, gt_lt=True
        )
    for n, rq in enumerate(lst(term.get("matchFields"))):
        rq = d(rq)
        p = idx(child(path, "matchFields"), n)
        op = s(rq.get("operator"))
        values = [s(v) for v in lst(rq.get("values"))]
        if op in ("In", "NotIn"):
            if len(values) != 1:
                errs.append(
                    errors.required(
                        child(p, "values"),
                        "must be only one value when "
                        "`operator` is 'In' or 'NotIn' for node field "
                        "selector",
                    )
                )
        else:
            errs.append(errors.invalid(child(p, "operator"), op, "not a valid selector operator"))
        if s(rq.get("key")) != "metadata.name":
            errs.append(
                errors.invalid(child(p, "key"), s(rq.get("key")), "not a valid field selector key")
            )
        else:
            for j, v in enumerate(values):
                errs += [
                    errors.invalid(idx(child(p, "values"), j), v, m)
                    for m in names.name_is_dns_subdomain(v, False)
                ]
    return errs


def _pod_affinity_term(term: JSON, path: str) -> Errs:
    errs = validate_label_selector(term.get("labelSelector"), child(path, "labelSelector"))
    errs += validate_label_selector(term.get("namespaceSelector"), child(path, "namespaceSelector"))
    for ns in lst(term.get("namespaces")):
        errs += [
            errors.invalid(child(path, "namespace"), s(ns), m)
            for m in names.validate_namespace_name(s(ns), False)
        ]
    tk = s(term.get("topologyKey"))
    if not tk:
        errs.append(errors.required(child(path, "topologyKey"), "can not be empty"))
    return errs + validate_label_name(tk, child(path, "topologyKey"))


def _weight(v: Any, path: str) -> Errs:
    w = i(v)
    if w <= 0 or w > 100:
        return [errors.invalid(path, w, "must be in the range 1-100")]
    return []


def validate_affinity(aff: Any, path: str) -> Errs:
    if not isinstance(aff, dict):
        return []
    errs: Errs = []
    na = aff.get("nodeAffinity")
    if isinstance(na, dict):
        np = child(path, "nodeAffinity")
        req = na.get("requiredDuringSchedulingIgnoredDuringExecution")
        if isinstance(req, dict):
            rp = child(
                child(np, "requiredDuringSchedulingIgnoredDuringExecution"), "nodeSelectorTerms"
            )
            terms = lst(req.get("nodeSelectorTerms"))
            if not terms:
                errs.append(errors.required(rp, "must have at least one node selector term"))
            for n, term in enumerate(terms):
                errs += _node_selector_term(d(term), idx(rp, n), True)
        for n, pref in enumerate(lst(na.get("preferredDuringSchedulingIgnoredDuringExecution"))):
            pref = d(pref)
            pp = idx(child(np, "preferredDuringSchedulingIgnoredDuringExecution"), n)
            errs += _weight(pref.get("weight"), child(pp, "weight"))
            errs += _node_selector_term(d(pref.get("preference")), child(pp, "preference"), False)
    for kind in ("podAffinity", "podAntiAffinity"):
        pa = aff.get(kind)
        if not isinstance(pa, dict):
            continue
        kp = child(path, kind)
        for n, term in enumerate(lst(pa.get("requiredDuringSchedulingIgnoredDuringExecution"))):
            errs += _pod_affinity_term(
                d(term), idx(child(kp, "requiredDuringSchedulingIgnoredDuringExecution"), n)
            )
        for n, wt in enumerate(lst(pa.get("preferredDuringSchedulingIgnoredDuringExecution"))):
            wt = d(wt)
            wp = idx(child(kp, "preferredDuringSchedulingIgnoredDuringExecution"), n)
            errs += _weight(wt.get("weight"), child(wp, "weight"))
            errs += _pod_affinity_term(d(wt.get("podAffinityTerm")), child(wp, "podAffinityTerm"))
    return errs


def _topology_spread(constraints: Any, path: str) -> Errs:
    errs: Errs = []
    seen: set[tuple[str, str]] = set()
    for n, c in enumerate(lst(constraints)):
        c = d(c)
        p = idx(path, n)
        skew = i(c.get("maxSkew"))
        if skew <= 0:
            errs.append(errors.invalid(child(p, "maxSkew"), skew, "must be greater than zero"))
        tk = s(c.get("topologyKey"))
        if not tk:
            errs.append(errors.required(child(p, "topologyKey"), "can not be empty"))
        else:
            errs += validate_label_name(tk, child(p, "topologyKey"))
        wu = s(c.get("whenUnsatisfiable"))
        if wu not in ("DoNotSchedule", "ScheduleAnyway"):
            errs.append(
                errors.not_supported(
                    child(p, "whenUnsatisfiable"), wu, ["DoNotSchedule", "ScheduleAnyway"]
                )
            )
        pair = (tk, wu)
        if pair in seen:
            errs.append(errors.duplicate(p, f"{{{tk}, {wu}}}"))
        seen.add(pair)
        md = c.get("minDomains")
        if is_int(md) and md <= 0:
            errs.append(errors.invalid(child(p, "minDomains"), md, "must be greater than 0"))
        errs += validate_label_selector(c.get("labelSelector"), child(p, "labelSelector"))
    return errs


def _dns_config(spec: JSON, path: str) -> Errs:
    errs: Errs = []
    cfg = spec.get("dnsConfig")
    if spec.get("dnsPolicy") == "None":
        if not isinstance(cfg, dict):
            return [errors.required(path, "must provide `dnsConfig` when `dnsPolicy` is None")]
        if not lst(cfg.get("nameservers")):
            return [
                errors.required(
                    child(path, "nameservers"),
                    "must provide at least one DNS nameserver when `dnsPolicy` is None",
                )
            ]
    if not isinstance(cfg, dict):
        return errs
    ns = [s(x) for x in lst(cfg.get("nameservers"))]
    if len(ns) > 3:
        errs.append(
            errors.invalid(child(path, "nameservers"), ns, "must not have more than 3 nameservers")
        )
    for n, x in enumerate(ns):
        if not names.is_valid_ip(x):
            errs.append(errors.invalid(idx(child(path, "nameservers"), n), x, names.IP_MSG))
    searches = GoStringSlice(s(x) for x in lst(cfg.get("searches")))
    if len(searches) > 32:
        errs.append(
            errors.invalid(
                child(path, "searches"), searches, "must not have more than 32 search paths"
            )
        )
    if len(" ".join(searches)) > 2048:
        errs.append(
            errors.invalid(
                child(path, "searches"),
                searches,
                "must not have more than 2048 characters (including spaces) in the search list",
            )
        )
    for n, x in enumerate(searches):
        if x == ".":
            continue
        x = x.removesuffix(".")
        errs += [
            errors.invalid(idx(child(path, "searches"), n), x, m)
            for m in names.is_dns1123_subdomain(x)
        ]
    for n, o in enumerate(lst(cfg.get("options"))):
        if not s(d(o).get("name")):
            errs.append(errors.required(idx(child(path, "options"), n), "must not be empty"))
    return errs


def _pod_security_context(sc: Any, path: str) -> Errs:
    if not isinstance(sc, dict):
        return []
    errs: Errs = []
    for f in ("runAsUser", "runAsGroup", "fsGroup"):
        v = sc.get(f)
        if is_int(v):
            errs += [errors.invalid(child(path, f), v, m) for m in names.is_valid_user_id(v)]
    for n, g in enumerate(lst(sc.get("supplementalGroups"))):
        if is_int(g):
            errs += [
                errors.invalid(idx(child(path, "supplementalGroups"), n), g, m)
                for m in names.is_valid_user_id(g)
            ]
    pol = sc.get("fsGroupChangePolicy")
    if isinstance(pol, str) and pol not in ("Always", "OnRootMismatch"):
        errs.append(
            errors.not_supported(
                child(path, "fsGroupChangePolicy"), pol, ["Always", "OnRootMismatch"]
            )
        )
    errs += _seccomp(sc.get("seccompProfile"), child(path, "seccompProfile"))
    return errs


# ---------------------------------------------------------------- pod spec


def validate_pod_spec(spec: Any, path: str, opts: PodOptions) -> Errs:
    """Upstream's ``ValidatePodSpec``, in its order."""
    spec = d(spec)
    errs: Errs = []
    if "terminationGracePeriodSeconds" in spec and spec["terminationGracePeriodSeconds"] is None:
        errs.append(errors.required(child(path, "terminationGracePeriodSeconds")))
    grace = spec.get("terminationGracePeriodSeconds")
    vols, verrs = validate_volumes(spec.get("volumes"), child(path, "volumes"), opts)
    errs += verrs
    errs += validate_containers(spec.get("containers"), vols, grace, child(path, "containers"))
    errs += validate_init_containers(
        spec.get("initContainers"),
        spec.get("containers"),
        vols,
        grace,
        child(path, "initContainers"),
    )
    errs += _ephemeral_containers(
        spec.get("ephemeralContainers"), spec, vols, child(path, "ephemeralContainers")
    )
    if spec.get("hostNetwork") is True:
        for ci, c in enumerate(lst(spec.get("containers"))):
            for pi, port in enumerate(lst(d(c).get("ports"))):
                hp, cp = i(d(port).get("hostPort")), i(d(port).get("containerPort"))
                if (opts.is_pod or hp != 0) and hp != cp:
                    p = child(
                        idx(child(idx(child(path, "containers"), ci), "ports"), pi), "hostPort"
                    )
                    errs.append(
                        errors.invalid(
                            p, hp, "must match `containerPort` when `hostNetwork` is true"
                        )
                    )
    errs += _enum(spec, "restartPolicy", RESTART_POLICIES, child(path, "restartPolicy"))
    errs += _enum(spec, "dnsPolicy", DNS_POLICIES, child(path, "dnsPolicy"))
    errs += validate_labels(spec.get("nodeSelector"), child(path, "nodeSelector"))
    errs += _pod_security_context(spec.get("securityContext"), child(path, "securityContext"))
    for n, ref in enumerate(lst(spec.get("imagePullSecrets"))):
        if isinstance(ref, dict) and set(ref) - {"name"}:
            errs.append(
                errors.invalid(idx(child(path, "imagePullSecrets"), n), ref, "only name may be set")
            )
    errs += validate_affinity(spec.get("affinity"), child(path, "affinity"))
    errs += _dns_config(spec, child(path, "dnsConfig"))
    for n, g in enumerate(lst(spec.get("readinessGates"))):
        errs += validate_qualified_name(
            s(d(g).get("conditionType")),
            child(idx(child(path, "readinessGates"), n), "conditionType"),
        )
    seen_gates: set[str] = set()
    for n, g in enumerate(lst(spec.get("schedulingGates"))):
        gname = s(d(g).get("name"))
        gp = idx(child(path, "schedulingGates"), n)
        errs += validate_qualified_name(gname, gp)
        if gname in seen_gates:
            errs.append(errors.duplicate(gp, gname))
        seen_gates.add(gname)
    errs += _topology_spread(
        spec.get("topologySpreadConstraints"), child(path, "topologySpreadConstraints")
    )
    for f in ("serviceAccountName", "nodeName"):
        v = s(spec.get(f))
        if v:
            errs += [
                errors.invalid(child(path, f), v, m) for m in names.name_is_dns_subdomain(v, False)
            ]
    ads = spec.get("activeDeadlineSeconds")
    if is_int(ads) and not 1 <= ads <= MAX_INT32:
        errs.append(
            errors.invalid(
                child(path, "activeDeadlineSeconds"), ads, names.inclusive_range_error(1, MAX_INT32)
            )
        )
    for f in ("hostname", "subdomain"):
        v = s(spec.get(f))
        if v:
            errs += [errors.invalid(child(path, f), v, m) for m in names.is_dns1123_label(v)]
    errs += validate_tolerations(spec.get("tolerations"), child(path, "tolerations"))
    for n, ha in enumerate(lst(spec.get("hostAliases"))):
        ha = d(ha)
        hap = idx(child(path, "hostAliases"), n)
        ip = s(ha.get("ip"))
        if not names.is_valid_ip(ip):
            errs.append(errors.invalid(child(hap, "ip"), ip, names.IP_MSG))
        for j, h in enumerate(lst(ha.get("hostnames"))):
            errs += [
                errors.invalid(idx(child(hap, "hostnames"), j), s(h), m)
                for m in names.is_dns1123_subdomain(s(h))
            ]
    pcn = s(spec.get("priorityClassName"))
    if pcn:
        errs += [
            errors.invalid(child(path, "priorityClassName"), pcn, m)
            for m in names.name_is_dns_subdomain(pcn, False)
        ]
    rcn = spec.get("runtimeClassName")
    if isinstance(rcn, str):
        errs += [
            errors.invalid(child(path, "runtimeClassName"), rcn, m)
            for m in names.name_is_dns_subdomain(rcn, False)
        ]
    pp = spec.get("preemptionPolicy")
    if isinstance(pp, str):
        if not pp:
            errs.append(errors.required(child(path, "preemptionPolicy")))
        elif pp not in ("PreemptLowerPriority", "Never"):
            errs.append(
                errors.not_supported(
                    child(path, "preemptionPolicy"), pp, ["PreemptLowerPriority", "Never"]
                )
            )
    if isinstance(spec.get("overhead"), dict):
        errs += validate_resource_requirements(
            {"limits": spec["overhead"]}, child(path, "overhead")
        )
    os_ = spec.get("os")
    if isinstance(os_, dict):
        osn = s(os_.get("name"))
        if not osn:
            errs.append(errors.required(child(child(path, "os"), "name")))
        elif osn not in ("linux", "windows"):
            errs.append(
                errors.not_supported(child(child(path, "os"), "name"), osn, ["linux", "windows"])
            )
    return errs


def validate_pod_template_spec(tmpl: Any, path: str, opts: PodOptions | None = None) -> Errs:
    """Upstream's ``ValidatePodTemplateSpec``: template labels/annotations, then the spec."""
    tmpl = d(tmpl)
    errs = validate_template_meta(tmpl.get("metadata"), path)
    errs += validate_pod_spec(tmpl.get("spec"), child(path, "spec"), opts or PodOptions())
    if lst(d(tmpl.get("spec")).get("ephemeralContainers")):
        errs.append(
            errors.forbidden(
                child(child(path, "spec"), "ephemeralContainers"),
                "ephemeral containers not allowed in pod template",
            )
        )
    return errs


def validate_controller_template_spec(tspec: Any, path: str, kind: str) -> Errs:
    """What a controller (``kind``) asks of its template's pod spec at ``path``.

    ``restartPolicy: Always`` only, and no ``activeDeadlineSeconds``, as upstream's
    ``ValidatePodTemplateSpecFor<Kind>`` check for ReplicaSets, StatefulSets, DaemonSets and
    ReplicationControllers.
    """
    tspec = d(tspec)
    errs: Errs = []
    rp = tspec.get("restartPolicy")
    if isinstance(rp, str) and rp != "Always":
        errs.append(errors.not_supported(child(path, "restartPolicy"), rp, ["Always"]))
    if tspec.get("activeDeadlineSeconds") is not None:
        errs.append(
            errors.forbidden(
                child(path, "activeDeadlineSeconds"),
                f"activeDeadlineSeconds in {kind} is not Supported",
            )
        )
    return errs


def template_labels(tmpl: Any) -> dict[str, str]:
    return smap(d(d(tmpl).get("metadata")).get("labels"))
