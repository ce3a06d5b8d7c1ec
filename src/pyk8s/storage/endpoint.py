"""Turn a k3s-style ``--datastore-endpoint`` into an open store.

``sqlite:///abs/path/state.db`` (or ``sqlite://relative.db``) is the embedded default;
``etcd://host:2379[,host2:2379,…]`` is a real etcd cluster (``http://`` and ``https://``
URLs, as k3s accepts, mean etcd too).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pyk8s.storage._types import Store


@dataclass(frozen=True, slots=True)
class Endpoint:
    kind: str  # "sqlite" | "etcd"
    path: Path | None = None
    hosts: tuple[tuple[str, int], ...] = ()


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
            for part in url[len(scheme) :].split(","):
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
            return Endpoint("etcd", hosts=tuple(hosts))
    raise ValueError(
        f"datastore endpoint {url!r}: expected sqlite:///path or etcd://host:port[,host:port]"
    )


async def open_store(url: str) -> Store:
    """Open the store an endpoint URL names."""
    ep = parse_endpoint(url)
    if ep.kind == "sqlite":
        from pyk8s.storage.sqlite import SqliteStore

        assert ep.path is not None
        return await SqliteStore.open(ep.path)
    from pyk8s.storage.etcd import EtcdStore

    return await EtcdStore.open(list(ep.hosts))
