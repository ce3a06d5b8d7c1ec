"""A containerd daemon owned by the kubelet.

pyk8s does not share the host's containerd: each kubelet runs its own under its data
directory (root, state, socket, log), configured for CRI with our CNI directories,
our locally built sandbox image and a ``hosts.toml`` per declared registry (plain HTTP or
a private CA). Stopping containerd leaves the runc shims alive, so
containers keep running across kubelet restarts, as they do in Kubernetes.

Every OCI runtime of :data:`RUNTIMES` that is installed becomes a CRI runtime handler of
its own name, each with its own state root, as k3s registers the runtimes it finds; the
default one is k3s's ``--default-runtime`` (runc unless told). crun starts a container with
about half of runc's CPU (runc is a Go binary that re-executes itself as ``runc init`` for
every container), but it refuses a host whose cgroups are hybrid with controllers on the
v2 side (``cgroups in hybrid mode not supported``), as the machine pyk8s is measured on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import signal
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pyk8s.kubelet import images

# sockaddr_un.sun_path is 108 bytes including the NUL; containerd also listens on
# "<address>.ttrpc", so leave room for that suffix.
_MAX_SOCKET_PATH = 107 - len(".ttrpc")
K8S_NAMESPACE = "k8s.io"
#: the OCI runtimes containerd's CRI plugin is given when installed
RUNTIMES = ("runc", "crun")


def _default_cni_bin_dir() -> Path:
    opt = Path("/opt/cni/bin")
    return opt if opt.is_dir() else Path("/usr/lib/cni")


def socket_path_for(data_dir: Path) -> Path:
    """``<data_dir>/containerd/containerd.sock``, or a short path under /run/pyk8s."""
    preferred = Path(data_dir).resolve() / "containerd" / "containerd.sock"
    if len(os.fsencode(preferred)) <= _MAX_SOCKET_PATH:
        return preferred
    digest = hashlib.sha256(os.fsencode(preferred)).hexdigest()[:16]
    return Path("/run/pyk8s") / digest / "containerd.sock"


def _toml_str(value: object) -> str:
    # JSON string escaping is valid TOML basic-string escaping.
    return json.dumps(str(value))


@dataclass(frozen=True)
class RegistryHost:
    """How containerd reaches one registry: written to ``certs.d/<host>/hosts.toml``.

    ``endpoint`` is the URL containerd talks to (``http://127.0.0.1:5000`` for a plain-HTTP
    registry); ``ca_file`` is a PEM CA bundle to trust for an https endpoint.
    """

    endpoint: str
    ca_file: Path | None = None
    skip_verify: bool = False

    def hosts_toml(self) -> str:
        lines = [
            f"server = {_toml_str(self.endpoint)}",
            "",
            f"[host.{_toml_str(self.endpoint)}]",
            '  capabilities = ["pull", "resolve"]',
        ]
        if self.ca_file is not None:
            lines.append(f"  ca = {_toml_str(Path(self.ca_file).resolve())}")
        if self.skip_verify:
            lines.append("  skip_verify = true")
        return "\n".join(lines) + "\n"


@dataclass
class ContainerdConfig:
    """Where containerd keeps its files and what the CRI plugin is told."""

    data_dir: Path
    sandbox_image: str = images.PAUSE_REF
    cni_bin_dir: Path = field(default_factory=_default_cni_bin_dir)
    cni_conf_dir: Path | None = None  # default: <data_dir>/cni/net.d
    containerd_bin: str = "containerd"
    ctr_bin: str = "ctr"
    endpoint: Path | None = None  # an existing containerd socket (--container-runtime-endpoint)
    #: registry host ("127.0.0.1:5000", "docker.io") -> how to reach it (plain http, own CA)
    registries: dict[str, RegistryHost] = field(default_factory=dict)
    #: CRI ``registry.configs.<host>.auth`` tables (from registries.yaml), read at start
    registry_auth: str = ""
    #: the runtime handler pods without a RuntimeClass run with (a name of RUNTIMES)
    default_runtime: str = "runc"

    def __post_init__(self) -> None:
        if self.default_runtime not in RUNTIMES:
            raise ValueError(
                f"unknown runtime {self.default_runtime!r}: choose one of {', '.join(RUNTIMES)}"
            )

    @property
    def base(self) -> Path:
        return Path(self.data_dir).resolve() / "containerd"

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def state(self) -> Path:
        return self.base / "state"

    @property
    def socket(self) -> Path:
        return self.endpoint or socket_path_for(self.data_dir)

    @property
    def runc_root(self) -> Path:
        """runc's state for our containers (instead of the host's /run/containerd/runc)."""
        return self.runtime_root("runc")

    def runtime_root(self, runtime: str) -> Path:
        """The state root of OCI runtime ``runtime`` (one directory per containerd
        namespace under it)."""
        return self.state / runtime

    def runtimes(self) -> list[str]:
        """The runtimes containerd is given: the installed ones and the default."""
        return [r for r in RUNTIMES if r == self.default_runtime or shutil.which(r)]

    @property
    def fifo_dir(self) -> Path:
        """Where ``ctr run --fifo-dir`` should put IO FIFOs."""
        return self.state / "fifo"

    @property
    def config_file(self) -> Path:
        return self.base / "config.toml"

    @property
    def log_file(self) -> Path:
        return self.base / "containerd.log"

    @property
    def cni_conf(self) -> Path:
        return self.cni_conf_dir or Path(self.data_dir).resolve() / "cni" / "net.d"

    @property
    def registry_config_dir(self) -> Path:
        """containerd's registry ``config_path``: one ``<host>/hosts.toml`` per registry."""
        return self.base / "certs.d"

    def write_registry_hosts(self) -> None:
        """Write a hosts.toml per declared registry (containerd rereads them on each pull)."""
        for host, reg in self.registries.items():
            d = self.registry_config_dir / host
            d.mkdir(parents=True, exist_ok=True)
            (d / "hosts.toml").write_text(reg.hosts_toml())


class ContainerdError(RuntimeError):
    """containerd failed to start, or a ctr command failed."""


class Containerd:
    """Start, stop and talk (via ``ctr``) to a private containerd."""

    def __init__(self, config: ContainerdConfig) -> None:
        self.config = config
        self._proc: asyncio.subprocess.Process | None = None
        self._adopted: int | None = None

    @property
    def socket(self) -> Path:
        return self.config.socket

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def render_config(self) -> str:
        c = self.config
        cri = '[plugins."io.containerd.grpc.v1.cri"'
        return "\n".join(
            [
                "version = 2",
                f"root = {_toml_str(c.root)}",
                f"state = {_toml_str(c.state)}",
                "",
                "[grpc]",
                f"  address = {_toml_str(c.socket)}",
                "",
                '[plugins."io.containerd.internal.v1.opt"]',
                f"  path = {_toml_str(c.base / 'opt')}",
                "",
                f"{cri}]",
                f"  sandbox_image = {_toml_str(c.sandbox_image)}",
                '  stream_server_address = "127.0.0.1"',
                '  stream_server_port = "0"',
                # runc may not lower oom_score_adj below its own in a container/VM host
                "  restrict_oom_score_adj = true",
                # pod network namespaces live under our state dir, not /var/run/netns
                "  netns_mounts_under_state_dir = true",
                "",
                f"{cri}.containerd]",
                '  snapshotter = "overlayfs"',
                f"  default_runtime_name = {_toml_str(c.default_runtime)}",
                "",
                *(line for name in c.runtimes() for line in self._runtime_table(name)),
                f"{cri}.cni]",
                f"  bin_dir = {_toml_str(c.cni_bin_dir)}",
                f"  conf_dir = {_toml_str(c.cni_conf)}",
                "",
                f"{cri}.registry]",
                f"  config_path = {_toml_str(c.registry_config_dir)}",
                "",
                c.registry_auth,
            ]
        )

    def _runtime_table(self, name: str) -> list[str]:
        """The CRI runtime handler ``name``: the runc shim driving that binary."""
        table = f'[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{name}'
        return [
            f"{table}]",
            '  runtime_type = "io.containerd.runc.v2"',
            "",
            f"{table}.options]",
            f"  BinaryName = {_toml_str(shutil.which(name) or name)}",
            "  SystemdCgroup = false",
            f"  Root = {_toml_str(self.config.runtime_root(name))}",
            "",
        ]

    def _write_config(self) -> None:
        c = self.config
        for d in (c.root, c.state, c.fifo_dir, c.socket.parent, c.cni_conf):
            d.mkdir(parents=True, exist_ok=True)
        c.write_registry_hosts()
        fd, tmp = tempfile.mkstemp(dir=c.base, prefix=".config.")
        with os.fdopen(fd, "w") as f:
            f.write(self.render_config())
        os.replace(tmp, c.config_file)

    def _log_tail(self, lines: int = 30) -> str:
        try:
            text = self.config.log_file.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def ctr(
        self,
        *args: str,
        namespace: str = K8S_NAMESPACE,
        timeout: float = 30,  # noqa: ASYNC109
    ) -> str:
        """Run ``ctr -a SOCK -n NAMESPACE ARGS...``; return stdout, raise on failure."""
        proc = await asyncio.create_subprocess_exec(
            self.config.ctr_bin, "-a", str(self.socket), "-n", namespace, *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise ContainerdError(f"ctr {' '.join(args)}: timed out after {timeout}s") from None
        if proc.returncode != 0:
            raise ContainerdError(f"ctr {' '.join(args)}: {err.decode(errors='replace').strip()}")
        return out.decode(errors="replace")

    @property
    def pid_file(self) -> Path:
        return self.config.base / "containerd.pid"

    async def _adopt(self) -> bool:
        """Use a containerd of ours that is still running (we were killed, it was not)."""
        try:
            pid = int(self.pid_file.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return False
        if not self.socket.exists():
            return False
        try:
            await self.ctr("version", timeout=5)
        except ContainerdError:
            return False
        self._adopted = pid
        return True

    async def start(self, timeout: float = 20) -> None:  # noqa: ASYNC109
        """Spawn containerd (or adopt ours if it survived us) and wait until it answers."""
        if self._proc is not None and self._proc.returncode is None:
            return
        if await self._adopt():
            return
        self._write_config()
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        with self.config.log_file.open("ab") as log:
            self._proc = await asyncio.create_subprocess_exec(
                self.config.containerd_bin, "--config", str(self.config.config_file),
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True,
            )  # fmt: skip
        self.pid_file.write_text(f"{self._proc.pid}\n")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self._proc.returncode is not None:
                code = self._proc.returncode
                self._proc = None
                raise ContainerdError(
                    f"containerd exited with {code} during startup; log tail:\n{self._log_tail()}"
                )
            if self.socket.exists():
                with contextlib.suppress(ContainerdError):
                    await self.ctr("version", timeout=5)
                    return
            if loop.time() >= deadline:
                await self.stop()
                raise ContainerdError(
                    f"containerd not ready after {timeout}s; log tail:\n{self._log_tail()}"
                )
            await asyncio.sleep(0.1)

    async def stop(self, timeout: float = 10) -> None:  # noqa: ASYNC109
        """SIGTERM containerd, then SIGKILL if it has not exited within ``timeout``."""
        proc, self._proc = self._proc, None
        adopted, self._adopted = self._adopted, None
        if adopted is not None:
            await _stop_pid(adopted, timeout)
            return
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def import_image(self, tar_path: Path) -> None:
        """Import an OCI archive into the k8s.io namespace (names from its annotations)."""
        await self.ctr("images", "import", str(tar_path), timeout=60)

    async def image_refs(self) -> set[str]:
        out = await self.ctr("images", "ls", "-q")
        return set(out.split())

    async def ensure_local_images(self) -> None:
        """Build and import the busybox and pause images unless already present.

        A sandbox image configured under ``pyk8s.local/`` is built under that name;
        any other sandbox image is left for the CRI plugin to pull.
        """
        sandbox = self.config.sandbox_image
        pause_ref = sandbox if sandbox.startswith("pyk8s.local/") else images.PAUSE_REF
        present = await self.image_refs()
        builders = {
            images.BUSYBOX_REF: images.build_busybox_image,
            pause_ref: images.build_pause_image,
        }
        for ref, build in builders.items():
            if ref in present:
                continue
            name = ref.rsplit("/", 1)[-1].replace(":", "-") + ".tar"
            archive = await asyncio.to_thread(build, self.config.base / "images" / name, ref)
            await self.import_image(archive)


async def _stop_pid(pid: int, timeout: float) -> None:  # noqa: ASYNC109
    """SIGTERM a process that is not our child, SIGKILL it after ``timeout``."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        await asyncio.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
