"""The layer-2 speaker: one node answers ARP for each address-pool load balancer address.

MetalLB's speaker, run inside every node's ``pyk8s proxy`` (which already watches
Services and EndpointSlices and has the node's network): the cloud controller manager's
address-pool mode (:mod:`pyk8s.cloudprovider.addresspool`) writes an address of its own
to a LoadBalancer Service's ``status.loadBalancer.ingress``; every proxy captures it in
its nat rules, and exactly one node makes the network send the address's packets to it:

* **which addresses**: ingress IPs of LoadBalancer Services with no
  ``spec.loadBalancerClass`` or a ``pyk8s.io/`` one, that are no node's own address (the
  node-ports mode's addresses need no announcing) and lie on the subnet of the interface
  carrying this node's IP (layer 2 reaches no further);
* **liveness**: while it has such an address to consider, each speaker renews a Lease
  ``kube-system/pyk8s-speaker-<node>`` (MetalLB's memberlist role); a speaker counts as
  alive while its Lease's renewTime keeps changing, as observed on the local clock
  (client-go's leader election rule, so clock skew between nodes does not matter);
* **election**: for each address, among the live speakers (not on nodes labelled
  ``node.kubernetes.io/exclude-from-external-load-balancers``) — with
  ``externalTrafficPolicy: Local`` only those on nodes with a ready endpoint — the one with
  the smallest ``sha256(node + "#" + ip)`` announces it (MetalLB's layer-2 hash): every
  speaker computes the same winner with no further coordination;
* **announcing**: the winner answers ARP requests for the address from a raw packet
  socket on that interface (the address is not added to the interface, so nothing else
  of the host answers on it, as MetalLB), sends gratuitous ARP when it takes the address
  (three times, 0.5 s apart, which moves the neighbours' caches on failover), and records
  MetalLB's ``nodeAssigned`` event on the service; an IPv6 address (on the subnet of the
  node's IPv6 address) is announced with NDP instead, as MetalLB's: neighbour
  solicitations for it get solicited neighbour advertisements, taking it sends unsolicited
  ones to all nodes (``ff02::1``, the override flag set), and the speaker joins the
  address's solicited-node multicast group so that MLD-snooping switches forward the
  solicitations to it;
* **failover**: a holder that dies stops renewing its Lease; after
  :data:`LEASE_DURATION` the others count it gone and the next in hash order takes the
  address with gratuitous ARP.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import ipaddress
import json
import logging
import socket
import struct
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import (
    NORMAL,
    Client,
    ClientError,
    EventRecorder,
    SharedInformer,
    is_already_exists,
    is_conflict,
    is_not_found,
)
from pyk8s.client.leaderelection import micro_time

__all__ = [
    "LEASE_DURATION",
    "ArpResponder",
    "NdpResponder",
    "Speaker",
    "announcer",
    "arp_reply",
    "elected",
    "gratuitous_arp",
    "neighbour_advert",
    "solicited_node_group",
    "unsolicited_advert",
    "wanted_addresses",
]

log = logging.getLogger(__name__)

LEASES: Resource = REGISTRY.get("coordination.k8s.io", "v1", "leases")  # type: ignore[assignment]
NODES: Resource = REGISTRY.get("", "v1", "nodes")  # type: ignore[assignment]
LEASE_NAMESPACE = "kube-system"
LEASE_PREFIX = "pyk8s-speaker-"
SPEAKER_LABEL = "app.kubernetes.io/component"
SPEAKER_VALUE = "lb-speaker"
#: nodes with this label announce nothing (as MetalLB, and the service controller)
EXCLUDE_LB_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
#: seconds a speaker's Lease may go unrenewed before the others take its addresses
LEASE_DURATION = 6
RENEW_INTERVAL = 2.0
GARP_COUNT, GARP_INTERVAL = 3, 0.5

ETH_P_ARP = 0x0806
BROADCAST = b"\xff" * 6
ETH_P_IPV6 = 0x86DD
ICMPV6, NEIGHBOUR_SOLICITATION, NEIGHBOUR_ADVERT = 58, 135, 136
ALL_NODES = socket.inet_pton(socket.AF_INET6, "ff02::1")
ALL_NODES_MAC = bytes.fromhex("333300000001")
#: the advertisement's flags: solicited, override
SOLICITED, OVERRIDE = 0x40000000, 0x20000000
#: classic BPF for the NDP socket: IPv6, next header ICMPv6, type 135, else drop
NS_FILTER = (
    (0x28, 0, 0, 12), (0x15, 0, 5, ETH_P_IPV6), (0x30, 0, 0, 20), (0x15, 0, 3, ICMPV6),
    (0x30, 0, 0, 54), (0x15, 0, 1, NEIGHBOUR_SOLICITATION), (0x06, 0, 0, 0xFFFF),
    (0x06, 0, 0, 0),
)  # fmt: skip
SO_ATTACH_FILTER = 26

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def announcer(candidates: Iterable[str], ip: str) -> str | None:
    """The node that announces ``ip`` among ``candidates`` (MetalLB's layer-2 election:
    smallest sha256 of ``node#ip``; addresses spread over the nodes)."""
    return min(
        candidates,
        key=lambda node: hashlib.sha256(f"{node}#{ip}".encode()).digest(),
        default=None,
    )


@dataclass(frozen=True)
class Wanted:
    """An address to announce and what the election needs about its service."""

    ip: str
    namespace: str
    name: str
    #: the nodes with a ready endpoint (Local policy), None for any node
    nodes: frozenset[str] | None


def _ours(svc: Mapping[str, Any]) -> bool:
    spec = svc.get("spec") or {}
    cls = spec.get("loadBalancerClass") or ""
    return spec.get("type") == "LoadBalancer" and (not cls or cls.startswith("pyk8s.io/"))


def wanted_addresses(
    services: Iterable[Mapping[str, Any]],
    ready_nodes: Mapping[tuple[str, str], frozenset[str]],
    node_addresses: set[str],
    networks: Sequence[Network],
) -> list[Wanted]:
    """The addresses a speaker on ``networks`` (one per family) considers;
    ``ready_nodes`` maps (namespace, name) to the nodes with a ready endpoint of that
    service."""
    out: list[Wanted] = []
    for svc in services:
        if not _ours(svc):
            continue
        meta = svc.get("metadata") or {}
        ns, name = meta.get("namespace") or "default", meta.get("name") or ""
        local = (svc.get("spec") or {}).get("externalTrafficPolicy") == "Local"
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        for entry in ingress:
            ip = entry.get("ip") or ""
            if not ip or entry.get("ipMode") == "Proxy" or ip in node_addresses:
                continue
            try:
                addr = ipaddress.ip_address(ip)
            except ValueError:
                continue
            if not any(addr in net for net in networks):
                continue
            nodes = ready_nodes.get((ns, name), frozenset()) if local else None
            out.append(Wanted(ip, ns, name, nodes))
    return out


def elected(wanted: Iterable[Wanted], live: set[str], me: str) -> dict[str, Wanted]:
    """The addresses of ``wanted`` node ``me`` announces among the ``live`` speakers
    (with Local policy only those with a ready endpoint are candidates)."""
    mine: dict[str, Wanted] = {}
    for w in wanted:
        candidates = live if w.nodes is None else live & w.nodes
        if announcer(candidates, w.ip) == me:
            mine.setdefault(w.ip, w)
    return mine


def _mac(text: str) -> bytes:
    return bytes(int(x, 16) for x in text.split(":"))


def arp_reply(frame: bytes, mac: bytes, ips: Mapping[str, Any]) -> bytes | None:
    """The reply to ``frame`` if it is an Ethernet ARP request for one of ``ips``."""
    if len(frame) < 42 or frame[12:14] != b"\x08\x06":
        return None
    htype, ptype, hlen, plen, op = struct.unpack("!HHBBH", frame[14:22])
    if (htype, ptype, hlen, plen, op) != (1, 0x0800, 6, 4, 1):
        return None
    sha, spa, tpa = frame[22:28], frame[28:32], frame[38:42]
    if socket.inet_ntoa(tpa) not in ips or spa == tpa:
        return None
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2) + mac + tpa + sha + spa
    return sha + mac + b"\x08\x06" + arp


def gratuitous_arp(mac: bytes, ip: str) -> bytes:
    """A broadcast gratuitous ARP request (sender = target = ``ip``)."""
    addr = socket.inet_aton(ip)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + addr + b"\x00" * 6 + addr
    return BROADCAST + mac + b"\x08\x06" + arp


def _icmp6_checksum(src: bytes, dst: bytes, message: bytes) -> int:
    data = src + dst + struct.pack("!I3xB", len(message), ICMPV6) + message
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _advert(mac: bytes, eth_dst: bytes, target: bytes, dst: bytes, flags: int) -> bytes:
    """A neighbour advertisement for ``target`` (sent from it) with our link-layer
    address (RFC 4861 4.4), hop limit 255."""
    message = struct.pack("!BBHI", NEIGHBOUR_ADVERT, 0, 0, flags) + target + b"\x02\x01" + mac
    checksum = _icmp6_checksum(target, dst, message)
    message = message[:2] + struct.pack("!H", checksum) + message[4:]
    header = struct.pack("!IHBB", 0x60000000, len(message), ICMPV6, 255) + target + dst
    return eth_dst + mac + struct.pack("!H", ETH_P_IPV6) + header + message


def neighbour_advert(frame: bytes, mac: bytes, ips: Mapping[str, Any]) -> bytes | None:
    """The solicited advertisement answering ``frame`` if it is an Ethernet neighbour
    solicitation (hop limit 255) for one of ``ips``; duplicate address detection (an
    unspecified source) is left unanswered, as MetalLB's."""
    if len(frame) < 78 or frame[12:14] != b"\x86\xdd" or frame[20:22] != bytes([ICMPV6, 255]):
        return None
    if frame[54:56] != bytes([NEIGHBOUR_SOLICITATION, 0]):
        return None
    src, target = frame[22:38], frame[62:78]
    if src == bytes(16) or socket.inet_ntop(socket.AF_INET6, target) not in ips:
        return None
    return _advert(mac, frame[6:12], target, src, SOLICITED | OVERRIDE)


def unsolicited_advert(mac: bytes, ip: str) -> bytes:
    """An unsolicited advertisement of ``ip`` to all nodes, overriding their caches."""
    target = socket.inet_pton(socket.AF_INET6, ip)
    return _advert(mac, ALL_NODES_MAC, target, ALL_NODES, OVERRIDE)


def solicited_node_group(ip: str) -> str:
    """``ff02::1:ffXX:XXXX``, where neighbour solicitations for ``ip`` are sent."""
    low = int(ipaddress.IPv6Address(ip)) & 0xFFFFFF
    return str(ipaddress.IPv6Address((0xFF02 << 112) | (1 << 32) | (0xFF << 24) | low))


class ArpResponder:
    """Answers ARP for a set of addresses on one interface (a raw AF_PACKET socket)."""

    reply = staticmethod(arp_reply)
    family = 4
    ether_type = ETH_P_ARP

    def __init__(self, interface: str, mac: bytes) -> None:
        self.interface = interface
        self.mac = mac
        self.ips: dict[str, None] = {}
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(self.ether_type))
        self._sock.bind((interface, self.ether_type))
        self._sock.setblocking(False)
        asyncio.get_running_loop().add_reader(self._sock.fileno(), self._on_frame)

    def serve(self, ips: Iterable[str]) -> None:
        """Answer for exactly ``ips`` from now on."""
        self.ips = dict.fromkeys(ips)

    def _on_frame(self) -> None:
        for _ in range(64):
            try:
                frame = self._sock.recv(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:
                log.warning("layer-2 socket: %s", err, extra={"interface": self.interface})
                return
            reply = self.reply(frame, self.mac, self.ips)
            if reply is not None:
                with contextlib.suppress(OSError):
                    self._sock.send(reply)

    def announce(self, ip: str) -> None:
        """Gratuitous ARP for ``ip``."""
        with contextlib.suppress(OSError):
            self._sock.send(gratuitous_arp(self.mac, ip))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
        self._sock.close()


class NdpResponder(ArpResponder):
    """Answers neighbour solicitations for a set of IPv6 addresses on one interface (a
    raw AF_PACKET socket that a BPF filter gives solicitations only), and joins their
    solicited-node multicast groups (MLD) on it."""

    reply = staticmethod(neighbour_advert)
    family = 6
    ether_type = ETH_P_IPV6

    def __init__(self, interface: str, mac: bytes) -> None:
        super().__init__(interface, mac)
        self._joined: set[str] = set()
        try:
            program = b"".join(struct.pack("HBBI", *insn) for insn in NS_FILTER)
            buffer = ctypes.create_string_buffer(program)
            fprog = struct.pack("HL", len(NS_FILTER), ctypes.addressof(buffer))
            self._sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
            self._index = socket.if_nametoindex(interface)
            self._groups = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        except OSError:
            super().close()
            raise

    def serve(self, ips: Iterable[str]) -> None:
        super().serve(str(ipaddress.IPv6Address(ip)) for ip in ips)
        groups = {solicited_node_group(ip) for ip in self.ips}
        for group, option in [(g, socket.IPV6_JOIN_GROUP) for g in groups - self._joined] + [
            (g, socket.IPV6_LEAVE_GROUP) for g in self._joined - groups
        ]:
            mreq = socket.inet_pton(socket.AF_INET6, group) + struct.pack("@I", self._index)
            try:
                self._groups.setsockopt(socket.IPPROTO_IPV6, option, mreq)
            except OSError as err:
                log.warning("multicast group %s: %s", group, err)
        self._joined = groups

    def announce(self, ip: str) -> None:
        with contextlib.suppress(OSError):
            self._sock.send(unsolicited_advert(self.mac, ip))

    def close(self) -> None:
        super().close()
        self._groups.close()


async def node_interface(node_ip: str) -> tuple[str, bytes, Network] | None:
    """(the interface carrying ``node_ip``, its MAC address, its network), from ``ip -j
    addr`` (not /sys, which shows the network namespace it was mounted in)."""
    proc = await asyncio.create_subprocess_exec(
        "ip", "-j", "addr", "show",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    out, _ = await proc.communicate()
    with contextlib.suppress(ValueError):
        for link in json.loads(out or b"[]"):
            for addr in link.get("addr_info") or []:
                if addr.get("local") == node_ip:
                    net = ipaddress.ip_network(f"{node_ip}/{addr['prefixlen']}", strict=False)
                    return str(link["ifname"]), _mac(str(link.get("address") or "")), net
    return None


class Speaker:
    """The layer-2 speaker of one node, fed by the proxy's Service and EndpointSlice
    informers."""

    def __init__(
        self,
        client: Client,
        node_name: str,
        node_ips: Sequence[str],
        services: SharedInformer,
        slices: SharedInformer,
    ) -> None:
        self.client = client
        self.node_name = node_name
        self.node_ips = list(node_ips)
        self.services = services
        self.slices = slices
        self.nodes = SharedInformer.for_resource(client, NODES)
        self.leases = SharedInformer.for_resource(
            client, LEASES, LEASE_NAMESPACE, label_selector=f"{SPEAKER_LABEL}={SPEAKER_VALUE}"
        )
        self.recorder = EventRecorder(client, "pyk8s-speaker", node_name)
        #: the addresses this node announces now
        self.announced: dict[str, Wanted] = {}
        #: per IP family of the node's addresses: (its responder, its interface's network)
        self._links: dict[int, tuple[ArpResponder, Network]] = {}
        #: lease name → (renewTime seen, local monotonic time it was first seen)
        self._observed: dict[str, tuple[str, float]] = {}
        self._lease_rv = ""
        self._renewed_at = -float("inf")
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._garp_tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        for ip in self.node_ips:
            found = await node_interface(ip)
            if found is None or found[2].version in self._links:
                continue
            interface, mac, network = found
            kind = ArpResponder if network.version == 4 else NdpResponder
            try:
                self._links[network.version] = (kind(interface, mac), network)
            except OSError as err:
                log.warning("layer-2 speaker: %s", err, extra={"interface": interface})
        if not self._links:
            log.info("layer-2 speaker off: no interface carries the node's address")
            return
        for informer in (self.services, self.slices, self.nodes, self.leases):
            informer.add_event_handler(
                on_add=self._poke, on_update=lambda _o, _n: self._poke(), on_delete=self._poke
            )
        self.nodes.start()
        self.leases.start()
        self._task = asyncio.create_task(self._loop(), name="lb-speaker")

    def _poke(self, *_args: Any) -> None:
        self._changed.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._garp_tasks):
            task.cancel()
        for responder, _ in self._links.values():
            responder.close()
        await self.nodes.stop()
        await self.leases.stop()
        await self.recorder.close()

    async def _loop(self) -> None:
        last = time.monotonic()
        while True:
            self._changed.clear()
            if time.monotonic() - last > LEASE_DURATION:
                # this process was stopped long enough for another node to take our
                # addresses: take them again with gratuitous ARP if still elected
                self.announced = {}
            last = time.monotonic()
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("layer-2 speaker sync failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=1.0)

    def _ready_nodes(self) -> dict[tuple[str, str], frozenset[str]]:
        out: dict[tuple[str, str], set[str]] = {}
        for sl in self.slices.store.list():
            meta = sl.get("metadata") or {}
            svc = (meta.get("labels") or {}).get("kubernetes.io/service-name")
            if not svc:
                continue
            nodes = out.setdefault((meta.get("namespace") or "default", svc), set())
            for ep in sl.get("endpoints") or []:
                if (ep.get("conditions") or {}).get("ready") is not False and ep.get("nodeName"):
                    nodes.add(ep["nodeName"])
        return {k: frozenset(v) for k, v in out.items()}

    def _live(self) -> set[str]:
        now = time.monotonic()
        live: set[str] = set()
        for lease in self.leases.store.list():
            name = lease["metadata"]["name"]
            spec = lease.get("spec") or {}
            renew = spec.get("renewTime") or ""
            seen = self._observed.get(name)
            if seen is None or seen[0] != renew:
                seen = self._observed[name] = (renew, now)
            duration = float(spec.get("leaseDurationSeconds") or LEASE_DURATION)
            if now - seen[1] < duration and spec.get("holderIdentity"):
                live.add(str(spec["holderIdentity"]))
        if time.monotonic() - self._renewed_at < LEASE_DURATION:
            live.add(self.node_name)
        return live

    async def sync(self) -> None:
        node_addresses = {
            a.get("address")
            for n in self.nodes.store.list()
            for a in (n.get("status") or {}).get("addresses") or []
        } | set(self.node_ips)
        wanted = wanted_addresses(
            self.services.store.list(),
            self._ready_nodes(),
            {a for a in node_addresses if a},
            [network for _, network in self._links.values()],
        )
        if wanted and time.monotonic() - self._renewed_at >= RENEW_INTERVAL:
            await self._renew()
        excluded = {
            n["metadata"]["name"]
            for n in self.nodes.store.list()
            if EXCLUDE_LB_LABEL in ((n.get("metadata") or {}).get("labels") or {})
        }
        mine = elected(wanted, self._live() - excluded, self.node_name)
        for ip in set(self.announced) - set(mine):
            log.info("layer-2: stopped announcing", extra={"ip": ip})
        for family, (responder, _) in self._links.items():
            responder.serve(ip for ip in mine if ipaddress.ip_address(ip).version == family)
        for ip, w in mine.items():
            if ip not in self.announced:
                self._take(w)
        self.announced = mine

    def _take(self, w: Wanted) -> None:
        log.info("layer-2: announcing", extra={"ip": w.ip, "service": f"{w.namespace}/{w.name}"})
        svc = self.services.store.get_by_name(w.namespace, w.name)
        if svc is not None:
            self.recorder.event(
                svc,
                NORMAL,
                "nodeAssigned",
                f'announcing from node "{self.node_name}" with protocol "layer2"',
            )
        task = asyncio.create_task(self._gratuitous(w.ip))
        self._garp_tasks.add(task)
        task.add_done_callback(self._garp_tasks.discard)

    async def _gratuitous(self, ip: str) -> None:
        """Gratuitous ARP, or unsolicited neighbour advertisements, for ``ip``."""
        link = self._links.get(ipaddress.ip_address(ip).version)
        for _ in range(GARP_COUNT):
            if ip not in self.announced or link is None:
                return
            link[0].announce(ip)
            await asyncio.sleep(GARP_INTERVAL)

    async def _renew(self) -> None:
        name = LEASE_PREFIX + self.node_name
        now = micro_time()
        body: dict[str, Any] = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": name,
                "namespace": LEASE_NAMESPACE,
                "labels": {SPEAKER_LABEL: SPEAKER_VALUE},
            },
            "spec": {
                "holderIdentity": self.node_name,
                "leaseDurationSeconds": LEASE_DURATION,
                "renewTime": now,
            },
        }
        try:
            if self._lease_rv:
                body["metadata"]["resourceVersion"] = self._lease_rv
                obj = await self.client.update(LEASES, body)
            else:
                obj = await self.client.create(LEASES, body)
        except ClientError as err:
            self._lease_rv = ""
            if is_conflict(err) or is_already_exists(err) or is_not_found(err):
                with contextlib.suppress(ClientError):
                    cur = await self.client.get(LEASES, name, LEASE_NAMESPACE)
                    self._lease_rv = str(cur["metadata"]["resourceVersion"])
                return
            log.warning("speaker lease renewal failed: %s", err)
            return
        self._lease_rv = str(obj["metadata"]["resourceVersion"])
        self._renewed_at = time.monotonic()
