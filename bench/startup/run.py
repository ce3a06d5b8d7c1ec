"""Start-up time: ``pyk8s server`` start → its own node Ready, fresh and restarted.

Issue 21's start-up goal (first node Ready ≤ 3 s fresh, ≤ 2 s on restart) is measured
here as a timeline. Each run starts ``pyk8s server`` (traefik, metrics-server and
coredns disabled: they pull images and add nothing to the node becoming Ready) on a fresh
data dir in a private network namespace, so its proxy rules, bridge and routes stay off
the host (as tests/network/test_node_ops.py does), and polls every 50 ms for:

* API ``/readyz`` answering ok,
* the Node registered,
* the node's CertificateSigningRequest issued (TLS bootstrap of the server's kubelet),
* the CNI conflist written,
* the Node's Ready condition True.

Then the server is stopped with SIGTERM and started again on the same data dir; the
restart row is the time until ``/readyz`` and until a Ready heartbeat newer than the
restart. Rows are the p50 (and max) over ``--runs`` runs; ``--baseline REV`` measures
git revision REV's ``src/`` too, interleaved with this tree's runs (repeatable; with
``--no-tree`` only the revisions are measured). Root only.

On a shared machine the wall times follow the load; the CPU rows (user + system seconds
spent by the server's whole process tree, containerd and every component included, when
the node is first seen Ready) do not, and say how much work start-up is. The memory
rows are each process's PSS and RSS (``/proc/PID/smaps_rollup``) ``--idle`` seconds after
the fresh start's node is Ready. ``--logs DIR`` keeps each run's server log.

    python3 bench/startup/run.py [--runs 3] [--baseline HEAD] [--logs DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench._cluster import process_argv, process_tree, pyk8s_component  # noqa: E402
from tests.network.hosts import Hosts  # noqa: E402

from pyk8s.kubelet.runtimes import ContainerdConfig  # noqa: E402

POLL = 0.05
NOT_READY = "node.kubernetes.io/not-ready"
TIMEOUT = 120.0
FRESH = (
    "/readyz", "node registered", "CSR issued", "CNI config", "node Ready",
    "not-ready taint gone",
)  # fmt: skip
RESTART = ("restart /readyz", "restart node Ready")
CPU = ("CPU s at node Ready", "CPU s at restart Ready")  # then per process (fresh start)
MEMORY = ("idle PSS MiB", "idle RSS MiB")
_TICK = os.sysconf("SC_CLK_TCK")


def _component(pid: int) -> str:
    """``python -m pyk8s NAME …`` → NAME; any other program → its name (containerd)."""
    argv = process_argv(pid)
    if not argv:  # exited, not yet reaped
        return "?"
    return pyk8s_component(argv) or Path(argv[0]).name


def tree_cpu(root: int) -> dict[str, float]:
    """User + system CPU seconds of ``root`` and every live descendant (with what their
    reaped children used), per component (see :func:`_component`)."""
    out: dict[str, float] = {}
    for pid in process_tree(root):
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            ticks = sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
            name = _component(pid)
            out[name] = out.get(name, 0.0) + ticks / _TICK
    return out


def tree_memory(root: int) -> dict[str, tuple[float, float]]:
    """(PSS, RSS) MiB of ``root`` and every live descendant, per component: PSS splits
    the pages processes share (the interpreter, shared libraries) between them, so the
    PSS column adds up to what the server costs the host."""
    out: dict[str, tuple[float, float]] = {}
    for pid in process_tree(root):
        with contextlib.suppress(OSError):
            fields = {}
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
                key, _, rest = line.partition(":")
                fields[key] = int(rest.split()[0]) / 1024
            name = _component(pid)
            pss, rss = out.get(name, (0.0, 0.0))
            out[name] = (pss + fields.get("Pss", 0.0), rss + fields.get("Rss", 0.0))
    return out


class _Api:
    """Synchronous HTTPS GETs with the admin certificate of a server's data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.tls = data_dir / "server" / "tls"
        self.ctx: ssl.SSLContext | None = None
        self.conn: http.client.HTTPSConnection | None = None

    def get(self, path: str) -> tuple[int, bytes]:
        if self.ctx is None:
            try:  # the server may be writing them right now
                ctx = ssl.create_default_context(cafile=str(self.tls / "ca.crt"))
                ctx.load_cert_chain(str(self.tls / "admin.crt"), str(self.tls / "admin.key"))
            except (OSError, ssl.SSLError):
                return 0, b""
            self.ctx = ctx
        if self.conn is None:  # one kept-alive connection: polling adds little load
            self.conn = http.client.HTTPSConnection("127.0.0.1", 6443, context=self.ctx, timeout=2)
        try:
            self.conn.request("GET", path)
            r = self.conn.getresponse()
            return r.status, r.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = None
            return 0, b""

    def json(self, path: str) -> Any:
        status, body = self.get(path)
        return json.loads(body) if status == 200 else None


def _ready_heartbeat(node: Any) -> float | None:
    """The Ready condition's lastHeartbeatTime (epoch seconds) when it is True."""
    for c in ((node or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready" and c.get("status") == "True":
            return time.mktime(time.strptime(c["lastHeartbeatTime"], "%Y-%m-%dT%H:%M:%SZ"))
    return None


def _start(data_dir: Path, name: str, ip: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(  # the tree measured is PYTHONPATH's (see --baseline)
            [sys.executable, "-m", "pyk8s", "server", "--data-dir", str(data_dir),
             "--node-name", name, "--node-ip", ip, "--etcd-disable-snapshots",
             "--disable", "traefik,metrics-server,coredns"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def _timeline(
    api: _Api, proc: subprocess.Popen[bytes], name: str, cni: Path, restart_at: float | None
) -> dict[str, float]:
    """Poll until the node is Ready; seconds from ``t0`` for each milestone."""
    t0 = time.monotonic()
    wall0 = time.time() if restart_at is None else restart_at
    seen: dict[str, float] = {}
    keys = FRESH if restart_at is None else RESTART
    while not all(k in seen for k in keys) and time.monotonic() - t0 < TIMEOUT:
        if proc.poll() is not None:
            raise RuntimeError(f"pyk8s server exited with {proc.returncode}")
        now = time.monotonic() - t0
        status, body = api.get("/readyz")
        if status == 200 and body.strip() == b"ok":
            seen.setdefault(keys[0], now)
        if status == 200:
            node = api.json(f"/api/v1/nodes/{name}")
            if restart_at is None:
                if node is not None:
                    seen.setdefault("node registered", now)
                csrs = api.json("/apis/certificates.k8s.io/v1/certificatesigningrequests")
                for csr in (csrs or {}).get("items") or []:
                    if (csr.get("status") or {}).get("certificate"):
                        seen.setdefault("CSR issued", now)
                if any(cni.glob("*.conflist")):
                    seen.setdefault("CNI config", now)
                taints = ((node or {}).get("spec") or {}).get("taints") or []
                if "node Ready" in seen and not any(t["key"] == NOT_READY for t in taints):
                    seen.setdefault("not-ready taint gone", now)
            beat = _ready_heartbeat(node)
            # heartbeats have 1 s resolution: newer than the (re)start's whole second
            ready = "node Ready" if restart_at is None else RESTART[-1]
            if beat is not None and beat >= math.floor(wall0) and ready not in seen:
                seen[ready] = now
                cpu = tree_cpu(proc.pid)
                seen[CPU[restart_at is not None]] = sum(cpu.values())
                if restart_at is None:  # what each process spent on the fresh start
                    seen.update({f"  CPU s {name}": v for name, v in cpu.items()})
        time.sleep(POLL)
    return seen


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def one_run(
    base: Path, src: Path | None, keep_log: Path | None = None, idle: float = 20.0
) -> dict[str, float]:
    hosts = Hosts.create(base / "hosts", 1)
    host = hosts.hosts[0]
    host.data_dir.mkdir(parents=True)
    ns = ["nsenter", f"--net=/run/netns/{host.name}"]
    me = [sys.executable, __file__, "--inner", str(host.data_dir), host.name, host.ip,
          "--idle", str(idle)]  # fmt: skip
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    try:
        out = subprocess.run(
            [*ns, *me], capture_output=True, text=True, timeout=600, check=False, env=env
        )
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-3000:])
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        killall = [sys.executable, "-m", "pyk8s", "killall", "--data-dir", str(host.data_dir)]
        subprocess.run([*ns, *killall], capture_output=True, timeout=120, check=False)
        if keep_log is not None:
            with contextlib.suppress(OSError):
                shutil.copy(host.data_dir.parent / f"{host.name}-server.log", keep_log)
        hosts.destroy()


def inner(data_dir: Path, name: str, ip: str, idle: float) -> None:
    """Inside the namespace: one fresh start, its memory ``idle`` seconds after the node
    is Ready, and one restart; print the timeline as JSON."""
    log = data_dir.parent / f"{name}-server.log"
    api = _Api(data_dir)
    cni = ContainerdConfig(data_dir / "agent").cni_conf
    proc = _start(data_dir, name, ip, log)
    try:
        seen = _timeline(api, proc, name, cni, None)
        time.sleep(idle)
        memory = tree_memory(proc.pid)
        seen[MEMORY[0]] = sum(pss for pss, _rss in memory.values())
        seen[MEMORY[1]] = sum(rss for _pss, rss in memory.values())
        seen.update({f"  PSS MiB {name}": pss for name, (pss, _rss) in memory.items()})
        _stop(proc)
        restart_at = time.time()
        proc = _start(data_dir, name, ip, log)
        seen.update(_timeline(api, proc, name, cni, restart_at))
    finally:
        with contextlib.suppress(Exception):
            _stop(proc)
    print(json.dumps(seen))


def _baseline_tree(rev: str, into: Path) -> Path:
    """``src/`` of git revision ``rev``, extracted under ``into`` (the baseline's code)."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "src"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    # compiled into pyk8s's bytecode cache first, as an installed wheel ships compiled: a
    # revision that reads the cache does so from its first run; one that does not (before
    # pyk8s.server.bytecode) compiles on every start, as it did
    from pyk8s.server.bytecode import cache_dir  # this tree's (--inner runs a revision's)

    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(into / "src")],
        env={**env, "PYTHONPYCACHEPREFIX": str(cache_dir())}, check=True, capture_output=True,
    )  # fmt: skip
    return into / "src"


def _cell(runs: list[dict[str, float]], key: str) -> str:
    vals = [r[key] for r in runs if key in r]
    if not vals:
        return f"{'n/a':>13}"
    return f"{statistics.median(vals):6.2f} {max(vals):6.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--baseline", action="append", default=[], help="git revision measured alongside (HEAD~3)"
    )
    ap.add_argument("--no-tree", action="store_true", help="measure only the --baseline revisions")
    ap.add_argument(
        "--idle", type=float, default=20.0, help="seconds after Ready before memory is read"
    )
    ap.add_argument("--logs", type=Path, help="keep each run's server log in this directory")
    ap.add_argument("--inner", nargs=3, metavar=("DATA_DIR", "NAME", "IP"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner:
        inner(Path(args.inner[0]), args.inner[1], args.inner[2], args.idle)
        return
    load = Path("/proc/loadavg").read_text().split()[0]
    trees: dict[str, Path | None] = {"this tree": None}
    scratch = Path(tempfile.mkdtemp(prefix="pyk8s-startup-src-", dir="/tmp"))
    revisions = {rev: _baseline_tree(rev, scratch / str(i)) for i, rev in enumerate(args.baseline)}
    trees = {**revisions, **({} if args.no_tree else trees)}
    results: dict[str, list[dict[str, float]]] = {t: [] for t in trees}
    try:
        for i in range(args.runs):
            for label, src in trees.items():  # interleaved: both see the same load
                base = Path(tempfile.mkdtemp(prefix="pyk8s-startup-", dir="/tmp"))
                keep = None
                if args.logs is not None:
                    args.logs.mkdir(parents=True, exist_ok=True)
                    keep = args.logs / f"run{i + 1}-{label.replace(' ', '_')}.log"
                try:
                    results[label].append(one_run(base, src, keep, args.idle))
                finally:
                    shutil.rmtree(base, ignore_errors=True)
                got = ", ".join(f"{k} {v:.2f}" for k, v in results[label][-1].items())
                print(f"run {i + 1} {label}: {got}", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if args.baseline:  # the revisions' bytecode, compiled for this run only
            from pyk8s.server.bytecode import cache_dir

            shutil.rmtree(cache_dir() / str(scratch).lstrip("/"), ignore_errors=True)
    end = Path("/proc/loadavg").read_text().split()[0]
    print(f"\n`pyk8s server` start-up, seconds, {args.runs} runs (load average {load} → {end})\n")
    head = "".join(f" {label + ' p50/max':>15} |" for label in trees)
    print(f"| {'milestone':<34} |{head}")
    print(f"|{'-' * 36}|" + f"{'-' * 17}|" * len(trees))
    parts = sorted({k for rs in results.values() for r in rs for k in r if k.startswith("  ")})
    for key in (*FRESH, *RESTART, *CPU, *MEMORY, *parts):
        cells = "".join(f" {_cell(results[t], key):>15} |" for t in trees)
        print(f"| {key:<34} |{cells}")


if __name__ == "__main__":
    main()
