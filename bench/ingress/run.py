"""The Ingress controller: nginx's cost per request, how fast an Ingress goes live, and
what a reload costs with 1,000 Ingress rules (root: a real pod on containerd).

One ``pyk8s server --disable-agent``, one ``pyk8s kubelet`` (its own containerd, pods on
a bridge the host reaches), one ``pyk8s ingress-controller`` on loopback ports, and a
busybox ``httpd`` pod behind a Service. Rows, all from this run:

* requests through the Ingress (Host header to nginx's port) next to the same requests
  straight to the pod's IP (the baseline), with the same asyncio client, a new
  connection per request (busybox httpd closes every connection), bounded in count;
* from ``kubectl apply`` of an Ingress to the first 200 through nginx (polled every 5 ms),
  with 1 and with 1,000 Ingresses already served;
* a reload in-process: render + ``nginx -t`` + swap + SIGHUP until the workers answer the
  new configuration's hash, for 1 and 1,000 Ingress rules (the baseline: the render alone).

    python3 bench/ingress/run.py [--requests 4000] [--clients 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench._cluster import Proc, Server, free_port  # noqa: E402
from bench._table import Row, table, timed  # noqa: E402
from tests.ingress.objects import endpoint_slice, ingress, path, rule, service  # noqa: E402
from tests.integration.conftest import Kubectl  # noqa: E402

from pyk8s.ingress.nginx import Nginx  # noqa: E402
from pyk8s.ingress.render import RenderConfig, render  # noqa: E402

NODE = "bench-ingress"
BRIDGE = "pkbenching"
JSON = dict[str, Any]


async def fetch(address: str, port: int, host: str) -> int:
    """One GET on a new connection; the status code."""
    reader, writer = await asyncio.open_connection(address, port)
    try:
        writer.write(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = await reader.read()
    finally:
        writer.close()
    return int(data[9:12]) if data.startswith(b"HTTP/1.") else 0


async def load(what: str, address: str, port: int, host: str, count: int, clients: int) -> Row:
    errors = 0

    async def one(_: int) -> None:
        nonlocal errors
        try:
            if await fetch(address, port, host) != 200:
                errors += 1
        except OSError:
            errors += 1

    await timed(what, clients, clients * 20, one)  # warm up
    row = await timed(what, clients, count, one)
    if errors:
        row.what += f" ({errors} errors)"
    return row


def httpd(name: str) -> list[JSON]:
    labels = {"app": name}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "nodeName": NODE,
            "automountServiceAccountToken": False,
            "containers": [{
                "name": "httpd", "image": "pyk8s.local/busybox:1.35",
                "command": ["sh", "-c", "mkdir -p /www; echo hello > /www/index.html; "
                            "exec httpd -f -p 8080 -h /www"],
                "ports": [{"containerPort": 8080, "name": "http"}],
                "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
            }],
        },
    }  # fmt: skip
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": "http"}]},
    }
    return [pod, svc]


def ingress_list(names: range, prefix: str) -> str:
    items = []
    for i in names:
        body = ingress(f"{prefix}-{i}", rule(f"{prefix}-{i}.example.com", path("/", "web")))
        del body["metadata"]["creationTimestamp"]
        items.append(body)
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


async def apply_to_200(kubectl: Kubectl, port: int, name: str) -> float:
    started = time.perf_counter()
    await asyncio.to_thread(kubectl, "apply", "-f", "-", input=ingress_list(range(1), name))
    for _ in range(6000):
        try:
            if await fetch("127.0.0.1", port, f"{name}-0.example.com") == 200:
                return time.perf_counter() - started
        except OSError:
            pass
        await asyncio.sleep(0.005)
    raise TimeoutError(f"{name} never answered 200")


async def reload_rows(base: Path, n: int) -> list[Row]:
    """Render alone, and render + apply on a private nginx, for ``n`` one-host Ingresses."""
    nginx = Nginx(base / f"reload-{n}")
    nginx.prepare()
    cfg = RenderConfig(prefix=str(nginx.prefix), default_certificate=str(nginx.default_certificate),
                       http_port=free_port(), https_port=free_port(), bind_address="127.0.0.1",
                       status_socket=str(nginx.status_socket))  # fmt: skip
    services = [service(f"s{i}") for i in range(n)]
    slices = [endpoint_slice(f"s{i}", [f"10.42.{i // 250}.{i % 250 + 1}"]) for i in range(n)]

    def objects(gen: int) -> list[JSON]:
        return [ingress(f"i{i}", rule(f"h{i}.example.com", path(f"/v{gen}", f"s{i}")))
                for i in range(n)]  # fmt: skip

    rendered = render(objects(0), services, slices, [], cfg)
    await nginx.apply(rendered)
    render_times: list[float] = []
    reload_times: list[float] = []
    try:
        for gen in range(1, 6):
            t = time.perf_counter()
            rendered = render(objects(gen), services, slices, [], cfg)
            render_times.append(time.perf_counter() - t)
            await nginx.apply(rendered)
            reload_times.append(time.perf_counter() - t)
    finally:
        await nginx.stop()
    size = f"{n:,} Ingress rules ({len(rendered.config) // 1024} KiB)"
    return [
        Row(f"render only, {size}", 1, 5, sum(render_times), render_times),
        Row(f"render + nginx -t + reload until live, {size}", 1, 5, sum(reload_times),
            reload_times),
    ]  # fmt: skip


def clean_up(base: Path) -> None:
    subprocess.run(["pkill", "-9", "-f", f"containerd-shim.*{base}"], check=False)
    subprocess.run(["ip", "link", "delete", BRIDGE], capture_output=True, check=False)
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(f"{base}/")), reverse=True):
        subprocess.run(["umount", "-l", mount], check=False)
    shutil.rmtree(base, ignore_errors=True)


async def main(requests: int, clients: int) -> None:
    base = Path(tempfile.mkdtemp(prefix="pyk8s-bench-ingress-", dir="/tmp"))
    server = Server(base / "data", free_port(), command="server",
                    extra_args=("--disable-agent",)).start()  # fmt: skip
    kubeconfig = str(server.kubeconfig)
    kubectl = Kubectl(server.kubeconfig)
    http_port, https_port = free_port(), free_port()
    procs = [
        Proc("kubelet", ["kubelet", "--kubeconfig", kubeconfig, "--data-dir", str(base / "agent"),
                         "--node-name", NODE, "--node-ip", "127.0.0.1",
                         "--pod-cidr", "10.88.252.0/24", "--cni-bridge", BRIDGE,
                         "--log-root", str(base / "pods"), "--healthz-port", str(free_port()),
                         "--address", "127.0.0.1", "--port", str(free_port())],
             base / "kubelet.log"),
        Proc("ingress-controller",
             ["ingress-controller", "--kubeconfig", kubeconfig, "--data-dir", str(base),
              "--http-port", str(http_port), "--https-port", str(https_port),
              "--bind-address", "127.0.0.1", "--healthz-port", str(free_port()),
              "--node-ip", "127.0.0.1"],
             base / "ingress-controller.log"),
    ]  # fmt: skip
    rows: list[Row] = []
    try:
        kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                      "items": httpd("web")}))  # fmt: skip
        kubectl("wait", "--for=condition=Ready", "pod/web", "--timeout=120s", timeout=130)
        pod_ip = kubectl.json("get", "pod", "web")["status"]["podIP"]
        for _ in range(600):  # the EndpointSlice controller publishes it
            selector = "kubernetes.io/service-name=web"
            slices = kubectl.json("get", "endpointslices", "-l", selector)["items"]
            if any(pod_ip in e["addresses"] for s in slices for e in s.get("endpoints") or []):
                break
            await asyncio.sleep(0.1)
        await apply_to_200(kubectl, http_port, "bench")
        rows.append(await load("GET straight to the pod IP", pod_ip, 8080, "x", requests, clients))
        rows.append(await load("GET through the Ingress (nginx)", "127.0.0.1", http_port,
                               "bench-0.example.com", requests, clients))  # fmt: skip
        latencies = [await apply_to_200(kubectl, http_port, f"fresh{i}") for i in range(5)]
        rows.append(Row("kubectl apply → first 200, 6 Ingresses served", 1, 5, sum(latencies),
                        latencies))  # fmt: skip
        kubectl("apply", "-f", "-", input=ingress_list(range(1000), "many"), timeout=300)
        await apply_to_200(kubectl, http_port, "many-999")  # the 1,000th is live
        latencies = [await apply_to_200(kubectl, http_port, f"more{i}") for i in range(5)]
        rows.append(Row("kubectl apply → first 200, 1,006 Ingresses served", 1, 5,
                        sum(latencies), latencies))  # fmt: skip
        rows += await reload_rows(base, 1)
        rows += await reload_rows(base, 1000)
    except Exception:
        print(kubectl.run("get", "endpointslices,pods,svc", "-o", "wide", check=False).stdout)
        for proc in procs:
            print(f"--- {proc.name}\n{proc.log_tail()}", file=sys.stderr)
        raise
    finally:
        for proc in reversed(procs):
            proc.stop()
        server.stop()
        await asyncio.to_thread(clean_up, base)
    direct, through = rows[0], rows[1]
    loadavg = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n### Ingress: {requests:,} requests per row, {clients} clients, "
          f"{os.cpu_count()} CPUs, load average {loadavg}\n")  # fmt: skip
    print(table(rows))
    print(f"\nthrough the Ingress: {through.rate / direct.rate:.0%} of direct throughput")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=4000)
    p.add_argument("--clients", type=int, default=16)
    a = p.parse_args()
    asyncio.run(main(a.requests, a.clients))
