"""pyk8s.storage: the revisioned key-value store the API server keeps every object in.

One contract (:class:`Store`, see ``_types``) and its backends: ``sqlite`` (embedded,
the default) and ``etcd`` (real etcd v3 over gRPC). :func:`open_store` picks one from a
``--datastore-endpoint`` URL the way k3s does.
"""

from __future__ import annotations

from pyk8s.storage._types import (
    AlreadyExists,
    Compacted,
    Conflict,
    Event,
    EventType,
    FutureRevision,
    KeyValue,
    ListResult,
    NotFound,
    Store,
    StoreError,
    Unavailable,
    Watch,
    next_start,
    prefix_end,
)
from pyk8s.storage.compactor import Compactor
from pyk8s.storage.endpoint import open_store, parse_endpoint

__all__ = [
    "AlreadyExists",
    "Compacted",
    "Compactor",
    "Conflict",
    "Event",
    "EventType",
    "FutureRevision",
    "KeyValue",
    "ListResult",
    "NotFound",
    "Store",
    "StoreError",
    "Unavailable",
    "Watch",
    "next_start",
    "open_store",
    "parse_endpoint",
    "prefix_end",
]
