"""Serving ``kubectl logs`` from the container log files containerd writes.

containerd stores each container's output under
``<log_root>/<ns>_<pod>_<uid>/<container>/<restartCount>.log`` in the CRI log format,
one record per line: ``<RFC3339Nano time> <stdout|stderr> <P|F> <content>``. A ``P``
(partial) record continues in the next record of the same stream; an ``F`` record ends
a line. The kubelet turns these records back into the plain text the user printed,
applying the options of the pod log request (tail, since, timestamps, byte limit,
stream selection and follow), which is what this module does.

Log shippers (Promtail, Fluent Bit, Vector) look in ``/var/log/containers`` instead:
upstream's kubelet keeps a symlink ``<pod>_<ns>_<container>-<containerID>.log`` there
per container, pointing at its current log file. :func:`link_container_log` makes one
(in the ``containers`` directory next to ``log_root``) and
:func:`unlink_container_logs` removes a container's links.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO, Literal

_BLOCK = 64 * 1024
_STREAMS = ("stdout", "stderr")
_TIME_RE = re.compile(
    rb"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)\Z"
)

StreamSelector = Literal["All", "Stdout", "Stderr"]


class LogNotFoundError(FileNotFoundError):
    """The requested container log file does not exist."""


@dataclass(frozen=True)
class LogRecord:
    """One parsed line of a CRI log file."""

    time: datetime  # UTC, microsecond precision
    stream: str  # "stdout" or "stderr"
    partial: bool
    content: bytes  # without the record's trailing newline
    timestamp: str = ""  # the timestamp exactly as written (nanosecond precision)
    nanosecond: int = 0  # fractional seconds in nanoseconds

    def formatted_time(self) -> str:
        """The time as upstream prints it: UTC with exactly nine fraction digits."""
        return self.time.strftime("%Y-%m-%dT%H:%M:%S") + f".{self.nanosecond:09d}Z"


@dataclass
class LogOptions:
    """The options of a pod log request."""

    tail_lines: int | None = None
    since_time: datetime | None = None
    since_seconds: int | None = None
    timestamps: bool = False
    limit_bytes: int | None = None
    follow: bool = False
    stream: StreamSelector = "All"

    def since(self, now: datetime | None = None) -> datetime | None:
        """The earliest record time to show (``since_time`` wins over ``since_seconds``)."""
        if self.since_time is not None:
            t = self.since_time
            return t.replace(tzinfo=UTC) if t.tzinfo is None else t
        if self.since_seconds is not None:
            return (now or datetime.now(UTC)) - timedelta(seconds=self.since_seconds)
        return None

    def wants(self, stream: str) -> bool:
        return self.stream == "All" or self.stream.lower() == stream


def _parse_time(raw: bytes) -> tuple[datetime, int]:
    m = _TIME_RE.match(raw)
    if m is None:
        raise ValueError(f"invalid log timestamp {raw!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    frac, zone = m.group(7), m.group(8)
    nanos = int(frac.ljust(9, b"0")) if frac else 0
    t = datetime(year, month, day, hour, minute, second, nanos // 1000, tzinfo=UTC)
    if zone != b"Z":
        sign = 1 if zone[:1] == b"+" else -1
        t -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    return t, nanos


def parse_line(raw: bytes) -> LogRecord:
    """Parse one CRI log line; raise ``ValueError`` if it is malformed."""
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    parts = raw.split(b" ", 3)
    if len(parts) < 3:
        raise ValueError(f"malformed CRI log line {raw[:80]!r}")
    time, nanos = _parse_time(parts[0])
    stream = parts[1].decode("ascii", "replace")
    if stream not in _STREAMS:
        raise ValueError(f"unexpected log stream {stream!r}")
    tag = parts[2].split(b":", 1)[0]  # later fields after ':' are reserved
    if tag not in (b"P", b"F"):
        raise ValueError(f"unexpected log tag {tag!r}")
    content = parts[3] if len(parts) == 4 else b""
    return LogRecord(time, stream, tag == b"P", content, parts[0].decode(), nanos)


def log_path(
    log_root: Path, namespace: str, pod: str, uid: str, container: str, restart_count: int
) -> Path:
    """Where containerd writes the log of one run of a container."""
    return log_root / f"{namespace}_{pod}_{uid}" / container / f"{restart_count}.log"


#: a file name's limit; upstream truncates the symlink name before ``.log`` to fit
_MAX_NAME = 255
_LINK_SUFFIX = ".log"


def container_log_link_dir(log_root: Path) -> Path:
    """``/var/log/containers`` for the default ``/var/log/pods``."""
    return log_root.parent / "containers"


def container_log_link(
    log_root: Path, namespace: str, pod: str, container: str, container_id: str
) -> Path:
    """Upstream's legacy symlink path, its name cut to 255 bytes as upstream does."""
    name = f"{pod}_{namespace}_{container}-{container_id}"
    name = name[: _MAX_NAME - len(_LINK_SUFFIX)]
    return container_log_link_dir(log_root) / f"{name}{_LINK_SUFFIX}"


def link_container_log(
    log_root: Path, namespace: str, pod: str, container: str, container_id: str, target: Path
) -> None:
    """Point the container's ``/var/log/containers`` symlink at ``target`` (its log)."""
    link = container_log_link(log_root, namespace, pod, container, container_id)
    link.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        link.unlink()
    link.symlink_to(target)


def unlink_container_logs(log_root: Path, container_id: str) -> None:
    """Remove the symlinks of a removed container."""
    directory = container_log_link_dir(log_root)
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(directory):
            if entry.name.endswith(f"-{container_id}{_LINK_SUFFIX}") and entry.is_symlink():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)


def previous_log_path(
    log_root: Path, namespace: str, pod: str, uid: str, container: str, restart_count: int
) -> Path:
    """The log of the container's previous run (``kubectl logs --previous``)."""
    path = log_path(log_root, namespace, pod, uid, container, restart_count - 1)
    if restart_count < 1 or not path.is_file():
        raise LogNotFoundError(
            f'previous terminated container "{container}" in pod "{pod}" not found'
        )
    return path


def _reverse_lines(f: BinaryIO, size: int) -> Iterator[tuple[int, bytes]]:
    """Yield ``(start offset, line)`` for the file's lines, last first."""
    pos, head = size, b""
    while pos > 0:
        step = min(_BLOCK, pos)
        pos -= step
        f.seek(pos)
        chunk = f.read(step) + head
        lines = chunk.split(b"\n")
        head = lines[0]  # may continue in the previous block
        end = pos + len(chunk)
        for line in reversed(lines[1:]):
            end -= len(line)
            yield end, line
            end -= 1
    if head:
        yield 0, head


def _tail_start(f: BinaryIO, lines: int, opts: LogOptions) -> int:
    """Offset of the first record of the last ``lines`` full lines of selected streams."""
    size = os.fstat(f.fileno()).st_size
    if lines <= 0:
        return size
    ended = 0
    for start, line in _reverse_lines(f, size):
        try:
            rec = parse_line(line)
        except ValueError:
            continue
        if rec.partial or not opts.wants(rec.stream):
            continue
        ended += 1
        if ended > lines:  # this record ends the line just before the window
            return start + len(line) + 1
    return 0


class _Assembler:
    """Turns raw CRI lines into output bytes, keeping partial lines per stream."""

    def __init__(self, opts: LogOptions, since: datetime | None) -> None:
        self.opts = opts
        self.since = since
        self.pending: dict[str, bytearray] = {}

    def feed(self, line: bytes) -> bytes:
        if not line:
            return b""
        try:
            rec = parse_line(line)
        except ValueError:
            return b""  # upstream skips lines it cannot parse
        if not self.opts.wants(rec.stream):
            return b""
        if self.since is not None and rec.time < self.since:
            return b""
        buf = self.pending.setdefault(rec.stream, bytearray())
        if not buf and self.opts.timestamps:
            buf += rec.formatted_time().encode() + b" "
        buf += rec.content
        if rec.partial:
            return b""
        buf += b"\n"
        out = bytes(buf)
        buf.clear()
        return out

    def flush(self) -> bytes:
        """Unterminated partial lines, emitted when the log ends."""
        out = b"".join(bytes(b) for b in self.pending.values())
        self.pending.clear()
        return out


def _open(path: Path) -> tuple[BinaryIO, int]:
    f = path.open("rb")
    return f, os.fstat(f.fileno()).st_ino


def _rotated(path: Path, inode: int, position: int) -> bool:
    try:
        st = path.stat()
    except FileNotFoundError:
        return False  # renamed away; wait for the runtime to create the new file
    return st.st_ino != inode or st.st_size < position


async def _pause(stop: asyncio.Event | None, seconds: float) -> None:
    if stop is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def read_logs(
    path: Path,
    opts: LogOptions,
    *,
    stop: asyncio.Event | None = None,
    poll_interval: float = 0.2,
    container_done: Callable[[], bool] | None = None,
) -> AsyncIterator[bytes]:
    """Yield the container's output from ``path`` as ``kubectl logs`` shows it.

    With ``opts.follow`` the file is polled for new records (and reopened when the
    runtime rotates it) until ``stop`` is set, or ``container_done()`` returns true
    and everything written so far has been read.
    """
    assembler = _Assembler(opts, opts.since())
    remaining = opts.limit_bytes
    f, inode = await asyncio.to_thread(_open, path)
    try:
        if opts.tail_lines is not None:
            f.seek(await asyncio.to_thread(_tail_start, f, opts.tail_lines, opts))
        head = b""
        draining = False
        while True:
            chunk = await asyncio.to_thread(f.read, _BLOCK)
            if chunk:
                *lines, head = (head + chunk).split(b"\n")
                out = b"".join(assembler.feed(line) for line in lines)
            elif not opts.follow or (stop is not None and stop.is_set()) or draining:
                break
            elif await asyncio.to_thread(_rotated, path, inode, f.tell()):
                out = assembler.feed(head)  # the old file is complete
                head = b""
                f.close()
                f, inode = await asyncio.to_thread(_open, path)
            else:
                # Read once more after the container is done: it may have written
                # its last records after our previous read.
                draining = container_done is not None and container_done()
                if not draining:
                    await _pause(stop, poll_interval)
                continue
            if remaining is not None:
                out = out[:remaining]
                remaining -= len(out)
            if out:
                yield out
            if remaining == 0:
                return
        out = assembler.feed(head) + assembler.flush()
        if remaining is not None:
            out = out[:remaining]
        if out:
            yield out
    finally:
        f.close()
