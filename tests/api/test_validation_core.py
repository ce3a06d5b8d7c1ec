"""Validation of core/v1 objects as kubectl users send them: exact upstream messages."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pyk8s.api.errors import FieldErrorType, invalid_object
from pyk8s.api.validation import validate_create, validate_update
from tests.api.helpers import msgs, res

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
NAME_PART_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used "
    "for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)


POD = res("v1", "Pod")
SERVICE = res("v1", "Service")


def pod(**spec: Any) -> dict[str, Any]:
    """A Pod the way it reaches validation: sent by kubectl, then defaulted."""
    container = {
        "name": "web",
        "image": "nginx:1.27",
        "imagePullPolicy": "IfNotPresent",
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "ports": [{"containerPort": 80, "protocol": "TCP"}],
        "resources": {},
    }
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "uid": "0c0a-11",
            "labels": {"app": "web"},
        },
        "spec": {
            "containers": [container],
            "restartPolicy": "Always",
            "dnsPolicy": "ClusterFirst",
            "terminationGracePeriodSeconds": 30,
            "schedulerName": "default-scheduler",
            "securityContext": {},
        },
    }
    obj["spec"].update(spec)
    return obj


def test_valid_pod_passes() -> None:
    assert validate_create(POD, pod()) == []


def test_missing_image() -> None:
    p = pod()
    del p["spec"]["containers"][0]["image"]
    errs = validate_create(POD, p)
    assert msgs(errs) == ["spec.containers[0].image: Required value"]
    status = invalid_object("Pod", "web", errs).status()
    assert status["message"] == 'Pod "web" is invalid: spec.containers[0].image: Required value'


def test_no_containers() -> None:
    assert msgs(validate_create(POD, pod(containers=[]))) == ["spec.containers: Required value"]


def test_bad_pod_name() -> None:
    p = pod()
    p["metadata"]["name"] = "Web_Server"
    assert msgs(validate_create(POD, p)) == [
        f'metadata.name: Invalid value: "Web_Server": {SUBDOMAIN_MSG}'
    ]


@pytest.mark.parametrize("name", ["a/b", "a%b", "..", "."])
def test_pod_name_that_is_no_path_segment_fails_as_a_subdomain(name: str) -> None:
    # what upstream's generic ObjectMeta check would refuse (a URL path segment), a pod's
    # own DNS-subdomain rule refuses first, with its message alone
    p = pod()
    p["metadata"]["name"] = name
    assert msgs(validate_create(POD, p)) == [
        f'metadata.name: Invalid value: "{name}": {SUBDOMAIN_MSG}'
    ]


def test_missing_name_and_bad_generate_name() -> None:
    p = pod()
    del p["metadata"]["name"]
    p["metadata"]["generateName"] = "Web-"
    assert msgs(validate_create(POD, p)) == [
        f'metadata.generateName: Invalid value: "Web-": {SUBDOMAIN_MSG}',
        "metadata.name: Required value: name or generateName is required",
    ]


def test_generate_name_may_end_in_dash() -> None:
    p = pod()
    p["metadata"]["generateName"] = "web-"
    assert validate_create(POD, p) == []


def test_bad_label_key_and_value() -> None:
    p = pod()
    p["metadata"]["labels"] = {"app name": "web", "tier": "-front"}
    assert msgs(validate_create(POD, p)) == [
        f'metadata.labels: Invalid value: "app name": {NAME_PART_MSG}',
        f'metadata.labels: Invalid value: "-front": {LABEL_VALUE_MSG}',
    ]


def test_label_value_too_long() -> None:
    p = pod()
    p["metadata"]["labels"] = {"app": "a" * 64}
    assert msgs(validate_create(POD, p))[0] == (
        f'metadata.labels: Invalid value: "{"a" * 64}": must be no more than 63 characters'
    )


def test_label_key_prefix() -> None:
    p = pod()
    p["metadata"]["labels"] = {"Example.com/app": "x", "a/b/c": "y"}
    out = msgs(validate_create(POD, p))
    assert out[0].startswith(
        'metadata.labels: Invalid value: "Example.com/app": prefix part a lowercase RFC 1123'
    )
    assert out[1] == (
        'metadata.labels: Invalid value: "a/b/c": a qualified name must consist of alphanumeric '
        "characters, '-', '_' or '.', and must start and end with an alphanumeric character "
        "(e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
        "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and "
        "'/' (e.g. 'example.com/MyName')"
    )


def test_annotations_too_big() -> None:
    p = pod()
    p["metadata"]["annotations"] = {"big": "x" * (256 * 1024)}
    assert msgs(validate_create(POD, p)) == [
        "metadata.annotations: Too long: may not be more than 262144 bytes"
    ]


def test_duplicate_container_name_including_init() -> None:
    p = pod()
    c = copy.deepcopy(p["spec"]["containers"][0])
    p["spec"]["containers"].append(copy.deepcopy(c))
    p["spec"]["containers"][1]["ports"] = []
    init = copy.deepcopy(c)
    init["ports"] = []
    p["spec"]["initContainers"] = [init]
    assert msgs(validate_create(POD, p)) == [
        'spec.containers[1].name: Duplicate value: "web"',
        'spec.initContainers[0].name: Duplicate value: "web"',
    ]


def test_container_name_must_be_dns_label() -> None:
    p = pod()
    p["spec"]["containers"][0]["name"] = "Web"
    assert msgs(validate_create(POD, p)) == [
        f'spec.containers[0].name: Invalid value: "Web": {LABEL_MSG}'
    ]


def test_ports() -> None:
    p = pod()
    p["spec"]["containers"][0]["ports"] = [
        {"containerPort": 0, "protocol": "TCP"},
        {"containerPort": 70000, "protocol": "HTTP", "name": "http"},
        {"containerPort": 81, "name": "http", "protocol": "TCP"},
    ]
    assert msgs(validate_create(POD, p)) == [
        "spec.containers[0].ports[0].containerPort: Required value",
        "spec.containers[0].ports[1].containerPort: Invalid value: 70000: must be between 1 "
        "and 65535, inclusive",
        'spec.containers[0].ports[1].protocol: Unsupported value: "HTTP": supported values: '
        '"SCTP", "TCP", "UDP"',
        'spec.containers[0].ports[2].name: Duplicate value: "http"',
    ]


def test_port_name_rules() -> None:
    p = pod()
    p["spec"]["containers"][0]["ports"][0]["name"] = "web-server-port-1"
    assert msgs(validate_create(POD, p)) == [
        'spec.containers[0].ports[0].name: Invalid value: "web-server-port-1": must be no more '
        "than 15 characters"
    ]


def test_env() -> None:
    p = pod()
    p["spec"]["containers"][0]["env"] = [
        {"name": ""},
        {"name": "A=B", "value": "x"},
        {"name": "FROM", "valueFrom": {}},
        {"name": "CM", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "bad key"}}},
        {"name": "POD", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.foo"}}},
    ]
    assert msgs(validate_create(POD, p)) == [
        "spec.containers[0].env[0].name: Required value",
        'spec.containers[0].env[1].name: Invalid value: "A=B": a valid environment variable '
        "name must consist only of printable ASCII characters other than '='",
        'spec.containers[0].env[2].valueFrom: Invalid value: "": must specify one of: '
        "`fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
        'spec.containers[0].env[3].valueFrom.configMapKeyRef.key: Invalid value: "bad key": a '
        "valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. "
        "'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
        "'[-._a-zA-Z0-9]+')",
        'spec.containers[0].env[4].valueFrom.fieldRef.fieldPath: Invalid value: "spec.foo": '
        "error converting fieldPath: field label not supported: spec.foo",
    ]


def test_volumes_and_mounts() -> None:
    p = pod(
        volumes=[
            {"name": "data", "emptyDir": {}},
            {"name": "data", "emptyDir": {}},
            {"name": "cfg"},
            {"name": "both", "emptyDir": {}, "hostPath": {"path": "/tmp"}},
        ]
    )
    p["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "data", "mountPath": "/data"},
        {"name": "logs", "mountPath": "/data"},
    ]
    assert msgs(validate_create(POD, p)) == [
        'spec.volumes[1].name: Duplicate value: "data"',
        "spec.volumes[2]: Required value: must specify a volume type",
        "spec.volumes[3].hostPath: Forbidden: may not specify more than 1 volume type",
        'spec.containers[0].volumeMounts[1].name: Not found: "logs"',
        'spec.containers[0].volumeMounts[1].mountPath: Invalid value: "/data": must be unique',
    ]


def test_volume_sources() -> None:
    p = pod(
        volumes=[
            {"name": "s", "secret": {"defaultMode": 1000}},
            {"name": "c", "configMap": {"name": "cfg", "items": [{"key": "k", "path": "../x"}]}},
            {"name": "pvc", "persistentVolumeClaim": {}},
        ]
    )
    assert msgs(validate_create(POD, p)) == [
        "spec.volumes[0].secret.secretName: Required value",
        "spec.volumes[0].secret.defaultMode: Invalid value: 1000: must be a number between 0 "
        "and 0777 (octal), both inclusive",
        "spec.volumes[1].configMap.items[0].path: Invalid value: \"../x\": must not contain '..'",
        'spec.volumes[1].configMap.items[0].path: Invalid value: "../x": must not start with '
        "'..'",
        "spec.volumes[2].persistentVolumeClaim.claimName: Required value",
    ]


def test_enums() -> None:
    p = pod(restartPolicy="Sometimes", dnsPolicy="Google")
    p["spec"]["containers"][0]["imagePullPolicy"] = "Maybe"
    assert msgs(validate_create(POD, p)) == [
        'spec.containers[0].imagePullPolicy: Unsupported value: "Maybe": supported values: '
        '"Always", "IfNotPresent", "Never"',
        'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", '
        '"OnFailure", "Never"',
        'spec.dnsPolicy: Unsupported value: "Google": supported values: '
        '"ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"',
    ]


def test_resources() -> None:
    p = pod()
    p["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": "1500m", "memory": "2Gi", "nvidia.com/gpu": "1"},
        "limits": {"cpu": "1", "memory": "-1", "gpu": "1"},
    }
    assert msgs(validate_create(POD, p)) == [
        'spec.containers[0].resources.limits[memory]: Invalid value: "-1": must be greater than '
        "or equal to 0",
        'spec.containers[0].resources.limits[gpu]: Invalid value: "gpu": must be a standard '
        "resource type or fully qualified",
        'spec.containers[0].resources.limits[gpu]: Invalid value: "gpu": must be a standard '
        "resource for containers",
        'spec.containers[0].resources.requests: Invalid value: "1500m": must be less than or '
        "equal to cpu limit of 1",
        'spec.containers[0].resources.requests: Invalid value: "2Gi": must be less than or equal '
        "to memory limit of -1",
        "spec.containers[0].resources.limits: Required value: Limit must be set for non "
        "overcommitable resources",
    ]


def test_probes() -> None:
    p = pod()
    c = p["spec"]["containers"][0]
    c["livenessProbe"] = {
        "httpGet": {"path": "/", "port": 0, "scheme": "HTTP"},
        "successThreshold": 2,
        "periodSeconds": -1,
    }
    c["readinessProbe"] = {"periodSeconds": 10}
    assert msgs(validate_create(POD, p)) == [
        "spec.containers[0].livenessProbe.httpGet.port: Invalid value: 0: must be between 1 and "
        "65535, inclusive",
        "spec.containers[0].livenessProbe.periodSeconds: Invalid value: -1: must be greater "
        "than or equal to 0",
        "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
        "spec.containers[0].readinessProbe: Required value: must specify a handler type",
    ]


def test_tolerations_and_node_name() -> None:
    p = pod(
        tolerations=[{"operator": "Equal", "value": "x"}],
        nodeName="Node_1",
        activeDeadlineSeconds=0,
    )
    assert msgs(validate_create(POD, p)) == [
        'spec.nodeName: Invalid value: "Node_1": ' + SUBDOMAIN_MSG,
        "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive",
        'spec.tolerations[0].operator: Invalid value: "Equal": operator must be Exists when '
        '`key` is empty, which means "match all values and all keys"',
    ]


def test_namespace_required_for_namespaced_kinds() -> None:
    p = pod()
    del p["metadata"]["namespace"]
    assert msgs(validate_create(POD, p)) == ["metadata.namespace: Required value"]


# ---------------------------------------------------------------- pod updates


def test_pod_update_image_allowed() -> None:
    old = pod()
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "nginx:1.28"
    new["metadata"]["resourceVersion"] = "5"
    assert validate_update(POD, new, old) == []


def test_pod_update_other_fields_forbidden() -> None:
    old = pod()
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["ports"][0]["containerPort"] = 8080
    errs = validate_update(POD, new, old)
    assert len(errs) == 1
    assert errs[0].type is FieldErrorType.FORBIDDEN
    assert str(errs[0]).startswith(
        "spec: Forbidden: pod updates may not change fields other than "
        "`spec.containers[*].image`,`spec.initContainers[*].image`,"
        "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
        "tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
        "previously negative)\n"
    )
    assert "containerPort: 8080" in str(errs[0])


def test_pod_update_add_container_forbidden() -> None:
    old = pod()
    new = copy.deepcopy(old)
    extra = copy.deepcopy(new["spec"]["containers"][0])
    extra["name"], extra["ports"] = "sidecar", []
    new["spec"]["containers"].append(extra)
    assert msgs(validate_update(POD, new, old)) == [
        "spec.containers: Forbidden: pod updates may not add or remove containers"
    ]


def test_pod_update_tolerations_only_added() -> None:
    old = pod(tolerations=[{"key": "a", "operator": "Exists", "effect": "NoSchedule"}])
    new = copy.deepcopy(old)
    new["spec"]["tolerations"].append({"key": "b", "operator": "Exists"})
    assert validate_update(POD, new, old) == []
    new["spec"]["tolerations"] = [{"key": "b", "operator": "Exists"}]
    assert msgs(validate_update(POD, new, old)) == [
        "spec.tolerations: Forbidden: existing toleration can not be modified except its "
        "tolerationSeconds"
    ]


def test_metadata_immutable() -> None:
    old = pod()
    new = copy.deepcopy(old)
    new["metadata"]["name"] = "other"
    new["metadata"]["uid"] = "0c0a-12"
    assert msgs(validate_update(POD, new, old)) == [
        'metadata.name: Invalid value: "other": field is immutable',
        'metadata.uid: Invalid value: "0c0a-12": field is immutable',
    ]


def test_no_new_finalizers_while_deleting() -> None:
    old = pod()
    old["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    new = copy.deepcopy(old)
    new["metadata"]["finalizers"] = ["example.com/x"]
    assert msgs(validate_update(POD, new, old)) == [
        "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being "
        'deleted, found new finalizers []string{"example.com/x"}'
    ]


def test_kube_finalizer_names() -> None:
    p = pod()
    p["metadata"]["finalizers"] = ["kubernetes", "custom", "example.com/ok"]
    assert msgs(validate_create(POD, p)) == [
        'metadata.finalizers[1]: Invalid value: "custom": name is neither a standard finalizer '
        "name nor is it fully qualified"
    ]


# ---------------------------------------------------------------- services


def service(**spec: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "selector": {"app": "web"},
            "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}],
            "type": "ClusterIP",
            "sessionAffinity": "None",
            "internalTrafficPolicy": "Cluster",
        },
    }
    obj["spec"].update(spec)
    return obj


def test_valid_services() -> None:
    assert validate_create(SERVICE, service()) == []
    assert validate_create(SERVICE, service(clusterIP="None", ports=[])) == []
    ext = service(type="ExternalName", externalName="db.example.com", ports=[])
    del ext["spec"]["selector"]
    assert validate_create(SERVICE, ext) == []
    np = service(type="NodePort", externalTrafficPolicy="Cluster")
    np["spec"]["ports"][0]["nodePort"] = 30080
    assert validate_create(SERVICE, np) == []


def test_service_name_is_dns1035() -> None:
    s = service()
    s["metadata"]["name"] = "1web"
    assert msgs(validate_create(SERVICE, s)) == [
        f'metadata.name: Invalid value: "1web": {DNS1035_MSG}'
    ]


def test_service_ports() -> None:
    assert msgs(validate_create(SERVICE, service(ports=[]))) == ["spec.ports: Required value"]
    two = service(
        ports=[{"port": 80, "protocol": "TCP"}, {"port": 0, "protocol": "TCP", "name": "b"}]
    )
    assert msgs(validate_create(SERVICE, two)) == [
        "spec.ports[0].name: Required value",
        "spec.ports[1].port: Invalid value: 0: must be between 1 and 65535, inclusive",
    ]
    dup = service(
        ports=[
            {"port": 80, "protocol": "TCP", "name": "a"},
            {"port": 81, "protocol": "TCP", "name": "a"},
        ]
    )
    assert msgs(validate_create(SERVICE, dup)) == ['spec.ports[1].name: Duplicate value: "a"']


def test_service_type_and_node_port() -> None:
    assert msgs(validate_create(SERVICE, service(type="Public"))) == [
        'spec.type: Unsupported value: "Public": supported values: "ClusterIP", "ExternalName", '
        '"LoadBalancer", "NodePort"'
    ]
    s = service()
    s["spec"]["ports"][0]["nodePort"] = 30001
    assert msgs(validate_create(SERVICE, s)) == [
        "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
    ]


def test_service_cluster_ip() -> None:
    assert msgs(validate_create(SERVICE, service(clusterIP="10.0.0.300"))) == [
        'spec.clusterIPs[0]: Invalid value: "10.0.0.300": must be a valid IP address, (e.g. '
        "10.9.8.7 or 2001:db8::ffff)"
    ]


def test_service_cluster_ip_immutable() -> None:
    old = service(clusterIP="10.96.0.10", clusterIPs=["10.96.0.10"])
    new = service(clusterIP="10.96.0.20", clusterIPs=["10.96.0.20"])
    errs = validate_update(SERVICE, new, old)
    assert [(e.field, e.detail) for e in errs] == [
        ("spec.clusterIPs[0]", "may not change once set")
    ]
    assert validate_update(SERVICE, service(), old) == []  # omitted: kept from the old object


# ---------------------------------------------------------------- config, secrets, namespaces


def test_config_map_keys_and_immutable() -> None:
    cm_res = res("v1", "ConfigMap")
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg", "namespace": "default"},
        "data": {"app.conf": "x"},
    }
    assert validate_create(cm_res, cm) == []
    bad = copy.deepcopy(cm)
    bad["data"] = {"a/b": "x", "..": "y"}
    out = msgs(validate_create(cm_res, bad))
    assert out[0].startswith('data[a/b]: Invalid value: "a/b": a valid config key must consist')
    assert out[-1] == "data[..]: Invalid value: \"..\": must not be '..'"
    old = dict(cm, immutable=True)
    new = dict(cm, immutable=True, data={"app.conf": "y"})
    assert msgs(validate_update(cm_res, new, old)) == [
        "data: Forbidden: field is immutable when `immutable` is set"
    ]
    assert msgs(validate_update(cm_res, dict(cm, immutable=False), old)) == [
        "immutable: Forbidden: field is immutable when `immutable` is set"
    ]


def test_secret_types() -> None:
    sec_res = res("v1", "Secret")
    tls = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": "tls", "namespace": "default"},
        "data": {"tls.crt": "Y2VydA=="},
    }
    assert msgs(validate_create(sec_res, tls)) == ["data[tls.key]: Required value"]
    tls["stringData"] = {"tls.key": "key"}
    assert validate_create(sec_res, tls) == []
    old = dict(tls, type="Opaque")
    assert msgs(validate_update(sec_res, tls, old)) == [
        'type: Invalid value: "kubernetes.io/tls": field is immutable'
    ]


def test_namespace_names() -> None:
    ns_res = res("v1", "Namespace")
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team.a"}}
    assert msgs(validate_create(ns_res, ns)) == [
        'metadata.name: Invalid value: "team.a": must not contain dots'
    ]
    ns["metadata"] = {"name": "team-a", "namespace": "default"}
    assert msgs(validate_create(ns_res, ns)) == [
        "metadata.namespace: Forbidden: not allowed on this type"
    ]


def test_node_taints() -> None:
    node_res = res("v1", "Node")
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "worker-1"},
        "spec": {
            "taints": [
                {"key": "gpu", "effect": "Sometimes"},
                {"key": "gpu", "effect": "NoSchedule", "value": "a"},
                {"key": "gpu", "effect": "NoSchedule", "value": "b"},
            ]
        },
    }
    out = msgs(validate_create(node_res, node))
    assert out[0] == (
        'metadata.taints[0].effect: Unsupported value: "Sometimes": supported values: '
        '"NoSchedule", "PreferNoSchedule", "NoExecute"'
    )
    assert out[1].startswith("metadata.taints[2]: Duplicate value: ")
    assert out[1].endswith(": taints must be unique by key and effect pair")


def test_core_v1_event() -> None:
    ev_res = res("v1", "Event")
    ev = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "web.17a", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "other"},
        "reason": "Started",
        "message": "ok",
        "type": "Normal",
    }
    assert msgs(validate_create(ev_res, ev)) == [
        'involvedObject.namespace: Invalid value: "other": does not match event.namespace'
    ]
    ev["involvedObject"]["namespace"] = "default"
    assert validate_create(ev_res, ev) == []


@pytest.mark.parametrize("kind", ["Pod", "Service", "ConfigMap", "Secret", "ServiceAccount"])
def test_generic_fallbacks_never_crash_on_junk(kind: str) -> None:
    r = res("v1", kind)
    for junk in ({}, {"metadata": None, "spec": 5}, {"metadata": {"name": 3}, "spec": []}):
        assert isinstance(validate_create(r, junk), list)  # type: ignore[arg-type]
        assert isinstance(validate_update(r, junk, junk), list)  # type: ignore[arg-type]


def test_service_type_change_drops_node_ports() -> None:
    from pyk8s.api.validation import drop_type_dependent_fields

    old = service(type="NodePort", externalTrafficPolicy="Cluster", clusterIP="10.96.0.7")
    old["spec"]["ports"][0]["nodePort"] = 30080
    new = copy.deepcopy(old)
    new["spec"]["type"] = "ClusterIP"
    assert validate_update(SERVICE, new, old) == []
    dropped = drop_type_dependent_fields(new, old)
    assert "nodePort" not in dropped["spec"]["ports"][0]
    assert "externalTrafficPolicy" not in dropped["spec"]
    assert new["spec"]["ports"][0]["nodePort"] == 30080  # the input is untouched


def test_events_k8s_io_event_is_strict() -> None:
    ev_res = res("events.k8s.io/v1", "Event")
    ev = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "web.17a", "namespace": "default"},
        "regarding": {"kind": "Pod", "name": "web", "namespace": "default"},
        "eventTime": "2025-01-01T00:00:00.000000Z",
        "reason": "Scheduled",
        "note": "ok",
        "type": "Normal",
        "reportingController": "default-scheduler",
        "reportingInstance": "default-scheduler-node-1",
        "action": "Binding",
    }
    assert validate_create(ev_res, ev) == []
    del ev["action"]
    ev["type"] = "Info"
    assert msgs(validate_create(ev_res, ev)) == [
        "action: Required value",
        'type: Invalid value: "": has invalid value: Info',
    ]
