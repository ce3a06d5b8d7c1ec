"""Persistent volumes at scale on simulated nodes, next to pods without volumes (issue 16).

``pyk8s server --disable-agent`` (API server, controller manager with the PV binder and
protection controllers, scheduler with VolumeBinding) and ``pyk8s sim-nodes`` as
processes; the local-path provisioner for every simulated node runs in this process (a
real node runs it inside ``pyk8s kubelet``), making its directories under a temporary
dir. Rows, all in one run:

* baseline: N pods without volumes, create → Running;
* N pods each with its own WaitForFirstConsumer local-path claim (claim and pod created
  together): create → Running (the scheduler selects the node, the provisioner makes the
  directory and the PV, the PV controller binds, then the pod is bound);
* N claims bound to N pre-made PersistentVolumes (Immediate, no pods): create → Bound.

    python3 bench/volumes/run.py [--nodes 100] [--claims 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench._cluster import (  # noqa: E402
    Api,
    Obj,
    Server,
    Watch,
    create_many,
    free_port,
    node_ready,
    pct_ms,
    pods_per_node,
    start_sim_nodes,
)

from pyk8s.client import Client, load_config  # noqa: E402
from pyk8s.controllers.runtime import Manager  # noqa: E402
from pyk8s.localpath import PROVISIONER_NAME, LocalPathProvisioner  # noqa: E402

CLASS = "bench-local-path"
STATIC_CLASS = "bench-static"


def pod(name: str, claim: str = "") -> bytes:
    spec: Obj = {
        "containers": [{"name": "c", "image": "busybox:1.36",
                        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}],
        "terminationGracePeriodSeconds": 0,
    }  # fmt: skip
    if claim:
        spec["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                       "spec": spec}).encode()  # fmt: skip


def claim(name: str, cls: str) -> bytes:
    return json.dumps({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": cls,
                 "resources": {"requests": {"storage": "1Gi"}}},
    }).encode()  # fmt: skip


def volume(name: str) -> bytes:
    return json.dumps({
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                 "storageClassName": STATIC_CLASS, "hostPath": {"path": f"/tmp/{name}"}},
    }).encode()  # fmt: skip


async def phases(
    api: Api, path: str, names: list[str], done: str
) -> tuple[Watch, dict[str, float]]:
    """An open watch on ``path`` noting when each of ``names`` reaches phase ``done``."""
    reached: dict[str, float] = {}
    wanted = set(names)

    def on_event(_type: str, obj: Obj, t: float) -> None:
        name = obj["metadata"]["name"]
        if name in wanted and name not in reached and obj.get("status", {}).get("phase") == done:
            reached[name] = t

    watch = Watch(api, path, on_event)
    await watch.start()
    return watch, reached


async def wait_all(watch: Watch, reached: dict[str, float], n: int) -> None:
    await watch.wait_until(lambda: len(reached) >= n, 900)
    await watch.stop()


async def row_pods(api: Api, ns: str, n: int, with_claims: bool) -> tuple[str, str, str, str]:
    names = [f"p{i:05}" for i in range(n)]
    await api.namespace(ns)
    path = f"/api/v1/namespaces/{ns}"
    watch, running = await phases(api, f"{path}/pods", names, "Running")
    start = time.perf_counter()
    if with_claims:
        claims = [(f"c-{name}", claim(f"c-{name}", CLASS)) for name in names]
        bodies = [(name, pod(name, f"c-{name}")) for name in names]
        sent_claims = asyncio.ensure_future(
            create_many(api, f"{path}/persistentvolumeclaims", claims, 25)
        )
        sent, _, _ = await create_many(api, f"{path}/pods", bodies, 25)
        await sent_claims
    else:
        sent, _, _ = await create_many(api, f"{path}/pods", [(n_, pod(n_)) for n_ in names], 50)
    await wait_all(watch, running, n)
    total = max(running.values(), default=start) - start
    lat = [running[k] - sent[k] for k in running]
    what = "pods with a local-path claim each" if with_claims else "pods, no volume (baseline)"
    done = f"{len(running)}/{n}"
    return (
        what,
        done,
        f"{total:,.1f} s ({len(running) / total:,.0f}/s)",
        (f"{pct_ms(lat, 0.5)} / {pct_ms(lat, 0.99)}"),
    )


async def row_static(api: Api, ns: str, n: int) -> tuple[str, str, str, str]:
    await api.namespace(ns)
    await create_many(api, "/api/v1/persistentvolumes",
                      [(f"{ns}-{i}", volume(f"{ns}-{i}")) for i in range(n)], 50)  # fmt: skip
    names = [f"c{i:05}" for i in range(n)]
    path = f"/api/v1/namespaces/{ns}/persistentvolumeclaims"
    watch, bound = await phases(api, path, names, "Bound")
    start = time.perf_counter()
    sent, _, _ = await create_many(api, path, [(c, claim(c, STATIC_CLASS)) for c in names], 50)
    await wait_all(watch, bound, n)
    total = max(bound.values(), default=start) - start
    lat = [bound[k] - sent[k] for k in bound]
    return ("claims on pre-made PVs (Immediate)", f"{len(bound)}/{n}",
            f"{total:,.1f} s ({len(bound) / total:,.0f}/s)",
            f"{pct_ms(lat, 0.5)} / {pct_ms(lat, 0.99)}")  # fmt: skip


async def main(nodes: int, n: int) -> None:
    base = Path(tempfile.mkdtemp(prefix="pyk8s-bench-volumes-"))
    server = Server(base / "data", free_port(), command="server", extra_args=("--disable-agent",))
    server.start()
    sim = start_sim_nodes(base, str(server.kubeconfig), nodes, pods_per_node(nodes, n))
    api = Api(server)
    stop = asyncio.Event()
    try:
        for _ in range(240):
            listed = await api.request("GET", "/api/v1/nodes")
            if sum(node_ready(o) for o in listed["items"]) >= nodes:
                break
            await asyncio.sleep(0.5)
        names = [o["metadata"]["name"] for o in listed["items"]]
        sc = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
              "metadata": {"name": CLASS}, "provisioner": PROVISIONER_NAME,
              "volumeBindingMode": "WaitForFirstConsumer"}  # fmt: skip
        await api.request("POST", "/apis/storage.k8s.io/v1/storageclasses", json.dumps(sc).encode())
        async with Client(load_config(str(server.kubeconfig)), qps=2000, burst=4000) as client:
            manager = Manager(client, component=f"{PROVISIONER_NAME}_bench")
            LocalPathProvisioner(manager, {name: base / "storage" / name for name in names})
            provisioner = asyncio.create_task(manager.run(stop))
            rows = [
                await row_pods(api, "plain", n, with_claims=False),
                await row_pods(api, "volumes", n, with_claims=True),
                await row_static(api, "static", n),
            ]
            stop.set()
            await provisioner
        print(f"\n{n} objects on {nodes} simulated nodes (one run, same cluster)\n")
        print("| what | done | total (rate) | create → Running/Bound p50 / p99 ms |")
        print("|---|---:|---:|---:|")
        for r in rows:
            print("| " + " | ".join(r) + " |")
    finally:
        stop.set()
        await api.close()
        sim.stop()
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=100)
    p.add_argument("--claims", type=int, default=1000)
    a = p.parse_args()
    asyncio.run(main(a.nodes, a.claims))
