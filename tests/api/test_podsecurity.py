"""Pod Security Standards against upstream's texts (k8s.io/pod-security-admission v1.32 tests)."""

from __future__ import annotations

from typing import Any

import pytest

from pyk8s.api.podsecurity import (
    AUDIT_LEVEL_LABEL,
    ENFORCE_LEVEL_LABEL,
    ENFORCE_VERSION_LABEL,
    LATEST,
    WARN_LEVEL_LABEL,
    WARN_VERSION_LABEL,
    CheckResult,
    Level,
    LevelVersion,
    PodSecurityConfig,
    Policy,
    PolicyError,
    Version,
    aggregate_results,
    check_pod,
    evaluate,
    namespace_pod_warnings,
    parse_level,
    parse_version,
    policy_to_evaluate,
)

JSON = dict[str, Any]
RESTRICTED = {ENFORCE_LEVEL_LABEL: "restricted"}

#: a pod that passes restricted:latest
GOOD_SC: JSON = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def pod(name: str = "x", *, meta: JSON | None = None, **spec: Any) -> JSON:
    spec.setdefault("containers", [{"name": "c", "image": "nginx"}])
    return {"metadata": {"name": name, **(meta or {})}, "spec": spec}


def violations(
    level: str, spec: JSON, meta: JSON | None = None, version: str = "latest"
) -> list[tuple[str, str]]:
    """(reason, detail) of every failed check, in upstream's order."""
    return [
        (r.forbidden_reason, r.forbidden_detail)
        for r in check_pod(level, version, meta or {}, spec)
        if not r.allowed
    ]


def ctrs(*containers: JSON) -> list[JSON]:
    return list(containers)


# --- labels -------------------------------------------------------------------------------


def test_levels_and_versions_parse_with_upstreams_messages() -> None:
    assert parse_level("baseline") is Level.BASELINE
    assert parse_version("latest") == LATEST
    assert parse_version("v1.25") == Version(1, 25)
    assert str(LevelVersion(Level.RESTRICTED, Version(1, 25))) == "restricted:v1.25"
    with pytest.raises(PolicyError, match=r"^must be one of privileged, baseline, restricted$"):
        parse_level("Restricted")
    for bad in ("v1", "1.25", "v2.0", "v1.05", "v1.25 ", "v1.x"):
        with pytest.raises(PolicyError, match=r'^must be "latest" or "v1\.x"$'):
            parse_version(bad)


def test_bad_label_values_are_reported_in_label_order() -> None:
    policy, errs = policy_to_evaluate(
        {
            WARN_VERSION_LABEL: "1.2",
            ENFORCE_LEVEL_LABEL: "strict",
            ENFORCE_VERSION_LABEL: "v1.30",
            AUDIT_LEVEL_LABEL: "nope",
        }
    )
    assert [str(e) for e in errs] == [
        "metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "
        '"strict": must be one of privileged, baseline, restricted',
        "metadata.labels[pod-security.kubernetes.io/audit]: Invalid value: "
        '"nope": must be one of privileged, baseline, restricted',
        "metadata.labels[pod-security.kubernetes.io/warn-version]: Invalid value: "
        '"1.2": must be "latest" or "v1.x"',
    ]
    # a bad enforce level fails closed, a bad audit level fails open
    assert policy.enforce == LevelVersion(Level.RESTRICTED, Version(1, 30))
    assert policy.audit.level is Level.PRIVILEGED


def test_warn_follows_a_stricter_enforce_label() -> None:
    policy, _ = policy_to_evaluate(
        {ENFORCE_LEVEL_LABEL: "baseline", ENFORCE_VERSION_LABEL: "v1.24"}
    )
    assert str(policy.warn) == "baseline:v1.24"
    policy, _ = policy_to_evaluate({ENFORCE_LEVEL_LABEL: "restricted", WARN_VERSION_LABEL: "v1.2"})
    assert str(policy.warn) == "restricted:v1.2"
    policy, _ = policy_to_evaluate(
        {ENFORCE_LEVEL_LABEL: "restricted", WARN_LEVEL_LABEL: "baseline"}
    )
    assert str(policy.warn) == "baseline:latest"
    assert policy_to_evaluate({}) == (Policy(), [])


def test_namespace_with_bad_label_is_refused_with_422() -> None:
    ns = {"metadata": {"name": "team", "labels": {ENFORCE_LEVEL_LABEL: "strict"}}}
    d = evaluate(PodSecurityConfig(), operation="CREATE", resource="namespaces", obj=ns)
    assert not d.allowed and d.error is not None
    assert d.error.code == 422 and d.error.reason == "Invalid"
    assert d.error.message == (
        'Namespace "team" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: '
        'Invalid value: "strict": must be one of privileged, baseline, restricted'
    )
    ns["metadata"]["labels"][ENFORCE_VERSION_LABEL] = "v2"
    d = evaluate(PodSecurityConfig(), operation="create", resource="namespaces", obj=ns)
    assert d.error is not None
    assert d.error.message == (
        'Namespace "team" is invalid: ['
        "metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "
        '"strict": must be one of privileged, baseline, restricted, '
        "metadata.labels[pod-security.kubernetes.io/enforce-version]: Invalid value: "
        '"v2": must be "latest" or "v1.x"]'
    )
    # an update that keeps the same bad labels is not refused
    same = evaluate(
        PodSecurityConfig(), operation="UPDATE", resource="namespaces", obj=ns, old_obj=ns
    )
    assert same.allowed


# --- baseline checks ------------------------------------------------------------------------


def test_baseline_checks_details() -> None:
    spec: JSON = {
        "hostNetwork": True,
        "hostPID": True,
        "hostIPC": True,
        "securityContext": {
            "sysctls": [{"name": "a"}, {"name": "kernel.shm_rmid_forced"}, {"name": "b"}],
            "windowsOptions": {"hostProcess": True},
        },
        "volumes": [
            {"name": "a", "hostPath": {"path": "/"}},
            {"name": "ok", "emptyDir": {}},
            {"name": "b", "hostPath": {"path": "/etc"}},
        ],
        "containers": [
            {"name": "a", "securityContext": {"privileged": False}},
            {"name": "b", "ports": [{"containerPort": 80, "hostPort": 20}]},
            {"name": "c", "ports": [{"hostPort": 30}, {"hostPort": 10}, {"containerPort": 1}]},
            {"name": "d", "securityContext": {"privileged": True}},
            {
                "name": "e",
                "securityContext": {
                    "privileged": True,
                    "windowsOptions": {"hostProcess": True},
                    "capabilities": {"add": ["FOO", "BAR", "CHOWN"]},
                },
            },
            {"name": "f", "securityContext": {"windowsOptions": {"hostProcess": True}}},
        ],
    }
    assert violations("baseline", spec) == [
        (
            "non-default capabilities",
            'container "e" must not include "BAR", "FOO" in securityContext.capabilities.add',
        ),
        ("host namespaces", "hostNetwork=true, hostPID=true, hostIPC=true"),
        ("hostPath volumes", 'volumes "a", "b"'),
        ("hostPort", 'containers "b", "c" use hostPorts 10, 20, 30'),
        ("privileged", 'containers "d", "e" must not set securityContext.privileged=true'),
        ("forbidden sysctls", "a, b"),
        (
            "hostProcess",
            'pod and containers "e", "f" must not set '
            "securityContext.windowsOptions.hostProcess=true",
        ),
    ]


def test_host_port_singular() -> None:
    spec = {"containers": [{"name": "a"}, {"name": "b", "ports": [{"hostPort": 20}]}]}
    assert violations("baseline", spec) == [("hostPort", 'container "b" uses hostPort 20')]


def test_apparmor_fields_and_annotations() -> None:
    spec = {
        "securityContext": {"appArmorProfile": {"type": "Unconfined"}},
        "containers": [
            {"name": "a", "securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}}},
            {"name": "foo", "securityContext": {"appArmorProfile": {"type": "Unconfined"}}},
        ],
    }
    assert violations("baseline", spec) == [
        (
            "forbidden AppArmor profile",
            'pod and container "foo" must not set AppArmor profile type to "Unconfined"',
        )
    ]
    prefix = "container.apparmor.security.beta.kubernetes.io/"
    meta = {
        "annotations": {
            prefix: "bogus",
            prefix + "a": "",
            prefix + "b": "runtime/default",
            prefix + "c": "localhost/",
            prefix + "d": "localhost/foo",
            prefix + "e": "unconfined",
            prefix + "f": "unknown",
        }
    }
    assert violations("baseline", {"containers": []}, meta) == [
        (
            "forbidden AppArmor profiles",
            "annotations must not set AppArmor profile type to "
            f'"{prefix}="bogus"", "{prefix}e="unconfined"", "{prefix}f="unknown""',
        )
    ]


def test_selinux_options() -> None:
    spec = {
        "securityContext": {"seLinuxOptions": {"type": "foo", "user": "u", "role": "r"}},
        "containers": [
            {"name": "a", "securityContext": {"seLinuxOptions": {"type": "container_t"}}},
            {"name": "e", "securityContext": {"seLinuxOptions": {"type": "bar"}}},
            {"name": "f", "securityContext": {"seLinuxOptions": {"user": "u"}}},
            {"name": "g", "securityContext": {"seLinuxOptions": {"role": "r"}}},
        ],
    }
    assert violations("baseline", spec) == [
        (
            "seLinuxOptions",
            'pod and containers "e", "f", "g" set forbidden securityContext.seLinuxOptions: '
            'types "bar", "foo"; user may not be set; role may not be set',
        )
    ]
    engine = {"securityContext": {"seLinuxOptions": {"type": "container_engine_t"}}}
    assert violations("baseline", engine, version="v1.30") == [
        (
            "seLinuxOptions",
            'pod set forbidden securityContext.seLinuxOptions: type "container_engine_t"',
        )
    ]
    assert violations("baseline", engine, version="v1.31") == []


def test_proc_mount_and_user_namespace_relaxation() -> None:
    spec = {
        "hostUsers": False,
        "containers": [
            {"name": "a"},
            {"name": "b", "securityContext": {}},
            {"name": "c", "securityContext": {"procMount": "Default"}},
            {"name": "d", "securityContext": {"procMount": "Unmasked"}},
            {"name": "e", "securityContext": {"procMount": "other"}},
        ],
    }
    assert violations("baseline", spec) == [
        (
            "procMount",
            'containers "d", "e" must not set securityContext.procMount to "Unmasked", "other"',
        )
    ]
    relaxed = check_pod("baseline", "latest", {}, spec, relax_user_namespace_pods=True)
    assert all(r.allowed for r in relaxed)


def test_seccomp_baseline_fields_and_old_annotations() -> None:
    spec = {
        "securityContext": {"seccompProfile": {"type": "Unconfined"}},
        "containers": [
            {"name": "a", "securityContext": {"seccompProfile": {"type": "Localhost"}}},
            {"name": "c", "securityContext": {"seccompProfile": {"type": "Unconfined"}}},
            {"name": "d", "securityContext": {"seccompProfile": {"type": "Unconfined"}}},
        ],
    }
    assert violations("baseline", spec) == [
        (
            "seccompProfile",
            'pod and containers "c", "d" must not set securityContext.seccompProfile.type '
            'to "Unconfined"',
        )
    ]
    # before v1.19 the policy reads the alpha annotations instead of the fields
    meta = {
        "annotations": {
            "seccomp.security.alpha.kubernetes.io/pod": "unconfined",
            "container.seccomp.security.alpha.kubernetes.io/a": "unconfined",
            "container.seccomp.security.alpha.kubernetes.io/b": "unknown",
            "container.seccomp.security.alpha.kubernetes.io/c": "runtime/default",
        }
    }
    old = {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}
    assert violations("baseline", old, meta, version="v1.18") == [
        (
            "seccompProfile",
            "forbidden annotations "
            'container.seccomp.security.alpha.kubernetes.io/a="unconfined", '
            'container.seccomp.security.alpha.kubernetes.io/b="unknown", '
            'seccomp.security.alpha.kubernetes.io/pod="unconfined"',
        )
    ]
    assert violations("baseline", old, meta, version="v1.19") == []


@pytest.mark.parametrize(
    ("sysctl", "first_allowed"),
    [
        ("net.ipv4.ip_unprivileged_port_start", "v1.0"),
        ("net.ipv4.ip_local_reserved_ports", "v1.27"),
        ("net.ipv4.tcp_keepalive_time", "v1.29"),
        ("net.ipv4.tcp_rmem", "v1.32"),
    ],
)
def test_safe_sysctls_grow_with_the_version(sysctl: str, first_allowed: str) -> None:
    spec = {"securityContext": {"sysctls": [{"name": sysctl, "value": "1"}]}}
    minor = int(first_allowed.split(".")[1])
    if minor:
        assert violations("baseline", spec, version=f"v1.{minor - 1}") == [
            ("forbidden sysctls", sysctl)
        ]
    assert violations("baseline", spec, version=first_allowed) == []
    assert violations("baseline", spec, version="latest") == []


# --- restricted checks ----------------------------------------------------------------------


def test_restricted_on_a_plain_pod_lists_upstreams_four_reasons() -> None:
    assert violations("restricted", {"containers": [{"name": "c"}]}) == [
        (
            "allowPrivilegeEscalation != false",
            'container "c" must set securityContext.allowPrivilegeEscalation=false',
        ),
        (
            "unrestricted capabilities",
            'container "c" must set securityContext.capabilities.drop=["ALL"]',
        ),
        ("runAsNonRoot != true", 'pod or container "c" must set securityContext.runAsNonRoot=true'),
        (
            "seccompProfile",
            'pod or container "c" must set securityContext.seccompProfile.type to '
            '"RuntimeDefault" or "Localhost"',
        ),
    ]
    assert (
        violations("restricted", {"containers": [{"name": "c", "securityContext": GOOD_SC}]}) == []
    )


def test_restricted_capabilities() -> None:
    spec = {
        "containers": [
            {"name": "a", "securityContext": {**GOOD_SC, "capabilities": {"add": ["FOO", "BAR"]}}},
            {"name": "b", "securityContext": {**GOOD_SC, "capabilities": {"add": ["BAR", "BAZ"]}}},
            {
                "name": "c",
                "securityContext": {
                    **GOOD_SC,
                    "capabilities": {"add": ["NET_BIND_SERVICE", "CHOWN"], "drop": ["ALL", "FOO"]},
                },
            },
        ]
    }
    assert violations("restricted", spec) == [
        (
            "unrestricted capabilities",
            'containers "a", "b" must set securityContext.capabilities.drop=["ALL"]; '
            'containers "a", "b", "c" must not include "BAR", "BAZ", "CHOWN", "FOO" in '
            "securityContext.capabilities.add",
        )
    ]
    # the restricted capabilities check replaces the baseline one from v1.22
    assert violations("restricted", spec, version="v1.21")[0] == (
        "non-default capabilities",
        'containers "a", "b" must not include "BAR", "BAZ", "FOO" in '
        "securityContext.capabilities.add",
    )


def test_restricted_volume_types() -> None:
    allowed = [
        "emptyDir", "secret", "persistentVolumeClaim", "downwardAPI", "configMap", "projected",
        "csi", "ephemeral",
    ]  # fmt: skip
    restricted = [
        "hostPath", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "nfs", "iscsi",
        "glusterfs", "rbd", "flexVolume", "cinder", "cephfs", "flocker", "fc", "azureFile",
        "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk", "portworxVolume",
        "scaleIO", "storageos",
    ]  # fmt: skip
    volumes = [{"name": f"a{i}", t: {}} for i, t in enumerate(allowed, 1)]
    volumes += [{"name": f"b{i}", t: {}} for i, t in enumerate(restricted, 1)]
    volumes.append({"name": "c1"})
    spec = {"volumes": volumes, "containers": [{"name": "c", "securityContext": GOOD_SC}]}
    names = ", ".join(f'"b{i}"' for i in range(1, 22)) + ', "c1"'
    types = ", ".join(f'"{t}"' for t in sorted([*restricted, "unknown"]))
    assert violations("restricted", spec) == [
        ("restricted volume types", f"volumes {names} use restricted volume types {types}")
    ]
    # hostPath volumes are reported once, by the restricted check
    assert violations("baseline", spec) == [("hostPath volumes", 'volume "b1"')]


def test_run_as_non_root_and_run_as_user() -> None:
    sc = {k: v for k, v in GOOD_SC.items() if k != "runAsNonRoot"}
    spec = {
        "securityContext": {"runAsNonRoot": False, "runAsUser": 0},
        "containers": [
            {"name": "a", "securityContext": sc},
            {"name": "c", "securityContext": {**sc, "runAsNonRoot": False, "runAsUser": 0}},
            {"name": "d", "securityContext": {**sc, "runAsNonRoot": False, "runAsUser": 0}},
            {"name": "e", "securityContext": {**sc, "runAsUser": 1000}},
        ],
    }
    assert violations("restricted", spec) == [
        (
            "runAsNonRoot != true",
            'pod and containers "c", "d" must not set securityContext.runAsNonRoot=false',
        ),
        ("runAsUser=0", 'pod and containers "c", "d" must not set runAsUser=0'),
    ]
    implicit = {
        "containers": [{"name": "a", "securityContext": sc}, {"name": "b", "securityContext": sc}]
    }
    assert violations("restricted", implicit) == [
        (
            "runAsNonRoot != true",
            'pod or containers "a", "b" must set securityContext.runAsNonRoot=true',
        )
    ]
    implicit["securityContext"] = {"runAsNonRoot": True}
    assert violations("restricted", implicit) == []
    # runAsUser joined the restricted policy at v1.23
    assert [r for r, _ in violations("restricted", spec, version="v1.22")] == [
        "runAsNonRoot != true"
    ]


def test_seccomp_restricted() -> None:
    spec = {
        "securityContext": {"seccompProfile": {"type": "Unconfined"}},
        "containers": [
            {"name": "c", "securityContext": {**GOOD_SC, "seccompProfile": {"type": "Unconfined"}}},
            {"name": "d", "securityContext": {**GOOD_SC, "seccompProfile": {"type": "Unconfined"}}},
        ],
    }
    assert violations("restricted", spec) == [
        (
            "seccompProfile",
            'pod and containers "c", "d" must not set securityContext.seccompProfile.type '
            'to "Unconfined"',
        )
    ]


def test_windows_pods_skip_linux_only_checks_from_v1_25() -> None:
    spec = {"os": {"name": "windows"}, "securityContext": {"runAsNonRoot": True}}
    spec["containers"] = [{"name": "c"}]
    assert violations("restricted", spec) == []
    assert [r for r, _ in violations("restricted", spec, version="v1.24")] == [
        "allowPrivilegeEscalation != false",
        "unrestricted capabilities",
        "seccompProfile",
    ]


def test_restricted_v1_0_has_no_allow_privilege_escalation_or_seccomp_field_check() -> None:
    assert [
        r for r, _ in violations("restricted", {"containers": [{"name": "c"}]}, version="v1.0")
    ] == ["runAsNonRoot != true"]


def test_all_container_kinds_are_checked_in_upstreams_order() -> None:
    spec = {
        "initContainers": [{"name": "init", "securityContext": {"privileged": True}}],
        "containers": [{"name": "app", "securityContext": {"privileged": True}}],
        "ephemeralContainers": [{"name": "debug", "securityContext": {"privileged": True}}],
    }
    assert violations("baseline", spec) == [
        (
            "privileged",
            'containers "init", "app", "debug" must not set securityContext.privileged=true',
        )
    ]
    assert check_pod("privileged", "latest", {}, spec) == []


def test_aggregate_formats_reasons_and_details() -> None:
    agg = aggregate_results(
        [
            CheckResult(False, "host ports", "8080, 9090"),
            CheckResult(True),
            CheckResult(False, "privileged containers"),
            CheckResult(False),
        ]
    )
    assert not agg.allowed
    assert agg.forbidden_reason == "host ports, privileged containers, unknown forbidden reason"
    assert agg.forbidden_detail == (
        "host ports (8080, 9090), privileged containers, unknown forbidden reason"
    )


# --- the plugin's decision ------------------------------------------------------------------

ENFORCED = (
    'pods "x" is forbidden: violates PodSecurity "restricted:latest": '
    "allowPrivilegeEscalation != false "
    '(container "c" must set securityContext.allowPrivilegeEscalation=false), '
    "unrestricted capabilities "
    '(container "c" must set securityContext.capabilities.drop=["ALL"]), '
    'runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), '
    'seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to '
    '"RuntimeDefault" or "Localhost")'
)


def test_enforce_denies_a_pod_with_upstreams_message() -> None:
    d = evaluate(
        PodSecurityConfig(),
        operation="CREATE",
        resource="pods",
        obj=pod(),
        namespace="ns",
        namespace_labels=RESTRICTED,
    )
    assert not d.allowed and d.error is not None
    assert (d.error.code, d.error.reason) == (403, "Forbidden")
    assert d.error.message == ENFORCED
    assert d.error.details == {"name": "x", "kind": "pods"}
    assert d.warnings == []  # no warning on a request that is refused
    assert d.audit_annotations == {"pod-security.kubernetes.io/enforce-policy": "restricted:latest"}


def test_warn_and_audit_without_enforce() -> None:
    labels = {
        ENFORCE_LEVEL_LABEL: "baseline",
        WARN_LEVEL_LABEL: "restricted",
        AUDIT_LEVEL_LABEL: "restricted",
    }
    d = evaluate(
        PodSecurityConfig(),
        operation="CREATE",
        resource="pods",
        obj=pod(),
        namespace="ns",
        namespace_labels=labels,
    )
    expected = ENFORCED.replace('pods "x" is forbidden: violates', "would violate")
    assert d.allowed and d.warnings == [expected]
    assert d.audit_annotations == {
        "pod-security.kubernetes.io/enforce-policy": "baseline:latest",
        "pod-security.kubernetes.io/audit-violations": expected,
    }


@pytest.mark.parametrize(
    ("group", "resource", "wrap"),
    [
        ("apps", "deployments", lambda p: {"spec": {"template": p}}),
        ("apps", "replicasets", lambda p: {"spec": {"template": p}}),
        ("apps", "statefulsets", lambda p: {"spec": {"template": p}}),
        ("apps", "daemonsets", lambda p: {"spec": {"template": p}}),
        ("batch", "jobs", lambda p: {"spec": {"template": p}}),
        ("batch", "cronjobs", lambda p: {"spec": {"jobTemplate": {"spec": {"template": p}}}}),
        ("", "replicationcontrollers", lambda p: {"spec": {"template": p}}),
        ("", "podtemplates", lambda p: {"template": p}),
    ],
)
def test_workloads_are_warned_never_enforced(group: str, resource: str, wrap: Any) -> None:
    obj = {"metadata": {"name": "w"}, **wrap(pod())}
    d = evaluate(
        PodSecurityConfig(),
        operation="CREATE",
        group=group,
        resource=resource,
        obj=obj,
        namespace="ns",
        namespace_labels=RESTRICTED,
    )
    assert d.allowed and d.error is None
    assert d.warnings == [ENFORCED.replace('pods "x" is forbidden: violates', "would violate")]
    assert "pod-security.kubernetes.io/enforce-policy" not in d.audit_annotations
    # subresources (scale, status) of a workload are not looked at
    d = evaluate(
        PodSecurityConfig(),
        operation="UPDATE",
        group=group,
        resource=resource,
        subresource="scale",
        obj=obj,
        namespace="ns",
        namespace_labels=RESTRICTED,
    )
    assert d.warnings == []


def test_exemptions() -> None:
    cfg = PodSecurityConfig(
        exempt_usernames=frozenset({"admin"}),
        exempt_namespaces=frozenset({"kube-system"}),
        exempt_runtime_classes=frozenset({"kata"}),
    )

    def run(**kw: Any) -> Any:
        args: dict[str, Any] = {
            "operation": "CREATE",
            "resource": "pods",
            "obj": pod(),
            "namespace": "ns",
            "namespace_labels": RESTRICTED,
        }
        return evaluate(cfg, **{**args, **kw})

    assert run(username="admin").audit_annotations == {"pod-security.kubernetes.io/exempt": "user"}
    assert run(namespace="kube-system").audit_annotations == {
        "pod-security.kubernetes.io/exempt": "namespace"
    }
    d = run(obj=pod(runtimeClassName="kata"))
    assert d.allowed and d.audit_annotations == {
        "pod-security.kubernetes.io/exempt": "runtimeClass"
    }
    assert not run(username="bob").allowed


def test_short_circuits() -> None:
    base: dict[str, Any] = {"resource": "pods", "obj": pod(), "namespace": "ns"}
    cfg = PodSecurityConfig()
    # a namespace with no labels (and privileged defaults) is fully privileged
    d = evaluate(cfg, operation="CREATE", namespace_labels={}, **base)
    assert d.allowed and d.audit_annotations == {
        "pod-security.kubernetes.io/enforce-policy": "privileged:latest"
    }
    # subresources that cannot change the pod's security are ignored
    d = evaluate(
        cfg, operation="CREATE", subresource="binding", namespace_labels=RESTRICTED, **base
    )
    assert d.allowed and d.audit_annotations == {}
    # only CREATE and UPDATE are looked at
    assert evaluate(cfg, operation="DELETE", namespace_labels=RESTRICTED, **base).allowed
    # an update that changes no image is allowed without evaluation
    labelled = pod(meta={"labels": {"a": "b"}})
    d = evaluate(
        cfg,
        operation="UPDATE",
        namespace_labels=RESTRICTED,
        **{**base, "obj": labelled},
        old_obj=pod(),
    )
    assert d.allowed
    changed = pod(containers=[{"name": "c", "image": "nginx:2"}])
    d = evaluate(
        cfg,
        operation="UPDATE",
        namespace_labels=RESTRICTED,
        **{**base, "obj": changed},
        old_obj=pod(),
    )
    assert not d.allowed
    # ephemeral containers (a pod subresource) are checked
    priv = {"privileged": True}
    debug = pod(ephemeralContainers=[{"name": "dbg", "image": "busybox", "securityContext": priv}])
    d = evaluate(
        cfg,
        operation="UPDATE",
        subresource="ephemeralcontainers",
        namespace_labels={ENFORCE_LEVEL_LABEL: "baseline"},
        **{**base, "obj": debug},
        old_obj=pod(),
    )
    assert d.error is not None
    assert d.error.message == (
        'pods "x" is forbidden: violates PodSecurity "baseline:latest": '
        'privileged (container "dbg" must not set securityContext.privileged=true)'
    )


def test_pod_in_a_namespace_that_cannot_be_read() -> None:
    d = evaluate(
        PodSecurityConfig(), operation="CREATE", resource="pods", obj=pod(), namespace="gone"
    )
    assert d.error is not None and d.error.code == 500
    assert d.error.message == 'Internal error occurred: failed to lookup namespace "gone"'


def test_bad_namespace_labels_are_enforced_closed_and_noted() -> None:
    d = evaluate(
        PodSecurityConfig(),
        operation="CREATE",
        resource="pods",
        obj=pod(),
        namespace="ns",
        namespace_labels={ENFORCE_LEVEL_LABEL: "strict"},
    )
    assert d.error is not None
    assert d.error.message == ENFORCED
    assert d.audit_annotations["pod-security.kubernetes.io/error"] == (
        "Failed to parse policy: metadata.labels[pod-security.kubernetes.io/enforce]: "
        'Invalid value: "strict": must be one of privileged, baseline, restricted'
    )


# --- namespace label changes ----------------------------------------------------------------


def owned(name: str, uid: str, **spec: Any) -> JSON:
    p = pod(name, **spec)
    p["metadata"]["ownerReferences"] = [{"uid": uid, "controller": True, "kind": "ReplicaSet"}]
    return p


def test_tightening_enforce_warns_about_existing_pods() -> None:
    good = {"containers": [{"name": "c", "securityContext": GOOD_SC}]}
    pods = [
        pod("web-2"),
        pod("web-1"),
        pod("web-3"),
        pod("priv", containers=[{"name": "c", "securityContext": {**GOOD_SC, "privileged": True}}]),
        pod("fine", **good),
    ]
    ns = {"metadata": {"name": "team", "labels": RESTRICTED}}
    old = {"metadata": {"name": "team", "labels": {ENFORCE_LEVEL_LABEL: "baseline"}}}
    d = evaluate(
        PodSecurityConfig(),
        operation="UPDATE",
        resource="namespaces",
        obj=ns,
        old_obj=old,
        pods=lambda: pods,
    )
    assert d.allowed
    assert d.warnings == [
        'existing pods in namespace "team" violate the new PodSecurity enforce level '
        '"restricted:latest"',
        "priv: privileged",
        "web-1 (and 2 other pods): allowPrivilegeEscalation != false, unrestricted capabilities, "
        "runAsNonRoot != true, seccompProfile",
    ]


def test_pod_warnings_check_one_pod_per_controller_first_and_cap() -> None:
    pods = [owned(f"rs1-{i}", "rs1") for i in range(3)] + [pod("lonely"), owned("rs2-0", "rs2")]
    cfg = PodSecurityConfig(max_pods_to_check=3)
    enforce = LevelVersion(Level.RESTRICTED, LATEST)
    assert namespace_pod_warnings("team", enforce, pods, cfg) == [
        "new PodSecurity enforce level only checked against the first 3 of 5 existing pods",
        'existing pods in namespace "team" violate the new PodSecurity enforce level '
        '"restricted:latest"',
        "lonely (and 2 other pods): allowPrivilegeEscalation != false, unrestricted capabilities, "
        "runAsNonRoot != true, seccompProfile",
    ]
    kata = pod("kata", runtimeClassName="kata")
    exempt = PodSecurityConfig(exempt_runtime_classes=frozenset({"kata"}))
    assert namespace_pod_warnings("team", enforce, [kata], exempt) == []


def test_namespace_updates_that_do_not_tighten_list_no_pods() -> None:
    def boom() -> list[JSON]:
        raise AssertionError("pods listed")

    def update(new: dict[str, str], old: dict[str, str]) -> Any:
        return evaluate(
            PodSecurityConfig(),
            operation="UPDATE",
            resource="namespaces",
            obj={"metadata": {"name": "team", "labels": new}},
            old_obj={"metadata": {"name": "team", "labels": old}},
            pods=boom,
        )

    assert update(RESTRICTED, RESTRICTED).warnings == []  # unchanged
    assert update({ENFORCE_LEVEL_LABEL: "privileged"}, RESTRICTED).warnings == []
    assert update({ENFORCE_LEVEL_LABEL: "baseline"}, RESTRICTED).warnings == []  # relaxed


def test_listing_failure_and_exempt_namespace() -> None:
    def broken() -> list[JSON]:
        raise RuntimeError("etcd down")

    ns = {"metadata": {"name": "team", "labels": RESTRICTED}}
    d = evaluate(
        PodSecurityConfig(),
        operation="UPDATE",
        resource="namespaces",
        obj=ns,
        old_obj={},
        pods=broken,
    )
    assert d.warnings == ["failed to list pods while checking new PodSecurity enforce level"]
    ns = {
        "metadata": {
            "name": "test",
            "labels": {
                ENFORCE_LEVEL_LABEL: "restricted",
                ENFORCE_VERSION_LABEL: "v1.0",
                AUDIT_LEVEL_LABEL: "restricted",
                WARN_LEVEL_LABEL: "baseline",
            },
        }
    }
    cfg = PodSecurityConfig(exempt_namespaces=frozenset({"test"}))
    d = evaluate(cfg, operation="UPDATE", resource="namespaces", obj=ns, old_obj={}, pods=broken)
    assert d.warnings == [
        'namespace "test" is exempt from Pod Security, and the policy '
        "(enforce=restricted:v1.0, audit=restricted:latest, warn=baseline:latest) will be ignored"
    ]
    d = evaluate(cfg, operation="CREATE", resource="namespaces", obj=ns, request_namespace="test")
    assert d.warnings == [
        'namespace "test" is exempt from Pod Security, and the policy '
        "(enforce=restricted:v1.0, audit=restricted:latest, warn=baseline:latest) will be ignored"
    ]


# --- configuration --------------------------------------------------------------------------


def test_configuration_file() -> None:
    cfg = PodSecurityConfig.from_configuration(
        {
            "apiVersion": "pod-security.admission.config.k8s.io/v1",
            "kind": "PodSecurityConfiguration",
            "defaults": {"enforce": "baseline", "warn": "restricted", "warn-version": "v1.30"},
            "exemptions": {"usernames": ["admin"], "namespaces": ["kube-system"]},
        }
    )
    assert str(cfg.defaults.enforce) == "baseline:latest"
    assert str(cfg.defaults.warn) == "restricted:v1.30"
    assert str(cfg.defaults.audit) == "privileged:latest"
    assert cfg.exempt_usernames == {"admin"} and cfg.exempt_namespaces == {"kube-system"}
    with pytest.raises(PolicyError) as e:
        PodSecurityConfig.from_configuration(
            {"defaults": {"enforce": "x"}, "exemptions": {"usernames": ["", "a", "a"]}}
        )
    assert str(e.value) == (
        '[defaults.enforce: Invalid value: "x": must be one of privileged, baseline, restricted, '
        "exemptions.usernames[0]: Required value, "  # upstream's validateUsernames
        'exemptions.usernames[2]: Duplicate value: "a"]'
    )
