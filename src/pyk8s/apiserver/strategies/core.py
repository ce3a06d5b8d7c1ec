"""Strategies of the core/v1 resources that upstream treats specially.

Pods (initial status, graceful deletion, binding and the kubelet's subresources), Services
(ClusterIP and NodePort allocation), Namespaces (finalizers in the spec, the Terminating
phase), Nodes, Events (a one-hour TTL), and the volume and account objects whose DELETE
answers with the object. Each class holds only what differs from :class:`.Strategy`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pyk8s.api import errors
from pyk8s.api.defaults import apply_defaults
from pyk8s.api.errors import FieldError
from pyk8s.api.gofmt import GoStringSlice
from pyk8s.api.qos import pod_qos_class
from pyk8s.api.registry import Resource
from pyk8s.api.validation import drop_type_dependent_fields
from pyk8s.api.validation.meta import validate_object_meta_update
from pyk8s.apiserver.allocators import (
    AlreadyAllocated,
    ClusterIPAllocator,
    NodePortAllocator,
    OutOfRange,
    RangeFull,
)
from pyk8s.apiserver.strategies.base import JSON, Rollback, Strategy, Subresource
from pyk8s.apiserver.strategies.ipfamilies import cluster_ips as spec_cluster_ips
from pyk8s.apiserver.strategies.ipfamilies import (
    complete_for_update,
    ip_family_errors,
    reduction_errors,
)
from pyk8s.apiserver.subresources import (
    BINDING,
    EVICTION,
    FINALIZE,
    KUBELET,
    NODE_PROXY,
    NOT_SERVED,
    TOKEN_REQUEST,
)


class PodStrategy(Strategy):
    returns_deleted_object = True
    orphans_dependents = False
    traced_create = True
    subresources: Mapping[str, Subresource] = {
        "binding": BINDING,
        "eviction": EVICTION,
        "log": KUBELET,
        "exec": KUBELET,
        "attach": KUBELET,
        "portforward": KUBELET,
        "ephemeralcontainers": NOT_SERVED,
        "proxy": NOT_SERVED,
    }

    def prepare_for_create(self, obj: JSON) -> None:
        super().prepare_for_create(obj)
        obj["status"] = {"phase": "Pending", "qosClass": pod_qos_class(obj)}

    def deletion_grace(self, obj: JSON, requested: int | None) -> int:
        spec = obj.get("spec") or {}
        grace = (
            requested
            if requested is not None
            else int(spec.get("terminationGracePeriodSeconds", 30) or 0)
        )
        phase = (obj.get("status") or {}).get("phase")
        if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
            return 0  # nobody runs it: nothing to wait for
        return grace

    def waits_for_grace(self, obj: JSON) -> bool:
        return int(obj["metadata"].get("deletionGracePeriodSeconds") or 0) > 0

    def validate_status_update(self, new: JSON, old: JSON) -> list[FieldError]:
        """A status write keeps the stored metadata and spec (``prepare_for_update``), so,
        as upstream's ``ValidatePodStatusUpdate``, the spec is not validated again: only
        the metadata update. Re-validating the unchanged pod was a third of the API
        server's handler time for each status write, one per pod start at least."""
        return validate_object_meta_update(new.get("metadata"), old.get("metadata"))


class BindingStrategy(Strategy):
    """POST .../bindings: the older spelling of pods/binding."""

    #: the collection's create is answered by the binding subresource
    subresources: Mapping[str, Subresource] = {"": BINDING}


class ServiceStrategy(Strategy):
    """Services hold a ClusterIP and NodePorts, allocated before the write and released
    when a write or delete lets them go."""

    returns_deleted_object = True
    initial_status: ClassVar[JSON | None] = {"loadBalancer": {}}
    subresources: Mapping[str, Subresource] = {"proxy": NOT_SERVED}

    def __init__(
        self,
        resource: Resource,
        cluster_ips: ClusterIPAllocator,
        node_ports: NodePortAllocator,
        service_cidr: str,
        node_port_range: tuple[int, int],
        secondary_ips: Sequence[ClusterIPAllocator] = (),
    ) -> None:
        super().__init__(resource)
        self.cluster_ips = cluster_ips
        self.node_ports = node_ports
        self.service_cidr = service_cidr
        self.node_port_range = node_port_range
        #: the ClusterIP allocators by family, the primary first (two: dual stack)
        self.ips_by_family = {_family(a): a for a in (cluster_ips, *secondary_ips)}
        self.families = tuple(self.ips_by_family)

    def default(self, obj: JSON, *, create: bool) -> JSON:
        return apply_defaults(self.resource, obj, create=create, service_ip_families=self.families)

    def validate(self, obj: JSON) -> list[FieldError]:
        # initIPFamilyFields first: a request with both kinds of error gets the family ones
        return ip_family_errors(obj, self.families) or super().validate(obj)

    def validate_status_update(self, new: JSON, old: JSON) -> list[FieldError]:
        # status writes allocate nothing: the spec's IP families are left as they are
        return super().validate_update(new, old)

    def validate_update(self, new: JSON, old: JSON) -> list[FieldError]:
        complete_for_update(new, old, self.families)
        # BeginUpdate (initIPFamilyFields) before BeforeUpdate's validation, as on create
        return (
            ip_family_errors(new, self.families)
            or super().validate_update(new, old)
            or reduction_errors(new, old)
        )

    def prepare_for_update(self, new: JSON, old: JSON) -> None:
        """Also upstream's dropTypeDependentFields: a type change stores the service
        without what only the old type used (node ports, health-check port,
        allocateLoadBalancerNodePorts) when the client carried them over unchanged."""
        super().prepare_for_update(new, old)
        if (new.get("spec") or {}).get("type") != (old.get("spec") or {}).get("type"):
            dropped = drop_type_dependent_fields(new, old)
            new.clear()
            new.update(dropped)

    async def before_create(self, obj: JSON, *, dry_run: bool) -> list[Rollback]:
        return [] if dry_run else _rollbacks(await self._allocate(obj, None))

    async def before_update(self, new: JSON, old: JSON, *, dry_run: bool) -> list[Rollback]:
        return [] if dry_run else _rollbacks(await self._allocate(new, old))

    async def after_update(self, new: JSON, old: JSON) -> None:
        await self._release(old, keep=new)

    async def after_delete(self, obj: JSON) -> None:
        await self._release(obj)

    async def _allocate(self, svc: JSON, old: JSON | None) -> list[tuple[Any, str]]:
        """Allocate ClusterIP and NodePorts the service needs; returns what was taken."""
        taken: list[tuple[Any, str]] = []
        spec = svc.setdefault("spec", {})
        meta = svc["metadata"]
        owner = f"{meta.get('namespace')}/{meta.get('name')}"
        ports = self.node_ports
        try:
            stype = spec.get("type", "ClusterIP")
            old_spec = (old or {}).get("spec", {})
            if stype != "ExternalName":
                await self._allocate_cluster_ips(svc, old_spec if old else None, owner, taken)
            # allocateLoadBalancerNodePorts: false keeps only the node ports the user gave
            allocate_node_ports = not (
                stype == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is False
            )
            if stype in ("NodePort", "LoadBalancer"):
                old_ports = {
                    (p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                    for p in old_spec.get("ports", [])
                }
                for i, p in enumerate(spec.get("ports", [])):
                    np = p.get("nodePort")
                    previous = old_ports.get((p.get("port"), p.get("protocol", "TCP")))
                    if not np and previous:
                        p["nodePort"] = previous
                        continue
                    if np and np == previous:
                        continue
                    if not np and not allocate_node_ports:
                        continue
                    if np:
                        await self._reserve_node_port(meta, f"spec.ports[{i}].nodePort", np, owner)
                        taken.append((ports, str(np)))
                    else:
                        got = await ports.allocate(owner)
                        taken.append((ports, got))
                        p["nodePort"] = int(got)
            if stype == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local":
                taken += await self._health_check_node_port(svc, old_spec, owner)
            return taken
        except RangeFull as err:
            for allocator, item in taken:
                await allocator.release(item)
            raise errors.internal(f"range is full: {err}") from None
        except BaseException:
            for allocator, item in taken:
                await allocator.release(item)
            raise

    async def _allocate_cluster_ips(
        self, svc: JSON, old_spec: JSON | None, owner: str, taken: list[tuple[Any, str]]
    ) -> None:
        """One ClusterIP per ``ipFamilies`` entry (upstream's allocClusterIPs): kept when
        the old object had it, reserved when the user picked it, allocated otherwise;
        each new one is appended to ``taken``."""
        spec, meta = svc["spec"], svc["metadata"]
        ips = spec_cluster_ips(spec)
        old_ips = spec_cluster_ips(old_spec or {})
        if old_spec is not None and not ips and old_ips:
            ips = old_ips[: max(1, len(spec.get("ipFamilies") or []))]
        if ips[:1] == ["None"]:
            spec["clusterIP"], spec["clusterIPs"] = "None", ["None"]
            return
        families = list(spec.get("ipFamilies") or []) or [self.families[0]]
        out: list[str] = []
        for n, family in enumerate(families):
            want = str(ips[n]) if n < len(ips) and ips[n] else ""
            allocator = self.ips_by_family.get(family)
            if allocator is None:
                continue  # validation refused it already
            if want and want in old_ips:
                out.append(want)
                continue
            if not want:
                got = await allocator.allocate(owner)
                taken.append((allocator, got))
                out.append(got)
                continue
            try:
                await allocator.reserve(want, owner)
            except AlreadyAllocated:
                raise _invalid(
                    meta,
                    "spec.clusterIPs",
                    GoStringSlice(ips),
                    f"failed to allocate IP {want}: provided IP is already allocated",
                ) from None
            except OutOfRange:
                raise _invalid(
                    meta,
                    "spec.clusterIPs",
                    GoStringSlice(ips),
                    f"failed to allocate IP {want}: the provided IP ({want}) is not in the "
                    f"valid range. The range of valid IPs is {allocator.network}",
                ) from None
            taken.append((allocator, want))
            out.append(want)
        spec["clusterIPs"] = out
        spec["ipFamilies"] = families
        if out:
            spec["clusterIP"] = out[0]

    async def _health_check_node_port(
        self, svc: JSON, old_spec: JSON, owner: str
    ) -> list[tuple[Any, str]]:
        """``spec.healthCheckNodePort`` of a Local-policy load balancer: kept from the old
        object, reserved if the user picked it, allocated otherwise (as upstream)."""
        spec = svc["spec"]
        hc, previous = spec.get("healthCheckNodePort"), old_spec.get("healthCheckNodePort")
        if not hc and previous:
            spec["healthCheckNodePort"] = previous
            return []
        if hc and hc == previous:
            return []
        if not hc:
            got = await self.node_ports.allocate(owner)
            spec["healthCheckNodePort"] = int(got)
            return [(self.node_ports, got)]
        await self._reserve_node_port(svc["metadata"], "spec.healthCheckNodePort", hc, owner)
        return [(self.node_ports, str(hc))]

    async def _reserve_node_port(self, meta: JSON, path: str, port: Any, owner: str) -> None:
        """Take the node port a user picked (422 on ``path`` if taken or out of range)."""
        try:
            await self.node_ports.reserve(str(port), owner)
        except AlreadyAllocated:
            raise _invalid(meta, path, port, "provided port is already allocated") from None
        except OutOfRange:
            lo, hi = self.node_port_range
            raise _invalid(
                meta,
                path,
                port,
                f"provided port is not in the valid range. The range of valid ports is {lo}-{hi}",
            ) from None

    async def _release(self, svc: JSON, keep: JSON | None = None) -> None:
        """Release what ``svc`` holds and ``keep`` (its replacement) does not."""
        spec = svc.get("spec", {})
        keep_spec = (keep or {}).get("spec", {})
        kept_ips = set(keep_spec.get("clusterIPs") or [keep_spec.get("clusterIP")])
        held_ips = set(spec.get("clusterIPs") or [spec.get("clusterIP")])
        for ip in held_ips - kept_ips:
            if ip and ip != "None":
                await self.cluster_ips.release(ip)  # one key space for both families
        kept = {p.get("nodePort") for p in keep_spec.get("ports", [])}
        kept.add(keep_spec.get("healthCheckNodePort"))
        held = [p.get("nodePort") for p in spec.get("ports", [])]
        for port in {*held, spec.get("healthCheckNodePort")} - kept:
            if port:
                await self.node_ports.release(str(port))


def _family(allocator: ClusterIPAllocator) -> str:
    return "IPv4" if allocator.network.version == 4 else "IPv6"


def _invalid(meta: JSON, path: str, value: Any, detail: str) -> errors.StatusError:
    """The 422 an allocation failure answers (upstream reports it as a field error)."""
    return errors.invalid_object(
        "Service", meta.get("name", ""), [errors.invalid(path, value, detail)]
    )


def _rollbacks(taken: list[tuple[Any, str]]) -> list[Rollback]:
    def release(allocator: Any, item: str) -> Rollback:
        async def undo() -> None:
            await allocator.release(item)

        return undo

    return [release(a, i) for a, i in taken]


class NamespaceStrategy(Strategy):
    initial_status: ClassVar[JSON | None] = {"phase": "Active"}
    subresources: Mapping[str, Subresource] = {"finalize": FINALIZE}

    def spec_finalizers(self, obj: JSON) -> bool:
        return bool((obj.get("spec") or {}).get("finalizers"))

    def begin_deletion(self, obj: JSON) -> None:
        obj.setdefault("status", {})["phase"] = "Terminating"


class NodeStrategy(Strategy):
    keeps_status_on_create = True
    main_update_writes_status = True
    subresources: Mapping[str, Subresource] = {"proxy": NODE_PROXY}


class EventStrategy(Strategy):
    keeps_status_on_create = True
    ttl_seconds = 3600
    orphans_dependents = False


class PersistentVolumeStrategy(Strategy):
    returns_deleted_object = True
    initial_status: ClassVar[JSON | None] = {"phase": "Pending"}


class ReturnsDeletedStrategy(Strategy):
    """Resources whose DELETE answers with the deleted object (upstream's
    ReturnDeletedObject), nothing else special."""

    returns_deleted_object = True


class ServiceAccountStrategy(ReturnsDeletedStrategy):
    subresources: Mapping[str, Subresource] = {"token": TOKEN_REQUEST}


__all__ = [
    "BindingStrategy",
    "EventStrategy",
    "NamespaceStrategy",
    "NodeStrategy",
    "PersistentVolumeStrategy",
    "PodStrategy",
    "ReturnsDeletedStrategy",
    "ServiceAccountStrategy",
    "ServiceStrategy",
]
