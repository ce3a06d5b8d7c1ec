"""The storage contract: the one interface the API server codes against.

pyk8s keeps every object in a store with etcd v3 semantics, whatever the backend:

* one global *revision* that grows by one with every write (create, update, delete);
* per key a *create revision* (the write that created it) and a *mod revision* (its
  latest write), which the API server exposes as ``metadata.resourceVersion``;
* compare-and-swap: updates and deletes name the mod revision they expect, and a
  mismatch fails without writing, returning the current value so that the caller can
  answer 409 Conflict without a second read;
* watch from any retained revision, with the previous value on every event, no gap
  and no duplicate; history older than the compacted revision is gone, and asking for
  it raises :class:`Compacted` (HTTP 410 Gone);
* keys with a time to live (Events expire after an hour upstream).

Errors form one tree::

    StoreError
    ├── NotFound            the key does not exist (or not at that revision)
    ├── AlreadyExists       create of a key that exists
    ├── Conflict            expected mod revision does not match; carries ``current``
    ├── Compacted           revision below the compacted revision
    ├── FutureRevision      revision above the current revision
    └── Unavailable         the backend cannot be reached, is locked or is corrupt
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, runtime_checkable


class StoreError(Exception):
    """Base of every error a store raises."""


class NotFound(StoreError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key not found: {key}")
        self.key = key


class AlreadyExists(StoreError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key already exists: {key}")
        self.key = key


class Conflict(StoreError):
    """The expected mod revision did not match; ``current`` is what is stored now.

    ``current`` is None when the key no longer exists.
    """

    def __init__(self, key: str, expected: int, current: KeyValue | None) -> None:
        have = current.mod_revision if current else "none (deleted)"
        super().__init__(f"conflict on {key}: expected revision {expected}, current {have}")
        self.key = key
        self.expected = expected
        self.current = current


class Compacted(StoreError):
    def __init__(self, revision: int, compact_revision: int) -> None:
        super().__init__(
            f"revision {revision} has been compacted (compacted revision {compact_revision})"
        )
        self.revision = revision
        self.compact_revision = compact_revision


class FutureRevision(StoreError):
    def __init__(self, revision: int, current_revision: int) -> None:
        super().__init__(
            f"revision {revision} is in the future (current revision {current_revision})"
        )
        self.revision = revision
        self.current_revision = current_revision


class Unavailable(StoreError):
    """The backend cannot serve: unreachable, locked by another process, or corrupt."""


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    #: seconds to live given at the latest write (0: lives forever)
    ttl: int = 0
    #: read through an encryption key that no longer writes (see .encryption): an
    #: update must rewrite the value even when the object did not change
    stale: bool = False


class EventType(enum.Enum):
    PUT = "PUT"
    DELETE = "DELETE"


@dataclass(frozen=True, slots=True)
class Event:
    """One committed write.

    For PUT, ``kv`` is the new value; for DELETE, ``kv`` carries the key, the delete's
    revision as ``mod_revision`` and an empty value. ``prev_kv`` is the value before the
    write (None for a create).
    """

    type: EventType
    kv: KeyValue
    prev_kv: KeyValue | None

    @property
    def revision(self) -> int:
        return self.kv.mod_revision


@dataclass(frozen=True, slots=True)
class ListResult:
    """A page of a prefix list, consistent at ``revision``.

    ``remaining`` counts the keys after this page (0 when the page is the last), which the
    API server reports as ``remainingItemCount``. Continue with
    ``start=next_start(result)`` and ``revision=result.revision``.
    """

    kvs: list[KeyValue]
    revision: int
    remaining: int = 0

    @property
    def more(self) -> bool:
        return self.remaining > 0


def next_start(result: ListResult) -> str:
    """The ``start`` key that continues a list after ``result``'s last key."""
    if not result.kvs:
        raise ValueError("an empty page has no continuation")
    return result.kvs[-1].key + "\x00"


def prefix_end(prefix: str) -> str:
    """The first key after every key that starts with ``prefix`` (etcd's range end)."""
    if not prefix:
        return "\U0010ffff"
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class Watch(abc.ABC):
    """A running watch: an async iterator of :class:`Event` and an async context
    manager that closes it. Iteration ends after :meth:`close`; if the backend drops the
    watch (store closed, connection lost for good) iteration raises Unavailable."""

    def __aiter__(self) -> Watch:
        return self

    @abc.abstractmethod
    async def __anext__(self) -> Event: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    def take_ready(self) -> tuple[list[Event], int]:
        """The events this watch already holds, taken without waiting (iteration goes on
        after them), and the store revision up to which it has been handed every event
        under its prefix (a progress notification; 0: not known). Its reader may apply
        them ahead of its own loop. None and 0 by default."""
        return [], 0

    async def __aenter__(self) -> Watch:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


@runtime_checkable
class Store(Protocol):
    """What every backend provides. All methods are coroutines but ``watch``, an async
    generator. Revisions are positive integers; 0 means "latest" wherever accepted."""

    async def get(self, key: str, revision: int = 0) -> KeyValue:
        """The value of ``key`` at ``revision`` (latest when 0); NotFound if absent."""
        ...

    async def list(
        self, prefix: str, *, limit: int = 0, start: str = "", revision: int = 0
    ) -> ListResult:
        """Keys under ``prefix`` in key order, from ``start`` (inclusive) on, at most
        ``limit`` of them (0: all), consistent at ``revision`` (latest when 0)."""
        ...

    async def count(self, prefix: str) -> int:
        """How many live keys are under ``prefix`` now."""
        ...

    async def create(self, key: str, value: bytes, *, ttl: int = 0) -> KeyValue:
        """Write a new key; AlreadyExists if it is there."""
        ...

    async def update(
        self, key: str, value: bytes, *, expected_revision: int, ttl: int = 0
    ) -> KeyValue:
        """Replace ``key`` if its mod revision is ``expected_revision``; else Conflict
        (with the current value) or NotFound."""
        ...

    async def delete(self, key: str, *, expected_revision: int = 0) -> KeyValue:
        """Delete ``key`` (only at ``expected_revision`` unless 0) and return the value it
        had; Conflict (with the current value) or NotFound."""
        ...

    async def current_revision(self) -> int:
        """The revision of the latest write."""
        ...

    async def compacted_revision(self) -> int:
        """Revisions below this one are no longer available."""
        ...

    async def compact(self, revision: int) -> None:
        """Drop history below ``revision``; the latest value of every live key stays."""
        ...

    async def watch(self, prefix: str, *, after: int | None = None) -> Watch:
        """Every write under ``prefix`` with a revision above ``after`` (from now when
        None), in revision order, then live ones until the watch is closed. Raises
        Compacted when history after ``after`` is no longer complete, FutureRevision
        when ``after`` is above the current revision."""
        ...

    async def close(self) -> None:
        """Release connections, threads and locks; watches end."""
        ...
