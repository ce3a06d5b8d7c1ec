"""Defaulting: the fields the API server fills in on every object it accepts.

Why this exists: clients rely on the server to complete what they send. ``kubectl create
deployment`` sends no strategy, no ``imagePullPolicy``, no ``dnsPolicy``; controllers,
``kubectl get -o yaml``, ``kubectl apply``'s three-way diff and the official Python client
all expect to read them back filled exactly as a Kubernetes v1.32 API server fills them. A
missing or different default shows up as spurious diffs, rollouts that never settle, or a
controller acting on ``None``. So this module reproduces upstream's
``pkg/apis/*/v1/defaults.go`` plus the generated ``zz_generated.defaults.go`` (which decides
*where* each defaulter runs, e.g. that pod-template specs get ``SetDefaults_PodSpec`` but
not ``SetDefaults_Pod``), resource by resource, with feature gates as shipped in v1.32.

Rules the code keeps (and the tests check):

* Only unset fields are filled; "unset" follows the Go type of the field: a pointer field
  is unset when absent or ``null``, a plain string when ``""``, a plain integer when ``0``.
  The few places upstream *does* overwrite are kept and marked (the namespace name label,
  ``sessionAffinityConfig`` dropped when affinity is ``None``, ``serviceAccount`` mirroring
  ``serviceAccountName``, ``stringData`` folded into ``data``).
* Idempotent: ``apply_defaults(r, apply_defaults(r, o)) == apply_defaults(r, o)``. Upstream
  defaults again on every decode, including reads from storage, so idempotence is what
  makes that safe to copy.
* Pure: the input is never mutated; a new object is returned.

Beyond ``defaults.go`` this also applies a few effects of the v1 <-> internal conversion
round trip that every object goes through, because they are just as visible to clients:
``spec.serviceAccount`` mirrors ``serviceAccountName`` in every pod spec, Secret
``stringData`` is folded into ``data``, pod ``status.podIP``/``podIPs`` (and ``hostIP``/
``hostIPs``) and node ``spec.podCIDR``/``podCIDRs`` agree. And, when ``create`` is true,
three create-time strategy steps that need nothing but the object: a namespace's
``spec.finalizers`` gains ``kubernetes``; a Service's ``clusterIPs`` is initialised from
``clusterIP`` and its ``ipFamilyPolicy``/``ipFamilies`` are chosen as the service REST
storage does before allocating (``initIPFamilyFields``) for a cluster whose service
families are ``service_ip_families``. Allocation itself (cluster IPs, node ports, health
check node ports) is the API server's job, as is everything else that needs state: a
Job's ``controller-uid`` selector and labels (and ``manualSelector: false``), ``status``
reset on create, pod ``qosClass``; and admission: pod ``priority``/``preemptionPolicy``
(Priority plugin), ``serviceAccountName`` and the token volume (ServiceAccount plugin),
the not-ready/unreachable tolerations (DefaultTolerationSeconds).

Deliberately not done here: rounding quantities up to milli precision and printing them
canonically (``SetDefaults_ResourceList``; belongs with the quantity type), and the zero
values Go prints for non-omitempty struct fields (``resources: {}``,
``creationTimestamp: null``, ``status: {}``), which are an encoder's business. Alpha
features off by default in v1.32 (pod-level resources, image volumes, in-place resize,
StatefulSet ``maxUnavailable``) get no defaults.
"""

from __future__ import annotations

import base64
import copy
import ipaddress
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pyk8s.api.jsoncopy import copy_json
from pyk8s.api.registry import Resource

__all__ = ["apply_defaults", "image_pull_policy"]

JSON = dict[str, Any]

RBAC_GROUP = "rbac.authorization.k8s.io"


@dataclass(frozen=True, slots=True)
class _Options:
    create: bool
    ip_families: tuple[str, ...]


Defaulter = Callable[[JSON, _Options], None]


def apply_defaults(
    resource: Resource,
    obj: JSON,
    *,
    create: bool = True,
    service_ip_families: Sequence[str] = ("IPv4",),
) -> JSON:
    """A copy of ``obj`` (a ``resource`` object as JSON) with v1.32's defaults applied.

    ``create`` adds the create-only steps (namespace finalizer, Service IP families and
    ``clusterIPs``); pass ``False`` for updates, where upstream keeps the stored values
    instead. ``service_ip_families`` are the cluster's service IP families, the primary
    first (``("IPv4",)`` for a single-stack IPv4 cluster). Resources upstream does not
    default (ConfigMap, Lease, Role, …) come back as an unchanged copy.
    """
    out = copy_json(obj)
    defaulter = _DEFAULTERS.get((resource.group, resource.version, resource.kind))
    if defaulter is not None and isinstance(out, dict):
        defaulter(out, _Options(create, tuple(service_ip_families)))
    return out


# --- helpers over JSON with Go zero-value semantics -------------------------------------


def _obj(parent: JSON, key: str) -> JSON | None:
    """``parent[key]`` if it is an object, else None (a nil pointer: nothing to default)."""
    value = parent.get(key)
    return value if isinstance(value, dict) else None


def _struct(parent: JSON, key: str) -> JSON | None:
    """``parent[key]`` for a non-pointer struct field: created when absent or null."""
    value = parent.get(key)
    if value is None:
        value = parent[key] = {}
    return value if isinstance(value, dict) else None


def _items(parent: JSON | None, key: str) -> Iterator[JSON]:
    """The object elements of the list ``parent[key]``."""
    if parent is None:
        return
    value = parent.get(key)
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                yield item


def _str(d: JSON, key: str, value: str) -> None:
    """Default a plain string field (unset = absent, null or "")."""
    if d.get(key) in (None, ""):
        d[key] = value


def _int(d: JSON, key: str, value: int) -> None:
    """Default a plain integer field (unset = absent, null or 0)."""
    current = d.get(key)
    if current is None or (type(current) is int and current == 0):
        d[key] = value


def _ptr(d: JSON, key: str, value: Any) -> None:
    """Default a pointer field (unset = absent or null); ``value`` is copied."""
    if d.get(key) is None:
        d[key] = copy.deepcopy(value)


# --- image references (what parsers.ParseImageName accepts) -----------------------------

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(rf"({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?", re.ASCII)
_IDENTIFIER = re.compile(r"[a-f0-9]{64}")
_DIGEST_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
_NAME_MAX = 255


def _image_tag(image: str) -> str | None:
    """The tag ParseImageName reports ("latest" when neither tag nor digest), or None when
    the reference does not parse (normalised docker reference grammar)."""
    if _IDENTIFIER.fullmatch(image):
        return None
    slash = image.find("/")
    first = image[:slash]
    if slash == -1 or (
        not any(c in first for c in ".:") and first != "localhost" and first.lower() == first
    ):
        domain, remainder = "docker.io", image
    else:
        domain, remainder = first, image[slash + 1 :]
    if domain == "index.docker.io":
        domain = "docker.io"
    if domain == "docker.io" and "/" not in remainder:
        remainder = "library/" + remainder
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        return None
    match = _REFERENCE.fullmatch(f"{domain}/{remainder}")
    if match is None or len(match.group(1)) > _NAME_MAX:
        return None
    tag, digest = match.group(2), match.group(3)
    if digest is not None:
        algorithm, _, encoded = digest.partition(":")
        if _DIGEST_LENGTHS.get(algorithm) != len(encoded) or encoded.lower() != encoded:
            return None
    if tag:
        return str(tag)
    return None if digest else "latest"


def image_pull_policy(image: str | None) -> str:
    """The default ``imagePullPolicy`` for ``image``: ``Always`` for ``:latest`` (or no
    tag and no digest), else ``IfNotPresent`` (unparsable references included)."""
    if not isinstance(image, str):
        return "IfNotPresent"
    return "Always" if _image_tag(image) == "latest" else "IfNotPresent"


# --- core/v1 building blocks -----------------------------------------------------------


def _field_ref(holder: JSON | None) -> None:
    if holder is not None and (ref := _obj(holder, "fieldRef")) is not None:
        _str(ref, "apiVersion", "v1")


def _http_get(handler: JSON | None) -> None:
    if handler is not None and (get := _obj(handler, "httpGet")) is not None:
        _str(get, "path", "/")
        _str(get, "scheme", "HTTP")


def _probe(probe: JSON) -> None:
    _int(probe, "timeoutSeconds", 1)
    _int(probe, "periodSeconds", 10)
    _int(probe, "successThreshold", 1)
    _int(probe, "failureThreshold", 3)
    _http_get(probe)
    if (grpc := _obj(probe, "grpc")) is not None:
        _ptr(grpc, "service", "")


def _container(c: JSON) -> None:
    if c.get("imagePullPolicy") in (None, ""):
        c["imagePullPolicy"] = image_pull_policy(c.get("image"))
    _str(c, "terminationMessagePath", "/dev/termination-log")
    _str(c, "terminationMessagePolicy", "File")
    for port in _items(c, "ports"):
        _str(port, "protocol", "TCP")
    for env in _items(c, "env"):
        _field_ref(_obj(env, "valueFrom"))
    for name in ("livenessProbe", "readinessProbe", "startupProbe"):
        if (probe := _obj(c, name)) is not None:
            _probe(probe)
    if (lifecycle := _obj(c, "lifecycle")) is not None:
        _http_get(_obj(lifecycle, "postStart"))
        _http_get(_obj(lifecycle, "preStop"))


def _pvc_spec(spec: JSON | None) -> None:
    if spec is not None:
        _ptr(spec, "volumeMode", "Filesystem")


def _pvc(claim: JSON) -> None:
    if (status := _struct(claim, "status")) is not None:
        _str(status, "phase", "Pending")
    _pvc_spec(_struct(claim, "spec"))


def _iscsi(src: JSON | None) -> None:
    if src is not None:
        _str(src, "iscsiInterface", "default")


def _rbd(src: JSON | None) -> None:
    if src is not None:
        _str(src, "pool", "rbd")
        _str(src, "user", "admin")
        _str(src, "keyring", "/etc/ceph/keyring")


def _azure_disk(src: JSON | None) -> None:
    if src is not None:
        _ptr(src, "cachingMode", "ReadWrite")
        _ptr(src, "fsType", "ext4")
        _ptr(src, "readOnly", False)
        _ptr(src, "kind", "Shared")


def _scale_io(src: JSON | None) -> None:
    if src is not None:
        _str(src, "storageMode", "ThinProvisioned")
        _str(src, "fsType", "xfs")


def _host_path(src: JSON | None) -> None:
    if src is not None:
        _ptr(src, "type", "")


def _volume(vol: JSON) -> None:
    if all(value is None for key, value in vol.items() if key != "name"):
        vol["emptyDir"] = {}
    _host_path(_obj(vol, "hostPath"))
    for kind in ("secret", "configMap", "downwardAPI", "projected"):
        if (src := _obj(vol, kind)) is not None:
            _ptr(src, "defaultMode", 420)
    for item in _items(_obj(vol, "downwardAPI"), "items"):
        _field_ref(item)
    for source in _items(_obj(vol, "projected"), "sources"):
        for item in _items(_obj(source, "downwardAPI"), "items"):
            _field_ref(item)
        if (token := _obj(source, "serviceAccountToken")) is not None:
            _ptr(token, "expirationSeconds", 3600)
    _iscsi(_obj(vol, "iscsi"))
    _rbd(_obj(vol, "rbd"))
    _azure_disk(_obj(vol, "azureDisk"))
    _scale_io(_obj(vol, "scaleIO"))
    ephemeral = _obj(vol, "ephemeral")
    template = _obj(ephemeral, "volumeClaimTemplate") if ephemeral is not None else None
    if template is not None:
        _pvc_spec(_struct(template, "spec"))


def _pod_spec(spec: JSON) -> None:
    """SetDefaults_PodSpec and everything nested, for pods and pod templates alike."""
    _str(spec, "dnsPolicy", "ClusterFirst")
    _str(spec, "restartPolicy", "Always")
    _ptr(spec, "securityContext", {})
    _ptr(spec, "terminationGracePeriodSeconds", 30)
    _str(spec, "schedulerName", "default-scheduler")
    for vol in _items(spec, "volumes"):
        _volume(vol)
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in _items(spec, key):
            _container(c)
    # conversion: serviceAccount is the deprecated alias of serviceAccountName; the
    # new field wins when both are set, and the alias always reads back equal to it.
    name = spec.get("serviceAccountName")
    if not name and isinstance(spec.get("serviceAccount"), str) and spec["serviceAccount"]:
        name = spec["serviceAccountName"] = spec["serviceAccount"]
    if isinstance(name, str) and name:
        spec["serviceAccount"] = name


def _pod_template(parent: JSON, key: str = "template", *, pointer: bool = False) -> None:
    template = _obj(parent, key) if pointer else _struct(parent, key)
    if template is not None and (spec := _struct(template, "spec")) is not None:
        _pod_spec(spec)


def _sync_ips(status: JSON, single: str, plural: str) -> None:
    """Conversion keeps ``podIP``/``podIPs`` (and host IPs) in step; the singular wins."""
    ip = status.get(single)
    ips = status.get(plural)
    first = ips[0] if isinstance(ips, list) and ips else None
    if isinstance(ip, str) and ip:
        if not isinstance(first, dict) or first.get("ip") != ip:
            status[plural] = [{"ip": ip}]
    elif isinstance(first, dict) and first.get("ip"):
        status[single] = first["ip"]


# --- core/v1 resources -----------------------------------------------------------------


def _pod(obj: JSON, opts: _Options) -> None:
    spec = _struct(obj, "spec")
    if spec is None:
        return
    # SetDefaults_Pod (pods only, not templates): requests default to limits ...
    for key in ("containers", "initContainers"):
        for c in _items(spec, key):
            resources = _obj(c, "resources")
            limits = _obj(resources, "limits") if resources is not None else None
            if resources is not None and limits:
                requests = resources.get("requests")
                merged = dict(requests) if isinstance(requests, dict) else {}
                for name, quantity in limits.items():
                    merged.setdefault(name, quantity)
                resources["requests"] = merged
    # ... service links are on ...
    _ptr(spec, "enableServiceLinks", True)
    # ... and with host networking every container port is also a host port.
    if spec.get("hostNetwork") is True:
        for key in ("containers", "initContainers"):
            for c in _items(spec, key):
                for port in _items(c, "ports"):
                    if port.get("hostPort") in (None, 0) and "containerPort" in port:
                        port["hostPort"] = port["containerPort"]
    _pod_spec(spec)
    if (status := _obj(obj, "status")) is not None:
        _sync_ips(status, "podIP", "podIPs")
        _sync_ips(status, "hostIP", "hostIPs")


def _pod_template_object(obj: JSON, opts: _Options) -> None:
    _pod_template(obj)


def _template_labels(spec: JSON) -> JSON | None:
    """The labels of ``spec.template``, if it has any object there."""
    template = _obj(spec, "template")
    meta = _obj(template, "metadata") if template is not None else None
    return _obj(meta, "labels") if meta is not None else None


def _labels_from_template(obj: JSON, template_labels: JSON | None) -> None:
    """An object without labels gets its pod template's (ReplicationController, Job)."""
    if template_labels:
        meta = _struct(obj, "metadata")
        if meta is not None and not meta.get("labels"):
            meta["labels"] = dict(template_labels)


def _replication_controller(obj: JSON, opts: _Options) -> None:
    spec = _struct(obj, "spec")
    if spec is None:
        return
    template_labels = _template_labels(spec)
    if template_labels and not spec.get("selector"):
        spec["selector"] = dict(template_labels)
    _labels_from_template(obj, template_labels)
    _ptr(spec, "replicas", 1)
    _pod_template(spec, pointer=True)


def _externally_accessible(spec: JSON) -> bool:
    kind = spec.get("type")
    return kind in ("LoadBalancer", "NodePort") or (
        kind == "ClusterIP" and bool(spec.get("externalIPs"))
    )


def _family_of(ip: str) -> str | None:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    return "IPv4" if address.version == 4 else "IPv6"


def _other_family(family: str) -> str:
    return "IPv6" if family == "IPv4" else "IPv4"


def _service_ip_families(spec: JSON, configured: tuple[str, ...]) -> None:
    """Create-time ``initIPFamilyFields`` of the service REST storage (no allocation)."""
    if spec.get("type") == "ExternalName" or not configured:
        return
    cluster_ip = spec.get("clusterIP")
    if isinstance(cluster_ip, str) and cluster_ip and not spec.get("clusterIPs"):
        spec["clusterIPs"] = [cluster_ip]
    headless_selectorless = cluster_ip == "None" and not spec.get("selector")
    if spec.get("ipFamilyPolicy") is None:
        spec["ipFamilyPolicy"] = "RequireDualStack" if headless_selectorless else "SingleStack"
    policy = spec["ipFamilyPolicy"]
    given = spec.get("ipFamilies")
    families = list(given) if isinstance(given, list) else []
    cluster_ips = spec.get("clusterIPs")
    for i, ip in enumerate(cluster_ips if isinstance(cluster_ips, list) else []):
        if ip == "None" or not isinstance(ip, str):
            break
        family = _family_of(ip)
        if family is None or family not in configured:
            return  # invalid: validation reports it, we add nothing
        if i >= len(families):
            families.append(family)
    if headless_selectorless:
        if not families:
            families = [configured[0]]
        if len(families) < 2 and policy != "SingleStack":
            families.append(_other_family(families[0]))
    else:
        if not families:
            families = [configured[0]]
        if policy != "SingleStack" and len(families) == 1 and len(configured) == 2:
            families.append(_other_family(families[0]))
    spec["ipFamilies"] = families


def _service(obj: JSON, opts: _Options) -> None:
    spec = _struct(obj, "spec")
    if spec is None:
        return
    _str(spec, "sessionAffinity", "None")
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)  # upstream drops it
    elif spec["sessionAffinity"] == "ClientIP":
        config = _obj(spec, "sessionAffinityConfig")
        client_ip = _obj(config, "clientIP") if config is not None else None
        if client_ip is None or client_ip.get("timeoutSeconds") is None:
            spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": 10800}}
    _str(spec, "type", "ClusterIP")
    for port in _items(spec, "ports"):
        _str(port, "protocol", "TCP")
        if port.get("targetPort") in (None, 0, "") and isinstance(port.get("port"), int):
            port["targetPort"] = port["port"]
    if _externally_accessible(spec):
        _str(spec, "externalTrafficPolicy", "Cluster")
    if spec["type"] in ("ClusterIP", "NodePort", "LoadBalancer"):
        _ptr(spec, "internalTrafficPolicy", "Cluster")
    if spec["type"] == "LoadBalancer":
        _ptr(spec, "allocateLoadBalancerNodePorts", True)
        status = _obj(obj, "status")
        balancer = _obj(status, "loadBalancer") if status is not None else None
        for ingress in _items(balancer, "ingress"):
            if ingress.get("ip") and ingress.get("ipMode") is None:
                ingress["ipMode"] = "VIP"
    if opts.create:
        _service_ip_families(spec, opts.ip_families)


def _endpoints(obj: JSON, opts: _Options) -> None:
    for subset in _items(obj, "subsets"):
        for port in _items(subset, "ports"):
            _str(port, "protocol", "TCP")


def _namespace(obj: JSON, opts: _Options) -> None:
    meta = _obj(obj, "metadata")
    name = meta.get("name") if meta is not None else None
    if meta is not None and isinstance(name, str) and name:
        labels = _struct(meta, "labels")
        if labels is not None:
            labels["kubernetes.io/metadata.name"] = name  # upstream always sets it
    if (status := _struct(obj, "status")) is not None:
        _str(status, "phase", "Active")
    deleting = meta is not None and meta.get("deletionTimestamp") is not None
    if opts.create and not deleting and (spec := _struct(obj, "spec")) is not None:
        # the namespace strategy's PrepareForCreate, not defaulting: the namespace
        # controller removes the finalizer (via /finalize) once the namespace is being
        # deleted and empty, so it must never come back then, create flag or not
        finalizers = spec.get("finalizers")
        if not isinstance(finalizers, list):
            spec["finalizers"] = ["kubernetes"]
        elif "kubernetes" not in finalizers:
            spec["finalizers"] = [*finalizers, "kubernetes"]


def _secret(obj: JSON, opts: _Options) -> None:
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        data = obj.get("data")
        merged = dict(data) if isinstance(data, dict) else {}
        for key, value in string_data.items():
            if isinstance(value, str):
                merged[key] = base64.b64encode(value.encode()).decode("ascii")
        obj["data"] = merged
    _str(obj, "type", "Opaque")


def _node(obj: JSON, opts: _Options) -> None:
    status = _obj(obj, "status")
    if status is not None and status.get("allocatable") is None:
        capacity = _obj(status, "capacity")
        if capacity:
            status["allocatable"] = dict(capacity)
    spec = _obj(obj, "spec")
    if spec is not None:
        cidr = spec.get("podCIDR")
        cidrs = spec.get("podCIDRs")
        if isinstance(cidr, str) and cidr:
            if not isinstance(cidrs, list) or not cidrs or cidrs[0] != cidr:
                spec["podCIDRs"] = [cidr]
        elif isinstance(cidrs, list) and cidrs and isinstance(cidrs[0], str):
            spec["podCIDR"] = cidrs[0]


def _persistent_volume(obj: JSON, opts: _Options) -> None:
    if (status := _struct(obj, "status")) is not None:
        _str(status, "phase", "Pending")
    spec = _struct(obj, "spec")
    if spec is None:
        return
    _str(spec, "persistentVolumeReclaimPolicy", "Retain")
    _ptr(spec, "volumeMode", "Filesystem")
    _host_path(_obj(spec, "hostPath"))
    _rbd(_obj(spec, "rbd"))
    _iscsi(_obj(spec, "iscsi"))
    _azure_disk(_obj(spec, "azureDisk"))
    _scale_io(_obj(spec, "scaleIO"))


def _persistent_volume_claim(obj: JSON, opts: _Options) -> None:
    _pvc(obj)


def _limit_range(obj: JSON, opts: _Options) -> None:
    for item in _items(_obj(obj, "spec"), "limits"):
        if item.get("type") != "Container":
            continue
        default = dict(_obj(item, "default") or {})
        request = dict(_obj(item, "defaultRequest") or {})
        for name, quantity in (_obj(item, "max") or {}).items():
            default.setdefault(name, quantity)
        for name, quantity in default.items():
            request.setdefault(name, quantity)
        for name, quantity in (_obj(item, "min") or {}).items():
            request.setdefault(name, quantity)
        if default:
            item["default"] = default
        if request:
            item["defaultRequest"] = request


# --- apps/v1 ---------------------------------------------------------------------------


def _rolling_update_strategy(
    spec: JSON, key: str, *, max_unavailable: int | str, max_surge: int | str
) -> None:
    """A Deployment's or DaemonSet's strategy: RollingUpdate, its limits filled in."""
    strategy = _struct(spec, key)
    if strategy is not None:
        _str(strategy, "type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate" and (
            (rolling := _struct(strategy, "rollingUpdate")) is not None
        ):
            _ptr(rolling, "maxUnavailable", max_unavailable)
            _ptr(rolling, "maxSurge", max_surge)


def _deployment(obj: JSON, opts: _Options) -> None:
    spec = _struct(obj, "spec")
    if spec is None:
        return
    _ptr(spec, "replicas", 1)
    _rolling_update_strategy(spec, "strategy", max_unavailable="25%", max_surge="25%")
    _ptr(spec, "revisionHistoryLimit", 10)
    _ptr(spec, "progressDeadlineSeconds", 600)
    _pod_template(spec)


def _replica_set(obj: JSON, opts: _Options) -> None:
    if (spec := _struct(obj, "spec")) is not None:
        _ptr(spec, "replicas", 1)
        _pod_template(spec)


def _daemon_set(obj: JSON, opts: _Options) -> None:
    spec = _struct(obj, "spec")
    if spec is None:
        return
    _rolling_update_strategy(spec, "updateStrategy", max_unavailable=1, max_surge=0)
    _ptr(spec, "revisionHistoryLimit", 10)
    _pod_template(spec)


def _stateful_set(obj: JSON, opts: _Options) -> None:
    spec = _struct(obj, "spec")
    if spec is None:
        return
    _str(spec, "podManagementPolicy", "OrderedReady")
    strategy = _struct(spec, "updateStrategy")
    if strategy is not None:
        if strategy.get("type") in (None, ""):
            strategy["type"] = "RollingUpdate"
            _ptr(strategy, "rollingUpdate", {})
        # only a present rollingUpdate gets a partition: an explicit type with no
        # rollingUpdate stays as sent, as upstream
        rolling = _obj(strategy, "rollingUpdate")
        if strategy["type"] == "RollingUpdate" and rolling is not None:
            _ptr(rolling, "partition", 0)
    retention = _struct(spec, "persistentVolumeClaimRetentionPolicy")
    if retention is not None:
        _str(retention, "whenDeleted", "Retain")
        _str(retention, "whenScaled", "Retain")
    _ptr(spec, "replicas", 1)
    _ptr(spec, "revisionHistoryLimit", 10)
    _pod_template(spec)
    for claim in _items(spec, "volumeClaimTemplates"):
        _pvc(claim)


# --- batch/v1 --------------------------------------------------------------------------

_MAX_INT32 = 2**31 - 1


def _job(obj: JSON, opts: _Options) -> None:
    spec = _struct(obj, "spec")
    if spec is None:
        return
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    _ptr(spec, "parallelism", 1)
    if spec.get("backoffLimit") is None:
        per_index = spec.get("backoffLimitPerIndex") is not None
        spec["backoffLimit"] = _MAX_INT32 if per_index else 6
    _labels_from_template(obj, _template_labels(spec))
    _ptr(spec, "completionMode", "NonIndexed")
    _ptr(spec, "suspend", False)
    failure_policy = _obj(spec, "podFailurePolicy")
    for rule in _items(failure_policy, "rules"):
        for pattern in _items(rule, "onPodConditions"):
            _str(pattern, "status", "True")
    if spec.get("podReplacementPolicy") is None:
        spec["podReplacementPolicy"] = (
            "Failed" if failure_policy is not None else "TerminatingOrFailed"
        )
    _pod_template(spec)


def _cron_job(obj: JSON, opts: _Options) -> None:
    spec = _struct(obj, "spec")
    if spec is None:
        return
    _str(spec, "concurrencyPolicy", "Allow")
    _ptr(spec, "suspend", False)
    _ptr(spec, "successfulJobsHistoryLimit", 3)
    _ptr(spec, "failedJobsHistoryLimit", 1)
    # only the pod template is defaulted: the job spec inside is a JobTemplateSpec, which
    # upstream leaves alone (the Job gets its defaults when the controller creates it)
    job_template = _struct(spec, "jobTemplate")
    if job_template is not None and (job_spec := _struct(job_template, "spec")) is not None:
        _pod_template(job_spec)


# --- autoscaling -----------------------------------------------------------------------

_SCALE_UP: JSON = {
    "stabilizationWindowSeconds": 0,
    "selectPolicy": "Max",
    "policies": [
        {"type": "Pods", "value": 4, "periodSeconds": 15},
        {"type": "Percent", "value": 100, "periodSeconds": 15},
    ],
}
# no stabilizationWindowSeconds: the controller's --horizontal-pod-autoscaler-downscale-
# stabilization flag applies when it is unset
_SCALE_DOWN: JSON = {
    "selectPolicy": "Max",
    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
}


def _scaling_rules(given: Any, defaults: JSON) -> JSON:
    rules = copy.deepcopy(defaults)
    if isinstance(given, dict):
        for key, value in given.items():
            if value is not None:
                rules[key] = value
    return rules


def _hpa_v2(obj: JSON, opts: _Options) -> None:
    spec = _struct(obj, "spec")
    if spec is None:
        return
    _ptr(spec, "minReplicas", 1)
    if not spec.get("metrics"):
        spec["metrics"] = [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80},
                },
            }
        ]
    if (behavior := _obj(spec, "behavior")) is not None:
        behavior["scaleUp"] = _scaling_rules(behavior.get("scaleUp"), _SCALE_UP)
        behavior["scaleDown"] = _scaling_rules(behavior.get("scaleDown"), _SCALE_DOWN)


def _hpa_v1(obj: JSON, opts: _Options) -> None:
    if (spec := _struct(obj, "spec")) is not None:
        _ptr(spec, "minReplicas", 1)


# --- networking, discovery, rbac, storage, scheduling ----------------------------------


def _network_policy(obj: JSON, opts: _Options) -> None:
    spec = _struct(obj, "spec")
    if spec is None:
        return
    for direction in ("ingress", "egress"):
        for rule in _items(spec, direction):
            for port in _items(rule, "ports"):
                _ptr(port, "protocol", "TCP")
    if not spec.get("policyTypes"):
        spec["policyTypes"] = ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]


def _ingress_class(obj: JSON, opts: _Options) -> None:
    spec = _obj(obj, "spec")
    if spec is not None and (parameters := _obj(spec, "parameters")) is not None:
        _ptr(parameters, "scope", "Cluster")


def _endpoint_slice(obj: JSON, opts: _Options) -> None:
    for port in _items(obj, "ports"):
        _ptr(port, "name", "")
        _ptr(port, "protocol", "TCP")


def _binding(obj: JSON, opts: _Options) -> None:
    if (role_ref := _struct(obj, "roleRef")) is not None:
        _str(role_ref, "apiGroup", RBAC_GROUP)
    for subject in _items(obj, "subjects"):
        if subject.get("apiGroup") in (None, "") and subject.get("kind") in ("User", "Group"):
            subject["apiGroup"] = RBAC_GROUP


def _storage_class(obj: JSON, opts: _Options) -> None:
    _ptr(obj, "reclaimPolicy", "Delete")
    _ptr(obj, "volumeBindingMode", "Immediate")


def _csi_driver(obj: JSON, opts: _Options) -> None:
    spec = obj.setdefault("spec", {})
    for key, value in (
        ("attachRequired", True), ("podInfoOnMount", False), ("requiresRepublish", False),
        ("storageCapacity", False), ("seLinuxMount", False),
        ("fsGroupPolicy", "ReadWriteOnceWithFSType"),
    ):  # fmt: skip
        _ptr(spec, key, value)
    if not spec.get("volumeLifecycleModes"):
        spec["volumeLifecycleModes"] = ["Persistent"]


def _priority_class(obj: JSON, opts: _Options) -> None:
    _ptr(obj, "preemptionPolicy", "PreemptLowerPriority")


_DEFAULTERS: dict[tuple[str, str, str], Defaulter] = {
    ("", "v1", "Pod"): _pod,
    ("", "v1", "PodTemplate"): _pod_template_object,
    ("", "v1", "ReplicationController"): _replication_controller,
    ("", "v1", "Service"): _service,
    ("", "v1", "Endpoints"): _endpoints,
    ("", "v1", "Namespace"): _namespace,
    ("", "v1", "Secret"): _secret,
    ("", "v1", "Node"): _node,
    ("", "v1", "PersistentVolume"): _persistent_volume,
    ("", "v1", "PersistentVolumeClaim"): _persistent_volume_claim,
    ("", "v1", "LimitRange"): _limit_range,
    ("apps", "v1", "Deployment"): _deployment,
    ("apps", "v1", "ReplicaSet"): _replica_set,
    ("apps", "v1", "DaemonSet"): _daemon_set,
    ("apps", "v1", "StatefulSet"): _stateful_set,
    ("batch", "v1", "Job"): _job,
    ("batch", "v1", "CronJob"): _cron_job,
    ("autoscaling", "v2", "HorizontalPodAutoscaler"): _hpa_v2,
    ("autoscaling", "v1", "HorizontalPodAutoscaler"): _hpa_v1,
    ("networking.k8s.io", "v1", "NetworkPolicy"): _network_policy,
    ("networking.k8s.io", "v1", "IngressClass"): _ingress_class,
    ("discovery.k8s.io", "v1", "EndpointSlice"): _endpoint_slice,
    (RBAC_GROUP, "v1", "RoleBinding"): _binding,
    (RBAC_GROUP, "v1", "ClusterRoleBinding"): _binding,
    ("storage.k8s.io", "v1", "StorageClass"): _storage_class,
    ("storage.k8s.io", "v1", "CSIDriver"): _csi_driver,
    ("scheduling.k8s.io", "v1", "PriorityClass"): _priority_class,
}
