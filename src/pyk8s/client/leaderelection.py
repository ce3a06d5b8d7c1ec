"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's ``leaderelection``.

The scheduler and the controller manager run as several replicas for availability, but
two active schedulers would double-book nodes, so exactly one replica works at a time.
They agree through one Lease object: the holder renews ``spec.renewTime`` every
``retry_period``; the others watch the record and may take over only after it has not
changed for ``lease_duration`` *as measured on their own clock* (client-go's
``observedTime``: no clock-skew assumptions). Writes are compare-and-swap on
``resourceVersion``, so two candidates can never both win.

Upstream's defaults: lease 15 s, renew deadline 10 s (a leader that cannot renew for
that long steps down — before anyone else may take over), retry every 2 s (jittered).
On a clean stop the leader *releases* the lease (empty holder, 1 s duration) so a standby
takes over within one retry period instead of waiting out the lease
(``ReleaseOnCancel``). The record is upstream's: ``holderIdentity``,
``leaseDurationSeconds``, ``acquireTime``/``renewTime`` as MicroTime strings,
``leaseTransitions`` counting changes of holder.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import logging
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client.errors import ClientError, is_already_exists, is_conflict, is_not_found
from pyk8s.client.rest import Client, Obj

__all__ = [
    "LeaderElectionConfig",
    "LeaderElectionRecord",
    "LeaderElector",
    "LeaseSettings",
    "default_identity",
    "micro_time",
    "parse_micro_time",
    "run_while_leading",
]

log = logging.getLogger(__name__)

JITTER_FACTOR = 1.2
_LEASES = REGISTRY.for_kind("coordination.k8s.io", "v1", "Lease")
assert _LEASES is not None
LEASES: Resource = _LEASES


def micro_time(t: dt.datetime | None = None) -> str:
    """A ``metav1.MicroTime``: RFC 3339 with microseconds, UTC (``…T10:00:00.123456Z``)."""
    t = t or dt.datetime.now(dt.UTC)
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_micro_time(s: str | None) -> dt.datetime | None:
    if not s:
        return None
    try:
        return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        return None


def default_identity(host: str = "") -> str:
    """``<hostname>_<uuid>``, as kube-scheduler and kube-controller-manager use (``host``
    instead of this host's name when given: servers sharing a host tell apart)."""
    return f"{host or socket.gethostname()}_{uuid.uuid4()}"


def check_timings(lease_duration: float, renew_deadline: float, retry_period: float) -> None:
    """ValueError unless a leader steps down (renew deadline) before a standby may take
    over (lease duration), and retries (jittered) fit in the renew deadline; client-go's
    checks in ``NewLeaderElector``."""
    if lease_duration <= renew_deadline:
        raise ValueError("leaseDuration must be greater than renewDeadline")
    if renew_deadline <= JITTER_FACTOR * retry_period:
        raise ValueError("renewDeadline must be greater than retryPeriod*JitterFactor")
    if retry_period <= 0:
        raise ValueError("retryPeriod must be greater than zero")


@dataclass(frozen=True)
class LeaseSettings:
    """A component's ``--leader-elect-lease-duration``, ``--leader-elect-renew-deadline``
    and ``--leader-elect-retry-period`` (seconds; upstream's defaults), and the host name
    its identity starts with (``""``: this host's)."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    host: str = ""

    def __post_init__(self) -> None:
        check_timings(self.lease_duration, self.renew_deadline, self.retry_period)

    def config(
        self,
        lock_name: str,
        on_started_leading: Callable[[], Coroutine[Any, Any, None]] | None = None,
    ) -> LeaderElectionConfig:
        return LeaderElectionConfig(
            lock_name=lock_name,
            identity=default_identity(self.host),
            lease_duration=self.lease_duration,
            renew_deadline=self.renew_deadline,
            retry_period=self.retry_period,
            on_started_leading=on_started_leading,
        )


@dataclass(frozen=True)
class LeaderElectionRecord:
    holder_identity: str = ""
    lease_duration_seconds: int = 0
    acquire_time: str | None = None
    renew_time: str | None = None
    leader_transitions: int = 0

    @classmethod
    def from_lease(cls, lease: Obj) -> LeaderElectionRecord:
        spec = lease.get("spec") or {}
        return cls(
            holder_identity=str(spec.get("holderIdentity") or ""),
            lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            leader_transitions=int(spec.get("leaseTransitions") or 0),
        )

    def spec(self) -> Obj:
        out: Obj = {
            "holderIdentity": self.holder_identity,
            "leaseDurationSeconds": self.lease_duration_seconds,
            "leaseTransitions": self.leader_transitions,
        }
        if self.acquire_time:
            out["acquireTime"] = self.acquire_time
        if self.renew_time:
            out["renewTime"] = self.renew_time
        return out


@dataclass
class LeaderElectionConfig:
    """Where the lock lives, who we are, the timings and the callbacks.

    ``on_started_leading`` is started as a task when we become leader and is cancelled
    when we stop leading; ``on_stopped_leading`` runs after that — only if we led
    (client-go calls it on every exit, even a standby's); ``on_new_leader`` gets the
    identity whenever the observed holder changes (ourselves included). Callbacks may be
    plain functions or coroutines.
    """

    lock_name: str
    lock_namespace: str = "kube-system"
    identity: str = ""
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    release_on_cancel: bool = True
    on_started_leading: Callable[[], Coroutine[Any, Any, None]] | None = None
    on_stopped_leading: Callable[[], Awaitable[None] | None] | None = None
    on_new_leader: Callable[[str], Awaitable[None] | None] | None = None

    def __post_init__(self) -> None:
        if not self.identity:
            self.identity = default_identity()
        check_timings(self.lease_duration, self.renew_deadline, self.retry_period)


class LeaderElector:
    """Campaign for a Lease; lead while renewing it; step down when renewal fails.

    ``await elector.run()`` returns when leadership is lost (the caller usually exits,
    as upstream components do) or after :meth:`stop`; cancelling the task that runs it
    also stops it. Either way a held lease is released if ``release_on_cancel``.
    """

    def __init__(
        self,
        client: Client,
        config: LeaderElectionConfig,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.config = config
        self._clock = clock
        self._lease: Obj | None = None
        self._observed: LeaderElectionRecord | None = None
        self._observed_time = 0.0
        self._reported_leader = ""
        self._leading = False
        self._stop = asyncio.Event()
        self._work: asyncio.Task[None] | None = None

    @property
    def identity(self) -> str:
        return self.config.identity

    def is_leader(self) -> bool:
        return self._leading

    def get_leader(self) -> str:
        """The identity of the holder we last observed (``""`` if none)."""
        return self._observed.holder_identity if self._observed is not None else ""

    def stop(self) -> None:
        """End :meth:`run` (releasing the lease if held and ``release_on_cancel``)."""
        self._stop.set()

    # -- the loop

    async def run(self) -> None:
        try:
            if not await self._acquire():
                return
            await self._lead()
        finally:
            await asyncio.shield(self._step_down())

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless stopped first; True if :meth:`stop` was called."""
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def _jittered(self) -> float:
        return self.config.retry_period * (1 + random.random() * JITTER_FACTOR)

    async def _acquire(self) -> bool:
        log.info("attempting to acquire leader lease %s", self._lock_desc())
        while not self._stop.is_set():
            if await self._try_acquire_or_renew():
                log.info("successfully acquired lease %s", self._lock_desc())
                return True
            if await self._sleep(self._jittered()):
                break
        return False

    async def _lead(self) -> None:
        self._leading = True
        cb = self.config.on_started_leading
        if cb is not None:
            self._work = asyncio.create_task(cb(), name=f"leader:{self.config.lock_name}")
        cfg = self.config
        while not self._stop.is_set():
            deadline = self._clock() + cfg.renew_deadline
            renewed = False
            while self._clock() < deadline and not self._stop.is_set():
                try:
                    renewed = await asyncio.wait_for(
                        self._try_acquire_or_renew(), max(0.0, deadline - self._clock())
                    )
                except TimeoutError:
                    renewed = False
                if renewed:
                    break
                if await self._sleep(cfg.retry_period):
                    return
            if not renewed:
                if not self._stop.is_set():
                    log.warning("failed to renew lease %s: deadline passed", self._lock_desc())
                return
            if await self._sleep(cfg.retry_period):
                return

    async def _step_down(self) -> None:
        was_leading = self._leading
        self._leading = False
        if self._work is not None:
            self._work.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._work
            self._work = None
        if was_leading and self.config.release_on_cancel:
            await self._release()
        if was_leading:
            await _call(self.config.on_stopped_leading)

    # -- one attempt (client-go's tryAcquireOrRenew)

    def _record(self, now: dt.datetime, old: LeaderElectionRecord | None) -> LeaderElectionRecord:
        stamp = micro_time(now)
        cfg = self.config
        if old is not None and old.holder_identity == cfg.identity:
            return LeaderElectionRecord(
                cfg.identity,
                int(cfg.lease_duration),
                old.acquire_time or stamp,
                stamp,
                old.leader_transitions,
            )
        transitions = old.leader_transitions + 1 if old is not None else 0
        return LeaderElectionRecord(
            cfg.identity, int(cfg.lease_duration), stamp, stamp, transitions
        )

    async def _try_acquire_or_renew(self) -> bool:
        cfg = self.config
        now = dt.datetime.now(dt.UTC)
        if await self._renew_optimistically(now):
            return True
        try:
            try:
                lease = await self.client.get(LEASES, cfg.lock_name, cfg.lock_namespace)
            except ClientError as err:
                if not is_not_found(err):
                    raise
                record = self._record(now, None)
                body = {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": cfg.lock_name, "namespace": cfg.lock_namespace},
                    "spec": record.spec(),
                }
                self._lease = await self.client.create(LEASES, body, cfg.lock_namespace)
                await self._observe(record)
                return True
            old = LeaderElectionRecord.from_lease(lease)
            if self._observed != old:
                await self._observe(old)
            if (
                old.holder_identity
                and old.holder_identity != cfg.identity
                and self._observed_time + cfg.lease_duration > self._clock()
            ):
                return False  # held by someone else, not expired
            record = self._record(now, old)
            updated = dict(lease)
            updated["spec"] = {**(lease.get("spec") or {}), **record.spec()}
            self._lease = await self.client.update(LEASES, updated, cfg.lock_namespace)
            await self._observe(record)
            return True
        except ClientError as err:
            if is_conflict(err) or is_already_exists(err):
                log.debug("lease %s: lost a race (%s)", self._lock_desc(), err)
            else:
                log.warning("error retrieving or updating lease %s: %s", self._lock_desc(), err)
            return False

    async def _renew_optimistically(self, now: dt.datetime) -> bool:
        """client-go's fast path: the leader, its lease still valid, updates the Lease it
        last wrote (one request, no GET first); any error falls back to the slow path."""
        cfg = self.config
        if not self._leading or self._lease is None or self._observed is None:
            return False
        if self._observed_time + cfg.lease_duration <= self._clock():
            return False
        record = self._record(now, self._observed)
        updated = {**self._lease, "spec": {**(self._lease.get("spec") or {}), **record.spec()}}
        try:
            self._lease = await self.client.update(LEASES, updated, cfg.lock_namespace)
        except ClientError as err:
            log.debug("lease %s: optimistic renew failed (%s)", self._lock_desc(), err)
            return False
        await self._observe(record)
        return True

    async def _observe(self, record: LeaderElectionRecord) -> None:
        self._observed = record
        self._observed_time = self._clock()
        holder = record.holder_identity
        if holder and holder != self._reported_leader:
            self._reported_leader = holder
            if holder != self.config.identity:
                log.info("new leader elected: %s", holder)
            await _call(self.config.on_new_leader, holder)

    async def _release(self) -> None:
        """Give the lease up so a standby need not wait out the lease duration."""
        cfg = self.config
        if self._lease is None:
            return
        now = micro_time()
        old = LeaderElectionRecord.from_lease(self._lease)
        if old.holder_identity != cfg.identity:
            return
        spec = {
            **(self._lease.get("spec") or {}),
            "holderIdentity": "",
            "leaseDurationSeconds": 1,
            "acquireTime": now,
            "renewTime": now,
            "leaseTransitions": old.leader_transitions,
        }
        body = {**self._lease, "spec": spec}
        try:
            self._lease = await asyncio.wait_for(
                self.client.update(LEASES, body, cfg.lock_namespace), cfg.retry_period * 2
            )
            log.info("released lease %s", self._lock_desc())
        except (ClientError, TimeoutError) as err:
            log.warning("failed to release lease %s: %s", self._lock_desc(), err)

    def _lock_desc(self) -> str:
        return f"{self.config.lock_namespace}/{self.config.lock_name}"


async def run_while_leading(
    client: Client, config: LeaderElectionConfig, stop: asyncio.Event
) -> None:
    """Campaign for ``config``'s lease and lead (its ``on_started_leading``) until
    leadership is lost or ``stop`` is set, then step down (releasing the lease if held
    and ``release_on_cancel``). ``client`` should be one for the renewals alone, as
    upstream's ``leader-election`` client is: behind a component's own requests in a
    shared rate limiter a renewal can miss its deadline."""
    elector = LeaderElector(client, config)
    watcher = asyncio.create_task(stop.wait())
    runner = asyncio.create_task(elector.run())
    try:
        await asyncio.wait({watcher, runner}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        elector.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        watcher.cancel()


async def _call(fn: Callable[..., Any] | None, *args: Any) -> None:
    if fn is None:
        return
    try:
        result = fn(*args)
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("leader election callback %r failed", fn)
