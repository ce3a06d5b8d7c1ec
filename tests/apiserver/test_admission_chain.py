"""The admission chain's shape: upstream's default plugins in upstream's order, the
enable/disable flags, and the two phases (every mutating plugin before any validating one)."""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import pytest

from pyk8s.api.registry import REGISTRY
from pyk8s.apiserver.admission import (
    CREATE,
    DELETE,
    JSON,
    Attributes,
    Chain,
    Context,
    Plugin,
    UnknownPlugin,
    build_chain,
    enabled_plugins,
)
from pyk8s.apiserver.authn import UserInfo

PODS = REGISTRY.get("", "v1", "pods")
CLAIMS = REGISTRY.get("", "v1", "persistentvolumeclaims")


def test_defaults_are_upstreams_in_upstreams_order() -> None:
    assert enabled_plugins() == [
        "NamespaceLifecycle",
        "LimitRanger",
        "ServiceAccount",
        "PodSecurity",
        "Priority",
        "DefaultTolerationSeconds",
        "DefaultStorageClass",
        "StorageObjectInUseProtection",
        "PersistentVolumeClaimResize",
        "CertificateApproval",
        "CertificateSigning",
        "CertificateSubjectRestriction",
        "MutatingAdmissionWebhook",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionWebhook",
        "ResourceQuota",
    ]
    # upstream's certificates plugins can be turned off by name
    assert "CertificateSubjectRestriction" not in enabled_plugins(
        disable=["CertificateSubjectRestriction"]
    )


def test_enable_and_disable() -> None:
    names = enabled_plugins(enable=["AlwaysPullImages"], disable=["ServiceAccount"])
    assert "ServiceAccount" not in names
    # AlwaysPullImages takes its place in upstream's order, after ServiceAccount's slot
    assert names.index("AlwaysPullImages") == names.index("LimitRanger") + 1


def test_an_unknown_plugin_is_refused() -> None:
    with pytest.raises(UnknownPlugin, match='admission-control plugin "NoSuch" is unknown'):
        enabled_plugins(enable=["NoSuch"])


class _Recorder(Plugin):
    operations: ClassVar[frozenset[str]] = frozenset({CREATE})

    def __init__(self, name: str, log: list[str], *, mutate: bool, check: bool) -> None:
        self.tag, self.log, self.mutate, self.check = name, log, mutate, check

    async def admit(self, attrs: Attributes) -> bool:
        if self.mutate:
            self.log.append(f"admit {self.tag}")
        return False

    async def validate(self, attrs: Attributes) -> None:
        if self.check:
            self.log.append(f"validate {self.tag}")


async def test_mutating_phase_runs_before_validating_phase_and_skips_other_operations() -> None:
    log: list[str] = []
    chain = Chain(
        [
            _Recorder("a", log, mutate=True, check=True),
            _Recorder("b", log, mutate=False, check=True),
            _Recorder("c", log, mutate=True, check=False),
        ]
    )
    assert PODS is not None
    pod: dict[str, Any] = {"metadata": {"name": "p"}}
    attrs = Attributes(CREATE, PODS, "ns", "p", pod, None, UserInfo("u"))
    await chain.admit(attrs)
    await chain.validate(attrs)
    assert log == ["admit a", "admit c", "validate a", "validate b"]
    log.clear()
    attrs = Attributes(DELETE, PODS, "ns", "p", None, pod, UserInfo("u"))
    await chain.admit(attrs)
    await chain.validate(attrs)
    assert log == []


class _Cluster:
    """A Reader over a few objects by (plural, namespace, name)."""

    def __init__(self, *objs: tuple[str, JSON]) -> None:
        self.objs = {
            (plural, o["metadata"].get("namespace", ""), o["metadata"]["name"]): o
            for plural, o in objs
        }

    async def get(self, group: str, plural: str, namespace: str, name: str) -> JSON | None:
        return self.cached(group, plural, namespace, name)

    def cached(self, group: str, plural: str, namespace: str, name: str) -> JSON | None:
        return self.objs.get((plural, namespace, name))

    def list(self, group: str, plural: str, namespace: str | None = None) -> list[JSON]:
        return [o for (p, ns, _), o in self.objs.items() if p == plural and namespace in (None, ns)]


def _pod(**spec: Any) -> JSON:
    container = {"name": "c", "image": "busybox", "imagePullPolicy": "IfNotPresent"}
    return {
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {"containers": [container]} | spec,
    }


async def test_the_chain_names_the_plugins_that_changed_the_object() -> None:
    """What a pod's trace shows as mutatedBy: each mutating plugin says whether it changed
    the object (no comparison of the object around each plugin), and what it says is
    what a deep comparison finds, for every built-in mutating plugin, changing or not."""
    assert PODS is not None and CLAIMS is not None
    limits = {
        "metadata": {"name": "limits", "namespace": "ns"},
        "spec": {"limits": [{"type": "Container", "defaultRequest": {"cpu": "100m"}}]},
    }
    default_class = {
        "metadata": {
            "name": "fast",
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        }
    }
    reader = _Cluster(("limitranges", limits), ("storageclasses", default_class))
    names = enabled_plugins(enable=["AlwaysPullImages"])
    chain = build_chain(Context(reader=reader), names)

    async def admitted(resource: Any, obj: JSON) -> tuple[list[str], JSON]:
        attrs = Attributes(
            CREATE, resource, "ns", obj["metadata"]["name"], obj, None, UserInfo("u")
        )
        return await chain.admit(attrs), obj

    # a bare pod: every plugin that fills something in is named, in the chain's order
    changed, pod = await admitted(PODS, _pod())
    assert changed == [
        "LimitRanger",
        "ServiceAccount",
        "AlwaysPullImages",
        "Priority",
        "DefaultTolerationSeconds",
    ]
    # the same pod again: nothing left to fill in, nobody is named
    assert (await admitted(PODS, copy.deepcopy(pod)))[0] == []
    # a pod that says what the plugins would: only the token volume is added
    said = _pod(
        serviceAccountName="default",
        priority=0,
        tolerations=[{"operator": "Exists"}],
    )
    said["spec"]["containers"][0] |= {
        "imagePullPolicy": "Always",
        "resources": {"requests": {"cpu": "1"}},
    }
    assert (await admitted(PODS, said))[0] == ["ServiceAccount"]
    claim = {"metadata": {"name": "data", "namespace": "ns"}, "spec": {}}
    changed, claim = await admitted(CLAIMS, claim)
    assert changed == ["DefaultStorageClass", "StorageObjectInUseProtection"]
    assert (await admitted(CLAIMS, copy.deepcopy(claim)))[0] == []

    # each plugin's answer is the truth, plugin by plugin, on objects it changes and not
    inputs = [(PODS, _pod()), (PODS, pod), (PODS, said), (CLAIMS, {"metadata": {"name": "c"}})]
    inputs.append((CLAIMS, claim))
    for plugin in chain._mutating:
        for resource, obj in inputs:
            obj = copy.deepcopy(obj)
            attrs = Attributes(CREATE, resource, "ns", "x", obj, None, UserInfo("u"))
            if plugin.handles(attrs):
                before = copy.deepcopy(obj)
                assert await plugin.admit(attrs) == (obj != before), (plugin.name, before)
