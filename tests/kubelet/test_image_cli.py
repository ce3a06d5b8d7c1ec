"""`pyk8s image import` / `pyk8s image ls` against a private containerd."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from pyk8s.kubelet import images
from pyk8s.kubelet.runtimes import Containerd

pytestmark = pytest.mark.e2e


def _pyk8s(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyk8s", *args], capture_output=True, text=True, timeout=60
    )


async def test_import_then_list(containerd: Containerd, tmp_path: Path) -> None:
    archive = images.build_busybox_image(tmp_path / "bb.tar", ref="pyk8s.local/mytool:1.0")
    endpoint = f"unix://{containerd.socket}"
    done = await asyncio.to_thread(
        _pyk8s, "image", "import", "--container-runtime-endpoint", endpoint, str(archive)
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "imported pyk8s.local/mytool:1.0"
    listed = await asyncio.to_thread(
        _pyk8s, "image", "ls", "--container-runtime-endpoint", endpoint
    )
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == ["pyk8s.local/mytool:1.0"]


def test_import_without_a_runtime_is_a_clear_error(tmp_path: Path) -> None:
    done = _pyk8s("image", "import", "--data-dir", str(tmp_path), str(tmp_path / "x.tar"))
    assert done.returncode == 1
    assert "no containerd at" in done.stderr and "is the node running?" in done.stderr


async def test_broken_archive_is_a_clear_error(containerd: Containerd, tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"not a tar archive")
    done = await asyncio.to_thread(
        _pyk8s, "image", "import", "--container-runtime-endpoint", str(containerd.socket), str(bad)
    )
    assert done.returncode == 1
    assert done.stderr.startswith("pyk8s image: error: ctr images import")
