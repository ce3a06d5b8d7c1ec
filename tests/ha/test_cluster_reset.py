"""``pyk8s server --cluster-reset`` on an embedded etcd member that lost quorum (issue 19).

Two real members (TLS from one CA, the second added with MemberAdd exactly as a joining
server adds itself) are both killed; the first alone cannot start a cluster of two
again. ``--cluster-reset`` (in-process CLI) forces a one-member cluster from its data,
prints k3s's message, and the member then serves the data written before alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import shutil
import signal
from pathlib import Path

import pytest

from pyk8s.apiserver.certs import Pki, ensure_pki
from pyk8s.server.embedded_etcd import Member, member_add, wait_ready
from pyk8s.storage import open_store
from tests.etcd_cluster import etcd_available, free_port


def _member(base: Path, name: str, address: str) -> tuple[Member, Pki]:
    return Member(base / name, address, address, free_port(), free_port(), name), Pki.at(
        base / name / "server" / "tls"
    )


async def _start(m: Member, pki: Pki, initial: str, state: str) -> asyncio.subprocess.Process:
    with m.log_file.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            *m.args(pki, initial, state), stdout=out, stderr=out
        )
    await wait_ready(m, pki, proc, 60)
    return proc


async def _kill(*procs: asyncio.subprocess.Process) -> None:
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(signal.SIGKILL)
        await p.wait()


def test_cluster_reset_recovers_a_member_after_quorum_loss(tmp_path: Path) -> None:
    if not etcd_available():
        pytest.fail("etcd-server (/usr/bin/etcd) is not installed: bash scripts/setup.sh")
    m1, pki1 = _member(tmp_path, "a", "127.0.0.2")
    m2, pki2 = _member(tmp_path, "b", "127.0.0.3")
    ensure_pki(tmp_path / "a" / "server", hostnames=[], ips=[])
    pki2.dir.mkdir(parents=True)
    for f in ("ca.crt", "ca.key"):  # what the server bootstrap hands a joining server
        shutil.copy(pki1.dir / f, pki2.dir / f)
    m1.ensure_certs(pki1)
    m2.ensure_certs(pki2)
    m1.save(pki1)

    async def before_reset() -> None:
        p1 = await _start(m1, pki1, f"{m1.name()}={m1.peer_url}", "new")
        store = await open_store(m1.endpoint(pki1))
        await store.create("/registry/configmaps/default/kept", b"{}")
        await store.close()
        initial = await member_add([m1.client_url], m1.tls(pki1), m2)
        assert initial.count("=") == 2
        p2 = await _start(m2, pki2, initial, "existing")
        await _kill(p1, p2)

    asyncio.run(before_reset())
    from pyk8s.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["server", "--cluster-reset", "--data-dir", str(m1.data_dir)]) == 0
    assert out.getvalue().startswith(
        "Managed etcd cluster membership has been reset, restart without --cluster-reset"
    )

    async def after_reset() -> None:
        from aetcd import rpc

        from pyk8s.storage.etcd import channel

        p1 = await _start(m1, pki1, f"{m1.name()}={m1.peer_url}", "new")
        try:
            store = await open_store(m1.endpoint(pki1))
            assert (await store.get("/registry/configmaps/default/kept")).value == b"{}"
            await store.close()
            async with channel(f"127.0.0.2:{m1.client_port}", m1.tls(pki1)) as chan:
                listed = await rpc.ClusterStub(chan).MemberList(rpc.MemberListRequest())
            assert [m.name for m in listed.members] == [m1.name()]
        finally:
            await _kill(p1)

    asyncio.run(after_reset())


def test_cluster_init_migrates_a_sqlite_data_dir(tmp_path: Path) -> None:
    """k3s's SQLite -> etcd migration: what the data dir held is in the new member, and
    the SQLite file is kept aside as state.db.migrated."""
    if not etcd_available():
        pytest.fail("etcd-server (/usr/bin/etcd) is not installed: bash scripts/setup.sh")
    from pyk8s.server.embedded_etcd import migrate_sqlite
    from pyk8s.storage.sqlite import SqliteStore

    m, pki = _member(tmp_path, "a", "127.0.0.2")
    db = m.data_dir / "server" / "db" / "state.db"

    async def run() -> None:
        db.parent.mkdir(parents=True)
        sqlite = await SqliteStore.open(db)
        await sqlite.create("/registry/namespaces/shop", b'{"kind":"Namespace"}')
        await sqlite.create("/registry/events/default/e1", b"{}", ttl=3600)
        await sqlite.close()
        ensure_pki(m.data_dir / "server", hostnames=[], ips=[])
        m.ensure_certs(pki)
        proc = await _start(m, pki, f"{m.name()}={m.peer_url}", "new")
        try:
            result = await migrate_sqlite(m.data_dir, m.endpoint(pki))
            assert result is not None and result.written == 2
            store = await open_store(m.endpoint(pki))
            assert (await store.get("/registry/namespaces/shop")).value == b'{"kind":"Namespace"}'
            # a lease granted with etcd.py's reuse window reads back as TTL + window
            assert (await store.get("/registry/events/default/e1")).ttl >= 3600
            await store.close()
        finally:
            await _kill(proc)

    asyncio.run(run())
    assert not db.exists() and db.with_name("state.db.migrated").exists()
