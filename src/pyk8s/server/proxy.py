"""``pyk8s proxy``: run the :class:`~pyk8s.proxy.proxier.Proxier` (iptables or nftables
mode, ``--proxy-mode``) as a process.

Composition only: open a client, start the proxier for this node, serve ``/healthz`` and
``/metrics`` on upstream kube-proxy's health port (10256), and stop on SIGTERM/SIGINT
(the rules stay: traffic keeps flowing while the proxy restarts). With ``cleanup`` it
only removes every rule the proxy makes, in every mode, and returns.

Beside the proxier runs the node's NetworkPolicy enforcement
(:class:`~pyk8s.netpol.controller.NetpolController`, unless ``disable_network_policy``):
it shares the process, the credentials (``system:kube-proxy`` is granted read access to
pods, namespaces and networkpolicies by the ``system:pyk8s:network-policy`` role) and the
/metrics registry; /healthz reports both.

And the layer-2 speaker (:class:`~pyk8s.proxy.announce.Speaker`): it answers ARP for the
address-pool load balancers' addresses this node is elected for (``system:kube-proxy`` may
keep its ``kube-system/pyk8s-speaker-<node>`` Lease by the ``system:pyk8s:lb-speaker``
role); it is idle while no such address exists.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field
from pathlib import Path

from pyk8s.client import Client, component_user_agent, load_config
from pyk8s.netpol.controller import NetpolController
from pyk8s.netpol.controller import cleanup as cleanup_netpol
from pyk8s.proxy.announce import Speaker
from pyk8s.proxy.iptables import cleanup
from pyk8s.proxy.nftables import cleanup_nftables
from pyk8s.proxy.nftrules import IPV6
from pyk8s.proxy.proxier import MODES, Proxier
from pyk8s.server.component import HealthServer, stop_on_signals

__all__ = ["Options", "run"]

log = logging.getLogger(__name__)


@dataclass
class Options:
    kubeconfig: Path | None = None
    #: defaults to the host name, as the kubelet's does
    node_name: str = ""
    cluster_cidr: str = "10.42.0.0/16"
    masquerade_bit: int = 14
    #: defaults to the Node object's InternalIP/ExternalIP addresses
    node_ips: list[str] = field(default_factory=list)
    nodeport_addresses: list[str] = field(default_factory=list)
    min_sync_period: float = 1.0
    sync_period: float = 30.0
    bind_address: str = "0.0.0.0"
    port: int = 10256
    #: a second /metrics (and /healthz) listener, as kube-proxy's --metrics-bind-address
    metrics_bind_address: tuple[str, int] | None = None
    cleanup: bool = False
    #: nftables or iptables (upstream's --proxy-mode; nftables programs 1,000 services
    #: ~17x faster, see bench/network/proxy.py)
    mode: str = "nftables"
    #: argv prefix for every iptables command (e.g. ``ip netns exec NS``)
    command_prefix: list[str] = field(default_factory=list)
    #: no NetworkPolicy enforcement (k3s's --disable-network-policy)
    disable_network_policy: bool = False


async def run(opts: Options) -> None:
    if opts.cleanup:
        await cleanup(opts.command_prefix)
        await cleanup(opts.command_prefix, "ip6tables")
        await cleanup_nftables(opts.command_prefix)
        await cleanup_nftables(opts.command_prefix, IPV6)
        await cleanup_netpol(opts.command_prefix)
        log.info("proxy rules removed")
        return
    if opts.mode not in MODES:
        raise ValueError(f"--proxy-mode {opts.mode!r}: must be one of {', '.join(MODES)}")
    if not 0 <= opts.masquerade_bit <= 31:
        raise ValueError("--iptables-masquerade-bit must be within 0..31")
    node_name = opts.node_name or socket.gethostname().lower()
    config = load_config(str(opts.kubeconfig) if opts.kubeconfig else None)
    async with Client(config, user_agent=component_user_agent("kube-proxy")) as client:
        proxier = Proxier(
            client,
            node_name,
            cluster_cidr=opts.cluster_cidr,
            masquerade_mark=1 << opts.masquerade_bit,
            node_ips=opts.node_ips,
            nodeport_addresses=opts.nodeport_addresses,
            min_sync_period=opts.min_sync_period,
            sync_period=opts.sync_period,
            command_prefix=opts.command_prefix,
            mode=opts.mode,
        )
        netpol = None
        if not opts.disable_network_policy:
            netpol = NetpolController(
                client,
                node_name,
                command_prefix=opts.command_prefix,
                registry=proxier.registry,
            )

        def healthy() -> bool:
            return proxier.healthy() and (netpol is None or netpol.healthy())

        listeners = [HealthServer(proxier.registry, healthy, opts.bind_address, opts.port)]
        if opts.metrics_bind_address is not None:
            host, port = opts.metrics_bind_address
            listeners.append(HealthServer(proxier.registry, healthy, host, port))
        for listener in listeners:
            await listener.start()
        stop = stop_on_signals()
        speaker: Speaker | None = None
        try:
            await proxier.start()
            if not opts.command_prefix:  # the speaker works in this process's netns
                speaker = Speaker(
                    client, node_name, proxier.config.node_ips, proxier.services, proxier.slices
                )
                await speaker.start()
            if netpol is not None:
                await netpol.start()
            log.info("proxy started", extra={"node": node_name, "mode": opts.mode})
            await stop.wait()
        finally:
            if netpol is not None:
                await netpol.stop()
            if speaker is not None:
                await speaker.stop()
            await proxier.stop()
            for listener in listeners:
                await listener.stop()
