"""Validation of workloads, RBAC and the smaller groups, with upstream's exact messages."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pyk8s.api.errors import FieldErrorType
from pyk8s.api.validation import generate_job_selector, parse_cron, validate_create, validate_update
from pyk8s.api.validation.batch import CronError
from tests.api.helpers import msgs, res

DEPLOY = res("apps/v1", "Deployment")
JOB = res("batch/v1", "Job")
CRONJOB = res("batch/v1", "CronJob")


def template(labels: dict[str, str] | None = None, restart: str = "Always") -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": "web"} if labels is None else labels},
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": "nginx:1.27",
                    "imagePullPolicy": "IfNotPresent",
                    "terminationMessagePolicy": "File",
                }
            ],
            "restartPolicy": restart,
            "dnsPolicy": "ClusterFirst",
            "terminationGracePeriodSeconds": 30,
        },
    }


def deployment(**spec: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": template(),
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
            },
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        },
    }
    obj["spec"].update(spec)
    return obj


def test_valid_deployment() -> None:
    assert validate_create(DEPLOY, deployment()) == []


def test_selector_does_not_match_template_labels() -> None:
    errs = validate_create(DEPLOY, deployment(template=template({"app": "api"})))
    assert len(errs) == 1
    assert errs[0].field == "spec.template.metadata.labels"
    assert errs[0].value == {"app": "api"}
    assert errs[0].detail == "`selector` does not match template `labels`"
    assert str(errs[0]).startswith("spec.template.metadata.labels: Invalid value: ")


def test_missing_selector() -> None:
    d = deployment()
    del d["spec"]["selector"]
    assert [(e.field, e.detail) for e in validate_create(DEPLOY, d)] == [
        ("spec.selector", ""),
        ("spec.template.metadata.labels", "`selector` does not match template `labels`"),
    ]
    assert str(validate_create(DEPLOY, d)[0]) == "spec.selector: Required value"


def test_empty_selector() -> None:
    errs = validate_create(DEPLOY, deployment(selector={}))
    assert [(e.field, e.detail) for e in errs] == [
        ("spec.selector", "empty selector is invalid for deployment")
    ]


def test_negative_replicas_and_template_errors() -> None:
    d = deployment(replicas=-1)
    del d["spec"]["template"]["spec"]["containers"][0]["image"]
    d["spec"]["template"]["metadata"]["labels"]["tier"] = "front end"
    out = msgs(validate_create(DEPLOY, d))
    assert out[0] == "spec.replicas: Invalid value: -1: must be greater than or equal to 0"
    assert out[1].startswith('spec.template.labels: Invalid value: "front end": a valid label')
    assert out[2] == "spec.template.spec.containers[0].image: Required value"


def test_deployment_template_restart_policy() -> None:
    assert msgs(validate_create(DEPLOY, deployment(template=template(restart="Never")))) == [
        'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"'
    ]


def test_rolling_update() -> None:
    d = deployment(
        strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "0%"}}
    )
    assert msgs(validate_create(DEPLOY, d)) == [
        "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when "
        "`maxSurge` is 0"
    ]
    d = deployment(
        strategy={
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": "150%", "maxSurge": "x"},
        }
    )
    assert msgs(validate_create(DEPLOY, d)) == [
        'spec.strategy.rollingUpdate.maxSurge: Invalid value: "x": a valid percent string must '
        "be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for "
        "validation is '[0-9]+%')",
        'spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "150%": must not be greater '
        "than 100%",
    ]
    d = deployment(strategy={"type": "Recreate", "rollingUpdate": {}})
    assert msgs(validate_create(DEPLOY, d)) == [
        "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is "
        "'Recreate'"
    ]


def test_progress_deadline() -> None:
    d = deployment(minReadySeconds=700)
    assert msgs(validate_create(DEPLOY, d)) == [
        "spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds"
    ]


def test_selector_immutable_on_update() -> None:
    old = deployment()
    new = deployment(
        selector={"matchLabels": {"app": "web", "track": "stable"}},
        template=template({"app": "web", "track": "stable"}),
    )
    errs = validate_update(DEPLOY, new, old)
    assert len(errs) == 1
    assert errs[0].field == "spec.selector"
    assert errs[0].detail == "field is immutable"
    assert str(errs[0]).endswith(": field is immutable")
    assert validate_update(DEPLOY, deployment(replicas=5), old) == []


def test_replica_set_and_daemon_set() -> None:
    rs = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "web-5d8", "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": template(),
        },
    }
    assert validate_create(res("apps/v1", "ReplicaSet"), rs) == []
    ds = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": "kube-system"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": template(),
            "updateStrategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1},
            },
        },
    }
    errs = validate_create(res("apps/v1", "DaemonSet"), ds)
    assert [(e.field, e.detail) for e in errs] == [
        ("spec.template.metadata.labels", "`selector` does not match template `labels`"),
        (
            "spec.updateStrategy.rollingUpdate.maxSurge",
            "may not be set when maxUnavailable is non-zero",
        ),
    ]


def test_stateful_set() -> None:
    sts_res = res("apps/v1", "StatefulSet")
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "default"},
        "spec": {
            "replicas": 3,
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "web"}},
            "template": template(),
            "podManagementPolicy": "OrderedReady",
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "volumeClaimTemplates": [],
        },
    }
    assert validate_create(sts_res, sts) == []
    new = copy.deepcopy(sts)
    new["spec"]["replicas"] = 5
    assert validate_update(sts_res, new, sts) == []
    new["spec"]["serviceName"] = "db2"
    assert msgs(validate_update(sts_res, new, sts)) == [
        "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', "
        "'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and "
        "'minReadySeconds' are forbidden"
    ]
    bad = copy.deepcopy(sts)
    bad["spec"]["podManagementPolicy"] = "Random"
    assert msgs(validate_create(sts_res, bad)) == [
        "spec.podManagementPolicy: Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'"
    ]


# ---------------------------------------------------------------- jobs


def job(**spec: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "pi", "namespace": "default", "uid": "6b1f-0a"},
        "spec": {
            "template": template({}, restart="Never"),
            "backoffLimit": 6,
            "completions": 1,
            "parallelism": 1,
        },
    }
    obj["spec"].update(spec)
    return obj


def test_valid_job_gets_generated_selector() -> None:
    j = job()
    assert validate_create(JOB, j) == []
    assert "selector" not in j["spec"]  # validation never mutates
    generate_job_selector(j)
    assert j["spec"]["selector"] == {
        "matchLabels": {"batch.kubernetes.io/controller-uid": "6b1f-0a"}
    }
    assert j["spec"]["template"]["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "pi"
    assert validate_create(JOB, j) == []


def test_job_restart_policy() -> None:
    assert msgs(validate_create(JOB, job(template=template({}, restart="Always")))) == [
        'spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"'
    ]


def test_job_counts() -> None:
    assert msgs(validate_create(JOB, job(parallelism=-1, backoffLimit=-2))) == [
        "spec.parallelism: Invalid value: -1: must be greater than or equal to 0",
        "spec.backoffLimit: Invalid value: -2: must be greater than or equal to 0",
    ]


def test_job_manual_selector() -> None:
    j = job(manualSelector=True, selector={"matchLabels": {"app": "x"}})
    errs = validate_create(JOB, j)
    assert [(e.field, e.detail) for e in errs] == [
        ("spec.template.metadata.labels", "`selector` does not match template `labels`")
    ]


def test_job_template_immutable() -> None:
    old = job()
    generate_job_selector(old)
    new = copy.deepcopy(old)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "perl:5.40"
    errs = validate_update(JOB, new, old)
    assert [(e.field, e.detail) for e in errs] == [("spec.template", "field is immutable")]
    new = copy.deepcopy(old)
    new["spec"]["selector"] = {
        "matchLabels": {"batch.kubernetes.io/controller-uid": "6b1f-0a", "x": "y"}
    }
    assert ("spec.selector", "field is immutable") in [
        (e.field, e.detail) for e in validate_update(JOB, new, old)
    ]


def cronjob(schedule: str, **spec: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "backup", "namespace": "default"},
        "spec": {
            "schedule": schedule,
            "concurrencyPolicy": "Allow",
            "jobTemplate": {"spec": {"template": template({}, restart="OnFailure")}},
        },
    }
    obj["spec"].update(spec)
    return obj


@pytest.mark.parametrize(
    "schedule",
    [
        "@hourly",
        "@daily",
        "@every 1h30m",
        "*/15 * * * *",
        "0 9-17 * * MON-FRI",
        "0 0 1 jan,jul *",
        "5 4 * * sun",
        "? * * * *",
    ],
)
def test_valid_schedules(schedule: str) -> None:
    parse_cron(schedule)
    assert validate_create(CRONJOB, cronjob(schedule)) == []


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("hourly", "expected exactly 5 fields, found 1: [hourly]"),
        ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
        ("60 * * * *", "end of range (60) above maximum (59): 60"),
        ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
        ("5-1 * * * *", "beginning of range (5) beyond end of range (1): 5-1"),
        ("*/0 * * * *", "step of range should be a positive number: */0"),
        ("x * * * *", 'failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax'),
        ("@fortnightly", "unrecognized descriptor: @fortnightly"),
    ],
)
def test_bad_schedules(schedule: str, message: str) -> None:
    with pytest.raises(CronError) as err:
        parse_cron(schedule)
    assert str(err.value) == message
    assert msgs(validate_create(CRONJOB, cronjob(schedule))) == [
        f'spec.schedule: Invalid value: "{schedule}": {message}'
    ]


def test_cronjob_time_zone_and_name() -> None:
    assert validate_create(CRONJOB, cronjob("@daily", timeZone="Europe/Berlin")) == []
    assert msgs(validate_create(CRONJOB, cronjob("@daily", timeZone="Mars/Olympus"))) == [
        'spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus'
    ]
    assert msgs(validate_create(CRONJOB, cronjob("TZ=UTC @daily"))) == [
        'spec.schedule: Invalid value: "TZ=UTC @daily": cannot use TZ or CRON_TZ in schedule, '
        "use timeZone field instead"
    ]
    long = cronjob("@daily")
    long["metadata"]["name"] = "n" * 53
    assert msgs(validate_create(CRONJOB, long)) == [
        f'metadata.name: Invalid value: "{"n" * 53}": must be no more than 52 characters'
    ]


def test_cronjob_job_template_selector() -> None:
    c = cronjob("@daily")
    c["spec"]["jobTemplate"]["spec"]["selector"] = {"matchLabels": {"a": "b"}}
    errs = validate_create(CRONJOB, c)
    assert [(e.field, e.detail) for e in errs] == [
        ("spec.jobTemplate.spec.selector", "`selector` will be auto-generated")
    ]


# ---------------------------------------------------------------- RBAC and friends


def test_rbac_rules_need_verbs() -> None:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "pod-reader", "namespace": "default"},
        "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": []},
            {"verbs": ["get"], "nonResourceURLs": ["/healthz"]},
        ],
    }
    assert msgs(validate_create(res("rbac.authorization.k8s.io/v1", "Role"), role)) == [
        "rules[0].verbs: Required value: verbs must contain at least one value",
        'rules[1].nonResourceURLs: Invalid value: []string{"/healthz"}: namespaced rules cannot '
        "apply to non-resource URLs",
    ]


def test_rbac_names_are_path_segments() -> None:
    cr = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "system:controller:Foo"},
        "rules": [],
    }
    assert validate_create(res("rbac.authorization.k8s.io/v1", "ClusterRole"), cr) == []
    cr["metadata"]["name"] = "a/b"
    assert msgs(validate_create(res("rbac.authorization.k8s.io/v1", "ClusterRole"), cr)) == [
        "metadata.name: Invalid value: \"a/b\": may not contain '/'"
    ]


def test_role_binding() -> None:
    rb_res = res("rbac.authorization.k8s.io/v1", "RoleBinding")
    rb = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "read-pods", "namespace": "default"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
        "subjects": [
            {"kind": "User", "name": "jane", "apiGroup": "rbac.authorization.k8s.io"},
            {"kind": "Robot", "name": "r2"},
        ],
    }
    assert msgs(validate_create(rb_res, rb)) == [
        'subjects[1].kind: Unsupported value: "Robot": supported values: "ServiceAccount", '
        '"User", "Group"'
    ]
    new = copy.deepcopy(rb)
    new["roleRef"]["name"] = "admin"
    assert next(e.detail for e in validate_update(rb_res, new, rb)) == "cannot change roleRef"


def test_lease_pdb_hpa_ingress() -> None:
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "node-1", "namespace": "kube-node-lease"},
        "spec": {"leaseDurationSeconds": 0},
    }
    assert msgs(validate_create(res("coordination.k8s.io/v1", "Lease"), lease)) == [
        "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"
    ]
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"minAvailable": "120%", "selector": {"matchLabels": {"app": "web"}}},
    }
    assert msgs(validate_create(res("policy/v1", "PodDisruptionBudget"), pdb)) == [
        'spec.minAvailable: Invalid value: "120%": must not be greater than 100%'
    ]
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "minReplicas": 5,
            "maxReplicas": 2,
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        },
    }
    assert msgs(validate_create(res("autoscaling/v2", "HorizontalPodAutoscaler"), hpa)) == [
        "spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`"
    ]
    ing = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "rules": [
                {
                    "host": "Web.example.com",
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "backend": {"service": {"name": "web", "port": {"number": 80}}},
                            },
                            {
                                "path": "api",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": "api", "port": {"number": 80}}},
                            },
                        ]
                    },
                }
            ]
        },
    }
    out = msgs(validate_create(res("networking.k8s.io/v1", "Ingress"), ing))
    assert out[0].startswith('spec.rules[0].host: Invalid value: "Web.example.com": a lowercase')
    assert out[1:] == [
        "spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified",
        'spec.rules[0].http.paths[1].path: Invalid value: "api": must be an absolute path',
    ]


def test_unknown_kind_gets_generic_meta_checks() -> None:
    ic = {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": "limits", "namespace": "default"},
        "spec": {"limits": [{"type": "Container", "max": {"cpu": "2"}}]},
    }
    assert validate_create(res("v1", "LimitRange"), ic) == []


def test_schema_required_fills_gaps_without_duplicates() -> None:
    rb_res = res("rbac.authorization.k8s.io/v1", "ClusterRoleBinding")
    crb = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "x"},
    }
    errs = validate_create(rb_res, crb)
    assert msgs(errs) == [
        'roleRef.apiGroup: Unsupported value: "": supported values: "rbac.authorization.k8s.io"',
        'roleRef.kind: Unsupported value: "": supported values: "ClusterRole"',
        "roleRef.name: Required value",
        "roleRef: Required value",
    ]
    assert errs[-1].type is FieldErrorType.REQUIRED
