"""A private containerd starts from a data dir, imports our local images and runs them."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from pyk8s.kubelet import images
from pyk8s.kubelet.runtimes import Containerd, ContainerdConfig, ContainerdError
from pyk8s.kubelet.runtimes.containerd import socket_path_for
from tests.kubelet.runtime_fixtures import require_runtime

pytestmark = pytest.mark.e2e


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_long_data_dir_gets_short_socket(tmp_path: Path) -> None:
    long_dir = tmp_path / ("d" * 120)
    sock = socket_path_for(long_dir)
    assert str(sock).startswith("/run/pyk8s/") and len(str(sock)) < 100
    assert socket_path_for(long_dir) == sock
    assert socket_path_for(Path("/tmp/x")) == Path("/tmp/x/containerd/containerd.sock")


def test_render_config_points_cri_at_our_dirs(tmp_path: Path) -> None:
    text = Containerd(ContainerdConfig(tmp_path, cni_conf_dir=tmp_path / "net")).render_config()
    assert "version = 2" in text
    assert f'sandbox_image = "{images.PAUSE_REF}"' in text
    assert f'conf_dir = "{tmp_path / "net"}"' in text
    assert 'snapshotter = "overlayfs"' in text and "SystemdCgroup = false" in text
    assert "/run/containerd" not in text and "/var/lib/containerd" not in text


def test_each_installed_runtime_is_a_handler_with_its_own_root(tmp_path: Path) -> None:
    """runc is the default (k3s's --default-runtime picks another); every installed
    runtime is a handler, each keeping its state in its own root."""
    assert ContainerdConfig(tmp_path).default_runtime == "runc"
    config = ContainerdConfig(tmp_path, default_runtime="crun")
    text = Containerd(config).render_config()
    assert 'default_runtime_name = "crun"' in text
    assert config.runtimes() == [r for r in ("runc", "crun") if r == "crun" or shutil.which(r)]
    for name in config.runtimes():
        table = f'[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{name}.options]'
        options = text.split(table, 1)[1].split("[", 1)[0]
        assert f'Root = "{config.state / name}"' in options
        assert f'BinaryName = "{shutil.which(name) or name}"' in options
    with pytest.raises(ValueError, match="unknown runtime"):
        ContainerdConfig(tmp_path, default_runtime="kata")


async def test_import_and_run_busybox(containerd: Containerd) -> None:
    async with asyncio.timeout(50):
        await containerd.ensure_local_images()
        refs = await containerd.image_refs()
        assert {images.BUSYBOX_REF, images.PAUSE_REF} <= refs
        await containerd.ensure_local_images()  # already present: a no-op
        run_flags = (
            "run",
            "--fifo-dir", str(containerd.config.fifo_dir),
            "--runc-root", str(containerd.config.runc_root),
        )  # fmt: skip
        out = await containerd.ctr(
            *run_flags, "--rm", images.BUSYBOX_REF, "pyk8s-test-echo", "echo", "hi"
        )
        assert out.strip() == "hi"

        # The sandbox image runs until SIGTERM, then exits 0.
        await containerd.ctr(*run_flags, "-d", images.PAUSE_REF, "pyk8s-test-pause")
        await containerd.ctr("task", "kill", "pyk8s-test-pause")  # SIGTERM
        # PID 1 ignores signals it has no handler for, so stopping proves the trap works.
        for _ in range(100):
            if "STOPPED" in await containerd.ctr("task", "ls"):
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the pause container did not exit on SIGTERM")
        await containerd.ctr("task", "rm", "pyk8s-test-pause")
        await containerd.ctr("containers", "rm", "pyk8s-test-pause")
        pid = containerd.pid
        assert pid is not None
        await containerd.stop()
        assert not _alive(pid)
        with pytest.raises(ContainerdError):
            await containerd.ctr("version", timeout=5)


async def test_start_failure_reports_log(tmp_path: Path) -> None:
    require_runtime()
    runtime = Containerd(ContainerdConfig(Path(tempfile.mkdtemp(prefix="pyk8s-bad-", dir="/tmp"))))
    runtime.config.containerd_bin = "false"
    try:
        with pytest.raises(ContainerdError, match="exited with 1"):
            await runtime.start(timeout=5)
    finally:
        await runtime.stop()
        shutil.rmtree(runtime.config.data_dir, ignore_errors=True)
