"""Datastore snapshots as a k3s user takes them: ``pyk8s etcd-snapshot save`` while the
server runs, a namespace deleted, ``pyk8s server --cluster-reset
--cluster-reset-restore-path FILE``, and the namespace and its objects are back; on the
embedded SQLite store (the same on etcd, store-level: tests/storage/test_snapshot.py).
A corrupt snapshot is refused and changes nothing.

The snapshot is taken of the session's API server (``server`` fixture) as it runs; the
reset runs against a copy of that server's data directory (its store copied with
SQLite's online backup, so it also holds what was written after the snapshot), and one
server is started on the copy: one server start instead of two.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import uuid
from pathlib import Path

import pytest

from tests.integration.conftest import KUBECTL, Kubectl, Server, free_port
from tests.integration.conftest import pyk8s_cli as pyk8s

pytestmark = pytest.mark.skipif(not os.path.exists(KUBECTL), reason="kubectl not installed")


def _objects(name: str) -> str:
    docs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": name},
            "data": {"colour": "blue"},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds", "namespace": name},
            "stringData": {"password": "hunter2"},
        },
    ]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": docs})


def _delete_namespace(kubectl: Kubectl, name: str) -> None:
    """What the namespace controller does, so that only an API server needs to run:
    delete the contents, then finalize the namespace away."""
    kubectl("delete", "configmap,secret", "--all", "-n", name)
    kubectl("delete", "namespace", name, "--wait=false")
    ns = kubectl.json("get", "namespace", name)
    ns["spec"]["finalizers"] = []
    kubectl(
        "replace", "--raw", f"/api/v1/namespaces/{name}/finalize", "-f", "-", input=json.dumps(ns)
    )
    out = kubectl.run("get", "namespace", name, check=False)
    assert "NotFound" in out.stderr


def _copy_data_dir(source: Path, target: Path) -> None:
    """``source`` as it is now, while its server runs: the files, and the store through
    SQLite's backup API (a consistent copy of a live database); no admin kubeconfig (the
    server started on the copy writes its own, for its port)."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("db", "kubeconfig.yaml"))
    (target / "server" / "db").mkdir()
    live = sqlite3.connect(source / "server" / "db" / "state.db", timeout=30)
    copy = sqlite3.connect(target / "server" / "db" / "state.db")
    try:
        live.backup(copy)
    finally:
        copy.close()
        live.close()


def test_snapshot_delete_namespace_restore(
    server: Server, kubectl: Kubectl, tmp_path: Path
) -> None:
    data = server.data_dir
    shop, later = f"shop-{uuid.uuid4().hex[:6]}", f"later-{uuid.uuid4().hex[:6]}"
    kubectl("apply", "-f", "-", input=_objects(shop))
    saved = pyk8s("etcd-snapshot", "save", "--data-dir", str(data))
    assert saved.returncode == 0, saved.stderr
    assert saved.stdout.startswith("Snapshot on-demand-")
    listing = pyk8s("etcd-snapshot", "ls", "--data-dir", str(data)).stdout.splitlines()
    assert listing[0].split() == ["Name", "Location", "Size", "Created"]
    [row] = [r for r in map(str.split, listing[1:]) if r and f"Snapshot {r[0]} " in saved.stdout]
    name, location, size, _created = row
    snap = data / "server" / "db" / "snapshots" / name
    assert location == snap.as_uri() and int(size) == snap.stat().st_size > 0
    _delete_namespace(kubectl, shop)
    kubectl("create", "configmap", later, "-n", "default")
    # the embedded store is locked by the running server
    busy = pyk8s("server", "--cluster-reset", "--cluster-reset-restore-path", str(snap),
                 "--data-dir", str(data))  # fmt: skip
    assert busy.returncode == 1 and "another process" in busy.stderr

    copy = tmp_path / "data"
    _copy_data_dir(data, copy)
    corrupt = tmp_path / "corrupt"
    blob = bytearray(snap.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(blob))
    refused = pyk8s("server", "--cluster-reset", "--cluster-reset-restore-path", str(corrupt),
                    "--data-dir", str(copy))  # fmt: skip
    assert refused.returncode == 1 and "corrupt" in refused.stderr, refused.stderr

    restored = pyk8s("server", "--cluster-reset", "--cluster-reset-restore-path", str(snap),
                     "--data-dir", str(copy))  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout.startswith(f"Restored {snap}")

    reset = Server(copy, free_port()).start()
    k = Kubectl(reset.kubeconfig)
    try:
        ns = k.json("get", "namespace", shop)
        assert ns["status"]["phase"] == "Active" and "deletionTimestamp" not in ns["metadata"]
        assert k.json("get", "configmap", "settings", "-n", shop)["data"] == {"colour": "blue"}
        secret = k("get", "secret", "creds", "-n", shop, "-o", "jsonpath={.data.password}")
        assert secret == "aHVudGVyMg=="
        # what was written after the snapshot is gone, as on k3s
        assert "NotFound" in k.run("get", "configmap", later, check=False).stderr
        k("create", "configmap", "after-restore", "-n", shop)  # writes work
    finally:
        reset.stop()
