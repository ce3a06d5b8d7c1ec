"""An operator written with kopf reconciles a custom resource, end to end.

Most software people install on a cluster is an operator: a CRD plus a controller that
watches it. kopf is a popular Python framework for them and leans on much of the API:
discovery (it scans ``/api`` and ``/apis`` to find its resources and ``events``), list +
watch, JSON patches with a ``test`` of the resourceVersion to add its
finalizer, merge patches of the main resource and of the ``status`` subresource, an
annotation with the last handled state, and core/v1 Events.

The operator here runs as users run it, ``kopf run --standalone --namespace X op.py``
with ``KUBECONFIG`` pointing at ``pyk8s server`` (API server plus the controller
manager, whose garbage collector removes what the custom resource owns). For each
``EchoApp`` it creates a ConfigMap it adopts (``kopf.adopt``: an ownerReference with
``controller: true``), reports in ``status``, changes the ConfigMap when the spec
changes, and on deletion (through kopf's finalizer) leaves a farewell ConfigMap. The
tests check what a user sees with kubectl and the Python client.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import KUBECTL, Kubectl, Server, free_port

pytest.importorskip("kopf")

GROUP, VERSION, PLURAL, KIND = "demo.example.com", "v1", "echoapps", "EchoApp"
FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"

OPERATOR = '''
"""EchoApp operator: a ConfigMap per EchoApp, kept in line with its spec."""
import kopf
import kubernetes

GROUP, VERSION, PLURAL = "demo.example.com", "v1", "echoapps"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_):
    settings.watching.server_timeout = 60
    kubernetes.config.load_kube_config()


def data(spec):
    return {"message": spec["message"], "replicas": str(spec["replicas"])}


@kopf.on.create(GROUP, VERSION, PLURAL)
def create_fn(body, spec, name, namespace, patch, **_):
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{name}-echo", "labels": {"app.kubernetes.io/name": name}},
        "data": data(spec),
    }
    kopf.adopt(cm)
    kubernetes.client.CoreV1Api().create_namespaced_config_map(namespace, cm)
    kopf.info(body, reason="ConfigMapCreated", message=f"created ConfigMap {name}-echo")
    patch.status["configMap"] = f"{name}-echo"
    patch.status["phase"] = "Ready"
    patch.status["message"] = spec["message"]


@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
def update_fn(body, spec, name, namespace, patch, **_):
    kubernetes.client.CoreV1Api().patch_namespaced_config_map(
        f"{name}-echo", namespace, {"data": data(spec)}
    )
    kopf.info(body, reason="ConfigMapUpdated", message=f"updated ConfigMap {name}-echo")
    patch.status["message"] = spec["message"]


@kopf.on.delete(GROUP, VERSION, PLURAL)
def delete_fn(name, namespace, **_):
    kubernetes.client.CoreV1Api().create_namespaced_config_map(
        namespace,
        {"metadata": {"name": f"{name}-farewell"}, "data": {"deleted": name}},
    )
'''

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {
            "plural": PLURAL,
            "singular": "echoapp",
            "kind": KIND,
            "shortNames": ["echo"],
        },
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Message", "type": "string", "jsonPath": ".spec.message"},
                    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["message"],
                                "properties": {
                                    "message": {"type": "string"},
                                    "replicas": {"type": "integer", "default": 1},
                                },
                            },
                            # kopf keeps its own progress under status.kopf as well
                            "status": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            },
                        },
                    }
                },
            }
        ],
    },
}


def wait_until(check: Callable[[], Any], within: float, what: str, log: Path) -> Any:
    """Poll ``check`` until it returns something truthy; fail with the operator's log."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (AssertionError, KeyError, json.JSONDecodeError) as e:
            last = e
        else:
            if last:
                return last
        time.sleep(0.3)
    tail = log.read_text()[-4000:] if log.exists() else ""
    raise AssertionError(
        f"{what} not seen within {within}s (last: {last!r})\noperator log:\n{tail}"
    )


def handled(app: Any) -> Any:
    """What kopf last handled of ``app`` (its ``last-handled-configuration`` annotation)."""
    return json.loads(app["metadata"]["annotations"]["kopf.zalando.org/last-handled-configuration"])


@dataclass
class Operator:
    kubectl: Kubectl
    namespace: str
    log: Path

    def wait(self, check: Callable[[], Any], what: str, within: float = 60) -> Any:
        return wait_until(check, within, what, self.log)

    def create(self, name: str, message: str, **spec: Any) -> None:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "metadata": {"name": name},
            "spec": {"message": message, **spec},
        }
        self.kubectl("apply", "-n", self.namespace, "-f", "-", input=json.dumps(body))

    def get(self, *args: str) -> Any:
        return self.kubectl.json("get", *args, "-n", self.namespace)

    def ready(self, name: str) -> Any:
        """The EchoApp once the operator reported it Ready."""
        return self.wait(
            lambda: (
                (o := self.get("echoapp", name)).get("status", {}).get("phase") == "Ready" and o
            ),
            f"EchoApp {name} Ready",
        )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``pyk8s server`` without a node: the API server and the controller manager."""
    if not os.path.exists(KUBECTL):
        pytest.skip(f"kubectl is not installed at {KUBECTL}")
    base = tmp_path_factory.mktemp("operator")
    srv = Server(base / "data", free_port(), command="server", extra_args=("--disable-agent",))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def operator(cluster: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    kubectl = Kubectl(cluster.kubeconfig)
    kubectl("apply", "-f", "-", input=json.dumps(CRD))
    kubectl("wait", "--for=condition=Established", f"crd/{PLURAL}.{GROUP}", "--timeout=30s")
    namespace = f"op-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", namespace)

    work = tmp_path_factory.mktemp("kopf")
    (work / "op.py").write_text(OPERATOR)
    log = work / "operator.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kopf",
                "run",
                "--standalone",
                "--verbose",
                "--namespace",
                namespace,
                str(work / "op.py"),
            ],
            cwd=work,
            env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    op = Operator(kubectl, namespace, log)
    try:
        # kopf watches its resource once discovery found it: until then nothing is handled.
        op.wait(
            lambda: (
                proc.poll() is None and "Starting the watch-stream for echoapps" in log.read_text()
            ),
            "the operator watching echoapps",
        )
        yield op
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        warnings = [
            line for line in log.read_text().splitlines() if "[WARNING" in line or "[ERROR" in line
        ]
        assert not warnings, "the operator logged warnings or errors:\n" + "\n".join(warnings)


@pytest.fixture
def api(operator: Operator) -> Any:
    """The official client on this module's cluster (not the shared API server)."""
    from kubernetes import config

    return config.new_client_from_config(str(operator.kubectl.kubeconfig))


def test_create_makes_an_owned_configmap_and_reports_status(operator: Operator, api: Any) -> None:
    operator.create("hello", "hi there", replicas=2)
    cm = operator.wait(
        lambda: (
            operator.kubectl.run(
                "get", "configmap", "hello-echo", "-n", operator.namespace, check=False
            ).returncode
            == 0
            and operator.get("configmap", "hello-echo")
        ),
        "ConfigMap hello-echo",
    )
    assert cm["data"] == {"message": "hi there", "replicas": "2"}
    assert cm["metadata"]["labels"] == {"app.kubernetes.io/name": "hello"}

    app = operator.ready("hello")
    assert app["status"]["configMap"] == "hello-echo"
    assert app["status"]["message"] == "hi there"
    # kopf's finalizer guards the deletion handler; its annotation records what it handled.
    assert FINALIZER in app["metadata"]["finalizers"]
    assert handled(app)["spec"] == {"message": "hi there", "replicas": 2}
    # Status went through the status subresource: the spec generation did not move.
    assert app["metadata"]["generation"] == 1

    [owner] = cm["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": "hello",
        "uid": app["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }

    # The same through the official client's status subresource call.
    from kubernetes import client

    status = client.CustomObjectsApi(api).get_namespaced_custom_object_status(
        GROUP, VERSION, operator.namespace, PLURAL, "hello"
    )
    assert status["status"]["phase"] == "Ready"

    # The printer columns show it (NAME is implicit; AGE only when the CRD lists it).
    header, row = operator.kubectl("get", "echo", "hello", "-n", operator.namespace).splitlines()
    assert header.split() == ["NAME", "MESSAGE", "PHASE"]
    assert row.split() == ["hello", "hi", "there", "Ready"]

    # kopf posted a core/v1 Event about the object.
    events = operator.wait(
        lambda: [
            e
            for e in operator.get(
                "events", "--field-selector", "involvedObject.name=hello,reason=ConfigMapCreated"
            )["items"]
        ],
        "the ConfigMapCreated event",
    )
    assert events[0]["involvedObject"]["kind"] == KIND
    assert events[0]["involvedObject"]["uid"] == app["metadata"]["uid"]
    assert events[0]["message"] == "created ConfigMap hello-echo"
    assert events[0]["type"] == "Normal"
    described = operator.kubectl("describe", "echoapp", "hello", "-n", operator.namespace)
    assert "ConfigMapCreated" in described


def test_update_changes_the_configmap(operator: Operator) -> None:
    operator.create("upd", "first")
    operator.ready("upd")
    operator.kubectl(
        "patch",
        "echoapp",
        "upd",
        "-n",
        operator.namespace,
        "--type=merge",
        "-p",
        '{"spec": {"message": "second", "replicas": 3}}',
    )
    operator.wait(
        lambda: (
            operator.get("configmap", "upd-echo")["data"] == {"message": "second", "replicas": "3"}
        ),
        "ConfigMap upd-echo updated",
    )
    app = operator.wait(
        lambda: (o := operator.get("echoapp", "upd"))["status"]["message"] == "second" and o,
        "status.message updated",
    )
    assert app["metadata"]["generation"] == 2
    assert app["status"]["phase"] == "Ready"

    # A label is no spec change: kopf notes it (its annotation now has the label) and the
    # ConfigMap is left alone.
    cm_version = operator.get("configmap", "upd-echo")["metadata"]["resourceVersion"]
    operator.kubectl("label", "echoapp", "upd", "-n", operator.namespace, "team=blue")
    operator.wait(
        lambda: (
            "team" in handled(operator.get("echoapp", "upd")).get("metadata", {}).get("labels", {})
        ),
        "kopf handling the label change",
    )
    assert operator.get("configmap", "upd-echo")["metadata"]["resourceVersion"] == cm_version

    # kubectl apply (a merge patch computed from last-applied) is a spec change again.
    operator.create("upd", "third", replicas=3)
    operator.wait(
        lambda: operator.get("configmap", "upd-echo")["data"]["message"] == "third",
        "ConfigMap upd-echo updated by apply",
    )


def test_delete_runs_the_finalizer_and_the_object_goes(operator: Operator) -> None:
    operator.create("bye", "so long")
    app = operator.ready("bye")
    assert FINALIZER in app["metadata"]["finalizers"]

    started = time.monotonic()
    out = operator.kubectl("delete", "echoapp", "bye", "-n", operator.namespace, "--timeout=60s")
    assert out.strip() == f'echoapp.{GROUP} "bye" deleted'
    assert time.monotonic() - started < 60
    gone = operator.kubectl.run("get", "echoapp", "bye", "-n", operator.namespace, check=False)
    assert gone.returncode == 1
    assert f'echoapps.{GROUP} "bye" not found' in gone.stderr

    # The deletion handler ran before kopf released its finalizer …
    farewell = operator.get("configmap", "bye-farewell")
    assert farewell["data"] == {"deleted": "bye"}
    # … and the garbage collector removes what the EchoApp owned.
    operator.wait(
        lambda: (
            operator.kubectl.run(
                "get", "configmap", "bye-echo", "-n", operator.namespace, check=False
            ).returncode
            == 1
        ),
        "ConfigMap bye-echo garbage-collected",
        within=120,
    )
