"""The webhook admission plugins against a fake webhook client, and the validation and
defaults of webhook configurations: what the integration tests cannot reach (stored
configurations a v1 API server no longer accepts, v1beta1-only webhooks, every refusal
text) or need not start a server for."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from pyk8s.api import errors
from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.api.validation.webhooks import (
    default_webhook_configuration,
    validate_webhook_configuration,
    validate_webhook_configuration_update,
)
from pyk8s.apiserver.admission import CREATE, DELETE, Attributes, Chain, Context
from pyk8s.apiserver.admission.webhooks import (
    MutatingAdmissionWebhook,
    ValidatingAdmissionWebhook,
    WebhookMetrics,
)
from pyk8s.apiserver.authn import UserInfo
from pyk8s.apiserver.authz import Decision, RequestAttributes
from pyk8s.apiserver.webhook import WebhookConnectError

JSON = dict[str, Any]
GROUP = "admissionregistration.k8s.io"
USER = UserInfo("alice", groups=("system:authenticated",))


def res(group: str, version: str, plural: str) -> Resource:
    r = REGISTRY.get(group, version, plural)
    assert r is not None
    return r


CONFIGMAPS = res("", "v1", "configmaps")
HPA_V1 = res("autoscaling", "v1", "horizontalpodautoscalers")
HPA_V2 = res("autoscaling", "v2", "horizontalpodautoscalers")
VWC = res(GROUP, "v1", "validatingwebhookconfigurations")


class Reader:
    """Configurations and namespaces as the watch cache would hold them."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], list[JSON]] = {}

    def add(self, group: str, plural: str, obj: JSON) -> None:
        obj.setdefault("metadata", {}).setdefault("resourceVersion", "1")
        self.objects.setdefault((group, plural), []).append(obj)

    async def get(self, group: str, plural: str, namespace: str, name: str) -> JSON | None:
        return self.cached(group, plural, namespace, name)

    def cached(self, group: str, plural: str, namespace: str, name: str) -> JSON | None:
        for o in self.objects.get((group, plural), []):
            if o["metadata"]["name"] == name:
                return o
        return None

    def list(self, group: str, plural: str, namespace: str | None = None) -> list[JSON]:
        return list(self.objects.get((group, plural), []))


class Client:
    """Answers reviews by webhook name; records what was sent."""

    def __init__(self) -> None:
        self.answers: dict[str, Any] = {}
        self.sent: list[tuple[str, JSON, float]] = []

    async def post(
        self,
        cfg: JSON,
        hint: str,
        body: JSON,
        *,
        timeout: float,  # noqa: ASYNC109 - the client's signature
        webhook_name: str,
    ) -> JSON:
        self.sent.append((webhook_name, body, timeout))
        answer = self.answers.get(webhook_name, {"allowed": True})
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(body)  # type: ignore[no-any-return]
        return {
            "apiVersion": body["apiVersion"],
            "kind": "AdmissionReview",
            "response": {"uid": body["request"]["uid"], **answer},
        }

    async def close(self) -> None:
        pass


def hook(name: str, resources: list[str] | None = None, **extra: Any) -> JSON:
    spec = {
        "name": name,
        "clientConfig": {"url": "https://hook.example/x"},
        "rules": [
            {
                "operations": ["*"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": resources or ["configmaps"],
            }
        ],
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        **extra,
    }
    default_webhook_configuration({"webhooks": [spec]}, mutating=True)
    return spec


def setup(
    kind: str, *hooks: JSON, name: str = "config"
) -> tuple[Reader, Client, Context, CollectorRegistry]:
    reader, client, registry = Reader(), Client(), CollectorRegistry()
    reader.add(GROUP, kind, {"metadata": {"name": name}, "webhooks": list(hooks)})
    context = Context(
        reader,
        registry=REGISTRY,
        webhook_client=client,
        webhook_metrics=WebhookMetrics(registry),
    )
    return reader, client, context, registry


def attrs(obj: JSON | None = None, *, op: str = CREATE, dry_run: bool = False) -> Attributes:
    return Attributes(
        op,
        CONFIGMAPS,
        "ns",
        "cm",
        obj if obj is not None or op == DELETE else {"metadata": {"name": "cm"}},
        None,
        USER,
        dry_run=dry_run,
    )


def patch(ops: list[JSON]) -> JSON:
    return {
        "allowed": True,
        "patchType": "JSONPatch",
        "patch": base64.b64encode(json.dumps(ops).encode()).decode(),
    }


# --------------------------------------------------------------------------- dispatch


@pytest.mark.parametrize("side_effects", ["Unknown", "Some"])
async def test_dry_run_is_refused_for_webhooks_with_side_effects(side_effects: str) -> None:
    """Configurations stored before v1 may say Unknown/Some; a dry run must not reach them."""
    _, client, context, _ = setup(
        "validatingwebhookconfigurations", hook("fx.example.com", sideEffects=side_effects)
    )
    with pytest.raises(errors.StatusError) as caught:
        await ValidatingAdmissionWebhook(context).validate(attrs(dry_run=True))
    assert (caught.value.code, caught.value.reason) == (400, "BadRequest")
    assert caught.value.message == 'admission webhook "fx.example.com" does not support dry run'
    assert client.sent == []


async def test_v1beta1_only_webhooks_get_a_v1beta1_review() -> None:
    _, client, context, _ = setup(
        "validatingwebhookconfigurations",
        hook("old.example.com", admissionReviewVersions=["v1beta1"]),
    )
    # a v1beta1 answer's uid and kind are not checked, as upstream
    client.answers["old.example.com"] = lambda body: {"response": {"allowed": True}}
    await ValidatingAdmissionWebhook(context).validate(attrs())
    assert client.sent[0][1]["apiVersion"] == "admission.k8s.io/v1beta1"


@pytest.mark.parametrize(
    ("result", "code", "reason", "message"),
    [
        ({"code": 200, "message": "no"}, 400, "", "denied the request: no"),
        ({"reason": "NotAllowed"}, 400, "NotAllowed", "denied the request: NotAllowed"),
        (None, 400, "", "denied the request without explanation"),
        (
            {"code": 409, "reason": "Conflict", "message": "busy"},
            409,
            "Conflict",
            "denied the request: busy",
        ),
    ],
)
async def test_denial_status(result: Any, code: int, reason: str, message: str) -> None:
    _, client, context, registry = setup(
        "validatingwebhookconfigurations", hook("deny.example.com")
    )
    client.answers["deny.example.com"] = {"allowed": False, "status": result}
    with pytest.raises(errors.StatusError) as caught:
        await ValidatingAdmissionWebhook(context).validate(attrs())
    assert (caught.value.code, caught.value.reason) == (code, reason)
    assert caught.value.message == f'admission webhook "deny.example.com" {message}'
    metrics = generate_latest(registry).decode()
    assert (
        'apiserver_admission_webhook_rejection_count{error_type="no_error",name="deny.example.com",'
        f'operation="CREATE",rejection_code="{code}",type="validate"}} 1.0'
    ) in metrics


async def test_the_first_refusal_in_webhook_order_wins() -> None:
    _, client, context, _ = setup(
        "validatingwebhookconfigurations", hook("a.example.com"), hook("b.example.com")
    )
    for n in ("a", "b"):
        client.answers[f"{n}.example.com"] = {"allowed": False, "status": {"message": n}}
    with pytest.raises(
        errors.StatusError, match=re.escape('"a.example.com" denied the request: a')
    ):
        await ValidatingAdmissionWebhook(context).validate(attrs())
    assert sorted(name for name, _, _ in client.sent) == ["a.example.com", "b.example.com"]


@pytest.mark.parametrize(
    ("response", "why"),
    [
        ({"allowed": True, "patch": "W10=", "patchType": "JSONPatch"},
         "validating webhook may not return response.patch"),
        ({"allowed": True, "patchType": "JSONPatch"},
         "validating webhook may not return response.patchType"),
    ],
)  # fmt: skip
async def test_validating_webhooks_may_not_patch(response: JSON, why: str) -> None:
    _, client, context, _ = setup("validatingwebhookconfigurations", hook("v.example.com"))
    client.answers["v.example.com"] = response
    with pytest.raises(errors.StatusError) as caught:
        await ValidatingAdmissionWebhook(context).validate(attrs())
    assert caught.value.code == 500
    assert caught.value.message == (
        'Internal error occurred: failed calling webhook "v.example.com": received invalid '
        f"webhook response: {why}"
    )


async def test_wrong_kind_in_a_v1_answer() -> None:
    _, client, context, _ = setup("validatingwebhookconfigurations", hook("v.example.com"))
    client.answers["v.example.com"] = lambda body: {
        "apiVersion": "admission.k8s.io/v1beta1",
        "kind": "AdmissionReview",
        "response": {"uid": body["request"]["uid"], "allowed": True},
    }
    want = (
        "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got "
        "admission.k8s.io/v1beta1, Kind=AdmissionReview"
    )
    with pytest.raises(errors.StatusError, match=re.escape(want)):
        await ValidatingAdmissionWebhook(context).validate(attrs())


async def test_ignore_fails_open_and_counts_it() -> None:
    down = WebhookConnectError("down.example.com", 'Post "https://hook.example/x?timeout=10s": EOF')
    _, client, context, registry = setup(
        "validatingwebhookconfigurations", hook("down.example.com", failurePolicy="Ignore")
    )
    client.answers["down.example.com"] = down
    request = attrs()
    await ValidatingAdmissionWebhook(context).validate(request)
    assert request.audit_annotations == {
        "failed-open.validating.webhook.admission.k8s.io/round_0_index_0": "down.example.com"
    }
    metrics = generate_latest(registry).decode()
    assert (
        'apiserver_admission_webhook_fail_open_count{name="down.example.com",type="validate"} 1.0'
    ) in metrics
    assert (
        'apiserver_admission_webhook_request_total{code="503",name="down.example.com",'
        'operation="CREATE",rejected="false",type="validate"} 1.0'
    ) in metrics


async def test_configuration_objects_are_never_sent() -> None:
    _, client, context, _ = setup(
        "validatingwebhookconfigurations",
        {**hook("all.example.com"), "rules": [{"operations": ["*"], "apiGroups": ["*"],
         "apiVersions": ["*"], "resources": ["*"], "scope": "*"}]},
    )  # fmt: skip
    plugin = ValidatingAdmissionWebhook(context)
    request = Attributes(CREATE, VWC, "", "x", {"metadata": {"name": "x"}}, None, USER)
    assert not plugin.handles(request)
    await plugin.validate(attrs())
    assert [name for name, _, _ in client.sent] == ["all.example.com"]


async def test_a_delete_cannot_be_patched() -> None:
    _, client, context, _ = setup("mutatingwebhookconfigurations", hook("m.example.com"))
    client.answers["m.example.com"] = patch([{"op": "add", "path": "/x", "value": 1}])
    request = attrs(op=DELETE)
    request.old = {"metadata": {"name": "cm"}}
    with pytest.raises(errors.StatusError) as caught:
        await MutatingAdmissionWebhook(context).admit(request)
    assert caught.value.message == (
        'Internal error occurred: admission webhook "m.example.com" attempted to modify the '
        "object, which is not supported for this operation"
    )


async def test_matched_through_an_equivalent_resource() -> None:
    """A rule for autoscaling/v1 HPAs sees a v2 request as v1, and its patch lands."""
    spec = hook("hpa.example.com")
    spec["rules"] = [
        {
            "operations": ["CREATE"],
            "apiGroups": ["autoscaling"],
            "apiVersions": ["v1"],
            "resources": ["horizontalpodautoscalers"],
            "scope": "*",
        }
    ]
    _, client, context, _ = setup("mutatingwebhookconfigurations", spec)
    client.answers["hpa.example.com"] = patch(
        [{"op": "replace", "path": "/spec/targetCPUUtilizationPercentage", "value": 55}]
    )
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "ns"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "maxReplicas": 3,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 80},
                    },
                }
            ],
        },
    }
    request = Attributes(CREATE, HPA_V2, "ns", "web", hpa, None, USER)
    await MutatingAdmissionWebhook(context).admit(request)
    sent = client.sent[0][1]["request"]
    assert sent["kind"] == {
        "group": "autoscaling",
        "version": "v1",
        "kind": "HorizontalPodAutoscaler",
    }
    assert sent["requestKind"]["version"] == "v2"
    assert sent["object"]["apiVersion"] == "autoscaling/v1"
    assert sent["object"]["spec"]["targetCPUUtilizationPercentage"] == 80
    assert request.obj is hpa  # changed in place, still at the request's version
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["metrics"][0]["resource"]["target"]
    assert target["averageUtilization"] == 55


async def test_reinvocation_reruns_the_chain_once() -> None:
    first = hook("first.example.com", reinvocationPolicy="IfNeeded")
    second = hook("second.example.com")
    _, client, context, _ = setup("mutatingwebhookconfigurations", first, second)

    def add(key: str) -> Any:
        def answer(body: JSON) -> JSON:
            labels = body["request"]["object"]["metadata"].get("labels") or {}
            response: JSON = {"uid": body["request"]["uid"], "allowed": True}
            if key not in labels:
                response.update(patch([{"op": "add", "path": "/metadata/labels",
                                        "value": {**labels, key: "1"}}]))  # fmt: skip
            return {
                "apiVersion": body["apiVersion"],
                "kind": "AdmissionReview",
                "response": response,
            }

        return answer

    client.answers["first.example.com"] = add("first")
    client.answers["second.example.com"] = add("second")
    request = attrs()
    await Chain([MutatingAdmissionWebhook(context)]).admit(request)
    assert [name for name, _, _ in client.sent] == [
        "first.example.com",
        "second.example.com",
        "first.example.com",
    ]
    assert request.obj is not None
    assert request.obj["metadata"]["labels"] == {"first": "1", "second": "1"}
    key = "mutation.webhook.admission.k8s.io/round_{}_index_{}"
    assert request.audit_annotations == {
        key.format(0, 0): '{"configuration":"config","webhook":"first.example.com","mutated":true}',
        key.format(
            0, 1
        ): '{"configuration":"config","webhook":"second.example.com","mutated":true}',
        key.format(
            1, 0
        ): '{"configuration":"config","webhook":"first.example.com","mutated":false}',
    }


async def test_warnings_and_audit_annotations_are_kept() -> None:
    _, client, context, _ = setup("validatingwebhookconfigurations", hook("w.example.com"))
    client.answers["w.example.com"] = {
        "allowed": True,
        "warnings": ["mind the gap", "mind the gap"],
        "auditAnnotations": {"checked": "yes"},
    }
    request = attrs()
    await ValidatingAdmissionWebhook(context).validate(request)
    assert request.warnings == ["mind the gap"]
    assert request.audit_annotations == {"w.example.com/checked": "yes"}


class Authorizer:
    """Allows alice to create config maps, nothing else; records what it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, RequestAttributes]] = []

    async def authorize(self, user: UserInfo, request: RequestAttributes) -> Decision:
        self.asked.append((user.name, request))
        if (user.name, request.verb, request.resource) == ("alice", "create", "configmaps"):
            return Decision.allow()
        return Decision(False, "no")


@pytest.mark.parametrize(("resource", "called"), [("configmaps", True), ("secrets", False)])
async def test_match_conditions_may_ask_the_authorizer(resource: str, called: bool) -> None:
    expression = f"authorizer.group('').resource('{resource}').namespace('ns').check('create')"
    spec = hook(
        "authz.example.com",
        matchConditions=[{"name": "may-create", "expression": expression + ".allowed()"}],
    )
    reader, client, registry = Reader(), Client(), CollectorRegistry()
    reader.add(
        GROUP, "validatingwebhookconfigurations", {"metadata": {"name": "c"}, "webhooks": [spec]}
    )
    authz = Authorizer()
    context = Context(
        reader,
        registry=REGISTRY,
        authorizer=authz,
        webhook_client=client,
        webhook_metrics=WebhookMetrics(registry),
    )
    await ValidatingAdmissionWebhook(context).validate(attrs())
    assert bool(client.sent) is called
    assert [(u, a.verb, a.resource, a.namespace) for u, a in authz.asked] == [
        ("alice", "create", resource, "ns")
    ]


# --------------------------------------------------------------------------- configurations


def config(*hooks: JSON) -> JSON:
    return {"metadata": {"name": "c"}, "webhooks": list(hooks)}


def messages(errs: list[errors.FieldError]) -> list[str]:
    return [str(e) for e in errs]


def test_defaults() -> None:
    spec = {"name": "a.b.c", "clientConfig": {"service": {"namespace": "n", "name": "s"}},
            "rules": [{"operations": ["CREATE"]}]}  # fmt: skip
    obj = config(spec)
    default_webhook_configuration(obj, mutating=True)
    assert spec["failurePolicy"] == "Fail"
    assert spec["matchPolicy"] == "Equivalent"
    assert spec["namespaceSelector"] == {} and spec["objectSelector"] == {}
    assert spec["timeoutSeconds"] == 10
    assert spec["reinvocationPolicy"] == "Never"
    assert spec["rules"][0]["scope"] == "*"
    assert spec["clientConfig"]["service"]["port"] == 443


def test_validation_messages() -> None:
    good = hook("a.example.com")
    assert validate_webhook_configuration(config(good), mutating=True) == []
    bad = {
        **good,
        "rules": [{"operations": ["CREATE", "*"], "apiGroups": [], "apiVersions": ["v1"],
                   "resources": ["*", "pods"], "scope": "Everywhere"}],
        "failurePolicy": "Maybe",
        "clientConfig": {"url": "https://h/x", "service": {"namespace": "n", "name": "s"}},
        "sideEffects": "Some",
    }  # fmt: skip
    assert messages(validate_webhook_configuration(config(bad, good), mutating=True)) == [
        'webhooks[0].rules[0].operations: Invalid value: []string{"CREATE", "*"}: if \'*\' is '
        "present, must not specify other operations",
        "webhooks[0].rules[0].apiGroups: Required value",
        'webhooks[0].rules[0].resources: Invalid value: []string{"*", "pods"}: if \'*\' is '
        "present, must not specify other resources without subresources",
        'webhooks[0].rules[0].scope: Unsupported value: "Everywhere": supported values: "*", '
        '"Cluster", "Namespaced"',
        'webhooks[0].failurePolicy: Unsupported value: "Maybe": supported values: "Fail", "Ignore"',
        'webhooks[0].sideEffects: Unsupported value: "Some": supported values: "None", '
        '"NoneOnDryRun"',
        "webhooks[0].clientConfig: Required value: exactly one of url or service is required",
        'webhooks[1].name: Duplicate value: "a.example.com"',
    ]


def test_an_update_tolerates_what_the_stored_object_already_had() -> None:
    old = config({**hook("a.example.com"), "sideEffects": "Unknown"})
    new = json.loads(json.dumps(old))
    new["metadata"]["resourceVersion"] = old["metadata"].get("resourceVersion")
    assert validate_webhook_configuration_update(new, old, mutating=False) == []
    assert messages(validate_webhook_configuration(new, mutating=False)) == [
        'webhooks[0].sideEffects: Unsupported value: "Unknown": supported values: "None", '
        '"NoneOnDryRun"'
    ]
