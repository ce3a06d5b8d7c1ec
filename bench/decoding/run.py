"""Typed decoding and Go-order encoding: what each costs a write, and what a LIST pays.

Every write body is checked against its kind's schema before anything reads it (the
compiled check of :mod:`pyk8s.api.validation.schema_check`) and every stored object is put
in Go struct order (:mod:`pyk8s.api.goorder`). Two tables:

1. Per object, in this process, the best of 300 interleaved rounds (the machine is
   shared and noisy): ``orjson.loads`` of the body for scale, the compiled type check,
   the uncompiled walk that finds the message (what a check without compilation would
   cost), the Go-order pass over an object mostly in order (a stored one, as a write
   finds it) and the unknown-field walk that field validation already ran before; and
   what reading a stored pod costs (a LIST from storage pays it per item).
2. An in-process API server (SQLite, aiohttp's test server, no TLS), once with both
   steps and once with them switched off, alternated, best of three: the process's CPU
   time per pod create, pods/binding POST, kubelet-like status PATCH, and per LIST of
   1,000 pods (20 LISTs). CPU time, not wall time: other processes on the shared
   machine swing the wall clock by 2x.

Usage: python3 bench/decoding/run.py [--pods 1000] [--rounds 3]
This is a measurement, never a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from unittest import mock

import orjson

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

from pyk8s.api.goorder import go_ordered, set_resource_version, storage_form  # noqa: E402
from pyk8s.api.registry import REGISTRY  # noqa: E402
from pyk8s.api.validation import schema_check  # noqa: E402
from pyk8s.api.validation.schema_check import decode_error, decode_errors  # noqa: E402
from pyk8s.apiserver import encoding, rest  # noqa: E402
from pyk8s.apiserver.server import APIServer, Config  # noqa: E402
from pyk8s.storage.sqlite import SqliteStore  # noqa: E402

JSON = dict[str, Any]
NS = "default"
TIME = "2026-01-01T00:00:00Z"


def pod(name: str) -> JSON:
    """A pod as the kubelet writes it back: defaulted spec, running status."""
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": "6d3c5f5e-0000-4000-8000-000000000000",
            "resourceVersion": "12",
            "creationTimestamp": TIME,
            "labels": {"app": "web", "pod-template-hash": "5d8f9"},
            "annotations": {"note": "x"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "web-5d8f9",
                    "uid": "u",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "volumes": [
                {
                    "name": "kube-api-access",
                    "projected": {
                        "sources": [
                            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                            {
                                "configMap": {
                                    "name": "kube-root-ca.crt",
                                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                                }
                            },
                        ],
                        "defaultMode": 420,
                    },
                }
            ],
            "containers": [
                {
                    "name": "c",
                    "image": "nginx",
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                    "volumeMounts": [
                        {
                            "name": "kube-api-access",
                            "readOnly": True,
                            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                        }
                    ],
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                    "imagePullPolicy": "Always",
                }
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "serviceAccount": "default",
            "securityContext": {},
            "schedulerName": "default-scheduler",
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                }
            ],
            "priority": 0,
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
        },
        "status": status(),
    }


def status() -> JSON:
    conditions = [
        {"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": TIME}
        for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady")
    ]
    return {
        "phase": "Running",
        "conditions": conditions,
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


DEPLOYMENT: JSON = {
    "kind": "Deployment",
    "apiVersion": "apps/v1",
    "metadata": {"name": "web", "namespace": NS, "labels": {"app": "web"}},
    "spec": {
        "replicas": 3,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod("x")["spec"]},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
    },
}
BINDING: JSON = {
    "kind": "Binding",
    "apiVersion": "v1",
    "metadata": {"name": "p", "namespace": NS, "uid": "u"},
    "target": {"kind": "Node", "name": "node-1"},
}


def interleaved_best_us(fns: list[Callable[[], object]], rounds: int = 300) -> list[float]:
    """Each function's best time per call in µs, the functions taking turns in small
    batches, so that a busy second on the shared machine hits them all alike."""
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            for _ in range(20):
                fn()
            best[i] = min(best[i], (time.perf_counter() - start) / 20 * 1e6)
    return best


def object_row(label: str, obj: JSON, gvk: tuple[str, str, str]) -> str:
    raw = orjson.dumps(obj)
    r = REGISTRY.for_api_version(obj["apiVersion"], obj["kind"])
    assert r is not None and decode_error(*gvk, obj) is None
    stored = go_ordered(obj)  # what a write finds: the stored object, in order
    cells = interleaved_best_us(
        [
            lambda: orjson.loads(raw),
            lambda: decode_error(*gvk, obj),
            lambda: decode_errors(r, obj),
            lambda: go_ordered(stored),
            lambda: schema_check.unknown_fields(r, obj),
        ]
    )
    return f"| {label} | " + " | ".join(f"{c:.1f} µs" for c in cells) + " |"


def per_object() -> str:
    rows = ["| object | loads | typed check | uncompiled walk | Go order | unknown fields |"]
    rows.append("|---|---:|---:|---:|---:|---:|")
    rows.append(object_row("Pod (kubelet status)", pod("p"), ("", "v1", "Pod")))
    rows.append(object_row("Deployment", DEPLOYMENT, ("apps", "v1", "Deployment")))
    rows.append(object_row("Binding", BINDING, ("", "v1", "Binding")))
    return "\n".join(rows)


def stored_reads() -> str:
    """What reading one stored pod costs (a LIST from storage pays it per item): decoding,
    then setting its resourceVersion, in the place storage keeps for it, or (objects
    stored before that place was kept) in a rebuilt metadata."""
    kept = orjson.dumps(storage_form(go_ordered(pod("p"))))
    old = go_ordered(pod("p"))
    old["metadata"] = {k: v for k, v in old["metadata"].items() if k != "resourceVersion"}
    without = orjson.dumps(old)
    cells = interleaved_best_us(
        [
            lambda: orjson.loads(kept),
            lambda: set_resource_version(orjson.loads(kept), "42"),
            lambda: set_resource_version(orjson.loads(without), "42"),
        ]
    )
    rows = ["| stored pod | loads | + resourceVersion in place | + rebuilt metadata |"]
    rows.append("|---|---:|---:|---:|")
    rows.append("| Pod (kubelet status) | " + " | ".join(f"{c:.2f} µs" for c in cells) + " |")
    return "\n".join(rows)


@contextlib.asynccontextmanager
async def server(tmp: Path, *, steps: bool) -> AsyncIterator[TestClient[Any, Any]]:
    """An in-process API server; ``steps=False`` switches typed decoding and Go order off."""
    with contextlib.ExitStack() as switches:
        if not steps:
            switches.enter_context(mock.patch.object(encoding, "decode_error", _no_error))
            switches.enter_context(mock.patch.object(rest, "go_ordered", _as_it_is))
        store = await SqliteStore.open(tmp / "state.db")
        api = APIServer(store, config=Config(compact_interval=0))
        await api.start()
        client: TestClient[Any, Any] = TestClient(TestServer(api.app))
        await client.start_server()
        try:
            yield client
        finally:
            await client.close()
            await api.stop()
            await store.close()


def _no_error(group: str, version: str, kind: str, obj: JSON) -> None:
    return None


def _as_it_is(obj: JSON) -> JSON:
    return obj


async def cpu_ms(n: int, one: Callable[[int], Any]) -> float:
    """CPU time per operation of this process (server and client both live here): other
    processes on the machine slow the wall clock down, much less this."""
    start = time.process_time()
    for i in range(n):
        await one(i)
    return (time.process_time() - start) / n * 1000


async def through_server(tmp: Path, *, steps: bool, pods: int) -> dict[str, float]:
    out: dict[str, float] = {}
    async with server(tmp, steps=steps) as c:
        base = f"/api/v1/namespaces/{NS}/pods"
        headers = {"Content-Type": "application/json"}

        async def create(i: int) -> None:
            body = pod(f"p{i}")
            del body["metadata"]["uid"], body["metadata"]["resourceVersion"], body["status"]
            resp = await c.post(base, data=orjson.dumps(body), headers=headers)
            assert resp.status == 201, await resp.text()
            await resp.read()

        async def bind(i: int) -> None:
            binding = {**BINDING, "metadata": {"name": f"p{i}", "namespace": NS}}
            resp = await c.post(f"{base}/p{i}/binding", data=orjson.dumps(binding), headers=headers)
            assert resp.status == 201, await resp.text()

        async def patch_status(i: int) -> None:
            resp = await c.patch(
                f"{base}/p{i}/status",
                data=orjson.dumps({"status": status()}),
                headers={"Content-Type": "application/strategic-merge-patch+json"},
            )
            assert resp.status == 200, await resp.text()
            await resp.read()

        async def list_all(i: int) -> None:
            resp = await c.get(base)
            assert resp.status == 200
            await resp.read()

        out["create"] = await cpu_ms(pods, create)
        out["binding"] = await cpu_ms(pods, bind)
        out["status"] = await cpu_ms(pods, patch_status)
        out["list"] = await cpu_ms(20, list_all)
    return out


async def end_to_end(pods: int, rounds: int) -> str:
    runs: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    for steps in (False, True) * rounds:  # alternated: a noisy minute hurts both
        with tempfile.TemporaryDirectory() as tmp:
            runs[steps].append(await through_server(Path(tmp), steps=steps, pods=pods))
    rows = ["| CPU per request | without | with | added |", "|---|---:|---:|---:|"]
    labels = {
        "create": "pod create",
        "binding": "pods/binding POST",
        "status": "status PATCH (kubelet)",
        "list": f"LIST of {pods} pods",
    }
    for key, label in labels.items():
        off = min(r[key] for r in runs[False])
        on = min(r[key] for r in runs[True])
        rows.append(f"| {label} | {off:.2f} ms | {on:.2f} ms | {(on - off) / off * 100:+.1f} % |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print("Per object (best of 300 interleaved rounds)\n")
    print(per_object())
    print("\nReading a stored object (best of 300 interleaved rounds)\n")
    print(stored_reads())
    print(f"\nIn-process API server, typed decoding + Go order off vs on (best of {args.rounds})\n")
    print(asyncio.run(end_to_end(args.pods, args.rounds)))


if __name__ == "__main__":
    main()
