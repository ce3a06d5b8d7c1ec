"""kube-proxy's network programming cost at scale, per proxy mode, in private netns (root).

Issues 6 and 20 ask for network programming latency (a Service or EndpointSlice change →
rules in the kernel) with 1,000 services x 10 endpoints and with 10,000 services, per proxy
mode. Each mode gets a fresh network namespace: one full sync (render + apply of the whole
ruleset into an empty table, the render caches emptied first, as at a proxy's start), then
``--changes`` syncs that each move one endpoint of one service (render of the whole
ruleset, mostly from the per-service cache, plus the incremental ``iptables-restore
--noflush`` or ``nft -f`` transaction). The iptables rows are the baseline for the
nftables rows, measured in the same run; the first row is the fixed cost of an
iptables-restore of a one-service ruleset. The host's own tables are never touched.
A mode suffixed ``-dual`` (``nftables-dual``, ``iptables-dual``) is a dual-stack node:
every Service has an IPv4 and an IPv6 ClusterIP and a slice of each family, a change
moves one endpoint in both, and each sync renders and applies both families' rulesets
(the ``ip`` and ``ip6`` tables side by side, or iptables then ip6tables), as the proxier
does; its single-stack mode is the baseline in the same run.

For nftables the last rows are a restarted proxy's full sync: the whole table rendered
again (render caches emptied) and written over the one in place in one transaction (a
proxy's first sync into a table that does not exist yet writes it in pieces side by
side, each as soon as it is rendered, instead: :meth:`NftApplier.render_and_apply`, which
the first-sync rows go through as the proxier does).

The ``CPU time`` rows count the CPU seconds this process and its ``nft`` or
``iptables-restore`` children used for a sync (the other rows are wall-clock time): on a
machine busy with other work they show what a sync costs by itself.

In nftables modes the syncs go as the proxier's: the full one renders every Service
(:meth:`NftRenderer.render`), each change re-renders only the changed Service
(:meth:`NftRenderer.update`) and writes only its chains and elements. ``--baseline REV``
also measures the proxy code of git revision ``REV`` (its ``src``, exported to a temporary
directory, measured by this file's code in a child process; a revision without partial
syncs renders everything each time) right before each of this tree's measurements, on
the same machine in the same run; its rows carry ``REV`` in the backend column.

    python3 bench/network/proxy.py [--services 1000,10000] [--endpoints 10] [--changes 20]
                                   [--modes iptables,nftables[,nftables-dual,iptables-dual]]
                                   [--baseline REV]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import resource
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench._table import Row, table  # noqa: E402

from pyk8s.proxy import model, nftrules, rules  # noqa: E402
from pyk8s.proxy.iptables import Applier  # noqa: E402
from pyk8s.proxy.nftables import NftApplier  # noqa: E402
from pyk8s.proxy.rules import ProxyConfig, family_config, render  # noqa: E402

#: the Service whose endpoint each change moves (see :func:`objects`)
MOVED = "bench/svc-0"
#: None in a ``--baseline`` revision from before partial syncs: every sync renders it all
NftRenderer = getattr(nftrules, "NftRenderer", None)


def _pod_ip(n: int, family: int = 4) -> str:
    if family == 6:
        return f"fd00:42::{n + 2:x}"
    return f"10.42.{n // 250 % 250}.{n % 250 + 2}"


def objects(
    services: int, endpoints: int, generation: int = 0, dual: bool = False
) -> tuple[list[Any], list[Any]]:
    """``services`` ClusterIP services (port 80 → 8080), ``endpoints`` ready pods each; only
    the first service's slices change between generations (and get a new
    resourceVersion, as an informer would see it). ``dual``: every Service also has an
    IPv6 ClusterIP and an IPv6 slice."""
    svcs, slices = [], []
    families = (4, 6) if dual else (4,)
    for i in range(services):
        name = f"svc-{i}"
        ips = [f"10.43.{i // 250}.{i % 250 + 2}", f"fd00:43::{i + 2:x}"][: len(families)]
        svcs.append({
            "metadata": {"name": name, "namespace": "bench", "resourceVersion": "1"},
            "spec": {"type": "ClusterIP", "clusterIP": ips[0], "clusterIPs": ips,
                     "ipFamilies": [f"IPv{f}" for f in families],
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080,
                                "protocol": "TCP"}]},
        })  # fmt: skip
        for family in families:
            eps = [
                {"addresses": [_pod_ip(i * endpoints + j, family)],
                 "conditions": {"ready": True}, "nodeName": "bench-node"}
                for j in range(endpoints)
            ]  # fmt: skip
            if i == 0:  # the service the changes move between generations
                moved = (
                    f"fd00:41::{generation + 2:x}"
                    if family == 6
                    else f"10.41.{generation // 250 % 250}.{generation % 250 + 2}"
                )
                eps[0]["addresses"] = [moved]
            slices.append({
                "metadata": {"name": f"{name}-{family}", "namespace": "bench",
                             "resourceVersion": str(generation + 2) if i == 0 else "1",
                             "labels": {"kubernetes.io/service-name": name}},
                "addressType": f"IPv{family}", "endpoints": eps,
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            })  # fmt: skip
    return svcs, slices


def _clear_render_caches() -> None:
    """A proxy's first sync parses and renders everything: forget an earlier run's work."""
    rules._fragments.clear()
    nftrules._fragments.clear()
    model._parsed.clear()


class _Netns:
    """A throwaway network namespace (the host's own tables are never touched)."""

    def __init__(self) -> None:
        self.name = f"pkbench{uuid.uuid4().hex[:6]}"

    def __enter__(self) -> list[str]:
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        return ["ip", "netns", "exec", self.name]

    def __exit__(self, *_: object) -> None:
        subprocess.run(["ip", "netns", "delete", self.name], check=False)


async def baseline(endpoints: int, changes: int) -> Row:
    """iptables-restore of a one-service ruleset: the fixed cost of a restore."""
    config = ProxyConfig(node_name="bench-node", node_ips=("192.0.2.10",))
    small = [render(*objects(1, endpoints, g), config) for g in range(changes)]
    times = []
    with _Netns() as prefix:
        applier = Applier(prefix)
        await applier.ensure_jumps()
        for g in range(changes):
            t0 = time.perf_counter()
            await applier.apply(small[g])
            times.append(time.perf_counter() - t0)
    return Row("iptables-restore, 1 service (baseline)", 1, changes, sum(times), times)


def _cpu() -> float:
    """CPU seconds used so far by this process and its finished children (``nft``,
    ``iptables-restore``): what a sync costs whatever else the machine is doing."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _kill_children() -> None:
    """Stop this process's own children (an iptables-restore past the time limit)."""
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:
            os.kill(int(stat.parent.name), signal.SIGKILL)


async def measure(
    mode: str, services: int, endpoints: int, changes: int, full_limit: float
) -> list[Row]:
    """A first (full) sync from an empty table, then ``changes`` syncs that each move one
    endpoint of one service: render and apply timed apart and together. A full sync still
    running after ``full_limit`` seconds is stopped and reported as such."""
    base, dual = mode.removesuffix("-dual"), mode.endswith("-dual")
    config = ProxyConfig(
        node_name="bench-node",
        node_ips=("192.0.2.10", "2001:db8::10"),
        cluster_cidr="10.42.0.0/16,fd00:42::/56" if dual else "10.42.0.0/16",
    )
    configs = [family_config(config, f) for f in ((4, 6) if dual else (4,))]
    _clear_render_caches()
    with _Netns() as prefix:
        appliers: list[Any] = []
        nfts: list[Any] = []  # the NftAppliers
        for cfg in configs:
            if base == "nftables":
                nfts.append(NftApplier(prefix))
                appliers.append(nfts[-1].apply)
            else:
                applier = Applier(
                    prefix, iptables="ip6tables" if cfg.ip_family == 6 else "iptables"
                )
                await applier.ensure_jumps()
                appliers.append(applier.apply)
        partial = base == "nftables" and NftRenderer is not None
        renderers = [NftRenderer(cfg) for cfg in configs] if partial and NftRenderer else []

        def full_render(svcs: Any, slices: Any) -> list[Any]:
            if partial:
                return [r.render(svcs, slices) for r in renderers]
            one = nftrules.render_nft if base == "nftables" else render
            return [one(svcs, slices, cfg) for cfg in configs]

        def change_render(svcs: Any, slices: Any) -> list[Any]:
            """What the proxier renders after one Service changed."""
            if not partial:
                return full_render(svcs, slices)
            moved = slices[: len(configs)]  # the moved Service's slices come first
            return [r.update({MOVED: (svcs[0], moved)}) for r in renderers]

        async def apply(rulesets: list[Any]) -> None:
            """As the proxier: the nftables families side by side, iptables one by one."""
            pairs = zip(appliers, rulesets, strict=True)
            if base == "nftables":
                await asyncio.gather(*(apply_one(ruleset) for apply_one, ruleset in pairs))
                return
            for apply_one, ruleset in pairs:
                await apply_one(ruleset)

        async def first_sync(svcs: Any, slices: Any) -> None:
            """As the proxier's first sync: nftables writes pieces while it renders."""
            if not partial or not hasattr(NftApplier, "render_and_apply"):
                return await apply(full_render(svcs, slices))
            await asyncio.gather(*(
                nft.render_and_apply(r, svcs, slices)
                for nft, r in zip(nfts, renderers, strict=True)
            ))  # fmt: skip

        svcs, slices = objects(services, endpoints, dual=dual)
        c0, t0 = _cpu(), time.perf_counter()
        tool = "nft -f" if base == "nftables" else "iptables-restore"
        if dual:
            tool += " (both families)"
        label = f"{mode}, {services} svc x {endpoints} ep"
        try:
            await asyncio.wait_for(first_sync(svcs, slices), full_limit)
        except TimeoutError:
            _kill_children()
            what = f"{label}: full sync (render+{tool}) STOPPED, unfinished after"
            return [Row(what, 1, 1, full_limit, [full_limit])]
        full_s, full_cpu = [time.perf_counter() - t0], [_cpu() - c0]
        render_s, apply_s, total_s, cpu_s = [], [], [], []
        for g in range(changes):
            svcs, slices = objects(services, endpoints, g + 1, dual=dual)
            c0, t0 = _cpu(), time.perf_counter()
            ruleset = change_render(svcs, slices)
            t1 = time.perf_counter()
            await apply(ruleset)
            t2 = time.perf_counter()
            render_s.append(t1 - t0)
            apply_s.append(t2 - t1)
            total_s.append(t2 - t0)
            cpu_s.append(_cpu() - c0)
        rows = []
        if base == "nftables":  # a restarted proxy: the whole table again, over the old one
            _clear_render_caches()
            nfts = [NftApplier(prefix) for _ in configs]
            appliers = [nft.apply for nft in nfts]
            renderers = [NftRenderer(cfg) for cfg in configs] if partial and NftRenderer else []
            what = f"{label}: full sync over the table in place (restart)"
            c0, t0 = _cpu(), time.perf_counter()
            try:
                await asyncio.wait_for(first_sync(svcs, slices), full_limit)
            except TimeoutError:
                _kill_children()
                rows = [Row(f"{what} STOPPED, unfinished after", 1, 1, full_limit, [full_limit])]
            else:
                again, again_cpu = [time.perf_counter() - t0], [_cpu() - c0]
                rows = [Row(what, 1, 1, again[0], again),
                        Row(f"{what}, CPU time", 1, 1, again[0], again_cpu)]  # fmt: skip
    return [
        Row(f"{label}: full sync (render+{tool})", 1, 1, sum(full_s), full_s),
        Row(f"{label}: render", 1, changes, sum(render_s), render_s),
        Row(f"{label}: {tool}, changed part only", 1, changes, sum(apply_s), apply_s),
        Row(f"{label}: one change programmed (render+apply)", 1, changes, sum(total_s),
            total_s),
        Row(f"{label}: full sync, CPU time (python+{tool})", 1, 1, sum(full_s), full_cpu),
        Row(f"{label}: one change, CPU time (python+{tool})", 1, changes, sum(total_s), cpu_s),
        *rows,
    ]  # fmt: skip


#: run in a child process: this file's :func:`measure` on another revision's ``src``
_CHILD = """
import asyncio, json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
from bench.network import proxy
mode, size, endpoints, changes, limit = sys.argv[3], *map(int, sys.argv[4:7]), float(sys.argv[7])
rows = asyncio.run(proxy.measure(mode, size, endpoints, changes, limit))
print(json.dumps([[r.what, r.clients, r.ops, r.seconds, r.latencies] for r in rows]))
"""


def export(rev: str, into: Path) -> str:
    """``src`` of git revision ``rev`` under ``into``; its short hash."""
    short = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", rev],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", short, "src"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return short


def measure_revision(
    tree: Path, rev: str, mode: str, services: int, endpoints: int, changes: int, limit: float
) -> list[Row]:
    """:func:`measure` on the ``src`` exported to ``tree`` (a child process, so its
    modules and caches are its own)."""
    src = str(tree / "src")
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(ROOT), src, mode, str(services), str(endpoints),
         str(changes), str(limit)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": src},
    )  # fmt: skip
    if done.returncode != 0:
        sys.exit(f"the baseline {rev} failed:\n{done.stderr[-3000:]}")
    rows = json.loads(done.stdout.strip().splitlines()[-1])
    return [Row(what, clients, ops, seconds, lat, rev) for what, clients, ops, seconds, lat in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", default="1000,10000", help="comma-separated sizes")
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--modes", default="iptables,nftables")
    parser.add_argument(
        "--full-limit", type=float, default=600.0, help="stop a full sync after this many s"
    )
    parser.add_argument(
        "--baseline", metavar="REV", help="also measure git revision REV, in the same run"
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/network/proxy.py needs root (it programs rules in its own netns)")
    sizes = [int(n) for n in args.services.split(",")]
    modes = args.modes.split(",")

    async def all_rows(tree: Path | None, rev: str) -> list[Row]:
        rows = [await baseline(args.endpoints, args.changes)]
        for size in sizes:
            for mode in modes:
                if tree is not None:
                    rows += measure_revision(tree, rev, mode, size, args.endpoints,
                                             args.changes, args.full_limit)  # fmt: skip
                for row in await measure(mode, size, args.endpoints, args.changes, args.full_limit):
                    row.backend = "this tree" if tree is not None else ""
                    rows.append(row)
        return rows

    with tempfile.TemporaryDirectory(prefix="pyk8s-bench-proxy-") as tmp:
        tree, rev = (Path(tmp), export(args.baseline, Path(tmp))) if args.baseline else (None, "")
        rows = asyncio.run(all_rows(tree, rev))
    print(f"\n### kube-proxy programming: {args.changes} changes, one endpoint moved each\n")
    if tree is not None:
        print(f"(rows marked {rev} are that revision's code, measured just before this tree's)\n")
    print(table(rows, backend_column=tree is not None))


if __name__ == "__main__":
    main()
