"""``kubectl get flowschemas,prioritylevelconfigurations`` against the session's server:
API Priority and Fairness is on by default, with upstream's bootstrap objects and columns
(the queueing itself is in tests/apiserver/test_flowcontrol.py)."""

from __future__ import annotations

from typing import Any

from tests.integration.conftest import Kubectl


def test_kubectl_prints_the_bootstrap_configuration_with_upstreams_columns(
    kubectl: Kubectl,
) -> None:
    out = kubectl("get", "flowschemas").splitlines()
    assert out[0].split() == [
        "NAME", "PRIORITYLEVEL", "MATCHINGPRECEDENCE", "DISTINGUISHERMETHOD", "AGE", "MISSINGPL"
    ]  # fmt: skip
    rows = [line.split() for line in out[1:]]
    # sorted by name as kubectl lists them; every schema's level exists
    by_name = {r[0]: r for r in rows}
    assert by_name["exempt"][1:4] == ["exempt", "1", "<none>"]
    assert by_name["probes"][1:4] == ["exempt", "2", "<none>"]
    assert by_name["system-node-high"][1:4] == ["node-high", "400", "ByUser"]
    assert by_name["kube-controller-manager"][1:4] == ["workload-high", "800", "ByNamespace"]
    assert by_name["catch-all"][1:4] == ["catch-all", "10000", "ByUser"]
    assert len(rows) == 13
    assert all(r[-1] in ("False", "?") for r in rows)

    out = kubectl("get", "prioritylevelconfigurations").splitlines()
    assert out[0].split() == [
        "NAME", "TYPE", "NOMINALCONCURRENCYSHARES", "QUEUES", "HANDSIZE", "QUEUELENGTHLIMIT",
        "AGE",
    ]  # fmt: skip
    by_name = {line.split()[0]: line.split() for line in out[1:]}
    assert by_name["exempt"][1:6] == ["Exempt", "<none>", "<none>", "<none>", "<none>"]
    assert by_name["catch-all"][1:6] == ["Limited", "5", "<none>", "<none>", "<none>"]
    assert by_name["leader-election"][1:6] == ["Limited", "10", "16", "4", "50"]
    assert by_name["global-default"][1:6] == ["Limited", "20", "128", "6", "50"]

    metrics = kubectl("get", "--raw", "/metrics")
    assert 'apiserver_flowcontrol_nominal_limit_seats{priority_level="workload-low"} 245.0' in (
        metrics
    )
    assert 'apiserver_flowcontrol_dispatched_requests_total{flow_schema="exempt"' in metrics


def test_the_python_client_reads_flowcontrol_v1(api: Any) -> None:
    from kubernetes import client

    fc = client.FlowcontrolApiserverV1Api(api)
    schemas = {fs.metadata.name: fs for fs in fc.list_flow_schema().items}
    assert schemas["global-default"].spec.priority_level_configuration.name == "global-default"
    assert schemas["service-accounts"].spec.distinguisher_method.type == "ByUser"
    level = fc.read_priority_level_configuration("workload-low")
    assert level.spec.limited.nominal_concurrency_shares == 100
    assert level.spec.limited.lendable_percent == 90
    assert level.spec.limited.limit_response.queuing.hand_size == 6
    # the headers every response carries, here for the admin's exempt request
    _, _, headers = fc.list_priority_level_configuration_with_http_info()
    exempt = fc.read_priority_level_configuration("exempt")
    assert headers["X-Kubernetes-PF-PriorityLevel-UID"] == exempt.metadata.uid
