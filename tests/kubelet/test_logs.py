"""Tests for serving container logs from CRI-format log files (no containerd needed)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pyk8s.kubelet.logs import (
    LogNotFoundError,
    LogOptions,
    log_path,
    parse_line,
    previous_log_path,
    read_logs,
)


def rec(second: int, stream: str, tag: str, content: str) -> str:
    return f"2024-05-01T10:00:{second:02d}.123456789Z {stream} {tag} {content}\n"


SAMPLE = (
    rec(1, "stdout", "F", "one")
    + rec(2, "stdout", "P", "tw")
    + rec(3, "stdout", "F", "o")
    + rec(4, "stderr", "F", "oops")
    + rec(5, "stdout", "P", "thr")
    + rec(6, "stdout", "P", "e")
    + rec(7, "stdout", "F", "e")
)


async def collect(path: Path, opts: LogOptions) -> bytes:
    out = b""
    async with asyncio.timeout(5):
        async for chunk in read_logs(path, opts):
            out += chunk
    return out


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "0.log"
    path.write_text(SAMPLE)
    return path


def test_parse_line() -> None:
    r = parse_line(b"2024-05-01T10:00:01.123456789+02:00 stderr P hello world\n")
    assert r.time == datetime(2024, 5, 1, 8, 0, 1, 123456, tzinfo=UTC)
    assert r.timestamp == "2024-05-01T10:00:01.123456789+02:00"
    assert r.formatted_time() == "2024-05-01T08:00:01.123456789Z"
    assert (r.stream, r.partial, r.content) == ("stderr", True, b"hello world")
    assert parse_line(b"2024-05-01T10:00:01Z stdout F").content == b""
    for bad in (b"garbage", b"2024-05-01T10:00:01Z stdin F x", b"2024-05-01T10:00:01Z stdout X x"):
        with pytest.raises(ValueError):
            parse_line(bad)


async def test_full_read_joins_partials(log: Path) -> None:
    assert await collect(log, LogOptions()) == b"one\ntwo\noops\nthree\n"


async def test_tail_counts_full_lines_across_partials(log: Path) -> None:
    assert await collect(log, LogOptions(tail_lines=2)) == b"oops\nthree\n"
    assert await collect(log, LogOptions(tail_lines=3)) == b"two\noops\nthree\n"
    assert await collect(log, LogOptions(tail_lines=100)) == b"one\ntwo\noops\nthree\n"
    assert await collect(log, LogOptions(tail_lines=0)) == b""


async def test_tail_on_large_file(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_text("".join(rec(i % 60, "stdout", "F", f"line {i}") for i in range(20000)))
    assert await collect(path, LogOptions(tail_lines=3)) == b"line 19997\nline 19998\nline 19999\n"


async def test_timestamps_prefix_each_line(log: Path) -> None:
    out = await collect(log, LogOptions(tail_lines=2, timestamps=True))
    assert out == (b"2024-05-01T10:00:04.123456789Z oops\n2024-05-01T10:00:05.123456789Z three\n")


async def test_since_time_filters_records(log: Path) -> None:
    since = datetime(2024, 5, 1, 10, 0, 4, tzinfo=UTC)
    assert await collect(log, LogOptions(since_time=since)) == b"oops\nthree\n"


def test_since_seconds_is_relative_to_now() -> None:
    now = datetime(2024, 5, 1, 10, 0, 10, tzinfo=UTC)
    assert LogOptions(since_seconds=6).since(now) == datetime(2024, 5, 1, 10, 0, 4, tzinfo=UTC)


async def test_limit_bytes(log: Path) -> None:
    assert await collect(log, LogOptions(limit_bytes=6)) == b"one\ntw"


async def test_stream_filter(log: Path) -> None:
    assert await collect(log, LogOptions(stream="Stderr")) == b"oops\n"
    assert await collect(log, LogOptions(stream="Stdout", tail_lines=1)) == b"three\n"


async def test_malformed_line_skipped(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_text(rec(1, "stdout", "F", "a") + "not a log line\n" + rec(2, "stdout", "F", "b"))
    assert await collect(path, LogOptions()) == b"a\nb\n"


async def test_unterminated_partial_is_emitted_at_end(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_text(rec(1, "stdout", "F", "a") + rec(2, "stdout", "P", "b"))
    assert await collect(path, LogOptions()) == b"a\nb"


async def _follow(
    path: Path,
    stop: asyncio.Event,
    got: list[bytes],
    container_done: Callable[[], bool] | None = None,
) -> None:
    opts = LogOptions(follow=True)
    reader = read_logs(path, opts, stop=stop, poll_interval=0.02, container_done=container_done)
    async for chunk in reader:
        got.append(chunk)


async def _wait_for(got: list[bytes], expected: bytes) -> None:
    for _ in range(500):  # bounded by the callers' asyncio.timeout as well
        if b"".join(got) == expected:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"got {b''.join(got)!r}, want {expected!r}")


async def test_follow_sees_appended_records(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_text(rec(1, "stdout", "F", "first"))
    stop, got = asyncio.Event(), list[bytes]()
    async with asyncio.timeout(5):
        task = asyncio.create_task(_follow(path, stop, got))
        await _wait_for(got, b"first\n")
        with path.open("a") as f:
            f.write(rec(2, "stdout", "P", "sec"))
            f.flush()
            f.write(rec(3, "stdout", "F", "ond"))
        await _wait_for(got, b"first\nsecond\n")
        stop.set()
        await task


async def test_follow_survives_rotation(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_text(rec(1, "stdout", "F", "old"))
    stop, got = asyncio.Event(), list[bytes]()
    async with asyncio.timeout(5):
        task = asyncio.create_task(_follow(path, stop, got))
        await _wait_for(got, b"old\n")
        path.rename(tmp_path / "0.log.20240501-100002")
        path.write_text(rec(2, "stdout", "F", "new"))
        await _wait_for(got, b"old\nnew\n")
        stop.set()
        await task


async def test_follow_ends_when_container_done(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_text(rec(1, "stdout", "F", "bye"))
    got: list[bytes] = []
    async with asyncio.timeout(5):
        await _follow(path, asyncio.Event(), got, container_done=lambda: True)
    assert got == [b"bye\n"]


def test_log_paths(tmp_path: Path) -> None:
    path = log_path(tmp_path, "ns", "web", "u1", "app", 1)
    assert path == tmp_path / "ns_web_u1" / "app" / "1.log"
    with pytest.raises(LogNotFoundError, match='previous terminated container "app" in pod "web"'):
        previous_log_path(tmp_path, "ns", "web", "u1", "app", 1)
    prev = log_path(tmp_path, "ns", "web", "u1", "app", 0)
    prev.parent.mkdir(parents=True)
    prev.write_text(rec(1, "stdout", "F", "x"))
    assert previous_log_path(tmp_path, "ns", "web", "u1", "app", 1) == prev
    with pytest.raises(FileNotFoundError):
        previous_log_path(tmp_path, "ns", "web", "u1", "app", 0)
