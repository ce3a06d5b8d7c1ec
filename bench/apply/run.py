"""Server-side apply against update and strategic merge patch, and what managed fields cost.

Three tables:

1. An in-process API server (SQLite, aiohttp's test server, no TLS): each operation
   rewrites ``spec.replicas`` of a 3-container Deployment (one per client, so clients
   never race): PUT of the whole object, a strategic merge patch, and an apply of the
   whole configuration (``fieldManager=bench``); p50/p99 at 1 and 10 clients, and the
   process's CPU time per operation (wall time on the shared machine swings 2x). Apply,
   update and patch run interleaved per round so the shared machine's noise hits all.
2. The managed-fields bookkeeping alone, in this process (best of interleaved rounds):
   what it adds to a pod create, a kubelet-like status update, a Deployment update, and
   what an apply's merge + ownership costs, next to the object's ``orjson.loads`` for
   scale.
3. Storage: bytes per stored pod with its managedFields and without, over ``--pods``
   pods created through the server (a kubelet-like status update on each, so there are
   two managers, as on a running pod).

Usage: python3 bench/apply/run.py [--ops 300] [--pods 2000]
This is a measurement, never a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from aiohttp.test_utils import TestClient, TestServer  # noqa: E402
from bench._table import Row, table, timed  # noqa: E402

from pyk8s.api.registry import REGISTRY  # noqa: E402
from pyk8s.apiserver import fieldmanager  # noqa: E402
from pyk8s.apiserver.server import APIServer, Config  # noqa: E402
from pyk8s.apiserver.strategies import Strategy  # noqa: E402
from pyk8s.storage.sqlite import SqliteStore  # noqa: E402

JSON = dict[str, Any]
NS = "default"
TIME = "2026-01-01T00:00:00Z"
DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"


def deployment(name: str, replicas: int) -> JSON:
    containers = [
        {
            "name": f"c{i}",
            "image": f"registry.local/app{i}:1.0",
            "args": ["--port", str(8080 + i)],
            "ports": [{"containerPort": 8080 + i, "name": f"http{i}"}],
            "env": [{"name": "MODE", "value": "prod"}, {"name": "INDEX", "value": str(i)}],
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
        }
        for i in range(3)
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": containers}},
        },
    }


def pod(name: str) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": "web"}},
        "spec": {
            "nodeName": "n1",
            "containers": [
                {
                    "name": "c",
                    "image": "nginx",
                    "ports": [{"containerPort": 80}],
                    "resources": {"requests": {"cpu": "100m"}},
                }
            ],
        },
    }


def pod_status() -> JSON:
    return {
        "phase": "Running",
        "conditions": [
            {"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": TIME}
            for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady")
        ],
        "hostIP": "10.0.0.1",
        "podIP": "10.42.0.5",
        "podIPs": [{"ip": "10.42.0.5"}],
        "startTime": TIME,
        "containerStatuses": [
            {
                "name": "c",
                "state": {"running": {"startedAt": TIME}},
                "lastState": {},
                "ready": True,
                "restartCount": 0,
                "image": "nginx",
                "imageID": "docker.io/library/nginx@sha256:0",
                "containerID": "containerd://0",
                "started": True,
            }
        ],
        "qosClass": "Burstable",
    }


@contextlib.asynccontextmanager
async def server(tmp: Path) -> AsyncIterator[tuple[TestClient[Any, Any], SqliteStore]]:
    store = await SqliteStore.open(tmp / "state.db")
    api = APIServer(store, config=Config(compact_interval=0))
    await api.start()
    client: TestClient[Any, Any] = TestClient(TestServer(api.app))
    await client.start_server()
    try:
        yield client, store
    finally:
        await client.close()
        await api.stop()
        await store.close()


async def _send(
    client: TestClient[Any, Any], method: str, path: str, body: bytes, ctype: str
) -> None:
    async with client.request(method, path, data=body, headers={"Content-Type": ctype}) as r:
        if r.status >= 300:
            raise RuntimeError(f"{method} {path}: {r.status} {await r.text()}")
        await r.read()


async def writes(ops: int) -> str:
    rows: list[Row] = []
    cpu_s: dict[tuple[str, int], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        async with server(Path(tmp)) as (client, _store):
            for n in range(10):
                body = orjson.dumps(deployment(f"d{n}", 1))
                await _send(
                    client, "POST", DEPLOYMENTS + "?fieldManager=bench", body, "application/json"
                )
            replicas = [1]
            owners: dict[int, int] = {}

            def own(clients: int) -> str:
                """The deployment of the calling worker (workers never share one)."""
                task = id(asyncio.current_task())
                if task not in owners:
                    owners[task] = len(owners)
                return f"d{owners[task] % clients}"

            def update(clients: int) -> Callable[[int], Any]:
                owners.clear()

                async def one(i: int) -> None:
                    replicas[0] += 1
                    name = own(clients)
                    body = orjson.dumps(deployment(name, replicas[0]))
                    await _send(
                        client,
                        "PUT",
                        f"{DEPLOYMENTS}/{name}?fieldManager=bench",
                        body,
                        "application/json",
                    )

                return one

            def patch(clients: int) -> Callable[[int], Any]:
                owners.clear()

                async def one(i: int) -> None:
                    replicas[0] += 1
                    body = orjson.dumps({"spec": {"replicas": replicas[0]}})
                    await _send(
                        client,
                        "PATCH",
                        f"{DEPLOYMENTS}/{own(clients)}?fieldManager=bench",
                        body,
                        "application/strategic-merge-patch+json",
                    )

                return one

            def apply(clients: int) -> Callable[[int], Any]:
                owners.clear()

                async def one(i: int) -> None:
                    replicas[0] += 1
                    name = own(clients)
                    body = orjson.dumps(deployment(name, replicas[0]))
                    await _send(
                        client,
                        "PATCH",
                        f"{DEPLOYMENTS}/{name}?fieldManager=bench&force=true",
                        body,
                        "application/apply-patch+yaml",
                    )

                return one

            for clients in (1, 10):
                for make, what in (
                    (update, "update (PUT)"),
                    (patch, "strategic merge patch"),
                    (apply, "apply"),
                ):
                    await timed(what, clients, 30, make(clients))  # warm up
                measured: dict[str, Row] = {}
                for _round in range(3):
                    for make, what in (
                        (update, "update (PUT)"),
                        (patch, "strategic merge patch"),
                        (apply, "apply"),
                    ):
                        cpu = time.process_time()
                        row = await timed(what, clients, ops // 3, make(clients))
                        cpu_s[what, clients] = cpu_s.get((what, clients), 0.0) + (
                            time.process_time() - cpu
                        )
                        if what in measured:
                            measured[what].latencies += row.latencies
                            measured[what].ops += row.ops
                            measured[what].seconds += row.seconds
                        else:
                            measured[what] = row
                rows += measured.values()
    ratio = []
    cpu_rows = ["| operation | clients | CPU ms/op |", "|---|---:|---:|"]
    for clients in (1, 10):
        by = {r.what: r for r in rows if r.clients == clients}
        for what, row in by.items():
            cpu_rows.append(f"| {what} | {clients} | {cpu_s[what, clients] / row.ops * 1000:.2f} |")
        ratio.append(
            f"apply / update at {clients} client(s): p50 "
            f"{by['apply'].pct(0.5) / by['update (PUT)'].pct(0.5):.2f}x, CPU "
            f"{cpu_s['apply', clients] / cpu_s['update (PUT)', clients]:.2f}x"
        )
    return (
        table(rows, ms_digits=2)
        + "\n\nCPU time of this process (server and client) per operation, which the "
        + "shared machine's other load does not inflate:\n\n"
        + "\n".join(cpu_rows)
        + "\n\n"
        + "\n".join(ratio)
    )


def best_us(fns: list[Callable[[], object]], rounds: int = 200, inner: int = 20) -> list[float]:
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            best[i] = min(best[i], (time.perf_counter() - start) / inner * 1e6)
    return best


def bookkeeping() -> str:
    pods = REGISTRY.for_api_version("v1", "Pod")
    deps = REGISTRY.for_api_version("apps/v1", "Deployment")
    assert pods is not None and deps is not None
    pod_strategy = Strategy(pods)
    dep_strategy = Strategy(deps)
    created = pod("p")
    created_fields = fieldmanager.record_update(
        pod_strategy, None, created, manager="kubectl", subresource="", time=TIME
    )
    live = copy.deepcopy(created)
    live["metadata"]["managedFields"] = created_fields
    live["status"] = {"phase": "Pending"}
    running = copy.deepcopy(live)
    running["status"] = pod_status()
    kubelet_fields = fieldmanager.record_update(
        pod_strategy, live, running, manager="kubelet", subresource="status", time=TIME
    )
    running["metadata"]["managedFields"] = kubelet_fields
    ready = copy.deepcopy(running)
    ready["status"]["containerStatuses"][0]["restartCount"] = 1
    dep = deployment("d", 1)
    dep_live = copy.deepcopy(dep)
    dep_live["metadata"]["managedFields"] = fieldmanager.record_update(
        dep_strategy, None, dep, manager="bench", subresource="", time=TIME
    )
    dep_new = copy.deepcopy(dep_live)
    dep_new["spec"]["replicas"] = 2
    applied = fieldmanager.apply(
        dep_strategy,
        None,
        deployment("d", 1),
        manager="bench",
        subresource="",
        force=False,
        time=TIME,
    )
    raw_pod, raw_dep = orjson.dumps(running), orjson.dumps(dep_live)
    cells = best_us(
        [
            lambda: orjson.loads(raw_pod),
            lambda: fieldmanager.record_update(
                pod_strategy, None, created, manager="kubectl", subresource="", time=TIME
            ),
            lambda: fieldmanager.record_update(
                pod_strategy, running, ready, manager="kubelet", subresource="status", time=TIME
            ),
            lambda: orjson.loads(raw_dep),
            lambda: fieldmanager.record_update(
                dep_strategy, dep_live, dep_new, manager="bench", subresource="", time=TIME
            ),
            lambda: fieldmanager.apply(
                dep_strategy,
                applied,
                deployment("d", 2),
                manager="bench",
                subresource="",
                force=False,
                time=TIME,
            ),
        ]
    )
    labels = [
        "orjson.loads of a running pod (for scale)",
        "pod create (kubectl)",
        "pod status update (kubelet)",
        "orjson.loads of the Deployment (for scale)",
        "Deployment update (replicas)",
        "Deployment apply (merge, prune, ownership)",
    ]
    out = ["| per write | µs |", "|---|---:|"]
    out += [f"| {label} | {c:.1f} |" for label, c in zip(labels, cells, strict=True)]
    return "\n".join(out)


async def storage(pods: int) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        async with server(Path(tmp)) as (client, store):
            base = "/api/v1/namespaces/default/pods"
            for i in range(pods):
                body = orjson.dumps(pod(f"p{i}"))
                await _send(
                    client, "POST", base + "?fieldManager=kubectl", body, "application/json"
                )
                status = orjson.dumps({"status": pod_status()})
                await _send(
                    client,
                    "PATCH",
                    f"{base}/p{i}/status?fieldManager=kubelet",
                    status,
                    "application/strategic-merge-patch+json",
                )
            page = await store.list("/registry/core/pods/", limit=0)
    with_fields = without = 0
    for kv in page.kvs:
        with_fields += len(kv.value)
        obj = orjson.loads(kv.value)
        obj["metadata"].pop("managedFields", None)
        without += len(orjson.dumps(obj))
    n = len(page.kvs)
    return (
        "| stored pods | bytes/pod without managedFields | with | overhead |\n"
        "|---:|---:|---:|---:|\n"
        f"| {n} | {without / n:,.0f} | {with_fields / n:,.0f} | "
        f"{(with_fields - without) / n:,.0f} ({(with_fields / without - 1) * 100:.0f}%) |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ops", type=int, default=300)
    parser.add_argument("--pods", type=int, default=2000)
    args = parser.parse_args()
    print("## apply vs update vs strategic merge patch (3-container Deployment)\n")
    print(asyncio.run(writes(args.ops)))
    print("\n## managed-fields bookkeeping per write (in-process, best of rounds)\n")
    print(bookkeeping())
    print("\n## storage\n")
    print(asyncio.run(storage(args.pods)))


if __name__ == "__main__":
    main()
