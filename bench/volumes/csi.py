"""Claim create → pod Running on a real node: CSI (csi-hostpath) next to local-path and a
pod without a volume, all in one run (issue 16).

A ``pyk8s apiserver``, ``pyk8s kubelet`` on its own containerd (with the node's local-path
provisioner inside), the controller manager (PV binder, protection, attach/detach),
the scheduler and ``pyk8s csi-hostpath`` for the node, as processes. Rows, each N pods one
after another (claim and pod created together, WaitForFirstConsumer classes):

* baseline: a pod without volumes, create → Running;
* a pod with a local-path claim (the scheduler selects the node, the provisioner makes
  the directory and PV, the binder binds, the kubelet mounts a hostPath);
* a pod with a csi-hostpath claim (CreateVolume, PV, bind, VolumeAttachment and
  ControllerPublishVolume, NodeStage and NodePublish over gRPC).

Each row starts once the one before is cleaned up (pods, claims and volumes gone).
A second table says where the time goes: for each row, the median time from the create
to each step of the chain, as this process's watches on pods, claims, volumes and
VolumeAttachments first saw it (the scheduler's ``selected-node``, the PV controller's
``storage-provisioner``, the provisioner's PV, the binder's writes, the pod's binding,
the attachment, Running), and the kubelet's steps from its spans in the API server's span
store (first seen, volumes set up, sandbox ready). A third table is the driver's side of
each CSI call (from its log).

    python3 bench/volumes/csi.py [--pods 5] [--logs DIR]   (root: containerd, bind mounts)
    python3 bench/volumes/csi.py --pods 30 --baseline REV [--rounds 2]   (REV's code, then
        this tree's, each a whole run in its own process; a table of both)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench._cluster import cpu_seconds, revision_src  # noqa: E402
from bench._table import Row, table, timed  # noqa: E402
from tests.integration.conftest import Server, free_port  # noqa: E402
from tests.kubelet.node_fixtures import Node  # noqa: E402
from tests.kubelet.runtime_fixtures import _reap_leftovers, remove_cni_nat  # noqa: E402
from tests.kubelet.test_kubelet_e2e import container  # noqa: E402

from pyk8s.api.registry import REGISTRY  # noqa: E402
from pyk8s.client import Client, ClientError, load_config  # noqa: E402

PODS = REGISTRY.get("", "v1", "pods")
PVCS = REGISTRY.get("", "v1", "persistentvolumeclaims")
CLASSES = REGISTRY.get("storage.k8s.io", "v1", "storageclasses")
PVS = REGISTRY.get("", "v1", "persistentvolumes")
ATTACHMENTS = REGISTRY.get("storage.k8s.io", "v1", "volumeattachments")
NS = "default"
SELECTED_NODE = "volume.kubernetes.io/selected-node"
PROVISIONER = "volume.kubernetes.io/storage-provisioner"
BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
TRACES = f"/debug/traces/namespaces/{NS}/pods"
#: the chain's steps in order (the second table's columns)
STEPS = (
    "scheduled", "claim selected-node", "claim storage-provisioner", "PV created",
    "PV Bound", "claim bind-completed", "claim Bound", "pod bound", "kubelet seen",
    "attached", "volumes set up", "sandbox ready", "pod Running",
)  # fmt: skip
#: the scheduler's and kubelet's spans (read from the API server's span store): span ->
#: (step, at its end?); ``scheduled`` is the end of the cycle that chose a node
SPANS = {
    "scheduler.schedule": ("scheduled", True),
    "kubelet.seen": ("kubelet seen", False),
    "kubelet.volumes": ("volumes set up", True),
    "kubelet.sandbox": ("sandbox ready", True),
}


def _pod_steps(pod: dict[str, Any]) -> list[str]:
    out = ["pod bound"] if (pod.get("spec") or {}).get("nodeName") else []
    return out + (["pod Running"] if (pod.get("status") or {}).get("phase") == "Running" else [])


def _claim_steps(claim: dict[str, Any]) -> list[str]:
    ann = claim["metadata"].get("annotations") or {}
    out = [s for s, a in (("claim selected-node", SELECTED_NODE),
                          ("claim storage-provisioner", PROVISIONER),
                          ("claim bind-completed", BIND_COMPLETED)) if a in ann]  # fmt: skip
    return out + (["claim Bound"] if (claim.get("status") or {}).get("phase") == "Bound" else [])


class Steps:
    """When this process's watches first saw each step of each claim's and pod's chain
    (they share a name in every row)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.seen: dict[str, dict[str, float]] = {}
        self.pv_claim: dict[str, str] = {}
        #: pods with a scheduling cycle that found no node
        self.retried: set[str] = set()
        self.tasks: list[asyncio.Task[None]] = []
        #: (name, step) -> set once the step is seen
        self.waiters: dict[tuple[str, str], asyncio.Event] = {}

    def _mark(self, name: str, steps: list[str], when: float | None = None) -> None:
        now = time.monotonic() if when is None else when
        for step in steps:
            self.seen.setdefault(name, {}).setdefault(step, now)
            if (name, step) in self.waiters:
                self.waiters[name, step].set()

    async def reached(self, name: str, step: str, within: float = 120.0) -> None:
        """Wait until the watches have seen ``step`` of ``name``."""
        if step in self.seen.get(name, {}):
            return
        event = self.waiters.setdefault((name, step), asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), within)
        except TimeoutError:
            raise TimeoutError(f"{name}: no {step} within {within} s") from None
        finally:
            self.waiters.pop((name, step), None)

    async def spans(self, names: list[str]) -> None:
        """The scheduler's and the kubelet's steps of each pod from its trace (span times
        are wall clock: turned into this process's monotonic clock)."""
        offset = time.monotonic() - time.time()
        for name in names:
            with contextlib.suppress(ClientError):
                trace = await self.client.request("GET", f"{TRACES}/{name}")
                for span in sorted(trace.get("spans") or [], key=lambda s: s["start"]):
                    step, at_end = SPANS.get(span["name"], ("", False))
                    if span["name"] == "scheduler.schedule" and "node" not in span.get(
                        "attributes", {}
                    ):
                        self.retried.add(name)  # a cycle that found no node
                        continue
                    if step:
                        when = span["end"] if at_end else span["start"]
                        self._mark(name, [step], when + offset)

    def _volume(self, pv: dict[str, Any]) -> None:
        claim = ((pv.get("spec") or {}).get("claimRef") or {}).get("name")
        if claim:
            self.pv_claim[pv["metadata"]["name"]] = claim
            phase = (pv.get("status") or {}).get("phase")
            self._mark(claim, ["PV created"] + (["PV Bound"] if phase == "Bound" else []))

    def _attachment(self, va: dict[str, Any]) -> None:
        pv = ((va.get("spec") or {}).get("source") or {}).get("persistentVolumeName", "")
        if (va.get("status") or {}).get("attached") and pv in self.pv_claim:
            self._mark(self.pv_claim[pv], ["attached"])

    async def _follow(self, res: Any, ns: str | None, seen: Any) -> None:
        while True:  # list, then watch from there; a watch that ends or fails: again
            with contextlib.suppress(ClientError):
                listed = await self.client.list(res, ns)
                for obj in listed["items"]:
                    seen(obj)
                rv = listed["metadata"]["resourceVersion"]
                async for _etype, obj in self.client.watch(res, ns, resource_version=rv):
                    seen(obj)

    def start(self) -> None:
        def named(steps: Any) -> Any:
            return lambda obj: self._mark(obj["metadata"]["name"], steps(obj))

        for res, ns, seen in (
            (PODS, NS, named(_pod_steps)),
            (PVCS, NS, named(_claim_steps)),
            (PVS, None, self._volume),
            (ATTACHMENTS, None, self._attachment),
        ):
            self.tasks.append(asyncio.create_task(self._follow(res, ns, seen)))

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t

    def medians(self, started: dict[str, float]) -> dict[str, float]:
        """Step -> median ms after the create, over the names in ``started``."""
        out: dict[str, float] = {}
        for step in STEPS:
            after = [self.seen[n][step] - t for n, t in started.items()
                     if step in self.seen.get(n, {})]  # fmt: skip
            if after:
                out[step] = statistics.median(after) * 1000
        return out


def _pod(name: str, node: str, claim: str = "") -> dict[str, Any]:
    mounts = [{"name": "data", "mountPath": "/data"}] if claim else []
    spec: dict[str, Any] = {
        "nodeSelector": {"kubernetes.io/hostname": node},
        "terminationGracePeriodSeconds": 0,
        "containers": [container("c", "exec sleep 3600", volumeMounts=mounts)],
    }
    if claim:
        spec["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def _claim(name: str, cls: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": cls,
                 "resources": {"requests": {"storage": "16Mi"}}},
    }  # fmt: skip


async def _row(client: Client, what: str, node: Node, cls: str, n: int, steps: Steps) -> Row:
    tag = uuid.uuid4().hex[:5]
    started: dict[str, float] = {}

    async def one(i: int) -> None:
        name = f"{tag}-{i}"
        started[name] = time.monotonic()
        if cls:
            await client.create(PVCS, _claim(name, cls), NS)
        await client.create(PODS, _pod(name, node.name, name if cls else ""), NS)
        await steps.reached(name, "pod Running")  # on the watch: no polling load

    before, asked = await asyncio.to_thread(cpu_now), await _requests(client)
    row = await timed(what, 1, n, one)
    after, answered = await asyncio.to_thread(cpu_now), await _requests(client)
    cpu[what] = {k: (after[k] - before.get(k, 0.0)) * 1000 / n for k in after}
    requests[what] = {k: (v - asked.get(k, 0.0)) / n for k, v in answered.items()}
    await asyncio.sleep(1.0)  # a step seen just after Running; the kubelet's spans sent
    await steps.spans(list(started))
    chains[what] = steps.medians(started)
    per_pod[what] = {n: {k: (v - t) * 1000 for k, v in steps.seen.get(n, {}).items()}
                     for n, t in started.items()}  # fmt: skip
    retried[what] = len(steps.retried & set(started))
    for i in range(n):
        await client.delete(PODS, f"{tag}-{i}", NS, grace_period_seconds=0)
        if cls:
            await client.delete(PVCS, f"{tag}-{i}", NS)
    await _gone(client, tag, node.data_dir / "kubelet" / "pods")
    return row


def _count(pod_dirs: Path) -> int:
    return len(list(pod_dirs.iterdir())) if pod_dirs.is_dir() else 0


async def _gone(client: Client, tag: str, pod_dirs: Path, within: float = 180.0) -> None:
    """Wait until the row's pods, claims and volumes are gone and the kubelet has removed
    every pod directory (its teardown, the volumes' release and deletion done), so the
    next row does not pay for them."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        left = await asyncio.to_thread(_count, pod_dirs)
        for res, ns in ((PODS, NS), (PVCS, NS), (PVS, None)):
            for obj in (await client.list(res, ns))["items"]:
                ref = ((obj.get("spec") or {}).get("claimRef") or {}).get("name", "")
                left += (obj["metadata"]["name"] if res is not PVS else ref).startswith(tag)
        if not left:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"row {tag}: pods, claims or volumes left after {within} s")


#: row -> step -> median ms after the create
chains: dict[str, dict[str, float]] = {}
#: row -> pod -> step -> ms after its create (written to --logs as steps.json)
per_pod: dict[str, dict[str, dict[str, float]]] = {}
#: row -> pods with a scheduling cycle that found no node
retried: dict[str, int] = {}
#: row -> "verb resource[/subresource]" -> API requests per pod while the row ran
requests: dict[str, dict[str, float]] = {}
#: row -> component -> CPU ms per pod
cpu: dict[str, dict[str, float]] = {}
#: component -> the pid whose process tree it is (set in main)
COMPONENTS: dict[str, int] = {}
#: components counted without the processes under them
SELF = ("bench", "kubelet")


async def _requests(client: Client) -> dict[str, float]:
    """The API server's ``apiserver_request_total`` by verb and resource (codes summed)."""
    text = (await client.request("GET", "/metrics", raw=True)).decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("apiserver_request_total{"):
            labels, count = line[len("apiserver_request_total{") :].rsplit("} ", 1)
            lab = {k: v.strip('"') for k, v in (kv.split("=", 1) for kv in labels.split(","))}
            sub = lab.get("subresource", "")
            key = f"{lab['verb']} {lab['resource']}" + (f"/{sub}" if sub else "")
            out[key] = out.get(key, 0.0) + float(count)
    return out


def _children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            out.setdefault(ppid, []).append(int(stat.parent.name))
    return out


def cpu_now() -> dict[str, float]:
    """CPU seconds each component has used: its process and the processes under it (the
    kubelet's containerd and shims are a component of their own; a process that ended
    during the row is not counted)."""
    children = _children()

    def tree(pid: int) -> float:
        return (cpu_seconds(pid) or 0.0) + sum(tree(c) for c in children.get(pid, []))

    out = {name: tree(pid) for name, pid in COMPONENTS.items() if name not in SELF}
    out.update({name: cpu_seconds(COMPONENTS[name]) or 0.0 for name in SELF})
    out["containerd + shims"] = sum(tree(c) for c in children.get(COMPONENTS["kubelet"], []))
    return out


def csi_calls(log: Path) -> str:
    """csi-hostpath's calls during the run, from its log: count and p50/max ms."""
    times: dict[str, list[float]] = {}
    for line in log.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            rec = json.loads(line)
            if isinstance(rec, dict) and "ms" in rec and rec.get("code") == "OK":
                times.setdefault(str(rec.get("method")), []).append(float(rec["ms"]))
    out = ["| CSI call | calls | p50 ms | max ms |", "|---|---:|---:|---:|"]
    for method, ms in sorted(times.items()):
        out.append(f"| {method} | {len(ms)} | {statistics.median(ms):.1f} | {max(ms):.1f} |")
    return "\n".join(out)


def cpu_table() -> str:
    """:data:`cpu` as a markdown table: CPU ms per pod, by component."""
    names = list(next(iter(cpu.values()), {}))
    out = ["| row | " + " | ".join(names) + " | all |", "|---|" + "---:|" * (len(names) + 1)]
    for what, used in cpu.items():
        cells = " | ".join(f"{used[n]:.0f}" for n in names)
        out.append(f"| {what} | {cells} | {sum(used.values()):.0f} |")
    return "\n".join(out)


def requests_table() -> str:
    """:data:`requests` as a markdown table: a row per request kind, a column per row."""
    rows = list(requests)
    kinds = sorted({k for r in requests.values() for k, v in r.items() if v >= 0.05})
    out = ["| requests per pod | " + " | ".join(rows) + " |", "|---|" + "---:|" * len(rows)]
    for kind in kinds:
        out.append(
            f"| {kind} | " + " | ".join(f"{requests[r].get(kind, 0):.1f}" for r in rows) + " |"
        )
    out.append("| all | " + " | ".join(f"{sum(requests[r].values()):.1f}" for r in rows) + " |")
    return "\n".join(out)


def chain_table() -> str:
    """The medians of :data:`chains` as a markdown table (one column per step seen)."""
    steps = [s for s in STEPS if any(s in c for c in chains.values())]
    out = ["| row | " + " | ".join(steps) + " |", "|---|" + "---:|" * len(steps)]
    for what, c in chains.items():
        cells = " | ".join(f"{c[s]:.0f}" if s in c else "" for s in steps)
        out.append(f"| {what} | {cells} |")
    return "\n".join(out)


async def measure(kubeconfig: Path, node: Node, n: int) -> list[Row]:
    async with Client(load_config(str(kubeconfig))) as client:
        await client.create(CLASSES, {
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": "bench-local-path"}, "provisioner": "pyk8s.io/local-path",
            "volumeBindingMode": "WaitForFirstConsumer",
        })  # fmt: skip
        deadline = time.monotonic() + 60  # csi-hostpath creates its class and registers
        while time.monotonic() < deadline:
            csinodes = await client.list(REGISTRY.get("storage.k8s.io", "v1", "csinodes"))
            if any(c["metadata"]["name"] == node.name and c["spec"].get("drivers")
                   for c in csinodes["items"]):  # fmt: skip
                break
            await asyncio.sleep(0.2)
        steps = Steps(client)
        steps.start()
        try:
            await _row(client, "warm-up (not reported)", node, "", 1, steps)
            for kept in (chains, retried, cpu, per_pod, requests):
                kept.clear()
            return [
                await _row(client, "pod without volumes (baseline)", node, "", n, steps),
                await _row(client, "pod + local-path claim", node, "bench-local-path", n, steps),
                await _row(client, "pod + csi-hostpath claim", node, "csi-hostpath", n, steps),
            ]
        finally:
            await steps.stop()


def compare(args: argparse.Namespace) -> None:
    """``--baseline REV``: the whole run for git revision REV's code and then for this
    tree's, each in a process of its own, as many ``--rounds`` as asked; a table of both
    (each with its own no-volume row as the baseline of its ratios)."""
    runs: list[tuple[str, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="bench-csi-rev-") as tmp:
        src = revision_src(args.baseline, Path(tmp) / "rev")
        for r in range(args.rounds):
            for label, env in ((args.baseline, {"PYTHONPATH": str(src)}), ("this tree", {})):
                out = Path(tmp) / f"{r}-{len(runs)}.json"
                cmd = [sys.executable, __file__, "--pods", str(args.pods), "--json", str(out)]
                done = subprocess.run(cmd, env={**os.environ, **env}, check=False)
                if done.returncode != 0:
                    sys.exit(f"the run of {label} failed ({done.returncode})")
                runs.append((label, json.loads(out.read_text())))
    head = "| run | load | " + " | ".join(
        f"{w} p50 / p99 ms (x no volume)" for w, *_ in runs[0][1]["rows"]
    )
    print(head + " |\n|---|---|" + "---:|" * len(runs[0][1]["rows"]))
    for label, run in runs:
        base_p50, base_p99 = run["rows"][0][1:]
        cells = " | ".join(
            f"{p50:.0f} / {p99:.0f} ({p50 / base_p50:.2f} / {p99 / base_p99:.2f})"
            for _, p50, p99 in run["rows"]
        )  # fmt: skip
        print(f"| {label} | {run['load']} | {cells} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=5)
    ap.add_argument("--logs", type=Path, help="keep the components' logs and each pod's "
                    "steps (steps.json) in this directory")  # fmt: skip
    ap.add_argument("--baseline", metavar="REV", help="also run git revision REV's code, "
                    "one whole run each, and compare")  # fmt: skip
    ap.add_argument("--rounds", type=int, default=1, help="with --baseline: runs of each")
    ap.add_argument("--json", type=Path, help=argparse.SUPPRESS)  # (--baseline's runs)
    args = ap.parse_args()
    if args.baseline:
        compare(args)
        return
    base = Path(tempfile.mkdtemp(prefix="bench-csi-", dir="/tmp"))
    server = Server(base / "data", free_port()).start()
    suffix = uuid.uuid4().hex[:8]
    node = Node(
        name=f"bench-{suffix}", data_dir=base / "agent", log_root=base / "pods",
        pod_cidr=f"10.88.{150 + uuid.uuid4().int % 50}.0/24", bridge=f"pb{suffix}",
        kubeconfig=server.kubeconfig, healthz_port=free_port(), port=free_port(),
    )  # fmt: skip
    kc = str(server.kubeconfig)
    commands = [
        ["controller-manager", "--kubeconfig", kc, "--leader-elect", "false",
         "--port", str(free_port()), "--controllers",
         "serviceaccount,persistentvolume,pvcprotection,pvprotection,attachdetach"],
        ["scheduler", "--kubeconfig", kc, "--leader-elect", "false",
         "--secure-port", str(free_port())],
        ["csi-hostpath", "--kubeconfig", kc, "--nodeid", node.name,
         "--data-dir", str(base / "csi"), "--kubelet-dir", str(node.data_dir / "kubelet"),
         "--install-objects", "--health-port", str(free_port())],
    ]  # fmt: skip
    procs = []
    try:
        for cmd in commands:
            with (base / f"{cmd[0]}.log").open("ab") as log:
                procs.append(subprocess.Popen([sys.executable, "-m", "pyk8s", *cmd],
                                              stdout=log, stderr=subprocess.STDOUT))  # fmt: skip
        node.start()
        assert server.proc is not None and node.proc is not None
        COMPONENTS.update({"apiserver": server.proc.pid, "kubelet": node.proc.pid,
                           "bench": os.getpid()})  # fmt: skip
        COMPONENTS.update({cmd[0]: proc.pid for cmd, proc in zip(commands, procs, strict=True)})
        rows = asyncio.run(measure(server.kubeconfig, node, args.pods))
        load = Path("/proc/loadavg").read_text().split()[:3]
        print(f"claim + pod create → Running, one at a time, on one real node "
              f"(load average {' '.join(load)})\n")  # fmt: skip
        print(table(rows, ms_digits=0))
        if args.json is not None:
            args.json.write_text(json.dumps({
                "load": " ".join(load),
                "rows": [(r.what, r.pct(0.5), r.pct(0.99)) for r in rows],
            }))  # fmt: skip
        print("\nwhere the time goes: median ms after the create, as watched\n")
        print(chain_table())
        print("\npods with a scheduling cycle that found no node: " + ", ".join(
            f"{what} {count}" for what, count in retried.items()
        ))  # fmt: skip
        print("\nCPU ms per pod, by component, while the row ran\n")
        print(cpu_table())
        print("\nAPI requests per pod while the row ran (the bench's own included)\n")
        print(requests_table())
        print("\nthe driver's side of its calls (its log)\n")
        print(csi_calls(base / "csi-hostpath.log"))
    finally:
        node.stop()
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
        server.stop()
        if args.logs is not None:
            args.logs.mkdir(parents=True, exist_ok=True)
            for kept in base.glob("*.log"):
                shutil.copy(kept, args.logs / kept.name)
            (args.logs / "steps.json").write_text(json.dumps(per_pod, indent=1))
        _reap_leftovers(node.data_dir, node.socket)
        remove_cni_nat(node.pod_cidr)
        subprocess.run(["ip", "link", "delete", node.bridge], capture_output=True, timeout=10)
        subprocess.run(["rm", "-rf", str(base)], check=False, timeout=60)


if __name__ == "__main__":
    main()
