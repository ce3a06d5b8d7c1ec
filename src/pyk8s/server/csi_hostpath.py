"""``pyk8s csi-hostpath``: the hostpath CSI driver (:mod:`pyk8s.csihostpath`) as one
process, the way upstream deploys its hostpath example as a pod of containers.

Composition only: serve the driver's Identity/Controller/Node services on
``--endpoint`` (a unix socket), the node-driver registrar's Registration service on
``<kubelet dir>/plugins_registry/<driver>-reg.sock`` (the kubelet finds it there and
registers the driver), and, with a kubeconfig, the provisioner, attacher and resizer
loops (:mod:`pyk8s.csihostpath.sidecars`), which reach the driver over that same socket.
``--install-objects`` also creates the CSIDriver object (attachRequired, podInfoOnMount)
and the ``csi-hostpath`` StorageClass (not default; Delete, WaitForFirstConsumer,
volume expansion allowed) when they do not exist. ``/healthz`` and ``/metrics``
(``csi_hostpath_operations_total`` and the loops' metrics) on ``--health-port``;
SIGTERM stops everything and removes the sockets.

``pyk8s server --csi-hostpath`` runs it on the server's node (see :func:`server_args`)
as its own identity, having created those two objects itself
(:mod:`pyk8s.server.addon_identities`).
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyk8s.server.paths import default_data_dir

__all__ = ["Options", "add_arguments", "options", "run", "server_args"]

log = logging.getLogger(__name__)

STORAGE_CLASS = "csi-hostpath"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", type=Path, default=None)
    p.add_argument("--drivername", default="hostpath.csi.k8s.io")
    p.add_argument("--nodeid", default="", help="this node's name (default: the host name)")
    p.add_argument(
        "--data-dir", type=Path, default=None,
        help="volumes go under DATA_DIR/volumes (default: DATA_DIR of pyk8s/csi-hostpath)",
    )  # fmt: skip
    p.add_argument("--endpoint", type=Path, default=None, help="the CSI socket")
    p.add_argument(
        "--kubelet-dir", type=Path, default=None,
        help="the kubelet's root directory, whose plugins_registry/ gets the registrar socket",
    )  # fmt: skip
    p.add_argument("--maxvolumespernode", type=int, default=0)
    p.add_argument(
        "--controller", default="true", choices=("true", "false"),
        help="run the provisioner, attacher and resizer loops (needs the API)",
    )  # fmt: skip
    p.add_argument("--install-objects", action="store_true")
    p.add_argument("--health-host", default="127.0.0.1")
    p.add_argument("--health-port", type=int, default=9898, help="/healthz and /metrics")
    p.add_argument("--log-level", default="info")


@dataclass
class Options:
    kubeconfig: Path | None = None
    drivername: str = "hostpath.csi.k8s.io"
    nodeid: str = ""
    data_dir: Path | None = None
    endpoint: Path | None = None
    kubelet_dir: Path | None = None
    maxvolumespernode: int = 0
    controller: str = "true"
    install_objects: bool = False
    health_host: str = "127.0.0.1"
    health_port: int = 9898


def options(args: argparse.Namespace) -> Options:
    return Options(**{f: getattr(args, f) for f in Options.__dataclass_fields__})


def server_args(args: argparse.Namespace) -> list[str] | None:
    """The child's flags under ``pyk8s server --csi-hostpath`` (None without the flag)."""
    if not getattr(args, "csi_hostpath", False):
        return None
    data = args.data_dir or default_data_dir()
    out = [
        "--data-dir", str(data / "csi-hostpath"),
        "--kubelet-dir", str(data / "agent" / "kubelet"),
    ]  # fmt: skip
    if getattr(args, "node_name", ""):
        out += ["--nodeid", args.node_name]
    return out


def cluster_objects(driver: str) -> list[tuple[tuple[str, str], dict[str, Any]]]:
    """The CSIDriver and the ``csi-hostpath`` StorageClass, as upstream's deploy ships them."""
    csidriver = {
        "apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver", "metadata": {"name": driver},
        "spec": {"attachRequired": True, "podInfoOnMount": True,
                 "volumeLifecycleModes": ["Persistent"], "fsGroupPolicy": "File"},
    }  # fmt: skip
    sc = {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": STORAGE_CLASS}, "provisioner": driver,
        "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer",
        "allowVolumeExpansion": True,
    }  # fmt: skip
    return [
        (("storage.k8s.io", "csidrivers"), csidriver),
        (("storage.k8s.io", "storageclasses"), sc),
    ]


async def run(opts: Options) -> None:
    import grpc

    from pyk8s.api.registry import REGISTRY
    from pyk8s.client import ApiError, Client, component_user_agent, is_already_exists, load_config
    from pyk8s.controllers.runtime import Manager
    from pyk8s.csihostpath.driver import DriverConfig, HostPathDriver
    from pyk8s.csihostpath.sidecars import Sidecars
    from pyk8s.server.component import HealthServer, stop_on_signals

    data = opts.data_dir or default_data_dir() / "csi-hostpath"
    endpoint = (opts.endpoint or data / "csi.sock").absolute()
    node = opts.nodeid or socket.gethostname().lower()
    driver = HostPathDriver(
        DriverConfig(opts.drivername, node, data, max_volumes_per_node=opts.maxvolumespernode)
    )
    servers = [await driver.serve(endpoint)]
    sockets = [endpoint]
    if opts.kubelet_dir is not None:
        reg = opts.kubelet_dir / "plugins_registry" / f"{opts.drivername}-reg.sock"
        servers.append(await driver.serve_registrar(reg, endpoint))
        sockets.append(reg)
    stop = stop_on_signals()
    health: HealthServer | None = None
    try:
        if opts.controller != "true":
            health = HealthServer(driver.registry, lambda: True, opts.health_host, opts.health_port)
            await health.start()
            await stop.wait()
            return
        config = load_config(str(opts.kubeconfig) if opts.kubeconfig else None)
        async with (
            Client(config, user_agent=component_user_agent("csi-hostpath")) as client,
            grpc.aio.insecure_channel(f"unix://{endpoint}") as channel,
        ):
            if opts.install_objects:
                for (group, plural), body in cluster_objects(opts.drivername):
                    try:
                        await client.create(REGISTRY.get(group, "v1", plural), body)  # type: ignore[arg-type]
                    except ApiError as err:
                        if not is_already_exists(err):
                            raise
            manager = Manager(client, component="csi-hostpath")
            Sidecars(manager, opts.drivername, channel)
            health = HealthServer(
                manager.metrics_registry,
                lambda: manager.healthy,
                opts.health_host,
                opts.health_port,
            )
            manager.metrics_registry.register(driver.calls)
            await health.start()
            log.info("csi-hostpath started", extra={"driver": opts.drivername, "node": node})
            await manager.run(stop)
    finally:
        if health is not None:
            await health.stop()
        for server in servers:
            await server.stop(grace=2)
        for path in sockets:
            path.unlink(missing_ok=True)


def main(args: argparse.Namespace) -> int:
    """``pyk8s csi-hostpath`` (parsed by :func:`add_arguments`)."""
    import asyncio

    from pyk8s.client import ClientError
    from pyk8s.server import logs

    logs.setup("csi-hostpath", args.log_level)
    try:
        asyncio.run(run(options(args)))
    except (ClientError, ValueError, OSError) as err:
        print(f"pyk8s csi-hostpath: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # python -m pyk8s.server.csi_hostpath (tests, before the CLI)
    parser = argparse.ArgumentParser(prog="pyk8s csi-hostpath")
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
