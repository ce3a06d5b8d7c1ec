"""API aggregation benchmark: what the proxy adds to a GET served by an extension server.

Against one real ``pyk8s apiserver`` (SQLite) over HTTPS: the same small list (two
objects) read three ways, at 1 and 10 clients, alternated twice so that a noisy minute
hurts all alike:

* ``built-in``: two ConfigMaps listed from the API server itself (its own cost);
* ``extension direct``: the extension server's list, asked directly with the front-proxy
  certificate (the backend's own cost);
* ``through the proxy``: the same list through ``/apis/<group>/<version>/…``, so the API
  server authenticates and authorizes, picks an endpoint and passes the request on with
  its front-proxy certificate and the ``X-Remote-*`` headers.

The extension server is a small aiohttp HTTPS server in its own process (somebody else's
program: it must not share the benchmark client's event loop), behind a selector-less
Service whose EndpointSlice names 127.0.0.1; a phase starts once the APIService is
Available.

Usage: python3 bench/aggregation/run.py [--ops 1000]
This is a measurement, never a test.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench._cluster import Api, Server, free_port  # noqa: E402
from bench._table import Row, table, timed  # noqa: E402

from pyk8s.apiserver.certs import ensure_pki  # noqa: E402

GROUP, VERSION = "bench.example.com", "v1"
LIST_PATH = f"/apis/{GROUP}/{VERSION}/namespaces/bench/widgets"

#: the extension server: discovery and a list of two widgets, client certs required
EXTENSION = """
import json, ssl, sys
from aiohttp import web

GROUP, VERSION = sys.argv[4], sys.argv[5]
RESOURCES = {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{GROUP}/{VERSION}",
             "resources": [{"name": "widgets", "singularName": "widget", "namespaced": True,
                            "kind": "Widget", "verbs": ["get", "list"]}]}

def widget(ns, name):
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Widget",
            "metadata": {"name": name, "namespace": ns, "resourceVersion": "1"}}

async def discovery(request):
    return web.json_response(RESOURCES)

async def widgets(request):
    ns = request.match_info["ns"]
    return web.json_response({"apiVersion": f"{GROUP}/{VERSION}", "kind": "WidgetList",
                              "metadata": {"resourceVersion": "1"},
                              "items": [widget(ns, "a"), widget(ns, "b")]})

app = web.Application()
app.router.add_get(f"/apis/{GROUP}/{VERSION}", discovery)
app.router.add_get(f"/apis/{GROUP}/{VERSION}/namespaces/{{ns}}/widgets", widgets)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
ctx.load_verify_locations(sys.argv[6])
ctx.verify_mode = ssl.CERT_REQUIRED
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), ssl_context=ctx, print=None)
"""


def start_extension(
    tls_dir: Path, front_proxy_ca: Path
) -> tuple[subprocess.Popen[bytes], int, bytes]:
    """The extension server process, its port and the CA that signed its certificate."""
    pki = ensure_pki(tls_dir, hostnames=["ext.bench.svc"], ips=["127.0.0.1"])
    port = free_port()
    args = [str(port), str(pki.serving_cert), str(pki.serving_key), GROUP, VERSION]
    proc = subprocess.Popen([sys.executable, "-c", EXTENSION, *args, str(front_proxy_ca)])
    deadline = time.monotonic() + 60
    while True:  # until it listens
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the extension server did not start")
        time.sleep(0.1)
    return proc, port, pki.ca_cert.read_bytes()


def objects(port: int, ca_pem: bytes) -> list[tuple[str, dict[str, object]]]:
    """The Service, its EndpointSlice and the APIService (path to POST to, body)."""
    return [
        (
            "/api/v1/namespaces/bench/services",
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "ext"},
                "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port}]},
            },
        ),
        (
            "/apis/discovery.k8s.io/v1/namespaces/bench/endpointslices",
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {"name": "ext-1", "labels": {"kubernetes.io/service-name": "ext"}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
                "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
            },
        ),
        (
            "/apis/apiregistration.k8s.io/v1/apiservices",
            {
                "apiVersion": "apiregistration.k8s.io/v1",
                "kind": "APIService",
                "metadata": {"name": f"{VERSION}.{GROUP}"},
                "spec": {
                    "group": GROUP,
                    "version": VERSION,
                    "service": {"namespace": "bench", "name": "ext"},
                    "caBundle": base64.b64encode(ca_pem).decode(),
                    "groupPriorityMinimum": 1000,
                    "versionPriority": 15,
                },
            },
        ),
    ]


async def wait_available(api: Api) -> None:
    for _ in range(1200):
        got = await api.request(
            "GET", f"/apis/apiregistration.k8s.io/v1/apiservices/{VERSION}.{GROUP}"
        )
        for c in (got.get("status") or {}).get("conditions") or []:
            if c["type"] == "Available" and c["status"] == "True":
                return
        await asyncio.sleep(0.05)
    raise RuntimeError("the APIService never became Available")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops", type=int, default=1000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pyk8s-bench-aggregation-") as tmp:
        server = Server(Path(tmp) / "data", free_port()).start()
        tls = server.data_dir / "server" / "tls"
        ext, port, ca_pem = start_extension(Path(tmp) / "ext-tls", tls / "front-proxy-ca.crt")
        api = Api(server)
        direct_ctx = ssl.create_default_context(cadata=ca_pem.decode())
        direct_ctx.check_hostname = False
        direct_ctx.load_cert_chain(tls / "front-proxy-client.crt", tls / "front-proxy-client.key")
        direct = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=direct_ctx, limit=200))
        direct_url = f"https://127.0.0.1:{port}{LIST_PATH}"

        async def direct_get(_: int) -> bytes:
            async with direct.get(direct_url, headers={"X-Remote-User": "bench"}) as r:
                return await r.read()

        rows: list[Row] = []
        try:
            await api.namespace("bench")
            for name in ("a", "b"):
                cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}
                await api.request(
                    "POST", "/api/v1/namespaces/bench/configmaps", json.dumps(cm).encode()
                )
            for path, body in objects(port, ca_pem):
                await api.request("POST", path, json.dumps(body).encode())
            await wait_available(api)
            for _ in range(2):
                for clients in (1, 10):
                    rows.append(
                        await timed(
                            "built-in",
                            clients,
                            args.ops,
                            lambda _: api.request_bytes(
                                "GET", "/api/v1/namespaces/bench/configmaps"
                            ),
                        )
                    )
                    rows.append(await timed("extension direct", clients, args.ops, direct_get))
                    rows.append(
                        await timed(
                            "through the proxy",
                            clients,
                            args.ops,
                            lambda _: api.request_bytes("GET", LIST_PATH),
                        )
                    )
        finally:
            await direct.close()
            await api.close()
            server.stop()
            ext.terminate()
            ext.wait(timeout=10)
    print("### a two-object list: built-in, extension server direct, through the proxy\n")
    print(table(rows, ms_digits=2))
    print()
    for clients in (1, 10):
        for q, name in ((0.5, "p50"), (0.99, "p99")):
            best = {
                what: min(r.pct(q) for r in rows if r.clients == clients and r.what == what)
                for what in ("extension direct", "through the proxy")
            }
            added = best["through the proxy"] - best["extension direct"]
            print(
                f"- {clients} client(s), {name}: direct {best['extension direct']:.2f} ms, "
                f"proxied {best['through the proxy']:.2f} ms ({added:+.2f} ms, best of two runs)"
            )


if __name__ == "__main__":
    asyncio.run(main())
