"""Pod Security Standards: the rules of upstream's PodSecurity admission plugin, as pure code.

Why a port: PodSecurity is on by default in every upstream API server, and what users see
of it is text: ``kubectl apply`` prints ``Warning: would violate PodSecurity
"restricted:latest": allowPrivilegeEscalation != false (container "c" must set
securityContext.allowPrivilegeEscalation=false), ...`` and a rejected pod reads ``pods "x" is
forbidden: violates PodSecurity ...``. People grep for, document and test against those
strings, so this module follows k8s.io/pod-security-admission (v1.32) check by check:

* :func:`policy_to_evaluate` reads the ``pod-security.kubernetes.io/enforce|audit|warn``
  namespace labels and their ``-version`` labels (``latest`` or ``v1.N``), with upstream's
  messages for bad values and its fail-closed/fail-open rules (a bad enforce level enforces
  ``restricted``; a bad audit or warn level is ``privileged``; an enforce label without a
  warn label also warns at the enforce level).
* :func:`check_pod` runs the checks of a level at a version: the eleven baseline checks and
  the six restricted ones, each with the versions where upstream's rule changed (windows
  pods exempt from some restricted checks from v1.25, ``container_engine_t`` allowed from
  v1.31, more safe sysctls at v1.27, v1.29, v1.32). Results keep upstream's order: baseline
  checks by ID, then restricted checks by ID; a version above v1.32 (and ``latest``) means
  v1.32.
* :func:`evaluate` is the plugin's decision for one write: pods are enforced, audited and
  warned; workload resources (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob,
  ReplicationController, PodTemplate) are only audited and warned on their pod template;
  namespaces get their labels validated and, when the enforce level tightens, one warning
  per group of existing pods that would now be rejected (:func:`namespace_pod_warnings`).
  Exemptions (usernames, namespaces, runtime classes) come from :class:`PodSecurityConfig`.

Everything here is pure: the caller passes the namespace's labels and, for a namespace
update, the pods (or a function that lists them); the answer is a :class:`Decision` with
the error to return, the warnings to add and the audit annotations to record.

Exceptions::

    ValueError
     └── PolicyError   a level, version or configuration upstream would refuse
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Final

from pyk8s.api import errors
from pyk8s.api.gofmt import go_quote
from pyk8s.api.validation.names import is_dns1123_label, is_dns1123_subdomain

__all__ = [
    "AUDIT_LEVEL_LABEL",
    "AUDIT_VERSION_LABEL",
    "DEFAULT_CONFIG",
    "DEFAULT_POLICY",
    "ENFORCE_LEVEL_LABEL",
    "ENFORCE_VERSION_LABEL",
    "LATEST",
    "WARN_LEVEL_LABEL",
    "WARN_VERSION_LABEL",
    "WORKLOAD_RESOURCES",
    "AggregateCheckResult",
    "CheckResult",
    "Decision",
    "Level",
    "LevelVersion",
    "PodSecurityConfig",
    "Policy",
    "PolicyError",
    "Version",
    "aggregate_results",
    "applies_to",
    "check_pod",
    "compare_levels",
    "evaluate",
    "evaluate_pod",
    "extract_pod_template",
    "namespace_pod_warnings",
    "parse_level",
    "parse_version",
    "policy_to_evaluate",
]

JSON = dict[str, Any]

LABEL_PREFIX: Final = "pod-security.kubernetes.io/"
ENFORCE_LEVEL_LABEL: Final = LABEL_PREFIX + "enforce"
ENFORCE_VERSION_LABEL: Final = LABEL_PREFIX + "enforce-version"
AUDIT_LEVEL_LABEL: Final = LABEL_PREFIX + "audit"
AUDIT_VERSION_LABEL: Final = LABEL_PREFIX + "audit-version"
WARN_LEVEL_LABEL: Final = LABEL_PREFIX + "warn"
WARN_VERSION_LABEL: Final = LABEL_PREFIX + "warn-version"

#: audit annotation keys, already prefixed the way the in-tree plugin records them
AUDIT_EXEMPT: Final = LABEL_PREFIX + "exempt"
AUDIT_VIOLATIONS: Final = LABEL_PREFIX + "audit-violations"
AUDIT_ENFORCE_POLICY: Final = LABEL_PREFIX + "enforce-policy"
AUDIT_ERROR: Final = LABEL_PREFIX + "error"


class PolicyError(ValueError):
    """A level, version or configuration upstream refuses; the message is upstream's."""


# --- levels and versions ----------------------------------------------------------------


class Level(enum.StrEnum):
    PRIVILEGED = "privileged"
    BASELINE = "baseline"
    RESTRICTED = "restricted"


_LEVEL_RANK: Final = {Level.PRIVILEGED: 0, Level.BASELINE: 1, Level.RESTRICTED: 2}
ERR_LEVEL: Final = "must be one of privileged, baseline, restricted"
ERR_VERSION: Final = 'must be "latest" or "v1.x"'
_VERSION_RE: Final = re.compile(r"v1\.([0-9]|[1-9][0-9]*)")


def compare_levels(a: Level, b: Level) -> int:
    """-1, 0 or 1 as ``a`` is less, as or more strict than ``b`` (upstream's CompareLevels)."""
    return (_LEVEL_RANK[a] > _LEVEL_RANK[b]) - (_LEVEL_RANK[a] < _LEVEL_RANK[b])


def parse_level(value: str) -> Level:
    """A label value as a :class:`Level`; :class:`PolicyError` with upstream's text if not one."""
    try:
        return Level(value)
    except ValueError:
        raise PolicyError(ERR_LEVEL) from None


@dataclass(frozen=True, slots=True)
class Version:
    """A policy version: ``v1.N`` or ``latest`` (newer than any numbered version)."""

    major: int = 0
    minor: int = 0
    latest: bool = False

    def __str__(self) -> str:
        return "latest" if self.latest else f"v{self.major}.{self.minor}"

    def older(self, other: Version) -> bool:
        """Upstream's ``Older``: ``latest`` is never older, and newer than everything."""
        if self.latest:
            return False
        if other.latest:
            return True
        return (self.major, self.minor) < (other.major, other.minor)


LATEST: Final = Version(latest=True)


def parse_version(value: str) -> Version:
    """``latest`` or ``v1.N`` as a :class:`Version`; :class:`PolicyError` otherwise."""
    if value == "latest":
        return LATEST
    m = _VERSION_RE.fullmatch(value)
    if m is None or int(m.group(1)) > 2**63 - 1:  # Go's Atoi overflows past int64
        raise PolicyError(ERR_VERSION)
    return Version(1, int(m.group(1)))


@dataclass(frozen=True, slots=True)
class LevelVersion:
    level: Level
    version: Version = LATEST

    def __str__(self) -> str:
        return f"{self.level}:{self.version}"

    def equivalent(self, other: LevelVersion) -> bool:
        """Same rules: equal, or both privileged (whose version does not matter)."""
        both_privileged = self.level == other.level == Level.PRIVILEGED
        return both_privileged or self == other


_PRIVILEGED_LATEST: Final = LevelVersion(Level.PRIVILEGED, LATEST)


@dataclass(frozen=True, slots=True)
class Policy:
    """What a namespace enforces, audits and warns about."""

    enforce: LevelVersion = _PRIVILEGED_LATEST
    audit: LevelVersion = _PRIVILEGED_LATEST
    warn: LevelVersion = _PRIVILEGED_LATEST

    @property
    def fully_privileged(self) -> bool:
        return self.enforce.level == self.audit.level == self.warn.level == Level.PRIVILEGED

    def equivalent(self, other: Policy) -> bool:
        return (
            self.enforce.equivalent(other.enforce)
            and self.audit.equivalent(other.audit)
            and self.warn.equivalent(other.warn)
        )


#: upstream's default configuration: privileged:latest for all three modes
DEFAULT_POLICY: Final = Policy()


def _label_error(label: str, value: str, err: PolicyError) -> errors.FieldError:
    return errors.invalid(f"metadata.labels[{label}]", value, str(err))


def policy_to_evaluate(
    labels: Mapping[str, str] | None, defaults: Policy = DEFAULT_POLICY
) -> tuple[Policy, list[errors.FieldError]]:
    """The policy a namespace's labels ask for, and the label errors (upstream's wording).

    A bad ``enforce`` level enforces ``restricted`` (fail closed); a bad ``audit`` or
    ``warn`` level is ``privileged`` (fail open); a bad version is ``latest``. When only an
    enforce level is set and it is stricter than the warn level, warn follows it (level,
    and version unless ``warn-version`` is set).
    """
    if not labels:
        return defaults, []
    errs: list[errors.FieldError] = []
    enforce, audit, warn = defaults.enforce, defaults.audit, defaults.warn
    has_enforce_level = False

    def level_of(label: str, fallback: Level) -> Level:
        try:
            return parse_level(labels[label])
        except PolicyError as e:
            errs.append(_label_error(label, labels[label], e))
            return fallback

    def version_of(label: str) -> Version:
        try:
            return parse_version(labels[label])
        except PolicyError as e:
            errs.append(_label_error(label, labels[label], e))
            return LATEST

    if ENFORCE_LEVEL_LABEL in labels:
        n = len(errs)
        enforce = LevelVersion(level_of(ENFORCE_LEVEL_LABEL, Level.RESTRICTED), enforce.version)
        has_enforce_level = len(errs) == n
    if ENFORCE_VERSION_LABEL in labels:
        enforce = LevelVersion(enforce.level, version_of(ENFORCE_VERSION_LABEL))
    if AUDIT_LEVEL_LABEL in labels:
        audit = LevelVersion(level_of(AUDIT_LEVEL_LABEL, Level.PRIVILEGED), audit.version)
    if AUDIT_VERSION_LABEL in labels:
        audit = LevelVersion(audit.level, version_of(AUDIT_VERSION_LABEL))
    has_warn_level = WARN_LEVEL_LABEL in labels
    if has_warn_level:
        warn = LevelVersion(level_of(WARN_LEVEL_LABEL, Level.PRIVILEGED), warn.version)
    has_warn_version = WARN_VERSION_LABEL in labels
    if has_warn_version:
        warn = LevelVersion(warn.level, version_of(WARN_VERSION_LABEL))

    if not has_warn_level and has_enforce_level and compare_levels(enforce.level, warn.level) > 0:
        warn = LevelVersion(enforce.level, warn.version if has_warn_version else enforce.version)
    return Policy(enforce, audit, warn), errs


# --- check results ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's verdict; a forbidden one says why (reason) and what exactly (detail)."""

    allowed: bool
    forbidden_reason: str = ""
    forbidden_detail: str = ""


_ALLOWED: Final = CheckResult(True)
UNKNOWN_FORBIDDEN_REASON: Final = "unknown forbidden reason"


@dataclass(frozen=True, slots=True)
class AggregateCheckResult:
    allowed: bool
    forbidden_reasons: tuple[str, ...] = ()
    forbidden_details: tuple[str, ...] = ()

    @property
    def forbidden_reason(self) -> str:
        """``host namespaces, privileged`` (used per pod in namespace warnings)."""
        return ", ".join(self.forbidden_reasons)

    @property
    def forbidden_detail(self) -> str:
        """``host namespaces (hostNetwork=true), privileged (container "c" must not ...)``."""
        return ", ".join(
            f"{r} ({d})" if d else r
            for r, d in zip(self.forbidden_reasons, self.forbidden_details, strict=True)
        )


def aggregate_results(results: Iterable[CheckResult]) -> AggregateCheckResult:
    """Upstream's AggregateCheckResults: the forbidden results, in order."""
    reasons: list[str] = []
    details: list[str] = []
    for r in results:
        if not r.allowed:
            reasons.append(r.forbidden_reason or UNKNOWN_FORBIDDEN_REASON)
            details.append(r.forbidden_detail)
    return AggregateCheckResult(not reasons, tuple(reasons), tuple(details))


# --- the checks -----------------------------------------------------------------------------


def _join_quote(items: Iterable[str]) -> str:
    items = list(items)
    return '"' + '", "'.join(items) + '"' if items else ""


def _plural(singular: str, plural: str, count: int) -> str:
    return singular if count == 1 else plural


def _containers_phrase(names: Sequence[str]) -> str:
    return f"{_plural('container', 'containers', len(names))} {_join_quote(names)}"


def _obj(d: Any, key: str) -> JSON | None:
    """``d[key]`` when it is an object (a set pointer in Go's terms), else None."""
    if not isinstance(d, dict):
        return None
    v = d.get(key)
    return v if isinstance(v, dict) else None


def _list(d: Any, key: str) -> list[Any]:
    v = d.get(key) if isinstance(d, dict) else None
    return v if isinstance(v, list) else []


@dataclass(frozen=True, slots=True)
class _Pod:
    """What a check reads: the pod's metadata and spec, and the user-namespace relaxation."""

    metadata: JSON
    spec: JSON
    relax_userns: bool  # the relaxation is enabled and the pod sets hostUsers: false

    @property
    def annotations(self) -> Mapping[str, Any]:
        a = self.metadata.get("annotations")
        return a if isinstance(a, dict) else {}

    @property
    def security_context(self) -> JSON | None:
        return _obj(self.spec, "securityContext")

    @property
    def windows(self) -> bool:
        os_ = _obj(self.spec, "os")
        return os_ is not None and os_.get("name") == "windows"

    def containers(self) -> Iterable[JSON]:
        """initContainers, containers, ephemeralContainers: upstream's visit order."""
        for key in ("initContainers", "containers", "ephemeralContainers"):
            for c in _list(self.spec, key):
                if isinstance(c, dict):
                    yield c


def _sc(container: JSON) -> JSON | None:
    return _obj(container, "securityContext")


def _name(container: JSON) -> str:
    return str(container.get("name", ""))


def _privileged(pod: _Pod) -> CheckResult:
    bad = [_name(c) for c in pod.containers() if (sc := _sc(c)) and sc.get("privileged") is True]
    if bad:
        return CheckResult(
            False,
            "privileged",
            f"{_containers_phrase(bad)} must not set securityContext.privileged=true",
        )
    return _ALLOWED


def _host_namespaces(pod: _Pod) -> CheckResult:
    used = [f"{k}=true" for k in ("hostNetwork", "hostPID", "hostIPC") if pod.spec.get(k) is True]
    if used:
        return CheckResult(False, "host namespaces", ", ".join(used))
    return _ALLOWED


_CAPS_BASELINE: Final = frozenset(
    {
        "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
        "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
    }
)  # fmt: skip


def _capabilities_baseline(pod: _Pod) -> CheckResult:
    bad: list[str] = []
    caps: set[str] = set()
    for c in pod.containers():
        added = _list(_obj(_sc(c), "capabilities"), "add")
        extra = {str(a) for a in added if a not in _CAPS_BASELINE}
        if extra:
            bad.append(_name(c))
            caps |= extra
    if bad:
        return CheckResult(
            False,
            "non-default capabilities",
            f"{_containers_phrase(bad)} must not include {_join_quote(sorted(caps))} "
            "in securityContext.capabilities.add",
        )
    return _ALLOWED


def _host_path_volumes(pod: _Pod) -> CheckResult:
    bad = [
        str(v.get("name", ""))
        for v in _list(pod.spec, "volumes")
        if isinstance(v, dict) and v.get("hostPath") is not None
    ]
    if bad:
        return CheckResult(
            False,
            "hostPath volumes",
            f"{_plural('volume', 'volumes', len(bad))} {_join_quote(bad)}",
        )
    return _ALLOWED


def _host_ports(pod: _Pod) -> CheckResult:
    bad: list[str] = []
    ports: set[str] = set()
    for c in pod.containers():
        used = {
            str(p.get("hostPort"))
            for p in _list(c, "ports")
            if isinstance(p, dict) and p.get("hostPort")
        }
        if used:
            bad.append(_name(c))
            ports |= used
    if bad:
        return CheckResult(
            False,
            "hostPort",
            f"{_containers_phrase(bad)} {_plural('uses', 'use', len(bad))} "
            f"{_plural('hostPort', 'hostPorts', len(ports))} {', '.join(sorted(ports))}",
        )
    return _ALLOWED


_APPARMOR_ANNOTATION_PREFIX: Final = "container.apparmor.security.beta.kubernetes.io/"


def _apparmor_profile(pod: _Pod) -> CheckResult:
    setters: list[str] = []
    values: set[str] = set()

    def bad_type(sc: JSON | None) -> bool:
        profile = _obj(sc, "appArmorProfile")
        if profile is None or profile.get("type") in ("RuntimeDefault", "Localhost"):
            return False
        values.add(str(profile.get("type") or ""))
        return True

    if bad_type(pod.security_context):
        setters.append("pod")
    bad = [_name(c) for c in pod.containers() if bad_type(_sc(c))]
    if bad:
        setters.append(_containers_phrase(bad))
    value_list = sorted(values)
    annotations = sorted(
        f"{k}={go_quote(str(v))}"
        for k, v in pod.annotations.items()
        if k.startswith(_APPARMOR_ANNOTATION_PREFIX)
        and not (v in ("", "runtime/default") or str(v).startswith("localhost/"))
    )
    if annotations:
        value_list += annotations
        setters.append(_plural("annotation", "annotations", len(annotations)))
    if setters:
        return CheckResult(
            False,
            _plural("forbidden AppArmor profile", "forbidden AppArmor profiles", len(value_list)),
            f"{' and '.join(setters)} must not set AppArmor profile type to "
            f"{_join_quote(value_list)}",
        )
    return _ALLOWED


_SELINUX_TYPES_1_0: Final = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})
_SELINUX_TYPES_1_31: Final = _SELINUX_TYPES_1_0 | {"container_engine_t"}


def _selinux_options(allowed_types: frozenset[str]) -> Callable[[_Pod], CheckResult]:
    def check(pod: _Pod) -> CheckResult:
        bad_types: set[str] = set()
        set_user = set_role = False

        def invalid(sc: JSON | None) -> bool:
            nonlocal set_user, set_role
            opts = _obj(sc, "seLinuxOptions")
            if opts is None:
                return False
            valid = True
            if (t := str(opts.get("type") or "")) not in allowed_types:
                valid = False
                bad_types.add(t)
            if opts.get("user"):
                valid, set_user = False, True
            if opts.get("role"):
                valid, set_role = False, True
            return not valid

        setters = ["pod"] if invalid(pod.security_context) else []
        bad = [_name(c) for c in pod.containers() if invalid(_sc(c))]
        if bad:
            setters.append(_containers_phrase(bad))
        if not setters:
            return _ALLOWED
        data = []
        if bad_types:
            types = sorted(bad_types)
            data.append(f"{_plural('type', 'types', len(types))} {_join_quote(types)}")
        if set_user:
            data.append("user may not be set")
        if set_role:
            data.append("role may not be set")
        return CheckResult(
            False,
            "seLinuxOptions",
            f"{' and '.join(setters)} set forbidden securityContext.seLinuxOptions: "
            f"{'; '.join(data)}",
        )

    return check


def _proc_mount(pod: _Pod) -> CheckResult:
    if pod.relax_userns:
        return _ALLOWED
    bad: list[str] = []
    types: set[str] = set()
    for c in pod.containers():
        sc = _sc(c)
        if sc is None or sc.get("procMount") is None:
            continue
        if sc["procMount"] != "Default":
            bad.append(_name(c))
            types.add(str(sc["procMount"]))
    if bad:
        return CheckResult(
            False,
            "procMount",
            f"{_containers_phrase(bad)} must not set securityContext.procMount to "
            f"{_join_quote(sorted(types))}",
        )
    return _ALLOWED


_SECCOMP_POD_ANNOTATION: Final = "seccomp.security.alpha.kubernetes.io/pod"
_SECCOMP_CONTAINER_ANNOTATION_PREFIX: Final = "container.seccomp.security.alpha.kubernetes.io/"
_VALID_SECCOMP: Final = frozenset({"RuntimeDefault", "Localhost"})


def _seccomp_annotation_ok(value: Any) -> bool:
    v = str(value)
    return v in ("runtime/default", "docker/default") or v.startswith("localhost/")


def _seccomp_baseline_1_0(pod: _Pod) -> CheckResult:
    forbidden: set[str] = set()
    annotations = pod.annotations
    keys = [_SECCOMP_POD_ANNOTATION] + [
        _SECCOMP_CONTAINER_ANNOTATION_PREFIX + _name(c) for c in pod.containers()
    ]
    for key in keys:
        if key in annotations and not _seccomp_annotation_ok(annotations[key]):
            forbidden.add(f"{key}={go_quote(str(annotations[key]))}")
    if forbidden:
        return CheckResult(
            False,
            "seccompProfile",
            f"forbidden {_plural('annotation', 'annotations', len(forbidden))} "
            f"{', '.join(sorted(forbidden))}",
        )
    return _ALLOWED


def _seccomp(pod: _Pod, *, required: bool) -> CheckResult:
    """seccompProfile.type: only RuntimeDefault or Localhost; ``required`` at restricted."""
    setters: list[str] = []
    values: set[str] = set()
    pod_set = False
    profile = _obj(pod.security_context, "seccompProfile")
    if profile is not None:
        if profile.get("type") not in _VALID_SECCOMP:
            setters.append("pod")
            values.add(str(profile.get("type") or ""))
        else:
            pod_set = True
    explicit: list[str] = []
    implicit: list[str] = []
    for c in pod.containers():
        profile = _obj(_sc(c), "seccompProfile")
        if profile is not None:
            if profile.get("type") not in _VALID_SECCOMP:
                explicit.append(_name(c))
                values.add(str(profile.get("type") or ""))
        elif not pod_set:
            implicit.append(_name(c))
    if explicit:
        setters.append(_containers_phrase(explicit))
    if setters:
        return CheckResult(
            False,
            "seccompProfile",
            f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to "
            f"{_join_quote(sorted(values))}",
        )
    if required and implicit:
        return CheckResult(
            False,
            "seccompProfile",
            f"pod or {_containers_phrase(implicit)} must set securityContext.seccompProfile.type "
            'to "RuntimeDefault" or "Localhost"',
        )
    return _ALLOWED


def _seccomp_baseline_1_19(pod: _Pod) -> CheckResult:
    return _seccomp(pod, required=False)


def _seccomp_restricted_1_19(pod: _Pod) -> CheckResult:
    return _seccomp(pod, required=True)


_SYSCTLS_1_0: Final = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_unprivileged_port_start",
    }
)
_SYSCTLS_1_27: Final = _SYSCTLS_1_0 | {"net.ipv4.ip_local_reserved_ports"}
_SYSCTLS_1_29: Final = _SYSCTLS_1_27 | {
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
_SYSCTLS_1_32: Final = _SYSCTLS_1_29 | {"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}


def _sysctls(allowed: frozenset[str]) -> Callable[[_Pod], CheckResult]:
    def check(pod: _Pod) -> CheckResult:
        bad = [
            str(s.get("name", ""))
            for s in _list(pod.security_context, "sysctls")
            if isinstance(s, dict) and s.get("name") not in allowed
        ]
        if bad:
            return CheckResult(False, "forbidden sysctls", ", ".join(bad))
        return _ALLOWED

    return check


def _host_process(sc: JSON | None) -> bool:
    opts = _obj(sc, "windowsOptions")
    return opts is not None and opts.get("hostProcess") is True


def _windows_host_process(pod: _Pod) -> CheckResult:
    setters = ["pod"] if _host_process(pod.security_context) else []
    bad = [_name(c) for c in pod.containers() if _host_process(_sc(c))]
    if bad:
        setters.append(_containers_phrase(bad))
    if setters:
        return CheckResult(
            False,
            "hostProcess",
            f"{' and '.join(setters)} must not set securityContext.windowsOptions.hostProcess=true",
        )
    return _ALLOWED


# restricted


_ALLOWED_VOLUME_SOURCES: Final = (
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
)  # fmt: skip
_RESTRICTED_VOLUME_SOURCES: Final = (
    "hostPath", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "nfs", "iscsi",
    "glusterfs", "rbd", "flexVolume", "cinder", "cephfs", "flocker", "fc", "azureFile",
    "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk", "portworxVolume",
    "scaleIO", "storageos",
)  # fmt: skip


def _restricted_volumes(pod: _Pod) -> CheckResult:
    bad: list[str] = []
    types: set[str] = set()
    for v in _list(pod.spec, "volumes"):
        if not isinstance(v, dict):
            continue
        if any(v.get(k) is not None for k in _ALLOWED_VOLUME_SOURCES):
            continue
        bad.append(str(v.get("name", "")))
        types.add(next((k for k in _RESTRICTED_VOLUME_SOURCES if v.get(k) is not None), "unknown"))
    if bad:
        n = len(bad)
        return CheckResult(
            False,
            "restricted volume types",
            f"{_plural('volume', 'volumes', n)} {_join_quote(bad)} {_plural('uses', 'use', n)} "
            f"{_plural('restricted volume type', 'restricted volume types', len(types))} "
            f"{_join_quote(sorted(types))}",
        )
    return _ALLOWED


def _allow_privilege_escalation_1_8(pod: _Pod) -> CheckResult:
    bad = [
        _name(c)
        for c in pod.containers()
        if (sc := _sc(c)) is None or sc.get("allowPrivilegeEscalation") is not False
    ]
    if bad:
        return CheckResult(
            False,
            "allowPrivilegeEscalation != false",
            f"{_containers_phrase(bad)} must set securityContext.allowPrivilegeEscalation=false",
        )
    return _ALLOWED


def _unless_windows(check: Callable[[_Pod], CheckResult]) -> Callable[[_Pod], CheckResult]:
    """From v1.25 a pod with ``spec.os.name: windows`` is exempt (validation forbids the field)."""

    def wrapped(pod: _Pod) -> CheckResult:
        return _ALLOWED if pod.windows else check(pod)

    return wrapped


def _run_as_non_root(pod: _Pod) -> CheckResult:
    if pod.relax_userns:
        return _ALLOWED
    setters: list[str] = []
    pod_non_root = False
    psc = pod.security_context
    if psc is not None and psc.get("runAsNonRoot") is not None:
        if psc["runAsNonRoot"] is False:
            setters.append("pod")
        else:
            pod_non_root = True
    explicit: list[str] = []
    implicit: list[str] = []
    for c in pod.containers():
        sc = _sc(c)
        if sc is not None and sc.get("runAsNonRoot") is not None:
            if sc["runAsNonRoot"] is False:
                explicit.append(_name(c))
        elif not pod_non_root:
            implicit.append(_name(c))
    if explicit:
        setters.append(_containers_phrase(explicit))
    if setters:
        return CheckResult(
            False,
            "runAsNonRoot != true",
            f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false",
        )
    if implicit:
        return CheckResult(
            False,
            "runAsNonRoot != true",
            f"pod or {_containers_phrase(implicit)} must set securityContext.runAsNonRoot=true",
        )
    return _ALLOWED


def _is_root(sc: JSON | None) -> bool:
    uid = sc.get("runAsUser") if sc is not None else None
    return isinstance(uid, int) and not isinstance(uid, bool) and uid == 0


def _run_as_user_1_23(pod: _Pod) -> CheckResult:
    if pod.relax_userns:
        return _ALLOWED
    setters = ["pod"] if _is_root(pod.security_context) else []
    bad = [_name(c) for c in pod.containers() if _is_root(_sc(c))]
    if bad:
        setters.append(_containers_phrase(bad))
    if setters:
        return CheckResult(
            False, "runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0"
        )
    return _ALLOWED


def _capabilities_restricted_1_22(pod: _Pod) -> CheckResult:
    missing_drop: list[str] = []
    adding: list[str] = []
    caps: set[str] = set()
    for c in pod.containers():
        capabilities = _obj(_sc(c), "capabilities")
        if capabilities is None:
            missing_drop.append(_name(c))
            continue
        if "ALL" not in _list(capabilities, "drop"):
            missing_drop.append(_name(c))
        extra = {str(a) for a in _list(capabilities, "add") if a != "NET_BIND_SERVICE"}
        if extra:
            adding.append(_name(c))
            caps |= extra
    details = []
    if missing_drop:
        details.append(
            f'{_containers_phrase(missing_drop)} must set securityContext.capabilities.drop=["ALL"]'
        )
    if adding:
        details.append(
            f"{_containers_phrase(adding)} must not include {_join_quote(sorted(caps))} "
            "in securityContext.capabilities.add"
        )
    if details:
        return CheckResult(False, "unrestricted capabilities", "; ".join(details))
    return _ALLOWED


# --- the registry ---------------------------------------------------------------------------

CheckFn = Callable[[_Pod], CheckResult]


@dataclass(frozen=True, slots=True)
class _Versioned:
    minimum: int  # the first v1.N this revision applies to
    check: CheckFn
    overrides: tuple[str, ...] = ()  # baseline checks a restricted check replaces


@dataclass(frozen=True, slots=True)
class _Check:
    id: str
    level: Level
    versions: tuple[_Versioned, ...]


_B, _R = Level.BASELINE, Level.RESTRICTED
_CHECKS: Final = (
    _Check("appArmorProfile", _B, (_Versioned(0, _apparmor_profile),)),
    _Check("capabilities_baseline", _B, (_Versioned(0, _capabilities_baseline),)),
    _Check("hostNamespaces", _B, (_Versioned(0, _host_namespaces),)),
    _Check("hostPathVolumes", _B, (_Versioned(0, _host_path_volumes),)),
    _Check("hostPorts", _B, (_Versioned(0, _host_ports),)),
    _Check("privileged", _B, (_Versioned(0, _privileged),)),
    _Check("procMount", _B, (_Versioned(0, _proc_mount),)),
    _Check(
        "seLinuxOptions",
        _B,
        (
            _Versioned(0, _selinux_options(_SELINUX_TYPES_1_0)),
            _Versioned(31, _selinux_options(_SELINUX_TYPES_1_31)),
        ),
    ),
    _Check(
        "seccompProfile_baseline",
        _B,
        (_Versioned(0, _seccomp_baseline_1_0), _Versioned(19, _seccomp_baseline_1_19)),
    ),
    _Check(
        "sysctls",
        _B,
        (
            _Versioned(0, _sysctls(_SYSCTLS_1_0)),
            _Versioned(27, _sysctls(_SYSCTLS_1_27)),
            _Versioned(29, _sysctls(_SYSCTLS_1_29)),
            _Versioned(32, _sysctls(_SYSCTLS_1_32)),
        ),
    ),
    _Check("windowsHostProcess", _B, (_Versioned(0, _windows_host_process),)),
    _Check(
        "allowPrivilegeEscalation",
        _R,
        (
            _Versioned(8, _allow_privilege_escalation_1_8),
            _Versioned(25, _unless_windows(_allow_privilege_escalation_1_8)),
        ),
    ),
    _Check(
        "capabilities_restricted",
        _R,
        (
            _Versioned(22, _capabilities_restricted_1_22, ("capabilities_baseline",)),
            _Versioned(
                25,
                _unless_windows(_capabilities_restricted_1_22),
                ("capabilities_baseline",),
            ),
        ),
    ),
    _Check(
        "restrictedVolumes",
        _R,
        (_Versioned(0, _restricted_volumes, ("hostPathVolumes",)),),
    ),
    _Check("runAsNonRoot", _R, (_Versioned(0, _run_as_non_root),)),
    _Check("runAsUser", _R, (_Versioned(23, _run_as_user_1_23),)),
    _Check(
        "seccompProfile_restricted",
        _R,
        (
            _Versioned(19, _seccomp_restricted_1_19, ("seccompProfile_baseline",)),
            _Versioned(25, _unless_windows(_seccomp_restricted_1_19), ("seccompProfile_baseline",)),
        ),
    ),
)

#: the newest policy version with its own rules; ``latest`` and newer versions mean this one
MAX_MINOR: Final = max(v.minimum for c in _CHECKS for v in c.versions)


def _revision(check: _Check, minor: int) -> _Versioned | None:
    found = None
    for v in check.versions:
        if v.minimum <= minor:
            found = v
    return found


@cache
def _checks_for(level: Level, minor: int) -> tuple[tuple[str, CheckFn], ...]:
    """The checks of ``level`` at v1.``minor``: baseline by ID, then restricted by ID."""
    baseline = {c.id: r for c in _CHECKS if c.level == _B and (r := _revision(c, minor))}
    if level == _B:
        return tuple((i, baseline[i].check) for i in sorted(baseline))
    restricted = {c.id: r for c in _CHECKS if c.level == _R and (r := _revision(c, minor))}
    overridden = {o for r in restricted.values() for o in r.overrides}
    return tuple((i, baseline[i].check) for i in sorted(baseline) if i not in overridden) + tuple(
        (i, restricted[i].check) for i in sorted(restricted)
    )


def _level_version(level: Level | str, version: Version | str) -> LevelVersion:
    lv = parse_level(level) if not isinstance(level, Level) else level
    v = parse_version(version) if isinstance(version, str) else version
    return LevelVersion(lv, v)


def check_pod(
    level: Level | str,
    version: Version | str,
    pod_metadata: JSON | None,
    pod_spec: JSON | None,
    *,
    relax_user_namespace_pods: bool = False,
) -> list[CheckResult]:
    """Every check of ``level`` at ``version`` run on a pod (or a pod template).

    ``privileged`` runs nothing. ``relax_user_namespace_pods`` is upstream's
    UserNamespacesPodSecurityStandards gate (off by default): pods with
    ``hostUsers: false`` then pass runAsNonRoot, runAsUser and procMount.
    """
    lv = _level_version(level, version)
    if lv.level == Level.PRIVILEGED:
        return []
    v = lv.version
    if v.latest or v.major > 1 or (v.major == 1 and v.minor > MAX_MINOR):
        minor = MAX_MINOR
    else:  # below v1.0 (never produced by parse_version) no check applies
        minor = v.minor if v.major == 1 else -1
    spec = pod_spec or {}
    pod = _Pod(
        pod_metadata or {},
        spec,
        relax_user_namespace_pods and spec.get("hostUsers") is False,
    )
    return [check(pod) for _, check in _checks_for(lv.level, minor)]


def evaluate_pod(
    lv: LevelVersion,
    pod_metadata: JSON | None,
    pod_spec: JSON | None,
    *,
    relax_user_namespace_pods: bool = False,
) -> AggregateCheckResult:
    """:func:`check_pod` aggregated: allowed, or the reasons and details in order."""
    return aggregate_results(
        check_pod(
            lv.level,
            lv.version,
            pod_metadata,
            pod_spec,
            relax_user_namespace_pods=relax_user_namespace_pods,
        )
    )


# --- configuration ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PodSecurityConfig:
    """The plugin's configuration: the policy of unlabelled namespaces and the exemptions."""

    defaults: Policy = DEFAULT_POLICY
    exempt_usernames: frozenset[str] = frozenset()
    exempt_namespaces: frozenset[str] = frozenset()
    exempt_runtime_classes: frozenset[str] = frozenset()
    #: upstream's UserNamespacesPodSecurityStandards feature gate (alpha, off in v1.32)
    relax_user_namespace_pods: bool = False
    #: a namespace update checks at most this many existing pods (upstream: 3000)
    max_pods_to_check: int = 3000

    @classmethod
    def from_configuration(cls, cfg: Mapping[str, Any] | None) -> PodSecurityConfig:
        """From a ``PodSecurityConfiguration`` (pod-security.admission.config.k8s.io/v1,
        v1beta1 or v1alpha1), as found in an ``--admission-control-config-file``.

        Unset defaults are ``privileged``/``latest``; invalid values raise
        :class:`PolicyError` with upstream's field errors.
        """
        cfg = cfg or {}
        defaults = cfg.get("defaults") or {}
        exemptions = cfg.get("exemptions") or {}
        errs: list[errors.FieldError] = []
        modes: dict[str, LevelVersion] = {}
        for mode in ("enforce", "warn", "audit"):
            level_s = str(defaults.get(mode) or "privileged")
            version_s = str(defaults.get(f"{mode}-version") or "latest")
            level, version = Level.PRIVILEGED, LATEST
            try:
                level = parse_level(level_s)
            except PolicyError as e:
                errs.append(errors.invalid(f"defaults.{mode}", level_s, str(e)))
            try:
                version = parse_version(version_s)
            except PolicyError as e:
                errs.append(errors.invalid(f"defaults.{mode}-version", version_s, str(e)))
            modes[mode] = LevelVersion(level, version)

        def names(key: str, check: Callable[[str], list[str]]) -> frozenset[str]:
            seen: set[str] = set()
            for i, raw in enumerate(exemptions.get(key) or []):
                name, path = str(raw), f"exemptions.{key}[{i}]"
                problems = check(name)
                if key == "usernames" and not name:
                    errs.append(errors.required(path))
                elif problems:
                    errs.append(errors.invalid(path, name, ", ".join(problems)))
                elif name in seen:
                    errs.append(errors.duplicate(path, name))
                else:
                    seen.add(name)
            return frozenset(seen)

        namespaces = names("namespaces", is_dns1123_label)
        runtime_classes = names("runtimeClasses", is_dns1123_subdomain)
        usernames = names("usernames", lambda u: [])
        if errs:
            raise PolicyError(errors.aggregate_message([str(e) for e in errs]))
        return cls(
            defaults=Policy(modes["enforce"], modes["audit"], modes["warn"]),
            exempt_usernames=usernames,
            exempt_namespaces=namespaces,
            exempt_runtime_classes=runtime_classes,
        )

    def exempt_namespace(self, namespace: str) -> bool:
        return bool(namespace) and namespace in self.exempt_namespaces

    def exempt_user(self, username: str) -> bool:
        return bool(username) and username in self.exempt_usernames

    def exempt_runtime_class(self, runtime_class: Any) -> bool:
        return bool(runtime_class) and runtime_class in self.exempt_runtime_classes


DEFAULT_CONFIG: Final = PodSecurityConfig()


# --- the admission decision -----------------------------------------------------------------


@dataclass
class Decision:
    """What the plugin answers: allowed or the error, warnings, audit annotations."""

    allowed: bool = True
    error: errors.StatusError | None = None
    warnings: list[str] = field(default_factory=list)
    #: keys already carry the ``pod-security.kubernetes.io/`` prefix
    audit_annotations: dict[str, str] = field(default_factory=dict)


def _deny(error: errors.StatusError, annotations: dict[str, str] | None = None) -> Decision:
    return Decision(False, error, [], annotations or {})


#: (group, resource) of the workload types whose pod template is audited and warned on
WORKLOAD_RESOURCES: Final = frozenset(
    {
        ("", "replicationcontrollers"),
        ("", "podtemplates"),
        ("apps", "replicasets"),
        ("apps", "deployments"),
        ("apps", "statefulsets"),
        ("apps", "daemonsets"),
        ("batch", "jobs"),
        ("batch", "cronjobs"),
    }
)

#: pod subresources that cannot change what the checks read
IGNORED_POD_SUBRESOURCES: Final = frozenset(
    {"exec", "attach", "binding", "eviction", "log", "portforward", "proxy", "status"}
)


def applies_to(group: str, resource: str) -> bool:
    """Whether the plugin looks at writes of ``group``/``resource`` at all."""
    return (group == "" and resource in ("pods", "namespaces")) or (
        group,
        resource,
    ) in WORKLOAD_RESOURCES


def extract_pod_template(group: str, resource: str, obj: JSON) -> tuple[JSON, JSON] | None:
    """(metadata, spec) of the pod a workload object describes; None if it has none."""
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    template: Any
    if (group, resource) == ("", "pods"):
        return obj.get("metadata") or {}, spec or {}
    if (group, resource) == ("", "podtemplates"):
        template = obj.get("template") or {}
    elif (group, resource) == ("batch", "cronjobs"):
        job = _obj(spec, "jobTemplate") or {}
        template = _obj(_obj(job, "spec"), "template") or {}
    elif (group, resource) == ("", "replicationcontrollers"):
        template = _obj(spec, "template")  # a pointer upstream: may be absent
        if template is None:
            return None
    elif (group, resource) in WORKLOAD_RESOURCES:
        template = _obj(spec, "template") or {}
    else:
        return None
    return _obj(template, "metadata") or {}, _obj(template, "spec") or {}


def _forbidden(resource: str, group: str, name: str, message: str) -> errors.StatusError:
    """apimachinery's NewForbidden: ``pods "x" is forbidden: <message>`` (403)."""
    qualified = f"{resource}.{group}" if group else resource
    text = (
        f"{qualified} {go_quote(name)} is forbidden: {message}"
        if name
        else f"{qualified} is forbidden: {message}"
    )
    details: dict[str, Any] = {"name": name, "kind": resource}
    if group:
        details["group"] = group
    return errors.StatusError(403, "Forbidden", text, details)


def _evaluate_pod_spec(
    config: PodSecurityConfig,
    policy: Policy,
    policy_errs: list[errors.FieldError],
    metadata: JSON,
    spec: JSON,
    *,
    resource: str,
    group: str,
    name: str,
    enforce: bool,
) -> Decision:
    """Upstream's EvaluatePod: enforce (pods only), then audit, then warn."""
    if config.exempt_runtime_class(spec.get("runtimeClassName")):
        return Decision(audit_annotations={AUDIT_EXEMPT: "runtimeClass"})
    annotations: dict[str, str] = {}
    if policy_errs:
        annotations[AUDIT_ERROR] = "Failed to parse policy: " + errors.aggregate_message(
            [str(e) for e in policy_errs]
        )
    cached: dict[LevelVersion, AggregateCheckResult] = {}

    def result(lv: LevelVersion) -> AggregateCheckResult:
        if lv not in cached:
            cached[lv] = evaluate_pod(
                lv, metadata, spec, relax_user_namespace_pods=config.relax_user_namespace_pods
            )
        return cached[lv]

    decision = Decision(audit_annotations=annotations)
    if enforce:
        annotations[AUDIT_ENFORCE_POLICY] = str(policy.enforce)
        r = result(policy.enforce)
        if not r.allowed:
            decision.allowed = False
            decision.error = _forbidden(
                resource,
                group,
                name,
                f"violates PodSecurity {go_quote(str(policy.enforce))}: {r.forbidden_detail}",
            )
    r = result(policy.audit)
    if not r.allowed:
        annotations[AUDIT_VIOLATIONS] = (
            f"would violate PodSecurity {go_quote(str(policy.audit))}: {r.forbidden_detail}"
        )
    if decision.allowed:
        r = result(policy.warn)
        if not r.allowed:
            decision.warnings.append(
                f"would violate PodSecurity {go_quote(str(policy.warn))}: {r.forbidden_detail}"
            )
    return decision


def _images(spec: JSON, key: str) -> list[Any]:
    return [c.get("image") if isinstance(c, dict) else None for c in _list(spec, key)]


def _significant_pod_update(pod: JSON, old: JSON) -> bool:
    """Only a changed image (or a new ephemeral container) can change the verdict."""
    spec, old_spec = pod.get("spec") or {}, old.get("spec") or {}
    for key in ("containers", "initContainers"):
        if _images(spec, key) != _images(old_spec, key):
            return True
    old_ephemeral = {
        c.get("name"): c.get("image")
        for c in _list(old_spec, "ephemeralContainers")
        if isinstance(c, dict)
    }
    for c in _list(spec, "ephemeralContainers"):
        if not isinstance(c, dict):
            continue
        if c.get("name") not in old_ephemeral or old_ephemeral[c.get("name")] != c.get("image"):
            return True
    return False


def _controller_uid(pod: JSON) -> Any:
    for ref in _list(pod.get("metadata"), "ownerReferences"):
        if isinstance(ref, dict) and ref.get("controller") is True:
            return ref.get("uid")
    return None


def namespace_pod_warnings(
    namespace: str,
    enforce: LevelVersion,
    pods: Iterable[JSON],
    config: PodSecurityConfig = DEFAULT_CONFIG,
) -> list[str]:
    """The warnings upstream adds when a namespace's enforce level is tightened.

    ``existing pods in namespace "x" violate the new PodSecurity enforce level
    "restricted:latest"``, then one line per distinct set of reasons, named after the
    lexically first pod with a count of the others (``web-1 (and 2 other pods):
    allowPrivilegeEscalation != false, ...``), sorted. Pods of an exempt runtime class are
    skipped; one pod per controller is checked before the others; at most
    ``config.max_pods_to_check`` pods are checked (upstream also stops after one second,
    which a pure function does not do).
    """
    prioritized: list[JSON] = []
    duplicates: list[JSON] = []
    seen_controllers: set[Any] = set()
    for pod in pods:
        if config.exempt_runtime_class((pod.get("spec") or {}).get("runtimeClassName")):
            continue
        uid = _controller_uid(pod)
        if uid is None:
            prioritized.append(pod)
        elif uid in seen_controllers:
            duplicates.append(pod)
        else:
            seen_controllers.add(uid)
            prioritized.append(pod)
    prioritized += duplicates
    total = len(prioritized)
    checked = prioritized[: config.max_pods_to_check]

    order: list[str] = []
    first: dict[str, str] = {}
    count: dict[str, int] = {}
    for pod in checked:
        meta = pod.get("metadata") or {}
        r = evaluate_pod(
            enforce,
            meta,
            pod.get("spec") or {},
            relax_user_namespace_pods=config.relax_user_namespace_pods,
        )
        if r.allowed:
            continue
        reason, pod_name = r.forbidden_reason, str(meta.get("name", ""))
        if reason not in first:
            order.append(reason)
            first[reason] = pod_name
        elif pod_name < first[reason]:
            first[reason] = pod_name
        count[reason] = count.get(reason, 0) + 1

    warnings: list[str] = []
    if len(checked) < total:
        warnings.append(
            f"new PodSecurity enforce level only checked against the first {len(checked)} "
            f"of {total} existing pods"
        )
    if order:
        warnings.append(
            f"existing pods in namespace {go_quote(namespace)} violate the new PodSecurity "
            f"enforce level {go_quote(str(enforce))}"
        )
    lines = []
    for reason in order:
        n = count[reason]
        others = "" if n == 1 else " (and 1 other pod)" if n == 2 else f" (and {n - 1} other pods)"
        lines.append(f"{first[reason]}{others}: {reason}")
    return warnings + sorted(lines)


def _exempt_namespace_warning(
    name: str, policy: Policy, labels: Mapping[str, str], defaults: Policy
) -> str:
    """``namespace "x" is exempt from Pod Security, and the policy (...) will be ignored``."""
    if policy.fully_privileged or policy.equivalent(defaults):
        return ""
    parts = []
    for mode, lv in (("enforce", policy.enforce), ("audit", policy.audit), ("warn", policy.warn)):
        labelled = LABEL_PREFIX + mode in labels or f"{LABEL_PREFIX}{mode}-version" in labels
        if lv.level != Level.PRIVILEGED and labelled:
            parts.append(f"{mode}={lv}")
    return (
        f"namespace {go_quote(name)} is exempt from Pod Security, and the policy "
        f"({', '.join(parts)}) will be ignored"
    )


PodsArg = Iterable[JSON] | Callable[[], Iterable[JSON]]


def _labels(obj: JSON | None) -> dict[str, str]:
    labels = ((obj or {}).get("metadata") or {}).get("labels")
    return labels if isinstance(labels, dict) else {}


def _validate_namespace(
    config: PodSecurityConfig,
    operation: str,
    namespace: JSON,
    old_namespace: JSON | None,
    request_namespace: str | None,
    pods: PodsArg,
) -> Decision:
    name = str((namespace.get("metadata") or {}).get("name", ""))
    labels = _labels(namespace)
    policy, errs = policy_to_evaluate(labels, config.defaults)
    # upstream exempts by the request's namespace: "" on create (POST /namespaces), the
    # namespace's own name on update (PUT /namespaces/<name>)
    if request_namespace is None:
        request_namespace = "" if operation == "CREATE" else name
    exempt = config.exempt_namespace(request_namespace)

    def exempt_decision() -> Decision:
        warning = _exempt_namespace_warning(name, policy, labels, config.defaults)
        return Decision(warnings=[warning] if warning else [])

    if operation == "CREATE":
        if errs:
            return _deny(errors.invalid_object("Namespace", name, errs))
        return exempt_decision() if exempt else Decision()
    old_policy, old_errs = policy_to_evaluate(_labels(old_namespace), config.defaults)
    if errs and (not old_errs or errs != old_errs):
        return _deny(errors.invalid_object("Namespace", name, errs))
    new, old = policy.enforce, old_policy.enforce
    if new == old or new.level == Level.PRIVILEGED:
        return Decision()
    if new.version == old.version and compare_levels(new.level, old.level) < 1:
        return Decision()
    if exempt:
        return exempt_decision()
    if callable(pods):
        try:
            listed = list(pods())
        except Exception:
            return Decision(
                warnings=["failed to list pods while checking new PodSecurity enforce level"]
            )
    else:
        listed = list(pods)
    return Decision(warnings=namespace_pod_warnings(name, new, listed, config))


def evaluate(
    config: PodSecurityConfig,
    *,
    operation: str,
    resource: str,
    obj: JSON,
    group: str = "",
    subresource: str = "",
    name: str | None = None,
    namespace: str = "",
    namespace_labels: Mapping[str, str] | None = None,
    old_obj: JSON | None = None,
    username: str = "",
    pods: PodsArg = (),
    request_namespace: str | None = None,
) -> Decision:
    """The PodSecurity plugin's answer to one write (upstream's Admission.Validate).

    * ``operation``: ``CREATE`` or ``UPDATE`` (any case); other operations are allowed.
    * ``resource``/``group``/``subresource``: what is written (``pods``, ``""``, ``""``).
    * ``obj``/``old_obj``: the object (already defaulted) and, on update, the stored one.
    * ``name``: the object's name as the error should show it (default: ``obj``'s name).
    * ``namespace``/``namespace_labels``: where the object lives and that namespace's
      labels; ``namespace_labels=None`` means the namespace could not be read.
    * ``username``: the requesting user, for exemptions.
    * ``pods`` (namespace updates only): the namespace's pods, or a function listing them,
      called only when the enforce level tightens.
    * ``request_namespace`` (namespaces only): the namespace of the request, which upstream
      uses for the namespace exemption; by default ``""`` on create (so an exempt
      namespace is not warned about at creation, as upstream) and the name on update.

    A pod that violates the enforce level gets a 403 ``pods "x" is forbidden: violates
    PodSecurity "restricted:latest": ...``; audit and warn violations become the
    ``audit-violations`` annotation and the ``would violate PodSecurity ...`` warning.
    Workload resources are never enforced. An invalid namespace label is a 422.
    """
    op = operation.upper()
    if op not in ("CREATE", "UPDATE") or not applies_to(group, resource):
        return Decision()
    if name is None:
        name = str((obj.get("metadata") or {}).get("name", ""))

    if group == "" and resource == "namespaces":
        if subresource:
            return Decision()
        return _validate_namespace(config, op, obj, old_obj, request_namespace, pods)

    is_pod = group == "" and resource == "pods"
    if (is_pod and subresource in IGNORED_POD_SUBRESOURCES) or (not is_pod and subresource):
        return Decision()
    if config.exempt_namespace(namespace):
        return Decision(audit_annotations={AUDIT_EXEMPT: "namespace"})
    if config.exempt_user(username):
        return Decision(audit_annotations={AUDIT_EXEMPT: "user"})

    if namespace_labels is None:
        if is_pod:
            error = errors.internal(f"failed to lookup namespace {go_quote(namespace)}")
            return _deny(
                error,
                {AUDIT_ERROR: f"{error.message}: namespaces {go_quote(namespace)} not found"},
            )
        return Decision(
            audit_annotations={
                AUDIT_ERROR: f"failed to lookup namespace {go_quote(namespace)}: "
                f"namespaces {go_quote(namespace)} not found"
            }
        )
    policy, policy_errs = policy_to_evaluate(namespace_labels, config.defaults)

    if is_pod:
        if not policy_errs and policy.fully_privileged:
            return Decision(audit_annotations={AUDIT_ENFORCE_POLICY: str(_PRIVILEGED_LATEST)})
        if op == "UPDATE" and old_obj is not None and not _significant_pod_update(obj, old_obj):
            return Decision()
        metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        return _evaluate_pod_spec(
            config,
            policy,
            policy_errs,
            metadata or {},
            spec or {},
            resource=resource,
            group=group,
            name=name,
            enforce=True,
        )

    if (
        not policy_errs
        and policy.warn.level == Level.PRIVILEGED
        and policy.audit.level == Level.PRIVILEGED
    ):
        return Decision()
    template = extract_pod_template(group, resource, obj)
    if template is None:
        return Decision()
    return _evaluate_pod_spec(
        config,
        policy,
        policy_errs,
        template[0],
        template[1],
        resource=resource,
        group=group,
        name=name,
        enforce=False,
    )
