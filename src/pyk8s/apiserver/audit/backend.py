"""Where audit events go: a JSON-lines file (or stdout), written off the request path.

A request only encodes its event and queues the bytes (upstream's batch backend); one
writer thread drains the queue in batches, at most every 50 ms unless a batch is full, so
file writes never block the event loop and a busy server does not wake the writer per
request.
:meth:`LogBackend.shutdown` writes what is still queued (SIGTERM loses nothing).

The file rotates like upstream's (lumberjack): when the next line would take it over
``--audit-log-maxsize`` megabytes (100 when 0), it is renamed ``<name>-<UTC time><ext>``
(``audit-2026-01-02T03-04-05.678.log``) and a new file is started; backups beyond
``--audit-log-maxbackup`` or older than ``--audit-log-maxage`` days are removed (0: kept).
New files are created mode 0600.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

#: lumberjack's size when none is given
DEFAULT_MAX_SIZE_MB = 100
#: most events written in one go
BATCH = 1000
#: how long the writer lets events gather after a write: a busy server wakes it a few
#: times a second, not once per request (upstream's batch backend waits up to 30 s)
BATCH_WAIT = 0.05
_BACKUP_TIME = "%Y-%m-%dT%H-%M-%S"


class LogBackend:
    """JSON lines to ``path`` (``-``: stdout), rotated by size, age and count."""

    def __init__(
        self, path: str, *, max_size_mb: int = 0, max_backups: int = 0, max_age_days: int = 0
    ) -> None:
        self.path = path
        self.max_bytes = (max_size_mb or DEFAULT_MAX_SIZE_MB) * 1024 * 1024
        self.max_backups = max_backups
        self.max_age_days = max_age_days
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._file: BinaryIO | None = None
        self._size = 0
        if path != "-":
            self._open()  # a path that cannot be written stops the server at start

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="audit-log", daemon=True)
        self._thread.start()

    def process(self, line: bytes) -> None:
        """Queue one encoded event (a JSON object, no newline)."""
        self._queue.put(line)

    def shutdown(self) -> None:
        """Write everything queued, then stop the writer."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join()
        self._thread = None
        if self._file is not None:
            self._file.close()
            self._file = None

    # ------------------------------------------------------------------ the writer

    def _run(self) -> None:
        stopping = False
        while not stopping:
            lines: list[bytes] = []
            item = self._queue.get()
            while item is not None:
                lines.append(item)
                if len(lines) >= BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            stopping = item is None
            try:
                self._write(lines)
            except OSError as err:
                log.error("audit log: cannot write %d events to %s: %s", len(lines), self.path, err)
            if not stopping and len(lines) < BATCH:
                time.sleep(BATCH_WAIT)

    def _write(self, lines: list[bytes]) -> None:
        if self.path == "-":
            out = sys.stdout.buffer
            out.write(b"".join(line + b"\n" for line in lines))
            out.flush()
            return
        chunk: list[bytes] = []
        size = self._size
        for line in lines:
            data = line + b"\n"
            if size + len(data) > self.max_bytes and size > 0:
                self._flush(chunk)
                chunk = []
                self._rotate()
                size = 0
            chunk.append(data)
            size += len(data)
        self._flush(chunk)

    def _flush(self, chunk: list[bytes]) -> None:
        if not chunk:
            return
        if self._file is None:
            self._open()
        assert self._file is not None
        data = b"".join(chunk)
        self._file.write(data)
        self._file.flush()
        self._size += len(data)

    def _open(self) -> None:
        path = Path(self.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._file = os.fdopen(fd, "ab")
        self._size = os.fstat(fd).st_size

    def _rotate(self) -> None:
        assert self._file is not None
        self._file.close()
        self._file = None
        path = Path(self.path)
        now = datetime.now(UTC)
        stamp = now.strftime(_BACKUP_TIME) + f".{now.microsecond // 1000:03d}"
        os.rename(path, path.with_name(f"{path.stem}-{stamp}{path.suffix}"))
        self._open()
        self._remove_old_backups()

    def _remove_old_backups(self) -> None:
        path = Path(self.path)
        backups = sorted(path.parent.glob(f"{path.stem}-*{path.suffix}"), reverse=True)
        cutoff = time.time() - self.max_age_days * 86400
        for i, backup in enumerate(backups):
            too_many = self.max_backups > 0 and i >= self.max_backups
            too_old = self.max_age_days > 0 and backup.stat().st_mtime < cutoff
            if too_many or too_old:
                backup.unlink(missing_ok=True)
