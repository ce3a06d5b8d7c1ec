"""One extra API server process of ``--apiserver-workers N``: the API on both cores.

Why: one Python process serves the API on one core (the GIL), ~0.8 ms of CPU per pod
create, so creates stop at ~1,200/s however many cores the host has. Upstream scales the
same way this does: several kube-apiservers over one store, each with its own watch
cache. The primary API server (``pyk8s server``/``pyk8s apiserver``) opens the SQLite
store in shared mode and, once it has made the bootstrap objects and policy, starts N-1
of these as supervised children (:mod:`pyk8s.server.supervisor`, forked from the zygote
when there is one). Each opens the same SQLite file in shared mode (writes serialise
across the processes; every process's watch sees every write, in revision order), builds
its own watch cache, and listens on the primary's port with SO_REUSEPORT, so the kernel
spreads new connections over the processes.

A worker gets the primary's resolved options from a 0600 file in the data dir
(:func:`pyk8s.server.apiserver.write_worker_options`), runs none of the per-server
singletons (bootstrap, the endpoint reconciler and identity Lease, the compactor,
allocation repair, snapshots, manifests, the components' kubeconfigs, writing renewed
certificates: it only loads the renewed serving certificate the primary wrote), and has
its own ``/metrics``, ``/healthz``, JSON logs and clean SIGTERM stop. ``pyk8s
apiserver-worker`` is not meant to be run by hand.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from pyk8s.server import gcfreeze, malloctrim
from pyk8s.server.apiserver import read_worker_options, start_apiserver
from pyk8s.server.component import stop_on_signals

log = logging.getLogger(__name__)


def preload() -> None:
    """What a worker imports while it starts, imported in the zygote once (see
    :func:`pyk8s.server.startgate.import_component`)."""
    import pyk8s.apiserver.handlers
    import pyk8s.storage.sqlite  # noqa: F401


async def run(options_file: Path) -> None:
    """Serve until SIGTERM/SIGINT, then stop cleanly (open watches ended, the store
    closed)."""
    opts = read_worker_options(options_file)
    stop = stop_on_signals()  # a SIGTERM while starting stops it once started
    running = await start_apiserver(opts, worker=True)
    freezer = asyncio.create_task(gcfreeze.run(young=gcfreeze.YOUNG_THRESHOLD), name="gc-freeze")
    trimmer = asyncio.create_task(malloctrim.run(), name="malloc-trim")
    await stop.wait()
    log.info("shutting down")
    freezer.cancel()
    trimmer.cancel()
    await running.stop()
