"""The admission chain's shape: upstream's default plugins in upstream's order, the
enable/disable flags, and the two phases (every mutating plugin before any validating one)."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from pyk8s.api.registry import REGISTRY
from pyk8s.apiserver.admission import (
    CREATE,
    DELETE,
    Attributes,
    Chain,
    Plugin,
    UnknownPlugin,
    enabled_plugins,
)
from pyk8s.apiserver.authn import UserInfo

PODS = REGISTRY.get("", "v1", "pods")


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

    async def admit(self, attrs: Attributes) -> None:
        if self.mutate:
            self.log.append(f"admit {self.tag}")

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
