"""Custom resources survive the API server: after a kill -9 and a restart on the same data
dir, the CRD is served again before the server reports ready, and every acknowledged
custom-resource write is there (including one made with a jobs-named plural, which must
stay a custom resource, not a Job)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.integration.conftest import Kubectl, Server, free_port
from tests.integration.crd_fixtures import cr, crd, create, install, version

GROUP = "restart.crd-test.example.com"


@pytest.fixture
def server(tmp_path: Path) -> Server:
    return Server(tmp_path / "data", free_port())


def test_custom_resources_survive_a_kill_and_restart(server: Server) -> None:
    server.start()
    try:
        kubectl = Kubectl(server.kubeconfig)
        # a plural that is a built-in's: it must get custom-resource behaviour (no Job
        # selector defaulting, no pod template validation)
        schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        install(kubectl, crd(GROUP, "Job", plural="jobs", versions=[version("v1", schema)]))
        for i in range(5):
            create(kubectl, cr(f"{GROUP}/v1", "Job", f"j{i}", {"n": i}, namespace="default"))
        before = kubectl.json("get", f"jobs.{GROUP}", "-n", "default")
        assert [o["spec"] for o in before["items"]] == [{"n": i} for i in range(5)]
        assert "selector" not in before["items"][0]["spec"]
        server.stop(signal.SIGKILL)
        server.start()  # returns once /readyz answers ok
        after = kubectl.json("get", f"jobs.{GROUP}", "-n", "default")
        assert [o["metadata"]["uid"] for o in after["items"]] == [
            o["metadata"]["uid"] for o in before["items"]
        ]
        # still writable, still validated as the CRD says (not as a batch/v1 Job)
        create(kubectl, cr(f"{GROUP}/v1", "Job", "j5", {"n": 5}, namespace="default"))
        got = json.loads(kubectl("get", f"jobs.{GROUP}", "j5", "-n", "default", "-o", "json"))
        assert got["spec"] == {"n": 5}
        assert kubectl.json("get", "jobs.batch", "-n", "default")["items"] == []
    finally:
        server.stop()
