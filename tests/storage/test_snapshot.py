"""Snapshots at the store level, on every backend: a snapshot saved while the store
serves, keys deleted and written after it, a restore that makes the store equal to the
snapshot again at new revisions (never older ones), and damaged files refused before
anything is written.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pyk8s.storage import NotFound, Store
from pyk8s.storage.etcd import EtcdStore
from pyk8s.storage.snapshot import (
    SnapshotError,
    list_snapshots,
    prune,
    restore,
    save_etcd,
    save_sqlite,
    verify,
)
from pyk8s.storage.sqlite import SqliteStore
from tests.etcd_cluster import EtcdCluster, etcd_available

BACKENDS = [
    "sqlite",
    pytest.param(
        "etcd",
        marks=[
            pytest.mark.etcd,
            pytest.mark.skipif(not etcd_available(), reason="etcd not installed"),
        ],
    ),
]


async def _save(backend: str, store: Store, tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    dest = tmp_path / "snapshots" / "on-demand-node-1"
    if backend == "sqlite":
        save_sqlite(tmp_path / "state.db", dest)
    else:
        cluster: EtcdCluster = request.getfixturevalue("etcd_cluster")
        await save_etcd(cluster.hosts, dest)
    return dest


@pytest.mark.parametrize("backend", BACKENDS)
async def test_save_delete_restore(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, prefix: str
) -> None:
    store: Store
    if backend == "sqlite":
        store = await SqliteStore.open(tmp_path / "state.db")
    else:
        cluster: EtcdCluster = request.getfixturevalue("etcd_cluster")
        store = await EtcdStore.open(cluster.hosts)
    try:
        ns, cm = f"{prefix}namespaces/shop", f"{prefix}configmaps/shop/settings"
        await store.create(ns, b'{"kind":"Namespace"}')
        await store.create(cm, b'{"data":{"colour":"blue"}}')
        changed = await store.create(f"{prefix}configmaps/shop/changed", b"v1")
        snap = await _save(backend, store, tmp_path, request)
        assert verify(snap) == backend
        await store.delete(ns)
        await store.delete(cm)
        await store.update(f"{prefix}configmaps/shop/changed", b"v2",
                           expected_revision=changed.mod_revision)  # fmt: skip
        await store.create(f"{prefix}configmaps/default/later", b"x")
        before = await store.current_revision()

        damaged = tmp_path / "damaged"
        blob = bytearray(snap.read_bytes())
        blob[len(blob) // 3] ^= 0x01
        damaged.write_bytes(bytes(blob))
        with pytest.raises(SnapshotError, match="corrupt"):
            await restore(store, damaged, prefix)
        assert await store.current_revision() == before  # nothing written

        result = await restore(store, snap, prefix)
        assert (result.keys, result.written, result.deleted) == (3, 3, 1)
        assert (await store.get(ns)).value == b'{"kind":"Namespace"}'
        assert (await store.get(cm)).mod_revision > before  # forward, never back
        assert (await store.get(f"{prefix}configmaps/shop/changed")).value == b"v1"
        with pytest.raises(NotFound):
            await store.get(f"{prefix}configmaps/default/later")
        again = await restore(store, snap, prefix)  # already equal: nothing to write
        assert (again.written, again.deleted) == (0, 0)
    finally:
        await store.close()


def test_prune_keeps_the_newest_of_one_name(tmp_path: Path) -> None:
    import os

    for i, name in enumerate(["etcd-snapshot-n-1", "etcd-snapshot-n-2", "etcd-snapshot-n-3",
                              "on-demand-n-4"]):  # fmt: skip
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (1000 + i, 1000 + i))
    gone = prune(tmp_path, "etcd-snapshot", 2)
    assert [s.name for s in gone] == ["etcd-snapshot-n-1"]
    assert [s.name for s in list_snapshots(tmp_path)] == [
        "etcd-snapshot-n-2", "etcd-snapshot-n-3", "on-demand-n-4"
    ]  # fmt: skip


def test_truncated_and_missing_files_are_refused(tmp_path: Path) -> None:
    save_sqlite(_db(tmp_path), tmp_path / "snap")
    truncated = tmp_path / "truncated"
    truncated.write_bytes((tmp_path / "snap").read_bytes()[:-100])
    with pytest.raises(SnapshotError, match="corrupt"):
        verify(truncated)
    with pytest.raises(SnapshotError, match="does not exist"):
        verify(tmp_path / "missing")


def _db(tmp_path: Path) -> Path:
    import sqlite3

    path = tmp_path / "state.db"
    sqlite3.connect(path).execute("CREATE TABLE log (id INTEGER)").connection.commit()
    return path
