"""The node authorizer's graph: which objects lead to which node.

Why a graph: a kubelet may read a secret only because a pod bound to its node mounts it
(or a persistent volume that pod's claim is bound to names it). Upstream keeps a graph of
those references, fed by informers, and answers "is there a path from this object to
that node". pyk8s keeps the same graph from the API server's watch cache, with upstream's
vertices and edges::

    pod -> node                       (the pod is bound to the node)
    secret | configmap | serviceaccount | pvc -> pod   (the pod references it)
    pv -> pvc                         (the volume's claimRef)
    secret -> pv                      (a secret the kubelet needs to mount the volume)

A mirror pod (the ``kubernetes.io/config.mirror`` annotation) adds only its edge to the
node: a node creates mirror pods itself, so they must never grant it anything.

Edges are counted per object that put them there, so replacing or deleting a pod or a
volume removes exactly its edges. The graph follows the cache through one cache watch per
resource, drained at the start of every check (as the RBAC authorizer does), so a request
sees every pod the cache has applied before it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pyk8s.apiserver.watchcache import DELETED, CacheWatcher, WatchCache

__all__ = [
    "CONFIGMAP",
    "MIRROR_POD_ANNOTATION",
    "NODE",
    "POD",
    "PV",
    "PVC",
    "SECRET",
    "SERVICE_ACCOUNT",
    "NodeGraph",
    "Vertex",
    "pod_configmap_names",
    "pod_edges",
    "pod_secret_names",
    "pv_edges",
]

NODE, POD, SECRET, CONFIGMAP, SERVICE_ACCOUNT, PVC, PV = (
    "node",
    "pod",
    "secret",
    "configmap",
    "serviceAccount",
    "pvc",
    "pv",
)
#: (vertex type, namespace, name); cluster-scoped vertices have namespace ""
Vertex = tuple[str, str, str]
Edge = tuple[Vertex, Vertex]

MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"

_PODS = "/registry/core/pods/"
_PVS = "/registry/core/persistentvolumes/"

#: the volume sources whose ``secretRef`` names a secret the kubelet reads
_SECRET_REF_VOLUMES = ("cephfs", "cinder", "flexVolume", "rbd", "scaleIO", "iscsi", "storageos")


def _name_of(ref: Any, key: str = "name") -> str:
    return str(ref.get(key) or "") if isinstance(ref, Mapping) else ""


def _containers(spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(field) or ():
            if isinstance(c, Mapping):
                yield c


def pod_secret_names(spec: Mapping[str, Any]) -> Iterator[str]:
    """upstream's ``VisitPodSecretNames``."""
    for ref in spec.get("imagePullSecrets") or ():
        yield _name_of(ref)
    for c in _containers(spec):
        for env_from in c.get("envFrom") or ():
            yield _name_of((env_from or {}).get("secretRef"))
        for env in c.get("env") or ():
            yield _name_of(((env or {}).get("valueFrom") or {}).get("secretKeyRef"))
    for v in spec.get("volumes") or ():
        if not isinstance(v, Mapping):
            continue
        yield _name_of(v.get("secret"), "secretName")
        yield _name_of(v.get("azureFile"), "secretName")
        for kind in _SECRET_REF_VOLUMES:
            yield _name_of((v.get(kind) or {}).get("secretRef"))
        yield _name_of((v.get("csi") or {}).get("nodePublishSecretRef"))
        for source in (v.get("projected") or {}).get("sources") or ():
            yield _name_of((source or {}).get("secret"))


def pod_configmap_names(spec: Mapping[str, Any]) -> Iterator[str]:
    """upstream's ``VisitPodConfigmapNames``."""
    for c in _containers(spec):
        for env_from in c.get("envFrom") or ():
            yield _name_of((env_from or {}).get("configMapRef"))
        for env in c.get("env") or ():
            yield _name_of(((env or {}).get("valueFrom") or {}).get("configMapKeyRef"))
    for v in spec.get("volumes") or ():
        if not isinstance(v, Mapping):
            continue
        yield _name_of(v.get("configMap"))
        for source in (v.get("projected") or {}).get("sources") or ():
            yield _name_of((source or {}).get("configMap"))


def _pod_claims(pod_name: str, spec: Mapping[str, Any]) -> Iterator[str]:
    """The PVCs a pod's volumes use (an ephemeral volume's claim is ``<pod>-<volume>``)."""
    for v in spec.get("volumes") or ():
        if not isinstance(v, Mapping):
            continue
        if isinstance(v.get("persistentVolumeClaim"), Mapping):
            yield _name_of(v["persistentVolumeClaim"], "claimName")
        elif isinstance(v.get("ephemeral"), Mapping):
            yield f"{pod_name}-{v.get('name', '')}"


def pod_edges(pod: Mapping[str, Any]) -> list[Edge]:
    """The edges a pod puts in the graph (none for a pod not bound to a node)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    node = str(spec.get("nodeName") or "")
    if not node:
        return []
    ns, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
    pod_vertex: Vertex = (POD, ns, name)
    edges: list[Edge] = [(pod_vertex, (NODE, "", node))]
    if MIRROR_POD_ANNOTATION in (meta.get("annotations") or {}):
        return edges
    sources: list[Vertex] = []
    if spec.get("serviceAccountName"):
        sources.append((SERVICE_ACCOUNT, ns, str(spec["serviceAccountName"])))
    sources += [(SECRET, ns, s) for s in pod_secret_names(spec) if s]
    sources += [(CONFIGMAP, ns, c) for c in pod_configmap_names(spec) if c]
    sources += [(PVC, ns, c) for c in _pod_claims(name, spec) if c]
    edges += [(source, pod_vertex) for source in dict.fromkeys(sources)]
    return edges


def _pv_secret_refs(spec: Mapping[str, Any], claim_ns: str) -> Iterator[tuple[str, str]]:
    """upstream's ``VisitPVSecretNames``, the kubelet-visible ones: (namespace, name)."""
    azure = spec.get("azureFile")
    if isinstance(azure, Mapping) and azure.get("secretName"):
        yield str(azure.get("secretNamespace") or claim_ns), str(azure["secretName"])
    refs = [(spec.get(kind) or {}).get("secretRef") for kind in _SECRET_REF_VOLUMES]
    csi = spec.get("csi") or {}
    refs += [csi.get(k) for k in ("nodePublishSecretRef", "nodeStageSecretRef")]
    refs.append(csi.get("nodeExpandSecretRef"))
    for ref in refs:
        if isinstance(ref, Mapping) and ref.get("name"):
            yield str(ref.get("namespace") or claim_ns), str(ref["name"])


def pv_edges(pv: Mapping[str, Any]) -> list[Edge]:
    """The edges a persistent volume puts in the graph (none unless it has a claim)."""
    spec = pv.get("spec") or {}
    claim = spec.get("claimRef")
    if not isinstance(claim, Mapping) or not claim.get("name"):
        return []
    pv_vertex: Vertex = (PV, "", str((pv.get("metadata") or {}).get("name") or ""))
    claim_ns = str(claim.get("namespace") or "")
    edges: list[Edge] = [(pv_vertex, (PVC, claim_ns, str(claim["name"])))]
    for ns, secret in dict.fromkeys(_pv_secret_refs(spec, claim_ns)):
        edges.append(((SECRET, ns, secret), pv_vertex))
    return edges


class NodeGraph:
    """Upstream's node authorizer graph over the watch cache (module docstring)."""

    def __init__(self, cache: WatchCache) -> None:
        self.cache = cache
        self._watchers: dict[str, CacheWatcher] = {}
        #: vertex -> {vertex it points to: how many objects put that edge there}
        self._out: dict[Vertex, dict[Vertex, int]] = {}
        #: storage key -> the edges that object put in the graph
        self._by_key: dict[str, list[Edge]] = {}
        #: upstream's destination-edge index: vertex -> {node: how many of the vertex's
        #: pods are bound to it}, so a Secret or ConfigMap every pod mounts
        #: (``kube-root-ca.crt``) is decided without walking all of its pods
        self._dest: dict[Vertex, dict[str, int]] = {}
        #: vertex -> how many of its edges lead to pods (all of them: the index is complete)
        self._dest_total: dict[Vertex, int] = {}

    # ------------------------------------------------------------------ following the cache

    def sync(self) -> None:
        """Apply the pod and volume changes the cache has seen since the last call."""
        if len(self._watchers) != 2 or any(w.closed for w in self._watchers.values()):
            self._rebuild()
            return
        for watcher in self._watchers.values():
            queue = watcher.queue
            while not queue.empty():
                ev = queue.get_nowait()
                if ev is None:  # the cache relisted or stopped: start over
                    self._rebuild()
                    return
                self.put(ev.key, None if ev.type == DELETED else ev.entry.obj)

    def _rebuild(self) -> None:
        for w in self._watchers.values():
            w.close()
        self._watchers.clear()
        self._out.clear()
        self._by_key.clear()
        self._dest.clear()
        self._dest_total.clear()
        revision = self.cache.revision
        for prefix in (_PODS, _PVS):
            for entry in self.cache.list(prefix):
                self.put(entry.key, entry.obj)
            self._watchers[prefix] = self.cache.watch(prefix, revision)

    def put(self, key: str, obj: Mapping[str, Any] | None) -> None:
        """Replace the edges of the object at ``key`` (``None``: it was deleted)."""
        old = self._by_key.pop(key, ())
        if old and key.startswith(_PODS):
            self._index_pod(old, -1)
        for source, target in old:
            targets = self._out[source]
            targets[target] -= 1
            if not targets[target]:
                del targets[target]
                if not targets:
                    del self._out[source]
        if obj is None:
            return
        edges = pod_edges(obj) if key.startswith(_PODS) else pv_edges(obj)
        if not edges:
            return
        self._by_key[key] = edges
        for source, target in edges:
            targets = self._out.setdefault(source, {})
            targets[target] = targets.get(target, 0) + 1
        if key.startswith(_PODS):
            self._index_pod(edges, 1)

    def _index_pod(self, edges: list[Edge], delta: int) -> None:
        """Count (or uncount) a pod's sources as leading to its node."""
        node = edges[0][1][2]  # pod_edges puts pod -> node first
        for source, _ in edges[1:]:
            nodes = self._dest.setdefault(source, {})
            nodes[node] = nodes.get(node, 0) + delta
            if not nodes[node]:
                del nodes[node]
            total = self._dest_total.get(source, 0) + delta
            if total:
                self._dest_total[source] = total
            else:
                self._dest_total.pop(source, None)
                self._dest.pop(source, None)

    # ------------------------------------------------------------------ questions

    def has_path(self, start: Vertex, node_name: str) -> bool:
        """Is there a path from ``start`` to the node, as the cache stands now?"""
        self.sync()
        return self.reaches(start, node_name)

    def reaches(self, start: Vertex, node_name: str) -> bool:
        """Is there a path from ``start`` to the node (never through another node) in the
        graph as it is (see :meth:`has_path` for the cache's latest)?"""
        nodes = self._dest.get(start)
        if nodes is not None:
            if nodes.get(node_name):
                return True
            if self._dest_total[start] == len(self._out.get(start, ())):
                return False  # every edge leads to a pod, and none of them is on the node
        goal: Vertex = (NODE, "", node_name)
        seen = {start}
        stack = [start]
        while stack:
            for target in self._out.get(stack.pop(), ()):
                if target == goal:
                    return True
                if target[0] != NODE and target not in seen:
                    seen.add(target)
                    stack.append(target)
        return False
