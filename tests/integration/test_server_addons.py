"""``pyk8s server``'s k3s add-on machinery on a real server: k3s's Addon, HelmChart and
HelmChartConfig CRDs are served before the API server answers its first request, so a
HelmChart applied with kubectl right after the start succeeds (no "no matches for
kind"), and the Helm controller, run under the ``kube-system/pyk8s`` lease, installs it;
``--disable-helm-controller`` leaves the Helm CRDs out."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import helm_python as helm
import pytest

from pyk8s import cli
from pyk8s.server import manifests
from tests.integration.conftest import KUBECTL, Kubectl, Server, free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not Path(KUBECTL).exists():
        pytest.skip(f"kubectl is not installed at {KUBECTL}")
    base = tmp_path_factory.mktemp("addons")
    flags = ("--disable-agent", "--disable", "metrics-server", "--disable-scheduler",
             "--etcd-disable-snapshots", "--node-name", "addons-1")  # fmt: skip
    srv = Server(base / "data", free_port(), command="server", extra_args=flags).start()
    try:
        yield srv
    finally:
        srv.stop()


def _chart(tmp: Path) -> str:
    """A chart making one ConfigMap, packaged and base64-encoded."""
    src = tmp / "src" / "hello"
    (src / "templates").mkdir(parents=True)
    (src / "Chart.yaml").write_text("apiVersion: v2\nname: hello\nversion: 0.1.0\n")
    (src / "values.yaml").write_text("colour: blue\n")
    (src / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\n"
        "data:\n  colour: {{ .Values.colour | quote }}\n"
    )
    helm.package(str(src), destination=str(tmp / "dist"))
    return base64.b64encode((tmp / "dist" / "hello-0.1.0.tgz").read_bytes()).decode()


def _wait(kubectl: Kubectl, what: str, *args: str, within: float = 60) -> str:
    deadline = time.monotonic() + within
    while True:
        out = kubectl.run(*args, check=False)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout
        assert time.monotonic() < deadline, f"{what}: {out.stderr}{out.stdout}"
        time.sleep(0.3)


def test_a_helmchart_applies_right_after_start_and_the_leader_installs_it(
    server: Server, tmp_path: Path
) -> None:
    chart = {
        "apiVersion": "helm.cattle.io/v1",
        "kind": "HelmChart",
        "metadata": {"name": "hello", "namespace": "kube-system"},
        "spec": {"chartContent": _chart(tmp_path), "targetNamespace": "default",
                 "valuesContent": "colour: red"},
    }  # fmt: skip
    kubectl = Kubectl(server.kubeconfig)
    # the first kubectl call after /readyz: the kind must already be there
    kubectl("apply", "-f", "-", input=json.dumps(chart))
    crds = kubectl("get", "crd", "-o", "name")
    for name in ("addons.k3s.cattle.io", "helmcharts.helm.cattle.io",
                 "helmchartconfigs.helm.cattle.io"):  # fmt: skip
        assert f"customresourcedefinition.apiextensions.k8s.io/{name}" in crds
    colour = _wait(kubectl, "the release's ConfigMap", "get", "configmap", "hello-cm",
                   "-o", "jsonpath={.data.colour}", within=90)  # fmt: skip
    assert colour == "red"
    holder = kubectl("get", "lease", manifests.LOCK_NAME, "-n", "kube-system",
                     "-o", "jsonpath={.spec.holderIdentity}")  # fmt: skip
    assert holder.startswith("addons-1_")  # this server's controller leads (named by node)
    assert kubectl("get", "helmchart", "hello", "-n", "kube-system",
                   "-o", "jsonpath={.metadata.finalizers}") == (
        '["wrangler.cattle.io/on-helm-chart-remove"]'
    )  # fmt: skip


def test_disable_helm_controller_leaves_its_crds_out() -> None:
    args = cli._parser().parse_args(["server", "--disable-helm-controller"])
    options = cli._snapshot_options(args)
    assert options["deploy_manifests"] and not options["helm_controller"]
    names = [c["metadata"]["name"] for c in manifests.wanted_crds(False)]
    assert names == ["addons.k3s.cattle.io"]
    assert len(manifests.wanted_crds(True)) == 3
