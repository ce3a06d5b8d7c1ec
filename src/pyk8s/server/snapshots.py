"""``pyk8s etcd-snapshot save|ls|delete|prune``, scheduled snapshots in ``pyk8s server``
and ``pyk8s server --cluster-reset --cluster-reset-restore-path FILE`` (k3s's names).

The datastore in use decides how a snapshot is taken (:mod:`pyk8s.storage.snapshot`):
SQLite's online backup or etcd's snapshot stream; the commands and the file layout are
the same for both: ``DATA_DIR/server/db/snapshots/<name>-<node>-<unix seconds>``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pyk8s.storage import open_store
from pyk8s.storage.endpoint import parse_endpoint
from pyk8s.storage.snapshot import (
    RestoreResult,
    SnapshotFile,
    list_snapshots,
    prune,
    restore,
    save_etcd,
    save_sqlite,
    snapshot_name,
    verify,
)

log = logging.getLogger(__name__)

#: k3s's defaults
DEFAULT_CRON = "0 */12 * * *"
DEFAULT_RETENTION = 5
SCHEDULED_NAME = "etcd-snapshot"
ON_DEMAND_NAME = "on-demand"


def default_dir(data_dir: Path) -> Path:
    return data_dir / "server" / "db" / "snapshots"


@dataclass(frozen=True)
class Target:
    """Where snapshots come from and go to."""

    endpoint: str
    directory: Path
    node: str = ""

    @property
    def node_name(self) -> str:
        return self.node or socket.gethostname()


async def save(target: Target, name: str) -> SnapshotFile:
    """Take one snapshot named ``<name>-<node>-<unix seconds>``."""
    ep = parse_endpoint(target.endpoint)
    dest = target.directory / snapshot_name(name, target.node_name)
    if ep.kind == "sqlite":
        assert ep.path is not None
        await asyncio.to_thread(save_sqlite, ep.path, dest)
    else:
        await save_etcd(ep.hosts, dest, ep.tls)
    st = dest.stat()
    return SnapshotFile(dest.name, dest, st.st_size, st.st_mtime)


def find(target: Target, name: str) -> Path | None:
    """A snapshot by file name (or path inside the directory)."""
    path = target.directory / Path(name).name
    return path if path.is_file() else None


def format_list(snapshots: list[SnapshotFile]) -> str:
    """k3s's ``etcd-snapshot ls`` table: Name, Location, Size, Created."""
    rows = [("Name", "Location", "Size", "Created")]
    for s in snapshots:
        created = datetime.fromtimestamp(s.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        rows.append((s.name, s.location, str(s.size), created))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        " ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + " " + r[3] for r in rows
    )


async def cluster_reset_restore(endpoint: str, path: Path) -> RestoreResult:
    """Make the datastore equal to the snapshot (the server must not be running: the
    SQLite store's lock refuses a second opener). The file is checked before the
    datastore is even opened."""
    await asyncio.to_thread(verify, path)
    store = await open_store(endpoint)
    try:
        return await restore(store, path)
    finally:
        await store.close()


async def run_schedule(
    target: Target, cron: str, retention: int, name: str = SCHEDULED_NAME
) -> None:
    """Take a snapshot at every time of ``cron`` (UTC) and keep the ``retention`` newest."""
    # imported here: the CLI reads this module's defaults for every command it parses,
    # and the cron parser's module pulls in the whole client (~0.7 s of imports)
    from pyk8s.controllers.cronjob import Schedule

    schedule = Schedule.parse(cron)
    while True:
        now = datetime.now(UTC)
        nxt = schedule.next(now)
        if nxt is None:
            return
        await asyncio.sleep(max(0.0, (nxt - datetime.now(UTC)).total_seconds()))
        try:
            snap = await save(target, name)
            gone = await asyncio.to_thread(prune, target.directory, name, retention)
            log.info(
                "saved scheduled snapshot",
                extra={"snapshot": str(snap.path), "size": snap.size, "pruned": len(gone)},
            )
        except Exception as err:  # one failed snapshot must not stop the next
            log.error("scheduled snapshot failed", extra={"error": str(err)})


__all__ = [
    "DEFAULT_CRON",
    "DEFAULT_RETENTION",
    "ON_DEMAND_NAME",
    "SCHEDULED_NAME",
    "Target",
    "cluster_reset_restore",
    "find",
    "format_list",
    "list_snapshots",
    "prune",
    "run_schedule",
    "save",
]
