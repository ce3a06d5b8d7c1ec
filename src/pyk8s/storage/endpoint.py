"""Turn a k3s-style ``--datastore-endpoint`` into an open store.

``sqlite:///abs/path/state.db`` (or ``sqlite://relative.db``) is the embedded default;
``etcd://host:2379[,host2:2379,…]`` is a real etcd cluster (``http://`` and ``https://``
URLs, as k3s accepts, mean etcd too). An etcd endpoint may carry client TLS as a query,
``https://host:2379?cacert=CA&cert=CRT&key=KEY`` (k3s's --datastore-cafile,
--datastore-certfile and --datastore-keyfile, folded into the one string every command
that opens the datastore already takes).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

from pyk8s.storage._types import Store


@dataclass(frozen=True, slots=True)
class EtcdTLS:
    """Client TLS to etcd (k3s's --datastore-cafile/-certfile/-keyfile): the CA that
    signed the members' serving certificates and this client's certificate and key."""

    ca_file: str
    cert_file: str = ""
    key_file: str = ""
    #: the name the members' certificates are checked against (the channel's target is
    #: a list of addresses, which has no one name)
    server_name: str = "localhost"


@dataclass(frozen=True, slots=True)
class Endpoint:
    kind: str  # "sqlite" | "etcd"
    path: Path | None = None
    hosts: tuple[tuple[str, int], ...] = ()
    tls: EtcdTLS | None = None


def with_tls(url: str, ca_file: str, cert_file: str = "", key_file: str = "") -> str:
    """``url`` with client TLS files as its query (what :func:`parse_endpoint` reads)."""
    query = [f"cacert={quote(ca_file)}"]
    if cert_file:
        query += [f"cert={quote(cert_file)}", f"key={quote(key_file or cert_file)}"]
    return url.split("?", 1)[0] + "?" + "&".join(query)


def parse_endpoint(url: str) -> Endpoint:
    """Parse a datastore endpoint; ValueError with the reason when it is not one."""
    if url.startswith("sqlite://"):
        rest = url[len("sqlite://") :].split("?", 1)[0]
        if not rest:
            raise ValueError(f"datastore endpoint {url!r}: sqlite needs a file path")
        return Endpoint("sqlite", path=Path(rest))
    for scheme in ("etcd://", "http://", "https://"):
        if url.startswith(scheme):
            hosts = []
            rest, _, query = url[len(scheme) :].partition("?")
            for part in rest.split(","):
                part = part.strip().rstrip("/")
                if part.startswith(scheme):
                    part = part[len(scheme) :]
                if not part:
                    continue
                split = urlsplit("//" + part)
                if not split.hostname:
                    raise ValueError(f"datastore endpoint {url!r}: bad host {part!r}")
                hosts.append((split.hostname, split.port or 2379))
            if not hosts:
                raise ValueError(f"datastore endpoint {url!r}: no etcd hosts")
            params = {k: v[-1] for k, v in parse_qs(query).items()}
            tls = None
            if params.get("cacert"):
                tls = EtcdTLS(params["cacert"], params.get("cert", ""), params.get("key", ""))
            return Endpoint("etcd", hosts=tuple(hosts), tls=tls)
    raise ValueError(
        f"datastore endpoint {url!r}: expected sqlite:///path or etcd://host:port[,host:port]"
    )


async def open_store(url: str, *, shared: bool = False) -> Store:
    """Open the store an endpoint URL names. ``shared``: other processes (API server
    workers) open the same SQLite file too (an etcd is shared anyway)."""
    ep = parse_endpoint(url)
    if ep.kind == "sqlite":
        from pyk8s.storage.sqlite import SqliteStore

        assert ep.path is not None
        return await SqliteStore.open(ep.path, shared=shared)
    from pyk8s.storage.etcd import EtcdStore

    return await EtcdStore.open(list(ep.hosts), tls=ep.tls)
