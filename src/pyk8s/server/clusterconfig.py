"""What a joining agent learns from the server: the cluster's networking settings.

Why: the pod and service CIDRs, the cluster DNS address and the cluster domain are
``pyk8s server`` flags, but an agent's kubelet, proxy and DNS need them too -- the
unreachable routes and the pod-egress masquerade for every cluster CIDR, the proxy's
off-cluster masquerade, the DNS address ClusterFirst pods resolve through. Without
them an agent fell back to the default CIDRs and gave its pods no cluster DNS unless
each flag was repeated on every host. k3s agents fetch the server's settings at join
(``/v1-k3s/config``); pyk8s does it the kubeadm way (``kube-system/kubeadm-config``):
the server keeps a ConfigMap, ``kube-system/pyk8s-config``, that the join token's group
and the nodes may read (and nothing else: a Role naming only that ConfigMap), and the
agent reads it with its bootstrap credentials before it starts its children. A flag
given on the agent still wins: the learned flags come first on each child's command
line, the agent's own after them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pyk8s.apiserver.handlers import ResourceHandlers
from pyk8s.client import Client, is_forbidden, is_not_found, load_config
from pyk8s.server.identities import create_missing

__all__ = ["CONFIG_MAP", "POLICY", "AgentFlags", "config_map", "fetch", "publish"]

log = logging.getLogger(__name__)

CONFIG_MAP = "pyk8s-config"
_PATH = f"/api/v1/namespaces/kube-system/configmaps/{CONFIG_MAP}"
_RBAC = "rbac.authorization.k8s.io/v1"
_READERS = "pyk8s:nodes-cluster-config"


def config_map(data: dict[str, str]) -> dict[str, Any]:
    """The ConfigMap ``pyk8s server`` keeps: ``clusterCIDR``, ``serviceCIDR``,
    ``clusterDNS`` and ``clusterDomain``, each as given on its command line (a
    dual-stack CIDR is a ``v4,v6`` pair)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": CONFIG_MAP, "namespace": "kube-system"},
        "data": dict(data),
    }


#: who may read it: joining hosts (the join token's group, as kubeadm's
#: ``kubeadm:nodes-kubeadm-config`` Role allows its bootstrappers) and nodes
POLICY: tuple[dict[str, Any], ...] = (
    {
        "apiVersion": _RBAC,
        "kind": "Role",
        "metadata": {"name": _READERS, "namespace": "kube-system"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"],
                   "resourceNames": [CONFIG_MAP]}],
    },
    {
        "apiVersion": _RBAC,
        "kind": "RoleBinding",
        "metadata": {"name": _READERS, "namespace": "kube-system"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": _READERS},
        "subjects": [
            {"kind": "Group", "name": "system:bootstrappers",
             "apiGroup": "rbac.authorization.k8s.io"},
            {"kind": "Group", "name": "system:nodes", "apiGroup": "rbac.authorization.k8s.io"},
        ],
    },
)  # fmt: skip


async def publish(handlers: ResourceHandlers, data: dict[str, str]) -> None:
    """Keep the ConfigMap as this server's flags say (a restart with other flags
    updates it) and let joining hosts and nodes read it."""
    await create_missing(handlers, POLICY)
    await handlers.ensure(config_map(data), update=True)


class AgentFlags:
    """The flags an agent's children get from the server's settings."""

    def __init__(self, data: dict[str, str]) -> None:
        def flags(*pairs: tuple[str, str]) -> list[str]:
            return [arg for flag, key in pairs if data.get(key) for arg in (flag, data[key])]

        self.kubelet = flags(
            ("--cluster-cidr", "clusterCIDR"),
            ("--service-cidr", "serviceCIDR"),
            ("--cluster-dns", "clusterDNS"),
            ("--cluster-domain", "clusterDomain"),
        )
        self.proxy = flags(("--cluster-cidr", "clusterCIDR"))
        self.dns = flags(("--cluster-domain", "clusterDomain"))


async def fetch(bootstrap_kubeconfig: Path, user_agent: str) -> dict[str, str]:
    """The server's settings, read with the agent's bootstrap credentials; empty (the
    children keep their defaults) when the server publishes none (``pyk8s apiserver``
    alone, or an older server)."""
    async with Client(load_config(str(bootstrap_kubeconfig)), user_agent=user_agent) as client:
        try:
            cm = await client.request("GET", _PATH)
        except Exception as err:
            if not (is_not_found(err) or is_forbidden(err)):
                raise
            log.warning("the server publishes no cluster settings; using the defaults")
            return {}
    data: dict[str, str] = cm.get("data") or {}
    log.info("cluster settings from the server", extra=data)
    return data
