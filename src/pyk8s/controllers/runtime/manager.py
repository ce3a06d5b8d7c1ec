"""The manager: one API client, shared informers, an event recorder, many controllers.

A process (``pyk8s controller-manager``, or ``pyk8s server``) builds one Manager,
registers controllers (each module in pyk8s.controllers has a ``setup(manager)``), and
runs them — under a leader lease when several replicas may run, as upstream's
kube-controller-manager does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from pyk8s.client import Client, EventRecorder, InformerFactory, SharedInformer
from pyk8s.client.leaderelection import LeaseSettings, run_while_leading
from pyk8s.controllers.runtime.controller import Controller, ControllerMetrics, Reconciler

log = logging.getLogger(__name__)


def select_controllers(
    names: Iterable[str], known: Sequence[str], off_by_default: Collection[str] = ()
) -> list[str]:
    """Upstream's ``--controllers``: ``*`` is every known controller but those off by
    default, ``name`` adds one, ``-name`` removes one; in ``known``'s order (ValueError
    naming the known ones for an unknown name)."""
    names = list(names)
    enabled = set(known) - set(off_by_default) if "*" in names else set()
    for n in names:
        if n.startswith("-"):
            enabled.discard(n[1:])
        elif n != "*":
            if n not in known:
                raise ValueError(f"unknown controller {n!r}; known: {', '.join(known)}")
            enabled.add(n)
    return [c for c in known if c in enabled]


@dataclass
class _Group:
    """Controllers set up together, the informers their setup asked for and its hooks."""

    controllers: list[Controller]
    informers: list[SharedInformer]
    hooks: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


class Manager:
    def __init__(
        self,
        client: Client,
        *,
        component: str = "pyk8s-controller-manager",
        shared_with: Manager | None = None,
    ) -> None:
        """``shared_with``: another Manager of this process whose informers (their caches
        and watches) and metrics this one uses; that one's owner stops the informers (the
        cloud controllers ``pyk8s server`` runs in its controller manager's process)."""
        self.client = client
        self.component = component
        self.recorder = EventRecorder(client, component=component)
        if shared_with is None:
            self.informers = InformerFactory(client)
            self.metrics_registry = CollectorRegistry()
            self.metrics = ControllerMetrics(self.metrics_registry)
        else:
            self.informers = shared_with.informers
            self.metrics_registry = shared_with.metrics_registry
            self.metrics = shared_with.metrics
        self._owns_informers = shared_with is None
        self.controllers: list[Controller] = []
        self._started = asyncio.Event()
        #: per controller name, its flags (e.g. the HPA's sync period), set before setup
        self.settings: dict[str, object] = {}
        #: run after informers have synced, before controllers start (e.g. cache warm-up)
        self.on_synced: list[Callable[[], Awaitable[None]]] = []
        self._groups: list[_Group] = []
        #: set-ups waiting for something first (see :meth:`set_up_when`)
        self._waiting: list[tuple[Awaitable[object], Callable[[], object]]] = []

    def set_up(self, setup: Callable[[], object]) -> None:
        """Run one controller's setup: what it adds starts as soon as the informers it
        asked for have synced (and its own ``on_synced`` hooks have run), as each of
        upstream's controllers waits for its own caches only. Controllers added any
        other way start once every informer has synced."""
        controllers, hooks = len(self.controllers), len(self.on_synced)
        with self.informers.recording() as used:
            setup()
        self._groups.append(_Group(self.controllers[controllers:], used, self.on_synced[hooks:]))

    def set_up_when(self, ready: Awaitable[object], setup: Callable[[], object]) -> None:
        """:meth:`set_up` once ``ready`` is done (while running: a controller whose own
        credentials are still being made does not hold back the others)."""
        self._waiting.append((ready, setup))

    async def _set_up_later(self, ready: Awaitable[object], setup: Callable[[], object]) -> None:
        await ready
        self.set_up(setup)
        self.informers.start()  # the ones its setup asked for
        await self._start_group(self._groups[-1])

    def add(self, name: str, reconciler: Reconciler, *, workers: int = 2) -> Controller:
        controller = Controller(name, reconciler, workers=workers, metrics=self.metrics)
        self.controllers.append(controller)
        return controller

    @property
    def healthy(self) -> bool:
        return self._started.is_set()

    async def run(self, stop: asyncio.Event) -> None:
        """Start informers; run each controller once its caches have synced (see
        :meth:`set_up`), every one until ``stop``."""
        self.informers.start()
        grouped = {id(c) for g in self._groups for c in g.controllers}
        grouped_hooks = {id(h) for g in self._groups for h in g.hooks}
        rest = _Group(
            [c for c in self.controllers if id(c) not in grouped],
            self.informers.informers,
            [h for h in self.on_synced if id(h) not in grouped_hooks],
        )
        later = [self._set_up_later(ready, setup) for ready, setup in self._waiting]
        self._waiting.clear()
        starting = asyncio.create_task(self._start_all((*self._groups, rest), later))
        stopping = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait((starting, stopping), return_when=asyncio.FIRST_COMPLETED)
            if starting in done:
                starting.result()  # a hook's error stops the manager
                await stopping
        finally:
            for task in (starting, stopping):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for c in self.controllers:
                await c.stop()
            if self._owns_informers:
                await self.informers.stop()
            with contextlib.suppress(Exception):
                await self.recorder.close()

    async def _start_all(
        self, groups: Sequence[_Group], later: Sequence[Awaitable[None]] = ()
    ) -> None:
        await asyncio.gather(*(self._start_group(g) for g in groups), *later)
        self._started.set()
        log.info("controllers started", extra={"controllers": [c.name for c in self.controllers]})

    async def _start_group(self, group: _Group) -> None:
        async def synced() -> bool:
            waits = (inf.wait_synced() for inf in group.informers)
            try:
                return all(await asyncio.wait_for(asyncio.gather(*waits), 30))
            except TimeoutError:
                return False

        while not await synced():
            names = [c.name for c in group.controllers]
            log.warning("waiting for informer caches to sync", extra={"controllers": names})
        for hook in group.hooks:
            await hook()
        for c in group.controllers:
            c.start()

    async def run_with_leader_election(
        self, stop: asyncio.Event, lock_name: str, lease: LeaseSettings | None = None
    ) -> None:
        """Run only while holding ``kube-system/<lock_name>``; return when leadership is
        lost (the process should exit, as upstream's does) or ``stop`` is set.

        The lease is renewed through a client of its own (upstream's ``leader-election``
        client), so renewals never wait behind the controllers' requests in the shared
        client's rate limiter: under a burst of writes they did, past the renew
        deadline, and the process lost its lease."""

        async def lead() -> None:
            await self.run(stop)

        agent = f"{self.client.user_agent}/leader-election"
        async with Client(self.client.config, user_agent=agent) as election_client:
            election = (lease or LeaseSettings()).config(lock_name, lead)
            await run_while_leading(election_client, election, stop)
