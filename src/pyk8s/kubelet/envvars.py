"""Docker-links-style service environment variables, as the kubelet injects them.

Every container gets ``{SVC}_SERVICE_HOST``/``_SERVICE_PORT`` (and the ``{SVC}_PORT_…``
family) for the services of its namespace when ``enableServiceLinks`` is true (the
default), and always for the ``kubernetes`` service of the ``default`` namespace: that is
how in-cluster clients find the API server (``KUBERNETES_SERVICE_HOST``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["service_env"]

_MASTER_SERVICE_NAMESPACE = "default"


def _name(svc: Mapping[str, Any]) -> str:
    return str(svc["metadata"]["name"]).upper().replace("-", "_")


def _links(svc: Mapping[str, Any]) -> dict[str, str]:
    spec = svc.get("spec") or {}
    ip, ports = spec.get("clusterIP") or "", spec.get("ports") or []
    name = _name(svc)
    env = {f"{name}_SERVICE_HOST": ip}
    if not ports:
        return env
    env[f"{name}_SERVICE_PORT"] = str(ports[0]["port"])
    for p in ports:
        if p.get("name"):
            env[f"{name}_SERVICE_PORT_{p['name'].upper().replace('-', '_')}"] = str(p["port"])
    first = ports[0]
    proto = (first.get("protocol") or "TCP").lower()
    env[f"{name}_PORT"] = f"{proto}://{ip}:{first['port']}"
    for p in ports:
        proto = p.get("protocol") or "TCP"
        prefix = f"{name}_PORT_{p['port']}_{proto.upper()}"
        env[prefix] = f"{proto.lower()}://{ip}:{p['port']}"
        env[f"{prefix}_PROTO"] = proto.lower()
        env[f"{prefix}_PORT"] = str(p["port"])
        env[f"{prefix}_ADDR"] = ip
    return env


def service_env(
    services: Iterable[Mapping[str, Any]], namespace: str, enable_service_links: bool = True
) -> dict[str, str]:
    """The variables for a pod in ``namespace`` from the cluster's ``services``."""
    chosen: dict[str, Mapping[str, Any]] = {}
    for svc in services:
        meta, spec = svc["metadata"], svc.get("spec") or {}
        ip = spec.get("clusterIP") or ""
        if not ip or ip == "None":
            continue
        ns = meta.get("namespace", "")
        if ns == namespace and enable_service_links:
            chosen[meta["name"]] = svc
        elif ns == _MASTER_SERVICE_NAMESPACE and meta["name"] == "kubernetes":
            chosen.setdefault("kubernetes", svc)
    env: dict[str, str] = {}
    for name in sorted(chosen):
        env.update(_links(chosen[name]))
    return env
