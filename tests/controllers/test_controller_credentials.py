"""``pyk8s controller-manager`` as ``system:kube-controller-manager`` with
``--use-service-account-credentials``, as ``pyk8s server`` runs it: the controller
manager itself may not create pods, yet a Deployment gets its ReplicaSet and pods, and a
new namespace its ``default`` ServiceAccount and ``kube-root-ca.crt`` -- written by the
controllers' own kube-system service accounts."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from tests.controllers.conftest import eventually
from tests.integration.conftest import Kubectl, Server, free_port


@pytest.fixture(scope="module")
def cm_as_itself(cm_server: Server) -> Iterator[subprocess.Popen[bytes]]:
    kubeconfig = cm_server.data_dir / "server" / "cred" / "controller-manager.kubeconfig"
    log = cm_server.data_dir.parent / "cm-sa.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "pyk8s", "controller-manager",
                "--kubeconfig", str(kubeconfig), "--use-service-account-credentials",
                "--controllers", "deployment,replicaset,serviceaccount",
                "--leader-elect", "false", "--port", str(free_port()),
            ],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    yield proc
    proc.terminate()
    proc.wait(timeout=30)


async def test_controllers_write_as_their_service_accounts(
    cm_server: Server, cm_as_itself: subprocess.Popen[bytes]
) -> None:
    kubectl = Kubectl(cm_server.kubeconfig)
    cm_kubeconfig = cm_server.data_dir / "server" / "cred" / "controller-manager.kubeconfig"
    who = Kubectl(cm_kubeconfig).json("auth", "whoami", "-o", "json")
    assert who["status"]["userInfo"]["username"] == "system:kube-controller-manager"
    res = kubectl.run(
        "auth", "can-i", "create", "pods", "--as=system:kube-controller-manager", check=False
    )
    assert res.stdout.strip() == "no"

    ns = f"sa-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", ns)
    kubectl("create", "deployment", "web", "--image=pyk8s.local/busybox:1.35", "-n", ns)

    def made() -> bool:
        pods = json.loads(kubectl("get", "pods", "-n", ns, "-o", "json"))["items"]
        names = {
            (o["kind"], o["metadata"]["name"])
            for o in json.loads(kubectl("get", "serviceaccount,configmap", "-n", ns, "-o", "json"))[
                "items"
            ]
        }
        return (
            bool(pods)
            and {("ServiceAccount", "default"), ("ConfigMap", "kube-root-ca.crt")} <= names
        )

    await eventually(lambda: asyncio.to_thread(made), within=30, every=0.5)
    accounts = {
        sa["metadata"]["name"]
        for sa in json.loads(kubectl("get", "serviceaccounts", "-n", "kube-system", "-o", "json"))[
            "items"
        ]
    }
    assert {"deployment-controller", "replicaset-controller", "service-account-controller"} <= (
        accounts
    )
