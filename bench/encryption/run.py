"""Encryption at rest and audit logging benchmark: what each adds to Secret create/get.

Three real ``pyk8s apiserver`` processes (SQLite) started side by side in one run:

* ``identity``: an EncryptionConfiguration whose only provider is identity (the
  transformer path, no cipher);
* ``aescbc``: secrets encrypted with aescbc (k3s's ``--secrets-encryption`` choice);
* ``audit``: no encryption, an audit policy logging every request at Metadata to a file.

Each round times Secret creates, then GETs of those Secrets, with one client, interleaved:
every operation runs on each server in turn (the order rotating) before the next starts,
so that the load other work puts on this shared machine lands on every server alike. The
rows pool the rounds.

Two more tables time, in this process, the aescbc transformer alone on the stored bytes
of a typical Secret (encrypt on create, decrypt on get) and an audited GET's own work at
Metadata (policy, two events encoded and queued): the noise-free part of what a request
pays on top.

Usage: python3 bench/encryption/run.py [--ops 400] [--rounds 3]
Issue 14's goal: aescbc adds at most 10 % to create/get p50. This is a measurement, never
a test.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench._cluster import Api, Server, free_port  # noqa: E402
from bench._table import Row, table  # noqa: E402

SECRETS = "/api/v1/namespaces/bench/secrets"


def encryption_config(path: Path, provider: dict[str, object]) -> Path:
    path.write_text(
        json.dumps(
            {
                "apiVersion": "apiserver.config.k8s.io/v1",
                "kind": "EncryptionConfiguration",
                "resources": [{"resources": ["secrets"], "providers": [provider]}],
            }
        )
    )
    return path


def secret_body(name: str) -> bytes:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "labels": {"app": "bench"}},
            "type": "Opaque",
            "data": {
                "username": base64.b64encode(b"admin").decode(),
                "password": base64.b64encode(os.urandom(24)).decode(),
                "ca.crt": base64.b64encode(os.urandom(1200)).decode(),
            },
        }
    ).encode()


def start_servers(base: Path) -> dict[str, Server]:
    key = base64.b64encode(os.urandom(32)).decode()
    identity = encryption_config(base / "identity.json", {"identity": {}})
    aescbc = encryption_config(
        base / "aescbc.json", {"aescbc": {"keys": [{"name": "key1", "secret": key}]}}
    )
    policy = base / "policy.yaml"
    policy.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n")
    flags = {
        "identity": ("--encryption-provider-config", str(identity)),
        "aescbc": ("--encryption-provider-config", str(aescbc)),
        "audit": (f"--audit-policy-file={policy}", f"--audit-log-path={base / 'audit.log'}"),
    }
    return {
        name: Server(base / name, free_port(), extra_args=args).start()
        for name, args in flags.items()
    }


async def measure(servers: dict[str, Server], ops: int, rounds: int) -> list[Row]:
    """Interleaved: every operation runs on each server in turn (in a rotating order)
    before the next one starts, so load from elsewhere on the machine lands on all
    servers alike; one client, so each sample is one request's latency."""
    apis = {name: Api(srv) for name, srv in servers.items()}
    names = list(apis)
    latencies: dict[tuple[str, str], list[float]] = {}
    try:
        for api in apis.values():  # warm up: connections, caches, the first writes
            await api.namespace("bench")
            for i in range(20):
                await api.request_bytes("POST", SECRETS, secret_body(f"warm-{i}"))
        for rnd in range(rounds):
            for what in ("Secret create", "Secret get"):
                for i in range(ops):
                    k = (i + rnd) % len(names)
                    for name in names[k:] + names[:k]:
                        api = apis[name]
                        t = time.perf_counter()
                        if what == "Secret create":
                            await api.request_bytes("POST", SECRETS, secret_body(f"s-{rnd}-{i}"))
                        else:
                            await api.request_bytes("GET", f"{SECRETS}/s-{rnd}-{i}")
                        latencies.setdefault((name, what), []).append(time.perf_counter() - t)
    finally:
        for api in apis.values():
            await api.close()
    return [
        Row(what, 1, len(lat), sum(lat), lat, name)
        for (name, what), lat in sorted(latencies.items(), key=lambda kv: (kv[0][1], kv[0][0]))
    ]


def added(rows: list[Row], base: str, other: str) -> list[str]:
    out = []
    for what in ("Secret create", "Secret get"):
        b = next(r for r in rows if r.backend == base and r.what == what)
        o = next(r for r in rows if r.backend == other and r.what == what)
        out.append(
            f"- {other} vs {base}, {what}: p50 {100 * (o.pct(0.5) / b.pct(0.5) - 1):+.1f} %, "
            f"p99 {100 * (o.pct(0.99) / b.pct(0.99) - 1):+.1f} %"
        )
    return out


def transformer_micro(n: int = 20000) -> str:
    from pyk8s.storage.encryption import AESCBCTransformer

    t = AESCBCTransformer("key1", os.urandom(32))
    stored = json.dumps(
        {**json.loads(secret_body("micro")), "metadata": {"name": "micro", "uid": "u" * 36}}
    ).encode()
    key = "/registry/core/secrets/bench/micro"
    sealed = t.encrypt(stored, key)
    enc, dec = [], []
    for _ in range(n):
        s = time.perf_counter()
        t.encrypt(stored, key)
        enc.append(time.perf_counter() - s)
        s = time.perf_counter()
        t.decrypt(sealed, key)
        dec.append(time.perf_counter() - s)
    return "\n".join(
        [
            f"| aescbc on a {len(stored)}-byte Secret | median µs | p99 µs |",
            "|---|---:|---:|",
            f"| encrypt | {statistics.median(enc) * 1e6:.1f} | "
            f"{sorted(enc)[int(0.99 * n)] * 1e6:.1f} |",
            f"| decrypt | {statistics.median(dec) * 1e6:.1f} | "
            f"{sorted(dec)[int(0.99 * n)] * 1e6:.1f} |",
        ]
    )


def audit_micro(n: int = 20000) -> str:
    """One audited GET's own cost at Metadata (policy, both events encoded and queued)."""
    from aiohttp import web
    from aiohttp.test_utils import make_mocked_request

    from pyk8s.api.registry import REGISTRY
    from pyk8s.apiserver.audit import Auditor, LogBackend
    from pyk8s.apiserver.audit.policy import Policy, PolicyRule
    from pyk8s.apiserver.authn import UserInfo
    from pyk8s.apiserver.requestinfo import parse_request

    queued: list[bytes] = []
    backend = LogBackend("-")
    backend.process = queued.append  # type: ignore[method-assign]
    auditor = Auditor(Policy((PolicyRule("Metadata"),)), backend)
    path = f"{SECRETS}/s-1"
    request = make_mocked_request("GET", path, headers={"User-Agent": "kubectl/v1.32.4"})
    info = parse_request("GET", path, {}, REGISTRY)
    user = UserInfo("system:admin", groups=("system:masters", "system:authenticated"))
    response = web.json_response({"kind": "Secret"})
    took = []
    for _ in range(n):
        s = time.perf_counter()
        context = auditor.begin(request, info, user, "0f8e6d2c-audit-id")
        assert context is not None
        context.complete(response)
        took.append(time.perf_counter() - s)
        queued.clear()
    return "\n".join(
        [
            "| audit at Metadata, one GET | median µs | p99 µs |",
            "|---|---:|---:|",
            f"| policy + RequestReceived + ResponseComplete | "
            f"{statistics.median(took) * 1e6:.1f} | {sorted(took)[int(0.99 * n)] * 1e6:.1f} |",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=400, help="creates (and gets) per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pyk8s-bench-enc-") as tmp:
        servers = start_servers(Path(tmp))
        try:
            rows = asyncio.run(measure(servers, args.ops, args.rounds))
        finally:
            for srv in servers.values():
                srv.stop()
        audit_lines = sum(1 for _ in (Path(tmp) / "audit.log").open())
    print(table(rows, backend_column=True, ms_digits=2))
    print()
    print("\n".join(added(rows, "identity", "aescbc") + added(rows, "identity", "audit")))
    print(f"- audit events written by the audit server: {audit_lines}")
    print()
    print(transformer_micro())
    print()
    print(audit_micro())


if __name__ == "__main__":
    main()
