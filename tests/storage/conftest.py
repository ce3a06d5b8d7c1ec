"""Fixtures that run the one storage contract suite against every backend.

``store`` is parametrized: ``sqlite`` opens a fresh database file per test; ``etcd``
talks to one real etcd started once per session (tests isolate themselves by key
prefix, and compare revisions relative to what they read, never absolute numbers).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from pyk8s.storage import Store
from pyk8s.storage.sqlite import SqliteStore
from tests.etcd_cluster import EtcdCluster, etcd_available

BACKENDS = [
    "sqlite",
    # the same contract through encryption at rest (every value aescbc-encrypted)
    "sqlite+aescbc",
    # two shared stores on one file, as API server workers: writes through one, reads
    # and watches through the other
    "sqlite-shared",
    pytest.param(
        "etcd",
        marks=[
            pytest.mark.etcd,
            pytest.mark.skipif(not etcd_available(), reason="etcd not installed"),
        ],
    ),
]


@pytest.fixture(scope="session")
def etcd_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster(tmp_path_factory.mktemp("etcd"), size=1).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def store(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Store]:
    s: Store
    if backend == "sqlite":
        s = await SqliteStore.open(tmp_path / "state.db")
    elif backend == "sqlite-shared":
        s = SharedPair(
            await SqliteStore.open(tmp_path / "state.db", shared=True),
            await SqliteStore.open(tmp_path / "state.db", shared=True),
        )
    elif backend == "sqlite+aescbc":
        from pyk8s.storage.encryption import AESCBCTransformer, EncryptingStore, Rule

        rule = Rule("/", (AESCBCTransformer("key1", b"k" * 32),))
        s = EncryptingStore(await SqliteStore.open(tmp_path / "state.db"), [rule])
    else:
        from pyk8s.storage.etcd import EtcdStore

        cluster: EtcdCluster = request.getfixturevalue("etcd_cluster")
        s = await EtcdStore.open(cluster.hosts)
    try:
        yield s
    finally:
        await s.close()


class SharedPair:
    """Two shared stores of one file seen as one: writes go to ``writer``, reads and
    watches to ``reader``, so the contract holds across processes' stores."""

    def __init__(self, writer: SqliteStore, reader: SqliteStore) -> None:
        self.writer, self.reader = writer, reader
        self.create, self.update, self.delete = writer.create, writer.update, writer.delete
        self.compact = writer.compact
        self.get, self.list, self.count = reader.get, reader.list, reader.count
        self.current_revision, self.watch = reader.current_revision, reader.watch
        self.compacted_revision = reader.compacted_revision

    async def close(self) -> None:
        await self.reader.close()
        await self.writer.close()


@pytest.fixture
def prefix() -> str:
    """A key prefix no other test uses (etcd is shared by the whole session)."""
    return f"/registry/test-{uuid.uuid4().hex[:12]}/"
