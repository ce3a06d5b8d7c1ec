"""The controller runtime every pyk8s controller is built on (controller-runtime's shape).

* Event handlers only enqueue a key (:class:`Request`); a worker pops it and calls
  ``reconcile(request) -> Result | None``. Reconcilers are level-based: they read the
  informer caches (never trust the event) and copy before they change anything.
* An exception requeues the key with per-item exponential backoff; :class:`TerminalError`
  is logged and not retried; ``Result(requeue_after=s)`` is a timer.
* :class:`Manager` owns the API client, the shared informers and the event recorder,
  runs every registered controller, and (optionally) only while holding a leader lease.

Exceptions::

    Exception
    └── TerminalError     a reconcile error retrying cannot fix (logged, not requeued)
"""

from pyk8s.controllers.runtime.controller import (
    Controller,
    Reconciler,
    Request,
    Result,
    TerminalError,
    enqueue_object,
    enqueue_owner,
)
from pyk8s.controllers.runtime.manager import Manager, select_controllers

__all__ = [
    "Controller",
    "Manager",
    "Reconciler",
    "Request",
    "Result",
    "TerminalError",
    "enqueue_object",
    "enqueue_owner",
    "select_controllers",
]
