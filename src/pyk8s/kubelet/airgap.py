"""Air-gapped images: every image archive in the node's images directory is imported
into its containerd at start **and whenever one is added or replaced** while the node
runs (k3s imports ``DATA_DIR/agent/images`` only at start, a known complaint).

The directory is polled (one ``scandir`` a second is cheaper than it sounds and needs
no inotify binding); a file is imported once its size and mtime stayed the same for one
poll, so an archive still being copied in is not read half-written (dropping it in
with a rename is picked up at the next poll). After an import the kubelet is told, so
pods waiting for that image start at once instead of at their next back-off retry.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

__all__ = ["ARCHIVE_SUFFIXES", "ImageDirWatcher"]

log = logging.getLogger(__name__)

#: what ``ctr images import`` reads (it detects gzip and zstd compression itself)
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.zstd")

Signature = tuple[int, int]


class ImageDirWatcher:
    """Imports the archives of ``directory`` with ``import_archive``; ``on_imported`` is
    called after each successful import."""

    def __init__(
        self,
        directory: Path,
        import_archive: Callable[[Path], Awaitable[None]],
        on_imported: Callable[[Path], None] | None = None,
        interval: float = 1.0,
    ) -> None:
        self.directory = directory
        self.import_archive = import_archive
        self.on_imported = on_imported
        self.interval = interval
        #: archive -> the signature it was imported (or failed) at
        self._done: dict[Path, Signature] = {}
        #: archive -> its signature at the previous poll
        self._seen: dict[Path, Signature] = {}

    def _scan(self) -> dict[Path, Signature]:
        out: dict[Path, Signature] = {}
        try:
            entries = list(os.scandir(self.directory))
        except OSError:
            return out
        for entry in entries:
            if entry.name.startswith(".") or not entry.name.endswith(ARCHIVE_SUFFIXES):
                continue
            try:
                st = entry.stat()
            except OSError:
                continue
            if entry.is_file():
                out[Path(entry.path)] = (st.st_size, st.st_mtime_ns)
        return out

    async def _import(self, path: Path, sig: Signature) -> None:
        self._done[path] = sig
        try:
            await self.import_archive(path)
        except Exception as err:  # a bad archive must not stop the others
            log.warning(
                "importing image archive failed", extra={"path": str(path), "error": str(err)}
            )
            return
        log.info("imported image archive", extra={"path": str(path)})
        if self.on_imported is not None:
            self.on_imported(path)

    async def import_existing(self) -> None:
        """Import every archive there now (at start: they are complete)."""
        for path, sig in sorted((await asyncio.to_thread(self._scan)).items()):
            await self._import(path, sig)

    async def poll(self) -> None:
        """One look at the directory: import what is new and settled."""
        now = await asyncio.to_thread(self._scan)
        for path, sig in sorted(now.items()):
            if self._done.get(path) != sig and self._seen.get(path) == sig:
                await self._import(path, sig)
        self._seen = now
        for gone in self._done.keys() - now.keys():
            del self._done[gone]

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            await self.poll()
