"""The proxy's control loop: watch Services and EndpointSlices, keep the kernel in step.

The mode (``nftables``, the default, or ``iptables``) only chooses the renderer and the
applier; both read the same model (:mod:`pyk8s.proxy.model`), so a Service feature added
there reaches every mode. After each applied change the stale UDP/SCTP conntrack entries are cleared
(:mod:`pyk8s.proxy.conntrack`). A failed sync leaves the previous rules in place, is
retried with exponential backoff (from ``min_sync_period`` up to ``sync_period``), counted
in the mode's failure metric and reported once per failure streak as a Warning event on
the Node. The health-check node ports of Local-policy load balancers are served from
here after every sync (:mod:`pyk8s.proxy.healthcheck`).

On a dual-stack node (``cluster_cidr`` a ``v4,v6`` pair, or, as upstream decides it, a
node with addresses of both families) each sync renders and applies one ruleset per
family, as upstream's per-family proxiers: the ``ip`` and ``ip6`` ``kube-proxy`` tables,
or iptables-restore and ip6tables-restore.

Every change marks the ruleset dirty; a single loop re-renders and applies it, at most
once per ``min_sync_period`` (changes arriving meanwhile are batched into the next sync)
and at least once per ``sync_period`` (then the jump rules are checked and the restore
runs even if nothing changed, repairing rules someone else removed). In nftables mode,
as upstream's partial syncs, a sync between two full ones re-renders only the Services
whose Service or EndpointSlices changed and writes only their chains and map elements;
the full ones (the first, every ``sync_period``, and after a failure) render them all.
Network programming latency is measured from the first change seen to the restore that
carried it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import Client, ClientError, EventRecorder, SharedInformer
from pyk8s.proxy import conntrack
from pyk8s.proxy.healthcheck import HealthCheckServer
from pyk8s.proxy.iptables import Applier, IptablesError, cleanup, run
from pyk8s.proxy.model import (
    HealthCheck,
    endpoints_by_port,
    health_checks,
    service_key,
    service_ports,
    slice_service_key,
)
from pyk8s.proxy.nftables import NftablesError, NftApplier, cleanup_nftables
from pyk8s.proxy.nftrules import IPV4, IPV6, NftRenderer
from pyk8s.proxy.rules import MASQ_MARK, ProxyConfig, family_config, render

__all__ = ["MODES", "Proxier"]

#: the proxy modes this proxier implements
MODES = ("iptables", "nftables")

log = logging.getLogger(__name__)


def _families(cluster_cidr: str) -> list[int]:
    """The IP families of ``cluster_cidr`` (one CIDR or a ``v4,v6`` pair), in its order."""
    out: list[int] = []
    for cidr in cluster_cidr.split(","):
        with contextlib.suppress(ValueError):
            version = ipaddress.ip_network(cidr.strip(), strict=False).version
            if version not in out:
                out.append(version)
    return out or [4]


_BY_SERVICE = "service"


def _slice_service(sl: Any) -> list[str]:
    key = slice_service_key(sl)
    return [key] if key else []


def _resource(group: str, plural: str) -> Resource:
    resource = REGISTRY.get(group, "v1", plural)
    assert resource is not None, plural
    return resource


NODES = _resource("", "nodes")
SERVICES = _resource("", "services")
ENDPOINT_SLICES = _resource("discovery.k8s.io", "endpointslices")
_LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)


class Proxier:
    """kube-proxy (iptables or nftables mode) for one node."""

    def __init__(
        self,
        client: Client,
        node_name: str,
        *,
        cluster_cidr: str = "10.42.0.0/16",
        masquerade_mark: int = MASQ_MARK,
        node_ips: Sequence[str] = (),
        nodeport_addresses: Sequence[str] = (),
        min_sync_period: float = 1.0,
        sync_period: float = 30.0,
        command_prefix: Sequence[str] = (),
        registry: CollectorRegistry | None = None,
        mode: str = "nftables",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unsupported proxy mode {mode!r} (one of {', '.join(MODES)})")
        self.mode = mode
        self.prefix = list(command_prefix)
        self.config = ProxyConfig(
            node_name=node_name,
            cluster_cidr=cluster_cidr,
            masquerade_mark=masquerade_mark,
            nodeport_addresses=tuple(nodeport_addresses),
            node_ips=tuple(node_ips),
        )
        self.client = client
        self.min_sync_period = min_sync_period
        self.sync_period = sync_period
        self.registry = registry if registry is not None else CollectorRegistry()
        self.applier = Applier(command_prefix, self.registry)
        self.nft_applier = NftApplier(command_prefix, self.registry)
        #: the IP families this node programs, the primary first (the cluster CIDR's)
        self.families = _families(cluster_cidr)
        #: per family: (iptables applier, nftables applier)
        self.appliers = {
            4: (self.applier, self.nft_applier),
            6: (
                Applier(command_prefix, iptables="ip6tables", metrics_of=self.applier),
                NftApplier(command_prefix, metrics_of=self.nft_applier),
            ),
        }
        self.recorder = EventRecorder(client, "kube-proxy", node_name)
        #: the health-check node ports of Local-policy load balancers
        self.health_checks = HealthCheckServer(self.healthy)
        self.services = SharedInformer.for_resource(client, SERVICES)
        self.slices = SharedInformer.for_resource(client, ENDPOINT_SLICES)
        self.slices.store.add_indexers({_BY_SERVICE: _slice_service})
        #: per family: the nftables table as last rendered (kept for partial syncs)
        self._renderers: dict[int, NftRenderer] = {}
        #: the Services (``namespace/name``) changed since the last sync
        self._dirty: set[str] = set()
        self.sync_seconds = Histogram(
            "kubeproxy_sync_proxy_rules_duration_seconds",
            "Rendering and applying the whole ruleset",
            registry=self.registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.programming_seconds = Histogram(
            "kubeproxy_network_programming_duration_seconds",
            "From a Service or EndpointSlice change being seen to its rules being applied",
            registry=self.registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.last_sync_timestamp = Gauge(
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
            "When the rules were last synced",
            registry=self.registry,
        )
        self.rules_total = Gauge(
            "kubeproxy_sync_proxy_rules_iptables_total",
            "Rules in the last rendered ruleset, per table",
            ["table"],
            registry=self.registry,
        )
        #: seconds from the last applied change being seen to it being in the kernel
        self.last_programming_latency: float | None = None
        #: how many restores actually ran (for tests)
        self.restores = 0
        self._changed = asyncio.Event()
        self._pending_since: float | None = None
        self._last_ok = False
        self._applied_at = -float("inf")
        self._task: asyncio.Task[None] | None = None
        #: consecutive failed syncs (the retry backoff doubles with each)
        self.failures = 0
        #: UDP/SCTP destinations → endpoints, as last programmed (for conntrack cleanup)
        self._flows: dict[conntrack.Destination, frozenset[str]] = {}

    # ------------------------------------------------------------------ lifecycle

    async def start(self, sync_within: float = 60.0) -> None:
        if not self.config.node_ips:
            ips = await self._node_ips()
            self.config = dataclasses.replace(self.config, node_ips=ips)
        node_families = _families(",".join(self.config.node_ips)) if self.config.node_ips else []
        for family in node_families:
            if family not in self.families:  # a node address of another family: dual stack
                self.families.append(family)
        self._watch(self.services, service_key)
        self._watch(self.slices, slice_service_key)
        for informer in (self.services, self.slices):
            if not await informer.wait_synced(within=sync_within):
                raise TimeoutError(f"{informer.name} did not sync within {sync_within}s")
        await self._remove_other_modes()
        self._task = asyncio.create_task(self._loop(), name="proxier-sync")

    def _watch(self, informer: SharedInformer, key: Callable[[Any], str | None]) -> None:
        """Start ``informer``, marking the Service ``key`` names dirty on every event."""

        def changed(obj: Any) -> None:
            self._on_change(key(obj))

        def updated(old: Any, new: Any) -> None:
            self._on_change(key(old), key(new))

        informer.add_event_handler(on_add=changed, on_update=updated, on_delete=changed)
        informer.start()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.services.stop()
        await self.slices.stop()
        await self.health_checks.stop()
        await self.recorder.close()

    async def _remove_other_modes(self) -> None:
        """Rules a proxy in another mode left on this node would shadow ours (as upstream,
        the proxy starting in one mode removes the others')."""
        try:
            for family in self.families:
                tool = "ip6tables" if family == 6 else "iptables"
                if self.mode == "nftables":
                    if await self._kube_chains_present(tool):
                        await cleanup(self.prefix, tool)
                else:
                    await cleanup_nftables(self.prefix, IPV6 if family == 6 else IPV4)
        except (IptablesError, NftablesError, OSError) as err:
            log.warning("removing another proxy mode's rules failed", extra={"error": str(err)})

    async def _kube_chains_present(self, iptables: str = "iptables") -> bool:
        """Whether iptables holds any KUBE-* chain (two saves instead of a dozen deletes)."""
        for table in ("filter", "nat"):
            _, out = await run([*self.prefix, f"{iptables}-save", "-t", table])
            if ":KUBE-" in out:
                return True
        return False

    async def _node_ips(self) -> tuple[str, ...]:
        """This node's InternalIP/ExternalIP addresses from its Node object (none if the
        node is not registered yet: then only load-balancer source ranges lose the
        node-to-own-LB exception)."""
        try:
            node = await self.client.get(NODES, self.config.node_name)
        except ClientError as err:
            log.warning("node addresses unknown", extra={"error": str(err)})
            return ()
        addresses = (node.get("status") or {}).get("addresses") or []
        kinds = ("InternalIP", "ExternalIP")
        return tuple(a["address"] for a in addresses if a.get("type") in kinds)

    def healthy(self) -> bool:
        """Running, the last sync worked, and no change has waited past two sync periods."""
        if self._task is None or self._task.done() or not self._last_ok:
            return False
        pending = self._pending_since
        return pending is None or time.monotonic() - pending < 2 * self.sync_period

    # ------------------------------------------------------------------ the loop

    def _on_change(self, *services: str | None) -> None:
        self._dirty.update(key for key in services if key)
        if self._pending_since is None:
            self._pending_since = time.monotonic()
        self._changed.set()

    async def _loop(self) -> None:
        last_sync = last_full = -float("inf")
        self._changed.set()  # the first sync
        while True:
            timeout = max(0.0, last_full + self.sync_period - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)
            wait = last_sync + self.min_sync_period - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            full = time.monotonic() - last_full >= self.sync_period
            self._changed.clear()
            seen, self._pending_since = self._pending_since, None
            self._last_ok = await self._try_sync(full)
            if not self._last_ok:
                if seen is not None and self._pending_since is None:
                    self._pending_since = seen
                self.failures += 1
                self._changed.set()  # retry after the backoff
                backoff = min(self.min_sync_period * 2 ** (self.failures - 1), self.sync_period)
                last_sync = time.monotonic() + backoff - self.min_sync_period
                continue
            self.failures = 0
            last_sync = self._applied_at
            if full:
                last_full = last_sync
            if seen is not None:
                self.last_programming_latency = time.monotonic() - seen
                self.programming_seconds.observe(self.last_programming_latency)

    async def _try_sync(self, full: bool) -> bool:
        try:
            await self.sync(full=full)
        except (IptablesError, NftablesError) as err:
            log.error("syncing proxy rules failed", extra={"error": str(err)})
            self._report_failure(str(err))
            return False
        except Exception as err:  # a bug or an odd object must not end the loop
            log.exception("syncing proxy rules failed")
            self._report_failure(repr(err))
            return False
        return True

    def _report_failure(self, error: str) -> None:
        if self.failures == 0:  # once per failure streak
            node = {"kind": "Node", "apiVersion": "v1", "name": self.config.node_name,
                    "uid": self.config.node_name}  # fmt: skip
            self.recorder.event(
                node, "Warning", "FailedToSyncProxyRules",
                f"{self.mode} rules could not be applied (the previous rules stay in place;"
                f" retrying with backoff): {error[:500]}",
            )  # fmt: skip

    def _health_checks(self, services: list[Any], slices: list[Any]) -> dict[int, HealthCheck]:
        """The health-check node ports of the Local-policy load balancers, with this
        node's local endpoint counts: per family this node programs, so an IPv6-only
        Service has its port too; a dual-stack Service counts its larger family, as
        upstream's per-family proxiers each count their own."""
        local_lbs = [s for s in services if (s.get("spec") or {}).get("healthCheckNodePort")]
        out: dict[int, HealthCheck] = {}
        for family in self.families if local_lbs else ():
            ports = [sp for svc in local_lbs for sp in service_ports(svc, family)]
            endpoints = endpoints_by_port(slices, self.config.node_name, family) if ports else {}
            for port, check in health_checks(ports, endpoints).items():
                if port not in out or check.local_endpoints > out[port].local_endpoints:
                    out[port] = check
        return out

    async def _sync_nft(
        self, family: int, services: list[Any], slices: list[Any], dirty: set[str], full: bool
    ) -> bool:
        """Render and apply the family's table: every Service on a full sync (or a first,
        or a new config; a first sync writes pieces of the table while it renders the
        rest: :meth:`NftApplier.render_and_apply`), else only the ``dirty`` ones
        re-rendered."""
        config = family_config(self.config, family)
        applier = self.appliers[family][1]
        renderer = self._renderers.get(family)
        if renderer is None or renderer.config != config:
            renderer = self._renderers[family] = NftRenderer(config)
        try:
            if full or renderer.ruleset is None:
                return await applier.render_and_apply(renderer, services, slices, force=full)
            ruleset = renderer.update({
                key: (self.services.store.get(key), self.slices.store.by_index(_BY_SERVICE, key))
                for key in dirty
            })  # fmt: skip
        except NftablesError:
            raise
        except Exception:
            del self._renderers[family]  # half-updated: a new one renders everything
            raise
        return await applier.apply(ruleset, force=full)

    async def _program(
        self, services: list[Any], slices: list[Any], dirty: set[str], full: bool
    ) -> bool:
        """Render and apply every family's rules; True if a transaction ran. The
        nftables tables of the two families are separate, so their ``nft -f`` run side
        by side (upstream runs one proxier per family)."""
        if self.mode == "nftables":
            self._applied_at = time.monotonic()  # transactions are spaced from this
            done = await asyncio.gather(
                *(self._sync_nft(f, services, slices, dirty, full) for f in self.families),
                return_exceptions=True,
            )
            for result in done:
                if isinstance(result, BaseException):
                    raise result
            return any(done)
        ran = False
        for family in self.families:
            config = family_config(self.config, family)
            applier = self.appliers[family][0]
            ruleset = render(services, slices, config)
            if full:
                await applier.ensure_jumps()
            self._applied_at = time.monotonic()  # restores are spaced from this
            ran = await applier.apply(ruleset, force=full) or ran
            if family == self.families[0]:
                self.rules_total.labels("filter").set(len(ruleset.filter_rules))
                self.rules_total.labels("nat").set(len(ruleset.nat_rules))
        return ran

    async def sync(self, full: bool = True) -> bool:
        """Render and apply now; ``full`` also checks the jump rules and restores even if
        nothing changed. True if a restore ran."""
        started = time.monotonic()
        services, slices = self.services.store.list(), self.slices.store.list()
        dirty, self._dirty = self._dirty, set()
        try:
            ran = await self._program(services, slices, dirty, full)
        except BaseException:
            self._dirty |= dirty  # every family sees these again on the retry
            raise
        if ran:
            self.restores += 1
            flows = {
                dest: eps
                for family in self.families
                for dest, eps in conntrack.destinations(
                    services, slices, self.config.node_name, family
                ).items()
            }
            await conntrack.clear(self.prefix, conntrack.stale_flows(self._flows, flows))
            self._flows = flows
        await self.health_checks.sync(self._health_checks(services, slices))
        self.sync_seconds.observe(time.monotonic() - started)
        self.last_sync_timestamp.set_to_current_time()
        return ran
