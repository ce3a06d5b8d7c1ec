"""ResourceQuota admission: refuse a write that would take a namespace past its quota.

Upstream's ResourceQuota admission plugin, for creates and updates (an update is charged
what it adds: a Service turned LoadBalancer costs one ``services.loadbalancers``, a PVC
grown costs the difference in ``requests.storage``): for every quota of the object's
namespace whose scopes match it and whose ``status.hard`` names something the object
costs (the rules are in :mod:`pyk8s.api.quotausage`),

* a pod must state every constrained compute resource (``failed quota: q: must specify
  limits.cpu for: c``);
* the quota must already have usage for those names (``status unknown for quota: q,
  resources: …`` until the ResourceQuota controller has computed it);
* ``status.used`` plus the object's cost must stay within ``status.hard``, or the create
  is refused with 403 ``exceeded quota: q, requested: pods=1, used: pods=2, limited:
  pods=2``;
* otherwise the new usage is written to the quota's status (compare-and-swap, retried on
  conflict) before the object is stored, so that a burst of creates cannot slip past the
  limit before the controller catches up. A create that then fails leaves the quota
  over-counted until the controller recomputes it, as upstream does.

It is cheap when no quota applies: the namespace's quotas come from the watch cache, and
the store is read only when one of them constrains the object.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar, Protocol

from pyk8s.api import errors
from pyk8s.api import quotausage as qu
from pyk8s.api.registry import Resource
from pyk8s.apiserver.admission import CREATE, UPDATE, Attributes, Context, Plugin, Reader

JSON = dict[str, Any]

#: attempts at writing the new usage when the quota changes underneath
RETRIES = 5


def _forbidden(r: Resource, obj: JSON, why: str) -> errors.StatusError:
    meta = obj.get("metadata") or {}
    name = meta.get("name") or meta.get("generateName") or "Unknown"
    qualified = r.plural if not r.group else f"{r.plural}.{r.group}"
    return errors.StatusError(
        403,
        "Forbidden",
        f'{qualified} "{name}" is forbidden: {why}',
        {"name": name, "group": r.group, "kind": r.plural},
    )


def _pretty(usage: qu.Usage) -> str:
    return ",".join(f"{k}={v}" for k, v in qu.format_usage(usage).items())


def _restricted(quota: JSON, r: Resource) -> list[str]:
    hard = (quota.get("status") or {}).get("hard") or {}
    return sorted(n for n in hard if qu.source_of(n) == (r.group, r.plural))


class QuotaWriter(Protocol):
    """Compare-and-swap access to ResourceQuota objects (the store, not the cache)."""

    async def read(self, namespace: str, name: str) -> tuple[JSON, Any]:
        """The quota and the stored value it was read from (StatusError if gone)."""
        ...

    async def write_status(self, new: JSON, old: JSON, kv: Any) -> None:
        """Write ``new``'s status over ``old`` (StatusError Conflict if it moved)."""
        ...


class ResourceQuota(Plugin):
    name = "ResourceQuota"
    operations: ClassVar[frozenset[str]] = frozenset({CREATE, UPDATE})

    def __init__(self, context: Context) -> None:
        self.reader: Reader = context.reader
        self.writer: QuotaWriter = context.quota_writer

    def handles(self, attrs: Attributes) -> bool:
        return (
            attrs.operation in self.operations
            and attrs.resource.namespaced
            and attrs.subresource in ("", "status")
            and attrs.group_resource != ("", "resourcequotas")
        )

    async def validate(self, attrs: Attributes) -> None:
        assert attrs.obj is not None
        await self.charge(attrs.resource, attrs.obj, attrs.old, dry_run=attrs.dry_run)

    async def charge(
        self, r: Resource, obj: JSON, old: JSON | None, *, dry_run: bool = False
    ) -> None:
        """Raise 403 when writing ``obj`` (over ``old``) would exceed a quota; otherwise
        charge the quotas what it adds."""
        namespace = (obj.get("metadata") or {}).get("namespace", "")
        cached = self.reader.list("", "resourcequotas", namespace)
        if not any(_restricted(q, r) for q in cached):
            return
        now = time.time()
        usage = qu.object_usage(r.group, r.plural, obj, now)
        if old is not None:
            before = qu.object_usage(r.group, r.plural, old, now)
            # only what grew is charged (upstream: quota.Subtract, then the increases)
            usage = {
                k: (v[0] - before.get(k, qu.ZERO)[0], v[1])
                for k, v in usage.items()
                if v[0] > before.get(k, qu.ZERO)[0]
            }
            if not usage:
                return
        names = sorted(q["metadata"]["name"] for q in cached if _restricted(q, r))
        for name in names:
            for attempt in range(RETRIES):
                try:
                    quota, kv = await self.writer.read(namespace, name)
                except errors.StatusError:
                    break  # deleted meanwhile
                new_used = _check(r, obj, quota, usage, pod_constraints=old is None)
                if new_used is None or dry_run:
                    break
                new = {**quota, "status": {**quota["status"], "used": new_used}}
                try:
                    await self.writer.write_status(new, quota, kv)
                    break
                except errors.StatusError as err:
                    if err.reason != "Conflict" or attempt + 1 == RETRIES:
                        raise _forbidden(
                            r, obj, f"unable to update quota status: {name}: {err}"
                        ) from None
                    await asyncio.sleep(0.01)


def _check(
    r: Resource, obj: JSON, quota: JSON, usage: qu.Usage, *, pod_constraints: bool = True
) -> dict[str, str] | None:
    """The quota's new ``status.used`` if ``obj`` fits (None when it costs it nothing)."""
    name = quota["metadata"]["name"]
    if not qu.matches_scopes(quota, r.group, r.plural, obj):
        return None
    restricted = _restricted(quota, r)
    if not restricted:
        return None
    if pod_constraints and (r.group, r.plural) == ("", "pods"):
        problem = qu.pod_constraints(restricted, obj)
        if problem:
            raise _forbidden(r, obj, f"failed quota: {name}: {problem}")
    status = quota.get("status") or {}
    used = qu.parse_usage(status.get("used"))
    hard = qu.parse_usage(status.get("hard"))
    if any(n not in used for n in restricted):
        raise _forbidden(
            r, obj, f"status unknown for quota: {name}, resources: {','.join(restricted)}"
        )
    requested = {k: v for k, v in usage.items() if k in hard}
    if not requested or all(v[0] == 0 for v in requested.values()):
        return None
    new_used = dict(used)
    for k, v in requested.items():
        new_used[k] = qu.add(used.get(k, qu.ZERO), v)
    exceeded = sorted(k for k in requested if new_used[k][0] > hard[k][0])
    if exceeded:
        raise _forbidden(
            r,
            obj,
            f"exceeded quota: {name}, "
            f"requested: {_pretty({k: requested[k] for k in exceeded})}, "
            f"used: {_pretty({k: used[k] for k in exceeded if k in used})}, "
            f"limited: {_pretty({k: hard[k] for k in exceeded})}",
        )
    return {**(status.get("used") or {}), **qu.format_usage(new_used)}
