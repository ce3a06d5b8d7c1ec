"""``pyk8s killall`` and ``pyk8s uninstall``: stop a node for good and clean the host.

k3s ships k3s-killall.sh and k3s-uninstall.sh; these are the same steps as commands.
A plain SIGTERM of ``pyk8s server`` or ``pyk8s agent`` keeps the containers running (the
next start adopts them); killall is the way to stop *everything*:

1. pyk8s processes of this data dir (``pyk8s server|agent|kubelet|… --data-dir D``,
   anything naming a path under D, and their descendants) get SIGTERM, then SIGKILL;
2. every container of the node's containerd: ``runc delete --force`` (or crun's) for
   each task in its runtime's root, then whatever is left in the containers' cgroups, the
   shims (found by their ``-address``, the node's containerd socket) and containerd get
   SIGKILL;
3. every mount under D (pod volumes, sandbox netns files, rootfs overlays), deepest
   first, is unmounted;
4. the CNI bridge named in D's CNI config and the veths on it, the host-local IPAM
   leases of its subnet, every route and rule with pyk8s's route protocol (host-gw and
   :mod:`pyk8s.network.safety`), every ``KUBE-*`` and ``CNI-*`` iptables chain with the
   jumps to it and pyk8s's own egress rule (iptables and ip6tables, every table), and
   the nftables ``kube-proxy`` tables and the NetworkPolicy table ``inet pyk8s-netpol``.

Processes are chosen by the data dir only, so killall on one node never touches another
node's processes on the same host (the multi-node tests run several). The network steps
act on the network namespace killall runs in, the node's.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pyk8s.kubelet.runtimes.containerd import RUNTIMES, ContainerdConfig

log = logging.getLogger(__name__)

_PROC = Path("/proc")
#: iptables chains that belong to a node (kube-proxy, the kubelet, the CNI plugins)
_CHAIN_PREFIXES = ("KUBE-", "CNI-")
_RULE_MARKERS = ("pyk8s",)
_GRACE = 5.0
_CNI_LEASES = Path("/var/lib/cni/networks")


@dataclass
class Report:
    """What killall did (printed as one line per kind)."""

    processes: list[int] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    chains: list[str] = field(default_factory=list)


def _run(argv: Sequence[str], stdin: str | None = None) -> tuple[int, str]:
    try:
        out = subprocess.run(
            list(argv), input=stdin, capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return 1, str(err)
    return out.returncode, out.stdout + out.stderr


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _cmdline(pid: int) -> list[str]:
    try:
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _ppid(pid: int) -> int:
    try:
        for line in (_PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("PPid:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _pids() -> list[int]:
    return [int(p.name) for p in _PROC.iterdir() if p.name.isdigit()]


def _names_path_under(argv: Iterable[str], roots: Sequence[str]) -> bool:
    for arg in argv:
        value = arg.split("=", 1)[1] if arg.startswith("-") and "=" in arg else arg
        if any(_under(value, r) for r in roots):
            return True
    return False


def _is_pyk8s(argv: Sequence[str]) -> bool:
    head = argv[:3]
    return any(Path(a).name == "pyk8s" for a in head) or "pyk8s" in argv[1:3]


def _ancestors() -> set[int]:
    out, pid = set(), os.getpid()
    while pid > 1:
        out.add(pid)
        pid = _ppid(pid)
    return out


@dataclass(frozen=True)
class Node:
    """The paths of one node's state: the data dir given, and the kubelet's (``D/agent``
    for ``pyk8s server``, D itself for ``pyk8s agent``/``kubelet``)."""

    data_dir: Path

    @property
    def root(self) -> str:
        return str(self.data_dir.resolve())

    @property
    def kubelet_dirs(self) -> list[Path]:
        d = self.data_dir.resolve()
        return [p for p in (d / "agent", d) if (p / "containerd").is_dir()]

    @property
    def sockets(self) -> list[str]:
        return [str(ContainerdConfig(d).socket) for d in self.kubelet_dirs]

    def conflists(self) -> list[Path]:
        return [p for d in self.kubelet_dirs for p in (d / "cni" / "net.d").glob("*.conflist")]


def find_processes(node: Node) -> tuple[list[int], list[int]]:
    """(pyk8s processes of the node and their descendants, the node's containerd and
    shims); never this process or its ancestors."""
    roots = [node.root, *(s.rsplit("/", 1)[0] for s in node.sockets)]
    skip = _ancestors()
    parents: dict[int, int] = {}
    ours: set[int] = set()
    runtime: set[int] = set()
    for pid in _pids():
        if pid in skip:
            continue
        argv = _cmdline(pid)
        if not argv:
            continue
        parents[pid] = _ppid(pid)
        named = _names_path_under(argv, roots)
        if named and _is_pyk8s(argv) and not {"killall", "uninstall"} & set(argv[:5]):
            ours.add(pid)
        elif named and Path(argv[0]).name.startswith("containerd"):
            runtime.add(pid)  # containerd --config D/…, containerd-shim-* -address D/…
    changed = True
    while changed:  # descendants (supervised children, whatever they started)
        changed = False
        for pid, ppid in parents.items():
            if ppid in ours and pid not in ours and pid not in runtime:
                ours.add(pid)
                changed = True
    return sorted(ours), sorted(runtime)


def _alive(pid: int) -> bool:
    try:
        state = (_PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _signal_and_wait(pids: Iterable[int], grace: float) -> None:
    pids = list(pids)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _wait_gone(pids: Iterable[int], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)


def _container_ids(kubelet_dir: Path) -> dict[tuple[str, Path], list[str]]:
    """(OCI runtime, its root of one containerd namespace) -> container ids in it; a
    task containerd knows that no runtime root holds is runc's, as before crun."""
    config = ContainerdConfig(kubelet_dir)
    out: dict[tuple[str, Path], list[str]] = {}
    for runtime in RUNTIMES:
        root = config.runtime_root(runtime)
        if root.is_dir():
            for ns in root.iterdir():
                if ns.is_dir():
                    out[(runtime, ns)] = sorted(p.name for p in ns.iterdir() if p.is_dir())
    tasks = config.state / "io.containerd.runtime.v2.task"
    if tasks.is_dir():
        known = {cid for ids in out.values() for cid in ids}
        for ns in tasks.iterdir():
            ids = [p.name for p in ns.iterdir()] if ns.is_dir() else []
            key = ("runc", config.runc_root / ns.name)
            out[key] = sorted(set(out.get(key, [])) | (set(ids) - known))
    return out


def _cgroup_dirs(cgroups: str, cid: str) -> list[Path]:
    """The cgroup directories of a /proc/PID/cgroup text that belong to container ``cid``
    (the v2 tree, or one per v1 controller)."""
    out = []
    for line in cgroups.splitlines():
        _, controllers, path = line.split(":", 2)
        if not path.endswith(f"/{cid}"):
            continue
        base = Path("/sys/fs/cgroup")
        if controllers:
            base = base / controllers.split(",")[0].removeprefix("name=")
        out.append(base / path.lstrip("/"))
    return out


def kill_containers(node: Node, report: Report) -> None:
    for kubelet_dir in node.kubelet_dirs:
        for (runtime, root), ids in _container_ids(kubelet_dir).items():
            binary = shutil.which(runtime) or runtime
            for cid in ids:
                _run([binary, "--root", str(root), "delete", "--force", cid])
                report.containers.append(cid)
    # what the runtime did not know any more: processes still in the containers' cgroups
    known = set(report.containers)
    stray: list[int] = []
    dirs: set[Path] = set()
    for pid in _pids():
        try:
            cgroups = (_PROC / str(pid) / "cgroup").read_text()
        except OSError:
            continue
        found = [d for cid in known for d in _cgroup_dirs(cgroups, cid)]
        if found:
            stray.append(pid)
            dirs.update(found)
    for pid in stray:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _wait_gone(stray)
    for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            d.rmdir()


def unmount_all(node: Node, report: Report) -> None:
    roots = [node.root, *(s.rsplit("/", 1)[0] for s in node.sockets)]
    for _ in range(3):  # a lazy unmount can reveal a mount below it
        mounts = [
            line.split()[1].replace("\\040", " ")
            for line in Path("/proc/mounts").read_text().splitlines()
        ]
        mine = sorted(
            {m for m in mounts if any(_under(m, r) for r in roots)}, key=len, reverse=True
        )
        if not mine:
            return
        for m in mine:
            code, _ = _run(["umount", m])
            if code != 0:
                _run(["umount", "-l", m])
            report.mounts.append(m)


def _bridges(node: Node) -> list[tuple[str, str]]:
    """(bridge, CNI network name) from the node's CNI config."""
    out = []
    for path in node.conflists():
        with contextlib.suppress(OSError, ValueError, KeyError):
            doc = json.loads(path.read_text())
            for plugin in doc.get("plugins", []):
                if plugin.get("type") == "bridge":
                    out.append((str(plugin.get("bridge", "cni0")), str(doc["name"])))
    return out


def _subnets(node: Node) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    nets = []
    for path in node.conflists():
        with contextlib.suppress(OSError, ValueError):
            for plugin in json.loads(path.read_text()).get("plugins", []):
                for ranges in (plugin.get("ipam") or {}).get("ranges", []):
                    for r in ranges:
                        nets.append(ipaddress.ip_network(r["subnet"], strict=False))
    return nets


def remove_links(node: Node, report: Report) -> None:
    for bridge, network in _bridges(node):
        code, out = _run(["ip", "-j", "link", "show", "master", bridge])
        if code == 0:
            with contextlib.suppress(ValueError):
                for link in json.loads(out or "[]"):
                    _run(["ip", "link", "delete", link["ifname"]])
                    report.links.append(link["ifname"])
        if _run(["ip", "link", "delete", bridge])[0] == 0:
            report.links.append(bridge)
        leases = _CNI_LEASES / network
        subnets = _subnets(node)
        if leases.is_dir():
            for f in leases.iterdir():
                with contextlib.suppress(ValueError, OSError):
                    if any(ipaddress.ip_address(f.name) in s for s in subnets):
                        f.unlink()


def iptables_cleanup_payload(dump: str) -> tuple[str, list[str]]:
    """From ``iptables-save`` output: an ``iptables-restore --noflush`` payload that
    flushes every KUBE-/CNI- chain (declaring it), deletes the rules of the other chains
    that jump to one or are marked as pyk8s's, then deletes those chains; and the
    chains' names."""
    lines: list[str] = []
    chains: list[str] = []
    table = ""
    body: list[str] = []
    table_chains: list[str] = []

    def close() -> None:
        if table and (body or table_chains):
            lines.extend([f"*{table}", *(f":{c} - [0:0]" for c in table_chains), *body])
            lines.extend(f"-X {c}" for c in table_chains)
            lines.append("COMMIT")

    for line in dump.splitlines():
        if line.startswith("*"):
            close()
            table, body, table_chains = line[1:], [], []
        elif line.startswith(":"):
            name = line[1:].split()[0]
            if name.startswith(_CHAIN_PREFIXES):
                table_chains.append(name)
                chains.append(f"{table}/{name}")
        elif line.startswith("-A "):
            parts = line.split()
            chain = parts[1]
            if chain.startswith(_CHAIN_PREFIXES):
                continue  # goes with its chain
            target = parts[parts.index("-j") + 1] if "-j" in parts else ""
            if target.startswith(_CHAIN_PREFIXES) or any(m in line for m in _RULE_MARKERS):
                body.append("-D" + line[2:])
    close()
    return ("\n".join(lines) + "\n" if lines else ""), chains


#: nftables tables of a node: kube-proxy's (both families) and the NetworkPolicy table
NFT_TABLES = (("ip", "kube-proxy"), ("ip6", "kube-proxy"), ("inet", "pyk8s-netpol"))


def remove_chains(report: Report) -> None:
    for binary in ("iptables", "ip6tables"):
        if shutil.which(f"{binary}-save") is None:
            continue
        code, dump = _run([f"{binary}-save"])
        if code != 0:
            continue
        payload, chains = iptables_cleanup_payload(dump)
        if payload:
            code, out = _run([f"{binary}-restore", "-w", "5", "--noflush"], payload)
            if code != 0:
                log.warning("%s-restore: %s", binary, out.strip())
            report.chains.extend(chains)
    if shutil.which("nft"):
        for family, table in NFT_TABLES:
            _run(["nft", "delete", "table", family, table])


def remove_routes() -> None:
    import asyncio

    from pyk8s.network.safety import remove_unreachable

    with contextlib.suppress(RuntimeError, OSError):
        asyncio.run(remove_unreachable())


def killall(data_dir: Path, grace: float = _GRACE) -> Report:
    """Stop the node of ``data_dir`` and clean the host (this network namespace)."""
    node = Node(data_dir)
    report = Report()
    ours, runtime = find_processes(node)
    report.processes.extend(ours)
    _signal_and_wait(ours, grace)
    kill_containers(node, report)
    _, runtime_now = find_processes(node)
    leftover = sorted(set(runtime) | set(runtime_now))
    report.processes.extend(leftover)
    _signal_and_wait(leftover, 0.0)
    _wait_gone(leftover)
    unmount_all(node, report)
    for sock in node.sockets:
        if not _under(sock, node.root):
            shutil.rmtree(Path(sock).parent, ignore_errors=True)
    remove_links(node, report)
    remove_routes()
    remove_chains(report)
    return report


def uninstall(data_dir: Path) -> Report:
    """killall, then remove the data dir."""
    report = killall(data_dir)
    shutil.rmtree(data_dir, ignore_errors=True)
    return report
