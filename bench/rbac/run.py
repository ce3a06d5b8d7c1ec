"""RBAC benchmark: pod GET and create as a service account, RBAC vs AlwaysAllow.

Two real ``pyk8s apiserver`` processes (SQLite) in the same run: one with
``--authorization-mode=AlwaysAllow``, one with ``--authorization-mode=RBAC``. Both hold
the same 1,000 Roles and 1,000 RoleBindings (ten of each in each of 100 namespaces, bound
to users, groups and service accounts), and in both the benchmark's service account
``bench/bench`` is bound to ``edit`` in the ``bench`` namespace by one more RoleBinding.
Requests carry that account's token from the TokenRequest API, so every one is
authenticated the same way and only the authorizer differs (``system:masters``, the admin
certificate, would skip RBAC altogether). Each operation runs at 1 and 10 clients, on
both servers in turn, twice, so that a noisy minute hurts both alike.

A second table times the authorizer chains alone, in this process, over a watch cache
holding the same objects plus the bootstrap policy: what RBAC adds to every request,
without the network and the rest of the request's work (and so without most of a shared
machine's noise).

Usage: python3 bench/rbac/run.py [--ops 500]
Issue 14's goal: at most 5 % added at p50. This is a measurement, never a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench._cluster import Api, Server, create_many, free_port, pod_body  # noqa: E402
from bench._table import Row, table, timed  # noqa: E402

from pyk8s.apiserver.authn import UserInfo  # noqa: E402
from pyk8s.apiserver.authz import RequestAttributes  # noqa: E402
from pyk8s.apiserver.authzmodes import build_authorizer  # noqa: E402
from pyk8s.apiserver.rbac.bootstrappolicy import cluster_role_bindings, cluster_roles  # noqa: E402
from pyk8s.apiserver.watchcache import WatchCache  # noqa: E402
from pyk8s.storage.sqlite import SqliteStore  # noqa: E402

NAMESPACES = 100
PER_NAMESPACE = 10
RBAC_PATH = "/apis/rbac.authorization.k8s.io/v1"
#: RBAC alone: the Node authorizer (pyk8s's default puts it first) has its own costs
MODES = {"AlwaysAllow": "AlwaysAllow", "RBAC": "RBAC"}


class TokenApi:
    """aiohttp over HTTPS with a bearer token (no client certificate)."""

    def __init__(self, server: Server, token: str) -> None:
        ctx = ssl.create_default_context(cafile=str(server.data_dir / "server" / "tls" / "ca.crt"))
        self.base = server.url
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=200))

    async def request(self, method: str, path: str, body: bytes | None = None) -> bytes:
        async with self.session.request(
            method, self.base + path, data=body, headers=self.headers
        ) as r:
            data = await r.read()
            if r.status >= 300:
                raise RuntimeError(f"{method} {path}: {r.status} {data[:300]!r}")
            return data

    async def close(self) -> None:
        await self.session.close()


def _json(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode()


def role(ns: str, i: int) -> bytes:
    return _json(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": f"role-{i}", "namespace": ns},
            "rules": [
                {"apiGroups": [""], "resources": ["configmaps", f"thing-{i}"], "verbs": ["get"]},
                {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list", "watch"]},
            ],
        }
    )


def binding(ns: str, i: int) -> bytes:
    subject = (
        {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": f"user-{ns}-{i}"},
        {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": f"group-{i}"},
        {"kind": "ServiceAccount", "name": f"sa-{i}", "namespace": ns},
    )[i % 3]
    return _json(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": f"binding-{i}", "namespace": ns},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": f"role-{i}",
            },
            "subjects": [subject],
        }
    )


async def populate(api: Api) -> str:
    """The 1,000 Roles and RoleBindings, the bench account bound to edit; its token."""
    namespaces = [f"ns-{n:03d}" for n in range(NAMESPACES)]
    for ns in ["bench", *namespaces]:
        await api.namespace(ns)
    for ns in namespaces:
        roles = [(f"{ns}/r{i}", role(ns, i)) for i in range(PER_NAMESPACE)]
        await create_many(api, f"{RBAC_PATH}/namespaces/{ns}/roles", roles, concurrency=10)
        bindings = [(f"{ns}/b{i}", binding(ns, i)) for i in range(PER_NAMESPACE)]
        await create_many(
            api, f"{RBAC_PATH}/namespaces/{ns}/rolebindings", bindings, concurrency=10
        )
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "bench"}}
    await api.request("POST", "/api/v1/namespaces/bench/serviceaccounts", _json(sa))
    edit = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "bench-edit"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "ServiceAccount", "name": "bench", "namespace": "bench"}],
    }
    await api.request("POST", f"{RBAC_PATH}/namespaces/bench/rolebindings", _json(edit))
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
    got = await api.request(
        "POST", "/api/v1/namespaces/bench/serviceaccounts/bench/token", _json(request)
    )
    return str(got["status"]["token"])


async def ready(token_api: TokenApi) -> None:
    """The account's binding is in effect (RBAC follows its watch cache)."""
    for _ in range(600):
        try:
            await token_api.request("GET", "/api/v1/namespaces/bench/pods?limit=1")
            return
        except RuntimeError:
            await asyncio.sleep(0.05)
    raise RuntimeError("the bench account never got its edit binding")


BENCH_USER = UserInfo(
    "system:serviceaccount:bench:bench",
    groups=("system:serviceaccounts", "system:serviceaccounts:bench", "system:authenticated"),
)


async def authorizers_alone(tmp: Path, calls: int) -> list[Row]:
    """Each mode's chain answering the bench account's GET and create, in-process."""
    store = await SqliteStore.open(tmp / "authz.db")
    prefix = "/registry/rbac.authorization.k8s.io/"
    objects = [("clusterroles", "", r) for r in cluster_roles()]
    objects += [("clusterrolebindings", "", b) for b in cluster_role_bindings()]
    for n in range(NAMESPACES):
        ns = f"ns-{n:03d}"
        for i in range(PER_NAMESPACE):
            objects.append(("roles", ns, json.loads(role(ns, i))))
            objects.append(("rolebindings", ns, json.loads(binding(ns, i))))
    edit = {
        "metadata": {"name": "bench-edit", "namespace": "bench"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "ServiceAccount", "name": "bench", "namespace": "bench"}],
    }
    objects.append(("rolebindings", "bench", edit))
    for plural, ns, obj in objects:
        name = obj["metadata"]["name"]
        await store.create(f"{prefix}{plural}/{ns + '/' if ns else ''}{name}", _json(obj))
    cache = WatchCache(store)
    await cache.start()
    rows: list[Row] = []
    try:
        requests = {
            "GET pod": RequestAttributes(
                "get", "", "pods", "", "bench", "target", api_version="v1"
            ),
            "create pod": RequestAttributes("create", "", "pods", "", "bench", api_version="v1"),
        }
        for _ in range(2):
            for label, mode in MODES.items():
                chain, _ = build_authorizer(tuple(mode.split(",")), cache)
                for what, attrs in requests.items():
                    decision = await chain.authorize(BENCH_USER, attrs)
                    assert decision.allowed, decision
                    rows.append(
                        await timed(
                            f"authorize {what}, {label}",
                            1,
                            calls,
                            lambda i, c=chain, a=attrs: c.authorize(BENCH_USER, a),
                        )
                    )
    finally:
        await cache.stop()
        await store.close()
    return rows


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops", type=int, default=500)
    ap.add_argument("--calls", type=int, default=20000, help="authorizer calls per phase")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pyk8s-bench-rbac-") as tmp:
        servers: dict[str, Server] = {}
        clients: dict[str, TokenApi] = {}
        admins: list[Api] = []
        rows: list[Row] = []
        try:
            for label, mode in MODES.items():
                server = Server(
                    Path(tmp) / label, free_port(), extra_args=(f"--authorization-mode={mode}",)
                ).start()
                servers[label] = server
                admin = Api(server)
                admins.append(admin)
                token = await populate(admin)
                clients[label] = TokenApi(server, token)
                await ready(clients[label])
                await clients[label].request(
                    "POST", "/api/v1/namespaces/bench/pods", pod_body("target")
                )
            run = 0
            for _ in range(2):
                for label, api in clients.items():
                    for n in (1, 10):
                        run += 1
                        rows.append(
                            await timed(
                                f"GET pod, {label}",
                                n,
                                args.ops,
                                lambda i, a=api: a.request(
                                    "GET", "/api/v1/namespaces/bench/pods/target"
                                ),
                            )
                        )
                        rows.append(
                            await timed(
                                f"create pod, {label}",
                                n,
                                args.ops,
                                lambda i, a=api, r=run, c=n: a.request(
                                    "POST",
                                    "/api/v1/namespaces/bench/pods",
                                    pod_body(f"r{r}-c{c}-{i:06d}"),
                                ),
                            )
                        )
        finally:
            for c in clients.values():
                await c.close()
            for a in admins:
                await a.close()
            for s in servers.values():
                s.stop()
        alone = await authorizers_alone(Path(tmp), args.calls)
    print(
        f"### as a service account, {NAMESPACES * PER_NAMESPACE} Roles and "
        f"{NAMESPACES * PER_NAMESPACE} RoleBindings present (each phase twice, alternated)\n"
    )
    print(table(rows, ms_digits=2))
    print()
    for op in ("GET pod", "create pod"):
        for n in (1, 10):
            for q, name in ((0.5, "p50"), (0.99, "p99")):
                best = {
                    label: min(
                        r.pct(q) for r in rows if r.what == f"{op}, {label}" and r.clients == n
                    )
                    for label in MODES
                }
                base, rbac = best["AlwaysAllow"], best["RBAC"]
                print(
                    f"- {op}, {n} client(s), {name}: AlwaysAllow {base:.2f} ms, RBAC {rbac:.2f} ms "
                    f"({rbac / base - 1:+.1%}, best of two runs each)"
                )
    print_alone(alone, rows)


def print_alone(rows: list[Row], requests: list[Row]) -> None:
    print("\n### the authorizer chains alone, in-process (same objects; microseconds)\n")
    print("| operation | calls | p50 µs | p99 µs |\n|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r.what} | {r.ops} | {r.pct(0.5) * 1000:.1f} | {r.pct(0.99) * 1000:.1f} |")
    print()
    for op in ("GET pod", "create pod"):
        best = {
            label: min(r.pct(0.5) for r in rows if r.what == f"authorize {op}, {label}")
            for label in MODES
        }
        added_ms = best["RBAC"] - best["AlwaysAllow"]
        request_ms = min(
            r.pct(0.5) for r in requests if r.what == f"{op}, AlwaysAllow" and r.clients == 1
        )
        print(
            f"- {op}: RBAC adds {added_ms * 1000:.1f} µs at p50 over AlwaysAllow's chain, "
            f"{added_ms / request_ms:.1%} of the request's {request_ms:.2f} ms (1 client)"
        )


if __name__ == "__main__":
    asyncio.run(main())
