"""Extension-point benchmark: custom resources next to built-ins, and admission's cost.

Against a real ``pyk8s apiserver`` (SQLite) over HTTPS, prints three tables:

1. create and get of a custom resource (a CRD with a structural schema, defaults and a CEL
   rule) next to a ConfigMap of the same size, at 1 and 50 clients — the baseline is the
   ConfigMap measured in the same run;
2. pod create with upstream's default admission plugins (NamespaceLifecycle, LimitRanger,
   ServiceAccount, PodSecurity, Priority, DefaultTolerationSeconds, ResourceQuota) next to
   the same server with every plugin disabled;
3. LIST of 10,000 custom resources next to LIST of 10,000 ConfigMaps.

Usage: python3 bench/apiextensions/run.py [--ops 1000] [--list 10000]
This is a measurement, never a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench._cluster import Api, Server, free_port  # noqa: E402
from bench._table import Row, table, timed  # noqa: E402

PLUGINS = (
    "NamespaceLifecycle,LimitRanger,ServiceAccount,PodSecurity,Priority,"
    "DefaultTolerationSeconds,ResourceQuota"
)

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.bench.pyk8s.io"},
    "spec": {
        "group": "bench.pyk8s.io",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "x-kubernetes-validations": [
                                    {"rule": "self.replicas <= 100", "message": "too many"}
                                ],
                                "properties": {
                                    "replicas": {"type": "integer", "default": 1},
                                    "image": {"type": "string", "maxLength": 256},
                                    "data": {
                                        "type": "object",
                                        "additionalProperties": {"type": "string"},
                                    },
                                },
                            }
                        },
                    }
                },
            }
        ],
    },
}

#: the same payload in both kinds: ten 20-byte values
DATA = {f"key{i}": "v" * 20 for i in range(10)}


def widget(name: str) -> bytes:
    return json.dumps(
        {
            "apiVersion": "bench.pyk8s.io/v1",
            "kind": "Widget",
            "metadata": {"name": name},
            "spec": {"replicas": 3, "image": "busybox", "data": DATA},
        }
    ).encode()


def config_map(name: str) -> bytes:
    return json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": DATA}
    ).encode()


def pod(name: str) -> bytes:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "containers": [
                    {
                        "name": "c",
                        "image": "busybox:1.36",
                        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                    }
                ]
            },
        }
    ).encode()


async def established(api: Api, name: str) -> None:
    for _ in range(200):
        crd = await api.request(
            "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
        )
        conds = (crd.get("status") or {}).get("conditions") or []
        if any(c["type"] == "Established" and c["status"] == "True" for c in conds):
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{name} never became Established")


async def custom_vs_builtin(api: Api, ops: int) -> list[Row]:
    await api.namespace("bench")
    await api.request(
        "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json.dumps(CRD).encode()
    )
    await established(api, CRD["metadata"]["name"])  # type: ignore[index]
    cms = "/api/v1/namespaces/bench/configmaps"
    crs = "/apis/bench.pyk8s.io/v1/namespaces/bench/widgets"
    rows: list[Row] = []
    for clients in (1, 50):
        for what, base, body in (("ConfigMap", cms, config_map), ("custom resource", crs, widget)):
            rows.append(
                await timed(
                    f"create {what}",
                    clients,
                    ops,
                    lambda i, c=clients, b=base, f=body: api.request_bytes(
                        "POST", b, f(f"c{c}-{i:06d}")
                    ),
                )
            )
        for what, base in (("ConfigMap", cms), ("custom resource", crs)):
            rows.append(
                await timed(
                    f"get {what}",
                    clients,
                    ops,
                    lambda i, c=clients, b=base: api.request_bytes("GET", f"{b}/c{c}-{i:06d}"),
                )
            )
    return rows


async def fill_and_list(api: Api, count: int) -> list[Row]:
    rows: list[Row] = []
    sem = asyncio.Semaphore(50)
    for what, base, body in (
        ("ConfigMaps", "/api/v1/namespaces/bench/configmaps", config_map),
        ("custom resources", "/apis/bench.pyk8s.io/v1/namespaces/bench/widgets", widget),
    ):
        have = len((await api.request("GET", base))["items"])

        async def fill(i: int, b: str = base, f=body) -> None:  # type: ignore[no-untyped-def]
            async with sem:
                await api.request_bytes("POST", b, f(f"fill-{i:06d}"))

        await asyncio.gather(*(fill(i) for i in range(max(0, count - have))))
        lat = []
        n = 0
        for _ in range(5):
            t = time.perf_counter()
            n = len((await api.request("GET", base))["items"])
            lat.append(time.perf_counter() - t)
        rows.append(Row(f"LIST all {what} ({n})", 1, 5, sum(lat), lat))
    return rows


async def pod_creates(base: Path, ops: int, disable: str, label: str) -> Row:
    """Pod creates at 50 clients on a fresh server with ``disable`` plugins turned off."""
    args: tuple[str, ...] = ("--disable-admission-plugins", disable) if disable else ()
    port = free_port()
    server = Server(base / f"data-{port}", port, extra_args=args)
    server.start()
    api = Api(server)
    try:
        await api.namespace("bench")
        return await timed(
            label,
            50,
            ops,
            lambda i: api.request_bytes("POST", "/api/v1/namespaces/bench/pods", pod(f"p{i:06d}")),
        )
    finally:
        await api.close()
        server.stop()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops", type=int, default=1000)
    ap.add_argument("--list", type=int, default=10_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pyk8s-bench-ext-") as tmp:
        base = Path(tmp)
        server = Server(base / "data", free_port()).start()
        api = Api(server)
        try:
            rows = await custom_vs_builtin(api, args.ops)
            print("### custom resources vs ConfigMaps (same payload)\n")
            print(table(rows))
            by = {(r.what, r.clients): r for r in rows}
            for verb in ("create", "get"):
                for c in (1, 50):
                    cr, cm = by[(f"{verb} custom resource", c)], by[(f"{verb} ConfigMap", c)]
                    print(
                        f"- {verb}, {c} client(s): custom resources at {cr.rate / cm.rate:.0%} "
                        "of the ConfigMap rate"
                    )
            print()
            lists = await fill_and_list(api, args.list)
            print("### LIST\n")
            print(table(lists))
            print()
        finally:
            await api.close()
            server.stop()
        # alternate the servers, twice, so that a noisy minute hurts both alike
        rows: list[Row] = []
        for _ in range(2):
            rows.append(await pod_creates(base, args.ops, PLUGINS, "pod create, no plugins"))
            rows.append(
                await pod_creates(
                    base,
                    args.ops,
                    "ServiceAccount",
                    "pod create, default plugins but ServiceAccount",
                )
            )
            rows.append(await pod_creates(base, args.ops, "", "pod create, default plugins"))
        print("### admission overhead (50 clients)\n")
        print(table(rows))
        print()
        by: dict[str, list[Row]] = {}
        for r in rows:
            by.setdefault(r.what, []).append(r)
        off = by["pod create, no plugins"]
        for what in (
            "pod create, default plugins but ServiceAccount",
            "pod create, default plugins",
        ):
            on = by[what]
            p50 = sum(a.pct(0.5) / b.pct(0.5) for a, b in zip(on, off, strict=True)) / len(on)
            p99 = sum(a.pct(0.99) / b.pct(0.99) for a, b in zip(on, off, strict=True)) / len(on)
            print(f"- {what}: p50 {p50 - 1:+.0%}, p99 {p99 - 1:+.0%} against no plugins")


if __name__ == "__main__":
    asyncio.run(main())
