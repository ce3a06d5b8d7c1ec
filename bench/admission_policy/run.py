"""ValidatingAdmissionPolicy benchmark: pod create with 10 bound policies vs none.

Against one real ``pyk8s apiserver`` (SQLite) over HTTPS: pod creates at 1 and 10 clients
with no policy, then with 10 ValidatingAdmissionPolicies (each bound with Deny, matching
every pod create, two validations each, different in every policy: one over the containers,
one over the labels, both passing), alternated twice on the same server so that a noisy
minute hurts both alike. A phase starts once the server has seen the change: a server-side
dry run of a pod the last policy refuses is refused (policies on) or admitted (policies
off).

The machine is shared and HTTP latencies swing by 2x between minutes, so a second table
times the plugin alone, in this process, on the same 10 policies: ``validate`` of a
defaulted pod create (with its service account token volume) against an in-memory cache,
which is what each create pays on top. Its p50 over the no-policy create p50 is the added
fraction with the noise taken out.

Usage: python3 bench/admission_policy/run.py [--ops 500]
Issue 12's goal: at most 10 % added at p50. This is a measurement, never a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench._admission import creates, wait_for  # noqa: E402
from bench._cluster import Api, Obj, Server, free_port, pod_body  # noqa: E402
from bench._table import Row, table, timed  # noqa: E402

POLICIES = 10
TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
#: the volume the ServiceAccount plugin adds to every pod
TOKEN_VOLUME: Obj = {
    "name": "kube-api-access-b5x7q",
    "projected": {
        "defaultMode": 420,
        "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
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
                            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                        }
                    ]
                }
            },
        ],
    },
}
GROUP_PATH = "/apis/admissionregistration.k8s.io/v1"


def policy(i: int) -> bytes:
    return json.dumps(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": f"bench-{i}"},
            "spec": {
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE"],
                            "resources": ["pods"],
                        }
                    ]
                },
                "validations": [
                    {
                        "expression": "object.spec.containers.all(c, "
                        f"!c.image.endsWith(':banned-{i}'))",
                        "message": f"no banned-{i} tags",
                    },
                    {
                        "expression": "!('bench-deny' in object.metadata.labels) || "
                        f"object.metadata.labels['bench-deny'] != '{i}'",
                        "messageExpression": "'pod ' + object.metadata.name + ' is refused'",
                    },
                ],
            },
        }
    ).encode()


def binding(i: int) -> bytes:
    return json.dumps(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": f"bench-{i}"},
            "spec": {"policyName": f"bench-{i}", "validationActions": ["Deny"]},
        }
    ).encode()


async def refused(api: Api) -> bool:
    """Whether a dry-run create of a pod the policies refuse is refused."""
    body = pod_body("probe", labels={"bench-deny": str(POLICIES - 1)})
    try:
        await api.request_bytes("POST", "/api/v1/namespaces/bench/pods?dryRun=All", body)
    except RuntimeError:
        return True
    return False


async def policies_on(api: Api) -> None:
    for i in range(POLICIES):
        await api.request("POST", f"{GROUP_PATH}/validatingadmissionpolicies", policy(i))
        await api.request("POST", f"{GROUP_PATH}/validatingadmissionpolicybindings", binding(i))
    await wait_for(api, refused, True, "policy")


async def policies_off(api: Api) -> None:
    for i in range(POLICIES):
        await api.request("DELETE", f"{GROUP_PATH}/validatingadmissionpolicybindings/bench-{i}")
        await api.request("DELETE", f"{GROUP_PATH}/validatingadmissionpolicies/bench-{i}")
    await wait_for(api, refused, False, "policy")


class _Cache:
    """The policies, bindings and namespace the plugin reads (an in-memory watch cache)."""

    def __init__(self) -> None:
        from pyk8s.api.admissionpolicy import default_binding, default_policy

        self.policies = []
        for i in range(POLICIES):
            p = default_policy(json.loads(policy(i)))
            p["metadata"].update(uid=f"uid-{i}", generation=1)
            self.policies.append(p)
        self.bindings = [default_binding(json.loads(binding(i))) for i in range(POLICIES)]

    async def get(self, group: str, plural: str, namespace: str, name: str) -> Obj:
        return {"metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}}}

    def cached(self, group: str, plural: str, namespace: str, name: str) -> Obj | None:
        return None

    def list(self, group: str, plural: str, namespace: str | None = None) -> list[Obj]:
        return self.policies if plural == "validatingadmissionpolicies" else self.bindings


async def plugin_alone(ops: int) -> Row:
    """The plugin's ``validate`` of one pod create with the 10 policies, timed in-process."""
    from pyk8s.api.defaults import apply_defaults
    from pyk8s.api.registry import Registry
    from pyk8s.apiserver.admission import CREATE, Attributes, Context
    from pyk8s.apiserver.admission.policy import ValidatingAdmissionPolicy
    from pyk8s.apiserver.authn import UserInfo

    registry = Registry()
    pods = registry.get("", "v1", "pods")
    assert pods is not None
    pod = apply_defaults(pods, json.loads(pod_body("p")), create=True)
    pod["metadata"].update(namespace="bench", uid="0d3f2c1e-1111-2222-3333-444455556666")
    pod["spec"]["volumes"] = [TOKEN_VOLUME]
    pod["spec"]["containers"][0]["volumeMounts"] = [
        {"name": TOKEN_VOLUME["name"], "readOnly": True, "mountPath": TOKEN_PATH}
    ]
    plugin = ValidatingAdmissionPolicy(Context(_Cache(), registry=registry))
    user = UserInfo("admin", groups=("system:masters", "system:authenticated"))

    async def one(i: int) -> None:
        attrs = Attributes(CREATE, pods, "bench", "p", pod, None, user)
        await plugin.validate(attrs)

    await timed("plugin alone, 10 policies", 1, 50, one)  # compile and warm up
    return await timed("plugin alone, 10 policies", 1, ops, one)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops", type=int, default=500)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pyk8s-bench-vap-") as tmp:
        server = Server(Path(tmp) / "data", free_port()).start()
        api = Api(server)
        rows: list[Row] = []
        try:
            await api.namespace("bench")
            run = 0
            for _ in range(2):
                for clients in (1, 10):
                    run += 1
                    rows.append(await creates(api, "no policies", clients, args.ops, run))
                await policies_on(api)
                for clients in (1, 10):
                    run += 1
                    rows.append(await creates(api, f"{POLICIES} policies", clients, args.ops, run))
                await policies_off(api)
        finally:
            await api.close()
            server.stop()
    alone = await plugin_alone(args.ops * 4)
    print("### pod create, ValidatingAdmissionPolicy (alternated twice)\n")
    print(table(rows, ms_digits=2))
    print()
    print("### the plugin alone (in-process, 1 client)\n")
    print(table([alone], ms_digits=3))
    print()
    for clients in (1, 10):
        off = [r for r in rows if r.clients == clients and r.what == "no policies"]
        on = [r for r in rows if r.clients == clients and r.what != "no policies"]
        for q, name in ((0.5, "p50"), (0.99, "p99")):
            base = min(r.pct(q) for r in off)
            with_policies = min(r.pct(q) for r in on)
            print(
                f"- {clients} client(s), {name}: {base:.2f} ms -> {with_policies:.2f} ms "
                f"({with_policies / base - 1:+.0%}, best of two runs each)"
            )
    base = min(r.pct(0.5) for r in rows if r.clients == 1 and r.what == "no policies")
    print(
        f"- the plugin alone: p50 {alone.pct(0.5):.3f} ms, p99 {alone.pct(0.99):.3f} ms per "
        f"create = {alone.pct(0.5) / base:.0%} of the no-policy create p50 ({base:.2f} ms)"
    )


if __name__ == "__main__":
    asyncio.run(main())
