"""ServiceAccount: a pod runs as ``default`` unless it names an account, and gets the
``kube-api-access-xxxxx`` token volume unless automount is off (upstream's plugin)."""

from __future__ import annotations

import random

from pyk8s.apiserver.admission import JSON, Attributes, PodCreatePlugin, Reader


class ServiceAccount(PodCreatePlugin):
    name = "ServiceAccount"

    async def admit(self, attrs: Attributes) -> bool:
        assert attrs.obj is not None
        return await service_account(attrs.obj, self.reader)


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


async def service_account(pod: JSON, reader: Reader) -> bool:
    """Default the service account and, unless automount is off (pod or account), add
    the ``kube-api-access-xxxxx`` token volume and mount it in every container; whether
    anything was added."""
    spec = pod.setdefault("spec", {})
    sa = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    changed = bool(spec.get("serviceAccountName") != sa or spec.get("serviceAccount") != sa)
    spec["serviceAccountName"] = sa
    spec["serviceAccount"] = sa
    automount = spec.get("automountServiceAccountToken")
    if automount is None:
        ns = pod.get("metadata", {}).get("namespace", "")
        account = reader.cached("", "serviceaccounts", ns, sa)
        automount = (account or {}).get("automountServiceAccountToken")
    if automount is False:
        return changed
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    if any(
        m.get("mountPath") == SERVICE_ACCOUNT_MOUNT
        for c in containers
        for m in c.get("volumeMounts") or []
    ):
        return changed
    # upstream's utilrand.String: a name suffix, not a secret (no system entropy per pod)
    name = "kube-api-access-" + "".join(random.choices(_NAME_ALPHABET, k=5))
    spec.setdefault("volumes", []).append(_token_volume(name))
    for c in containers:
        c.setdefault("volumeMounts", []).append(
            {"name": name, "readOnly": True, "mountPath": SERVICE_ACCOUNT_MOUNT}
        )
    return True
