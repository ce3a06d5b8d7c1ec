"""RBAC end to end, with the real kubectl and the official Python client.

The session's server runs with pyk8s's default ``--authorization-mode=Node,RBAC`` and the
bootstrap policy. Checked here as a user sees it: the ``kubectl auth can-i`` answers of
users bound to ``view``/``edit``/``admin``/``cluster-admin`` (upstream's bootstrap policy
decides each expected answer), a service account's token refused with upstream's message
and then allowed exactly what a Role grants, privilege escalation refused (and allowed by
the ``escalate``/``bind`` verbs), impersonation, ``kubectl auth can-i --list`` and
``kubectl auth reconcile``, and the bootstrap policy itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.integration.conftest import Kubectl, RawClient, Server, free_port

ROLES = ("view", "edit", "admin", "cluster-admin")
Y, N = True, False

#: (verb, resource[, subresource]) -> allowed for view, edit, admin, cluster-admin, as
#: upstream's bootstrap policy (v1.32) grants them in a namespace
MATRIX: list[tuple[str, str, str, tuple[bool, bool, bool, bool]]] = [
    ("get", "pods", "", (Y, Y, Y, Y)),
    ("list", "pods", "", (Y, Y, Y, Y)),
    ("watch", "pods", "", (Y, Y, Y, Y)),
    ("create", "pods", "", (N, Y, Y, Y)),
    ("delete", "pods", "", (N, Y, Y, Y)),
    ("get", "pods", "log", (Y, Y, Y, Y)),
    ("create", "pods", "exec", (N, Y, Y, Y)),
    ("get", "pods", "exec", (N, Y, Y, Y)),
    ("create", "pods", "eviction", (N, Y, Y, Y)),
    ("get", "secrets", "", (N, Y, Y, Y)),
    ("list", "secrets", "", (N, Y, Y, Y)),
    ("create", "secrets", "", (N, Y, Y, Y)),
    ("get", "configmaps", "", (Y, Y, Y, Y)),
    ("update", "configmaps", "", (N, Y, Y, Y)),
    ("get", "services", "", (Y, Y, Y, Y)),
    ("create", "services", "", (N, Y, Y, Y)),
    ("get", "services", "proxy", (N, Y, Y, Y)),
    ("get", "endpoints", "", (Y, Y, Y, Y)),
    ("create", "endpoints", "", (N, N, N, Y)),
    ("list", "persistentvolumeclaims", "", (Y, Y, Y, Y)),
    ("create", "serviceaccounts", "", (N, Y, Y, Y)),
    ("impersonate", "serviceaccounts", "", (N, Y, Y, Y)),
    ("create", "serviceaccounts", "token", (N, Y, Y, Y)),
    ("get", "deployments.apps", "", (Y, Y, Y, Y)),
    ("create", "deployments.apps", "", (N, Y, Y, Y)),
    ("update", "deployments.apps", "scale", (N, Y, Y, Y)),
    ("get", "replicasets.apps", "", (Y, Y, Y, Y)),
    ("delete", "statefulsets.apps", "", (N, Y, Y, Y)),
    ("list", "daemonsets.apps", "", (Y, Y, Y, Y)),
    ("create", "jobs.batch", "", (N, Y, Y, Y)),
    ("list", "cronjobs.batch", "", (Y, Y, Y, Y)),
    ("create", "horizontalpodautoscalers.autoscaling", "", (N, Y, Y, Y)),
    ("get", "poddisruptionbudgets.policy", "", (Y, Y, Y, Y)),
    ("create", "ingresses.networking.k8s.io", "", (N, Y, Y, Y)),
    ("get", "networkpolicies.networking.k8s.io", "", (Y, Y, Y, Y)),
    ("create", "leases.coordination.k8s.io", "", (N, Y, Y, Y)),
    ("get", "events", "", (Y, Y, Y, Y)),
    ("get", "resourcequotas", "", (Y, Y, Y, Y)),
    ("create", "resourcequotas", "", (N, N, N, Y)),
    ("update", "limitranges", "", (N, N, N, Y)),
    ("create", "roles.rbac.authorization.k8s.io", "", (N, N, Y, Y)),
    ("list", "rolebindings.rbac.authorization.k8s.io", "", (N, N, Y, Y)),
    ("escalate", "roles.rbac.authorization.k8s.io", "", (N, N, N, Y)),
    ("create", "localsubjectaccessreviews.authorization.k8s.io", "", (N, N, Y, Y)),
]


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def can_i(kubectl: Kubectl, *args: str) -> bool:
    out = kubectl.run("auth", "can-i", *args, check=False)
    answer = out.stdout.strip()
    assert answer in ("yes", "no") or answer.startswith("no - "), out.stderr + out.stdout
    return answer == "yes"


def wait_until(condition: Callable[[], bool], what: str, tries: int = 100) -> None:
    """Poll until the server shows ``condition`` (RBAC follows its watch cache)."""
    for _ in range(tries):
        if condition():
            return
    raise AssertionError(f"never saw: {what}")


def _token_client(server: Server, token: str) -> client.ApiClient:
    config = client.Configuration(host=server.url)
    config.api_key = {"authorization": f"Bearer {token}"}
    config.ssl_ca_cert = str(server.data_dir / "server" / "tls" / "ca.crt")
    return client.ApiClient(config)


def _service_account_token(kubectl: Kubectl, ns: str, name: str) -> str:
    kubectl("create", "serviceaccount", name, "-n", ns)
    return kubectl("create", "token", name, "-n", ns).strip()


def _status_message(err: ApiException) -> str:
    body = json.loads(err.body)
    assert body["kind"] == "Status" and body["reason"] == "Forbidden"
    return str(body["message"])


# --------------------------------------------------------------------------- can-i matrix


def test_can_i_matrix_of_the_bootstrap_roles(kubectl: Kubectl, ns: str) -> None:
    users = {role: _name(f"u-{role}") for role in ROLES}
    for role in ("view", "edit", "admin"):
        kubectl(
            "create",
            "rolebinding",
            users[role],
            f"--clusterrole={role}",
            f"--user={users[role]}",
            "-n",
            ns,
        )
    kubectl(
        "create",
        "clusterrolebinding",
        users["cluster-admin"],
        "--clusterrole=cluster-admin",
        f"--user={users['cluster-admin']}",
    )
    for user in users.values():
        wait_until(
            lambda u=user: can_i(kubectl, "get", "pods", "-n", ns, f"--as={u}"), f"{user} bound"
        )

    def ask(job: tuple[str, str, str, str]) -> bool:
        role, verb, resource, sub = job
        extra = [f"--subresource={sub}"] if sub else []
        return can_i(kubectl, verb, resource, *extra, "-n", ns, f"--as={users[role]}")

    jobs = [(role, verb, res, sub) for verb, res, sub, _ in MATRIX for role in ROLES]
    with ThreadPoolExecutor(4) as pool:
        answers = dict(zip(jobs, pool.map(ask, jobs), strict=True))
    wrong = [
        f"{role}: {verb} {res}{'/' + sub if sub else ''}: expected {want[i]}"
        for verb, res, sub, want in MATRIX
        for i, role in enumerate(ROLES)
        if answers[(role, verb, res, sub)] != want[i]
    ]
    assert not wrong, "\n".join(wrong)
    assert len(MATRIX) >= 40

    # a RoleBinding grants nothing outside its namespace, nor at the cluster scope
    assert not can_i(kubectl, "get", "pods", "-n", "kube-system", f"--as={users['admin']}")
    assert not can_i(kubectl, "list", "nodes", f"--as={users['admin']}")
    assert can_i(kubectl, "list", "nodes", f"--as={users['cluster-admin']}")

    # as upstream, a namespace is in itself: view in it reads it, and only it
    viewer = f"--as={users['view']}"
    assert kubectl.json("get", "namespace", ns, viewer)["metadata"]["name"] == ns
    other = kubectl.run("get", "namespace", "kube-system", viewer, check=False)
    assert other.stderr.strip() == (
        'Error from server (Forbidden): namespaces "kube-system" is forbidden: User '
        f'"{users["view"]}" cannot get resource "namespaces" in API group "" in the namespace '
        '"kube-system"'
    )


def test_can_i_list_shows_the_users_rules(kubectl: Kubectl, ns: str) -> None:
    user = _name("lister")
    kubectl("create", "role", "reader", "--verb=get,list", "--resource=configmaps", "-n", ns)
    kubectl("create", "rolebinding", "reader", "--role=reader", f"--user={user}", "-n", ns)
    wait_until(lambda: can_i(kubectl, "list", "configmaps", "-n", ns, f"--as={user}"), "bound")
    out = kubectl("auth", "can-i", "--list", "-n", ns, f"--as={user}")
    rows = [line.split() for line in out.splitlines()]
    assert rows[0] == ["Resources", "Non-Resource", "URLs", "Resource", "Names", "Verbs"]
    assert ["configmaps", "[]", "[]", "[get", "list]"] in rows
    assert ["selfsubjectaccessreviews.authorization.k8s.io", "[]", "[]", "[create]"] in rows
    assert ["[/api/*]", "[]", "[get]"] in rows  # system:discovery
    assert not any(r[0] == "secrets" for r in rows)
    # the admin's cluster-admin binding: everything
    admin = [line.split() for line in kubectl("auth", "can-i", "--list").splitlines()]
    assert ["*.*", "[]", "[]", "[*]"] in admin and ["[*]", "[]", "[*]"] in admin


# --------------------------------------------------------------------------- tokens


def test_service_account_token_is_denied_then_allowed_what_the_role_grants(
    kubectl: Kubectl, server: Server, ns: str
) -> None:
    token = _service_account_token(kubectl, ns, "robot")
    user = f"system:serviceaccount:{ns}:robot"
    core = client.CoreV1Api(_token_client(server, token))

    with pytest.raises(ApiException) as denied:
        core.list_namespaced_secret("kube-system")
    assert denied.value.status == 403
    assert _status_message(denied.value) == (
        f'secrets is forbidden: User "{user}" cannot list resource "secrets" in API group "" '
        'in the namespace "kube-system"'
    )
    with pytest.raises(ApiException) as own:
        core.list_namespaced_secret(ns)
    assert own.value.status == 403

    kubectl("create", "secret", "generic", "s1", "--from-literal=k=v", "-n", ns)
    kubectl("create", "configmap", "allowed", "--from-literal=k=v", "-n", ns)
    kubectl("create", "configmap", "other", "--from-literal=k=v", "-n", ns)
    kubectl("create", "role", "secret-reader", "--verb=get,list", "--resource=secrets", "-n", ns)
    kubectl(
        "create", "role", "one-configmap", "--verb=get", "--resource=configmaps",
        "--resource-name=allowed", "-n", ns,
    )  # fmt: skip
    for role in ("secret-reader", "one-configmap"):
        kubectl(
            "create",
            "rolebinding",
            role,
            f"--role={role}",
            f"--serviceaccount={ns}:robot",
            "-n",
            ns,
        )

    def allowed() -> bool:
        try:
            core.list_namespaced_secret(ns)
        except ApiException:
            return False
        return True

    wait_until(allowed, "the RoleBinding in effect")
    assert [s.metadata.name for s in core.list_namespaced_secret(ns).items] == ["s1"]
    assert core.read_namespaced_secret("s1", ns).data == {"k": "dg=="}
    assert core.read_namespaced_config_map("allowed", ns).data == {"k": "v"}
    # ... and nothing more
    for call, message in (
        (lambda: core.list_namespaced_secret("kube-system"), 'cannot list resource "secrets"'),
        (
            lambda: core.create_namespaced_secret(ns, {"metadata": {"name": "s2"}}),
            'cannot create resource "secrets"',
        ),
        (lambda: core.delete_namespaced_secret("s1", ns), 'cannot delete resource "secrets"'),
        (lambda: core.read_namespaced_config_map("other", ns), 'cannot get resource "configmaps"'),
        (lambda: core.list_namespaced_config_map(ns), 'cannot list resource "configmaps"'),
        (lambda: core.list_namespaced_pod(ns), 'cannot list resource "pods"'),
    ):
        with pytest.raises(ApiException) as refused:
            call()
        assert refused.value.status == 403
        assert f'User "{user}" {message}' in _status_message(refused.value)
    with pytest.raises(ApiException) as refused:
        core.read_namespaced_config_map("other", ns)
    assert _status_message(refused.value) == (
        f'configmaps "other" is forbidden: User "{user}" cannot get resource "configmaps" in '
        f'API group "" in the namespace "{ns}"'
    )


def test_a_pods_default_token_reads_no_secrets(kubectl: Kubectl, server: Server, ns: str) -> None:
    """The token the kubelet mounts: the namespace's ``default`` account, bound to a pod."""
    kubectl("create", "serviceaccount", "default", "-n", ns)
    kubectl("run", "web", "--image=busybox", "--restart=Never", "-n", ns)
    token = kubectl(
        "create", "token", "default", "-n", ns, "--bound-object-kind=Pod", "--bound-object-name=web"
    ).strip()  # fmt: skip
    core = client.CoreV1Api(_token_client(server, token))
    with pytest.raises(ApiException) as denied:
        core.list_namespaced_secret("kube-system")
    assert denied.value.status == 403
    assert _status_message(denied.value) == (
        f'secrets is forbidden: User "system:serviceaccount:{ns}:default" cannot list resource '
        '"secrets" in API group "" in the namespace "kube-system"'
    )


def test_unauthenticated_requests_are_refused(server: Server) -> None:
    anon = client.CoreV1Api(_token_client(server, "no-such-token"))
    with pytest.raises(ApiException) as refused:
        anon.list_namespaced_secret("default")
    assert refused.value.status == 401


# --------------------------------------------------------------------------- escalation


def test_privilege_escalation_is_refused(kubectl: Kubectl, ns: str) -> None:
    user = _name("esc")
    kubectl("create", "rolebinding", user, "--clusterrole=admin", f"--user={user}", "-n", ns)
    wait_until(lambda: can_i(kubectl, "create", "roles", "-n", ns, f"--as={user}"), "bound")
    as_user = ("-n", ns, f"--as={user}")

    # rules the user holds: fine
    kubectl("create", "role", "pods-reader", "--verb=get", "--resource=pods", *as_user)
    kubectl("create", "rolebinding", "viewers", "--clusterrole=view", "--user=someone", *as_user)

    grab = kubectl.run(
        "create", "role", "grab", "--verb=get", "--resource=nodes", *as_user, check=False
    )
    assert grab.returncode != 0
    assert grab.stderr.strip() == (
        'Error from server (Forbidden): roles.rbac.authorization.k8s.io "grab" is forbidden: '
        f'user "{user}" (groups=["system:authenticated"]) is attempting to grant RBAC '
        "permissions not currently held:\n"
        '{APIGroups:[""], Resources:["nodes"], Verbs:["get"]}'
    )
    bind = kubectl.run(
        "create", "rolebinding", "root", "--clusterrole=cluster-admin", "--user=mallory",
        *as_user, check=False,
    )  # fmt: skip
    assert bind.returncode != 0
    assert 'rolebindings.rbac.authorization.k8s.io "root" is forbidden' in bind.stderr
    assert "is attempting to grant RBAC permissions not currently held:" in bind.stderr
    assert '{APIGroups:["*"], Resources:["*"], Verbs:["*"]}' in bind.stderr
    # an update that adds rules is refused the same way
    patched = kubectl.run(
        "patch", "role", "pods-reader", "--type=json",
        '-p=[{"op":"add","path":"/rules/-","value":{"apiGroups":[""],"resources":["nodes"],"verbs":["list"]}}]',
        *as_user, check=False,
    )  # fmt: skip
    assert patched.returncode != 0 and "not currently held" in patched.stderr

    # the escalate and bind verbs lift the check, for the roles they name
    kubectl(
        "create", "role", "escalator", "--verb=escalate",
        "--resource=roles.rbac.authorization.k8s.io", "-n", ns,
    )  # fmt: skip
    kubectl("create", "rolebinding", "escalator", "--role=escalator", f"--user={user}", "-n", ns)
    kubectl(
        "create", "clusterrole", f"{user}-binder", "--verb=bind",
        "--resource=clusterroles.rbac.authorization.k8s.io", "--resource-name=cluster-admin",
    )  # fmt: skip
    kubectl(
        "create",
        "rolebinding",
        "binder",
        f"--clusterrole={user}-binder",
        f"--user={user}",
        "-n",
        ns,
    )
    wait_until(
        lambda: can_i(kubectl, "escalate", "roles.rbac.authorization.k8s.io", *as_user), "escalate"
    )
    wait_until(
        lambda: can_i(
            kubectl, "bind", "clusterroles.rbac.authorization.k8s.io/cluster-admin", *as_user
        ),
        "bind",
    )
    kubectl("create", "role", "grab", "--verb=get", "--resource=nodes", *as_user)
    kubectl(
        "create", "rolebinding", "root", "--clusterrole=cluster-admin", "--user=mallory", *as_user
    )
    still = kubectl.run(
        "create", "rolebinding", "other", "--clusterrole=system:node", "--user=mallory",
        *as_user, check=False,
    )  # fmt: skip
    assert still.returncode != 0 and "not currently held" in still.stderr


def test_binding_to_a_missing_role_is_refused_for_users(kubectl: Kubectl, ns: str) -> None:
    user = _name("esc")
    kubectl("create", "rolebinding", user, "--clusterrole=admin", f"--user={user}", "-n", ns)
    wait_until(lambda: can_i(kubectl, "create", "rolebindings", "-n", ns, f"--as={user}"), "bound")
    out = kubectl.run(
        "create", "rolebinding", "dangling", "--clusterrole=no-such-role", "--user=x",
        "-n", ns, f"--as={user}", check=False,
    )  # fmt: skip
    assert out.returncode != 0
    assert (
        'rolebindings.rbac.authorization.k8s.io "dangling" is forbidden: '
        'clusterrole.rbac.authorization.k8s.io "no-such-role" not found'
    ) in out.stderr
    # system:masters may bind anything, as upstream
    kubectl("create", "rolebinding", "dangling", "--clusterrole=no-such-role", "--user=x", "-n", ns)


# --------------------------------------------------------------------------- impersonation


def test_impersonation_with_kubectl_as(kubectl: Kubectl, ns: str) -> None:
    review = kubectl.json("auth", "whoami", "--as=jane", "--as-group=devs", "--as-uid=u-1")
    assert review["status"]["userInfo"] == {
        "username": "jane",
        "uid": "u-1",
        "groups": ["devs", "system:authenticated"],
    }
    denied = kubectl.run("get", "pods", "-n", ns, "--as=jane", "--as-group=devs", check=False)
    assert denied.returncode != 0
    assert denied.stderr.strip() == (
        'Error from server (Forbidden): pods is forbidden: User "jane" cannot list resource '
        f'"pods" in API group "" in the namespace "{ns}"'
    )
    kubectl("create", "rolebinding", "devs-view", "--clusterrole=view", "--group=devs", "-n", ns)
    wait_until(
        lambda: can_i(kubectl, "list", "pods", "-n", ns, "--as=jane", "--as-group=devs"), "devs"
    )
    assert kubectl("get", "pods", "-n", ns, "--as=jane", "--as-group=devs") == ""
    assert not can_i(kubectl, "list", "pods", "-n", ns, "--as=jane")  # not in devs this time
    sa = kubectl.json("auth", "whoami", f"--as=system:serviceaccount:{ns}:builder")
    assert sa["status"]["userInfo"]["groups"] == [
        "system:serviceaccounts",
        f"system:serviceaccounts:{ns}",
        "system:authenticated",
    ]


def test_impersonation_needs_the_impersonate_verb(
    kubectl: Kubectl, server: Server, ns: str, tmp_path: Path
) -> None:
    token = _service_account_token(kubectl, ns, "deployer")
    kubectl(
        "create",
        "rolebinding",
        "deployer",
        "--clusterrole=edit",
        f"--serviceaccount={ns}:deployer",
        "-n",
        ns,
    )
    deployer = Kubectl(server.token_kubeconfig(token, tmp_path / "deployer.kubeconfig"))
    wait_until(lambda: can_i(deployer, "list", "pods", "-n", ns), "deployer bound")
    user = f"system:serviceaccount:{ns}:deployer"

    out = deployer.run("get", "pods", "-n", ns, "--as=jane", check=False)
    assert out.returncode != 0
    assert out.stderr.strip() == (
        f'Error from server (Forbidden): users "jane" is forbidden: User "{user}" cannot '
        'impersonate resource "users" in API group "" at the cluster scope'
    )
    # edit grants impersonating the namespace's service accounts (and only those)
    other = deployer.json("auth", "whoami", f"--as=system:serviceaccount:{ns}:other")
    assert other["status"]["userInfo"]["username"] == f"system:serviceaccount:{ns}:other"
    out = deployer.run(
        "get", "pods", "-n", ns, "--as=system:serviceaccount:kube-system:x", check=False
    )
    assert out.returncode != 0
    assert (
        f'serviceaccounts "x" is forbidden: User "{user}" cannot impersonate resource '
        '"serviceaccounts" in API group "" in the namespace "kube-system"'
    ) in out.stderr
    grouped = deployer.run(
        "get", "pods", "-n", ns, f"--as=system:serviceaccount:{ns}:other",
        "--as-group=system:masters", check=False,
    )  # fmt: skip
    assert grouped.returncode != 0
    assert 'groups "system:masters" is forbidden' in grouped.stderr


def test_impersonation_headers(raw: RawClient) -> None:
    def whoami(headers: dict[str, str]) -> Any:
        body = json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
        return raw(
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            body.encode(),
            headers=headers,
        )

    got = whoami({"Impersonate-User": "jane", "Impersonate-Extra-Scopes": "view"})
    assert got.status == 201
    assert got.json()["status"]["userInfo"] == {
        "username": "jane",
        "groups": ["system:authenticated"],
        "extra": {"scopes": ["view"]},
    }
    anonymous = whoami({"Impersonate-User": "system:anonymous"})
    assert anonymous.status == 403  # system:unauthenticated may not create reviews
    groups_only = whoami({"Impersonate-Group": "devs"})
    assert groups_only.status == 500
    assert "without impersonating a user" in groups_only.json()["message"]


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_policy(kubectl: Kubectl) -> None:
    roles = {r["metadata"]["name"]: r for r in kubectl.json("get", "clusterroles")["items"]}
    for name in (
        "cluster-admin", "admin", "edit", "view", "system:basic-user", "system:discovery",
        "system:public-info-viewer", "system:kube-scheduler", "system:kube-controller-manager",
        "system:node", "system:node-proxier", "system:kube-dns", "system:monitoring",
        "system:auth-delegator", "system:controller:deployment-controller",
        "system:controller:namespace-controller",
        "system:controller:clusterrole-aggregation-controller",
    ):  # fmt: skip
        assert name in roles, name
        meta = roles[name]["metadata"]
        assert meta["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] == "true"
        assert meta["labels"]["kubernetes.io/bootstrapping"] == "rbac-defaults"
    assert roles["view"]["aggregationRule"] == {
        "clusterRoleSelectors": [
            {"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}
        ]
    }
    assert (
        roles["edit"]["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-admin"]
        == "true"
    )
    bindings = {
        b["metadata"]["name"]: b for b in kubectl.json("get", "clusterrolebindings")["items"]
    }
    assert bindings["cluster-admin"]["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:masters"}
    ]
    assert [s["name"] for s in bindings["system:public-info-viewer"]["subjects"]] == [
        "system:authenticated",
        "system:unauthenticated",
    ]
    assert bindings["system:controller:deployment-controller"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "deployment-controller", "namespace": "kube-system"}
    ]
    wide = kubectl("get", "clusterrolebinding", "system:basic-user", "-o", "wide")
    assert "ClusterRole/system:basic-user" in wide and "system:authenticated" in wide


def test_bootstrap_policy_is_reconciled_at_start(tmp_path: Path) -> None:
    """A restarted server puts back what was taken from an autoupdate role, keeps what a
    user added, and leaves ``autoupdate: "false"`` roles alone."""
    srv = Server(tmp_path / "data", free_port()).start()
    try:
        k = Kubectl(srv.kubeconfig)
        widgets = {"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get"]}
        k("patch", "clusterrole", "system:basic-user", "--type=json", "-p",
          json.dumps([{"op": "replace", "path": "/rules", "value": [widgets]}]))  # fmt: skip
        k("annotate", "clusterrole", "system:discovery", "--overwrite",
          "rbac.authorization.kubernetes.io/autoupdate=false")  # fmt: skip
        k("patch", "clusterrole", "system:discovery", "--type=json", "-p",
          json.dumps([{"op": "replace", "path": "/rules", "value": [
              {"nonResourceURLs": ["/version"], "verbs": ["get"]}]}]))  # fmt: skip
        k("delete", "clusterrolebinding", "system:monitoring")
        srv.stop()
        srv.start()
        basic = k.json("get", "clusterrole", "system:basic-user")["rules"]
        assert basic[0] == widgets
        assert {
            "apiGroups": ["authentication.k8s.io"],
            "resources": ["selfsubjectreviews"],
            "verbs": ["create"],
        } in basic
        assert k.json("get", "clusterrole", "system:discovery")["rules"] == [
            {"nonResourceURLs": ["/version"], "verbs": ["get"]}
        ]
        assert (
            k.json("get", "clusterrolebinding", "system:monitoring")["roleRef"]["name"]
            == "system:monitoring"
        )
    finally:
        srv.stop()


def test_kubectl_auth_reconcile(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    manifest = tmp_path / "rbac.yaml"
    role: dict[str, Any] = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "app", "namespace": ns},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "app", "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "app"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "ann"}],
    }
    manifest.write_text(yaml.safe_dump_all([role, binding]))
    out = kubectl("auth", "reconcile", "-f", str(manifest))
    assert "role.rbac.authorization.k8s.io/app reconciled" in out
    assert "rolebinding.rbac.authorization.k8s.io/app reconciled" in out
    # a rule added in the file is added on the server; one only on the server is kept
    pods = {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}
    kubectl("patch", "role", "app", "-n", ns, "--type=json", "-p",
            json.dumps([{"op": "add", "path": "/rules/-", "value": pods}]))  # fmt: skip
    role["rules"].append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]})
    manifest.write_text(yaml.safe_dump_all([role, binding]))
    kubectl("auth", "reconcile", "-f", str(manifest))
    rules = kubectl.json("get", "role", "app", "-n", ns)["rules"]
    resources = sorted(r["resources"][0] for r in rules)
    assert resources == ["configmaps", "pods", "secrets"]
    wait_until(lambda: can_i(kubectl, "get", "secrets", "-n", ns, "--as=ann"), "reconciled rule")


# --------------------------------------------------------------------------- modes


def test_unknown_authorization_mode_stops_the_server(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pyk8s", "apiserver", "--data-dir", str(tmp_path),
         "--authorization-mode=Node,Foo"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1] == (
        "Error: authorization-mode 'Foo' is not a valid mode (valid: AlwaysAllow, AlwaysDeny, "
        "Node, RBAC)"
    )


def test_always_allow_mode_lets_every_authenticated_user_through(tmp_path: Path) -> None:
    srv = Server(tmp_path / "data", free_port(), extra_args=("--authorization-mode=AlwaysAllow",))
    srv.start()
    try:
        k = Kubectl(srv.kubeconfig)
        token = _service_account_token(k, "default", "anyone")
        core = client.CoreV1Api(_token_client(srv, token))
        # allowed: only the join token's Secret is there to see
        secrets = core.list_namespaced_secret("kube-system").items
        assert [s.type for s in secrets] == ["bootstrap.kubernetes.io/token"]
        # as upstream, the bootstrap policy belongs to the RBAC mode
        names = {r["metadata"]["name"] for r in k.json("get", "clusterroles")["items"]}
        assert not names & {"cluster-admin", "view", "system:basic-user"}
    finally:
        srv.stop()
