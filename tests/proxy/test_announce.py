"""The layer-2 speaker's pure parts: the election (MetalLB's hash, the same winner from
every node, Local policy restricted to nodes with endpoints), which addresses a speaker
considers, and the ARP and NDP frames it answers and sends."""

from __future__ import annotations

import ipaddress
import socket
import struct
from typing import Any

from pyk8s.proxy.announce import (
    announcer,
    arp_reply,
    elected,
    gratuitous_arp,
    neighbour_advert,
    solicited_node_group,
    unsolicited_advert,
    wanted_addresses,
)

MAC = bytes.fromhex("02aabbccddee")
PEER = bytes.fromhex("021122334455")


def lb(name: str, ips: list[str], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "LoadBalancer", **spec},
        "status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"} for ip in ips]}},
    }


def test_every_node_elects_the_same_announcer_and_addresses_spread() -> None:
    nodes = ["host-a", "host-b", "host-c"]
    ips = [f"10.99.0.{i}" for i in range(200, 230)]
    winners = {ip: announcer(nodes, ip) for ip in ips}
    assert winners == {ip: announcer(list(reversed(nodes)), ip) for ip in ips}
    assert set(winners.values()) == set(nodes)  # 30 addresses reach all three nodes
    ip = ips[0]
    holder = winners[ip]
    rest = [n for n in nodes if n != holder]
    assert announcer(rest, ip) in rest  # the holder gone: another one takes it
    assert announcer([], ip) is None


def test_the_addresses_a_speaker_considers() -> None:
    net = ipaddress.IPv4Network("10.99.0.0/24")
    services = [
        lb("pool", ["10.99.0.200"]),
        lb("nodeports", ["10.99.0.11"]),  # a node's own address
        lb("far", ["192.0.2.1"]),  # not on this network
        lb("proxy", ["10.99.0.201"]) | {"status": {"loadBalancer": {"ingress": [
            {"ip": "10.99.0.201", "ipMode": "Proxy"}]}}},
        lb("foreign", ["10.99.0.202"], loadBalancerClass="example.com/other"),
        lb("mine", ["10.99.0.203"], loadBalancerClass="pyk8s.io/l2"),
        lb("local", ["10.99.0.204"], externalTrafficPolicy="Local"),
        {"metadata": {"name": "cip"}, "spec": {"type": "ClusterIP"}},
    ]  # fmt: skip
    ready = {("default", "local"): frozenset({"host-b"})}
    wanted = wanted_addresses(services, ready, {"10.99.0.11", "10.99.0.12"}, [net])
    assert [(w.ip, w.name, w.nodes) for w in wanted] == [
        ("10.99.0.200", "pool", None),
        ("10.99.0.203", "mine", None),
        ("10.99.0.204", "local", frozenset({"host-b"})),
    ]


def _request(target: str, sender: str = "10.99.0.1") -> bytes:
    arp = (
        struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
        + PEER + socket.inet_aton(sender) + b"\0" * 6 + socket.inet_aton(target)
    )  # fmt: skip
    return b"\xff" * 6 + PEER + b"\x08\x06" + arp


def test_arp_requests_for_announced_addresses_get_replies() -> None:
    reply = arp_reply(_request("10.99.0.200"), MAC, {"10.99.0.200": None})
    assert reply is not None
    assert reply[:6] == PEER and reply[6:12] == MAC and reply[12:14] == b"\x08\x06"
    assert struct.unpack("!H", reply[20:22])[0] == 2  # a reply
    assert reply[22:28] == MAC and socket.inet_ntoa(reply[28:32]) == "10.99.0.200"
    assert reply[32:38] == PEER and socket.inet_ntoa(reply[38:42]) == "10.99.0.1"
    assert arp_reply(_request("10.99.0.201"), MAC, {"10.99.0.200": None}) is None
    assert arp_reply(_request("10.99.0.200")[:30], MAC, {"10.99.0.200": None}) is None
    # someone else's gratuitous ARP for the address is no question to answer
    garp = _request("10.99.0.200", sender="10.99.0.200")
    assert arp_reply(garp, MAC, {"10.99.0.200": None}) is None


def test_gratuitous_arp() -> None:
    frame = gratuitous_arp(MAC, "10.99.0.200")
    assert frame[:6] == b"\xff" * 6 and frame[6:12] == MAC and len(frame) == 42
    assert frame[28:32] == frame[38:42] == socket.inet_aton("10.99.0.200")


def test_each_address_has_exactly_one_announcer_among_the_live_speakers() -> None:
    net = ipaddress.IPv4Network("10.99.0.0/24")
    services = [lb(f"s{i}", [f"10.99.0.{200 + i}"]) for i in range(8)]
    services.append(lb("local", ["10.99.0.250"], externalTrafficPolicy="Local"))
    ready = {("default", "local"): frozenset({"host-c"})}
    wanted = wanted_addresses(services, ready, set(), [net])
    live = {"host-a", "host-b", "host-c"}
    by_node = {n: elected(wanted, live, n) for n in live}
    ips = [ip for mine in by_node.values() for ip in mine]
    assert sorted(ips) == sorted(w.ip for w in wanted)  # each once
    assert "10.99.0.250" in by_node["host-c"]  # Local: only where the endpoint is
    # host-c gone (or excluded): its addresses move, the Local one has no announcer
    rest = {n: elected(wanted, live - {"host-c"}, n) for n in live - {"host-c"}}
    moved = [ip for mine in rest.values() for ip in mine]
    assert sorted(moved) == sorted(w.ip for w in wanted if w.ip != "10.99.0.250")


V6 = ipaddress.IPv6Network("fd00:99:11::/64")


def _solicitation(target: str, src: str = "fd00:99:11::1", hops: int = 255) -> bytes:
    src_b, target_b = (socket.inet_pton(socket.AF_INET6, a) for a in (src, target))
    group = socket.inet_pton(socket.AF_INET6, solicited_node_group(target))
    message = struct.pack("!BBHI", 135, 0, 0, 0) + target_b + b"\x01\x01" + PEER
    header = struct.pack("!IHBB", 0x60000000, len(message), 58, hops) + src_b + group
    return b"\x33\x33\xff" + group[-3:] + PEER + b"\x86\xdd" + header + message


def _icmp6_sum(frame: bytes) -> int:
    """The one's complement sum over the pseudo-header and message: 0xffff if the
    checksum in the frame is right."""
    message = frame[54:]
    data = frame[22:54] + struct.pack("!I3xB", len(message), 58) + message
    total = sum(struct.unpack(f"!{len(data) // 2}H", data + b"\0" * (len(data) % 2)))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def test_solicitations_for_announced_ipv6_addresses_get_advertisements() -> None:
    ips = {"fd00:99:11::200": None}
    assert solicited_node_group("fd00:99:11::1:2345") == "ff02::1:ff01:2345"
    reply = neighbour_advert(_solicitation("fd00:99:11::200"), MAC, ips)
    assert reply is not None
    assert reply[:6] == PEER and reply[6:12] == MAC and reply[12:14] == b"\x86\xdd"
    assert reply[20:22] == bytes([58, 255])  # ICMPv6, hop limit 255
    assert socket.inet_ntop(socket.AF_INET6, reply[22:38]) == "fd00:99:11::200"
    assert socket.inet_ntop(socket.AF_INET6, reply[38:54]) == "fd00:99:11::1"
    kind, code, _, flags = struct.unpack("!BBHI", reply[54:62])
    assert (kind, code, flags) == (136, 0, 0x60000000)  # solicited, override
    assert socket.inet_ntop(socket.AF_INET6, reply[62:78]) == "fd00:99:11::200"
    assert reply[78:80] == b"\x02\x01" and reply[80:86] == MAC  # target link-layer address
    assert struct.unpack("!H", reply[18:20])[0] == len(reply) - 54 == 32
    assert _icmp6_sum(reply) == 0xFFFF
    assert neighbour_advert(_solicitation("fd00:99:11::201"), MAC, ips) is None
    assert neighbour_advert(_solicitation("fd00:99:11::200", hops=64), MAC, ips) is None
    assert neighbour_advert(_solicitation("fd00:99:11::200", src="::"), MAC, ips) is None  # DAD
    assert neighbour_advert(_solicitation("fd00:99:11::200")[:70], MAC, ips) is None
    assert neighbour_advert(_request("10.99.0.200"), MAC, ips) is None


def test_unsolicited_advertisement() -> None:
    frame = unsolicited_advert(MAC, "fd00:99:11::200")
    assert frame[:6] == bytes.fromhex("333300000001") and frame[6:12] == MAC
    assert socket.inet_ntop(socket.AF_INET6, frame[38:54]) == "ff02::1"
    assert struct.unpack("!BBHI", frame[54:62])[3] == 0x20000000  # override only
    assert _icmp6_sum(frame) == 0xFFFF


def test_a_speaker_considers_the_addresses_of_both_its_networks() -> None:
    services = [lb("v4", ["10.99.0.200"]), lb("v6", ["fd00:99:11::200", "fd00:98::1"])]
    wanted = wanted_addresses(services, {}, set(), [ipaddress.IPv4Network("10.99.0.0/24"), V6])
    assert [w.ip for w in wanted] == ["10.99.0.200", "fd00:99:11::200"]
