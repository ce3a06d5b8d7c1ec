"""Built-in admission: what upstream's default admission plugins do to a write.

Runs after decoding and before validation, in upstream's order:

* NamespaceLifecycle: no writes into a missing namespace (404) or new objects in a
  terminating one (403 with upstream's message); the four system namespaces cannot be
  deleted.
* ServiceAccount: a pod without ``serviceAccountName`` runs as ``default``.
* DefaultTolerationSeconds: pods tolerate ``not-ready`` and ``unreachable`` NoExecute
  taints for 300 s unless they say otherwise.
* Priority: ``priorityClassName`` resolves to ``priority`` (system classes built in).

Each plugin is a small function so later issues (RBAC, quotas, limit ranges) add theirs
to the same chain.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from pyk8s.api import errors
from pyk8s.api.registry import Resource

JSON = dict[str, Any]

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

SYSTEM_PRIORITY_CLASSES = {
    "system-node-critical": 2000001000,
    "system-cluster-critical": 2000000000,
}

DEFAULT_TOLERATIONS = (
    ("node.kubernetes.io/not-ready", 300),
    ("node.kubernetes.io/unreachable", 300),
)

#: looks an object up by (resource plural, group, namespace, name); None if absent
Lookup = Callable[[str, str, str, str], Awaitable[JSON | None]]
#: lists objects of (resource plural, group)
Lister = Callable[[str, str], Awaitable[list[JSON]]]


async def namespace_lifecycle(
    resource: Resource, namespace: str, operation: str, lookup: Lookup
) -> None:
    if not resource.namespaced or not namespace:
        return
    ns = await lookup("namespaces", "", "", namespace)
    if ns is None:
        if operation == "create":
            raise errors.not_found("namespaces", namespace)
        return
    terminating = ns.get("metadata", {}).get("deletionTimestamp") or (
        ns.get("status", {}).get("phase") == "Terminating"
    )
    if terminating and operation == "create":
        raise errors.StatusError(
            403,
            "Forbidden",
            f"{resource.plural} is forbidden: unable to create new content in namespace "
            f"{namespace} because it is being terminated",
            {
                "name": "",
                "kind": resource.plural,
                "causes": [
                    {
                        "reason": "NamespaceTerminating",
                        "message": f"namespace {namespace} is being terminated",
                        "field": "metadata.namespace",
                    }
                ],
            },
        )


def protect_system_namespace(name: str) -> None:
    if name in SYSTEM_NAMESPACES:
        raise errors.forbidden_request(
            f'namespaces "{name}" is forbidden: this namespace may not be deleted'
        )


SERVICE_ACCOUNT_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
#: upstream's utilrand alphabet (no vowels, no confusable digits) for generated names
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def _token_volume(name: str) -> JSON:
    """The projected volume upstream mounts for in-cluster API access."""
    return {
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {
                    "configMap": {
                        "name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "namespace",
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                            }
                        ]
                    }
                },
            ],
        },
    }


async def service_account(pod: JSON, lookup: Lookup) -> None:
    """Default the service account and, unless automount is off (pod or account), add
    the ``kube-api-access-xxxxx`` token volume and mount it in every container."""
    spec = pod.setdefault("spec", {})
    sa = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec["serviceAccountName"] = sa
    spec["serviceAccount"] = sa
    automount = spec.get("automountServiceAccountToken")
    if automount is None:
        ns = pod.get("metadata", {}).get("namespace", "")
        account = await lookup("serviceaccounts", "", ns, sa)
        automount = (account or {}).get("automountServiceAccountToken")
    if automount is False:
        return
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    if any(
        m.get("mountPath") == SERVICE_ACCOUNT_MOUNT
        for c in containers
        for m in c.get("volumeMounts") or []
    ):
        return
    name = "kube-api-access-" + "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))
    spec.setdefault("volumes", []).append(_token_volume(name))
    for c in containers:
        c.setdefault("volumeMounts", []).append(
            {"name": name, "readOnly": True, "mountPath": SERVICE_ACCOUNT_MOUNT}
        )


def default_toleration_seconds(pod: JSON) -> None:
    spec = pod.setdefault("spec", {})
    tolerations: list[JSON] = spec.setdefault("tolerations", [])
    for key, seconds in DEFAULT_TOLERATIONS:
        if any(
            (t.get("key") == key and t.get("effect") in ("NoExecute", None, ""))
            or (not t.get("key") and t.get("operator") == "Exists")
            for t in tolerations
        ):
            continue
        tolerations.append(
            {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}
        )


async def priority(pod: JSON, lister: Lister) -> None:
    spec = pod.setdefault("spec", {})
    name = spec.get("priorityClassName")
    classes = await lister("priorityclasses", "scheduling.k8s.io")
    if not name:
        defaults = [c for c in classes if c.get("globalDefault")]
        if not defaults:
            spec.setdefault("priority", 0)
            return
        chosen = defaults[0]
        spec["priorityClassName"] = chosen["metadata"]["name"]
    elif name in SYSTEM_PRIORITY_CLASSES:
        value = SYSTEM_PRIORITY_CLASSES[name]
        if spec.get("priority") not in (None, value):
            raise _priority_mismatch()
        spec["priority"] = value
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        return
    else:
        found = [c for c in classes if c["metadata"]["name"] == name]
        if not found:
            raise errors.forbidden_request(
                f'pods "{pod.get("metadata", {}).get("name", "")}" is forbidden: '
                f"no PriorityClass with name {name} was found"
            )
        chosen = found[0]
    value = int(chosen.get("value", 0))
    if spec.get("priority") not in (None, value):
        raise _priority_mismatch()
    spec["priority"] = value
    spec.setdefault("preemptionPolicy", chosen.get("preemptionPolicy", "PreemptLowerPriority"))


def _priority_mismatch() -> errors.StatusError:
    return errors.forbidden_request(
        "the integer value of priority must not be provided in pod spec; priority admission "
        "controller computed the priority from the given PriorityClass name"
    )
