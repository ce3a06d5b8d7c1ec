"""How the API server reaches a Service it calls (conversion and admission webhooks).

Upstream's API server dials the Service's ClusterIP by default and, with
``--enable-aggregator-routing``, an endpoint directly. pyk8s' API server need not run on a
node with kube-proxy rules, so it always picks a ready endpoint from the Service's
EndpointSlices and dials the endpoint port that the service port targets, as upstream's
endpoint routing does. Reads come from the watch cache.
"""

from __future__ import annotations

import random
from typing import Any

from pyk8s.apiserver.admission import Reader

JSON = dict[str, Any]


class NoEndpoints(OSError):
    """The Service exists but has nothing ready to answer (or does not exist)."""


def _target_port(svc: JSON, port: int) -> tuple[str, int | str]:
    """(service port name, target port) of the service port ``port``."""
    for p in (svc.get("spec") or {}).get("ports") or []:
        if p.get("port") == port:
            target = p.get("targetPort", port)
            return str(p.get("name", "")), target
    raise NoEndpoints(f'service "{svc["metadata"]["name"]}" has no port {port}')


class ServiceResolver:
    """``resolve(namespace, name, port) -> (address, port)`` over a cache reader."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    async def __call__(self, namespace: str, name: str, port: int) -> tuple[str, int]:
        svc = self.reader.cached("", "services", namespace, name)
        if svc is None:
            raise NoEndpoints(f'service "{name}" not found')
        if (svc.get("spec") or {}).get("type") == "ExternalName":
            return str(svc["spec"].get("externalName", "")), port
        port_name, target = _target_port(svc, port)
        choices: list[tuple[str, int]] = []
        for eps in self.reader.list("discovery.k8s.io", "endpointslices", namespace):
            labels = (eps.get("metadata") or {}).get("labels") or {}
            if labels.get("kubernetes.io/service-name") != name:
                continue
            number: int | None = None
            for p in eps.get("ports") or []:
                if (p.get("name") or "") == port_name:
                    number = p.get("port")
            if number is None and isinstance(target, int):
                number = target
            if number is None:
                continue
            for ep in eps.get("endpoints") or []:
                if (ep.get("conditions") or {}).get("ready") is False:
                    continue
                choices.extend((addr, int(number)) for addr in ep.get("addresses") or [])
        if not choices:
            raise NoEndpoints(f'no endpoints available for service "{name}"')
        return random.choice(choices)
