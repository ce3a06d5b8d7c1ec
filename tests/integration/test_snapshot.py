"""Datastore snapshots as a k3s user takes them: ``pyk8s etcd-snapshot save`` while the
server runs, a namespace deleted, ``pyk8s server --cluster-reset
--cluster-reset-restore-path FILE``, and the namespace and its objects are back; on the
embedded SQLite store (the same on etcd, store-level: tests/storage/test_snapshot.py).
A corrupt snapshot is refused and changes nothing.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
from pathlib import Path

import pytest

from pyk8s.cli import main
from tests.integration.conftest import KUBECTL, Kubectl, Server, free_port

pytestmark = pytest.mark.skipif(not os.path.exists(KUBECTL), reason="kubectl not installed")


def pyk8s(*args: str) -> subprocess.CompletedProcess[str]:
    """The ``pyk8s`` command, run in this process (its start-up is most of its time)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


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


def test_snapshot_delete_namespace_restore(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    server = Server(data, free_port()).start()
    kubectl = Kubectl(server.kubeconfig)
    try:
        kubectl("apply", "-f", "-", input=_objects("shop"))
        saved = pyk8s("etcd-snapshot", "save", "--data-dir", str(data))
        assert saved.returncode == 0, saved.stderr
        assert saved.stdout.startswith("Snapshot on-demand-")
        listing = pyk8s("etcd-snapshot", "ls", "--data-dir", str(data)).stdout.splitlines()
        assert listing[0].split() == ["Name", "Location", "Size", "Created"]
        name, location, size, _created = listing[1].split()
        snap = data / "server" / "db" / "snapshots" / name
        assert location == snap.as_uri() and int(size) == snap.stat().st_size > 0
        _delete_namespace(kubectl, "shop")
        kubectl("create", "configmap", "later", "-n", "default")
        # the embedded store is locked by the running server
        busy = pyk8s("server", "--cluster-reset", "--cluster-reset-restore-path", str(snap),
                     "--data-dir", str(data))  # fmt: skip
        assert busy.returncode == 1 and "another process" in busy.stderr
    finally:
        server.stop()

    corrupt = tmp_path / "corrupt"
    blob = bytearray(snap.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(blob))
    refused = pyk8s("server", "--cluster-reset", "--cluster-reset-restore-path", str(corrupt),
                    "--data-dir", str(data))  # fmt: skip
    assert refused.returncode == 1 and "corrupt" in refused.stderr, refused.stderr

    restored = pyk8s("server", "--cluster-reset", "--cluster-reset-restore-path", str(snap),
                     "--data-dir", str(data))  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout.startswith(f"Restored {snap}")

    server.start()
    try:
        ns = kubectl.json("get", "namespace", "shop")
        assert ns["status"]["phase"] == "Active" and "deletionTimestamp" not in ns["metadata"]
        assert kubectl.json("get", "configmap", "settings", "-n", "shop")["data"] == {
            "colour": "blue"
        }
        secret = kubectl("get", "secret", "creds", "-n", "shop", "-o", "jsonpath={.data.password}")
        assert secret == "aHVudGVyMg=="
        # what was written after the snapshot is gone, as on k3s
        assert "NotFound" in kubectl.run("get", "configmap", "later", check=False).stderr
        kubectl("create", "configmap", "after-restore", "-n", "shop")  # writes work
    finally:
        server.stop()
