"""Ingress, Service, EndpointSlice and TLS Secret objects as the API serves them, for the
renderer's tests and the end-to-end test."""

from __future__ import annotations

import base64
from typing import Any

from pyk8s.ingress.nginx import self_signed

JSON = dict[str, Any]


def backend(service: str, port: int | str = 80) -> JSON:
    key = "number" if isinstance(port, int) else "name"
    return {"service": {"name": service, "port": {key: port}}}


def path(p: str, service: str, path_type: str = "Prefix", port: int | str = 80) -> JSON:
    return {"path": p, "pathType": path_type, "backend": backend(service, port)}


def rule(host: str, *paths: JSON) -> JSON:
    out: JSON = {"http": {"paths": list(paths)}}
    if host:
        out["host"] = host
    return out


def ingress(
    name: str,
    *rules: JSON,
    namespace: str = "default",
    created: str = "2026-01-01T00:00:00Z",
    annotations: dict[str, str] | None = None,
    tls: list[JSON] | None = None,
    default_backend: JSON | None = None,
    class_name: str | None = "pyk8s",
) -> JSON:
    spec: JSON = {"rules": list(rules)}
    if class_name:
        spec["ingressClassName"] = class_name
    if tls:
        spec["tls"] = tls
    if default_backend:
        spec["defaultBackend"] = default_backend
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "creationTimestamp": created,
            "annotations": annotations or {},
        },
        "spec": spec,
    }


def service(name: str, *ports: JSON, namespace: str = "default") -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "ports": list(ports) or [{"name": "http", "port": 80, "targetPort": 8080}],
            "selector": {"app": name},
        },
    }


def endpoint_slice(
    service_name: str,
    addresses: list[str],
    port: int = 8080,
    port_name: str = "http",
    namespace: str = "default",
    not_ready: tuple[str, ...] = (),
) -> JSON:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service_name}-abc",
            "namespace": namespace,
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": [a], "conditions": {"ready": a not in not_ready}} for a in addresses
        ],
        "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
    }


def key_pair(host: str) -> tuple[bytes, bytes]:
    """A self-signed certificate for ``host`` and its key, PEM."""
    return self_signed(host, host, days=1)


def tls_secret(name: str, cert: bytes, key: bytes, namespace: str = "default") -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": base64.b64encode(cert).decode(),
            "tls.key": base64.b64encode(key).decode(),
        },
    }
