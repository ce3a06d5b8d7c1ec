"""The web dashboard with 1,000 pods (issue 22): time to first render, update latency
after a pod changes (goal ≤1 s), and the API server's CPU while 10 dashboards are open.

A real ``pyk8s apiserver`` (SQLite) with 1,000 pods in one namespace; Debian's headless
Chromium through Selenium signs in with a ServiceAccount token. First render: from asking
for the page to the pods table holding every pod. Update latency: from a pod status
PATCH to its row showing the new status (a MutationObserver in the page stamps the
moment; the browser and this script share the clock). CPU: the server process's CPU time
over a window in which one pod changes every 0.1 s, with no dashboard open (the same-run
baseline) and with 10 open.

Usage: python3 bench/dashboard/run.py [--pods 1000] [--updates 30]
This is a measurement, never a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench._cluster import Api, Server, free_port  # noqa: E402
from bench._table import Row, table  # noqa: E402

NS = "bench"
WINDOW = 15.0


#: stamps (Date.now()) the moment the row of pod arguments[0] shows status arguments[1]
WATCH_ROW = """
window.rowSeenAt = null;
const [key, phase] = arguments;
const body = document.querySelector("#pods tbody");
const seen = new MutationObserver(() => {
  const row = body.querySelector(`tr[data-key="${key}"]`);
  if (row && row.cells[2].textContent === phase && window.rowSeenAt === null) {
    window.rowSeenAt = Date.now();
    seen.disconnect();
  }
});
seen.observe(body, {childList: true, subtree: true, characterData: true});
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def browser(profile: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = "/usr/bin/chromium"
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--ignore-certificate-errors",
        "--window-size=1400,1000",
        f"--user-data-dir={profile}",
    ):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def rows_with(driver: Any, text: str = "") -> int:
    n: int = driver.execute_script(
        "return Array.from(document.querySelectorAll('#pods tbody tr'))"
        ".filter(r => !arguments[0] || r.cells[2].textContent === arguments[0]).length",
        text,
    )
    return n


def wait_for(check: Any, within: float = 120.0) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < within:
        if check():
            return time.perf_counter() - start
        time.sleep(0.01)
    raise TimeoutError("not seen")


async def setup(api: Api, pods: int) -> str:
    await api.namespace(NS)
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "dash"}}
    await api.request("POST", f"/api/v1/namespaces/{NS}/serviceaccounts", json.dumps(sa).encode())
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "bench-dash"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "cluster-admin",
        },
        "subjects": [{"kind": "ServiceAccount", "name": "dash", "namespace": NS}],
    }
    await api.request(
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        json.dumps(binding).encode(),
    )
    sem = asyncio.Semaphore(20)

    async def make(i: int) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"p-{i:04d}"},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox:1.36"}]},
        }
        async with sem:
            await api.request("POST", f"/api/v1/namespaces/{NS}/pods", json.dumps(body).encode())

    await asyncio.gather(*(make(i) for i in range(pods)))
    req = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
    out = await api.request(
        "POST", f"/api/v1/namespaces/{NS}/serviceaccounts/dash/token", json.dumps(req).encode()
    )
    return str(out["status"]["token"])


async def set_phase(api: Api, i: int, phase: str) -> None:
    body = json.dumps({"status": {"phase": phase}}).encode()
    async with api.session.patch(
        f"{api.base}/api/v1/namespaces/{NS}/pods/p-{i:04d}/status",
        data=body,
        headers={"Content-Type": "application/merge-patch+json"},
    ) as r:
        await r.read()
        if r.status >= 300:
            raise RuntimeError(f"patch: {r.status}")


async def churn(api: Api, seconds: float, pods: int) -> None:
    """One pod changes every 0.1 s for ``seconds``."""
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        await set_phase(api, i % pods, "Running" if (i // pods) % 2 == 0 else "Pending")
        i += 1
        await asyncio.sleep(0.1)


async def main(pods: int, updates: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        base = Path(tmp)
        server = Server(base / "data", free_port()).start()
        api = Api(server)
        driver = None
        try:
            token = await setup(api, pods)
            assert server.proc is not None
            pid = server.proc.pid
            page = f"{server.url}/dashboard/"

            before = cpu_seconds(pid)
            await churn(api, WINDOW, pods)
            idle_cpu = (cpu_seconds(pid) - before) / WINDOW

            driver = browser(base / "chromium")
            driver.get(f"{page}?token={token}")
            renders = []
            for _ in range(3):
                t = time.perf_counter()
                driver.get(f"{page}?namespace={NS}")
                wait_for(lambda: rows_with(driver) == pods)
                renders.append(time.perf_counter() - t)
            latencies = []
            for k in range(updates):
                phase = "Succeeded" if k % 2 == 0 else "Failed"
                driver.execute_script(WATCH_ROW, f"{NS}/p-{k:04d}", phase)
                t = time.time()
                await set_phase(api, k, phase)
                wait_for(lambda: driver.execute_script("return window.rowSeenAt"))
                latencies.append(driver.execute_script("return window.rowSeenAt") / 1000 - t)

            for _ in range(9):
                driver.switch_to.new_window("tab")
                driver.get(f"{page}?namespace={NS}")
                wait_for(lambda: rows_with(driver) == pods)
            before = cpu_seconds(pid)
            await churn(api, WINDOW, pods)
            open_cpu = (cpu_seconds(pid) - before) / WINDOW
        finally:
            if driver is not None:
                driver.quit()
            await api.close()
            server.stop()

    rows = [
        Row(f"first render, {pods} pods", 1, len(renders), sum(renders), renders),
        Row("pod change to its row updated", 1, len(latencies), sum(latencies), latencies),
    ]
    print(f"## dashboard, {pods} pods in one namespace\n")
    print(table(rows))
    print(f"\n| API server CPU while one pod changes every 0.1 s ({WINDOW:.0f} s) | cores |")
    print("|---|---:|")
    print(f"| no dashboard open (baseline) | {idle_cpu:.3f} |")
    print(f"| 10 dashboards open | {open_cpu:.3f} |")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods", type=int, default=1000)
    ap.add_argument("--updates", type=int, default=30)
    a = ap.parse_args()
    asyncio.run(main(a.pods, a.updates))
