"""The audit log backend: every queued event written by shutdown, owner-only files,
lumberjack's size rotation with its backup names, and the backup count kept."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

from pyk8s.apiserver.audit import LogBackend


def test_shutdown_writes_everything_queued(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "audit.log"
    backend = LogBackend(str(path))
    backend.start()
    for i in range(5000):
        backend.process(json.dumps({"n": i}).encode())
    backend.shutdown()
    lines = path.read_text().splitlines()
    assert [json.loads(line)["n"] for line in lines] == list(range(5000))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_rotation_by_size_keeps_max_backups(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    backend = LogBackend(str(path), max_size_mb=1, max_backups=1)
    backend.start()
    line = json.dumps({"pad": "x" * 1000}).encode()
    for _ in range(3000):  # about 3 MB: rotates twice
        backend.process(line)
    backend.shutdown()
    backups = sorted(p.name for p in tmp_path.iterdir() if p.name != "audit.log")
    assert len(backups) == 1
    assert re.fullmatch(r"audit-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}\.log", backups[0])
    assert (tmp_path / backups[0]).stat().st_size <= 1024 * 1024
    assert path.stat().st_size <= 1024 * 1024
