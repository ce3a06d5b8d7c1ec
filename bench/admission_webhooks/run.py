"""Admission webhook benchmark: pod create with one validating webhook on loopback vs none.

Against one real ``pyk8s apiserver`` (SQLite) over HTTPS: pod creates at 1 and 10 clients
with no webhook, then with one ValidatingWebhookConfiguration whose webhook (matching every
pod create, ``url`` on 127.0.0.1, TLS checked against its ``caBundle``) allows everything,
alternated twice on the same server so that a noisy minute hurts both alike. The webhook
is a small aiohttp HTTPS server in its own process (a webhook is somebody else's program:
it must not share the benchmark client's event loop). A phase starts once the server has
seen the change: a server-side dry run of a pod the webhook refuses is refused (webhook
on) or admitted (webhook off).

Usage: python3 bench/admission_webhooks/run.py [--ops 500]
Issue 12's goal: at most 5 ms added at p50. This is a measurement, never a test.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench._admission import creates, wait_for  # noqa: E402
from bench._cluster import Api, Server, free_port, pod_body  # noqa: E402
from bench._table import Row, table  # noqa: E402

from pyk8s.apiserver.certs import ensure_pki  # noqa: E402

GROUP_PATH = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"

#: the webhook: allows every pod but those labelled bench-deny (the probe)
WEBHOOK = """
import json, ssl, sys
from aiohttp import web

async def review(request):
    body = await request.json()
    req = body["request"]
    labels = (req.get("object") or {}).get("metadata", {}).get("labels") or {}
    allowed = "bench-deny" not in labels
    response = {"uid": req["uid"], "allowed": allowed}
    if not allowed:
        response["status"] = {"code": 403, "message": "refused"}
    return web.json_response(
        {"apiVersion": body["apiVersion"], "kind": "AdmissionReview", "response": response}
    )

app = web.Application()
app.router.add_post("/validate", review)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), ssl_context=ctx, print=None)
"""


def configuration(port: int, ca_pem: bytes) -> bytes:
    return json.dumps(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "bench"},
            "webhooks": [
                {
                    "name": "pods.bench.pyk8s.io",
                    "clientConfig": {
                        "url": f"https://127.0.0.1:{port}/validate",
                        "caBundle": base64.b64encode(ca_pem).decode(),
                    },
                    "rules": [
                        {
                            "operations": ["CREATE"],
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "resources": ["pods"],
                        }
                    ],
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                }
            ],
        }
    ).encode()


def start_webhook(tls_dir: Path) -> tuple[subprocess.Popen[bytes], int, bytes]:
    """The webhook process, its port and the CA that signed its certificate."""
    pki = ensure_pki(tls_dir, hostnames=["localhost"], ips=["127.0.0.1"])
    port = free_port()
    args = [str(port), str(pki.serving_cert), str(pki.serving_key)]
    proc = subprocess.Popen([sys.executable, "-c", WEBHOOK, *args])
    deadline = time.monotonic() + 60
    while True:  # until it listens
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the webhook did not start")
        time.sleep(0.1)
    return proc, port, pki.ca_cert.read_bytes()


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=10)


async def refused(api: Api) -> bool:
    """Whether a dry-run create of a pod the webhook refuses is refused."""
    body = pod_body("probe", labels={"bench-deny": "x"})
    try:
        await api.request_bytes("POST", "/api/v1/namespaces/bench/pods?dryRun=All", body)
    except RuntimeError as e:
        if ": 403 " in str(e):  # refused by the webhook, not a webhook that is not up yet
            return True
    return False


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops", type=int, default=500)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pyk8s-bench-webhook-") as tmp:
        hook, hook_port, ca_pem = start_webhook(Path(tmp) / "webhook-tls")
        server = Server(Path(tmp) / "data", free_port()).start()
        api = Api(server)
        config = configuration(hook_port, ca_pem)
        rows: list[Row] = []
        try:
            await api.namespace("bench")
            run = 0
            for _ in range(2):
                for clients in (1, 10):
                    run += 1
                    rows.append(await creates(api, "no webhook", clients, args.ops, run))
                await api.request("POST", GROUP_PATH, config)
                await wait_for(api, refused, True, "webhook")
                for clients in (1, 10):
                    run += 1
                    rows.append(await creates(api, "1 validating webhook", clients, args.ops, run))
                await api.request("DELETE", f"{GROUP_PATH}/bench")
                await wait_for(api, refused, False, "webhook")
        finally:
            await api.close()
            server.stop()
            stop(hook)
    print("### pod create, one validating webhook on loopback (alternated twice)\n")
    print(table(rows, ms_digits=2))
    print()
    for clients in (1, 10):
        off = [r for r in rows if r.clients == clients and r.what == "no webhook"]
        on = [r for r in rows if r.clients == clients and r.what != "no webhook"]
        for q, name in ((0.5, "p50"), (0.99, "p99")):
            base = min(r.pct(q) for r in off)
            with_hook = min(r.pct(q) for r in on)
            print(
                f"- {clients} client(s), {name}: {base:.2f} ms -> {with_hook:.2f} ms "
                f"({with_hook - base:+.2f} ms, best of two runs each)"
            )


if __name__ == "__main__":
    asyncio.run(main())
