"""Client CPU per request of pyk8s's REST client: the cost every sim-nodes Lease renewal,
scheduler binding and Event pays on the client side (issue 21).

One API server of this tree; then, for this tree and (``--baseline REV``) git revision
REV's ``src/``, a child process per round with a :class:`pyk8s.client.Client` of that
code renews ``--leases`` node Leases (a PUT each, 50 at once, as sim-nodes does) and
creates as many Events (a POST each, as the scheduler's recorder does). Rounds alternate
between the two codes (ABAB...) so a load change on a shared machine hits both. Printed
per round: the child's CPU (``time.process_time``) per request and the API server's CPU
per request over the same span (from ``/proc``): a client that sends different bytes
would show there too.

Usage: python3 bench/scale/clientreq.py [--leases 1000] [--rounds 3] [--baseline REV]
This is a measurement, never a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench._cluster import Server, cpu_seconds, free_port, revision_src  # noqa: E402

CHILD = r"""
import asyncio, json, sys, time
from pyk8s.client import Client, load_config
from pyk8s.kubelet.node import renew_lease

async def main(kubeconfig: str, n: int, tag: str) -> None:
    async with Client(load_config(kubeconfig), qps=1e6, burst=10**6) as c:
        sem = asyncio.Semaphore(50)
        rvs = {f"{tag}-{i}": "" for i in range(n)}

        async def renew(name: str) -> None:
            async with sem:
                rvs[name] = await renew_lease(c, name, "", rvs[name])

        async def event(i: int) -> None:
            body = {"apiVersion": "v1", "kind": "Event",
                    "metadata": {"name": f"{tag}-{i}", "namespace": "default"},
                    "involvedObject": {"kind": "Pod", "name": f"p{i}", "namespace": "default"},
                    "reason": "Scheduled", "message": "bench", "type": "Normal"}
            async with sem:
                await c.create(("v1", "Event"), body)

        await asyncio.gather(*(renew(k) for k in rvs))  # the creates: not measured
        sys.stdout.write("ready\n"); sys.stdout.flush(); sys.stdin.readline()
        out = {}
        for what, jobs in (("lease PUT", lambda: [renew(k) for k in rvs]),
                           ("event POST", lambda: [event(i) for i in range(n)])):
            t = time.process_time()
            await asyncio.gather(*jobs())
            out[what] = (time.process_time() - t) / n
            sys.stdout.write("step\n"); sys.stdout.flush(); sys.stdin.readline()
        sys.stdout.write(json.dumps(out) + "\n"); sys.stdout.flush()

asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
"""


def one_round(server: Server, src: Path | None, n: int, tag: str) -> dict[str, tuple[float, float]]:
    """One child's client CPU per request and the server's over the same spans."""
    env = {**os.environ, "PYTHONPATH": str(src if src is not None else ROOT / "src")}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(server.kubeconfig), str(n), tag],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdin is not None and child.stdout is not None and server.proc is not None
    pid = server.proc.pid
    server_per: list[float] = []
    assert child.stdout.readline().strip() == "ready"
    for _ in range(2):
        before = cpu_seconds(pid) or 0.0
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "step"
        server_per.append(((cpu_seconds(pid) or 0.0) - before) / n)
    child.stdin.write("\n")
    child.stdin.flush()
    client = json.loads(child.stdout.readline())
    child.wait()
    return {what: (client[what], server_per[i]) for i, what in enumerate(client)}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--leases", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline", default="")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pyk8s-bench-clientreq-") as tmp:
        trees: dict[str, Path | None] = {}
        if args.baseline:
            trees[args.baseline] = revision_src(args.baseline, Path(tmp) / "rev")
        trees["this tree"] = None
        server = Server(Path(tmp) / "data", free_port())
        server.start()
        results: dict[str, list[dict[str, tuple[float, float]]]] = {t: [] for t in trees}
        try:
            for r in range(args.rounds):
                for label, src in trees.items():
                    results[label].append(one_round(server, src, args.leases, f"r{r}{label[:4]}"))
        finally:
            server.stop()
        print(
            "| code | request | client CPU us per request (rounds) | median | API server CPU us |"
        )
        print("|---|---|---|---:|---:|")
        for label, rounds in results.items():
            for what in rounds[0]:
                client = [1e6 * x[what][0] for x in rounds]
                srv = sorted(1e6 * x[what][1] for x in rounds)
                cells = ", ".join(f"{c:.0f}" for c in client)
                print(
                    f"| {label} | {what} | {cells} | {sorted(client)[len(client) // 2]:.0f} "
                    f"| {srv[len(srv) // 2]:.0f} |"
                )
        print(f"\n(load average {os.getloadavg()[0]:.1f}, {time.strftime('%H:%M:%S')})")


if __name__ == "__main__":
    main()
