"""A private containerd for e2e tests: own data dir, socket and CNI bridge, torn down after.

Every kubelet e2e test that needs a container runtime uses :func:`containerd` (started,
nothing imported) or :func:`containerd_with_images` (our local busybox and pause images
imported, a bridge network on a random /24 of 10.88.0.0/16).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pyk8s.kubelet import images
from pyk8s.kubelet.cni import write_bridge_conflist
from pyk8s.kubelet.cri import CRIClient, CRIError
from pyk8s.kubelet.runtimes import Containerd, ContainerdConfig
from pyk8s.network.routes import egress_masquerade_rule


def require_runtime() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    for binary in ("containerd", "ctr", "runc"):
        if shutil.which(binary) is None:
            pytest.skip(f"{binary} is not installed")
    if not images.BUSYBOX_BINARY.exists():
        pytest.skip("busybox-static is not installed")
    if not (ContainerdConfig(Path("/")).cni_bin_dir / "bridge").exists():
        pytest.skip("containernetworking-plugins is not installed")


@pytest.fixture
async def containerd() -> AsyncIterator[Containerd]:
    require_runtime()
    data_dir = Path(tempfile.mkdtemp(prefix="pyk8s-ctd-", dir="/tmp"))
    runtime = Containerd(ContainerdConfig(data_dir))
    assert len(str(runtime.socket)) < 100
    try:
        await runtime.start(timeout=20)
        yield runtime
    finally:
        await runtime.stop()
        _reap_leftovers(data_dir, runtime.socket)


def _reap_leftovers(data_dir: Path, socket: Path) -> None:
    """Kill this containerd if it is still running (an agent killed before it stopped it
    leaves it behind), its shims and every process of its containers (a shim's containers
    outlive it), then unmount rootfs and remove the state."""
    config = ContainerdConfig(data_dir)
    tasks = config.state / "io.containerd.runtime.v2.task" / "k8s.io"
    ids = {p.name for p in tasks.iterdir()} if tasks.is_dir() else set()
    own = (str(socket).encode(), b"--config\0" + str(config.config_file).encode())
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if any(mark in (proc / "cmdline").read_bytes() for mark in own):
                os.kill(int(proc.name), signal.SIGKILL)
                continue
            cgroups = (proc / "cgroup").read_text()
            if any(f"/k8s.io/{cid}" in cgroups for cid in ids):
                os.kill(int(proc.name), signal.SIGKILL)
    _remove_cgroups(ids)
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(f"{data_dir}/")), reverse=True):
        subprocess.run(["umount", "-l", mount], check=False, timeout=10)
    shutil.rmtree(data_dir, ignore_errors=True)


def remove_cni_nat(subnet: str) -> None:
    """Delete the kubelet's egress rule for ``subnet`` and the bridge plugin's masquerade
    chains for pod IPs in it (a killed runtime never ran CNI DEL for its pods): they would
    pile up in the host's nat table."""
    subprocess.run(
        ["iptables", "-t", "nat", "-D", *egress_masquerade_rule(subnet, subnet)],
        check=False, timeout=30, capture_output=True,
    )  # fmt: skip
    net = ipaddress.ip_network(subnet)
    dump = subprocess.run(
        ["iptables-save", "-t", "nat"], capture_output=True, text=True, timeout=30, check=False
    ).stdout
    for line in dump.splitlines():
        parts = line.split()
        if parts[:2] != ["-A", "POSTROUTING"] or "-s" not in parts or "-j" not in parts:
            continue
        source, target = parts[parts.index("-s") + 1], parts[parts.index("-j") + 1]
        if (
            not target.startswith("CNI-")
            or ipaddress.ip_network(source, strict=False).subnet_of(net) is False
        ):
            continue
        rule = shlex.split(line)[2:]
        subprocess.run(
            ["iptables", "-t", "nat", "-D", "POSTROUTING", *rule], check=False, timeout=30
        )
        for op in ("-F", "-X"):
            subprocess.run(["iptables", "-t", "nat", op, target], check=False, timeout=30,
                           capture_output=True)  # fmt: skip


def _cgroup_dirs(cid: str) -> list[Path]:
    """The cgroup directories of container ``cid``; the walk is retried when a cgroup
    goes while the tree is walked (other containers are being removed meanwhile)."""
    for _ in range(5):
        try:
            return list(Path("/sys/fs/cgroup").glob(f"**/k8s.io/{cid}"))
        except FileNotFoundError:
            continue
    return []


def _remove_cgroups(ids: set[str]) -> None:
    """rmdir the containers' cgroups (cgroup v1 controllers or the v2 tree), best effort:
    a cgroup goes once its killed processes are reaped."""
    dirs = [d for cid in ids for d in _cgroup_dirs(cid)]
    for _ in range(20):
        left = []
        for d in dirs:
            try:
                d.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                left.append(d)
        if not left:
            return
        dirs = left
        time.sleep(0.05)


@pytest.fixture
async def containerd_with_images() -> AsyncIterator[Containerd]:
    """Started, with our images imported and a bridge CNI network (its bridge deleted after)."""
    require_runtime()
    data_dir = Path(tempfile.mkdtemp(prefix="pyk8s-ctd-", dir="/tmp"))
    config = ContainerdConfig(data_dir)
    bridge = f"pk{uuid.uuid4().hex[:8]}"
    subnet = f"10.88.{200 + uuid.uuid4().int % 50}.0/24"
    write_bridge_conflist(config.cni_conf, subnet, bridge=bridge)
    runtime = Containerd(config)
    try:
        await runtime.start(timeout=20)
        await runtime.ensure_local_images()
        yield runtime
    finally:
        await runtime.stop()
        _reap_leftovers(data_dir, runtime.socket)
        remove_cni_nat(subnet)
        subprocess.run(  # noqa: ASYNC221 - teardown, after everything else stopped
            ["ip", "link", "delete", bridge], capture_output=True, timeout=10
        )


@pytest.fixture
async def cri(containerd_with_images: Containerd) -> AsyncIterator[CRIClient]:
    """A CRI client on :func:`containerd_with_images`; sandboxes left are removed after."""
    async with CRIClient(str(containerd_with_images.socket), timeout=20) as client:
        await client.wait_ready(10)
        yield client
        async with asyncio.timeout(30):
            for sandbox in await client.list_pod_sandbox():
                with contextlib.suppress(CRIError):
                    await client.stop_pod_sandbox(sandbox.id)
                    await client.remove_pod_sandbox(sandbox.id)
