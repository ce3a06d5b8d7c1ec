"""ValidatingAdmissionPolicy benchmark: pod create with 10 bound policies vs none.

Against one real ``pyk8s apiserver`` (SQLite) over HTTPS: pod creates at 1 and 10 clients
with no policy, then with 10 ValidatingAdmissionPolicies (each bound with Deny, matching
every pod create, two validations each: one over the containers, one over the labels, both
passing), alternated twice on the same server so that a noisy minute hurts both alike. A
phase starts once the server has seen the change: a server-side dry run of a pod the
policies refuse is refused (policies on) or admitted (policies off).

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

from bench._cluster import Api, Server, free_port, pod_body  # noqa: E402
from bench._table import Row, table, timed  # noqa: E402

POLICIES = 10
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
                        "expression": "object.spec.containers.all(c, !c.image.endsWith(':latest'))",
                        "message": "no latest tags",
                    },
                    {
                        "expression": "!('bench-deny' in object.metadata.labels)",
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
    body = pod_body("probe", labels={"bench-deny": "x"})
    try:
        await api.request_bytes("POST", "/api/v1/namespaces/bench/pods?dryRun=All", body)
    except RuntimeError:
        return True
    return False


async def wait_for(api: Api, want_refused: bool) -> None:
    for _ in range(600):
        if await refused(api) == want_refused:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("the server did not pick up the policy change")


async def policies_on(api: Api) -> None:
    for i in range(POLICIES):
        await api.request("POST", f"{GROUP_PATH}/validatingadmissionpolicies", policy(i))
        await api.request("POST", f"{GROUP_PATH}/validatingadmissionpolicybindings", binding(i))
    await wait_for(api, True)


async def policies_off(api: Api) -> None:
    for i in range(POLICIES):
        await api.request("DELETE", f"{GROUP_PATH}/validatingadmissionpolicybindings/bench-{i}")
        await api.request("DELETE", f"{GROUP_PATH}/validatingadmissionpolicies/bench-{i}")
    await wait_for(api, False)


async def creates(api: Api, label: str, clients: int, ops: int, run: int) -> Row:
    return await timed(
        label,
        clients,
        ops,
        lambda i: api.request_bytes(
            "POST", "/api/v1/namespaces/bench/pods", pod_body(f"r{run}-c{clients}-{i:06d}")
        ),
    )


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
    print("### pod create, ValidatingAdmissionPolicy (alternated twice)\n")
    print(table(rows, ms_digits=2))
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


if __name__ == "__main__":
    asyncio.run(main())
