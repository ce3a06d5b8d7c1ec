"""Bad input gets a clear error, with upstream's code and reason, and writes nothing."""

from __future__ import annotations

import json
import threading

from tests.integration.conftest import Kubectl, RawClient


def cm(name: str, **extra: object) -> bytes:
    return json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, **extra}
    ).encode()


def revision(raw: RawClient, ns: str) -> int:
    return int(
        raw("GET", f"/api/v1/namespaces/{ns}/configmaps").json()["metadata"]["resourceVersion"]
    )


def test_malformed_json_is_400(raw: RawClient, ns: str) -> None:
    r = raw("POST", f"/api/v1/namespaces/{ns}/configmaps", b'{"apiVersion": "v1", "kind":')
    assert r.status == 400
    assert r.json()["reason"] == "BadRequest"


def test_yaml_bodies_are_accepted(raw: RawClient, ns: str) -> None:
    body = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  a: '1'\n"
    r = raw("POST", f"/api/v1/namespaces/{ns}/configmaps", body, "application/yaml")
    assert r.status == 201, r.body
    assert r.json()["data"] == {"a": "1"}


def test_unknown_content_type_is_415(raw: RawClient, ns: str) -> None:
    r = raw("POST", f"/api/v1/namespaces/{ns}/configmaps", cm("x"), "text/plain")
    assert r.status == 415
    assert r.json()["reason"] == "UnsupportedMediaType"


def test_server_side_apply_without_a_field_manager_is_422(raw: RawClient, ns: str) -> None:
    r = raw(
        "PATCH", f"/api/v1/namespaces/{ns}/configmaps/x", cm("x"), "application/apply-patch+yaml"
    )
    assert r.status == 422
    assert r.json()["message"] == (
        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
        "is required for apply patch"
    )


def test_body_over_3mib_is_413_and_nothing_is_written(raw: RawClient, ns: str) -> None:
    before = revision(raw, ns)
    r = raw(
        "POST",
        f"/api/v1/namespaces/{ns}/configmaps",
        cm("huge", data={"blob": "x" * (3 * 1024 * 1024 + 10)}),
    )
    assert r.status == 413
    assert r.json()["reason"] == "RequestEntityTooLarge"
    assert raw("GET", f"/api/v1/namespaces/{ns}/configmaps/huge").status == 404
    assert revision(raw, ns) == before


def test_unknown_resource_is_404_with_upstream_message(raw: RawClient) -> None:
    r = raw("GET", "/api/v1/namespaces/default/widgets")
    assert r.status == 404
    assert r.json()["message"] == "the server could not find the requested resource"
    assert raw("GET", "/apis/nope.example.com/v1/things").status == 404


def test_stale_update_is_409_and_keeps_the_newer_value(raw: RawClient, ns: str) -> None:
    created = raw("POST", f"/api/v1/namespaces/{ns}/configmaps", cm("cas", data={"v": "1"}))
    obj = created.json()
    obj["data"]["v"] = "2"
    first = raw("PUT", f"/api/v1/namespaces/{ns}/configmaps/cas", json.dumps(obj).encode())
    assert first.status == 200
    obj["data"]["v"] = "3"  # still carries the old resourceVersion
    second = raw("PUT", f"/api/v1/namespaces/{ns}/configmaps/cas", json.dumps(obj).encode())
    assert second.status == 409
    assert second.json()["reason"] == "Conflict"
    assert "the object has been modified" in second.json()["message"]
    got = raw("GET", f"/api/v1/namespaces/{ns}/configmaps/cas").json()
    assert got["data"]["v"] == "2"


def test_invalid_object_lists_every_failing_field(raw: RawClient, ns: str) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "two-errors"},
        "spec": {"containers": [{"name": "a"}, {"name": "a", "image": "x"}]},
    }
    r = raw("POST", f"/api/v1/namespaces/{ns}/pods", json.dumps(pod).encode())
    assert r.status == 422
    status = r.json()
    assert status["reason"] == "Invalid"
    fields = {c["field"] for c in status["details"]["causes"]}
    assert "spec.containers[0].image" in fields
    assert "spec.containers[1].name" in fields
    assert raw("GET", f"/api/v1/namespaces/{ns}/pods/two-errors").status == 404


def test_immutable_selector_is_refused(kubectl: Kubectl, ns: str) -> None:
    d = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "imm"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b", "c": "d"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            },
        },
    }
    kubectl("create", "-n", ns, "-f", "-", input=json.dumps(d))
    out = kubectl.run(
        "patch",
        "deploy",
        "imm",
        "-n",
        ns,
        "--type=merge",
        "-p",
        '{"spec":{"selector":{"matchLabels":{"a":"b","c":"d"}}}}',
        check=False,
    )
    assert out.returncode == 1
    assert "field is immutable" in out.stderr


def test_many_concurrent_clients_lose_nothing(raw: RawClient, ns: str) -> None:
    """20 threads: creates of distinct names all land; racing updates of one object are
    each either applied or refused with 409, and the final counter equals the wins."""
    raw("POST", f"/api/v1/namespaces/{ns}/configmaps", cm("counter", data={"n": "0"}))
    wins = [0]
    lock = threading.Lock()

    def worker(i: int) -> None:
        assert raw("POST", f"/api/v1/namespaces/{ns}/configmaps", cm(f"c{i}")).status == 201
        for _ in range(5):
            obj = raw("GET", f"/api/v1/namespaces/{ns}/configmaps/counter").json()
            obj["data"]["n"] = str(int(obj["data"]["n"]) + 1)
            r = raw("PUT", f"/api/v1/namespaces/{ns}/configmaps/counter", json.dumps(obj).encode())
            assert r.status in (200, 409), r.body
            if r.status == 200:
                with lock:
                    wins[0] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    items = raw("GET", f"/api/v1/namespaces/{ns}/configmaps").json()["items"]
    names = {i["metadata"]["name"] for i in items}
    assert {f"c{i}" for i in range(20)} <= names
    final = raw("GET", f"/api/v1/namespaces/{ns}/configmaps/counter").json()
    assert int(final["data"]["n"]) == wins[0] > 0


def test_metrics_and_health_endpoints(raw: RawClient) -> None:
    metrics = raw("GET", "/metrics")
    assert metrics.status == 200
    assert b"apiserver_request_total" in metrics.body
    assert raw("GET", "/readyz").body == b"ok"
    assert raw("GET", "/livez").body == b"ok"


def test_table_output_for_kubectl_get(raw: RawClient, ns: str) -> None:
    raw("POST", f"/api/v1/namespaces/{ns}/configmaps", cm("tbl", data={"a": "1"}))
    r = raw(
        "GET",
        f"/api/v1/namespaces/{ns}/configmaps",
        headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
    )
    table = r.json()
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Data", "Age"]
    row = next(r for r in table["rows"] if r["cells"][0] == "tbl")
    assert row["cells"][1] == 1
    assert row["object"]["kind"] == "PartialObjectMetadata"


def test_type_wrong_fields_are_400_in_the_decoders_words(
    raw: RawClient, kubectl: Kubectl, ns: str
) -> None:
    """The issue's examples: a string for a list, a bool for a map. Upstream answers
    400 with its JSON decoder's error and writes nothing; kubectl prints it."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "typed"},
        "spec": {"containers": "abc"},
    }
    out = kubectl.run("create", "-n", ns, "-f", "-", input=json.dumps(pod), check=False)
    assert out.returncode == 1
    assert (
        'Error from server (BadRequest): error when creating "STDIN": Pod in version "v1" '
        "cannot be handled as a Pod: json: cannot unmarshal string into Go struct field "
        "PodSpec.spec.containers of type []v1.Container"
    ) in out.stderr
    pod["spec"] = {"containers": [{"name": "c", "image": "busybox"}]}
    pod["metadata"] = {"name": "typed", "labels": True}
    r = raw("POST", f"/api/v1/namespaces/{ns}/pods", json.dumps(pod).encode())
    assert r.status == 400
    assert r.json()["reason"] == "BadRequest"
    assert r.json()["message"] == (
        'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal bool into '
        "Go struct field ObjectMeta.metadata.labels of type map[string]string"
    )
    assert "Audit-Id" in r.headers
    assert raw("GET", f"/api/v1/namespaces/{ns}/pods/typed").status == 404
