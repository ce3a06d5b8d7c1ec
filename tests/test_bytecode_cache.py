"""pyk8s processes keep their bytecode in a cache when they may not write it beside the
sources (pyk8s.server.bytecode), and leave a user's own prefix alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyk8s


def _run(**env: str) -> None:
    base = {k: v for k, v in os.environ.items() if k != "PYTHONPYCACHEPREFIX"}
    subprocess.run(
        [sys.executable, "-m", "pyk8s", "token", "--help"],
        env={**base, "PYTHONDONTWRITEBYTECODE": "1", **env}, capture_output=True, check=True,
        timeout=120,
    )  # fmt: skip


def test_bytecode_goes_to_the_cache_not_the_tree(tmp_path: Path) -> None:
    _run(XDG_CACHE_HOME=str(tmp_path))
    src = Path(pyk8s.__file__).parent
    assert any((tmp_path / "pyk8s" / "pycache" / str(src).lstrip("/")).glob("cli.*.pyc"))


def test_a_users_prefix_is_theirs(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    _run(XDG_CACHE_HOME=str(tmp_path), PYTHONPYCACHEPREFIX=str(mine))
    assert not (tmp_path / "pyk8s").exists()
    assert not mine.exists()  # their prefix, with their "do not write"
