"""pyk8s.client: how every pyk8s component talks to the API server (and nothing else does).

The design rule (DESIGN.md §2) is that components — controllers, scheduler, kubelet,
proxy, dns, sim-nodes — never touch storage or each other: they list, watch and write
through the API server, like upstream's components do through client-go. This package
is that client-go, async, with the same semantics where they matter:

* :mod:`~pyk8s.client.config` — kubeconfig / in-cluster config → :class:`Config`;
* :mod:`~pyk8s.client.rest` — :class:`Client`: typed-by-``Resource`` REST verbs, watch
  streams, subresources, client-side rate limit, retries;
* :mod:`~pyk8s.client.informer` — :class:`SharedInformer` (list + watch + relist on
  410), :class:`Store` with indexes, :class:`InformerFactory` (one informer per resource);
* :mod:`~pyk8s.client.workqueue` — deduplicating, delaying, rate-limited work queues;
* :mod:`~pyk8s.client.leaderelection` — :class:`LeaderElector` on a Lease;
* :mod:`~pyk8s.client.events` — :class:`EventRecorder` (deduplicating, best effort).

Objects are plain dicts as on the wire. Objects from an informer's store are shared:
copy before mutating.

Exceptions::

    Exception
    ├── ClientError                 everything raised here on purpose
    │   ├── ConfigError             unusable kubeconfig / in-cluster config
    │   ├── TransportError          server unreachable / connection broken, retries spent
    │   └── ApiError                a failure Status (status, reason, message, body);
    │                               is_not_found / is_conflict / is_already_exists /
    │                               is_gone / is_invalid / is_forbidden … tell them apart
    └── ShutDown                    WorkQueue.get() on a shut-down, drained queue

(``ValueError`` for programming errors such as a namespaced ``get`` without a namespace.)
"""

from pyk8s.client.config import Config, load_config, load_incluster_config, load_kubeconfig
from pyk8s.client.errors import (
    ApiError,
    ClientError,
    ConfigError,
    TransportError,
    is_already_exists,
    is_conflict,
    is_forbidden,
    is_gone,
    is_invalid,
    is_not_found,
    is_too_many_requests,
    is_unauthorized,
)
from pyk8s.client.events import NORMAL, WARNING, EventRecorder, object_reference
from pyk8s.client.informer import (
    NAMESPACE_INDEX,
    InformerFactory,
    ListerWatcher,
    SharedInformer,
    Store,
    meta_namespace_key,
    split_key,
)
from pyk8s.client.leaderelection import (
    LeaderElectionConfig,
    LeaderElector,
    LeaseSettings,
    run_while_leading,
)
from pyk8s.client.rest import (
    Client,
    Obj,
    ResourceRef,
    WatchEvent,
    WatchStream,
    component_user_agent,
)
from pyk8s.client.workqueue import (
    DelayingQueue,
    RateLimitingQueue,
    ShutDown,
    WorkQueue,
    default_controller_rate_limiter,
)

__all__ = [
    "NAMESPACE_INDEX",
    "NORMAL",
    "WARNING",
    "ApiError",
    "Client",
    "ClientError",
    "Config",
    "ConfigError",
    "DelayingQueue",
    "EventRecorder",
    "InformerFactory",
    "LeaderElectionConfig",
    "LeaderElector",
    "LeaseSettings",
    "ListerWatcher",
    "Obj",
    "RateLimitingQueue",
    "ResourceRef",
    "SharedInformer",
    "ShutDown",
    "Store",
    "TransportError",
    "WatchEvent",
    "WatchStream",
    "WorkQueue",
    "component_user_agent",
    "default_controller_rate_limiter",
    "is_already_exists",
    "is_conflict",
    "is_forbidden",
    "is_gone",
    "is_invalid",
    "is_not_found",
    "is_too_many_requests",
    "is_unauthorized",
    "load_config",
    "load_incluster_config",
    "load_kubeconfig",
    "meta_namespace_key",
    "object_reference",
    "run_while_leading",
    "split_key",
]
