"""Pod startup: upstream's pod startup SLI next to the raw runtime cost, in one run.

The SLI (clusterloader2's pod startup latency, image present): from the API request
creating a pod to a watch seeing it Running, through the whole stack — ``pyk8s server``
(API server, scheduler, controller-manager) and ``pyk8s kubelet`` on its own containerd.
``--baseline REV`` (repeatable) measures the SLI of git revision REV's code too, in the
same run, alternating with this tree's (``--rounds`` times each). The CPU table says what each
process used per pod while 5 were started at once: the server's process tree, the kubelet,
its containerd (with the CNI plugins it runs) and the shims (with the OCI runtime).
The calls table says how many round trips each pod start took in that round: the kubelet's
CRI calls by method (the kubelet runs through :mod:`cri_count`, which counts them the same
way for every tree) and the API server's requests by verb and resource.

The baselines, on a private containerd, in the same run (root only):

* ``ctr run`` of our busybox image (containerd's own client, no CRI, no network), and
* sandbox + create + start through our CRI client (pod network on a bridge, as pods get),
  with each OCI runtime installed (runc, crun), and each step's p50/p99 at 5 at once.

    python3 bench/podstartup/run.py [--pods 30] [--baseline REV] [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench._cluster import revision_src  # noqa: E402
from bench._table import Row, table, timed  # noqa: E402
from tests.kubelet.runtime_fixtures import remove_cni_nat  # noqa: E402

from pyk8s.api.registry import REGISTRY  # noqa: E402
from pyk8s.client import Client, load_kubeconfig  # noqa: E402
from pyk8s.kubelet import images  # noqa: E402
from pyk8s.kubelet.cni import write_bridge_conflist  # noqa: E402
from pyk8s.kubelet.cri import CRIClient, CRIError, api_pb2  # noqa: E402
from pyk8s.kubelet.runtimes import Containerd, ContainerdConfig  # noqa: E402

BRIDGE = "pkbench0"
SLI_BRIDGE = "pkbench1"
SLI_CIDR = "10.88.251.0/24"
NODE = "bench-node"
PODS_RES = REGISTRY.get("", "v1", "pods")


async def ctr_run(runtime: Containerd, pods: int) -> Row:
    flags = [
        "--fifo-dir",
        str(runtime.config.fifo_dir),
        "--runc-root",
        str(runtime.config.runc_root),
    ]

    async def one(i: int) -> None:
        await runtime.ctr("run", *flags, "-d", images.BUSYBOX_REF, f"bench-{i}", "sleep", "3600")

    row = await timed("ctr run -d (no CRI, no network)", 1, pods, one)
    for i in range(pods):
        await runtime.ctr("task", "kill", "-s", "SIGKILL", f"bench-{i}")
    await asyncio.sleep(0.5)
    for i in range(pods):
        await runtime.ctr("task", "rm", "-f", f"bench-{i}")
        await runtime.ctr("containers", "rm", f"bench-{i}")
    return row


async def cri_start(
    cri: CRIClient, pods: int, log_dir: Path, clients: int, runtime: str
) -> tuple[Row, dict[str, list[float]]]:
    """Sandbox, create and start through the CRI with ``runtime``; the row and each step's
    latencies."""
    steps: dict[str, list[float]] = {"RunPodSandbox": [], "CreateContainer": [], "Start": []}

    async def one(i: int) -> None:
        name = f"bench-{runtime}-{clients}-{i}"
        sandbox = api_pb2.PodSandboxConfig(
            metadata=api_pb2.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="b"),
            hostname=name,
            log_directory=str(log_dir / name),
        )
        t0 = time.perf_counter()
        sandbox_id = await cri.run_pod_sandbox(sandbox, runtime_handler=runtime)
        t1 = time.perf_counter()
        container = api_pb2.ContainerConfig(
            metadata=api_pb2.ContainerMetadata(name="main"),
            image=api_pb2.ImageSpec(image=images.BUSYBOX_REF),
            command=["sleep", "3600"],
            log_path="main/0.log",
        )
        cid = await cri.create_container(sandbox_id, container, sandbox)
        t2 = time.perf_counter()
        await cri.start_container(cid)
        for step, took in zip(steps, (t1 - t0, t2 - t1, time.perf_counter() - t2), strict=True):
            steps[step].append(took)

    what = f"CRI sandbox+create+start, {runtime} ({clients} at once)"
    row = await timed(what, clients, pods, one)
    for sandbox in await cri.list_pod_sandbox():
        await cri.stop_pod_sandbox(sandbox.id)
        await cri.remove_pod_sandbox(sandbox.id)
    return row, steps


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn(
    log: Path, src: Path | None, *args: str, counts: Path | None = None
) -> subprocess.Popen[bytes]:
    """``python -m pyk8s ARGS`` of this tree, or of a revision's ``src`` (--baseline); with
    ``counts``, through :mod:`cri_count` (its CRI calls counted, written there on SIGUSR1)."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    argv = [sys.executable, "-m", "pyk8s", *args]
    if counts is not None:
        env["PYK8S_CRI_COUNTS"] = str(counts)
        argv = [sys.executable, str(Path(__file__).with_name("cri_count.py")), *args]
    with log.open("ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)


async def _api_requests(client: Client) -> dict[str, int]:
    """The API server's requests so far (``apiserver_request_total``, every code), by
    verb and resource."""
    text = (await client.request("GET", "/metrics", raw=True)).decode()
    out: dict[str, int] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name != "apiserver_request_total":
                continue
            labels = sample.labels
            sub = labels.get("subresource") or ""
            key = f"API {labels['verb']} {labels['resource']}" + (f"/{sub}" if sub else "")
            out[key] = out.get(key, 0) + int(sample.value)
    return out


async def _cri_counts(proc: subprocess.Popen[bytes], path: Path) -> dict[str, int]:
    """The CRI calls ``proc`` (spawned with ``counts=path``) has made so far, by method."""
    await asyncio.to_thread(path.unlink, missing_ok=True)
    proc.send_signal(signal.SIGUSR1)
    for _ in range(100):
        if await asyncio.to_thread(path.exists):
            return dict(json.loads(await asyncio.to_thread(path.read_text)))
        await asyncio.sleep(0.05)
    raise RuntimeError("the kubelet did not write its CRI call counts")


def _pids() -> list[int]:
    return [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit()]


def _shims(agent: Path) -> list[int]:
    """The containerd shims of the containerd under data dir ``agent``."""
    socket = os.fsencode(ContainerdConfig(agent).socket)
    out = []
    for pid in _pids():
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"containerd-shim" in cmdline and socket in cmdline:
                out.append(pid)
    return out


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds of the process and its reaped children) of ``pid``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _cpu_by_group(server: int, kubelet: int, agent: Path) -> dict[str, float]:
    """CPU seconds so far of the server's process tree, the kubelet, its containerd and
    the shims of ``agent``'s containerd (each with the children it has reaped: the CNI
    plugins under containerd, the OCI runtime under each shim)."""
    stats = {pid: stat for pid in _pids() if (stat := _stat(pid)) is not None}
    shims = [pid for pid in _shims(agent) if pid in stats]

    def tree(root: int) -> float:
        pids, total = [root], 0.0
        while pids:
            pid = pids.pop()
            total += stats.get(pid, (0, 0.0))[1]
            pids += [p for p, (ppid, _) in stats.items() if ppid == pid]
        return total

    containerd = 0.0
    with contextlib.suppress(OSError, ValueError):
        pid_file = ContainerdConfig(agent).base / "containerd.pid"
        containerd = stats.get(int(pid_file.read_text()), (0, 0.0))[1]
    return {
        "server (all its processes)": tree(server),
        "kubelet": stats.get(kubelet, (0, 0.0))[1],
        "containerd (+ CNI plugins)": containerd,
        "shims (+ OCI runtime)": sum(stats[p][1] for p in shims),
    }


async def _wait_file(path: Path, proc: subprocess.Popen[bytes], within: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await asyncio.to_thread(path.exists):
        if proc.poll() is not None or loop.time() > deadline:
            raise RuntimeError(f"{proc.args} did not come up")
        await asyncio.sleep(0.2)


def _pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": "main",
                    "image": images.BUSYBOX_REF,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", "3600"],
                }
            ],
        },
    }


#: the steps of a pod's start, from its spans (pyk8s.api.spans): (label, from, to), each
#: a span name and its "start" or "end"; "create" is the client's request and "watch" the
#: watch event showing the pod Running. A new pod's sandbox is made while its volumes are
#: set up since the kubelet of issue 21's "kubeletsync": the RunPodSandbox row then holds
#: only what is left of it after the volumes, and the two "kubelet:" rows compare trees
SEGMENTS = (
    ("API create", "create", "apiserver.create.end"),
    ("scheduled and bound", "apiserver.create.end", "scheduler.bind.end"),
    ("kubelet sees it", "scheduler.bind.end", "kubelet.seen.start"),
    ("volumes (+ first runtime read)", "kubelet.seen.start", "kubelet.volumes.end"),
    ("RunPodSandbox (+ its read)", "kubelet.volumes.end", "kubelet.sandbox.end"),
    ("image, create, start, read", "kubelet.sandbox.end", "kubelet.ready.start"),
    ("status write", "kubelet.ready.start", "kubelet.ready.end"),
    ("watch event", "kubelet.ready.end", "watch"),
    ("kubelet: seen → sandbox ready", "kubelet.seen.start", "kubelet.sandbox.end"),
    ("kubelet: seen → status written", "kubelet.seen.start", "kubelet.ready.end"),
)


async def _segments(
    client: Client, times: dict[str, dict[str, float]], within: float = 10
) -> dict[str, list[float]]:
    """Each pod's :data:`SEGMENTS` in seconds, from its trace (the components send their
    spans every 0.5 s: waited for until the kubelet's last one is in)."""
    out: dict[str, list[float]] = {label: [] for label, _, _ in SEGMENTS}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    for name, at in times.items():
        while True:
            trace = await client.request("GET", f"/debug/traces/namespaces/default/pods/{name}")
            for span in trace.get("spans") or []:
                at.setdefault(f"{span['name']}.start", span["start"])
                at.setdefault(f"{span['name']}.end", span["end"])
            if "kubelet.ready.end" in at or loop.time() > deadline:
                break
            await asyncio.sleep(0.2)
        for label, start, end in SEGMENTS:
            if start in at and end in at:
                out[label].append(at[end] - at[start])
    return out


async def pod_startup_sli(
    client: Client,
    pods: int,
    clients: int,
    cpu: Callable[[], dict[str, float]] | None = None,
    counts: Callable[[], Awaitable[dict[str, int]]] | None = None,
) -> tuple[Row, dict[str, float], dict[str, list[float]], dict[str, float]]:
    """create → Running seen by a watch, per pod; ``clients`` pods in flight at once. With
    ``cpu``: what each group of processes used per pod (ms) while they started, and each
    pod's steps (:data:`SEGMENTS`); with ``counts``: the kubelet's CRI calls per pod, by
    method, from before the first create to two PLEG relists after the last pod ran (so
    the syncs the runtime's changes cause are in; the relists themselves are too)."""
    counted_before = await counts() if counts is not None else {}
    running: dict[str, asyncio.Future[None]] = {}
    times: dict[str, dict[str, float]] = {}
    ready = asyncio.Event()

    async def watch() -> None:
        async with client.watch(PODS_RES, "default") as events:
            ready.set()
            async for _etype, obj in events:
                name = obj["metadata"]["name"]
                fut = running.get(name)
                if fut is not None and not fut.done() and obj["status"].get("phase") == "Running":
                    times[name]["watch"] = time.time()
                    fut.set_result(None)

    watcher = asyncio.create_task(watch())
    await ready.wait()

    async def one(i: int) -> None:
        name = f"sli-{clients}-{i}"
        running[name] = asyncio.get_running_loop().create_future()
        times[name] = {"create": time.time()}
        await client.create(PODS_RES, _pod(name))
        await asyncio.wait_for(running[name], 60)

    before = await asyncio.to_thread(cpu) if cpu is not None else {}
    try:
        row = await timed(
            f"pod startup SLI: create → Running ({clients} at once)", clients, pods, one
        )
    finally:
        watcher.cancel()
    after = await asyncio.to_thread(cpu) if cpu is not None else {}
    used = {k: (after[k] - before[k]) * 1000 / pods for k in after}
    segments = await _segments(client, times) if cpu is not None else {}
    calls: dict[str, float] = {}
    if counts is not None:
        await asyncio.sleep(2.0)  # two relist periods: the syncs PLEG wakes are counted
        counted = await counts()
        calls = {k: (v - counted_before.get(k, 0)) / pods for k, v in counted.items()}
    for name in running:
        await client.delete(PODS_RES, name, "default", grace_period_seconds=0)
    return row, used, segments, calls


async def _torn_down(socket: Path, within: float = 120) -> None:
    """Wait until the kubelet has removed the deleted pods' sandboxes: the next round's
    pods then start on an idle node, not beside 30 teardowns (StopPodSandbox, CNI DEL)."""
    async with CRIClient(str(socket)) as cri:
        for _ in range(int(within / 0.2)):
            if not await cri.list_pod_sandbox():
                return
            await asyncio.sleep(0.2)


async def sli_rows(
    base: Path, pods: int, src: Path | None, label: str
) -> tuple[list[Row], dict[str, float], dict[str, list[float]], dict[str, float]]:
    """Run ``pyk8s server`` + ``pyk8s kubelet`` (of ``src``, or this tree) and measure the
    SLI at 1 and 5 in flight; the rows, and the CPU per pod, the steps and the kubelet's
    CRI calls per pod at 5."""
    port = _free_port()
    data = base / "server"
    await asyncio.to_thread(base.mkdir, parents=True)
    server = _spawn(
        base / "server.log", src, "server", "--disable-agent", "--data-dir", str(data),
        "--bind-address", "127.0.0.1", "--https-listen-port", str(port),
    )  # fmt: skip
    kubelet: subprocess.Popen[bytes] | None = None
    try:
        await _wait_file(data / "kubeconfig.yaml", server)
        kubelet = _spawn(
            base / "kubelet.log", src, "kubelet", "--kubeconfig", str(data / "kubeconfig.yaml"),
            "--data-dir", str(base / "agent"), "--node-name", NODE, "--node-ip", "127.0.0.1",
            "--pod-cidr", SLI_CIDR, "--cni-bridge", SLI_BRIDGE,
            "--log-root", str(base / "pods"), "--healthz-port", str(_free_port()),
            "--address", "127.0.0.1", "--port", str(_free_port()),
            counts=base / "cri-counts.json",
        )  # fmt: skip
        async with Client(load_kubeconfig(data / "kubeconfig.yaml")) as client:
            for _ in range(600):
                try:
                    node = await client.get(REGISTRY.get("", "v1", "nodes"), NODE)
                    conds = {c["type"]: c["status"] for c in node["status"]["conditions"]}
                    if conds.get("Ready") == "True" and not node["spec"].get("taints"):
                        break
                except Exception:  # not registered yet
                    pass
                await asyncio.sleep(0.1)
            socket = ContainerdConfig(base / "agent").socket
            await pod_startup_sli(client, 3, 1)  # warm up: first sandbox, CNI bridge
            await _torn_down(socket)
            one, _, _, _ = await pod_startup_sli(client, pods, 1)
            await _torn_down(socket)
            pid = kubelet.pid

            def cpu() -> dict[str, float]:
                return _cpu_by_group(server.pid, pid, base / "agent")

            proc = kubelet

            async def counts() -> dict[str, int]:
                cri = await _cri_counts(proc, base / "cri-counts.json")
                api = await _api_requests(client)
                return {**{f"CRI {k}": v for k, v in cri.items()}, **api}

            five, used, segments, calls = await pod_startup_sli(client, pods, 5, cpu, counts)
            for row in (one, five):
                row.backend = label
            return [one, five], used, segments, calls
    finally:
        for proc in (kubelet, server):
            if proc is not None:
                proc.send_signal(signal.SIGTERM)
                await asyncio.to_thread(proc.wait, 60)
        await asyncio.to_thread(_reap, base)


def _reap(base: Path) -> None:
    """Kill the shims the kubelet's containerd left and remove its bridge."""
    for pid in _shims(base / "agent"):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    subprocess.run(["ip", "link", "delete", SLI_BRIDGE], capture_output=True, check=False)
    # the kubelet's egress rule, and the bridge plugin's chain of each pod whose sandbox
    # was not torn down before the kubelet stopped (a revision that still used ipMasq)
    remove_cni_nat(SLI_CIDR)
    # and their host-local leases (else the /24 runs out after a few runs)
    subnet = ipaddress.ip_network(SLI_CIDR)
    for lease in Path("/var/lib/cni/networks/pyk8s").glob("10.*"):
        with contextlib.suppress(ValueError, OSError):
            if ipaddress.ip_address(lease.name) in subnet:
                lease.unlink()


def _clean_up(data_dir: Path) -> None:
    """Remove the bridges, leftover mounts and the data dir."""
    subprocess.run(["ip", "link", "delete", BRIDGE], capture_output=True, check=False)
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(f"{data_dir}/")), reverse=True):
        subprocess.run(["umount", "-l", mount], check=False)
    shutil.rmtree(data_dir, ignore_errors=True)


async def main(args: argparse.Namespace) -> None:
    pods = args.pods
    load = _load()
    data_dir = Path(tempfile.mkdtemp(prefix="pyk8s-bench-", dir="/tmp"))
    config = ContainerdConfig(data_dir)
    write_bridge_conflist(config.cni_conf, "10.88.250.0/24", bridge=BRIDGE, ip_masq=False)
    runtime = Containerd(config)
    rows: list[Row] = []
    cpu: dict[str, dict[str, float]] = {}
    segments: dict[str, dict[str, list[float]]] = {}
    calls: dict[str, dict[str, float]] = {}
    trees: dict[str, Path | None] = {"this tree": None}
    for i, rev in enumerate(args.baseline):
        src = await asyncio.to_thread(revision_src, rev, data_dir / f"rev{i}")
        trees = {**{k: v for k, v in trees.items() if v is not None}, rev: src, "this tree": None}
    steps: list[tuple[str, dict[str, list[float]]]] = []
    try:
        for r in range(args.rounds):
            for label, src in trees.items():  # alternating: both see the same load
                run = f"{label} #{r + 1}"
                half, cpu[run], segments[run], calls[run] = await sli_rows(
                    data_dir / f"sli-{r}-{len(cpu)}", pods, src, label
                )
                rows += half
        await runtime.start()
        await runtime.ensure_local_images()
        rows.append(await ctr_run(runtime, pods))
        async with CRIClient(str(runtime.socket)) as cri:
            for name in config.runtimes():
                for clients in (1, 5):
                    try:
                        row, took = await cri_start(cri, pods, data_dir / "logs", clients, name)
                    except CRIError as err:  # crun on hybrid cgroups
                        print(f"{name}: {err}", file=sys.stderr)
                        for sandbox in await cri.list_pod_sandbox():
                            await cri.stop_pod_sandbox(sandbox.id)
                            await cri.remove_pod_sandbox(sandbox.id)
                        break
                    row.backend = name
                    rows.append(row)
                    if clients == 5:
                        steps.append((name, took))
    finally:
        await runtime.stop()
        await asyncio.to_thread(_clean_up, data_dir)
    end = _load()
    print(f"\n### pod startup: {pods} pods, busybox image present (load {load} → {end})\n")
    print(table(rows, backend_column=True))
    print("\n### CPU ms per pod while 5 were started at once (SLI)\n")
    groups = list(next(iter(cpu.values())))
    print("| run | " + " | ".join(groups) + " | all |")
    print("|---|" + "---:|" * (len(groups) + 1))
    for label, used in cpu.items():
        cells = " | ".join(f"{used[g]:.0f}" for g in groups)
        print(f"| {label} | {cells} | {sum(used.values()):.0f} |")
    print("\n### the kubelet's CRI calls and the API server's requests per pod while 5 were")
    print("started at once (SLI; from before the first create to 2 s after the last ran)\n")
    methods = sorted({m for c in calls.values() for m in c if c[m]})
    print("| method | " + " | ".join(calls) + " |")
    print("|---|" + "---:|" * len(calls))
    for m in methods:
        print(f"| {m} | " + " | ".join(f"{c.get(m, 0):.2f}" for c in calls.values()) + " |")
    for kind in ("CRI", "API"):
        sums = [sum(v for k, v in c.items() if k.startswith(kind)) for c in calls.values()]
        print(f"| all {kind} | " + " | ".join(f"{n:.2f}" for n in sums) + " |")
    print("\n### SLI steps at 5 at once (from the pods' spans), p50 / p99 ms\n")
    print("| step | " + " | ".join(segments) + " |")
    print("|---|" + "---:|" * len(segments))
    for label, _, _ in SEGMENTS:
        cells = " | ".join(
            f"{_pct(seg[label], 0.5):.0f} / {_pct(seg[label], 0.99):.0f}" if seg[label] else "n/a"
            for seg in segments.values()
        )
        print(f"| {label} | {cells} |")
    print("\n### CRI steps at 5 at once, p50 / p99 ms\n")
    print("| runtime | " + " | ".join(steps[0][1]) + " |")
    print("|---|" + "---:|" * len(steps[0][1]))
    for name, took in steps:
        cells = " | ".join(f"{_pct(v, 0.5):.0f} / {_pct(v, 0.99):.0f}" for v in took.values())
        print(f"| {name} | {cells} |")


def _load() -> str:
    """The 1-minute load average."""
    return Path("/proc/loadavg").read_text().split()[0]


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] * 1000


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=30)
    parser.add_argument(
        "--baseline",
        metavar="REV",
        action="append",
        default=[],
        help="also measure the SLI of git revision REV's code (repeatable)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="SLI runs of each tree")
    if os.geteuid() != 0:
        sys.exit("bench/podstartup needs root (it runs its own containerd)")
    asyncio.run(main(parser.parse_args()))
