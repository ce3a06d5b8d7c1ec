"""Cluster DNS records: a question (name, type) → answer RRsets and rcode.

Pure: it reads a :class:`~pyk8s.dns.catalog.Catalog` and builds dnspython RRsets, with no
sockets and no clock, so every naming rule of the Kubernetes DNS specification is tested
without a server. The names served under the cluster domain (``cluster.local`` unless
configured), every record with a 5 s TTL as CoreDNS's kubernetes plugin has by default:

* ``<svc>.<ns>.svc`` — A/AAAA: the ClusterIPs of that family; for a headless Service the
  ready endpoints' addresses; for an ExternalName Service a CNAME (followed here when the
  target is in the cluster domain, else left to the server to resolve upstream);
  SRV: one record per port (per endpoint and port when headless);
* ``_<port>._<proto>.<svc>.<ns>.svc`` — SRV for a named port; the target is the Service
  name, or for a headless Service ``<hostname-or-dashed-ip>.<svc>.<ns>.svc``;
* ``<hostname-or-dashed-ip>.<svc>.<ns>.svc`` — a headless Service's endpoint (how a
  StatefulSet pod gets a stable name);
* ``<a-b-c-d>.<ns>.pod`` — the address spelled in the name (CoreDNS's ``pods insecure``,
  the default); with ``pods verified`` only when a pod of that namespace has the address,
  with ``pods disabled`` never (NXDOMAIN);
* PTR under ``in-addr.arpa``/``ip6.arpa`` for ClusterIPs and headless endpoints.

Inside the cluster domain an unknown name is NXDOMAIN, a known name (or an empty
non-terminal such as ``<ns>.svc``) asked for another type is NODATA; both carry the
zone's SOA in the authority section. :meth:`Zone.lookup` returns ``None`` for what is not
ours — names outside the cluster domain, reverse names we hold nothing for — so the
server forwards them.
"""

# dnspython's rdata classes (A, SRV, ...) have unannotated constructors
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dns.exception
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.reversename
import dns.rrset
from dns.rdtypes.ANY.CNAME import CNAME
from dns.rdtypes.ANY.NS import NS
from dns.rdtypes.ANY.PTR import PTR
from dns.rdtypes.ANY.SOA import SOA
from dns.rdtypes.IN.A import A
from dns.rdtypes.IN.AAAA import AAAA
from dns.rdtypes.IN.SRV import SRV

from pyk8s.dns.catalog import Catalog, Endpoint, PortInfo, family, is_headless

__all__ = ["DEFAULT_DOMAIN", "TTL", "Answer", "Zone"]

Obj = dict[str, Any]
RdataType = dns.rdatatype.RdataType
IN = dns.rdataclass.IN

DEFAULT_DOMAIN = "cluster.local"
TTL = 5
MAX_CNAME_CHAIN = 8
IN_ADDR = dns.name.from_text("in-addr.arpa.")
IP6_ARPA = dns.name.from_text("ip6.arpa.")


@dataclass
class Answer:
    """What goes into a response: rcode and sections (``chase``: a CNAME target to resolve
    upstream and append, for ExternalName Services pointing outside the cluster)."""

    rcode: dns.rcode.Rcode = dns.rcode.NOERROR
    answer: list[dns.rrset.RRset] = field(default_factory=list)
    authority: list[dns.rrset.RRset] = field(default_factory=list)
    additional: list[dns.rrset.RRset] = field(default_factory=list)
    chase: dns.name.Name | None = None


def _rrset(name: dns.name.Name, rdatas: Sequence[dns.rdata.Rdata], ttl: int) -> dns.rrset.RRset:
    return dns.rrset.from_rdata_list(name, ttl, list(rdatas))


def _address_rdata(address: str) -> dns.rdata.Rdata:
    if family(address) == 4:
        return A(IN, RdataType.A, address)
    return AAAA(IN, RdataType.AAAA, address)


def _family(qtype: RdataType) -> int:
    return 4 if qtype == RdataType.A else 6


def _undash(label: str) -> str | None:
    """``10-0-0-1`` → ``10.0.0.1``, ``fd00--1`` → ``fd00::1``; None if not an address."""
    for text in (label.replace("-", "."), label.replace("-", ":")):
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            continue
    return None


#: CoreDNS kubernetes plugin's ``pods`` modes
POD_MODES = ("insecure", "verified", "disabled")


class Zone:
    """The cluster domain's records, read from a catalog at question time."""

    def __init__(
        self,
        catalog: Catalog,
        domain: str = DEFAULT_DOMAIN,
        ttl: int = TTL,
        serial: int = 1,
        pods: str = "insecure",
    ) -> None:
        if pods not in POD_MODES:
            raise ValueError(f"pods mode {pods!r}: one of {', '.join(POD_MODES)}")
        self.catalog = catalog
        #: CoreDNS's ``pods`` option: insecure, verified or disabled
        self.pods = pods
        self.origin = dns.name.from_text(domain)
        self.ttl = ttl
        self.serial = serial

    # ------------------------------------------------------------------ entry

    def lookup(self, qname: dns.name.Name, qtype: RdataType) -> Answer | None:
        """The answer for a question, or None when the name is not ours to answer."""
        if qname.is_subdomain(self.origin):
            return self._cluster(qname, qtype, 0)
        if qname.is_subdomain(IN_ADDR) or qname.is_subdomain(IP6_ARPA):
            return self._reverse(qname, qtype)
        return None

    # ------------------------------------------------------------------ helpers

    def soa(self, owner: dns.name.Name | None = None) -> dns.rrset.RRset:
        """The SOA (CoreDNS's shape: ``ns.dns.<zone>``, ``hostmaster.<zone>``)."""
        origin = owner or self.origin
        rd = SOA(
            IN, RdataType.SOA,
            dns.name.Name((b"ns", b"dns", *origin.labels)),
            dns.name.Name((b"hostmaster", *origin.labels)),
            self.serial, 7200, 1800, 86400, self.ttl,
        )  # fmt: skip
        return _rrset(origin, [rd], self.ttl)

    def _nodata(self, owner: dns.name.Name | None = None) -> Answer:
        return Answer(dns.rcode.NOERROR, authority=[self.soa(owner)])

    def _nxdomain(self) -> Answer:
        return Answer(dns.rcode.NXDOMAIN, authority=[self.soa()])

    def _name(self, *labels: str) -> dns.name.Name:
        return dns.name.Name((*(label.encode() for label in labels), *self.origin.labels))

    def _service_name(self, svc: Obj) -> dns.name.Name:
        meta = svc["metadata"]
        return self._name(meta["name"], meta["namespace"], "svc")

    def _addresses(self, owner: dns.name.Name, addresses: Iterable[str]) -> list[dns.rrset.RRset]:
        """A and AAAA RRsets (non-empty ones) for ``addresses`` at ``owner``."""
        by_family: dict[int, list[dns.rdata.Rdata]] = {4: [], 6: []}
        for address in addresses:
            rd = _address_rdata(address)
            by_family[4 if isinstance(rd, A) else 6].append(rd)
        return [_rrset(owner, rds, self.ttl) for rds in by_family.values() if rds]

    def _answer(self, owner: dns.name.Name, rdatas: Sequence[dns.rdata.Rdata]) -> Answer:
        if not rdatas:
            return self._nodata()
        return Answer(answer=[_rrset(owner, rdatas, self.ttl)])

    # ------------------------------------------------------------------ cluster domain

    def _cluster(self, qname: dns.name.Name, qtype: RdataType, depth: int) -> Answer:
        try:
            parts = [b.decode("ascii").lower() for b in qname.relativize(self.origin).labels]
        except UnicodeDecodeError:
            return self._nxdomain()
        parts.reverse()  # from the zone outwards: ["svc", ns, svc, ...]
        if not parts:
            return self._apex(qtype)
        if parts[0] == "svc":
            return self._svc_tree(qname, qtype, parts[1:], depth)
        if parts[0] == "pod":
            return self._pod(qname, qtype, parts[1:])
        return self._nxdomain()

    def _apex(self, qtype: RdataType) -> Answer:
        if qtype == RdataType.SOA:
            return Answer(answer=[self.soa()])
        if qtype == RdataType.NS:
            rd = NS(IN, RdataType.NS, self._name("ns", "dns"))
            return Answer(answer=[_rrset(self.origin, [rd], self.ttl)])
        return self._nodata()

    def _pod(self, qname: dns.name.Name, qtype: RdataType, parts: list[str]) -> Answer:
        if len(parts) < 2:
            return self._nodata()  # pod. and <ns>.pod. are empty non-terminals
        address = _undash(parts[1]) if len(parts) == 2 else None
        if address is None or self.pods == "disabled":
            return self._nxdomain()
        if self.pods == "verified" and not self.catalog.has_pod(parts[0], address):
            return self._nxdomain()
        version = ipaddress.ip_address(address).version
        if qtype in (RdataType.A, RdataType.AAAA) and version == _family(qtype):
            return self._answer(qname, [_address_rdata(address)])
        return self._nodata()

    def _svc_tree(
        self, qname: dns.name.Name, qtype: RdataType, parts: list[str], depth: int
    ) -> Answer:
        if not parts:
            return self._nodata()
        ns = parts[0]
        if len(parts) == 1:
            return self._nodata() if self.catalog.has_namespace(ns) else self._nxdomain()
        svc = self.catalog.service(ns, parts[1])
        if svc is None or len(parts) > 4:
            return self._nxdomain()
        if len(parts) == 2:
            return self._service(qname, qtype, svc, depth)
        if len(parts) == 3 and not parts[2].startswith("_"):
            return self._endpoint(qname, qtype, svc, parts[2])
        if len(parts) == 3:  # _<proto>.<svc>: an empty non-terminal when such ports exist
            exists = any(p.protocol.lower() == parts[2][1:] for p in self._ports(svc))
            return self._nodata() if exists else self._nxdomain()
        port, proto = parts[3], parts[2]
        if not (port.startswith("_") and proto.startswith("_")):
            return self._nxdomain()
        if not any(self._port_matches(p, port[1:], proto[1:]) for p in self._ports(svc)):
            return self._nxdomain()
        if qtype != RdataType.SRV:
            return self._nodata()
        return self._srv(qname, svc, port[1:], proto[1:])

    def _service(self, qname: dns.name.Name, qtype: RdataType, svc: Obj, depth: int) -> Answer:
        spec = svc.get("spec") or {}
        if spec.get("type") == "ExternalName":
            return self._external(qname, qtype, str(spec.get("externalName") or ""), depth)
        if qtype in (RdataType.A, RdataType.AAAA):
            meta = svc["metadata"]
            if is_headless(svc):
                eps = self.catalog.endpoints(meta["namespace"], meta["name"])
                addresses = [ep.address for ep in eps if ep.version == _family(qtype)]
            else:
                ips = self.catalog.cluster_ips(svc)
                addresses = [ip for ip in ips if family(ip) == _family(qtype)]
            return self._answer(qname, [_address_rdata(a) for a in addresses])
        if qtype == RdataType.SRV:
            return self._srv(qname, svc, None, None)
        return self._nodata()

    def _external(self, qname: dns.name.Name, qtype: RdataType, target: str, depth: int) -> Answer:
        try:
            name = dns.name.from_text(target) if target else None
        except dns.exception.DNSException:
            name = None
        if name is None:
            return self._nodata()
        cname = _rrset(qname, [CNAME(IN, RdataType.CNAME, name)], self.ttl)
        if qtype == RdataType.CNAME:
            return Answer(answer=[cname])
        if not name.is_subdomain(self.origin):
            return Answer(answer=[cname], chase=name)
        if depth >= MAX_CNAME_CHAIN:
            return Answer(dns.rcode.SERVFAIL)
        rest = self._cluster(name, qtype, depth + 1)
        rest.answer.insert(0, cname)
        return rest

    def _endpoint(self, qname: dns.name.Name, qtype: RdataType, svc: Obj, label: str) -> Answer:
        if not is_headless(svc):
            return self._nxdomain()
        meta = svc["metadata"]
        eps = [
            ep
            for ep in self.catalog.endpoints(meta["namespace"], meta["name"])
            if ep.label == label
        ]
        if not eps:
            return self._nxdomain()
        if qtype not in (RdataType.A, RdataType.AAAA):
            return self._nodata()
        wanted = [ep.address for ep in eps if ep.version == _family(qtype)]
        return self._answer(qname, [_address_rdata(a) for a in wanted])

    # ------------------------------------------------------------------ SRV

    @staticmethod
    def _ports(svc: Obj) -> list[PortInfo]:
        return [
            PortInfo(p.get("name") or "", p.get("protocol") or "TCP", int(p.get("port") or 0))
            for p in (svc.get("spec") or {}).get("ports") or []
        ]

    @staticmethod
    def _port_matches(p: PortInfo, name: str | None, proto: str | None) -> bool:
        if name is not None and p.name.lower() != name:
            return False
        return proto is None or p.protocol.lower() == proto

    def _srv(self, qname: dns.name.Name, svc: Obj, name: str | None, proto: str | None) -> Answer:
        """SRV records for the matching ports (all when ``name``/``proto`` are None)."""
        targets: list[tuple[int, dns.name.Name]] = []
        extra: list[dns.rrset.RRset] = []
        svc_name = self._service_name(svc)
        meta = svc["metadata"]
        if is_headless(svc):
            eps: list[Endpoint] = self.catalog.endpoints(meta["namespace"], meta["name"])
            for ep in eps:
                target = dns.name.Name((ep.label.encode(), *svc_name.labels))
                ports = [p.port for p in ep.ports if self._port_matches(p, name, proto)]
                targets += [(port, target) for port in ports]
                if ports:
                    extra += self._addresses(target, [ep.address])
        elif (svc.get("spec") or {}).get("type") != "ExternalName":
            ports = [p.port for p in self._ports(svc) if self._port_matches(p, name, proto)]
            targets = [(port, svc_name) for port in ports]
            if ports:
                extra = self._addresses(svc_name, self.catalog.cluster_ips(svc))
        if not targets:
            return self._nodata()
        weight = max(1, 100 // len(targets))
        rds = [SRV(IN, RdataType.SRV, 0, weight, port, target) for port, target in targets]
        return Answer(answer=[_rrset(qname, rds, self.ttl)], additional=extra)

    # ------------------------------------------------------------------ reverse

    def _reverse(self, qname: dns.name.Name, qtype: RdataType) -> Answer | None:
        try:
            address = dns.reversename.to_address(qname)
        except (dns.exception.SyntaxError, ValueError):
            return None
        names = [self._service_name(svc) for svc in self.catalog.services_by_ip(address)]
        for svc, ep in self.catalog.endpoints_by_ip(address):
            names.append(dns.name.Name((ep.label.encode(), *self._service_name(svc).labels)))
        if not names:
            return None
        if qtype != RdataType.PTR:
            return self._nodata(IN_ADDR if qname.is_subdomain(IN_ADDR) else IP6_ARPA)
        unique = list(dict.fromkeys(names))
        return Answer(answer=[_rrset(qname, [PTR(IN, RdataType.PTR, n) for n in unique], self.ttl)])
