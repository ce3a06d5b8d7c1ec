"""Snapshot and restore benchmark: 10,000 pods' worth of objects on SQLite and etcd.

For each backend, a store is filled with N pod objects (the JSON of a real
Deployment-made pod, ~2.4 KB each) under ``/registry/pods/``, then:

* **save**: ``pyk8s etcd-snapshot save``'s work (SQLite online backup / etcd Maintenance
  snapshot, both followed by the SHA-256 check);
* **restore, 10 % deleted**: a namespace's worth of pods deleted, then restored (verify,
  read the snapshot back, write the difference): the ``--cluster-reset-restore-path``
  path after an accident;
* **restore into an empty store**: every key written (the worst case: a new store);
* **baseline**, measured in the same run: a plain file copy of the SQLite database
  (``cp``) and its copy back; ``etcdctl snapshot save`` and ``etcdctl snapshot restore``
  into a data directory (what k3s runs, without starting a member).

Usage: python3 bench/snapshot/run.py [--pods 10000] [--backends sqlite,etcd]
A measurement, never a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.etcd_cluster import EtcdCluster  # noqa: E402

from pyk8s.storage import Store, open_store  # noqa: E402
from pyk8s.storage.snapshot import list_all, restore, save_etcd, save_sqlite  # noqa: E402

NAMESPACES = 10


def pod(i: int) -> bytes:
    ns = f"ns-{i % NAMESPACES}"
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"web-7d9c5b8f4-{i:06d}",
                "namespace": ns,
                "uid": f"{i:08d}-0000-4000-8000-000000000000",
                "labels": {"app": "web", "pod-template-hash": "7d9c5b8f4"},
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "ReplicaSet",
                        "name": "web-7d9c5b8f4",
                        "uid": "11111111-2222-4333-8444-555555555555",
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
                "creationTimestamp": "2026-12-07T00:00:00Z",
            },
            "spec": {
                "nodeName": f"node-{i % 100}",
                "restartPolicy": "Always",
                "dnsPolicy": "ClusterFirst",
                "serviceAccountName": "default",
                "terminationGracePeriodSeconds": 30,
                "containers": [
                    {
                        "name": "web",
                        "image": "nginx:1.27",
                        "imagePullPolicy": "IfNotPresent",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                        "volumeMounts": [
                            {
                                "name": "kube-api-access-abcde",
                                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                                "readOnly": True,
                            }
                        ],
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File",
                    }
                ],
                "volumes": [
                    {
                        "name": "kube-api-access-abcde",
                        "projected": {
                            "sources": [
                                {
                                    "serviceAccountToken": {
                                        "expirationSeconds": 3607,
                                        "path": "token",
                                    }
                                },
                                {
                                    "configMap": {
                                        "name": "kube-root-ca.crt",
                                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                                    }
                                },
                                {
                                    "downwardAPI": {
                                        "items": [
                                            {
                                                "path": "namespace",
                                                "fieldRef": {
                                                    "apiVersion": "v1",
                                                    "fieldPath": "metadata.namespace",
                                                },
                                            }
                                        ]
                                    }
                                },
                            ]
                        },
                    }
                ],
                "tolerations": [
                    {
                        "key": "node.kubernetes.io/not-ready",
                        "operator": "Exists",
                        "effect": "NoExecute",
                        "tolerationSeconds": 300,
                    },
                    {
                        "key": "node.kubernetes.io/unreachable",
                        "operator": "Exists",
                        "effect": "NoExecute",
                        "tolerationSeconds": 300,
                    },
                ],
            },
            "status": {
                "phase": "Running",
                "podIP": f"10.42.{i // 250}.{i % 250 + 2}",
                "hostIP": "10.0.0.1",
                "conditions": [
                    {"type": t, "status": "True", "lastTransitionTime": "2026-12-07T00:00:01Z"}
                    for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
                ],
                "containerStatuses": [
                    {
                        "name": "web",
                        "ready": True,
                        "restartCount": 0,
                        "started": True,
                        "image": "docker.io/library/nginx:1.27",
                        "imageID": "docker.io/library/nginx@sha256:" + "ab" * 32,
                        "containerID": "containerd://" + f"{i:064x}",
                        "state": {"running": {"startedAt": "2026-12-07T00:00:01Z"}},
                    }
                ],
            },
        }
    ).encode()


def key(i: int) -> str:
    return f"/registry/pods/ns-{i % NAMESPACES}/web-7d9c5b8f4-{i:06d}"


async def fill(store: Store, n: int) -> None:
    sem = asyncio.Semaphore(100)

    async def one(i: int) -> None:
        async with sem:
            await store.create(key(i), pod(i))

    await asyncio.gather(*(one(i) for i in range(n)))


async def clear(store: Store, only_namespace: str | None = None) -> None:
    sem = asyncio.Semaphore(100)
    prefix = f"/registry/pods/{only_namespace}/" if only_namespace else "/registry/"

    async def one(k: str) -> None:
        async with sem:
            await store.delete(k)

    await asyncio.gather(*(one(kv.key) for kv in await list_all(store, prefix)))


async def seconds(fn: Callable[[], Awaitable[object]]) -> float:
    t = time.perf_counter()
    await fn()
    return time.perf_counter() - t


def run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, env={**os.environ, "ETCDCTL_API": "3"})


async def bench(backend: str, n: int, work: Path) -> list[tuple[str, str, float, float]]:
    rows: list[tuple[str, str, float, float]] = []
    snap = work / f"{backend}.snap"
    cluster = None
    if backend == "sqlite":
        db = work / "state.db"
        store = await open_store(f"sqlite://{db}")
    else:
        cluster = EtcdCluster(work / "etcd", size=1).start()
        store = await open_store(cluster.endpoint)
    try:
        await fill(store, n)
        if backend == "sqlite":
            t = await seconds(lambda: asyncio.to_thread(save_sqlite, db, snap))
            rows.append((backend, "save (online backup + SHA-256)", t, snap.stat().st_size))
            copy = work / "copy.db"
            t = await seconds(lambda: asyncio.to_thread(shutil.copyfile, db, copy))
            rows.append((backend, "baseline: cp of the database file", t, copy.stat().st_size))
            t = await seconds(lambda: asyncio.to_thread(shutil.copyfile, copy, work / "back.db"))
            rows.append((backend, "baseline: cp back (restore by file)", t, copy.stat().st_size))
        else:
            assert cluster is not None
            t = await seconds(lambda: save_etcd(cluster.hosts, snap))
            rows.append((backend, "save (Maintenance snapshot + SHA-256)", t, snap.stat().st_size))
            base = work / "etcdctl.snap"
            ep = f"127.0.0.1:{cluster.members[0].client_port}"
            save_argv = ("etcdctl", "--endpoints", ep, "snapshot", "save", str(base))
            t = await seconds(lambda: asyncio.to_thread(run, *save_argv))
            rows.append((backend, "baseline: etcdctl snapshot save", t, base.stat().st_size))
            restore_argv = (
                "etcdctl",
                "snapshot",
                "restore",
                str(base),
                "--data-dir",
                str(work / "r"),
            )
            t = await seconds(lambda: asyncio.to_thread(run, *restore_argv))
            rows.append((backend, "baseline: etcdctl snapshot restore", t, base.stat().st_size))
        await clear(store, "ns-0")
        t = await seconds(lambda: restore(store, snap))
        rows.append((backend, f"restore, {100 // NAMESPACES} % deleted", t, snap.stat().st_size))
        await clear(store)
        t = await seconds(lambda: restore(store, snap))
        rows.append((backend, "restore into an empty store", t, snap.stat().st_size))
        assert await store.count("/registry/pods/") == n
    finally:
        await store.close()
        if cluster is not None:
            cluster.stop()
    return rows


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=10_000)
    ap.add_argument("--backends", default="sqlite,etcd")
    args = ap.parse_args()
    rows = []
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory(prefix="pyk8s-bench-snap-") as work:
            rows += await bench(backend, args.pods, Path(work))
    print(f"{args.pods} pods (~{len(pod(0)) / 1024:.1f} KiB each)\n")
    print("| backend | operation | seconds | MB |")
    print("|---|---|---:|---:|")
    for backend, what, secs, size in rows:
        print(f"| {backend} | {what} | {secs:.2f} | {size / 1e6:.1f} |")


if __name__ == "__main__":
    asyncio.run(main())
