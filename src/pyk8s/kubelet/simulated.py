"""Simulated nodes: one process plays many kubelets "on paper" (what kwok is upstream).

Scale tests, scheduler benchmarks and controller tests need nodes that behave like
kubelets towards the API server — register a Node, renew its Lease, report pods Running
with IPs and conditions, honour graceful deletion, finish Jobs — without running
containers. :class:`SimulatedNodes` does exactly the API side of that, through
:mod:`pyk8s.client` like every other component, so what the control plane sees is what a
real node would show:

* **registration** — a Node per name with capacity/allocatable (cpu, memory, pods,
  ephemeral-storage, hugepages, extended resources), the kubelet's well-known labels
  (``kubernetes.io/hostname``, ``kubernetes.io/os``, ``kubernetes.io/arch`` and their
  ``beta.`` twins), user labels and taints, ``nodeInfo`` (kubeletVersion v1.32.0),
  an InternalIP from a fake range, and the kubelet's conditions (Ready=True
  ``KubeletReady``; the pressure conditions False);
* **heartbeat** — a ``coordination.k8s.io`` Lease per node in ``kube-node-lease`` renewed
  every 10 s (the kubelet's ``renewInterval``, a quarter of the 40 s lease); the Node
  status is re-posted whenever it is not what the node would report (e.g. after the
  node lifecycle controller marked it Unknown), and every 5 minutes otherwise
  (``nodeStatusReportFrequency``); ``lease_duration=0`` keeps no Leases (kwok's
  ``--node-lease-duration-seconds 0``, scheduler_perf's bare nodes);
* **pods** — one informer on pods with ``spec.nodeName!=`` (one watch for all simulated
  nodes, filtered locally, so thousands of nodes cost one connection); each pod bound to
  a running simulated node becomes Running with a pod IP from the node's ``podCIDR``
  (else a fake range), upstream's conditions and container statuses; the annotations
  ``pyk8s.io/sim-run-seconds`` and ``pyk8s.io/sim-exit-code`` make containers exit, and
  ``restartPolicy`` decides between a terminal phase and a restart;
* **graceful deletion** — a pod with ``deletionTimestamp`` "terminates" for a short
  while (at most its grace period), then is deleted with ``gracePeriodSeconds=0`` and a
  uid precondition, as the kubelet's status manager does;
* **stopping** — :meth:`SimulatedNodes.stop_node` freezes a node (no more lease renewals,
  no pod updates) so the node lifecycle controller sees it die; :meth:`start_node`
  brings it back;
* **usage** — :meth:`SimulatedNodes.resource_summary` is a node's synthetic CPU and
  memory usage (:mod:`pyk8s.kubelet.simusage`), which ``pyk8s sim-nodes`` serves as
  that node's ``/metrics/resource`` on kwok's path ``/metrics/nodes/{node}/metrics/resource``
  and names in the node's ``metrics.pyk8s.io/resource-metrics-url`` annotation, the
  address metrics-server scrapes instead of the fake InternalIP.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import hashlib
import ipaddress
import logging
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.api.spans import became_ready
from pyk8s.client import (
    Client,
    RateLimitingQueue,
    SharedInformer,
    ShutDown,
    is_already_exists,
    is_conflict,
    is_not_found,
)
from pyk8s.client.errors import ClientError
from pyk8s.client.tracing import SpanExporter
from pyk8s.kubelet.node import LEASE_DURATION_SECONDS, LEASE_NAMESPACE, renew_lease
from pyk8s.kubelet.simusage import SimulatedPod, UsageSimulator

__all__ = [
    "EXIT_CODE_ANNOTATION",
    "KUBELET_VERSION",
    "LEASE_DURATION_SECONDS",
    "LEASE_NAMESPACE",
    "RENEW_INTERVAL",
    "RESOURCE_METRICS_URL_ANNOTATION",
    "RUN_SECONDS_ANNOTATION",
    "NodeTemplate",
    "SimulatedNodes",
    "parse_taint",
]

log = logging.getLogger(__name__)

RUN_SECONDS_ANNOTATION = "pyk8s.io/sim-run-seconds"
#: where a simulated node's /metrics/resource is served (metrics-server scrapes it)
RESOURCE_METRICS_URL_ANNOTATION = "metrics.pyk8s.io/resource-metrics-url"
EXIT_CODE_ANNOTATION = "pyk8s.io/sim-exit-code"
#: the kubelet's renew interval (a quarter of its 40 s lease)
RENEW_INTERVAL = 10.0
#: the jitter factor of the kubelet's lease controller loop (each wait is the renew
#: interval plus up to this fraction of it)
RENEW_JITTER = 0.04
#: the kubelet's nodeStatusReportFrequency: status is re-posted at least this often
STATUS_REPORT_FREQUENCY = 300.0
KUBELET_VERSION = "v1.32.0"
#: the kubelet's container restart backoff: 10 s doubling to 5 minutes (the first
#: restart is immediate)
BACKOFF_INITIAL = 10.0
BACKOFF_MAX = 300.0
#: how long a simulated container takes to stop after a graceful delete (capped by grace)
TERMINATION_SECONDS = 1.0
#: pod status writes in flight at once: each real node's kubelet writes its own pods'
#: status, so thousands of nodes write side by side; 8 wrote ~9 statuses/s at 5,000
#: nodes when the API server took ~1 s per write; 32 kept pods waiting ~15 s for their
#: status write (p50) while the bench created 160 pods/s (bench/scale, issue 21)
WORKERS = 128
#: pod IPs of nodes without spec.podCIDR: a /24 per node index out of this range
FAKE_POD_RANGE = ipaddress.ip_network("10.128.0.0/9")
#: node InternalIPs: one per node index out of this range
FAKE_NODE_RANGE = ipaddress.ip_network("172.16.0.0/12")

NODES: Resource = REGISTRY.get("", "v1", "nodes")  # type: ignore[assignment]
PODS: Resource = REGISTRY.get("", "v1", "pods")  # type: ignore[assignment]

Obj = dict[str, Any]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _ts(t: dt.datetime | None = None) -> str:
    return (t or _now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_taint(text: str) -> Obj:
    """``key[=value]:Effect`` (the syntax of ``kubectl taint`` / ``--register-with-taints``)."""
    spec, sep, effect = text.rpartition(":")
    if not sep or effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
        raise ValueError(f"invalid taint {text!r}: want key[=value]:NoSchedule|…|NoExecute")
    key, _, value = spec.partition("=")
    if not key:
        raise ValueError(f"invalid taint {text!r}: no key")
    taint: Obj = {"key": key, "effect": effect}
    if value:
        taint["value"] = value
    return taint


@dataclass
class NodeTemplate:
    """What every simulated node of one process looks like."""

    cpu: str = "8"
    memory: str = "32Gi"
    pods: int = 110
    ephemeral_storage: str = "100Gi"
    extended: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[Obj] = field(default_factory=list)
    arch: str = "amd64"


@dataclass
class _Container:
    """One simulated container's life (restarts, current start)."""

    started_at: dt.datetime
    restart_count: int = 0
    last_terminated: Obj | None = None
    #: in CrashLoopBackOff until then, after a back-off of ``backoff`` seconds
    waiting_until: dt.datetime | None = None
    backoff: float = 0.0


@dataclass
class _PodState:
    uid: str
    node: str
    ip: str
    start_time: str
    containers: dict[str, _Container] = field(default_factory=dict)
    terminal: bool = False
    deleting: bool = False


@dataclass
class _Node:
    name: str
    index: int
    ip: str
    running: bool = True
    uid: str = ""
    lease_rv: str = ""
    lease_task: asyncio.Task[None] | None = None
    pod_cidr: str = ""
    next_ip: int = 2
    used_ips: set[str] = field(default_factory=set)
    last_status_post: float = 0.0
    #: this node's own shape (nodes added at run time); else the process's template
    template: NodeTemplate | None = None


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.nodes = Gauge("pyk8s_sim_nodes_running", "Simulated nodes running", registry=registry)
        self.pods = Gauge("pyk8s_sim_pods", "Pods on simulated nodes", registry=registry)
        self.lease_renewals = Counter(
            "pyk8s_sim_lease_renewals", "Node lease renewals", registry=registry
        )
        self.status_updates = Counter(
            "pyk8s_sim_pod_status_updates", "Pod status writes", registry=registry
        )


def _hex(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


class SimulatedNodes:
    """N simulated nodes named ``{prefix}{i}``; ``await start()``, ``await stop()``."""

    def __init__(
        self,
        client: Client,
        *,
        count: int,
        name_prefix: str = "sim-",
        template: NodeTemplate | None = None,
        renew_interval: float = RENEW_INTERVAL,
        lease_duration: int = LEASE_DURATION_SECONDS,
        termination_seconds: float = TERMINATION_SECONDS,
        workers: int = WORKERS,
        registry: CollectorRegistry | None = None,
        metrics_url: str = "",
        heartbeat_client: Client | None = None,
    ) -> None:
        """``metrics_url``: the base URL (``http://host:port``) under which the nodes'
        ``/metrics/resource`` is served, announced on each Node ("" announces none).
        ``heartbeat_client``: what renews the Leases and posts node status (default
        ``client``), as the kubelet's separate heartbeat client: thousands of renewals in
        one client's connection pool queue the pods' status writes behind them."""
        self.client = client
        self.heartbeat_client = heartbeat_client or client
        self.metrics_url = metrics_url
        self.usage = UsageSimulator()
        #: (second, node -> its pods' keys and states): what resource_summary walks
        self._pods_by_node: tuple[int, dict[str, list[tuple[str, _PodState]]]] = (-1, {})
        self.template = template or NodeTemplate()
        self.renew_interval = renew_interval
        self.lease_duration = lease_duration
        self.termination_seconds = termination_seconds
        self.workers = workers
        self.registry = registry or CollectorRegistry()
        self.metrics = _Metrics(self.registry)
        hosts = FAKE_NODE_RANGE.network_address
        self.nodes: dict[str, _Node] = {
            f"{name_prefix}{i}": _Node(f"{name_prefix}{i}", i, str(hosts + i + 1))
            for i in range(count)
        }
        self._pods: dict[str, _PodState] = {}  # by pod key
        self._queue: RateLimitingQueue[str] = RateLimitingQueue(name="sim-pods")
        self._informer: SharedInformer | None = None
        self._node_informer: SharedInformer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._registered = asyncio.Event()
        #: a span when a node first takes a pod and "creates its sandbox" (pyk8s trace)
        self.spans = SpanExporter(client, "kubelet")

    # ------------------------------------------------------------------ lifecycle

    def healthy(self) -> bool:
        return self._registered.is_set()

    async def start(self) -> None:
        """Register every node, start heartbeats and the pod worker; returns when all
        nodes are registered."""
        sem = asyncio.Semaphore(64)

        async def register(node: _Node) -> None:
            async with sem:
                await self._register(node)
            # as a kubelet: its Lease from the moment it is registered, not when the
            # last of thousands of nodes is (that made 5,000 Lease creates one burst)
            self._start_lease(node)

        await asyncio.gather(*(register(n) for n in self.nodes.values()))
        self._node_informer = SharedInformer.for_resource(self.client, NODES)
        self._node_informer.add_event_handler(
            on_add=self._node_changed, on_update=lambda _o, n: self._node_changed(n)
        )
        self._informer = SharedInformer.for_resource(
            self.client, PODS, field_selector="spec.nodeName!="
        )
        self._informer.add_event_handler(
            on_add=self._pod_event,
            on_update=lambda _o, n: self._pod_event(n),
            on_delete=self._pod_deleted,
        )
        self._node_informer.start()
        self._informer.start()
        for i in range(self.workers):
            self._tasks.append(asyncio.create_task(self._worker(), name=f"sim-pods-{i}"))
        self._registered.set()
        self.metrics.nodes.set(sum(1 for n in self.nodes.values() if n.running))

    async def stop(self) -> None:
        """Stop everything (the nodes stay registered and will go Unknown)."""
        self._queue.shutdown()
        tasks = list(self._tasks)
        for node in self.nodes.values():
            if node.lease_task is not None:
                tasks.append(node.lease_task)
                node.lease_task = None
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
        for inf in (self._informer, self._node_informer):
            if inf is not None:
                await inf.stop()
        await self.spans.close()

    def stop_node(self, name: str) -> None:
        """Freeze one node: no lease renewals, status posts or pod updates any more."""
        node = self.nodes[name]
        node.running = False
        if node.lease_task is not None:
            node.lease_task.cancel()
            node.lease_task = None
        self.metrics.nodes.set(sum(1 for n in self.nodes.values() if n.running))
        log.info("simulated node stopped", extra={"node": name})

    def start_node(self, name: str) -> None:
        """Bring a stopped node back: it renews its lease and reports Ready again."""
        node = self.nodes[name]
        if node.running:
            return
        node.running = True
        node.last_status_post = 0.0
        self._start_lease(node)
        self.metrics.nodes.set(sum(1 for n in self.nodes.values() if n.running))
        if self._node_informer is not None:
            obj = self._node_informer.store.get(name)
            if obj is not None:
                self._node_changed(obj)
        if self._informer is not None:
            for pod in self._informer.store.list():
                if (pod.get("spec") or {}).get("nodeName") == name:
                    self._pod_event(pod)

    async def add_node(self, name: str, template: NodeTemplate) -> None:
        """Register one more node of its own shape (a cluster autoscaler's new node);
        returns once the Node exists and its lease runs. Adopts a registered Node of
        that name (an autoscaler restarted)."""
        if name in self.nodes:
            return
        index = max((n.index for n in self.nodes.values()), default=-1) + 1
        node = _Node(name, index, str(FAKE_NODE_RANGE.network_address + index + 1))
        node.template = template
        self.nodes[name] = node
        await self._register(node)
        self._start_lease(node)
        self.metrics.nodes.set(sum(1 for n in self.nodes.values() if n.running))

    async def remove_node(self, name: str) -> None:
        """Stop one node and delete its Node object (a cloud provider deleting the
        instance); its pods are left to the pod garbage collector, as upstream."""
        if name not in self.nodes:
            return
        self.stop_node(name)
        del self.nodes[name]
        try:
            await self.client.delete(NODES, name)
        except ClientError as err:
            if not is_not_found(err):
                raise

    # ------------------------------------------------------------------ nodes

    def _node_status(self, node: _Node) -> Obj:
        t = node.template or self.template
        now = _ts()
        resources: Obj = {
            "cpu": t.cpu,
            "memory": t.memory,
            "pods": str(t.pods),
            "ephemeral-storage": t.ephemeral_storage,
            "hugepages-1Gi": "0",
            "hugepages-2Mi": "0",
            **t.extended,
        }

        def cond(ctype: str, status: str, reason: str, message: str) -> Obj:
            return {
                "type": ctype,
                "status": status,
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
                "reason": reason,
                "message": message,
            }

        ident = _hex("sim-node", node.name)
        return {
            "capacity": dict(resources),
            "allocatable": dict(resources),
            "conditions": [
                cond(
                    "MemoryPressure",
                    "False",
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                ),
                cond(
                    "DiskPressure",
                    "False",
                    "KubeletHasNoDiskPressure",
                    "kubelet has no disk pressure",
                ),
                cond(
                    "PIDPressure",
                    "False",
                    "KubeletHasSufficientPID",
                    "kubelet has sufficient PID available",
                ),
                cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": node.ip},
                {"type": "Hostname", "address": node.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": ident[:32],
                "systemUUID": str(uuid.UUID(ident[:32])),
                "bootID": ident[32:64],
                "kernelVersion": "6.1.0-sim",
                "osImage": "pyk8s simulated node",
                "containerRuntimeVersion": "sim://1.0.0",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION,
                "operatingSystem": "linux",
                "architecture": t.arch,
            },
        }

    def _node_object(self, node: _Node) -> Obj:
        t = node.template or self.template
        labels = {
            "beta.kubernetes.io/arch": t.arch,
            "beta.kubernetes.io/os": "linux",
            "kubernetes.io/arch": t.arch,
            "kubernetes.io/hostname": node.name,
            "kubernetes.io/os": "linux",
            "type": "pyk8s-sim",
            **t.labels,
        }
        annotations = {
            "node.alpha.kubernetes.io/ttl": "0",
            "volumes.kubernetes.io/controller-managed-attach-detach": "true",
        }
        if self.metrics_url:
            url = f"{self.metrics_url}/metrics/nodes/{node.name}/metrics/resource"
            annotations[RESOURCE_METRICS_URL_ANNOTATION] = url
        spec: Obj = {}
        if t.taints:
            spec["taints"] = copy.deepcopy(t.taints)
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": node.name,
                "labels": labels,
                "annotations": annotations,
            },
            "spec": spec,
            "status": self._node_status(node),
        }

    async def _register(self, node: _Node) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                obj = await self.client.create(NODES, self._node_object(node))
            except ClientError as err:
                if is_already_exists(err):
                    obj = await self._post_status(node)
                else:
                    log.warning("registering node %s failed: %s; retrying", node.name, err)
                    await asyncio.sleep(1.0)
                    continue
            node.uid = str(obj["metadata"].get("uid", ""))
            node.pod_cidr = str((obj.get("spec") or {}).get("podCIDR") or "")
            node.last_status_post = loop.time()
            return

    async def _post_status(self, node: _Node) -> Obj:
        status = self._node_status(node)
        obj: Obj = await self.heartbeat_client.patch(
            NODES, node.name, {"status": status}, patch_type="merge", subresource="status"
        )
        node.last_status_post = asyncio.get_running_loop().time()
        return obj

    def _node_changed(self, obj: Obj) -> None:
        name = obj["metadata"]["name"]
        node = self.nodes.get(name)
        if node is None or not node.running:
            return
        node.uid = str(obj["metadata"].get("uid", "")) or node.uid
        cidr = str((obj.get("spec") or {}).get("podCIDR") or "")
        if cidr and cidr != node.pod_cidr:
            node.pod_cidr, node.next_ip = cidr, 2
        ready = next(
            (
                c
                for c in (obj.get("status") or {}).get("conditions") or []
                if c.get("type") == "Ready"
            ),
            None,
        )
        if ready is None or ready.get("status") != "True":
            # somebody (node lifecycle) says we are not Ready: the kubelet would post again
            self._spawn(self._repost(node))

    async def _repost(self, node: _Node) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() - node.last_status_post < 1.0:
            return
        node.last_status_post = loop.time()
        with contextlib.suppress(ClientError):
            await self._post_status(node)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    def _start_lease(self, node: _Node) -> None:
        node.lease_task = asyncio.create_task(self._lease_loop(node), name=f"lease-{node.name}")

    async def _lease_loop(self, node: _Node) -> None:
        loop = asyncio.get_running_loop()
        first = True
        while node.running:
            try:
                if self.lease_duration > 0:  # 0: no Leases (kwok's option)
                    await self._renew(node)
                    self.metrics.lease_renewals.inc()
                if loop.time() - node.last_status_post > STATUS_REPORT_FREQUENCY:
                    await self._post_status(node)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                # lease_rv is kept (see kubelet.node.NodeAgent._lease_loop)
                log.warning("node %s: lease renewal failed: %s", node.name, err)
            # Real kubelets start at their own times, so their renewals are spread over
            # the interval; nodes registered together would renew together: the first
            # wait is a random part of the interval (a uniform phase), then the interval
            # with the lease controller's jitter (JitterUntil, factor 0.04)
            if first:
                delay = self.renew_interval * random.uniform(0.0, 1.0)
            else:
                delay = self.renew_interval * (1.0 + RENEW_JITTER * random.random())
            first = False
            await asyncio.sleep(delay)

    async def _renew(self, node: _Node) -> None:
        node.lease_rv = await renew_lease(
            self.heartbeat_client, node.name, node.uid, node.lease_rv, self.lease_duration
        )

    def resource_summary(self, name: str, now: float) -> Obj | None:
        """Node ``name``'s synthetic usage summary at ``now`` (None: no such running
        node): its pods that run, each running container at its annotated usage."""
        node = self.nodes.get(name)
        if node is None or not node.running or self._informer is None:
            return None
        second = int(now)
        if self._pods_by_node[0] != second:  # one grouping per second serves every node
            grouped: dict[str, list[tuple[str, _PodState]]] = {}
            for key, state in self._pods.items():
                grouped.setdefault(state.node, []).append((key, state))
            self._pods_by_node = (second, grouped)
        pods = []
        for key, state in self._pods_by_node[1].get(name, ()):
            pod = self._informer.store.get(key)
            if state.terminal or state.deleting or pod is None or self._pods.get(key) is not state:
                continue
            started = {
                cname: c.started_at
                for cname, c in state.containers.items()
                if c.waiting_until is None
            }
            pods.append(SimulatedPod(pod, started))
        return self.usage.summary(name, pods, now)

    # ------------------------------------------------------------------ pods

    def _pod_event(self, pod: Obj) -> None:
        node = self.nodes.get(str((pod.get("spec") or {}).get("nodeName") or ""))
        if node is None or not node.running:
            return
        meta = pod["metadata"]
        self._queue.add(f"{meta.get('namespace', '')}/{meta['name']}")

    def _pod_deleted(self, pod: Obj) -> None:
        meta = pod["metadata"]
        state = self._pods.get(f"{meta.get('namespace', '')}/{meta['name']}")
        if state is not None and state.uid == meta.get("uid"):
            self._forget(f"{meta.get('namespace', '')}/{meta['name']}")

    def _forget(self, key: str) -> None:
        state = self._pods.pop(key, None)
        if state is not None:
            node = self.nodes.get(state.node)
            if node is not None:
                node.used_ips.discard(state.ip)
        self.metrics.pods.set(len(self._pods))

    async def _worker(self) -> None:
        while True:
            try:
                key = await self._queue.get()
            except ShutDown:
                return
            try:
                delay = await self._sync(key)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                if not (isinstance(err, ClientError) and is_conflict(err)):
                    log.warning("syncing pod %s failed: %s", key, err)
                self._queue.add_rate_limited(key)
            else:
                self._queue.forget(key)
                if delay is not None:
                    self._queue.add_after(key, delay)
            finally:
                self._queue.done(key)

    def _allocate_ip(self, node: _Node) -> str:
        if node.pod_cidr:
            net = ipaddress.ip_network(node.pod_cidr, strict=False)
        else:
            net = ipaddress.ip_network(
                (int(FAKE_POD_RANGE.network_address) + (node.index << 8), 24)
            )
        size = net.num_addresses
        for _ in range(size):
            if node.next_ip >= size - 1:
                node.next_ip = 2
            ip = str(net.network_address + node.next_ip)
            node.next_ip += 1
            if ip not in node.used_ips:
                node.used_ips.add(ip)
                return ip
        raise RuntimeError(f"node {node.name}: no free pod IP in {net}")

    def _state_for(self, key: str, pod: Obj, node: _Node) -> _PodState:
        uid = str(pod["metadata"].get("uid", ""))
        state = self._pods.get(key)
        if state is not None and state.uid == uid:
            return state
        if state is not None:
            self._forget(key)
        status = pod.get("status") or {}
        now = _now()
        ip = str(status.get("podIP") or "")
        if ip:
            node.used_ips.add(ip)
        else:
            ip = self._allocate_ip(node)
        state = _PodState(uid, node.name, ip, str(status.get("startTime") or _ts(now)))
        previous = {c.get("name"): c for c in status.get("containerStatuses") or []}
        for c in (pod.get("spec") or {}).get("containers") or []:
            old = previous.get(c["name"]) or {}
            started = ((old.get("state") or {}).get("running") or {}).get("startedAt")
            state.containers[c["name"]] = _Container(
                started_at=_parse_ts(started) if started else now,
                restart_count=int(old.get("restartCount") or 0),
            )
        state.terminal = status.get("phase") in ("Succeeded", "Failed")
        self._pods[key] = state
        if not status.get("podIP"):  # new to this node, not adopted after a restart
            seen = time.time()
            self.spans.record(pod, "kubelet.seen", seen, seen, {"node": node.name})
            self.spans.record(pod, "kubelet.sandbox", seen, seen, {"ips": [ip], "simulated": True})
        self.metrics.pods.set(len(self._pods))
        return state

    async def _sync(self, key: str) -> float | None:
        """Bring one pod's status to what the simulated node would report; the seconds
        until it should be looked at again (a container exit), if any."""
        assert self._informer is not None
        pod = self._informer.store.get(key)
        if pod is None:
            self._forget(key)
            return None
        node = self.nodes.get(str((pod.get("spec") or {}).get("nodeName") or ""))
        if node is None or not node.running:
            return None
        meta = pod["metadata"]
        state = self._state_for(key, pod, node)
        if meta.get("deletionTimestamp"):
            return await self._terminate(key, pod, state)
        if state.terminal:
            return None
        now = _now()
        annotations = meta.get("annotations") or {}
        run_seconds = _float(annotations.get(RUN_SECONDS_ANNOTATION))
        exit_code = int(_float(annotations.get(EXIT_CODE_ANNOTATION)) or 0)
        policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
        next_check: float | None = None
        finished: dict[str, Obj] = {}
        if run_seconds is None and EXIT_CODE_ANNOTATION in annotations:
            run_seconds = 0.0
        if run_seconds is not None:
            for name, c in state.containers.items():
                if c.waiting_until is not None:
                    if now < c.waiting_until:
                        left = (c.waiting_until - now).total_seconds()
                        next_check = left if next_check is None else min(next_check, left)
                        continue
                    c.waiting_until, c.started_at = None, now
                    c.restart_count += 1
                ends = c.started_at + dt.timedelta(seconds=run_seconds)
                if now < ends:
                    left = (ends - now).total_seconds()
                    next_check = left if next_check is None else min(next_check, left)
                    continue
                term = {
                    "exitCode": exit_code,
                    "reason": "Completed" if exit_code == 0 else "Error",
                    "startedAt": _ts(c.started_at),
                    "finishedAt": _ts(ends),
                    "containerID": self._container_id(pod, name, c.restart_count),
                }
                restart = policy == "Always" or (policy == "OnFailure" and exit_code != 0)
                if not restart:
                    finished[name] = term
                    continue
                c.last_terminated = term
                if c.restart_count == 0:
                    # the first restart is immediate; later ones back off
                    c.restart_count += 1
                    c.started_at = now
                    left = max(run_seconds, 0.05)
                else:
                    c.backoff = min(c.backoff * 2, BACKOFF_MAX) if c.backoff else BACKOFF_INITIAL
                    c.waiting_until = now + dt.timedelta(seconds=c.backoff)
                    left = c.backoff
                next_check = left if next_check is None else min(next_check, left)
        if finished and len(finished) == len(state.containers):
            failed = any(t["exitCode"] != 0 for t in finished.values())
            state.terminal = True
            status = self._pod_status(pod, state, "Failed" if failed else "Succeeded", finished)
        else:
            status = self._pod_status(pod, state, "Running", finished)
        await self._write_status(pod, status)
        if state.terminal:
            node.used_ips.discard(state.ip)
            return None
        return next_check

    async def _terminate(self, key: str, pod: Obj, state: _PodState) -> float | None:
        meta = pod["metadata"]
        if not state.deleting:
            state.deleting = True
            grace = float(meta.get("deletionGracePeriodSeconds") or 0)
            delay = min(grace, self.termination_seconds)
            if delay > 0:
                return delay
        try:
            await self.client.delete(
                PODS,
                meta["name"],
                meta.get("namespace"),
                grace_period_seconds=0,
                preconditions={"uid": str(meta.get("uid", ""))},
            )
        except ClientError as err:
            if not (is_not_found(err) or is_conflict(err)):
                raise
        self._forget(key)
        return None

    def _container_id(self, pod: Obj, name: str, restarts: int) -> str:
        return "sim://" + _hex(str(pod["metadata"].get("uid", "")), name, str(restarts))

    def _pod_status(
        self, pod: Obj, state: _PodState, phase: str, finished: Mapping[str, Obj]
    ) -> Obj:
        spec = pod.get("spec") or {}
        old = pod.get("status") or {}
        node = self.nodes[state.node]
        now = _ts()
        terminal = phase in ("Succeeded", "Failed")
        meta = pod["metadata"]
        unready = [
            str(cs["name"])
            for cs in spec.get("containers") or []
            if cs["name"] in finished
            or (state.containers.get(cs["name"]) or _Container(_now())).waiting_until is not None
        ]
        ready = "False" if terminal or unready else "True"
        not_ready_reason = "PodCompleted" if terminal else "ContainersNotReady" if unready else ""
        not_ready_message = (
            f"containers with unready status: [{' '.join(unready)}]"
            if unready and not terminal
            else ""
        )
        old_conds = {c.get("type"): c for c in old.get("conditions") or []}

        def cond(ctype: str, status: str, reason: str = "", message: str = "") -> Obj:
            prev = old_conds.get(ctype)
            c: Obj = {
                "type": ctype,
                "status": status,
                "lastTransitionTime": (
                    prev.get("lastTransitionTime") if prev and prev.get("status") == status else now
                ),
            }
            if reason:
                c["reason"] = reason
            if message:
                c["message"] = message
            return c

        conditions = [
            cond("PodReadyToStartContainers", "False" if terminal else "True"),
            cond("Initialized", "True"),
            cond("Ready", ready, not_ready_reason, not_ready_message),
            cond("ContainersReady", ready, not_ready_reason, not_ready_message),
            old_conds.get("PodScheduled") or cond("PodScheduled", "True"),
        ]
        for ctype, c in old_conds.items():
            if ctype not in {x["type"] for x in conditions}:
                conditions.append(c)
        statuses = []
        for cspec in spec.get("containers") or []:
            name = cspec["name"]
            c = state.containers.get(name) or _Container(_now())
            image = str(cspec.get("image", ""))
            st: Obj = {
                "name": name,
                "image": image,
                "imageID": f"sim://{image}@sha256:{_hex('image', image)}",
                "restartCount": c.restart_count,
                "lastState": {"terminated": c.last_terminated} if c.last_terminated else {},
            }
            if name in finished:
                st.update(
                    state={"terminated": finished[name]},
                    ready=False,
                    started=False,
                    containerID=finished[name]["containerID"],
                )
            elif c.waiting_until is not None:
                pod_ref = f"{meta['name']}_{meta.get('namespace', '')}({meta.get('uid', '')})"
                st.update(
                    state={
                        "waiting": {
                            "reason": "CrashLoopBackOff",
                            "message": f"back-off {int(c.backoff)}s "
                            f"restarting failed container={name} pod={pod_ref}",
                        }
                    },
                    ready=False,
                    started=False,
                    containerID=self._container_id(pod, name, c.restart_count),
                )
            else:
                st.update(
                    state={"running": {"startedAt": _ts(c.started_at)}},
                    ready=not terminal,
                    started=True,
                    containerID=self._container_id(pod, name, c.restart_count),
                )
            statuses.append(st)
        status: Obj = {
            **{k: v for k, v in old.items() if k in ("qosClass", "nominatedNodeName")},
            "phase": phase,
            "conditions": conditions,
            "hostIP": node.ip,
            "hostIPs": [{"ip": node.ip}],
            "podIP": state.ip,
            "podIPs": [{"ip": state.ip}],
            "startTime": state.start_time,
            "containerStatuses": statuses,
        }
        inits = spec.get("initContainers") or []
        if inits:
            status["initContainerStatuses"] = [
                {
                    "name": ic["name"],
                    "image": ic.get("image", ""),
                    "imageID": f"sim://{ic.get('image', '')}",
                    "containerID": self._container_id(pod, ic["name"], 0),
                    "restartCount": 0,
                    "ready": True,
                    "started": False,
                    "lastState": {},
                    "state": {
                        "terminated": {
                            "exitCode": 0,
                            "reason": "Completed",
                            "startedAt": state.start_time,
                            "finishedAt": state.start_time,
                        }
                    },
                }
                for ic in inits
            ]
        return status

    async def _write_status(self, pod: Obj, status: Obj) -> None:
        old = pod.get("status") or {}
        if _same_status(old, status):
            return
        # the client only encodes it: a shallow copy with the new status is enough (a
        # deep copy of the pod took ~0.3 ms per pod started at load ~15)
        body = {**pod, "status": status}
        started = time.time()
        await self.client.update_status(PODS, body)
        self.metrics.status_updates.inc()
        if became_ready(old, status):
            self.spans.record(pod, "kubelet.ready", started, time.time())


def _status_digest(status: Obj) -> Any:
    """What matters in a pod status, so that server-side normalisation (dropped nulls,
    re-ordered fields) never makes us write the same status again and again."""
    return (
        status.get("phase"),
        status.get("podIP"),
        status.get("hostIP"),
        sorted((str(c.get("type")), str(c.get("status"))) for c in status.get("conditions") or []),
        [
            (
                c.get("name"),
                sorted((c.get("state") or {}).keys()),
                c.get("ready"),
                c.get("restartCount"),
                c.get("containerID"),
            )
            for c in status.get("containerStatuses") or []
        ],
        len(status.get("initContainerStatuses") or []),
    )


def _same_status(old: Obj, new: Obj) -> bool:
    return bool(_status_digest(old) == _status_digest(new))


def _parse_ts(text: str) -> dt.datetime:
    try:
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return _now()


def _float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
