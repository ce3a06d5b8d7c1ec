"""What the benchmarks share: real control-plane processes on loopback.

The scheduler and scale benchmarks start a real ``pyk8s apiserver`` (via the integration
tests' ``Server``), then ``pyk8s sim-nodes`` and ``pyk8s scheduler`` as separate
processes, drive them over HTTPS with the admin certificate, and watch what happens. This
module owns that plumbing: starting (with the same flags for both benchmarks) and always
stopping the processes, an aiohttp client (the API server benchmark's too), a watch that
timestamps every event as it arrives, and reading a process's resident memory from
``/proc``. Every wait here is bounded; nothing here asserts a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.integration.conftest import Server, free_port  # noqa: E402

__all__ = [
    "SIM_QPS",
    "Api",
    "Obj",
    "Proc",
    "Server",
    "Watch",
    "cpu_seconds",
    "create_many",
    "free_port",
    "node_ready",
    "pct_ms",
    "pod_body",
    "pods_per_node",
    "rss_mib",
    "start_scheduler",
    "start_sim_nodes",
]

Obj = dict[str, Any]

#: sim-nodes client rate limit (its default, 500, is all lease renewals at 5,000 nodes)
SIM_QPS = 5000


def pod_body(name: str, *, scheduler_name: str = "", labels: dict[str, str] | None = None) -> bytes:
    """A small bare pod (10m CPU, 16Mi memory requested), as JSON."""
    spec: Obj = {
        "containers": [
            {
                "name": "c",
                "image": "busybox:1.36",
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
            }
        ],
        "terminationGracePeriodSeconds": 0,
    }
    if scheduler_name:
        spec["schedulerName"] = scheduler_name
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": labels or {"app": "bench"}},
            "spec": spec,
        }
    ).encode()


def process_argv(pid: int) -> list[str]:
    """``pid``'s command line as words ([] when it is gone). An exec'd process separates
    them with NULs; a component the server's zygote forked shows one string
    (setproctitle), so both are split."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.replace(b"\0", b" ").decode(errors="replace").split()


def pyk8s_component(argv: list[str]) -> str:
    """``… pyk8s NAME …`` → NAME; '' for any other program."""
    if "pyk8s" in argv and argv.index("pyk8s") + 1 < len(argv):
        return argv[argv.index("pyk8s") + 1]
    return ""


def process_tree(root: int) -> list[int]:
    """``root`` and every live descendant (by each process's parent in /proc/PID/stat)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [root], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def rss_mib(pid: int) -> float | None:
    """VmRSS of ``pid`` in MiB (None when the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds ``pid`` has used (None when the process is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Proc:
    """One ``python -m pyk8s <args>`` process, its output in ``log``."""

    def __init__(self, name: str, args: list[str], log: Path, src: Path | None = None) -> None:
        """``src``: run the ``pyk8s`` package under that directory (a baseline revision's
        ``src/``, see :func:`revision_src`) instead of this tree's."""
        self.name = name
        self.log = log
        self.started = time.perf_counter()
        env = None if src is None else {**os.environ, "PYTHONPATH": str(src)}
        with open(log, "ab") as out:
            self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                [sys.executable, "-m", "pyk8s", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, chars: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def pods_per_node(nodes: int, pods: int) -> int:
    """Room for every pod on any node, so capacity never decides the outcome."""
    return max(110, 2 * math.ceil(pods / nodes) + 10)


def start_sim_nodes(
    base: Path, kubeconfig: str, nodes: int, per_node: int, *, leases: bool = True
) -> Proc:
    """``pyk8s sim-nodes`` with ``nodes`` nodes of ``per_node`` pods each, logging to
    ``base / "sim-nodes.log"``; ``leases=False``: no node Leases (scheduler_perf's nodes)."""
    return Proc(
        "sim-nodes",
        [
            "sim-nodes",
            "--kubeconfig",
            kubeconfig,
            "--count",
            str(nodes),
            "--port",
            str(free_port()),
            "--pods",
            str(per_node),
            # one Lease renewal per node every 10 s must not eat the whole client budget
            # (500 qps by default = exactly 5,000 nodes' renewals): leave room for pods
            "--kube-api-qps",
            str(SIM_QPS),
            "--kube-api-burst",
            str(2 * SIM_QPS),
            *([] if leases else ["--node-lease-duration-seconds", "0"]),
            "--log-level",
            "warning",
        ],
        base / "sim-nodes.log",
    )


def revision_src(rev: str, into: Path) -> Path:
    """``src/`` of git revision ``rev`` extracted under ``into``: the code a same-run
    baseline runs (``Proc(..., src=...)``)."""
    into.mkdir(parents=True, exist_ok=True)
    root = Path(__file__).resolve().parents[1]
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", rev, "src"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / "src"


def start_scheduler(base: Path, kubeconfig: str, src: Path | None = None) -> Proc:
    """``pyk8s scheduler`` without leader election, logging to ``base / "scheduler.log"``
    (``src``: a baseline revision's code, see :class:`Proc`)."""
    return Proc(
        "scheduler",
        [
            "scheduler",
            "--kubeconfig",
            kubeconfig,
            "--leader-elect",
            "false",
            # scheduler_perf raises the client limit too (upstream default: 50/100)
            "--kube-api-qps",
            "5000",
            "--kube-api-burst",
            "10000",
            "--port",
            str(free_port()),
            "--log-level",
            "warning",
        ],
        base / "scheduler.log",
        src,
    )


class Api:
    """aiohttp over HTTPS with the admin client certificate of ``server``."""

    def __init__(self, server: Server) -> None:
        tls = server.data_dir / "server" / "tls"
        ctx = ssl.create_default_context(cafile=str(tls / "ca.crt"))
        ctx.load_cert_chain(str(tls / "admin.crt"), str(tls / "admin.key"))
        self.base = server.url
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ctx, limit=200),
            timeout=aiohttp.ClientTimeout(total=600),
        )

    async def request_bytes(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str = "application/json",
    ) -> bytes:
        """The response body unparsed (what the API server benchmark times)."""
        async with self.session.request(
            method, self.base + path, data=body, headers={"Content-Type": content_type}
        ) as r:
            data = await r.read()
            if r.status >= 300:
                raise RuntimeError(f"{method} {path}: {r.status} {data[:200]!r}")
            return data

    async def request(self, method: str, path: str, body: bytes | None = None) -> Any:
        """The response body parsed as JSON (None when empty)."""
        data = await self.request_bytes(method, path, body)
        return json.loads(data) if data else None

    async def namespace(self, name: str) -> None:
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        with contextlib.suppress(RuntimeError):  # already there
            await self.request("POST", "/api/v1/namespaces", json.dumps(body).encode())

    async def close(self) -> None:
        await self.session.close()


class Watch:
    """A watch on ``path`` from the current resourceVersion; ``on_event(type, obj, t)`` is
    called for every event with its arrival time (``time.perf_counter()``)."""

    def __init__(self, api: Api, path: str, on_event: Callable[[str, Obj, float], None]) -> None:
        self.api = api
        self.path = path
        self.on_event = on_event
        self.changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.error: BaseException | None = None

    async def start(self) -> None:
        """List for a resourceVersion, open the watch and return once it is established."""
        sep = "&" if "?" in self.path else "?"
        listed = await self.api.request("GET", f"{self.path}{sep}limit=1")
        rv = listed["metadata"]["resourceVersion"]
        resp = await self.api.session.get(
            f"{self.api.base}{self.path}{sep}watch=1&resourceVersion={rv}&timeoutSeconds=3600",
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
        )
        if resp.status != 200:
            raise RuntimeError(f"watch {self.path}: {resp.status} {await resp.text()}")
        self._task = asyncio.create_task(self._read(resp))

    async def _read(self, resp: aiohttp.ClientResponse) -> None:
        try:
            async with resp:
                async for line in resp.content:
                    t = time.perf_counter()
                    if not line.strip():
                        continue
                    ev = json.loads(line)
                    if ev.get("type") == "ERROR":  # e.g. 410 Gone: the watch is over
                        self.error = RuntimeError(f"watch {self.path}: {ev.get('object')}")
                        return
                    if ev.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                        self.on_event(ev["type"], ev["object"], t)
                        self.changed.set()
        except asyncio.CancelledError:
            raise
        except Exception as err:  # the waiter sees the watch end and gives up
            self.error = err
        finally:
            self.changed.set()

    async def wait_until(self, done: Callable[[], bool], within: float) -> bool:
        """Wait until ``done()`` (checked after every event), at most ``within`` seconds."""
        deadline = time.monotonic() + within
        while not done():
            left = deadline - time.monotonic()
            if left <= 0 or (self._task is not None and self._task.done()):
                return done()
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 1.0))
        return True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


async def create_many(
    api: Api, path: str, bodies: list[tuple[str, bytes]], concurrency: int = 50
) -> tuple[dict[str, float], list[float], float]:
    """POST every ``(name, body)`` with ``concurrency`` workers. Returns each name's send
    time, every request's latency, and the wall time of the whole batch."""
    sent: dict[str, float] = {}
    latencies: list[float] = []
    it = iter(bodies)

    async def worker() -> None:
        for name, body in it:
            t = time.perf_counter()
            sent[name] = t
            await api.request("POST", path, body)
            latencies.append(time.perf_counter() - t)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sent, latencies, time.perf_counter() - start


def node_ready(obj: Obj) -> bool:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


def pct_ms(values: list[float], q: float) -> str:
    if not values:
        return "-"
    s = sorted(values)
    return f"{s[min(len(s) - 1, int(q * len(s)))] * 1000:,.0f}"
