"""The ``pyk8s`` command: one entry point for every component, k3s-style.

Subcommands that are not built yet say so and exit non-zero, rather than pretend.
Errors a user can act on (a locked or corrupt database, a bad endpoint) are printed as
one line, not as a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from pyk8s import __version__
from pyk8s.storage import StoreError, open_store

NOT_YET = {
    "server": "the API server (issue 3)",
    "agent": "the worker agent (issue 6)",
    "apiserver": "the API server (issue 3)",
    "scheduler": "the scheduler (issue 4)",
    "controller-manager": "the controller manager (issue 4)",
    "kubelet": "the kubelet (issue 5)",
    "proxy": "kube-proxy (issue 6)",
    "dns": "cluster DNS (issue 6)",
    "sim-nodes": "simulated nodes (issue 4)",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyk8s", description="Kubernetes, written in Python.")
    p.add_argument("--version", action="version", version=f"pyk8s {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, what in NOT_YET.items():
        sp = sub.add_parser(name, help=f"{what}: not built yet")
        sp.add_argument("rest", nargs=argparse.REMAINDER)
    check = sub.add_parser(
        "datastore-check", help="open a datastore endpoint and print its revisions"
    )
    check.add_argument("--datastore-endpoint", required=True, metavar="URL")
    return p


async def _datastore_check(url: str) -> None:
    store = await open_store(url)
    try:
        rev = await store.current_revision()
        compacted = await store.compacted_revision()
        keys = await store.count("/")
        print(f"ok: revision {rev}, compacted {compacted}, {keys} keys")
    finally:
        await store.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 2
    if args.command in NOT_YET:
        print(
            f"pyk8s {args.command}: not yet: {NOT_YET[args.command]} is not built in this "
            "version. The revisioned store is (see `pyk8s datastore-check`).",
            file=sys.stderr,
        )
        return 1
    if args.command == "datastore-check":
        try:
            asyncio.run(_datastore_check(args.datastore_endpoint))
        except (StoreError, ValueError) as err:
            print(f"pyk8s: error: {err}", file=sys.stderr)
            return 1
    return 0
