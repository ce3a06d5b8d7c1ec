"""Proof that a controller looked: touch an object, wait for a reconcile that saw the touch.

A test that shows something did *not* happen (no second ReplicaSet, no rewrite of a
finished Job, the next StatefulSet pod held back) must not sleep and hope the controller
has run by then. It waits for an event that proves the controller reconciled the object
after the state under test was in its cache. :func:`touch_and_wait_for_sync` makes that
event: it sets an annotation on the object (metadata only: no new generation, nothing
the controller acts on) and waits until the named controller has *finished* a reconcile
of that key which *began* while its informer already held the annotated object. That
reconcile read a cache at least as new as the touch, so whatever it would do about the
state under test it has done (its writes are awaited inside reconcile).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from pyk8s.api.registry import Resource
from pyk8s.client import Client
from pyk8s.controllers.runtime import Manager, Request, Result

Obj = dict[str, Any]

TOUCH = "test.pyk8s.io/touch"


class _Watching:
    """Wraps a reconciler; sets ``done`` after a reconcile of ``key`` that saw ``token``
    on ``obj`` in the informer's cache."""

    def __init__(
        self, inner: Any, informer: Any, obj: Request, key: Request | None, token: str
    ) -> None:
        self.inner = inner
        self.informer = informer
        self.obj = obj
        self.key = key if key is not None else obj
        self.token = token
        self.done = asyncio.Event()

    def _touched(self) -> bool:
        obj = self.informer.store.get_by_name(self.obj.namespace or None, self.obj.name)
        annotations = ((obj or {}).get("metadata") or {}).get("annotations") or {}
        return bool(annotations.get(TOUCH) == self.token)

    async def reconcile(self, request: Request) -> Result | None:
        saw_touch = request == self.key and self._touched()
        try:
            return await self.inner.reconcile(request)  # type: ignore[no-any-return]
        finally:
            if saw_touch:
                self.done.set()


async def touch_and_wait_for_sync(
    client: Client,
    manager: Manager,
    controller: str,
    resource: Resource,
    namespace: str,
    name: str,
    *,
    key: Request | None = None,
    within: float = 30.0,
) -> Obj:
    """Annotate ``name`` and wait for ``controller`` to finish a reconcile that saw it.

    ``key`` is the work-queue key the controller reconciles the object under: the object
    itself unless given (a controller that sweeps everything under one key names that).
    Returns the object as the annotation patch left it (its resourceVersion is the one
    a controller that writes nothing more leaves in place).
    """
    (ctl,) = [c for c in manager.controllers if c.name == controller]
    informer = manager.informers.informer(resource)
    token = uuid.uuid4().hex
    watching = _Watching(ctl.reconciler, informer, Request(namespace, name), key, token)
    ctl.reconciler = watching
    try:
        touched: Obj = await client.patch(
            resource,
            name,
            {"metadata": {"annotations": {TOUCH: token}}},
            namespace,
            patch_type="merge",
        )
        await asyncio.wait_for(watching.done.wait(), within)
    finally:
        ctl.reconciler = watching.inner
    return touched
