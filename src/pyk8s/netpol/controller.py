"""The node's network policy controller: watch NetworkPolicies, Pods and Namespaces and
keep the ``inet pyk8s-netpol`` table (:mod:`pyk8s.netpol.rules`) in step.

Every change marks the table dirty; one loop compiles the whole ruleset and applies the
difference to what the kernel holds with one ``nft -f`` transaction (a label change is an
``add element``/``delete element`` pair), at most once per ``min_sync_period``. A failed
transaction leaves the previous rules in place (``nft -f`` is atomic), is counted in
``pyk8s_netpol_sync_failures_total``, reported once per failure streak as a Warning Event
``FailedToSyncNetworkPolicy`` on the Node and retried with doubling backoff up to
``sync_period``; the transaction after a failure, and one every ``sync_period``
when the table has gone missing, rewrites the whole table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import Client, EventRecorder, SharedInformer
from pyk8s.netpol.rules import TABLE, NetpolRuleset, compile_policies, pod_info

__all__ = ["NetpolController", "NftError", "cleanup", "run"]

log = logging.getLogger(__name__)
_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)


def _resource(group: str, plural: str) -> Resource:
    resource = REGISTRY.get(group, "v1", plural)
    assert resource is not None, plural
    return resource


PODS = _resource("", "pods")
NAMESPACES = _resource("", "namespaces")
POLICIES = _resource("networking.k8s.io", "networkpolicies")


class NftError(RuntimeError):
    pass


async def run(argv: Sequence[str], stdin: str | None = None) -> tuple[int, str]:
    """Run a command; (exit code, stderr+stdout text)."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate(stdin.encode() if stdin is not None else None)
    return proc.returncode or 0, out.decode(errors="replace")


async def cleanup(prefix: Sequence[str] = ()) -> None:
    """Delete the table (every pod is unisolated)."""
    code, out = await run([*prefix, "nft", "-f", "-"], f"add table {TABLE}\ndelete table {TABLE}\n")
    if code != 0:
        raise NftError(out.strip())


class NetpolController:
    """NetworkPolicy enforcement for one node."""

    def __init__(
        self,
        client: Client,
        node_name: str,
        *,
        min_sync_period: float = 0.1,
        sync_period: float = 30.0,
        command_prefix: Sequence[str] = (),
        registry: CollectorRegistry | None = None,
        nft: str = "nft",
    ) -> None:
        self.client = client
        self.node_name = node_name
        self.min_sync_period = min_sync_period
        self.sync_period = sync_period
        self.prefix = [*command_prefix, nft]
        self.registry = registry if registry is not None else CollectorRegistry()
        self.recorder = EventRecorder(client, "network-policy-controller", node_name)
        self.policies = SharedInformer.for_resource(client, POLICIES)
        self.pods = SharedInformer.for_resource(client, PODS)
        self.namespaces = SharedInformer.for_resource(client, NAMESPACES)
        self.failures_total = Counter(
            "pyk8s_netpol_sync_failures",
            "nft transactions that failed (the previous rules stayed in place)",
            registry=self.registry,
        )
        self.sync_seconds = Histogram(
            "pyk8s_netpol_sync_duration_seconds",
            "Compiling and applying the policy ruleset",
            registry=self.registry,
            buckets=_BUCKETS,
        )
        self.programming_seconds = Histogram(
            "pyk8s_netpol_programming_duration_seconds",
            "From a policy, pod or namespace change being seen to its rules being applied",
            registry=self.registry,
            buckets=_BUCKETS,
        )
        self.policies_gauge = Gauge(
            "pyk8s_netpol_policies", "NetworkPolicies in the ruleset", registry=self.registry
        )
        self._last: NetpolRuleset | None = None
        self._changed = asyncio.Event()
        self._pending_since: float | None = None
        self._last_ok = False
        self._task: asyncio.Task[None] | None = None
        #: consecutive failed syncs
        self.failures = 0

    async def start(self) -> None:
        """Start watching; the first sync follows once every cache has synced (in the
        background: enforcement that cannot read its objects must not stop the proxy
        it runs beside, it only stays unhealthy)."""
        for informer in (self.policies, self.pods, self.namespaces):
            informer.add_event_handler(
                on_add=self._on_change,
                on_update=lambda _old, _new: self._on_change(_new),
                on_delete=self._on_change,
            )
            informer.start()
        self._task = asyncio.create_task(self._run(), name="netpol-sync")

    async def _run(self) -> None:
        for informer in (self.policies, self.pods, self.namespaces):
            while not await informer.wait_synced(within=60.0):
                log.warning(
                    "network policy caches not synced yet", extra={"informer": informer.name}
                )
        await self._loop()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for informer in (self.policies, self.pods, self.namespaces):
            await informer.stop()
        await self.recorder.close()

    def healthy(self) -> bool:
        if self._task is None or self._task.done() or not self._last_ok:
            return False
        pending = self._pending_since
        return pending is None or time.monotonic() - pending < 2 * self.sync_period

    def _on_change(self, _obj: Any) -> None:
        if self._pending_since is None:
            self._pending_since = time.monotonic()
        self._changed.set()

    async def _loop(self) -> None:
        last_sync = last_check = -float("inf")
        self._changed.set()
        while True:
            timeout = max(0.0, last_check + self.sync_period - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)
            wait = last_sync + self.min_sync_period - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if time.monotonic() - last_check >= self.sync_period:
                last_check = time.monotonic()
                if self._last is not None and not await self._table_present():
                    log.warning("the pyk8s-netpol table went missing; rewriting it")
                    self._last = None
            self._changed.clear()
            seen, self._pending_since = self._pending_since, None
            try:
                await self.sync()
                self._last_ok = True
            except Exception as err:  # nft failing, or an odd object: never end the loop
                log.error("syncing network policy rules failed", extra={"error": str(err)})
                self._report_failure(str(err))
                self._last_ok = False
                if seen is not None and self._pending_since is None:
                    self._pending_since = seen
                self.failures += 1
                self._changed.set()
                backoff = min(self.min_sync_period * 2 ** (self.failures - 1), self.sync_period)
                last_sync = time.monotonic() + backoff - self.min_sync_period
                continue
            self.failures = 0
            last_sync = time.monotonic()
            if seen is not None:
                self.programming_seconds.observe(time.monotonic() - seen)

    def _report_failure(self, error: str) -> None:
        if self.failures == 0:
            node = {"kind": "Node", "apiVersion": "v1", "name": self.node_name,
                    "uid": self.node_name}  # fmt: skip
            self.recorder.event(
                node, "Warning", "FailedToSyncNetworkPolicy",
                "network policy rules could not be applied (the previous rules stay in place;"
                f" retrying with backoff): {error[:500]}",
            )  # fmt: skip

    async def _table_present(self) -> bool:
        code, _ = await run([*self.prefix, "list", "chain", *TABLE.split(), "ingress"])
        return code == 0

    def render(self) -> NetpolRuleset:
        pods = [info for p in self.pods.store.list() if (info := pod_info(p)) is not None]
        policies = self.policies.store.list()
        self.policies_gauge.set(len(policies))
        return compile_policies(policies, pods, self.namespaces.store.list(), self.node_name)

    async def sync(self) -> bool:
        """Compile and apply; True if a transaction ran."""
        started = time.monotonic()
        ruleset = self.render()
        text = ruleset.text() if self._last is None else ruleset.diff_text(self._last)
        if not text:
            return False
        code, out = await run([*self.prefix, "-f", "-"], text)
        if code != 0:
            self.failures_total.inc()
            self._last = None
            raise NftError(f"nft -f: {out.strip()[:2000]}")
        self._last = ruleset
        self.sync_seconds.observe(time.monotonic() - started)
        return True
