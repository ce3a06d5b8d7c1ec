"""k3s's embedded etcd: ``pyk8s server --cluster-init`` runs an etcd member beside the
API server and uses it as the datastore; ``--server URL --token TOKEN`` makes another
host a member of the same cluster; ``--cluster-reset`` recovers a lone survivor.

Why it looks the way it does:

* **The Debian etcd-server binary, supervised.** etcd is a child of ``pyk8s server``
  (restarted when it dies, SIGTERMed with the server, and -- through the supervisor's
  parent-death signal -- gone when the server is killed, like a host failure).
* **TLS everywhere, from the cluster CA.** Each member has one certificate for serving
  clients and peers (server and client usage: peers authenticate each other with it)
  and the API server a client certificate (``etcd-client``); members require client
  certificates (``--client-cert-auth``, ``--peer-client-cert-auth``), so only holders of
  the cluster CA's certificates talk to etcd.
* **Where things are.** The member's data is ``DATA_DIR/server/db/etcd`` (k3s's path);
  its name (``<node>-<8 hex>``, as k3s names members) is kept in
  ``DATA_DIR/server/db/etcd-name``; its certificates in ``DATA_DIR/server/tls/etcd``.
  A data dir holding a member starts that member again: restarting the server (with or
  without ``--cluster-init``) re-uses it, and etcd ignores the initial-cluster flags.
  ``--cluster-init`` on a data dir that ran on SQLite migrates its objects into the
  new member (k3s supports this direction only; the reverse is an etcd snapshot
  restored into SQLite with ``--cluster-reset-restore-path``).
* **Joining.** The new server asks an existing one for what servers share (the CA and
  its key, the service-account key, the front-proxy CA, the join token: see
  :mod:`pyk8s.server.bootstrap`), issues its own certificates, adds itself with etcd's
  MemberAdd through an existing member's client URL, and starts etcd with
  ``--initial-cluster-state existing`` and the member list MemberAdd returned.
* **Only the local member.** The API server talks to its own member (127.0.0.1 or the
  bind address), as k3s's does: when that member is gone, so is this server, and
  clients fail over to another server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pyk8s.apiserver.certs import Pki, ensure_leaf
from pyk8s.storage.endpoint import EtcdTLS, with_tls

if TYPE_CHECKING:
    from pyk8s.storage.snapshot import RestoreResult

log = logging.getLogger(__name__)

ETCD = "/usr/bin/etcd"
CLIENT_PORT = 2379
PEER_PORT = 2380
#: the client certificate the API server (and pyk8s's snapshots) use
CLIENT_CN = "etcd-client"


class EtcdError(Exception):
    """The embedded etcd cannot be set up: no binary, a failed MemberAdd, no quorum."""


@dataclass(frozen=True)
class Member:
    """This host's member: where it lives and where it listens."""

    data_dir: Path
    advertise_address: str
    bind_address: str = "0.0.0.0"
    client_port: int = CLIENT_PORT
    peer_port: int = PEER_PORT
    node_name: str = ""

    @property
    def db_dir(self) -> Path:
        return self.data_dir / "server" / "db" / "etcd"

    @property
    def name_file(self) -> Path:
        return self.data_dir / "server" / "db" / "etcd-name"

    @property
    def tls_dir(self) -> Path:
        return self.data_dir / "server" / "tls" / "etcd"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server" / "db" / "etcd.log"

    @staticmethod
    def config_file(data_dir: Path) -> Path:
        return data_dir / "server" / "db" / "etcd-member.json"

    def save(self, pki: Pki) -> None:
        """Remember where the member listens and how to reach it, for the commands that
        open the datastore without the server's flags (etcd-snapshot, --cluster-reset)."""
        config = {
            "advertise_address": self.advertise_address,
            "bind_address": self.bind_address,
            "client_port": self.client_port,
            "peer_port": self.peer_port,
            "node_name": self.node_name,
            "endpoint": self.endpoint(pki),
        }
        path = self.config_file(self.data_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(config, indent=1) + "\n")

    @classmethod
    def load(cls, data_dir: Path) -> Member | None:
        """The member this data dir last ran, or None."""
        try:
            config = json.loads(cls.config_file(data_dir).read_text())
        except (OSError, ValueError):
            return None
        config.pop("endpoint", None)
        return cls(data_dir, **config)

    def exists(self) -> bool:
        """Whether this data dir already holds a member (restart, not init or join)."""
        return (self.db_dir / "member").is_dir()

    @property
    def _local_address(self) -> str:
        """Where this host's own clients reach the member."""
        if self.bind_address in ("0.0.0.0", "::", ""):
            return "127.0.0.1"
        return self.bind_address

    @property
    def local_target(self) -> str:
        """``host:port`` of the member's client URL for this host's own clients."""
        return f"{self._local_address}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"https://{self.advertise_address}:{self.peer_port}"

    @property
    def client_url(self) -> str:
        return f"https://{self.advertise_address}:{self.client_port}"

    def listen_urls(self, port: int) -> str:
        addresses = [self._local_address]
        if self.advertise_address not in addresses:
            addresses.append(self.advertise_address)
        return ",".join(f"https://{a}:{port}" for a in addresses)

    def name(self) -> str:
        """The member's name, made once (``<node>-<8 hex>``) and kept."""
        try:
            return self.name_file.read_text().strip()
        except FileNotFoundError:
            pass
        name = f"{self.node_name or socket.gethostname()}-{secrets.token_hex(4)}"
        self.name_file.parent.mkdir(parents=True, exist_ok=True)
        self.name_file.write_text(name + "\n")
        return name

    def tls(self, pki: Pki) -> EtcdTLS:
        return EtcdTLS(
            str(pki.ca_cert), str(self.tls_dir / "client.crt"), str(self.tls_dir / "client.key")
        )

    def endpoint(self, pki: Pki) -> str:
        """The API server's ``--datastore-endpoint``: the local member, over TLS."""
        tls = self.tls(pki)
        url = f"https://{self.local_target}"
        return with_tls(url, tls.ca_file, tls.cert_file, tls.key_file)

    def ensure_certs(self, pki: Pki) -> None:
        """The member's serving/peer certificate and the API server's client one, from
        the cluster CA (kept while good, as the other leaves are)."""
        names = [socket.gethostname(), "localhost"]
        if self.node_name:
            names.append(self.node_name)
        ips = sorted({"127.0.0.1", self.advertise_address, self._local_address})
        ensure_leaf(
            pki,
            self.tls_dir / "server.crt",
            self.tls_dir / "server.key",
            "etcd-server",
            server=True,
            client_too=True,
            hostnames=names,
            ips=ips,
        )
        ensure_leaf(
            pki, self.tls_dir / "client.crt", self.tls_dir / "client.key", CLIENT_CN, server=False
        )

    def args(
        self, pki: Pki, initial_cluster: str, state: str, *, force_new_cluster: bool = False
    ) -> list[str]:
        """etcd's command line for this member."""
        if not os.path.exists(ETCD):
            raise EtcdError(f"{ETCD} not found: install Debian's etcd-server package")
        crt, key, ca = self.tls_dir / "server.crt", self.tls_dir / "server.key", pki.ca_cert
        argv = [
            ETCD, "--name", self.name(), "--data-dir", str(self.db_dir),
            "--listen-client-urls", self.listen_urls(self.client_port),
            "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", self.listen_urls(self.peer_port),
            "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", initial_cluster,
            "--initial-cluster-state", state,
            "--initial-cluster-token", "pyk8s",
            "--cert-file", str(crt), "--key-file", str(key),
            "--trusted-ca-file", str(ca), "--client-cert-auth",
            "--peer-cert-file", str(crt), "--peer-key-file", str(key),
            "--peer-trusted-ca-file", str(ca), "--peer-client-cert-auth",
            # the listener has no other metrics; etcd's /metrics and /health stay on
            # the client port, behind client certificates
            "--logger", "zap", "--log-outputs", "stderr",
            "--snapshot-count", "10000",
        ]  # fmt: skip
        if force_new_cluster:
            argv.append("--force-new-cluster")
        return argv


async def member_add(
    client_urls: list[str], tls: EtcdTLS, member: Member, within: float = 120.0
) -> str:
    """Add ``member`` (its peer URL) through an existing member; the
    ``--initial-cluster`` it must start with (every member, itself included).

    etcd refuses to add a member while one added before has not started (quorum would
    be at risk: "unhealthy cluster"), so servers joining at the same time are added one
    after the other: refusals are retried for ``within`` seconds, as k3s retries joins."""
    from urllib.parse import urlsplit

    import grpc
    from aetcd import rpc

    from pyk8s.storage.etcd import channel

    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        errors: list[str] = []
        for url in client_urls:
            split = urlsplit(url)
            target = f"{split.hostname}:{split.port or CLIENT_PORT}"
            try:
                async with channel(target, tls) as chan:
                    stub = rpc.ClusterStub(chan)
                    listed = await stub.MemberList(rpc.MemberListRequest(), timeout=10)
                    for m in listed.members:
                        if member.peer_url in m.peerURLs:  # a join that died before etcd ran
                            log.info("member already added", extra={"peer": member.peer_url})
                            return _initial_cluster(listed.members, member)
                    resp = await stub.MemberAdd(
                        rpc.MemberAddRequest(peerURLs=[member.peer_url]), timeout=10
                    )
                    return _initial_cluster(resp.members, member)
            except grpc.aio.AioRpcError as err:
                errors.append(f"{url}: {err.details()}")
        reason = "; ".join(errors)
        if loop.time() > deadline:
            raise EtcdError(f"cannot add this server as an etcd member: {reason}")
        log.warning("etcd member add refused, retrying: %s", reason)
        await asyncio.sleep(1.0)


async def member_remove(target: str, tls: EtcdTLS, name: str, address: str) -> bool:
    """Remove the member called ``name`` whose peer URL is on ``address`` (k3s's
    ``RemovePeer``: both must match, so a re-joined server of the same name under
    another member ID is not removed by an old record), through the member at
    ``target`` (``host:port``); whether one was removed (False: none such, e.g. another
    server removed it first)."""
    from urllib.parse import urlsplit

    import grpc
    from aetcd import rpc

    from pyk8s.storage.etcd import channel

    async with channel(target, tls) as chan:
        stub = rpc.ClusterStub(chan)
        listed = await stub.MemberList(rpc.MemberListRequest(), timeout=10)
        for m in listed.members:
            if m.name != name or all(urlsplit(u).hostname != address for u in m.peerURLs):
                continue
            try:
                await stub.MemberRemove(rpc.MemberRemoveRequest(ID=m.ID), timeout=10)
            except grpc.aio.AioRpcError as err:
                if err.code() == grpc.StatusCode.NOT_FOUND:  # removed meanwhile
                    return False
                raise EtcdError(f"cannot remove etcd member {name}: {err.details()}") from None
            log.info("removed etcd member", extra={"member": name, "id": f"{m.ID:x}"})
            return True
    return False


def _initial_cluster(members: object, me: Member) -> str:
    parts: list[str] = []
    for m in members:  # type: ignore[attr-defined]
        name = m.name or (me.name() if me.peer_url in m.peerURLs else "")
        if not name:
            # another member added but not started yet: etcd refuses to start without it
            name = f"unstarted-{m.ID:x}"
        parts.extend(f"{name}={u}" for u in m.peerURLs)
    return ",".join(parts)


async def wait_ready(
    member: Member, pki: Pki, proc: asyncio.subprocess.Process | None, within: float
) -> None:
    """Until the member answers a linearizable read (it has a leader and has caught up
    enough to serve), or EtcdError after ``within`` seconds."""
    from pyk8s.storage import StoreError, open_store

    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            store = await open_store(member.endpoint(pki))
        except StoreError as err:
            if proc is not None and proc.returncode is not None:
                raise EtcdError(
                    f"etcd exited with {proc.returncode}; see {member.log_file}"
                ) from None
            if loop.time() > deadline:
                raise EtcdError(f"etcd member not ready within {within:g}s: {err}") from None
            await asyncio.sleep(0.2)
            continue
        await store.close()
        return


async def cluster_reset(member: Member, restore: Path | None = None) -> RestoreResult | None:
    """k3s's ``--cluster-reset``: start the member once with ``--force-new-cluster`` (its
    data stays, every other member is dropped from the membership), wait until it
    serves, and stop it; the next start is a one-member cluster others can join again.
    With ``restore`` (``--cluster-reset-restore-path``) the snapshot is checked first
    and restored into that member while it runs."""
    from pyk8s.server.snapshots import cluster_reset_restore
    from pyk8s.storage.snapshot import verify

    if restore is not None:
        await asyncio.to_thread(verify, restore)
    pki = Pki.at(member.data_dir / "server" / "tls")
    member.ensure_certs(pki)
    argv = member.args(pki, f"{member.name()}={member.peer_url}", "new", force_new_cluster=True)
    with member.log_file.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(*argv, stdout=out, stderr=out)
    try:
        await wait_ready(member, pki, proc, 60.0)
        if restore is not None:
            return await cluster_reset_restore(member.endpoint(pki), restore)
        return None
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await proc.wait()


async def migrate_sqlite(data_dir: Path, endpoint: str) -> RestoreResult | None:
    """k3s's migration on ``--cluster-init``: a data dir that ran on SQLite moves its
    objects into the new etcd member (a snapshot of the live file, restored logically:
    every key under /registry/ with its TTL, at etcd's revisions), and the SQLite file
    is kept as ``state.db.migrated``. None when there is no SQLite store."""
    from pyk8s.storage import open_store
    from pyk8s.storage.snapshot import restore, save_sqlite

    db = data_dir / "server" / "db" / "state.db"
    if not db.exists():
        return None
    snapshot = db.with_name("state.db.migrating")
    await asyncio.to_thread(save_sqlite, db, snapshot)
    store = await open_store(endpoint)
    try:
        result = await restore(store, snapshot)
    finally:
        await store.close()
    for suffix in ("", "-wal", "-shm"):
        part = db.with_name(db.name + suffix)
        if part.exists():
            part.rename(db.with_name(f"state.db.migrated{suffix}"))
    snapshot.unlink()
    log.info("migrated the SQLite datastore to etcd", extra={"keys": result.keys})
    return result


def recorded_endpoint(data_dir: Path) -> str | None:
    """The datastore endpoint of the member this data dir holds, as its last start
    recorded it; None when there is no member."""
    member = Member.load(data_dir)
    if member is None or not member.exists():
        return None
    try:
        return str(json.loads(Member.config_file(data_dir).read_text())["endpoint"])
    except (OSError, ValueError, KeyError):
        return None
