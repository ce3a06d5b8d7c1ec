"""Admission webhooks as users run them: kubectl, the official Python client, real HTTPS.

The webhooks are an HTTPS server this module runs on 127.0.0.1 with a CA it makes (the
configurations carry the ``caBundle``); each request path is one webhook whose answer a
test chooses. They are reached by ``url`` and, for one test, through a selector-less
Service whose EndpointSlice names 127.0.0.1 (the API server's service path: EndpointSlice
lookup, TLS checked against ``<svc>.<ns>.svc``). One ``e2e`` test serves a webhook from a
pod on a real kubelet.

Configurations are cluster-wide while the API server is shared by the whole session, so
every webhook here only looks at namespaces labelled with the test's own id. "Not
called" is proved by order, never by waiting: mutating webhooks run one after another,
so when the last webhook of a configuration (a catch-all ``witness``) has seen an
object, every earlier webhook that matched it has been called already.
"""

from __future__ import annotations

import base64
import http.server
import inspect
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests.controllers import conftest as controllers_fixtures
from tests.integration import pod_servers
from tests.integration.conftest import Kubectl, RawClient, Server, free_port
from tests.integration.pod_servers import run_server_pod, serve_tls
from tests.integration.test_crd_conversion import (
    Pki,
    apply,
    make_pki,
    selectorless_service,
    serve_https,
)
from tests.kubelet import node_fixtures

cm_server = controllers_fixtures.cm_server
node = node_fixtures.node
endpointslice_controller = pod_servers.endpointslice_controller

JSON = dict[str, Any]
Answer = Callable[[JSON], JSON]
SVC_NAME = "admission-hooks"


# --------------------------------------------------------------------------- the webhooks


def allow(request: JSON, **extra: Any) -> JSON:
    return {"uid": request["uid"], "allowed": True, **extra}


def deny(message: str, code: int = 403, reason: str = "Forbidden") -> Answer:
    def answer(request: JSON) -> JSON:
        return {
            "uid": request["uid"],
            "allowed": False,
            "status": {"code": code, "reason": reason, "message": message},
        }

    return answer


def json_patch(ops: list[JSON]) -> JSON:
    return {"patchType": "JSONPatch", "patch": base64.b64encode(json.dumps(ops).encode()).decode()}


def add_label(key: str, value: str) -> Answer:
    """A mutating answer that adds a label unless it is there already."""

    def answer(request: JSON) -> JSON:
        labels = (request["object"].get("metadata") or {}).get("labels")
        if labels and labels.get(key) == value:
            return allow(request)
        if labels is None:
            ops = [{"op": "add", "path": "/metadata/labels", "value": {key: value}}]
        else:
            ops = [{"op": "add", "path": f"/metadata/labels/{key}", "value": value}]
        return allow(request, **json_patch(ops))

    return answer


@dataclass
class Hooks:
    """The in-process webhook server: answers and received reviews by request path."""

    port: int
    pki: Pki
    answers: dict[str, Answer] = field(default_factory=dict)
    reviews: list[tuple[str, JSON]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: set at teardown: releases webhooks that hang to provoke a timeout
    release: threading.Event = field(default_factory=threading.Event)

    @property
    def ca_bundle(self) -> str:
        return base64.b64encode(self.pki.ca_pem).decode()

    def url(self, path: str) -> JSON:
        return {"url": f"https://127.0.0.1:{self.port}{path}", "caBundle": self.ca_bundle}

    def received(self, path: str) -> list[JSON]:
        """The AdmissionRequests ``path`` received."""
        with self.lock:
            return [r["request"] for p, r in self.reviews if p.split("?", 1)[0] == path]

    def names_seen(self, path: str) -> list[str]:
        return [str(r.get("name") or "") for r in self.received(path)]

    def queries(self, path: str) -> list[str]:
        with self.lock:
            return [p.split("?", 1)[1] for p, _ in self.reviews if p.split("?", 1)[0] == path]


def _handler(hooks: Hooks) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with hooks.lock:
                hooks.reviews.append((self.path, review))
                answer = hooks.answers.get(self.path.split("?", 1)[0], allow)
            if answer is hang:
                hooks.release.wait(60)
                return
            response = answer(review["request"])
            body = json.dumps(
                {
                    "apiVersion": review["apiVersion"],
                    "kind": "AdmissionReview",
                    "response": response,
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def hang(request: JSON) -> JSON:
    """A webhook that never answers (until the module's teardown)."""
    raise AssertionError("never called: the handler waits instead")


@pytest.fixture(scope="module")
def hooks_ns(kubectl: Kubectl) -> str:
    name = f"hooks-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    return name


@pytest.fixture(scope="module")
def hooks(tmp_path_factory: pytest.TempPathFactory, hooks_ns: str) -> Iterator[Hooks]:
    pki = make_pki(tmp_path_factory.mktemp("hooks-pki"), [f"{SVC_NAME}.{hooks_ns}.svc"])
    hooks = Hooks(0, pki)
    with serve_https(pki, _handler(hooks), "admission-hooks") as port:
        hooks.port = port
        try:
            yield hooks
        finally:
            hooks.release.set()


@dataclass
class Scope:
    """A test's own namespace (labelled with its id) and the webhooks' name suffix."""

    ns: str
    id: str

    @property
    def selector(self) -> JSON:
        return {"matchLabels": {"webhook-test": self.id}}

    def hook_name(self, short: str) -> str:
        return f"{short}.{self.id}.webhooks.test"

    def path(self, short: str) -> str:
        return f"/{self.id}/{short}"


@pytest.fixture
def scope(kubectl: Kubectl) -> Scope:
    test_id = uuid.uuid4().hex[:8]
    ns = f"wh-{test_id}"
    kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ns, "labels": {"webhook-test": test_id}},
            }
        ),
    )
    return Scope(ns, test_id)


def webhook(
    scope: Scope,
    short: str,
    client_config: JSON,
    *,
    resources: tuple[str, ...] = ("configmaps",),
    operations: tuple[str, ...] = ("CREATE", "UPDATE"),
    **extra: Any,
) -> JSON:
    """One webhook of a configuration, looking only at the test's namespace."""
    group = "apps" if resources == ("deployments",) else ""
    return {
        "name": scope.hook_name(short),
        "clientConfig": client_config,
        "rules": [
            {
                "operations": list(operations),
                "apiGroups": [group],
                "apiVersions": ["v1"],
                "resources": list(resources),
            }
        ],
        "namespaceSelector": scope.selector,
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        **extra,
    }


@pytest.fixture
def configure(kubectl: Kubectl) -> Iterator[Callable[..., str]]:
    """Create a webhook configuration (deleted after the test); returns its name."""
    made: list[tuple[str, str]] = []

    def create(kind: str, name: str, *webhooks: JSON) -> str:
        manifest = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": kind,
            "metadata": {"name": name},
            "webhooks": list(webhooks),
        }
        kubectl("create", "-f", "-", input=json.dumps(manifest))
        made.append((kind.lower(), name))
        return name

    yield create
    for kind, name in made:
        kubectl("delete", kind, name, "--ignore-not-found")


def configmap(name: str, labels: JSON | None = None, **data: str) -> str:
    meta: JSON = {"name": name}
    if labels:
        meta["labels"] = labels
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data})


def wait_called(
    kubectl: Kubectl, hooks: Hooks, scope: Scope, path: str, *, mutating: bool = False
) -> None:
    """Wait until the API server calls the webhook at ``path`` (its configuration is in
    the watch cache): dry-run probes until the webhook has seen one."""
    deadline = time.monotonic() + 30
    n = 0
    while True:
        n += 1
        name = f"probe-{n}"
        kubectl.run(
            "create", "-n", scope.ns, "--dry-run=server", "-f", "-",
            input=configmap(name), check=False,
        )  # fmt: skip
        if name in hooks.names_seen(path):
            return
        assert time.monotonic() < deadline, f"webhook {path} never called"
        time.sleep(0.1)


# --------------------------------------------------------------------------- configurations


def test_configuration_defaults_and_table(
    kubectl: Kubectl, hooks: Hooks, scope: Scope, configure: Any
) -> None:
    name = configure(
        "ValidatingWebhookConfiguration",
        f"defaults-{scope.id}",
        {
            "name": scope.hook_name("a"),
            "clientConfig": {
                "service": {"namespace": scope.ns, "name": "svc"},
                "caBundle": hooks.ca_bundle,
            },
            "rules": [
                {
                    "operations": ["CONNECT"],  # pods themselves are never CONNECTed
                    "apiGroups": [""],
                    "apiVersions": ["v1"],
                    "resources": ["pods"],
                }
            ],
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        },
    )
    got = kubectl.json("get", "validatingwebhookconfiguration", name)["webhooks"][0]
    assert got["failurePolicy"] == "Fail"
    assert got["matchPolicy"] == "Equivalent"
    assert got["namespaceSelector"] == {}
    assert got["objectSelector"] == {}
    assert got["timeoutSeconds"] == 10
    assert got["rules"][0]["scope"] == "*"
    assert got["clientConfig"]["service"]["port"] == 443
    assert "reinvocationPolicy" not in got  # mutating webhooks only
    table = kubectl("get", "validatingwebhookconfigurations", name).splitlines()
    assert table[0].split() == ["NAME", "WEBHOOKS", "AGE"]
    assert table[1].split()[:2] == [name, "1"]


def test_invalid_configuration_is_refused_with_field_paths(kubectl: Kubectl, scope: Scope) -> None:
    manifest = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": f"bad-{scope.id}"},
        "webhooks": [
            {
                "name": "short",
                "clientConfig": {"url": "http://127.0.0.1/x"},
                "timeoutSeconds": 31,
                "admissionReviewVersions": ["v2"],
                "matchConditions": [{"name": "c", "expression": "object.metadata.name =="}],
            }
        ],
    }
    out = kubectl.run("create", "-f", "-", input=json.dumps(manifest), check=False)
    assert out.returncode == 1
    err = out.stderr
    assert f'The MutatingWebhookConfiguration "bad-{scope.id}" is invalid: ' in err, err
    for text in (
        'webhooks[0].name: Invalid value: "short": should be a domain with at least three '
        "segments separated by dots",
        "webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun",
        "webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 "
        "and 30 seconds",
        "webhooks[0].clientConfig.url: Invalid value: \"http\": 'https' is the only allowed "
        "URL scheme; desired format: https://host[/path]",
        'webhooks[0].matchConditions[0].expression: Invalid value: "object.metadata.name ==": '
        "compilation failed: ERROR: <input>:1:",
        'webhooks[0].admissionReviewVersions: Invalid value: []string{"v2"}: must include at '
        "least one of v1, v1beta1",
    ):
        assert text in err, err


# --------------------------------------------------------------------------- validating


def test_validating_webhook_denies_as_kubectl_prints_it(
    kubectl: Kubectl, api: Any, hooks: Hooks, scope: Scope, configure: Any
) -> None:
    path = scope.path("deny")
    hooks.answers[path] = lambda r: (
        deny("config maps named bad-* are not allowed")(r)
        if r["name"].startswith("bad-")
        else allow(r)
    )
    configure(
        "ValidatingWebhookConfiguration",
        f"deny-{scope.id}",
        webhook(scope, "deny", hooks.url(path)),
    )
    wait_called(kubectl, hooks, scope, path)

    kubectl("create", "-n", scope.ns, "-f", "-", input=configmap("good"))
    out = kubectl.run("create", "-n", scope.ns, "-f", "-", input=configmap("bad-one"), check=False)
    assert out.returncode == 1
    assert out.stderr.strip() == (
        'Error from server (Forbidden): error when creating "STDIN": admission webhook '
        f'"{scope.hook_name("deny")}" denied the request: config maps named bad-* are not allowed'
    )
    with pytest.raises(ApiException) as caught:
        k8s.CoreV1Api(api).create_namespaced_config_map(
            scope.ns, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="bad-two"))
        )
    assert caught.value.status == 403
    body = json.loads(str(caught.value.body))
    assert body["reason"] == "Forbidden"
    assert body["message"] == (
        f'admission webhook "{scope.hook_name("deny")}" denied the request: '
        "config maps named bad-* are not allowed"
    )
    # what the webhook received: an AdmissionReview v1 with upstream's request fields
    request = next(r for r in hooks.received(path) if r["name"] == "good")
    assert request["kind"] == {"group": "", "version": "v1", "kind": "ConfigMap"}
    assert request["resource"] == {"group": "", "version": "v1", "resource": "configmaps"}
    assert request["namespace"] == scope.ns
    assert request["operation"] == "CREATE"
    assert request["dryRun"] is False
    assert request["object"]["metadata"]["name"] == "good"
    assert request["oldObject"] is None
    assert request["options"]["kind"] == "CreateOptions"
    assert request["userInfo"]["username"]
    assert hooks.queries(path)[-1] == "timeout=10s"
    kubectl("get", "configmap", "good", "-n", scope.ns)
    assert kubectl.run("get", "configmap", "bad-one", "-n", scope.ns, check=False).returncode == 1


def test_warnings_reach_kubectl_and_the_python_client(
    kubectl: Kubectl, api: Any, hooks: Hooks, scope: Scope, configure: Any
) -> None:
    path = scope.path("warn")
    hooks.answers[path] = lambda r: allow(r, warnings=[f"{r['name']} looks odd", "second thought"])
    configure(
        "ValidatingWebhookConfiguration",
        f"warn-{scope.id}",
        webhook(scope, "warn", hooks.url(path)),
    )
    wait_called(kubectl, hooks, scope, path)
    out = kubectl.run("create", "-n", scope.ns, "-f", "-", input=configmap("odd"))
    assert "Warning: odd looks odd" in out.stderr.splitlines()
    assert "Warning: second thought" in out.stderr.splitlines()
    _, status, headers = k8s.CoreV1Api(api).create_namespaced_config_map_with_http_info(
        scope.ns, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="odd-too"))
    )
    assert status == 201
    assert headers["Warning"] == '299 - "odd-too looks odd", 299 - "second thought"'


def test_warnings_come_with_a_refusal(
    kubectl: Kubectl, hooks: Hooks, scope: Scope, configure: Any
) -> None:
    path = scope.path("warn-deny")
    hooks.answers[path] = lambda r: (
        {**deny("refused")(r), "warnings": ["read the docs"]} if r["name"] == "x" else allow(r)
    )
    configure(
        "ValidatingWebhookConfiguration",
        f"warn-deny-{scope.id}",
        webhook(scope, "warn-deny", hooks.url(path)),
    )
    wait_called(kubectl, hooks, scope, path)
    out = kubectl.run("create", "-n", scope.ns, "-f", "-", input=configmap("x"), check=False)
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        "Warning: read the docs",
        'Error from server (Forbidden): error when creating "STDIN": admission webhook '
        f'"{scope.hook_name("warn-deny")}" denied the request: refused',
    ]


def test_validating_webhook_through_a_service(
    kubectl: Kubectl, hooks: Hooks, hooks_ns: str, scope: Scope, configure: Any
) -> None:
    """The service path: EndpointSlice lookup, TLS checked against <svc>.<ns>.svc."""
    apply(kubectl, hooks_ns, *selectorless_service(SVC_NAME, hooks.port))
    path = scope.path("svc")
    hooks.answers[path] = lambda r: (
        deny("through the service")(r) if r["name"] == "no" else allow(r)
    )
    client_config = {
        "service": {"namespace": hooks_ns, "name": SVC_NAME, "path": path},
        "caBundle": hooks.ca_bundle,
    }
    configure(
        "ValidatingWebhookConfiguration", f"svc-{scope.id}", webhook(scope, "svc", client_config)
    )
    wait_called(kubectl, hooks, scope, path)
    out = kubectl.run("create", "-n", scope.ns, "-f", "-", input=configmap("no"), check=False)
    assert f'"{scope.hook_name("svc")}" denied the request: through the service' in out.stderr


# --------------------------------------------------------------------------- failure policies


@pytest.mark.parametrize("policy", ["Fail", "Ignore"])
def test_unreachable_webhook_follows_its_failure_policy(
    kubectl: Kubectl, hooks: Hooks, scope: Scope, configure: Any, policy: str
) -> None:
    port = free_port()  # nobody listens there
    witness = scope.path("witness")
    # the mutating phase: the broken webhook first, then a witness proving the call happened
    configure(
        "MutatingWebhookConfiguration",
        f"down-{scope.id}",
        webhook(
            scope,
            "down",
            {"url": f"https://127.0.0.1:{port}/down", "caBundle": hooks.ca_bundle},
            failurePolicy=policy,
        ),
        webhook(scope, "witness", hooks.url(witness)),
    )
    deadline = time.monotonic() + 30
    while True:  # until the configuration is in effect (the witness is called)
        out = kubectl.run("create", "-n", scope.ns, "-f", "-", input=configmap("cm"), check=False)
        if out.returncode != 0 or "cm" in hooks.names_seen(witness):
            break
        kubectl("delete", "configmap", "cm", "-n", scope.ns)
        assert time.monotonic() < deadline
    if policy == "Ignore":
        assert out.returncode == 0, out.stderr
        assert "cm" in hooks.names_seen(witness)
        return
    assert out.returncode == 1
    assert out.stderr.strip() == (
        'Error from server (InternalError): error when creating "STDIN": Internal error '
        f'occurred: failed calling webhook "{scope.hook_name("down")}": failed to call webhook: '
        f'Post "https://127.0.0.1:{port}/down?timeout=10s": dial tcp 127.0.0.1:{port}: '
        "connect: connection refused"
    )


@pytest.mark.parametrize("policy", ["Fail", "Ignore"])
def test_webhook_timeout(
    kubectl: Kubectl, hooks: Hooks, scope: Scope, configure: Any, policy: str
) -> None:
    slow, witness = scope.path("slow"), scope.path("witness")
    hooks.answers[slow] = hang
    configure(
        "MutatingWebhookConfiguration",
        f"slow-{scope.id}",
        webhook(scope, "slow", hooks.url(slow), failurePolicy=policy, timeoutSeconds=1),
        webhook(scope, "witness", hooks.url(witness)),
    )
    deadline = time.monotonic() + 30
    while not hooks.received(slow):  # the configuration is in effect
        out = kubectl.run("create", "-n", scope.ns, "-f", "-", input=configmap("cm"), check=False)
        if out.returncode == 0:
            kubectl("delete", "configmap", "cm", "-n", scope.ns)
        assert time.monotonic() < deadline
    out = kubectl.run("create", "-n", scope.ns, "-f", "-", input=configmap("late"), check=False)
    assert hooks.queries(slow)[-1] == "timeout=1s"
    if policy == "Ignore":
        assert out.returncode == 0, out.stderr
        assert "late" in hooks.names_seen(witness)
        return
    assert out.returncode == 1
    assert out.stderr.strip() == (
        'Error from server (InternalError): error when creating "STDIN": Internal error '
        f'occurred: failed calling webhook "{scope.hook_name("slow")}": failed to call webhook: '
        f'Post "https://127.0.0.1:{hooks.port}{slow}?timeout=1s": context deadline exceeded'
    )


def test_invalid_response_is_a_call_failure(
    kubectl: Kubectl, hooks: Hooks, scope: Scope, configure: Any
) -> None:
    path = scope.path("liar")
    hooks.answers[path] = lambda r: {"uid": "not-" + r["uid"], "allowed": True}
    configure(
        "ValidatingWebhookConfiguration",
        f"liar-{scope.id}",
        webhook(scope, "liar", hooks.url(path)),
    )
    deadline = time.monotonic() + 30
    while True:
        out = kubectl.run("create", "-n", scope.ns, "-f", "-", input=configmap("x"), check=False)
        if out.returncode:
            break
        kubectl("delete", "configmap", "x", "-n", scope.ns)
        assert time.monotonic() < deadline
    uid = hooks.received(path)[-1]["uid"]
    assert (
        f'Internal error occurred: failed calling webhook "{scope.hook_name("liar")}": received '
        f'invalid webhook response: expected response.uid="{uid}", got "not-{uid}"'
    ) in out.stderr


# --------------------------------------------------------------------------- mutating


def test_mutating_webhook_patches_and_the_result_is_defaulted(
    kubectl: Kubectl, hooks: Hooks, scope: Scope, configure: Any
) -> None:
    path = scope.path("sidecar")

    def add_sidecar(request: JSON) -> JSON:
        ops = [
            {"op": "add", "path": "/metadata/labels", "value": {"injected": "yes"}},
            {
                "op": "add",
                "path": "/spec/containers/-",
                "value": {"name": "sidecar", "image": "pyk8s.local/busybox:1.35", "bogus": 1},
            },
        ]
        return allow(request, **json_patch(ops))

    hooks.answers[path] = add_sidecar
    configure(
        "MutatingWebhookConfiguration",
        f"sidecar-{scope.id}",
        webhook(scope, "sidecar", hooks.url(path), resources=("pods",), operations=("CREATE",)),
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "app"},
        "spec": {"containers": [{"name": "app", "image": "pyk8s.local/busybox:1.35"}]},
    }
    deadline = time.monotonic() + 30
    while True:
        kubectl("create", "-n", scope.ns, "-f", "-", input=json.dumps(pod))
        got = kubectl.json("get", "pod", "app", "-n", scope.ns)
        if got["metadata"].get("labels"):
            break
        kubectl("delete", "pod", "app", "-n", scope.ns, "--grace-period=0", "--force")
        assert time.monotonic() < deadline
    assert got["metadata"]["labels"] == {"injected": "yes"}
    sidecar = got["spec"]["containers"][1]
    assert sidecar["name"] == "sidecar"
    assert "bogus" not in sidecar  # decoded as a request: unknown fields dropped
    assert sidecar["imagePullPolicy"] == "IfNotPresent"  # and defaulted
    assert sidecar["terminationMessagePath"] == "/dev/termination-log"


def test_reinvocation(kubectl: Kubectl, hooks: Hooks, scope: Scope, configure: Any) -> None:
    """``IfNeeded`` is called again when a later webhook changed the object; ``Never`` not."""
    first, never, second = scope.path("first"), scope.path("never"), scope.path("second")
    hooks.answers[first] = add_label("first", "1")
    hooks.answers[never] = add_label("never", "1")
    hooks.answers[second] = add_label("second", "1")
    configure(
        "MutatingWebhookConfiguration",
        f"reinvoke-{scope.id}",
        webhook(scope, "first", hooks.url(first), reinvocationPolicy="IfNeeded"),
        webhook(scope, "never", hooks.url(never), reinvocationPolicy="Never"),
        webhook(scope, "second", hooks.url(second)),
    )
    wait_called(kubectl, hooks, scope, second)
    kubectl("create", "-n", scope.ns, "-f", "-", input=configmap("cm"))
    seen_first = [r for r in hooks.received(first) if r["name"] == "cm"]
    assert len(seen_first) == 2
    assert seen_first[1]["object"]["metadata"]["labels"] == {
        "first": "1",
        "never": "1",
        "second": "1",
    }
    assert seen_first[0]["uid"] == seen_first[1]["uid"]
    assert hooks.names_seen(never).count("cm") == 1
    assert hooks.names_seen(second).count("cm") == 1
    labels = kubectl.json("get", "configmap", "cm", "-n", scope.ns)["metadata"]["labels"]
    assert labels == {"first": "1", "never": "1", "second": "1"}


def test_denial_from_a_mutating_webhook(
    kubectl: Kubectl, hooks: Hooks, scope: Scope, configure: Any
) -> None:
    path = scope.path("no")
    hooks.answers[path] = lambda r: {"uid": r["uid"], "allowed": False}
    configure(
        "MutatingWebhookConfiguration", f"no-{scope.id}", webhook(scope, "no", hooks.url(path))
    )
    deadline = time.monotonic() + 30
    while True:
        out = kubectl.run("create", "-n", scope.ns, "-f", "-", input=configmap("x"), check=False)
        if out.returncode:
            break
        kubectl("delete", "configmap", "x", "-n", scope.ns)
        assert time.monotonic() < deadline
    assert out.stderr.strip() == (
        'Error from server: error when creating "STDIN": admission webhook '
        f'"{scope.hook_name("no")}" denied the request without explanation'
    )


# --------------------------------------------------------------------------- matching


def test_namespace_and_object_selectors(
    kubectl: Kubectl, hooks: Hooks, scope: Scope, configure: Any
) -> None:
    by_object, witness = scope.path("by-object"), scope.path("witness")
    configure(
        "MutatingWebhookConfiguration",
        f"selectors-{scope.id}",
        webhook(
            scope,
            "by-object",
            hooks.url(by_object),
            objectSelector={
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}]
            },
        ),
        webhook(scope, "witness", hooks.url(witness)),
    )
    wait_called(kubectl, hooks, scope, witness)
    kubectl("create", "-n", scope.ns, "-f", "-", input=configmap("web", {"tier": "web"}))
    kubectl("create", "-n", scope.ns, "-f", "-", input=configmap("db", {"tier": "db"}))
    assert {"web", "db"} <= set(hooks.names_seen(witness))
    assert "web" in hooks.names_seen(by_object)
    assert "db" not in hooks.names_seen(by_object)
    # an update is matched by the old object's labels too
    kubectl("label", "configmap", "web", "-n", scope.ns, "tier=cache", "--overwrite")
    updates = [r for r in hooks.received(by_object) if r["operation"] == "UPDATE"]
    assert [r["oldObject"]["metadata"]["labels"]["tier"] for r in updates] == ["web"]

    # a namespace without the test's label is not looked at by any of them
    other = f"{scope.ns}-other"
    kubectl("create", "namespace", other)
    catch_all = scope.path("catch-all")
    configure(
        "MutatingWebhookConfiguration",
        f"zz-catch-all-{scope.id}",  # sorted after the first configuration
        {
            **webhook(scope, "catch-all", hooks.url(catch_all)),
            "namespaceSelector": {
                "matchExpressions": [
                    {"key": "kubernetes.io/metadata.name", "operator": "In", "values": [other]}
                ]
            },
        },
    )
    deadline = time.monotonic() + 30
    n = 0
    while True:
        n += 1
        kubectl("create", "-n", other, "-f", "-", input=configmap(f"web-{n}", {"tier": "web"}))
        if f"web-{n}" in hooks.names_seen(catch_all):
            break
        assert time.monotonic() < deadline
    assert not any(name.startswith("web-") for name in hooks.names_seen(by_object))
    assert not any(name.startswith("web-") for name in hooks.names_seen(witness))
    kubectl("delete", "namespace", other, "--wait=false")


def test_match_conditions(kubectl: Kubectl, hooks: Hooks, scope: Scope, configure: Any) -> None:
    conditional, witness = scope.path("conditional"), scope.path("witness")
    configure(
        "MutatingWebhookConfiguration",
        f"conditions-{scope.id}",
        webhook(
            scope,
            "conditional",
            hooks.url(conditional),
            matchConditions=[
                {"name": "named-keep", "expression": "object.metadata.name.startsWith('keep-')"},
                {"name": "not-dry-run", "expression": "!request.dryRun"},
            ],
        ),
        webhook(scope, "witness", hooks.url(witness)),
    )
    wait_called(kubectl, hooks, scope, witness)
    kubectl("create", "-n", scope.ns, "-f", "-", input=configmap("keep-1"))
    kubectl("create", "-n", scope.ns, "-f", "-", input=configmap("skip-1"))
    assert {"keep-1", "skip-1"} <= set(hooks.names_seen(witness))
    assert hooks.names_seen(conditional) == ["keep-1"]


def test_match_condition_error_follows_the_failure_policy(
    kubectl: Kubectl, hooks: Hooks, scope: Scope, configure: Any
) -> None:
    path = scope.path("cond-error")
    configure(
        "ValidatingWebhookConfiguration",
        f"cond-error-{scope.id}",
        webhook(
            scope,
            "cond-error",
            hooks.url(path),
            matchConditions=[{"name": "has-data", "expression": "object.data.key == 'v'"}],
        ),
    )
    deadline = time.monotonic() + 30
    while True:  # a config map without data: the condition errors (no such key)
        out = kubectl.run(
            "create", "-n", scope.ns, "-f", "-", input=configmap("empty"), check=False
        )
        if out.returncode:
            break
        kubectl("delete", "configmap", "empty", "-n", scope.ns)
        assert time.monotonic() < deadline
    assert out.stderr.startswith(
        'Error from server (Forbidden): error when creating "STDIN": configmaps "empty" is '
        "forbidden: "
    ), out.stderr
    assert "has-data" in out.stderr


# --------------------------------------------------------------------------- dry run, metrics


def test_dry_run_reaches_webhooks_without_side_effects(
    kubectl: Kubectl, hooks: Hooks, scope: Scope, configure: Any
) -> None:
    none, on_dry_run = scope.path("none"), scope.path("on-dry-run")
    hooks.answers[none] = add_label("mutated", "yes")
    configure(
        "MutatingWebhookConfiguration",
        f"dry-{scope.id}",
        webhook(scope, "none", hooks.url(none)),
        webhook(scope, "on-dry-run", hooks.url(on_dry_run), sideEffects="NoneOnDryRun"),
    )
    wait_called(kubectl, hooks, scope, on_dry_run)
    out = kubectl(
        "create",
        "-n",
        scope.ns,
        "--dry-run=server",
        "-o",
        "json",
        "-f",
        "-",
        input=configmap("dry"),
    )
    assert json.loads(out)["metadata"]["labels"] == {"mutated": "yes"}
    for path in (none, on_dry_run):
        request = next(r for r in hooks.received(path) if r["name"] == "dry")
        assert request["dryRun"] is True
        assert request["options"]["dryRun"] == ["All"]
    assert kubectl.run("get", "configmap", "dry", "-n", scope.ns, check=False).returncode == 1


def test_metrics(
    kubectl: Kubectl, raw: RawClient, hooks: Hooks, scope: Scope, configure: Any
) -> None:
    ok, no = scope.path("ok"), scope.path("no")
    hooks.answers[no] = lambda r: (
        deny("nope", code=422, reason="Invalid")(r) if r["name"] == "x" else allow(r)
    )
    configure(
        "ValidatingWebhookConfiguration",
        f"metrics-{scope.id}",
        webhook(scope, "ok", hooks.url(ok)),
        webhook(scope, "no", hooks.url(no)),
    )
    wait_called(kubectl, hooks, scope, no)
    kubectl.run("create", "-n", scope.ns, "-f", "-", input=configmap("x"), check=False)
    text = raw("GET", "/metrics").body.decode()
    ok_name, no_name = scope.hook_name("ok"), scope.hook_name("no")
    assert (
        "apiserver_admission_webhook_admission_duration_seconds_count{"
        f'name="{ok_name}",operation="CREATE",rejected="false",type="validate"}}'
    ) in text
    assert (
        "apiserver_admission_webhook_rejection_count{"
        f'error_type="no_error",name="{no_name}",operation="CREATE",rejection_code="422",'
        'type="validate"} 1.0'
    ) in text


# --------------------------------------------------------------------------- a webhook in a pod

#: the webhook as a pod runs it: labels every config map it admits
POD_SERVER = "\n\n".join(
    [
        "from __future__ import annotations\n"
        "import base64, http.server, json, ssl\n"
        "from typing import Any\n"
        "JSON = dict[str, Any]\n"
        "Answer = Any",
        inspect.getsource(allow),
        inspect.getsource(json_patch),
        inspect.getsource(add_label),
        """
answer = add_label("from-pod", "yes")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        print("review", review["request"]["operation"], review["request"]["name"], flush=True)
        body = json.dumps({
            "apiVersion": review["apiVersion"], "kind": "AdmissionReview",
            "response": answer(review["request"]),
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
""",
        serve_tls("Handler"),
    ]
)


@pytest.mark.e2e
def test_webhook_served_from_a_pod(
    cm_server: Server, node: Any, endpointslice_controller: None, tmp_path: Path
) -> None:
    """A mutating webhook in a pod behind a Service with a selector: the EndpointSlice
    controller publishes the pod, the API server dials its pod IP."""
    kubectl = Kubectl(cm_server.kubeconfig)
    ns = f"podhook-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", ns)
    kubectl("label", "namespace", ns, f"webhook-test={ns}")
    pki = make_pki(tmp_path, [f"converter.{ns}.svc"])
    config_name = f"pod-{ns}"
    try:
        run_server_pod(kubectl, ns, "converter", node.name, POD_SERVER, pki)
        kubectl(
            "create",
            "-f",
            "-",
            input=json.dumps(
                {
                    "apiVersion": "admissionregistration.k8s.io/v1",
                    "kind": "MutatingWebhookConfiguration",
                    "metadata": {"name": config_name},
                    "webhooks": [
                        webhook(
                            Scope(ns, ns),
                            "pod",
                            {
                                "service": {"namespace": ns, "name": "converter", "path": "/"},
                                "caBundle": base64.b64encode(pki.ca_pem).decode(),
                            },
                        )
                    ],
                }
            ),
        )
        deadline = time.monotonic() + 60
        n = 0
        while True:  # until the pod is published and the configuration in effect
            n += 1
            kubectl("create", "-n", ns, "-f", "-", input=configmap(f"cm-{n}"))
            labels = kubectl.json("get", "configmap", f"cm-{n}", "-n", ns)["metadata"].get("labels")
            if labels:
                break
            assert time.monotonic() < deadline, "the webhook pod was never called"
            time.sleep(0.5)
        assert labels == {"from-pod": "yes"}
        assert f"review CREATE cm-{n}" in kubectl("logs", "converter", "-n", ns).splitlines()
    finally:
        kubectl("delete", "mutatingwebhookconfiguration", config_name, check=False)
        kubectl("delete", "namespace", ns, "--wait=false", check=False)
