"""The etcd backend: the storage contract on a real etcd v3 cluster over gRPC.

Revisions, compare-and-swap, watches, compaction and TTLs are etcd's own; this module
only translates. Why it looks the way it does:

* **One gRPC channel for every member.** aetcd's high-level ``Client`` talks to one host,
  so we build a ``grpc.aio`` channel ourselves on a static multi-address target
  (``ipv4:a:p,b:p,...``; host names are resolved once at :meth:`EtcdStore.open`) with the
  ``round_robin`` policy, and drive aetcd's generated stubs directly. round_robin keeps a
  connection to every member and only picks READY ones, so when a member stops, new
  calls go to the others at once (pick_first would first have to notice and reconnect).
  Every read is linearizable (etcd's ReadIndex), so spreading reads over members never
  shows a stale value. Reconnect backoff is capped at 1 s so a restarted member is used
  again quickly; keepalive (10 s, above etcd's 5 s minimum) finds dead peers that did not
  close their connection.
* **Bounded retries.** Each call runs under a budget (``request_timeout``) with
  ``wait_for_ready`` and is retried on UNAVAILABLE (member gone, no leader, leader
  changed) with a short exponential backoff. Every write is guarded by a comparison
  (create: key absent; update/delete: expected mod revision), so a retry can never apply
  twice; when a retried create/update fails its comparison against a value equal to
  ours, the earlier attempt committed and lost its answer, and we report success.
  Whatever is left is mapped to our error tree: no grpc exception leaves this module.
* **Compaction is one revision behind etcd's.** The contract keeps the compacted
  revision ``C`` itself complete: a watch may start at ``C`` and its first event still
  carries ``prev_kv``, the value the key had *before* ``C``. etcd compacted at ``C``
  drops exactly that value. So :meth:`EtcdStore.compact` asks etcd to compact at
  ``C - 1``, and our compacted revision is etcd's + 1. Reads at etcd's own compacted
  revision would still work there, so a read at an explicit revision ``r`` is a
  read-only Txn that also reads (counts nothing at) ``r - 1``: etcd fails it as
  compacted exactly when ``r`` is below ``C``, in the same round trip. A watch
  checks ``after`` the same way.
* **Learning the compacted revision.** etcd has no call that returns it. A read at
  revision ``r`` fails with "required revision has been compacted" exactly when ``r``
  is below it, so :meth:`EtcdStore.compacted_revision` checks the last value known (our
  own compactions, watch responses, errors; found at open) with one cheap read and
  binary-searches up to the current revision only when that fails. It thereby sees
  compactions made by other clients too (another API server, ``etcdctl compact``).
* **TTL = lease.** A write with a TTL attaches a lease; etcd revokes it when it runs out,
  deleting the key and emitting the DELETE event itself. As upstream's apiserver does,
  leases are shared by writes with the same TTL within a reuse window (5 % of the TTL, at
  most 60 s; granted TTL = TTL + window), but only when that window is at least one
  second: short TTLs get a lease of their own so that they expire on time. The TTL a
  :class:`KeyValue` reports is the one asked for; leases this client did not grant are
  looked up once (LeaseTimeToLive) and remembered.
* **Watch.** One gRPC Watch stream per :class:`Watch`, read by a task into a queue.
  :meth:`EtcdStore.watch` checks ``after`` first (future: above the linearizable current
  revision; compacted: a read at ``after`` fails) and waits for etcd's "created"
  answer, so those errors reach the caller before iteration. The task remembers the
  revision of the last event received; if the stream breaks (member stopped, connection
  lost, "no leader" with the require-leader header), it opens a new stream on the
  channel, which round_robin places on a live member, from that revision + 1: no gap and
  no duplicate (events at or below it are dropped defensively). etcd never splits one
  revision over two responses, so tracking whole revisions is exact. If no member takes
  the stream within ``watch_reconnect_timeout``, iteration raises Unavailable; if history
  was compacted meanwhile, it raises Compacted.

Known limits: keys sharing a lease expire in one revision (several DELETE events with
the same revision); another client reports a shared lease's granted TTL (TTL + window);
a retried unconditional delete whose first attempt committed reports NotFound; a quiet
watch resumes from its last event, not from a progress notification, so a resume after
compaction passed that event raises Compacted (the caller re-lists, as on HTTP 410).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from aetcd import rpc

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
    StoreError,
    Unavailable,
    Watch,
    prefix_end,
)
from pyk8s.storage.endpoint import EtcdTLS

log = logging.getLogger(__name__)

T = TypeVar("T")

_COMPACTED = "required revision has been compacted"
_FUTURE = "required revision is a future revision"
_LEASE_NOT_FOUND = "requested lease not found"
_TOO_MANY_REQUESTS = "too many requests"

#: key of the cheap reads that only want a response header or a revision check
_PROBE_KEY = b"\x00"
#: ask etcd to cancel watches on a member that lost its leader (clientv3's WithRequireLeader)
_REQUIRE_LEADER = (("hasleader", "true"),)

_BACKOFF_FIRST = 0.05
_BACKOFF_MAX = 1.0

_LEASE_REUSE_PERCENT = 5
_LEASE_REUSE_MAX = 60
_LEASE_MAX_KEYS = 1000
_LEASE_CACHE_MAX = 100_000

_CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.lb_policy_name", "round_robin"),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.max_receive_message_length", 2**31 - 1),
    ("grpc.max_send_message_length", 2**31 - 1),
]


def _enc(key: str) -> bytes:
    return key.encode("utf-8", "surrogateescape")


def _dec(key: bytes) -> str:
    return key.decode("utf-8", "surrogateescape")


def _range(prefix: str, start: str = "") -> tuple[bytes, bytes]:
    """etcd's [key, range_end) for the keys under ``prefix`` from ``start`` on."""
    begin = _enc(max(prefix, start)) or _PROBE_KEY
    end = _enc(prefix_end(prefix)) if prefix else b"\x00"  # b"\0": every key >= begin
    return begin, end


def _absent(k: bytes) -> Any:
    """Compare: ``k`` does not exist (its create revision is 0)."""
    return rpc.Compare(
        key=k, target=rpc.Compare.CREATE, result=rpc.Compare.EQUAL, create_revision=0
    )


def _present(k: bytes) -> Any:
    """Compare: ``k`` exists."""
    return rpc.Compare(
        key=k, target=rpc.Compare.CREATE, result=rpc.Compare.GREATER, create_revision=0
    )


def _modified_at(k: bytes, revision: int) -> Any:
    """Compare: ``k`` was last modified at ``revision``."""
    return rpc.Compare(
        key=k, target=rpc.Compare.MOD, result=rpc.Compare.EQUAL, mod_revision=revision
    )


def _read_back(k: bytes) -> Any:
    """A Txn's failure branch: read ``k``, to tell why the comparison failed."""
    return rpc.RequestOp(request_range=rpc.RangeRequest(key=k))


def _details(err: Any) -> str:
    details = err.details() if hasattr(err, "details") else None
    return str(details or err)


def _retryable(err: Any) -> bool:
    code = err.code()
    if code == grpc.StatusCode.UNAVAILABLE:
        return True
    return bool(code == grpc.StatusCode.RESOURCE_EXHAUSTED and _TOO_MANY_REQUESTS in _details(err))


class _LeaseGone(StoreError):
    """The lease a write named expired before the write reached etcd; grant another."""


class _StreamBroken(Exception):
    """A watch stream ended or was cancelled by etcd without us asking."""


@dataclass(slots=True)
class _Lease:
    id: int
    ttl: int
    #: monotonic time before which etcd will not revoke it
    expires: float
    keys: int = 1


def channel(
    target: str, tls: EtcdTLS | None, options: Sequence[tuple[str, Any]] = ()
) -> grpc.aio.Channel:
    """A gRPC channel to etcd, over TLS when ``tls`` is given."""
    if tls is None:
        return grpc.aio.insecure_channel(target, options=list(options))
    with open(tls.ca_file, "rb") as f:
        ca = f.read()
    cert = key = None
    if tls.cert_file:
        with open(tls.cert_file, "rb") as f:
            cert = f.read()
        with open(tls.key_file or tls.cert_file, "rb") as f:
            key = f.read()
    creds = grpc.ssl_channel_credentials(ca, key, cert)
    opts = [*options, ("grpc.ssl_target_name_override", tls.server_name)]
    return grpc.aio.secure_channel(target, creds, options=opts)


async def _target(hosts: Sequence[tuple[str, int]]) -> str:
    """A static gRPC target naming every member, host names resolved now."""
    loop = asyncio.get_running_loop()
    v4: list[str] = []
    v6: list[str] = []
    for host, port in hosts:
        try:
            addrs: list[str] = [str(ipaddress.ip_address(host))]
        except ValueError:
            try:
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as err:
                raise Unavailable(f"cannot resolve etcd host {host}: {err}") from None
            addrs = [str(info[4][0]) for info in infos]
        four = [a for a in addrs if ipaddress.ip_address(a).version == 4]
        six = [a for a in addrs if ipaddress.ip_address(a).version == 6]
        v4.append(f"{four[0]}:{port}" if four else "")
        v6.append(f"[{six[0]}]:{port}" if six else "")
    if all(v4):
        return "ipv4:" + ",".join(v4)
    if all(v6):
        return "ipv6:" + ",".join(v6)
    raise Unavailable(
        f"etcd hosts {hosts} mix IPv4-only and IPv6-only addresses; name them in one family"
    )


class EtcdStore:
    """A :class:`~pyk8s.storage.Store` on an etcd v3 cluster. Use :meth:`open`."""

    def __init__(
        self,
        target: str,
        where: str,
        *,
        request_timeout: float = 10.0,
        watch_reconnect_timeout: float = 30.0,
        tls: EtcdTLS | None = None,
    ) -> None:
        self._where = where
        self._request_timeout = request_timeout
        self._watch_reconnect_timeout = watch_reconnect_timeout
        self._channel: Any = channel(target, tls, _CHANNEL_OPTIONS)
        self._kv: Any = rpc.KVStub(self._channel)
        self._watch_stub: Any = rpc.WatchStub(self._channel)
        self._lease_stub: Any = rpc.LeaseStub(self._channel)
        #: a lower bound of etcd's own compacted revision (ours is one more)
        self._etcd_compacted = 0
        #: the highest revision compact() was called with
        self._compact_requested = 0
        #: lease id -> the TTL its keys were written with
        self._lease_ttls: dict[int, int] = {}
        #: TTL -> the lease new writes with that TTL may share
        self._reusable: dict[int, _Lease] = {}
        self._watches: set[_EtcdWatch] = set()
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def open(
        cls,
        hosts: Sequence[tuple[str, int]],
        *,
        connect_timeout: float = 10.0,
        request_timeout: float = 10.0,
        watch_reconnect_timeout: float = 30.0,
        tls: EtcdTLS | None = None,
    ) -> EtcdStore:
        """Connect to the members ``hosts`` and check that one answers within
        ``connect_timeout`` seconds; Unavailable if none does."""
        if not hosts:
            raise ValueError("no etcd hosts given")
        where = ",".join(f"{h}:{p}" for h, p in hosts)
        store = cls(
            await _target(hosts),
            where,
            request_timeout=request_timeout,
            watch_reconnect_timeout=watch_reconnect_timeout,
            tls=tls,
        )

        async def probe(remaining: float, attempt: int) -> None:
            # fail fast while nothing is up, so that the error names the reason
            await store._kv.Range(
                rpc.RangeRequest(key=_PROBE_KEY, count_only=True), timeout=remaining
            )

        try:
            await store._rpc("connect", probe, budget=connect_timeout)
            await store._find_etcd_compacted()
        except StoreError as err:
            await store.close()
            reason = str(err).removeprefix(f"etcd at {where}: connect: ")
            raise Unavailable(
                f"cannot reach etcd at {where} within {connect_timeout:g}s: {reason}"
            ) from None
        except BaseException:
            await store.close()
            raise
        return store

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for w in list(self._watches):
            await w.end()
        await self._channel.close(grace=None)

    # ------------------------------------------------------------------ calls

    async def _rpc(
        self,
        what: str,
        fn: Callable[[float, int], Awaitable[T]],
        *,
        revision: int = 0,
        budget: float | None = None,
    ) -> T:
        """Run ``fn(remaining_seconds, attempt)``, retrying UNAVAILABLE within the budget;
        map failures to StoreErrors (Compacted/FutureRevision name ``revision``)."""
        loop = asyncio.get_running_loop()
        budget = self._request_timeout if budget is None else budget
        deadline = loop.time() + budget
        delay = _BACKOFF_FIRST
        attempt = 0
        while True:
            if self._closed:
                raise Unavailable("etcd store is closed")
            try:
                return await fn(max(deadline - loop.time(), 0.001), attempt)
            except grpc.RpcError as err:
                if self._closed:
                    raise Unavailable("etcd store is closed") from None
                if _retryable(err) and deadline - loop.time() > delay:
                    log.debug("etcd %s: %s; retrying in %.2fs", what, _details(err), delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _BACKOFF_MAX)
                    attempt += 1
                    continue
                error = await self._error(what, err, revision, budget)
            except grpc.aio.BaseError as err:  # e.g. UsageError on a channel being closed
                error = Unavailable(f"etcd at {self._where}: {what}: {err}")
            raise error

    async def _call(
        self, what: str, method: Callable[..., Awaitable[Any]], req: Any, *, revision: int = 0
    ) -> Any:
        """The response of the unary call ``method(req)``, under :meth:`_rpc`."""

        async def fn(remaining: float, attempt: int) -> Any:
            return await method(req, timeout=remaining, wait_for_ready=True)

        return await self._rpc(what, fn, revision=revision)

    async def _error(self, what: str, err: Any, revision: int, budget: float) -> StoreError:
        code = err.code()
        details = _details(err)
        if _COMPACTED in details:
            await self._find_etcd_compacted(revision - 1)
            return Compacted(revision, await self.compacted_revision())
        if _FUTURE in details:
            return FutureRevision(revision, await self.current_revision())
        if _LEASE_NOT_FOUND in details:
            return _LeaseGone(f"etcd {what}: {details}")
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return Unavailable(
                f"etcd at {self._where}: {what}: no member answered within {budget:g}s"
            )
        if code in (
            grpc.StatusCode.INVALID_ARGUMENT,
            grpc.StatusCode.FAILED_PRECONDITION,
            grpc.StatusCode.OUT_OF_RANGE,
            grpc.StatusCode.PERMISSION_DENIED,
            grpc.StatusCode.UNAUTHENTICATED,
        ):
            return StoreError(f"etcd at {self._where} rejected {what}: {details}")
        return Unavailable(f"etcd at {self._where}: {what}: {code.name}: {details}")

    # ------------------------------------------------------------------ conversions

    async def _ttl(self, lease: int) -> int:
        if not lease:
            return 0
        ttl = self._lease_ttls.get(lease)
        if ttl is not None:
            return ttl

        try:
            resp = await self._call(
                "lease time to live",
                self._lease_stub.LeaseTimeToLive,
                rpc.LeaseTimeToLiveRequest(ID=lease),
            )
            ttl = max(int(resp.grantedTTL), 0)
        except _LeaseGone:
            ttl = 0
        self._remember_lease(lease, ttl)
        return ttl

    def _remember_lease(self, lease: int, ttl: int) -> None:
        self._lease_ttls[lease] = ttl
        while len(self._lease_ttls) > _LEASE_CACHE_MAX:
            del self._lease_ttls[next(iter(self._lease_ttls))]

    async def _to_kv(self, pb: Any) -> KeyValue:
        return KeyValue(
            _dec(pb.key),
            bytes(pb.value),
            int(pb.create_revision),
            int(pb.mod_revision),
            await self._ttl(int(pb.lease)),
        )

    async def _to_event(self, ev: Any) -> Event:
        prev = await self._to_kv(ev.prev_kv) if ev.HasField("prev_kv") else None
        if ev.type == rpc.Event.DELETE:
            create = prev.create_revision if prev else 0
            kv = KeyValue(_dec(ev.kv.key), b"", create, int(ev.kv.mod_revision))
            return Event(EventType.DELETE, kv, prev)
        return Event(EventType.PUT, await self._to_kv(ev.kv), prev)

    # ------------------------------------------------------------------ reads

    async def _read(self, what: str, req: Any, revision: int) -> tuple[Any, int]:
        """The RangeResponse of ``req`` and the header revision. At an explicit revision
        ``r``, the same read-only Txn reads at ``r - 1`` too, so that etcd fails it as
        compacted when ``r`` is below our compacted revision (etcd's + 1)."""
        if 0 < revision <= self._etcd_compacted:
            raise Compacted(revision, await self.compacted_revision())
        if revision <= 1:
            resp = await self._call(what, self._kv.Range, req, revision=revision)
            return resp, int(resp.header.revision)
        txn = rpc.TxnRequest(
            success=[
                rpc.RequestOp(
                    request_range=rpc.RangeRequest(
                        key=_PROBE_KEY, revision=revision - 1, count_only=True
                    )
                ),
                rpc.RequestOp(request_range=req),
            ]
        )
        resp = await self._call(what, self._kv.Txn, txn, revision=revision)
        return resp.responses[1].response_range, int(resp.header.revision)

    async def get(self, key: str, revision: int = 0) -> KeyValue:
        req = rpc.RangeRequest(key=_enc(key), revision=revision)
        resp, _ = await self._read(f"get {key}", req, revision)
        if not resp.kvs:
            raise NotFound(key)
        return await self._to_kv(resp.kvs[0])

    async def list(
        self, prefix: str, *, limit: int = 0, start: str = "", revision: int = 0
    ) -> ListResult:
        begin, end = _range(prefix, start)
        req = rpc.RangeRequest(key=begin, range_end=end, revision=revision, limit=max(limit, 0))
        resp, header_revision = await self._read(f"list {prefix}", req, revision)
        kvs = [await self._to_kv(kv) for kv in resp.kvs]
        remaining = int(resp.count) - len(kvs) if resp.more else 0
        return ListResult(kvs, revision or header_revision, remaining)

    async def count(self, prefix: str) -> int:
        begin, end = _range(prefix)
        req = rpc.RangeRequest(key=begin, range_end=end, count_only=True)
        resp = await self._call(f"count {prefix}", self._kv.Range, req)
        return int(resp.count)

    async def current_revision(self) -> int:
        req = rpc.RangeRequest(key=_PROBE_KEY, count_only=True)
        resp = await self._call("current revision", self._kv.Range, req)
        return int(resp.header.revision)

    async def _readable(self, revision: int) -> bool:
        """False when etcd has compacted ``revision`` away (it is below etcd's compacted
        revision): then ``revision + 1`` is below ours."""
        req = rpc.RangeRequest(key=_PROBE_KEY, revision=revision, count_only=True)

        async def fn(remaining: float, attempt: int) -> bool:
            try:
                await self._kv.Range(req, timeout=remaining, wait_for_ready=True)
            except grpc.RpcError as err:
                if _COMPACTED in _details(err):
                    return False
                raise
            return True

        return await self._rpc(f"read at revision {revision}", fn)

    async def _check_not_compacted(self, after: int) -> None:
        """Raise Compacted when etcd cannot serve events after ``after`` any more."""
        position = max(after, 1)
        if not await self._readable(position):
            await self._find_etcd_compacted(position)
            raise Compacted(after, await self.compacted_revision())

    async def _find_etcd_compacted(self, unreadable: int = 0) -> int:
        """etcd's compacted revision: the lowest revision etcd may still be asked for.

        ``unreadable`` is a revision already known to be compacted (0: none)."""
        known = self._etcd_compacted
        if unreadable < max(known, 1):
            if await self._readable(max(known, 1)):
                return known
            unreadable = max(known, 1)
        # reads fail at ``bad`` and work at ``good``; the compacted revision is in (bad, good]
        bad, good = unreadable, await self.current_revision()
        while good - bad > 1:
            mid = (bad + good) // 2
            if await self._readable(mid):
                good = mid
            else:
                bad = mid
        self._note_etcd_compacted(good)
        return self._etcd_compacted

    def _note_etcd_compacted(self, revision: int) -> None:
        self._etcd_compacted = max(self._etcd_compacted, revision)

    def _ours(self, etcd_compacted: int) -> int:
        """Our compacted revision given etcd's (see the module docstring)."""
        return max(etcd_compacted + 1 if etcd_compacted > 0 else 0, self._compact_requested)

    async def compacted_revision(self) -> int:
        return self._ours(await self._find_etcd_compacted())

    # ------------------------------------------------------------------ writes

    async def _lease(self, ttl: int) -> int:
        """A lease for a write with ``ttl`` (0: none), shared within the reuse window."""
        if ttl <= 0:
            return 0
        window = min(ttl * _LEASE_REUSE_PERCENT // 100, _LEASE_REUSE_MAX)
        now = time.monotonic()
        if window >= 1:
            lease = self._reusable.get(ttl)
            if lease and lease.expires - now >= ttl and lease.keys < _LEASE_MAX_KEYS:
                lease.keys += 1
                return lease.id

        resp = await self._call(
            f"grant lease ({ttl}s)",
            self._lease_stub.LeaseGrant,
            rpc.LeaseGrantRequest(TTL=ttl + window),
        )
        if resp.error:
            raise Unavailable(f"etcd at {self._where}: grant lease: {resp.error}")
        lease_id = int(resp.ID)
        self._remember_lease(lease_id, ttl)
        if window >= 1:
            self._reusable[ttl] = _Lease(lease_id, ttl, now + int(resp.TTL))
        return lease_id

    def _forget_lease(self, ttl: int, lease_id: int) -> None:
        lease = self._reusable.get(ttl)
        if lease and lease.id == lease_id:
            del self._reusable[ttl]

    async def _write(
        self, what: str, key: str, ttl: int, build: Callable[[int, int], Any]
    ) -> tuple[Any, int, int]:
        """Run the Txn ``build(lease, attempt)``; returns it with the lease and attempt.

        A lease that expired before the write landed (only possible when shared, or for
        a TTL shorter than a retry) is replaced once."""
        for again in (False, True):
            lease = await self._lease(ttl)
            try:
                resp, attempt = await self._rpc(f"{what} {key}", self._txn(build, lease))
            except _LeaseGone as err:
                self._forget_lease(ttl, lease)
                if again:
                    raise Unavailable(str(err)) from None
                continue
            return resp, lease, attempt
        raise AssertionError("unreachable")

    def _txn(
        self, build: Callable[[int, int], Any], lease: int
    ) -> Callable[[float, int], Awaitable[tuple[Any, int]]]:
        async def fn(remaining: float, attempt: int) -> tuple[Any, int]:
            txn = await self._kv.Txn(build(lease, attempt), timeout=remaining, wait_for_ready=True)
            return txn, attempt

        return fn

    async def create(self, key: str, value: bytes, *, ttl: int = 0) -> KeyValue:
        k = _enc(key)

        def build(lease: int, attempt: int) -> Any:
            return rpc.TxnRequest(
                compare=[_absent(k)],
                success=[
                    rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=value, lease=lease))
                ],
                failure=[_read_back(k)],
            )

        resp, lease, attempt = await self._write("create", key, ttl, build)
        if resp.succeeded:
            rev = int(resp.header.revision)
            return KeyValue(key, value, rev, rev, ttl)
        kvs = resp.responses[0].response_range.kvs
        if attempt and kvs and kvs[0].value == value and kvs[0].lease == lease:
            return await self._to_kv(kvs[0])  # our earlier attempt committed
        raise AlreadyExists(key)

    async def update(
        self, key: str, value: bytes, *, expected_revision: int, ttl: int = 0
    ) -> KeyValue:
        k = _enc(key)

        def build(lease: int, attempt: int) -> Any:
            return rpc.TxnRequest(
                compare=[
                    _modified_at(k, expected_revision),
                    # a missing key has mod revision 0: never let "expected 0" create it
                    _present(k),
                ],
                success=[
                    rpc.RequestOp(
                        request_put=rpc.PutRequest(key=k, value=value, lease=lease, prev_kv=True)
                    )
                ],
                failure=[_read_back(k)],
            )

        resp, lease, attempt = await self._write("update", key, ttl, build)
        if resp.succeeded:
            prev = resp.responses[0].response_put.prev_kv
            return KeyValue(key, value, int(prev.create_revision), int(resp.header.revision), ttl)
        kvs = resp.responses[0].response_range.kvs
        if not kvs:
            raise NotFound(key)
        if (
            attempt
            and kvs[0].value == value
            and kvs[0].lease == lease
            and kvs[0].mod_revision > expected_revision
        ):
            return await self._to_kv(kvs[0])  # our earlier attempt committed
        raise Conflict(key, expected_revision, await self._to_kv(kvs[0]))

    async def delete(self, key: str, *, expected_revision: int = 0) -> KeyValue:
        k = _enc(key)
        compare = [_present(k)]
        if expected_revision:
            compare.append(_modified_at(k, expected_revision))
        req = rpc.TxnRequest(
            compare=compare,
            success=[
                rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=k, prev_kv=True))
            ],
            failure=[_read_back(k)],
        )
        resp = await self._call(f"delete {key}", self._kv.Txn, req)
        if resp.succeeded:
            prev_kvs = resp.responses[0].response_delete_range.prev_kvs
            if not prev_kvs:  # deleted between the comparison and the delete: impossible
                raise NotFound(key)
            return await self._to_kv(prev_kvs[0])
        kvs = resp.responses[0].response_range.kvs
        if not kvs:
            raise NotFound(key)
        raise Conflict(key, expected_revision, await self._to_kv(kvs[0]))

    async def compact(self, revision: int) -> None:
        current = await self.current_revision()
        if revision > current:
            raise FutureRevision(revision, current)
        if revision <= self._ours(self._etcd_compacted):
            return
        # etcd keeps what a read at ``revision - 1`` sees: the prev_kv of events at ``revision``
        target = revision - 1
        if target < 1:
            self._compact_requested = max(self._compact_requested, revision)
            return
        req = rpc.CompactionRequest(revision=target, physical=True)

        async def fn(remaining: float, attempt: int) -> None:
            try:
                await self._kv.Compact(req, timeout=remaining, wait_for_ready=True)
            except grpc.RpcError as err:
                if _COMPACTED not in _details(err):  # already compacted that far: no-op
                    raise

        # a physical compaction of a large database takes a while: allow a minute
        await self._rpc(
            f"compact to {revision}", fn, revision=revision, budget=max(self._request_timeout, 60)
        )
        self._note_etcd_compacted(target)
        self._compact_requested = max(self._compact_requested, revision)

    # ------------------------------------------------------------------ watch

    async def watch(self, prefix: str, *, after: int | None = None) -> Watch:
        if self._closed:
            raise Unavailable("etcd store is closed")
        current = await self.current_revision()
        if after is None:
            after = current
        elif after > current:
            raise FutureRevision(after, current)
        elif after < current:
            await self._check_not_compacted(after)
        w = _EtcdWatch(self, prefix, after)
        await w.start()
        self._watches.add(w)
        return w


class _EtcdWatch(Watch):
    """One etcd watch stream, resumed on another member when it breaks."""

    def __init__(self, store: EtcdStore, prefix: str, after: int) -> None:
        self._store = store
        self._prefix = prefix
        self._key, self._range_end = _range(prefix)
        #: every event up to this revision has been received
        self._position = after
        self._queue: asyncio.Queue[list[Event] | StoreError | None] = asyncio.Queue()
        self._pending: deque[Event] = deque()
        self._call: Any = None
        self._task: asyncio.Task[None] | None = None
        self._done = False
        #: how many times the stream was re-established (for tests and logs)
        self.resumes = 0

    async def start(self) -> None:
        self._call = await self._connect(self._store._request_timeout)
        self._task = asyncio.create_task(self._run(), name=f"etcd-watch {self._prefix}")

    async def _connect(self, budget: float) -> Any:
        """A new stream from ``position + 1``, created before this returns."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        delay = _BACKOFF_FIRST
        while True:
            if self._store._closed:
                raise Unavailable("etcd store is closed")
            call = self._store._watch_stub.Watch(metadata=_REQUIRE_LEADER, wait_for_ready=True)
            try:
                await asyncio.wait_for(self._create(call), max(deadline - loop.time(), 0.001))
                return call
            except (grpc.RpcError, grpc.aio.BaseError, _StreamBroken, TimeoutError) as err:
                call.cancel()
                reason = _details(err) if isinstance(err, grpc.RpcError) else str(err)
                if loop.time() + delay >= deadline:
                    raise Unavailable(
                        f"etcd at {self._store._where}: cannot watch {self._prefix} after "
                        f"revision {self._position} within {budget:g}s: {reason or 'timed out'}"
                    ) from None
                log.debug("etcd watch on %s: %s; retrying", self._prefix, reason)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX)
            except BaseException:
                call.cancel()
                raise

    async def _create(self, call: Any) -> None:
        await call.write(
            rpc.WatchRequest(
                create_request=rpc.WatchCreateRequest(
                    key=self._key,
                    range_end=self._range_end,
                    start_revision=self._position + 1,
                    prev_kv=True,
                )
            )
        )
        while True:
            resp = await call.read()
            if resp is grpc.aio.EOF:
                raise _StreamBroken("watch stream ended before the watch was created")
            if resp.canceled:
                self._check_compacted(resp)
                raise _StreamBroken(resp.cancel_reason or "watch cancelled by etcd")
            if resp.created:
                return

    def _check_compacted(self, resp: Any) -> None:
        if resp.compact_revision:
            self._store._note_etcd_compacted(int(resp.compact_revision))
            raise Compacted(self._position, self._store._ours(int(resp.compact_revision)))

    async def _pump(self, call: Any) -> str:
        """Queue the stream's events until it breaks; returns why it broke."""
        while True:
            resp = await call.read()
            if resp is grpc.aio.EOF:
                return "stream ended"
            self._check_compacted(resp)
            if resp.canceled:
                return resp.cancel_reason or "watch cancelled by etcd"
            events: list[Event] = []
            for pb in resp.events:
                if pb.kv.mod_revision > self._position:
                    events.append(await self._store._to_event(pb))
            if events:
                self._position = events[-1].revision
                self._queue.put_nowait(events)

    async def _run(self) -> None:
        try:
            while True:
                try:
                    reason = await self._pump(self._call)
                except (grpc.RpcError, grpc.aio.BaseError) as err:
                    reason = _details(err) if isinstance(err, grpc.RpcError) else str(err)
                if self._done or self._store._closed:
                    return
                log.info(
                    "etcd watch on %s broke (%s); resuming after revision %d",
                    self._prefix,
                    reason,
                    self._position,
                )
                self._call.cancel()
                self._call = await self._connect(self._store._watch_reconnect_timeout)
                self.resumes += 1
                # etcd only cancels a watch that starts *below* its compacted revision;
                # ours is one higher (see the module docstring), so check the rest here
                await self._store._check_not_compacted(self._position)
        except StoreError as err:
            self._queue.put_nowait(err)
        except Exception as err:  # a bug: end the watch loudly rather than hang
            log.exception("etcd watch on %s failed", self._prefix)
            self._queue.put_nowait(Unavailable(f"etcd watch on {self._prefix} failed: {err}"))

    async def _stop(self) -> None:
        self._store._watches.discard(self)
        if self._call is not None:
            self._call.cancel()
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def end(self) -> None:
        """The store is closing: hand out what was received, then stop."""
        await self._stop()
        self._queue.put_nowait(None)

    async def __anext__(self) -> Event:
        while True:
            if self._done:
                raise StopAsyncIteration
            if self._pending:
                return self._pending.popleft()
            item = await self._queue.get()
            if item is None:
                self._done = True
                raise StopAsyncIteration
            if isinstance(item, StoreError):
                self._done = True
                await self._stop()
                raise item
            self._pending.extend(item)

    async def close(self) -> None:
        self._done = True
        await self._stop()
        self._queue.put_nowait(None)
