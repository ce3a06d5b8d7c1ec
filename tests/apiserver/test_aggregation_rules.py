"""APIService rules without a server: validation messages, the Table row, discovery
conversion and the order of aggregated groups, as kube-aggregator v1.32 has them."""

from __future__ import annotations

import base64
import datetime
from typing import Any

import pytest

from pyk8s.api.validation.apiregistration import (
    validate_api_service,
    validate_api_service_status_update,
    validate_api_service_update,
)
from pyk8s.apiserver.aggregator.discovery import (
    RemoteDocument,
    aggregated_items,
    api_group,
    by_group,
    resources_from_aggregated,
    resources_from_list,
)
from pyk8s.apiserver.aggregator.proxy import auth_proxy_headers
from pyk8s.apiserver.aggregator.strategy import APISERVICE_PRINTER
from pyk8s.apiserver.authn import UserInfo

JSON = dict[str, Any]
NOW = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)


def apiservice(name: str = "v1alpha1.wardle.example.com", **spec: Any) -> JSON:
    base: JSON = {
        "group": "wardle.example.com",
        "version": "v1alpha1",
        "groupPriorityMinimum": 1000,
        "versionPriority": 15,
        "service": {"namespace": "wardle", "name": "api", "port": 443},
    }
    base.update(spec)
    return {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": name, "creationTimestamp": "2026-01-01T11:55:00Z"},
        "spec": {k: v for k, v in base.items() if v is not None},
    }


def messages(obj: JSON) -> list[str]:
    return [str(e) for e in validate_api_service(obj)]


def test_a_remote_apiservice_is_valid() -> None:
    assert messages(apiservice()) == []


def test_the_core_group_is_named_v1_dot() -> None:
    local = apiservice("v1.", group="", version="v1", service=None)
    assert messages(local) == []
    wrong = apiservice("v2.", group="", version="v2", service=None)
    assert messages(wrong) == [
        "spec.group: Required value: only v1 may have an empty group and it better be legacy kube"
    ]


def test_the_name_must_be_version_dot_group() -> None:
    assert messages(apiservice("wardle")) == [
        'metadata.name: Invalid value: "wardle": '
        'must be `spec.version+"."+spec.group`: "v1alpha1.wardle.example.com"'
    ]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "groupPriorityMinimum",
            0,
            "spec.groupPriorityMinimum: Invalid value: 0: must be positive and less than 20000",
        ),
        (
            "groupPriorityMinimum",
            20001,
            "spec.groupPriorityMinimum: Invalid value: 20001: must be positive and less than 20000",
        ),
        (
            "versionPriority",
            1001,
            "spec.versionPriority: Invalid value: 1001: must be positive and less than 1000",
        ),
    ],
)
def test_priorities_are_bounded(field: str, value: int, message: str) -> None:
    assert messages(apiservice(**{field: value})) == [message]


def test_group_and_version_names() -> None:
    bad = apiservice("V1.Wardle", group="Wardle", version="V1")
    got = messages(bad)
    assert got[0].startswith('spec.group: Invalid value: "Wardle": a lowercase RFC 1123 subdomain')
    assert got[1].startswith('spec.version: Invalid value: "V1": a DNS-1035 label')


def test_local_apiservices_carry_no_tls_settings() -> None:
    pem = base64.b64encode(b"x" * 12).decode()
    local = apiservice(service=None, caBundle=pem, insecureSkipTLSVerify=True)
    assert messages(local) == [
        'spec.caBundle: Invalid value: "12 bytes": local APIServices may not have a caBundle',
        "spec.insecureSkipTLSVerify: Invalid value: true: "
        "local APIServices may not have insecureSkipTLSVerify",
    ]


def test_remote_apiservice_rules() -> None:
    pem = base64.b64encode(b"-----BEGIN CERTIFICATE-----").decode()
    bad = apiservice(service={"port": 0}, caBundle=pem, insecureSkipTLSVerify=True)
    assert messages(bad) == [
        "spec.service.namespace: Required value",
        "spec.service.name: Required value",
        "spec.service.port: Invalid value: 0: "
        "port is not valid: must be between 1 and 65535, inclusive",
        "spec.insecureSkipTLSVerify: Invalid value: true: may not be true if caBundle is present",
    ]


def test_update_keeps_the_identity_and_the_rules() -> None:
    old = apiservice()
    old["metadata"]["uid"] = "a"
    new = apiservice(versionPriority=0)
    new["metadata"]["uid"] = "b"
    assert [str(e) for e in validate_api_service_update(new, old)] == [
        'metadata.uid: Invalid value: "b": field is immutable',
        "spec.versionPriority: Invalid value: 0: must be positive and less than 1000",
    ]


def test_status_conditions_are_true_false_or_unknown() -> None:
    new = apiservice()
    new["status"] = {"conditions": [{"type": "Available", "status": "Maybe"}]}
    assert [str(e) for e in validate_api_service_status_update(new, apiservice())] == [
        'status.conditions[0].status: Unsupported value: "Maybe": '
        'supported values: "True", "False", "Unknown"'
    ]


# --------------------------------------------------------------------------- the Table


def row(obj: JSON) -> list[Any]:
    return APISERVICE_PRINTER.row(obj, NOW)


def test_table_columns() -> None:
    assert [c.name for c in APISERVICE_PRINTER.columns] == ["Name", "Service", "Available", "Age"]


def test_table_rows() -> None:
    local = apiservice("v1.apps", group="apps", version="v1", service=None)
    assert row(local) == ["v1.apps", "Local", "Unknown", "5m"]
    local["status"] = {"conditions": [{"type": "Available", "status": "True", "reason": "Local"}]}
    assert row(local)[2] == "True"
    remote = apiservice()
    remote["status"] = {
        "conditions": [{"type": "Available", "status": "False", "reason": "MissingEndpoints"}]
    }
    assert row(remote) == [
        "v1alpha1.wardle.example.com",
        "wardle/api",
        "False (MissingEndpoints)",
        "5m",
    ]
    remote["status"]["conditions"][0]["reason"] = ""
    assert row(remote)[2] == "False"


# --------------------------------------------------------------------------- discovery


def test_groups_and_versions_in_upstreams_order() -> None:
    services = [
        apiservice("v1beta1.b.example.com", group="b.example.com", version="v1beta1"),
        apiservice(
            "v1.b.example.com", group="b.example.com", version="v1", groupPriorityMinimum=100
        ),
        apiservice("v2.a.example.com", group="a.example.com", version="v2"),
        apiservice("v1.a.example.com", group="a.example.com", version="v1", versionPriority=20),
    ]
    groups = by_group(services)
    # the same highest groupPriorityMinimum: by name; versions by versionPriority first
    assert {g: [a["spec"]["version"] for a in m] for g, m in groups.items()} == {
        "a.example.com": ["v1", "v2"],
        "b.example.com": ["v1", "v1beta1"],
    }
    assert list(groups) == ["a.example.com", "b.example.com"]
    assert api_group("a.example.com", groups["a.example.com"])["preferredVersion"] == {
        "groupVersion": "a.example.com/v1",
        "version": "v1",
    }


RESOURCE_LIST = {
    "kind": "APIResourceList",
    "apiVersion": "v1",
    "groupVersion": "wardle.example.com/v1alpha1",
    "resources": [
        {
            "name": "flunders",
            "singularName": "flunder",
            "namespaced": True,
            "kind": "Flunder",
            "verbs": ["get", "list", "watch"],
            "shortNames": ["fl"],
        },
        {"name": "flunders/status", "namespaced": True, "kind": "Flunder", "verbs": ["get"]},
    ],
}


def test_a_resource_list_becomes_aggregated_discovery() -> None:
    assert resources_from_list(RESOURCE_LIST, "wardle.example.com", "v1alpha1") == [
        {
            "resource": "flunders",
            "responseKind": {
                "group": "wardle.example.com",
                "version": "v1alpha1",
                "kind": "Flunder",
            },
            "scope": "Namespaced",
            "singularResource": "flunder",
            "verbs": ["get", "list", "watch"],
            "shortNames": ["fl"],
            "subresources": [
                {
                    "subresource": "status",
                    "responseKind": {
                        "group": "wardle.example.com",
                        "version": "v1alpha1",
                        "kind": "Flunder",
                    },
                    "verbs": ["get"],
                }
            ],
        }
    ]


def test_an_aggregated_document_is_read_for_its_group_version() -> None:
    resources = [{"resource": "flunders"}]
    doc = {
        "kind": "APIGroupDiscoveryList",
        "items": [
            {
                "metadata": {"name": "wardle.example.com"},
                "versions": [{"version": "v1alpha1", "resources": resources}],
            }
        ],
    }
    assert resources_from_aggregated(doc, "wardle.example.com", "v1alpha1") == resources
    assert resources_from_aggregated(doc, "wardle.example.com", "v1") is None
    assert resources_from_aggregated({"kind": "APIGroupList"}, "wardle.example.com", "v1") is None


def test_unanswered_versions_are_stale_in_aggregated_discovery() -> None:
    groups = by_group([apiservice(), apiservice("v1.wardle.example.com", version="v1")])
    docs = {"v1alpha1.wardle.example.com": RemoteDocument([{"resource": "flunders"}])}
    meta = {"name": "wardle.example.com", "creationTimestamp": None}
    assert aggregated_items(groups, docs) == [
        {
            "metadata": meta,
            "versions": [
                {"version": "v1", "freshness": "Stale"},
                {
                    "version": "v1alpha1",
                    "resources": [{"resource": "flunders"}],
                    "freshness": "Current",
                },
            ],
        }
    ]
    assert aggregated_items(groups, {}) == [
        {
            "metadata": meta,
            "versions": [
                {"version": "v1", "freshness": "Stale"},
                {"version": "v1alpha1", "freshness": "Stale"},
            ],
        }
    ]


def test_auth_proxy_headers() -> None:
    user = UserInfo("alice", groups=("dev", "ops"), extra={"scopes/x y": ("a", "b")})
    assert auth_proxy_headers(user) == [
        ("X-Remote-User", "alice"),
        ("X-Remote-Group", "dev"),
        ("X-Remote-Group", "ops"),
        ("X-Remote-Extra-scopes%2Fx%20y", "a"),
        ("X-Remote-Extra-scopes%2Fx%20y", "b"),
    ]
