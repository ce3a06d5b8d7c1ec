"""pyk8s.scheduler: kube-scheduler — places every unbound pod on a node.

Shaped like upstream's scheduling framework so its plugins read like upstream's:
:mod:`~pyk8s.scheduler.framework` (extension points as Protocols, ``Status``,
``CycleState``, the plugin registry and profiles), :mod:`~pyk8s.scheduler.plugins`
(one module per plugin), :mod:`~pyk8s.scheduler.queue` (active / backoff /
unschedulable), :mod:`~pyk8s.scheduler.cache` (nodes, pods, assumed pods, per-node
requested resources kept as numpy arrays so the whole cluster is filtered and scored
in a few vector operations) and :mod:`~pyk8s.scheduler.scheduler` (the loop).
It talks only to the API server, through :mod:`pyk8s.client`.
"""

from pyk8s.scheduler.scheduler import DEFAULT_SCHEDULER_NAME, Scheduler

__all__ = ["DEFAULT_SCHEDULER_NAME", "Scheduler"]
