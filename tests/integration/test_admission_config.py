"""``--admission-control-config-file`` as a cluster admin uses it: an API server started
with an AdmissionConfiguration that hardens PodSecurity's cluster defaults, checked with
the real kubectl and the official Python client; and a file kube-apiserver would refuse
stops ``pyk8s apiserver`` and ``pyk8s server`` with upstream's text before anything is
set up."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import KUBECTL, Kubectl, Server, free_port, pyk8s_cli

JSON = dict[str, Any]

EXEMPT = "psa-exempt"

#: the file a kubeadm/k3s admin writes: baseline enforced wherever no label says otherwise
HARDENING = f"""apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: PodSecurity
  configuration:
    apiVersion: pod-security.admission.config.k8s.io/v1
    kind: PodSecurityConfiguration
    defaults:
      enforce: baseline
      enforce-version: latest
    exemptions:
      namespaces: [{EXEMPT}]
"""

PRIVILEGED = (
    'pods "p" is forbidden: violates PodSecurity "baseline:latest": privileged '
    '(container "c" must not set securityContext.privileged=true)'
)


@pytest.fixture(scope="module")
def hardened(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not os.path.exists(KUBECTL):
        pytest.skip(f"kubectl is not installed at {KUBECTL}")
    base = tmp_path_factory.mktemp("admission-config")
    config = base / "etc" / "admission.yaml"
    config.parent.mkdir()
    config.write_text(HARDENING)
    srv = Server(
        base / "data", free_port(), extra_args=("--admission-control-config-file", str(config))
    ).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def kubectl(hardened: Server) -> Kubectl:
    return Kubectl(hardened.kubeconfig)


@pytest.fixture(scope="module")
def api(hardened: Server) -> Any:
    from kubernetes import config

    return config.new_client_from_config(str(hardened.kubeconfig))  # type: ignore[no-untyped-call]


def namespace(kubectl: Kubectl, name: str = "", **labels: str) -> str:
    name = name or f"t-{uuid.uuid4().hex[:8]}"
    meta: JSON = {"name": name, "labels": labels}
    obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}
    kubectl.run("apply", "-f", "-", input=json.dumps(obj))
    return name


def pod(ns: str, **security: Any) -> JSON:
    container: JSON = {"name": "c", "image": "busybox"}
    if security:
        container["securityContext"] = security
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": ns},
        "spec": {"containers": [container]},
    }


def apply(kubectl: Kubectl, obj: JSON) -> subprocess.CompletedProcess[str]:
    return kubectl.run("apply", "-f", "-", input=json.dumps(obj), check=False)


def test_the_default_level_refuses_a_privileged_pod_in_a_plain_namespace(
    kubectl: Kubectl, api: Any
) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    ns = namespace(kubectl)
    out = apply(kubectl, pod(ns, privileged=True))
    assert out.returncode == 1
    assert out.stderr.strip() == (
        f'Error from server (Forbidden): error when creating "STDIN": {PRIVILEGED}'
    )
    with pytest.raises(ApiException) as info:
        core: Any = client.CoreV1Api(api)
        core.create_namespaced_pod(ns, pod(ns, privileged=True))
    assert info.value.status == 403
    status = json.loads(info.value.body or "{}")
    assert (status["reason"], status["message"]) == ("Forbidden", PRIVILEGED)
    # a pod that meets baseline is admitted, without warnings (warn stays privileged)
    out = apply(kubectl, pod(ns))
    assert out.returncode == 0, out.stderr
    assert "Warning:" not in out.stderr


def test_an_exempt_namespace_admits_it(kubectl: Kubectl) -> None:
    ns = namespace(kubectl, EXEMPT)
    out = apply(kubectl, pod(ns, privileged=True))
    assert out.returncode == 0, out.stderr
    got = kubectl.json("get", "pod", "p", "-n", ns)
    assert got["spec"]["containers"][0]["securityContext"] == {"privileged": True}


def test_a_namespace_label_still_overrides_the_default(kubectl: Kubectl) -> None:
    ns = namespace(kubectl, **{"pod-security.kubernetes.io/enforce": "privileged"})
    out = apply(kubectl, pod(ns, privileged=True))
    assert out.returncode == 0, out.stderr


# ---------------------------------------------------------------------- refused files


def start(command: str, tmp_path: Path, config: Path) -> subprocess.CompletedProcess[str]:
    """``pyk8s COMMAND`` in this process: these files are refused before anything starts
    (a refusal's exit status from a real process: tests/integration/test_admission.py)."""
    return pyk8s_cli(
        command, "--data-dir", str(tmp_path / "data"), "--admission-control-config-file",
        str(config),
    )  # fmt: skip


@pytest.mark.parametrize("command", ["apiserver", "server"])
def test_an_unknown_version_stops_the_server(command: str, tmp_path: Path) -> None:
    config = tmp_path / "admission.yaml"
    config.write_text(HARDENING.replace("apiserver.config.k8s.io/v1", "apiserver.config.k8s.io/v2"))
    out = start(command, tmp_path, config)
    assert out.returncode == 1
    assert out.stderr.strip() == (
        "Error: failed to apply admission: failed to read plugin config: no kind "
        '"AdmissionConfiguration" is registered for version "apiserver.config.k8s.io/v2" '
        'in scheme "k8s.io/apiserver/pkg/server/options/admission.go:50"'
    )
    assert not (tmp_path / "data").exists()  # refused before anything was set up


def test_a_missing_file_stops_the_server(tmp_path: Path) -> None:
    config = tmp_path / "nowhere.yaml"
    out = start("apiserver", tmp_path, config)
    assert out.returncode == 1
    assert out.stderr.strip() == (
        "Error: failed to apply admission: failed to read plugin config: unable to read "
        f'admission control configuration from "{config}" '
        f"[open {config}: no such file or directory]"
    )


def test_an_invalid_pod_security_configuration_stops_the_server(tmp_path: Path) -> None:
    config = tmp_path / "admission.yaml"
    config.write_text(HARDENING.replace("enforce: baseline", "enforce: strict"))
    out = start("apiserver", tmp_path, config)
    assert out.returncode == 1
    assert out.stderr.strip() == (
        'Error: failed to apply admission: failed to initialize admission plugin "PodSecurity": '
        "PodSecurity configuration error: Enforce.Level: must be one of privileged, baseline, "
        "restricted"
    )
    config.write_text(HARDENING.replace(f"[{EXEMPT}]", "[Not_A_Namespace]"))
    out = start("apiserver", tmp_path, config)
    assert out.returncode == 1
    assert out.stderr.strip().startswith(
        'Error: failed to apply admission: failed to initialize admission plugin "PodSecurity": '
        'PodSecurity invalid: exemptions.namespaces[0]: Invalid value: "Not_A_Namespace": '
        "a lowercase RFC 1123 label must consist of"
    )
    assert not (tmp_path / "data").exists()
