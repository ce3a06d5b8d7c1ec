"""Gateway and HTTPRoute objects as the API serves them, for the Gateway API tests."""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]
V1 = "gateway.networking.k8s.io/v1"


def gateway(name: str, *listeners: JSON, namespace: str = "default") -> JSON:
    return {
        "apiVersion": V1,
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": namespace, "generation": 1},
        "spec": {"gatewayClassName": "pyk8s", "listeners": list(listeners)},
    }


def listener(name: str, port: int, hostname: str = "", allowed: str = "Same") -> JSON:
    out: JSON = {
        "name": name,
        "port": port,
        "protocol": "HTTP",
        "allowedRoutes": {"namespaces": {"from": allowed}},
    }
    if hostname:
        out["hostname"] = hostname
    return out


def ref(service: str, port: int = 80, weight: int | None = None) -> JSON:
    out: JSON = {"name": service, "port": port}
    if weight is not None:
        out["weight"] = weight
    return out


def route_rule(*backends: JSON, matches: list[JSON] | None = None, **filters: JSON) -> JSON:
    out: JSON = {"backendRefs": list(backends)}
    if matches is not None:
        out["matches"] = matches
    if filters:
        out["filters"] = [
            {"type": "URLRewrite" if kind == "urlRewrite" else kind[0].upper() + kind[1:],
             kind: value}
            for kind, value in filters.items()
        ]  # fmt: skip
    return out


def http_route(
    name: str,
    *rules: JSON,
    gateway: str = "gw",
    hostnames: tuple[str, ...] = (),
    namespace: str = "default",
    section: str = "",
    created: str = "2026-01-01T00:00:00Z",
    gateway_namespace: str = "",
) -> JSON:
    parent: JSON = {"name": gateway, "namespace": gateway_namespace or namespace}
    if section:
        parent["sectionName"] = section
    return {
        "apiVersion": V1,
        "kind": "HTTPRoute",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "generation": 1,
            "creationTimestamp": created,
        },
        "spec": {"parentRefs": [parent], "hostnames": list(hostnames), "rules": list(rules)},
    }
