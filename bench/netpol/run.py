"""NetworkPolicy programming latency: a pod label change → the rule in the kernel (root).

Issue 20 asks for p50/p99 from a pod label change to the rule in place with 1,000 pods
and 200 policies. The objects: 1,000 pods in 20 namespaces (half of them on the measured
node), 200 policies (10 per namespace, each selecting one ``app`` label, with ingress
from a pod selector, a namespace selector and an ipBlock with an except on a numeric and
a named port, and egress to a pod selector and a CIDR). Each change relabels one pod
(it leaves one policy's selection and joins another's); a sync is what the controller
does: compile the whole ruleset, diff it against the last one and run the diff with
``nft -f`` in a private network namespace. The baseline rows, measured in the same run:
the same pods with no policy (the compile finds nothing to apply) and the fixed cost of
one ``nft -f`` adding a single set element.

    python3 bench/netpol/run.py [--pods 1000] [--policies 200] [--changes 30]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench._table import Row, table  # noqa: E402

from pyk8s.netpol.rules import NetpolRuleset, PodInfo, compile_policies  # noqa: E402

NODE = "bench-node"
NAMESPACES = 20


def pods(count: int, relabelled: int = -1, generation: int = 0) -> list[PodInfo]:
    out = []
    for n in range(count):
        app = (n + generation) % 10 if n == relabelled else n % 10
        out.append(
            PodInfo(
                namespace=f"ns-{n % NAMESPACES}",
                name=f"pod-{n}",
                ip=f"10.42.{n // 250}.{n % 250 + 2}",
                node=NODE if n % 2 == 0 else "other",
                labels={"app": f"app-{app}", "role": f"r-{n % 5}"},
                named_ports={("http", "TCP"): 8080 + n % 3},
            )
        )
    return out


def namespaces() -> list[dict[str, Any]]:
    return [
        {"metadata": {"name": f"ns-{i}", "labels": {"team": f"t-{i % 4}"}}}
        for i in range(NAMESPACES)
    ]


def policies(count: int) -> list[dict[str, Any]]:
    out = []
    for i in range(count):
        out.append({
            "metadata": {"namespace": f"ns-{i % NAMESPACES}", "name": f"pol-{i}"},
            "spec": {
                "podSelector": {"matchLabels": {"app": f"app-{i // NAMESPACES % 10}"}},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{
                    "from": [{"podSelector": {"matchLabels": {"role": f"r-{i % 5}"}}},
                             {"namespaceSelector": {"matchLabels": {"team": f"t-{i % 4}"}}},
                             {"ipBlock": {"cidr": "192.168.0.0/16",
                                          "except": ["192.168.1.0/24"]}}],
                    "ports": [{"protocol": "TCP", "port": 80}, {"protocol": "TCP", "port": "http"}],
                }],
                "egress": [{"to": [{"podSelector": {"matchLabels": {"app": f"app-{(i + 1) % 10}"}}},
                                   {"ipBlock": {"cidr": "10.0.0.0/8"}}]}],
            },
        })  # fmt: skip
    return out


def nft(netns: str, text: str) -> None:
    done = subprocess.run(
        ["ip", "netns", "exec", netns, "nft", "-f", "-"],
        input=text, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(done.stderr[:2000])


def measure(netns: str, n_pods: int, n_policies: int, changes: int) -> list[Row]:
    pols, nss = policies(n_policies), namespaces()
    label = f"{n_pods} pods, {n_policies} policies"
    t = time.perf_counter()
    last: NetpolRuleset = compile_policies(pols, pods(n_pods), nss, NODE)
    nft(netns, last.text())
    full = time.perf_counter() - t
    compiles, applies, totals, lines = [], [], [], 0
    for c in range(changes):
        t0 = time.perf_counter()
        # relabel an even (local) pod: it changes target sets and peer sets
        new = compile_policies(pols, pods(n_pods, relabelled=2 * c, generation=1 + c), nss, NODE)
        diff = new.diff_text(last)
        t1 = time.perf_counter()
        nft(netns, diff)
        t2 = time.perf_counter()
        compiles.append(t1 - t0)
        applies.append(t2 - t1)
        totals.append(t2 - t0)
        lines += diff.count("\n")
        last = new
    return [
        Row(f"{label}: full sync (compile + nft -f)", 1, 1, full, [full]),
        Row(f"{label}: label change, compile + diff", 1, changes, sum(compiles), compiles),
        Row(f"{label}: label change, nft -f of the diff", 1, changes, sum(applies), applies),
        Row(f"{label}: label change → rule in place", 1, changes, sum(totals), totals),
    ], lines / max(changes, 1)


def baseline(netns: str, n_pods: int, changes: int) -> list[Row]:
    nss = namespaces()
    empty = compile_policies([], pods(n_pods), nss, NODE)
    nft(netns, empty.text())
    syncs, elements = [], []
    for c in range(changes):
        t = time.perf_counter()
        new = compile_policies([], pods(n_pods, relabelled=2 * c, generation=1 + c), nss, NODE)
        assert new.diff_text(empty) == ""
        syncs.append(time.perf_counter() - t)
        t = time.perf_counter()
        nft(netns, f"add element inet pyk8s-netpol ingress-isolated {{ 10.99.0.{c + 1} }}\n")
        elements.append(time.perf_counter() - t)
    return [
        Row(f"{n_pods} pods, no policy: sync (baseline)", 1, changes, sum(syncs), syncs),
        Row("nft -f of one set element (baseline)", 1, changes, sum(elements), elements),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--policies", type=int, default=200)
    parser.add_argument("--changes", type=int, default=30)
    args = parser.parse_args()
    netns = f"bench-np-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        rows = baseline(netns, args.pods, args.changes)
        measured, lines = measure(netns, args.pods, args.policies, args.changes)
        rows += measured
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)
    print(table(rows))
    print(f"\nnft lines per label change: {lines:.1f}")


if __name__ == "__main__":
    main()
