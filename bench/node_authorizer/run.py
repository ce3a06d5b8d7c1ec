"""Node authorizer benchmark: what deciding a kubelet's read costs, against the graph's size.

In this process, over a watch cache (SQLite store) holding N pods spread over 100 nodes in
one namespace, every pod mounting its own Secret and the namespace's shared
``kube-root-ca.crt`` ConfigMap (as every pod does). Timed, per decision:

* ``own secret``: node-0 reads a Secret of one of its pods (the path is two edges long);
* ``shared configmap``: node-0 reads ``kube-root-ca.crt`` (reached through any of its pods);
* ``shared configmap, a node with no pod``: the same read by a node none of the pods is
  on (refused);
* ``foreign secret``: node-0 reads another node's Secret (refused: the graph is searched
  from the Secret to its one pod);
* ``event create``: a request the system:node rules decide (no graph);

next to the RBAC authorizer deciding a request of a user bound to ``view`` (the baseline
every request pays). Usage: python3 bench/node_authorizer/run.py [--ops 2000]
This is a measurement, never a test.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench._table import Row, table, timed  # noqa: E402

from pyk8s.apiserver.authn import UserInfo  # noqa: E402
from pyk8s.apiserver.authz import RequestAttributes  # noqa: E402
from pyk8s.apiserver.node.authorizer import NodeAuthorizer  # noqa: E402
from pyk8s.apiserver.rbac.authorizer import RBACAuthorizer  # noqa: E402
from pyk8s.apiserver.rbac.bootstrappolicy import cluster_roles  # noqa: E402
from pyk8s.apiserver.watchcache import WatchCache  # noqa: E402
from pyk8s.storage.sqlite import SqliteStore  # noqa: E402

NODES = 100
NODE_0 = UserInfo("system:node:node-0", groups=("system:nodes", "system:authenticated"))
NODE_ELSEWHERE = UserInfo("system:node:elsewhere", groups=("system:nodes", "system:authenticated"))
VIEWER = UserInfo("viewer", groups=("system:authenticated",))


def _pod(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"p{i}", "namespace": "bench", "uid": f"u{i}"},
        "spec": {
            "nodeName": f"node-{i % NODES}",
            "serviceAccountName": "default",
            "containers": [{"name": "c", "image": "busybox"}],
            "volumes": [
                {"name": "s", "secret": {"secretName": f"s{i}"}},
                {
                    "name": "token",
                    "projected": {
                        "sources": [{"configMap": {"name": "kube-root-ca.crt"}}],
                    },
                },
            ],
        },
    }


async def _load(store: SqliteStore, pods: int) -> None:
    for i in range(pods):
        await store.create(f"/registry/core/pods/bench/p{i}", orjson.dumps(_pod(i)))
    for role in cluster_roles():
        if role["metadata"]["name"] == "view":
            await store.create(
                "/registry/rbac.authorization.k8s.io/clusterroles/view", orjson.dumps(role)
            )
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "viewer", "namespace": "bench"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "User", "name": "viewer"}],
    }
    await store.create(
        "/registry/rbac.authorization.k8s.io/rolebindings/bench/viewer", orjson.dumps(binding)
    )


async def main(ops: int) -> None:
    rows: list[Row] = []
    for pods in (1_000, 10_000):
        with tempfile.TemporaryDirectory() as tmp:
            store = await SqliteStore.open(Path(tmp) / "s.db")
            await _load(store, pods)
            cache = WatchCache(store)
            await cache.start()
            node, rbac = NodeAuthorizer(cache), RBACAuthorizer(cache)
            get = "get"
            cases = {
                "own secret": (node, NODE_0, RequestAttributes(get, resource="secrets",
                                                                namespace="bench", name="s0")),
                "shared configmap": (node, NODE_0, RequestAttributes(
                    get, resource="configmaps", namespace="bench", name="kube-root-ca.crt")),
                "shared configmap, a node with no pod": (node, NODE_ELSEWHERE, RequestAttributes(
                    get, resource="configmaps", namespace="bench", name="kube-root-ca.crt")),
                "foreign secret": (node, NODE_0, RequestAttributes(get, resource="secrets",
                                                                    namespace="bench", name="s1")),
                "event create": (node, NODE_0, RequestAttributes("create", resource="events",
                                                                  namespace="bench")),
                "RBAC (view) get pod": (rbac, VIEWER, RequestAttributes(
                    get, resource="pods", namespace="bench", name="p0")),
            }  # fmt: skip
            for what, (authorizer, user, attrs) in cases.items():
                await authorizer.authorize(user, attrs)  # build the index first

                async def one(_: int, a: Any = authorizer, u: Any = user, r: Any = attrs) -> None:
                    await a.authorize(u, r)

                rows.append(await timed(f"{what}, {pods} pods", 1, ops, one))
            await cache.stop()
            await store.close()
    print(table(rows, ms_digits=3))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--ops", type=int, default=2000)
    asyncio.run(main(parser.parse_args().ops))
