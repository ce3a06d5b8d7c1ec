"""``pyk8s ingress-controller``: the Ingress controller and its nginx as one process.

Composition only: open a client, start :class:`~pyk8s.ingress.controller.IngressController`
(which starts nginx under ``DATA_DIR/ingress-nginx``), serve ``/healthz`` and ``/metrics``
on ingress-nginx's health port (10254), and on SIGTERM/SIGINT stop the controller, which
stops nginx gracefully.
"""

from __future__ import annotations

import argparse
import logging
import socket
from dataclasses import dataclass
from pathlib import Path

from pyk8s.server.paths import default_data_dir

__all__ = ["DISABLE_NAMES", "Options", "add_arguments", "options", "run", "server_args"]

log = logging.getLogger(__name__)

#: Debian's nginx (the flags are parsed by every ``pyk8s`` command: nothing heavy here)
NGINX = "/usr/sbin/nginx"


#: ``pyk8s server --disable NAME`` values that turn the controller off (k3s's is traefik)
DISABLE_NAMES = ("ingress", "ingress-controller", "traefik")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``pyk8s ingress-controller``'s flags (ingress-nginx's names where it has them)."""
    p.add_argument("--kubeconfig", type=Path, default=None)
    p.add_argument(
        "--data-dir",
        "-d",
        type=Path,
        default=None,
        help="nginx's prefix goes under DATA_DIR/ingress-nginx",
    )
    p.add_argument("--ingress-class", default="pyk8s", help="the IngressClass served")
    p.add_argument("--controller-class", default="pyk8s.io/ingress-nginx")
    p.add_argument(
        "--publish-service",
        default="kube-system/pyk8s-ingress",
        help="NAMESPACE/NAME of the LoadBalancer Service whose addresses go into "
        "each Ingress's status ('' for none)",
    )
    p.add_argument(
        "--node-ip",
        default="",
        help="this host's address for that Service's "
        "EndpointSlice (default: the default route's source address)",
    )
    p.add_argument(
        "--node-name",
        default="",
        help="the node this host is, for that "
        "EndpointSlice's nodeName (default: the host name, as the kubelet's)",
    )
    # nginx's internal ports (pyk8s.ingress.render's HTTP_PORT, HTTPS_PORT; not imported:
    # every command parses these flags): the LoadBalancer Service maps 80/443 to them
    p.add_argument("--http-port", type=int, default=10080)
    p.add_argument("--https-port", type=int, default=10443)
    p.add_argument("--bind-address", default="", help="nginx's listen address (default: all)")
    p.add_argument("--healthz-host", default="127.0.0.1")
    p.add_argument("--healthz-port", type=int, default=10254, help="/healthz and /metrics")
    p.add_argument("--nginx-binary", default=NGINX)
    p.add_argument("--log-level", default="info")  # fmt: skip


def options(args: argparse.Namespace) -> Options:
    return Options(**{f: getattr(args, f) for f in Options.__dataclass_fields__})


def server_args(args: argparse.Namespace, passed_through: list[str]) -> list[str] | None:
    """The child's flags under ``pyk8s server`` (None when ``--disable ingress``)."""
    disabled = {n.strip() for v in args.disable for n in v.split(",")}
    if disabled & set(DISABLE_NAMES):
        return None
    out = ["--data-dir", str((args.data_dir or default_data_dir()) / "server")]
    # a dual-stack node's --node-ip v4,v6: the primary address
    node_ip = getattr(args, "node_ip", "").split(",")[0] or getattr(args, "advertise_address", "")
    if node_ip:
        out += ["--node-ip", node_ip]
    if getattr(args, "node_name", ""):
        out += ["--node-name", args.node_name]
    return out + passed_through


@dataclass
class Options:
    kubeconfig: Path | None = None
    data_dir: Path | None = None
    ingress_class: str = "pyk8s"
    controller_class: str = "pyk8s.io/ingress-nginx"
    publish_service: str = "kube-system/pyk8s-ingress"
    #: the host address in the publish Service's EndpointSlice (default: the host's)
    node_ip: str = ""
    node_name: str = ""
    http_port: int = 10080
    https_port: int = 10443
    bind_address: str = ""
    healthz_host: str = "127.0.0.1"
    healthz_port: int = 10254
    nginx_binary: str = NGINX


async def run(opts: Options) -> None:
    from pyk8s.client import Client, component_user_agent, load_config
    from pyk8s.ingress.controller import ControllerConfig, IngressController
    from pyk8s.ingress.nginx import Nginx
    from pyk8s.kubelet.node import default_host_ip
    from pyk8s.server.component import HealthServer, stop_on_signals

    for flag, port in (("http-port", opts.http_port), ("https-port", opts.https_port)):
        if not 0 < port < 65536:
            raise ValueError(f"--{flag} must be within 1..65535")
    if opts.publish_service and "/" not in opts.publish_service:
        raise ValueError("--publish-service must be NAMESPACE/NAME")
    prefix = (opts.data_dir or default_data_dir()) / "ingress-nginx"
    config = ControllerConfig(
        ingress_class=opts.ingress_class,
        controller_class=opts.controller_class,
        publish_service=opts.publish_service,
        address=opts.node_ip or default_host_ip(),
        node_name=opts.node_name or socket.gethostname().lower(),
        http_port=opts.http_port,
        https_port=opts.https_port,
        bind_address=opts.bind_address,
    )
    client_config = load_config(str(opts.kubeconfig) if opts.kubeconfig else None)
    agent = component_user_agent("nginx-ingress-controller")
    async with Client(client_config, user_agent=agent) as client:
        controller = IngressController(client, Nginx(prefix, opts.nginx_binary), config)
        health = HealthServer(
            controller.registry, controller.healthy, opts.healthz_host, opts.healthz_port
        )
        await health.start()
        stop = stop_on_signals()
        try:
            await controller.start()
            log.info(
                "ingress controller started",
                extra={"class": opts.ingress_class, "http": opts.http_port,
                       "https": opts.https_port, "prefix": str(prefix)},
            )  # fmt: skip
            await stop.wait()
        finally:
            await controller.stop()
            await health.stop()
