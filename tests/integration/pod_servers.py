"""An HTTPS server run in a real pod behind a Service, for the e2e webhook tests.

The conversion webhook, the admission webhook and the aggregated API server tests each
serve their handler from a pod on a real kubelet: a ConfigMap holds the script, a
``kubernetes.io/tls`` Secret its key pair, a Service with a selector fronts it, and the
EndpointSlice controller (run here as ``pyk8s controller-manager``) publishes the pod.
Our test images are busybox-static, which has no TLS server, so the pod runs the host's
Python, mounted read-only.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.integration.conftest import Kubectl, Server, free_port

if TYPE_CHECKING:
    from tests.integration.test_crd_conversion import Pki

JSON = dict[str, Any]


def serve_tls(handler: str, *, verify_clients: bool = False) -> str:
    """The script's ending: serve ``handler`` (a Python expression) over TLS on :8443 with
    the pod's /tls key pair; with ``verify_clients``, only clients holding a certificate
    signed by /tls/requestheader-ca.crt are let in."""
    verify = (
        'ctx.load_verify_locations("/tls/requestheader-ca.crt")\n'
        "ctx.verify_mode = ssl.CERT_REQUIRED\n"
        if verify_clients
        else ""
    )
    return (
        "ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n"
        'ctx.load_cert_chain("/tls/tls.crt", "/tls/tls.key")\n'
        f"{verify}"
        f'server = http.server.ThreadingHTTPServer(("0.0.0.0", 8443), {handler})\n'
        "server.socket = ctx.wrap_socket(server.socket, server_side=True)\n"
        'print("serving", flush=True)\n'
        "server.serve_forever()\n"
    )


def server_pod(name: str, node_name: str) -> JSON:
    """busybox on ``node_name`` running /server/server.py from the ConfigMap ``name`` with
    the host's Python mounted read-only, ready once :8443 accepts connections."""
    # Debian's /lib and /lib64 are links into /usr; the loader's path is absolute.
    host = [("usr", "/usr", "/usr"), ("lib", "/usr/lib", "/lib"), ("lib64", "/usr/lib64", "/lib64")]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "nodeName": node_name,
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "server",
                    "image": "pyk8s.local/busybox:1.35",
                    "command": ["/usr/bin/python3", "-u", "/server/server.py"],
                    "env": [{"name": "LD_LIBRARY_PATH", "value": "/usr/lib/x86_64-linux-gnu"}],
                    "ports": [{"containerPort": 8443, "name": "https"}],
                    "readinessProbe": {"tcpSocket": {"port": 8443}, "periodSeconds": 1},
                    "volumeMounts": [
                        {"name": "server", "mountPath": "/server"},
                        {"name": "tls", "mountPath": "/tls"},
                        *({"name": n, "mountPath": m, "readOnly": True} for n, _, m in host),
                    ],
                }
            ],
            "volumes": [
                {"name": "server", "configMap": {"name": name}},
                {"name": "tls", "secret": {"secretName": f"{name}-tls"}},
                *({"name": n, "hostPath": {"path": p}} for n, p, _ in host),
            ],
        },
    }


@pytest.fixture
def endpointslice_controller(cm_server: Server, tmp_path: Path) -> Iterator[None]:
    """``pyk8s controller-manager`` running only the EndpointSlice controller, for the
    test's length (its log in the test's tmp_path)."""
    if not Path("/usr/bin/python3").exists():
        pytest.skip("the server pod runs the host's /usr/bin/python3")
    with open(tmp_path / "endpointslice-controller.log", "wb") as log:
        controllers = subprocess.Popen(
            [
                sys.executable, "-m", "pyk8s", "controller-manager",
                "--kubeconfig", str(cm_server.kubeconfig), "--controllers", "endpointslice",
                "--leader-elect", "false", "--port", str(free_port()),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield
    finally:
        controllers.terminate()
        controllers.wait(timeout=30)


def run_server_pod(
    kubectl: Kubectl,
    namespace: str,
    name: str,
    node_name: str,
    script: str,
    pki: Pki,
    extra_tls: dict[str, str] | None = None,
) -> None:
    """Serve ``script`` from the pod ``name`` behind the Service ``name`` (port 443 to the
    pod's :8443) with ``pki``'s key pair (and ``extra_tls`` files in /tls); wait until the
    pod is Ready."""
    objects = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name},
            "data": {"server.py": script},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"{name}-tls"},
            "type": "kubernetes.io/tls",
            "stringData": {
                "tls.crt": pki.cert_file.read_text(),
                "tls.key": pki.key_file.read_text(),
                **(extra_tls or {}),
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": 443, "targetPort": "https"}]},
        },
        server_pod(name, node_name),
    ]
    kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps({"kind": "List", "apiVersion": "v1", "items": objects}),
    )
    ready = kubectl.run(
        "wait", "-n", namespace, "--for=condition=Ready", f"pod/{name}", "--timeout=90s",
        check=False, timeout=100,
    )  # fmt: skip
    if ready.returncode != 0:
        logs = kubectl.run("logs", name, "-n", namespace, check=False)
        previous = kubectl.run("logs", name, "-n", namespace, "--previous", check=False)
        raise AssertionError(
            f"the pod {name} is not Ready:\n"
            + kubectl("describe", "pod", name, "-n", namespace)
            + logs.stdout
            + logs.stderr
            + previous.stdout
            + previous.stderr
        )
