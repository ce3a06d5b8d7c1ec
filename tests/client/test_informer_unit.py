"""Store/indexer semantics, and the informer's reflector loop against a fake lister-watcher."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from pyk8s.client.errors import ApiError, TransportError
from pyk8s.client.informer import (
    NAMESPACE_INDEX,
    SharedInformer,
    Store,
    meta_namespace_key,
    split_key,
)

Obj = dict[str, Any]


def pod(ns: str, name: str, rv: int = 1, node: str = "") -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"namespace": ns, "name": name, "resourceVersion": str(rv)},
        "spec": {"nodeName": node},
    }


# ---------------------------------------------------------------------- store


def test_keys() -> None:
    assert meta_namespace_key(pod("a", "p")) == "a/p"
    assert meta_namespace_key({"metadata": {"name": "n1"}}) == "n1"
    assert split_key("a/p") == ("a", "p")
    assert split_key("n1") == ("", "n1")


def test_store_crud_and_namespace_index() -> None:
    s = Store()
    s.add(pod("a", "p1"))
    s.add(pod("a", "p2"))
    s.add(pod("b", "p1"))
    assert len(s) == 3 and "a/p1" in s
    assert s.get("a/p1") == pod("a", "p1")
    assert s.get_by_name("b", "p1") == pod("b", "p1")
    assert sorted(o["metadata"]["name"] for o in s.by_index(NAMESPACE_INDEX, "a")) == ["p1", "p2"]
    old = s.add(pod("a", "p1", rv=2))
    assert old is not None and old["metadata"]["resourceVersion"] == "1"
    assert s.delete("a/p2") is not None
    assert s.delete(pod("a", "p2")) is None
    assert s.index_keys(NAMESPACE_INDEX, "a") == ["a/p1"]
    s.delete(pod("a", "p1"))
    assert s.index_values(NAMESPACE_INDEX) == ["b"]  # empty index entries are dropped
    with pytest.raises(KeyError):
        s.by_index("nope", "x")


def test_custom_index_follows_updates() -> None:
    s = Store({"byNode": lambda o: [o["spec"]["nodeName"]] if o["spec"]["nodeName"] else []})
    s.add(pod("a", "p1", node="n1"))
    s.add(pod("a", "p2", node="n1"))
    s.add(pod("a", "p3"))
    assert s.index_keys("byNode", "n1") == ["a/p1", "a/p2"]
    s.update(pod("a", "p2", rv=2, node="n2"))  # moved
    assert s.index_keys("byNode", "n1") == ["a/p1"]
    assert s.index_keys("byNode", "n2") == ["a/p2"]
    s.replace([pod("a", "p9", node="n1")])
    assert s.index_keys("byNode", "n1") == ["a/p9"] and s.index_keys("byNode", "n2") == []
    # an indexer added later indexes what is already there
    s.add_indexers({"byName": lambda o: [o["metadata"]["name"]]})
    assert s.index_keys("byName", "p9") == ["a/p9"]
    with pytest.raises(ValueError):
        s.add_indexers({"byName": lambda o: []})


def test_failing_index_function_does_not_break_the_store() -> None:
    s = Store({"bad": lambda o: [o["missing"]]})
    s.add(pod("a", "p"))
    assert s.get("a/p") is not None and s.index_keys("bad", "x") == []


# ---------------------------------------------------------------------- informer


END = "END"


class FakeLW:
    """Scripted lists; every watch reads the shared ``feed``: events, exceptions, END."""

    def __init__(self) -> None:
        self.lists: list[tuple[list[Obj], str]] = []
        self.feed: asyncio.Queue[tuple[str, Obj] | BaseException | str] = asyncio.Queue()
        self.watch_rvs: list[str] = []
        self.list_calls = 0

    async def list(self) -> tuple[list[Obj], str]:
        self.list_calls += 1
        if not self.lists:
            raise TransportError("no list scripted")
        return self.lists.pop(0)

    def watch(self, resource_version: str) -> Any:
        self.watch_rvs.append(resource_version)
        feed = self.feed

        @asynccontextmanager
        async def cm() -> AsyncIterator[AsyncIterator[tuple[str, Obj]]]:
            async def events() -> AsyncIterator[tuple[str, Obj]]:
                while True:
                    item = await feed.get()
                    if isinstance(item, BaseException):
                        raise item
                    if isinstance(item, str):
                        return
                    yield item

            yield events()

        return cm()


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def on_add(self, obj: Obj) -> None:
        self.events.append(("add", meta_namespace_key(obj)))

    def on_update(self, old: Obj, new: Obj) -> None:
        self.events.append(("update", meta_namespace_key(new)))

    def on_delete(self, obj: Obj) -> None:
        self.events.append(("delete", meta_namespace_key(obj)))


async def until(cond: Any, within: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


def informer(lw: FakeLW, **kw: Any) -> SharedInformer:
    return SharedInformer(lw, backoff=(0.01, 0.05), **kw)


async def test_list_watch_and_handlers() -> None:
    lw = FakeLW()
    lw.lists.append(([pod("a", "p1", 5)], "10"))
    for ev in [
        ("ADDED", pod("a", "p2", 11)),
        ("MODIFIED", pod("a", "p1", 12)),
        ("BOOKMARK", {"kind": "Pod", "metadata": {"resourceVersion": "20"}}),
        ("DELETED", pod("a", "p2", 21)),
    ]:
        lw.feed.put_nowait(ev)
    inf = informer(lw)
    rec = Recorder()
    reg = inf.add_event_handler(rec.on_add, rec.on_update, rec.on_delete)
    inf.start()
    assert await inf.wait_synced(2)
    await until(lambda: len(rec.events) == 4)
    assert rec.events == [("add", "a/p1"), ("add", "a/p2"), ("update", "a/p1"), ("delete", "a/p2")]
    assert reg.has_synced()
    assert inf.store.list_keys() == ["a/p1"]
    assert inf.last_sync_resource_version == "21"
    # the server ends the watch (timeout): re-watch from the last rv, no relist
    lw.feed.put_nowait(END)
    await until(lambda: len(lw.watch_rvs) == 2)
    assert lw.watch_rvs == ["10", "21"] and lw.list_calls == 1
    await inf.stop()


async def test_relist_on_gone_diffs_the_store() -> None:
    lw = FakeLW()
    lw.lists.append(([pod("a", "keep", 1), pod("a", "change", 1), pod("a", "gone", 1)], "5"))
    lw.lists.append(([pod("a", "keep", 1), pod("a", "change", 7), pod("a", "new", 8)], "9"))
    lw.feed.put_nowait(("ADDED", pod("a", "x", 6)))
    inf = informer(lw)
    rec = Recorder()
    inf.add_event_handler(rec.on_add, rec.on_update, rec.on_delete)
    inf.start()
    await until(lambda: len(rec.events) == 4)
    rec.events.clear()
    lw.feed.put_nowait(ApiError(410, "Expired", "too old resource version: 6", {}))
    await until(lambda: len(rec.events) == 4)
    assert sorted(rec.events) == sorted(
        [("update", "a/change"), ("add", "a/new"), ("delete", "a/gone"), ("delete", "a/x")]
    )
    assert sorted(inf.store.list_keys()) == ["a/change", "a/keep", "a/new"]
    assert lw.list_calls == 2 and inf.list_count == 2
    assert lw.watch_rvs == ["5", "9"]
    await inf.stop()


async def test_transport_error_rewatches_from_last_rv_other_errors_relist() -> None:
    lw = FakeLW()
    lw.lists.append(([], "5"))
    lw.lists.append(([], "30"))
    lw.feed.put_nowait(("ADDED", pod("a", "p", 7)))
    lw.feed.put_nowait(TransportError("connection reset"))
    inf = informer(lw)
    inf.start()
    await until(lambda: len(lw.watch_rvs) == 2)
    assert lw.watch_rvs == ["5", "7"] and lw.list_calls == 1
    lw.feed.put_nowait(ApiError(500, "InternalError", "boom", {}))
    await until(lambda: len(lw.watch_rvs) == 3)
    assert lw.list_calls == 2 and lw.watch_rvs[-1] == "30"
    await inf.stop()


async def test_list_failures_are_retried_with_backoff() -> None:
    lw = FakeLW()  # no list scripted: every list fails
    inf = informer(lw)
    inf.start()
    await until(lambda: lw.list_calls >= 3)
    assert not inf.has_synced()
    lw.lists.append(([pod("a", "p")], "3"))
    assert await inf.wait_synced(2)
    await inf.stop()


async def test_handler_errors_are_logged_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    lw = FakeLW()
    lw.lists.append(([pod("a", "p1")], "1"))
    seen: list[str] = []

    def bad(obj: Obj) -> None:
        raise RuntimeError("handler bug")

    async def good(obj: Obj) -> None:  # async handlers are awaited
        seen.append(obj["metadata"]["name"])

    inf = informer(lw)
    inf.add_event_handler(on_add=bad)
    inf.add_event_handler(on_add=good)
    inf.start()
    lw.feed.put_nowait(("ADDED", pod("a", "p2", 2)))
    await until(lambda: len(seen) == 2)
    await inf.idle()
    assert inf.running
    assert "handler bug" in caplog.text
    await inf.stop()


async def test_late_handler_is_replayed_the_store() -> None:
    lw = FakeLW()
    lw.lists.append(([pod("a", "p1"), pod("a", "p2")], "1"))
    inf = informer(lw)
    inf.start()
    assert await inf.wait_synced(2)
    rec = Recorder()
    reg = inf.add_event_handler(rec.on_add, rec.on_update, rec.on_delete)
    assert await reg.wait_synced(2)
    assert sorted(rec.events) == [("add", "a/p1"), ("add", "a/p2")]
    reg.remove()
    lw.feed.put_nowait(("ADDED", pod("a", "p3", 2)))
    await until(lambda: "a/p3" in inf.store)
    assert len(rec.events) == 2
    await inf.stop()


async def test_resync_redelivers_updates() -> None:
    lw = FakeLW()
    lw.lists.append(([pod("a", "p1")], "1"))
    inf = informer(lw, resync_period=0.02)
    rec = Recorder()
    inf.add_event_handler(rec.on_add, rec.on_update, rec.on_delete)
    inf.start()
    await until(lambda: ("update", "a/p1") in rec.events)
    await inf.stop()
