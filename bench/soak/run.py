"""Soak benchmark: a steady mixed load for N minutes, and whether any process grows.

It starts its own ``pyk8s server`` (a temp data dir, free ports, everything on loopback)
and drives it for ``--minutes`` (default 30) with

* 20 writers, each cycling 50 ConfigMaps of its own namespace through create → patch →
  delete (so the store holds a bounded number of objects) at ``--write-rate`` writes/s,
  and listing its namespace every 50 writes;
* 100 watchers, five on each writer's namespace; every event's lag is the time from its
  write being sent to the event's arrival (the write's own latency included);
* a pod churn of ``--churn-rate`` pods/s (default 5), each deleted ``--pod-lifetime``
  seconds after its create: on real containers when this host can run them (root,
  containerd, runc, busybox-static, CNI plugins: the server's own kubelet with a private
  containerd, bridge and pod CIDR), or with ``--sim`` on ``pyk8s server --disable-agent``
  plus ``pyk8s sim-nodes``.

The clients are the project's async client (``pyk8s.client``, the one the components
use): 120 streams as asyncio tasks in one process, where the official Python client would
need a thread per watch, and 100 threads contending for one GIL would put the measuring
process's own delays into the lag. Its retries and rate limit are off, so a 429 or a
failure counts as an error and every latency is one request's.

Every minute it prints one row: writes/s, watch events/s, watch lag p50/p99, pods
created/s and Running, API p99 per verb, errors, and the resident memory (VmRSS, the mean
of the minute's six samples) of every process of the server, found by walking its process
tree (the API server, its zygote and the components it forks, containerd), plus sim-nodes.
At the end: the tables over time and each process's growth from minute 5 to the end (goal:
<= 10 %).

Usage: python3 bench/soak/run.py [--minutes 30] [--sim] [--write-rate 5] [--churn-rate 5]
Everything it starts (processes, pods, the data dir; for real pods also their containers,
bridge and NAT rules) is removed on exit, on Ctrl-C too. A measurement, never a test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench._cluster import (  # noqa: E402
    Proc,
    Server,
    free_port,
    process_argv,
    process_tree,
    pyk8s_component,
    rss_mib,
    start_sim_nodes,
)

from pyk8s.client import ApiError, Client, ClientError, load_kubeconfig  # noqa: E402

Obj = dict[str, Any]
WRITERS = 20
WATCHERS = 100
SLOTS = 50  # ConfigMaps per writer
WARM_UP_MINUTE = 5
RSS_EVERY = 10.0  # seconds between RSS samples
VERBS = ("create cm", "patch cm", "delete cm", "list cm", "create pod", "delete pod")
CHURN_NS = "soak-churn"
IMAGE = "pyk8s.local/busybox:1.35"
CONFIGMAPS = ("v1", "ConfigMap")
PODS = ("v1", "Pod")
NAMESPACES = ("v1", "Namespace")
SERVICEACCOUNTS = ("v1", "ServiceAccount")
NODES = ("v1", "Node")


# ------------------------------------------------------------------------------ stats


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile in milliseconds (NaN when there are none)."""
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] * 1000


@dataclass
class Window:
    """What one minute measured."""

    writes: int = 0
    events: int = 0
    lags: list[float] = field(default_factory=list)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: int = 0
    pods_created: int = 0
    startups: list[float] = field(default_factory=list)


@dataclass
class MinuteRow:
    minute: int
    seconds: float
    window: Window
    pods_running: int
    rss: dict[str, float]


@dataclass
class Soak:
    """Shared state of the load: the current window, and when each write was sent."""

    deadline: float
    window: Window = field(default_factory=Window)
    #: a create/patch's op id (stamped into the ConfigMap) → when it was sent
    sent: dict[str, float] = field(default_factory=dict)
    #: (namespace, name) → when its delete was sent
    deletes_sent: dict[tuple[str, str], float] = field(default_factory=dict)
    #: pod name → when its create was sent; pods seen Running
    pods_sent: dict[str, float] = field(default_factory=dict)
    running: set[str] = field(default_factory=set)
    first_error: str = ""

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def error(self, err: BaseException) -> None:
        self.window.errors += 1
        if not self.first_error:
            self.first_error = f"{type(err).__name__}: {err}"[:300]

    async def timed(self, verb: str, call: Any) -> Any:
        t = time.perf_counter()
        try:
            result = await call
        except ClientError as err:
            self.error(err)
            return None
        self.window.latencies[verb].append(time.perf_counter() - t)
        return result

    def prune(self, older_than: float = 120.0) -> None:
        """Forget sends no watcher will report any more (bounded memory here too)."""
        cut = time.perf_counter() - older_than
        self.sent = {k: t for k, t in self.sent.items() if t >= cut}
        self.deletes_sent = {k: t for k, t in self.deletes_sent.items() if t >= cut}
        self.pods_sent = {k: t for k, t in self.pods_sent.items() if t >= cut}


# ------------------------------------------------------------------------------ load


async def writer(soak: Soak, client: Client, index: int, rate: float) -> None:
    """Cycle SLOTS ConfigMaps through create → patch → delete at ``rate`` writes/s."""
    ns = f"soak-w{index:02}"
    interval = 1.0 / rate
    due = time.monotonic()
    for step in itertools.count():
        if soak.left() <= 0:
            return
        slot, round_ = step % SLOTS, step // SLOTS
        name = f"cm-{slot:02}"
        op = f"{index}-{step}"
        phase = round_ % 3
        if phase == 0:
            body = {"metadata": {"name": name}, "data": {"op": op, "pad": "x" * 512}}
            soak.sent[op] = time.perf_counter()
            await soak.timed("create cm", client.create(CONFIGMAPS, body, ns))
        elif phase == 1:
            soak.sent[op] = time.perf_counter()
            patch = {"data": {"op": op}}
            await soak.timed(
                "patch cm", client.patch(CONFIGMAPS, name, patch, ns, patch_type="merge")
            )
        else:
            soak.deletes_sent[(ns, name)] = time.perf_counter()
            await soak.timed("delete cm", client.delete(CONFIGMAPS, name, ns))
        soak.window.writes += 1
        if step % SLOTS == SLOTS - 1:
            await soak.timed("list cm", client.list(CONFIGMAPS, ns))
        due = max(due + interval, time.monotonic())
        await asyncio.sleep(max(0.0, due - time.monotonic()))


async def watcher(soak: Soak, client: Client, ns: str) -> None:
    """Watch ``ns``'s ConfigMaps until the end, resuming from the last resourceVersion
    (relisting on 410); record each event's lag."""
    rv: str | None = None
    while soak.left() > 0:
        try:
            if rv is None:
                rv = (await client.list(CONFIGMAPS, ns))["metadata"]["resourceVersion"]
            timeout = max(1, min(300, int(soak.left())))
            async for etype, obj in client.watch(
                CONFIGMAPS, ns, resource_version=rv, timeout_seconds=timeout
            ):
                t = time.perf_counter()
                rv = obj["metadata"]["resourceVersion"]
                if etype == "DELETED":
                    sent = soak.deletes_sent.get((ns, obj["metadata"]["name"]))
                else:
                    sent = soak.sent.get((obj.get("data") or {}).get("op", ""))
                soak.window.events += 1
                if sent is not None:
                    soak.window.lags.append(t - sent)
        except ApiError as err:
            if err.status != 410:
                soak.error(err)
                await asyncio.sleep(1)
            rv = None  # 410 Gone: relist
        except ClientError as err:
            soak.error(err)
            await asyncio.sleep(1)


def pod(name: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "soak"}},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": IMAGE,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", "3600"],
                    "resources": {"requests": {"cpu": "1m", "memory": "8Mi"}},
                }
            ],
            "terminationGracePeriodSeconds": 1,
            "automountServiceAccountToken": False,
        },
    }


async def churn(soak: Soak, client: Client, rate: float, lifetime: float) -> None:
    """Create ``rate`` pods/s; delete each ``lifetime`` seconds after its create."""
    interval = 1.0 / rate
    deletions: set[asyncio.Task[None]] = set()

    async def delete_later(name: str) -> None:
        await asyncio.sleep(lifetime)
        await soak.timed("delete pod", client.delete(PODS, name, CHURN_NS))

    due = time.monotonic()
    try:
        for i in itertools.count():
            if soak.left() <= 0:
                break
            name = f"churn-{i:06}"
            soak.pods_sent[name] = time.perf_counter()
            if await soak.timed("create pod", client.create(PODS, pod(name), CHURN_NS)):
                soak.window.pods_created += 1
                task = asyncio.create_task(delete_later(name))
                deletions.add(task)
                task.add_done_callback(deletions.discard)
            due = max(due + interval, time.monotonic())
            await asyncio.sleep(max(0.0, due - time.monotonic()))
    finally:
        for task in deletions:
            task.cancel()


async def pod_watcher(soak: Soak, client: Client) -> None:
    """Follow the churn pods: which are Running, and how long each took to get there."""
    rv: str | None = None
    while soak.left() > 0:
        try:
            if rv is None:
                listed = await client.list(PODS, CHURN_NS)
                rv = listed["metadata"]["resourceVersion"]
                soak.running = {
                    p["metadata"]["name"]
                    for p in listed["items"]
                    if (p.get("status") or {}).get("phase") == "Running"
                }
            timeout = max(1, min(300, int(soak.left())))
            async for etype, obj in client.watch(
                PODS, CHURN_NS, resource_version=rv, timeout_seconds=timeout
            ):
                t = time.perf_counter()
                rv = obj["metadata"]["resourceVersion"]
                name = obj["metadata"]["name"]
                phase = (obj.get("status") or {}).get("phase")
                if etype != "DELETED" and phase == "Running":
                    if name not in soak.running:
                        soak.running.add(name)
                        sent = soak.pods_sent.pop(name, None)
                        if sent is not None:
                            soak.window.startups.append(t - sent)
                else:
                    soak.running.discard(name)
        except ApiError as err:
            if err.status != 410:
                soak.error(err)
                await asyncio.sleep(1)
            rv = None
        except ClientError as err:
            soak.error(err)
            await asyncio.sleep(1)


# ------------------------------------------------------------------------------ processes


def process_name(pid: int) -> str:
    """``pyk8s <component>`` → the component, containerd → itself; '' for the short-lived
    helpers (CNI plugins, runc, iptables-restore), whose memory is not the server's."""
    argv = process_argv(pid)
    if name := pyk8s_component(argv):
        return "apiserver" if name == "server" else name
    return "containerd" if argv and Path(argv[0]).name == "containerd" else ""


def rss_by_process(roots: dict[str, int]) -> dict[str, float]:
    """VmRSS (MiB) of every process under each root, by name (repeats numbered)."""
    out: dict[str, float] = {}
    for root in roots.values():
        for pid in process_tree(root):
            name, mib = process_name(pid), rss_mib(pid)
            if not name or mib is None:
                continue
            key, n = name, 2
            while key in out:
                key, n = f"{name}#{n}", n + 1
            out[key] = mib
    return out


@dataclass
class RealNode:
    """The ``pyk8s server`` kubelet's private bits on this host, to remove afterwards."""

    data_dir: Path
    bridge: str = field(default_factory=lambda: f"pk{uuid.uuid4().hex[:8]}")
    pod_cidr: str = field(default_factory=lambda: f"10.88.{100 + uuid.uuid4().int % 50}.0/24")

    def server_args(self, base: Path) -> list[str]:
        return [
            "--node-name", f"soak-{self.bridge[2:]}",
            "--node-ip", "127.0.0.1",
            f"--kubelet-arg=cni-bridge={self.bridge}",
            f"--kubelet-arg=pod-cidr={self.pod_cidr}",
            f"--kubelet-arg=log-root={base / 'pods'}",
            "--kubelet-arg=healthz-bind-address=127.0.0.1",
            f"--kubelet-arg=healthz-port={free_port()}",
            "--kubelet-arg=address=127.0.0.1",
            f"--kubelet-arg=port={free_port()}",
            f"--kube-proxy-arg=healthz-bind-address=127.0.0.1:{free_port()}",
            f"--dns-arg=port={free_port()}",
            f"--dns-arg=health-port={free_port()}",
        ]  # fmt: skip

    def clean_up(self) -> None:
        """Containers, mounts, CNI NAT rules, the bridge and kube-proxy's rules."""
        from tests.kubelet.runtime_fixtures import _reap_leftovers, remove_cni_nat

        from pyk8s.kubelet.runtimes import ContainerdConfig

        agent = self.data_dir / "agent"
        _reap_leftovers(agent, ContainerdConfig(agent).socket)
        remove_cni_nat(self.pod_cidr)
        subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True, timeout=10)
        subprocess.run(
            [sys.executable, "-m", "pyk8s", "proxy", "--cleanup"], capture_output=True, timeout=60
        )


def real_containers_missing() -> str:
    """Why this host cannot run the soak's pods on real containers ('' when it can)."""
    from pyk8s.kubelet import images
    from pyk8s.kubelet.runtimes import ContainerdConfig

    if os.geteuid() != 0:
        return "not root"
    for binary in ("containerd", "runc", "iptables", "ip"):
        if shutil.which(binary) is None:
            return f"{binary} is not installed"
    if not images.BUSYBOX_BINARY.exists():
        return "busybox-static is not installed"
    if not (ContainerdConfig(Path("/")).cni_bin_dir / "bridge").exists():
        return "the CNI plugins are not installed"
    return ""


# ------------------------------------------------------------------------------ tables


def fmt(ms: float) -> str:
    return "-" if ms != ms else f"{ms:,.0f}"


def load_header() -> str:
    verbs = " | ".join(f"p99 {v} ms" for v in VERBS)
    return (
        "| min | writes/s | events/s | lag p50 ms | lag p99 ms | pods/s | Running | "
        f"startup p99 ms | {verbs} | errors |\n" + "|---:" * (9 + len(VERBS)) + "|"
    )


def load_row(r: MinuteRow) -> str:
    w, s = r.window, r.seconds or 1.0
    verbs = " | ".join(fmt(pct(w.latencies.get(v, []), 0.99)) for v in VERBS)
    return (
        f"| {r.minute} | {w.writes / s:,.1f} | {w.events / s:,.0f} | {fmt(pct(w.lags, 0.5))} | "
        f"{fmt(pct(w.lags, 0.99))} | {w.pods_created / s:.1f} | {r.pods_running} | "
        f"{fmt(pct(w.startups, 0.99))} | {verbs} | {w.errors} |"
    )


def rss_table(rows: list[MinuteRow], names: list[str]) -> str:
    out = [
        "| min | " + " | ".join(names) + " | total |",
        "|---:" * (len(names) + 2) + "|",
    ]
    for r in rows:
        cells = " | ".join(f"{r.rss[n]:,.0f}" if n in r.rss else "-" for n in names)
        out.append(f"| {r.minute} | {cells} | {sum(r.rss.values()):,.0f} |")
    return "\n".join(out)


def growth_table(first: MinuteRow, last: MinuteRow, names: list[str]) -> str:
    out = [
        f"| process | RSS min {first.minute} MiB | RSS min {last.minute} MiB | growth | <= 10 % |",
        "|---|---:|---:|---:|---|",
    ]
    for name in [*names, "total"]:
        if name == "total":
            a, b = sum(first.rss.values()), sum(last.rss.values())
        elif name in first.rss and name in last.rss:
            a, b = first.rss[name], last.rss[name]
        else:
            continue
        grew = (b - a) / a * 100 if a else 0.0
        verdict = "yes" if grew <= 10 else "NO"
        out.append(f"| {name} | {a:,.1f} | {b:,.1f} | {grew:+.1f} % | {verdict} |")
    return "\n".join(out)


# ------------------------------------------------------------------------------ main


async def wait_for_default_sa(client: Client, ns: str, within: float = 60) -> None:
    """Pods of ``ns`` are admitted once its ``default`` ServiceAccount exists."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            await client.get(SERVICEACCOUNTS, "default", ns)
            return
        except ApiError:
            await asyncio.sleep(0.5)
    raise TimeoutError(f"no default ServiceAccount in {ns} after {within:.0f} s")


async def wait_for_node(client: Client, within: float = 120) -> None:
    """The churn starts once a node is Ready."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for node in (await client.list(NODES))["items"]:
            for c in (node.get("status") or {}).get("conditions") or []:
                if c.get("type") == "Ready" and c.get("status") == "True":
                    return
        await asyncio.sleep(1)
    raise TimeoutError(f"no node Ready after {within:.0f} s")


async def soak(args: argparse.Namespace, kubeconfig: Path, roots: dict[str, int]) -> None:
    config = load_kubeconfig(str(kubeconfig))
    limits: dict[str, Any] = {"qps": 1e9, "burst": 10**9, "max_retries": 0, "timeout": 60}
    async with (
        Client(config, connection_limit=WRITERS + 20, **limits) as writes,
        Client(config, connection_limit=WATCHERS + 10, **limits) as watches,
    ):
        for ns in [*(f"soak-w{i:02}" for i in range(WRITERS)), CHURN_NS]:
            body = {"metadata": {"name": ns}}
            with contextlib.suppress(ApiError):
                await writes.create(NAMESPACES, body)
        await wait_for_default_sa(writes, CHURN_NS)
        await wait_for_node(writes)

        start = time.monotonic()
        state = Soak(deadline=start + args.minutes * 60)
        rows: list[MinuteRow] = []
        names: list[str] = []
        tasks = [
            *(asyncio.create_task(watcher(state, watches, f"soak-w{i % WRITERS:02}"))
              for i in range(WATCHERS)),
            asyncio.create_task(pod_watcher(state, watches)),
            *(asyncio.create_task(writer(state, writes, i, args.write_rate))
              for i in range(WRITERS)),
            asyncio.create_task(churn(state, writes, args.churn_rate, args.pod_lifetime)),
        ]  # fmt: skip
        print(f"load: {WRITERS} writers x {args.write_rate:g}/s, {WATCHERS} watchers, "
              f"{args.churn_rate:g} pods/s for {args.pod_lifetime:g} s each, "
              f"{args.minutes} min", flush=True)  # fmt: skip
        try:
            window_start = time.perf_counter()
            for minute in range(1, args.minutes + 1):
                samples: dict[str, list[float]] = defaultdict(list)
                for _ in range(int(60 / RSS_EVERY)):
                    await asyncio.sleep(max(0.0, min(RSS_EVERY, state.left())))
                    for name, mib in rss_by_process(roots).items():
                        samples[name].append(mib)
                # a minute's RSS is the mean of its samples: one sample swings with the
                # pods alive at that instant (containerd's shims, the kubelet's workers)
                rss = {name: sum(v) / len(v) for name, v in samples.items()}
                now = time.perf_counter()
                window, state.window = state.window, Window()
                row = MinuteRow(minute, now - window_start, window, len(state.running), rss)
                window_start = now
                state.prune()
                if not names:
                    names = list(rss)
                    print(load_header(), flush=True)
                names += [n for n in rss if n not in names]
                rows.append(row)
                mem = ", ".join(f"{n} {m:,.0f}" for n, m in rss.items())
                print(f"{load_row(row)}  RSS MiB: {mem}", flush=True)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await remove_churn_pods(writes, args.sim)
        if state.first_error:
            print(f"\nfirst error: {state.first_error}")
        print_summary(rows, names)


async def remove_churn_pods(client: Client, sim: bool, within: float = 90) -> None:
    """Delete every churn pod and, on real containers, wait until the kubelet is done."""
    with contextlib.suppress(ClientError):
        await client.delete_collection(PODS, CHURN_NS, grace_period_seconds=0 if sim else 1)
    deadline = time.monotonic() + within
    while not sim and time.monotonic() < deadline:
        with contextlib.suppress(ClientError):
            if not (await client.list(PODS, CHURN_NS))["items"]:
                return
        await asyncio.sleep(1)


def print_summary(rows: list[MinuteRow], names: list[str]) -> None:
    if not rows:
        return
    print("\n## Load over time\n")
    print(load_header())
    print("\n".join(load_row(r) for r in rows))
    print("\n## RSS MiB over time\n")
    print(rss_table(rows, names))
    first = rows[min(WARM_UP_MINUTE, max(1, len(rows) - 1)) - 1]
    if len(rows) <= WARM_UP_MINUTE:
        print(f"\n(shorter than {WARM_UP_MINUTE + 1} minutes: growth is from minute "
              f"{first.minute}, inside the warm-up)")  # fmt: skip
    print(f"\n## RSS growth, minute {first.minute} to the end\n")
    print(growth_table(first, rows[-1], names))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--minutes", type=int, default=30)
    p.add_argument("--sim", action="store_true", help="simulated nodes instead of real pods")
    p.add_argument("--write-rate", type=float, default=5.0, help="writes/s of each writer")
    p.add_argument("--churn-rate", type=float, default=5.0, help="pods created per second")
    p.add_argument("--pod-lifetime", type=float, default=10.0, help="seconds each pod lives")
    p.add_argument("--keep", action="store_true", help="keep the data dir and logs")
    args = p.parse_args()
    if args.minutes < 1:
        p.error("--minutes must be at least 1")
    if not args.sim and (why := real_containers_missing()):
        print(f"real containers: {why}; run with --sim for simulated nodes", file=sys.stderr)
        return 1

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    base = Path(tempfile.mkdtemp(prefix="pyk8s-soak-", dir="/tmp"))
    node = None if args.sim else RealNode(base / "data")
    extra = [
        f"--kube-controller-manager-arg=secure-port={free_port()}",
        f"--kube-scheduler-arg=secure-port={free_port()}",
        *(["--disable-agent"] if node is None else node.server_args(base)),
    ]
    server = Server(base / "data", free_port(), command="server", extra_args=tuple(extra))
    sim: Proc | None = None
    try:
        server.start(timeout=120)
        assert server.proc is not None
        roots = {"server": server.proc.pid}
        if args.sim:
            sim = start_sim_nodes(base, str(server.kubeconfig), nodes=2, per_node=500)
            roots["sim-nodes"] = sim.pid
        print(f"pyk8s server on {server.url} ({'sim-nodes' if args.sim else 'real pods'}), "
              f"logs in {base}", flush=True)  # fmt: skip
        asyncio.run(soak(args, server.kubeconfig, roots))
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip this
        if sim is not None:
            sim.stop()
        server.stop()
        if node is not None:
            node.clean_up()
        if args.keep:
            print(f"kept {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
