"""``pyk8s trace pod/NAME | deployment/NAME``: fetch the pod and its Events, print the
timeline (a table, or ``-o json``), and with ``--follow`` keep printing new steps from
watches on the pod and its Events until it is Ready or stuck/failed."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from typing import TYPE_CHECKING, Any, TextIO

from pyk8s.api.spans import PREFIX
from pyk8s.trace.timeline import Timeline, build

if TYPE_CHECKING:  # the client is imported when the command runs, not when the CLI parses
    from pyk8s.client.rest import Client

__all__ = ["add_parser", "run"]

Obj = dict[str, Any]

PODS = ("v1", "Pod")
EVENTS = ("v1", "Event")
DEPLOYMENTS = ("apps/v1", "Deployment")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("trace", help="a pod's journey: created, scheduled, pulled, started, ready")
    p.add_argument("target", metavar="pod/NAME|deployment/NAME")
    p.add_argument("--namespace", "-n", default=None)
    p.add_argument("--follow", "-f", action="store_true", help="until Ready or a failure")
    p.add_argument("--output", "-o", default="", choices=("", "table", "json"))
    p.add_argument("--kubeconfig", default=None, help="default: $KUBECONFIG, ~/.kube/config")
    p.add_argument(
        "--timeout", type=float, default=0.0, help="--follow: give up after N seconds (0: never)"
    )


async def _resolve(client: Client, target: str, ns: str) -> str:
    """The pod's name for ``pod/NAME``, ``NAME`` or ``deployment/NAME`` (its newest pod)."""
    kind, _, name = target.rpartition("/")
    kind = kind.lower()
    if kind in ("", "pod", "pods", "po"):
        return name
    if kind not in ("deployment", "deployments", "deploy"):
        raise ValueError(f"trace takes pod/NAME or deployment/NAME, not {target!r}")
    deploy = await client.get(DEPLOYMENTS, name, ns)
    labels = ((deploy.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    pods = (await client.list(PODS, ns, label_selector=selector or None)).get("items") or []
    owned = [p for p in pods if not (p["metadata"].get("deletionTimestamp"))] or pods
    if not owned:
        raise ValueError(f"deployment {ns}/{name} has no pods")
    newest = max(
        owned, key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"])
    )
    return str(newest["metadata"]["name"])


async def _snapshot(client: Client, ns: str, name: str) -> Timeline:
    pod = await client.get(PODS, name, ns)
    events = await client.list(
        EVENTS,
        ns,
        field_selector=f"involvedObject.name={name},involvedObject.uid={pod['metadata']['uid']}",
    )
    return build(pod, events.get("items") or [], spans=await _spans(client, ns, name, pod))


async def _spans(client: Client, ns: str, name: str, pod: Obj) -> list[Obj]:
    """The components' spans of the pod's trace; none from a server that keeps none (or
    when the user may not read them)."""
    from pyk8s.client import ApiError

    try:
        trace = await client.request("GET", f"{PREFIX}/namespaces/{ns}/pods/{name}")
    except ApiError:
        return []
    if trace.get("pod", {}).get("uid") != pod["metadata"]["uid"]:
        return []  # the pod was replaced in between
    return list(trace.get("spans") or [])


def _table(tl: Timeline, rows: list[Obj], out: TextIO, header: bool) -> None:
    widths = (max([len(r["step"]) for r in rows] + [18]), 27, 9)
    if header:
        node = f" on {tl.node}" if tl.node else ""
        print(f"pod {tl.namespace}/{tl.name} (uid {tl.uid}){node}", file=out)
        print(
            f"{'STEP':<{widths[0]}}  {'TIME':<{widths[1]}}  {'+GAP':>{widths[2]}}  DETAIL", file=out
        )
    for r in rows:
        mark = "!" if r["failed"] else ""
        gap = f"+{r['gapSeconds']:.3f}s" if r["precise"] else f"+{r['gapSeconds']:.0f}s"
        print(
            f"{mark + r['step']:<{widths[0]}}  {r['time']:<{widths[1]}}  {gap:>{widths[2]}}  "
            f"{r['detail']}",
            file=out,
        )
    out.flush()


def _summary(tl: Timeline, out: TextIO) -> None:
    rows = tl.rows()
    total = sum(r["gapSeconds"] for r in rows)  # whole-second steps never move it back
    print(f"result: {tl.result} (phase {tl.phase}) after {total:.3f}s", file=out)


async def _follow(client: Client, ns: str, name: str, json_out: bool, out: TextIO) -> Timeline:
    """Print new steps as the pod and its Events change, until the journey ends."""
    changed = asyncio.Event()

    from pyk8s.client import ClientError

    async def watch(resource: tuple[str, str], **kw: Any) -> None:
        while True:
            with contextlib.suppress(ClientError):
                async for _etype, _obj in client.watch(resource, ns, timeout_seconds=300, **kw):
                    changed.set()
            await asyncio.sleep(1.0)
            changed.set()

    tasks = [
        asyncio.create_task(watch(PODS, name=name)),
        asyncio.create_task(watch(EVENTS, field_selector=f"involvedObject.name={name}")),
    ]
    printed: set[tuple[str, str]] = set()  # (step, time): a late step may sort earlier
    try:
        while True:
            tl = await _snapshot(client, ns, name)
            rows = tl.rows()
            new = [r for r in rows if (r["step"], r["time"]) not in printed]
            if not json_out and new:
                _table(tl, new, out, header=not printed)
                printed.update((r["step"], r["time"]) for r in new)
            if tl.done:
                return tl
            changed.clear()
            await changed.wait()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _main(args: argparse.Namespace, out: TextIO) -> int:
    from pyk8s.client.rest import Client

    client = Client.from_kubeconfig(args.kubeconfig, user_agent="pyk8s-trace")
    async with client:
        ns = args.namespace or client.config.namespace
        name = await _resolve(client, args.target, ns)
        json_out = args.output == "json"
        if args.follow:
            try:
                async with asyncio.timeout(args.timeout or None):
                    tl = await _follow(client, ns, name, json_out, out)
            except TimeoutError:
                tl = await _snapshot(client, ns, name)
                print(f"pyk8s: trace: still {tl.result} after {args.timeout:g}s", file=sys.stderr)
                if json_out:
                    print(json.dumps(tl.to_json(), indent=2), file=out)
                return 1
        else:
            tl = await _snapshot(client, ns, name)
        if json_out:
            print(json.dumps(tl.to_json(), indent=2), file=out)
        else:
            if not args.follow:
                _table(tl, tl.rows(), out, header=True)
            _summary(tl, out)
    return 0


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """The ``pyk8s trace`` command; 1 with a message on an error (pod not found, …)."""
    from pyk8s.client import ClientError

    try:
        return asyncio.run(_main(args, out or sys.stdout))
    except (ClientError, ValueError, OSError) as err:
        print(f"pyk8s: trace: {err}", file=sys.stderr)
        return 1
