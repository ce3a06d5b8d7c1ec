"""What the EndpointSlice and Endpoints controllers share: which pods back a Service, how
their readiness reads, and what a Service port (maybe a named targetPort) means per pod.

Both controllers follow upstream's ``endpointutil`` rules, so the two objects they write
agree with each other.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pyk8s.api.selectors import label_selector_from_dict

Obj = dict[str, Any]

HEADLESS_LABEL = "service.kubernetes.io/headless"
TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def service_pods(service: Obj, pods: Iterable[Obj]) -> list[Obj] | None:
    """The pods the Service selects, or ``None`` for a Service without a selector (its
    endpoints are managed by someone else)."""
    selector = (service.get("spec") or {}).get("selector")
    if not selector or (service.get("spec") or {}).get("type") == "ExternalName":
        return None
    sel = label_selector_from_dict({"matchLabels": selector})
    return [p for p in pods if sel.matches((p.get("metadata") or {}).get("labels") or {})]


def is_ready(pod: Obj) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


def service_families(service: Obj) -> list[str]:
    """The address types a Service's slices have: its ``ipFamilies``, else its cluster IP's
    family, else IPv4 (upstream's getAddressTypesForService)."""
    spec = service.get("spec") or {}
    families = [str(f) for f in spec.get("ipFamilies") or [] if f in ("IPv4", "IPv6")]
    if families:
        return families
    ip = str(spec.get("clusterIP") or "")
    return ["IPv6"] if ":" in ip else ["IPv4"]


def pod_ip(pod: Obj, family: str = "IPv4") -> str:
    """The pod's address of ``family`` (``IPv4``/``IPv6``), or ``""``."""
    status = pod.get("status") or {}
    ips = [str(i.get("ip", "")) for i in status.get("podIPs") or ()] or [
        str(status.get("podIP") or "")
    ]
    for ip in ips:
        if ip and (":" in ip) == (family == "IPv6"):
            return ip
    return ""


def should_be_in_endpoints(pod: Obj, include_terminating: bool, family: str = "IPv4") -> bool:
    """Upstream's ``ShouldPodBeInEndpoints``: has an IP (of ``family``), not terminal, and
    not being deleted unless terminating endpoints are wanted."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    if not pod_ip(pod, family):
        return False
    return include_terminating or not (pod.get("metadata") or {}).get("deletionTimestamp")


def resolve_port(pod: Obj, svc_port: Obj) -> int | None:
    """The container port a Service port's targetPort means for ``pod``."""
    target = svc_port.get("targetPort", svc_port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    protocol = svc_port.get("protocol", "TCP")
    for c in (pod.get("spec") or {}).get("containers") or ():
        for p in c.get("ports") or ():
            if p.get("name") == target and p.get("protocol", "TCP") == protocol:
                return int(p["containerPort"])
    return None


def endpoint_ports(service: Obj, pod: Obj) -> list[Obj]:
    """The pod's ports for every Service port that resolves (upstream skips the others)."""
    out: list[Obj] = []
    for sp in (service.get("spec") or {}).get("ports") or ():
        port = resolve_port(pod, sp)
        if port is None:
            continue
        ep: Obj = {"name": sp.get("name", ""), "port": port, "protocol": sp.get("protocol", "TCP")}
        if sp.get("appProtocol"):
            ep["appProtocol"] = sp["appProtocol"]
        out.append(ep)
    return out


def target_ref(pod: Obj) -> Obj:
    meta = pod["metadata"]
    return {"kind": "Pod", "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]}


def service_labels(service: Obj) -> dict[str, str]:
    labels = dict((service.get("metadata") or {}).get("labels") or {})
    if (service.get("spec") or {}).get("clusterIP") == "None":
        labels[HEADLESS_LABEL] = ""
    else:
        labels.pop(HEADLESS_LABEL, None)
    return labels


def trigger_time(service: Obj, pods: Iterable[Obj]) -> str:
    """When the last change that touches these endpoints happened: the newest Ready
    transition or pod creation, or the Service's creation."""
    times = [str((service.get("metadata") or {}).get("creationTimestamp") or "")]
    for pod in pods:
        times.append(str((pod.get("metadata") or {}).get("creationTimestamp") or ""))
        for c in (pod.get("status") or {}).get("conditions") or ():
            if c.get("type") == "Ready" and c.get("lastTransitionTime"):
                times.append(str(c["lastTransitionTime"]))
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            times.append(str(pod["metadata"]["deletionTimestamp"]))
    return max((t for t in times if t), default=now())


def services_for_pod(services: Iterable[Obj], pod: Obj) -> list[Obj]:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    out = []
    for svc in services:
        selector = (svc.get("spec") or {}).get("selector")
        if not selector:
            continue
        if all(labels.get(k) == v for k, v in selector.items()):
            out.append(svc)
    return out
