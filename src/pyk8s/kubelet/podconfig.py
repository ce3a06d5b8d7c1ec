"""Translate a Pod (the plain dict the API server returns) into CRI sandbox/container configs.

The kubelet's runtime manager must tell a CRI runtime (containerd) exactly what to create:
the sandbox's namespaces, hostname, port mappings and log directory, and per container its
image, argv, environment, mounts, cgroup limits and security settings. Upstream spreads this
over kuberuntime's ``generatePodSandboxConfig``/``generateContainerConfig`` and the kubelet's
``makeEnvironmentVariables``; here it is one pure module (no I/O) so every rule can be unit
tested: the caller fetches ConfigMaps/Secrets and prepares mounts, we only compute.

Deliberate differences from upstream: ``io.kubernetes.container.hash`` is our own FNV-32a
of the container's name and image (stable, not byte-identical to upstream's); port mappings
are emitted only for ports with a ``hostPort`` (the others never reach the portmap plugin);
environment order is declaration order (upstream emits a Go map, i.e. random order).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pyk8s.api.qos import pod_qos_class
from pyk8s.api.quantity import milli_value, value
from pyk8s.kubelet import downward
from pyk8s.kubelet.cri import api_pb2

_MIN_SHARES = 2
_MAX_SHARES = 262144
_SHARES_PER_CPU = 1024
_CPU_PERIOD = 100000
_MIN_QUOTA = 1000
_GUARANTEED_OOM_ADJ = -997
_BEST_EFFORT_OOM_ADJ = 1000
_PROTOCOLS = {"TCP": api_pb2.TCP, "UDP": api_pb2.UDP, "SCTP": api_pb2.SCTP}


class EnvError(Exception):
    """A container's environment cannot be built; ``reason`` is the waiting-state reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# --- sandbox -------------------------------------------------------------------------------


def namespace_options(pod: Mapping[str, Any]) -> api_pb2.NamespaceOption:
    """Which Linux namespaces the pod shares with the node, the pod, or keeps per container."""
    spec = pod.get("spec") or {}
    pid = api_pb2.CONTAINER
    if spec.get("hostPID"):
        pid = api_pb2.NODE
    elif spec.get("shareProcessNamespace"):
        pid = api_pb2.POD
    return api_pb2.NamespaceOption(
        network=api_pb2.NODE if spec.get("hostNetwork") else api_pb2.POD,
        pid=pid,
        ipc=api_pb2.NODE if spec.get("hostIPC") else api_pb2.POD,
    )


def pod_hostname(pod: Mapping[str, Any]) -> str:
    """``spec.hostname`` or the pod name cut to a 63-char DNS label (no trailing ``-``/``.``)."""
    spec = pod.get("spec") or {}
    name: str = spec.get("hostname") or pod["metadata"]["name"]
    if len(name) > 63:
        name = name[:63].rstrip("-.")
    return name


def _pod_security(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    return (pod.get("spec") or {}).get("securityContext") or {}


def _supplemental_groups(pod: Mapping[str, Any]) -> list[int]:
    psc = _pod_security(pod)
    groups = [int(g) for g in psc.get("supplementalGroups") or ()]
    if psc.get("fsGroup") is not None:
        groups.insert(0, int(psc["fsGroup"]))
    return groups


def sandbox_config(
    pod: Mapping[str, Any],
    *,
    attempt: int = 0,
    log_root: Path = Path("/var/log/pods"),
    dns: api_pb2.DNSConfig | None = None,
) -> api_pb2.PodSandboxConfig:
    """The ``RunPodSandbox`` config for ``pod``."""
    meta = pod["metadata"]
    spec = pod.get("spec") or {}
    name, ns, uid = meta["name"], meta.get("namespace", "default"), meta["uid"]
    labels = dict(meta.get("labels") or {})
    labels.update(
        {
            "io.kubernetes.pod.name": name,
            "io.kubernetes.pod.namespace": ns,
            "io.kubernetes.pod.uid": uid,
        }
    )
    ports = [
        api_pb2.PortMapping(
            protocol=_PROTOCOLS.get(p.get("protocol") or "TCP", api_pb2.TCP),
            container_port=int(p["containerPort"]),
            host_port=int(p["hostPort"]),
            host_ip=p.get("hostIP", ""),
        )
        for c in spec.get("containers") or ()
        for p in c.get("ports") or ()
        if p.get("hostPort")
    ]
    psc = _pod_security(pod)
    security = api_pb2.LinuxSandboxSecurityContext(
        namespace_options=namespace_options(pod),
        privileged=any(
            (c.get("securityContext") or {}).get("privileged")
            for c in [*(spec.get("initContainers") or ()), *(spec.get("containers") or ())]
        ),
        supplemental_groups=_supplemental_groups(pod),
    )
    if psc.get("runAsUser") is not None:
        security.run_as_user.value = int(psc["runAsUser"])
    if psc.get("runAsGroup") is not None:
        security.run_as_group.value = int(psc["runAsGroup"])
    config = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, namespace=ns, uid=uid, attempt=attempt),
        hostname="" if spec.get("hostNetwork") else pod_hostname(pod),
        log_directory=str(log_root / f"{ns}_{name}_{uid}"),
        port_mappings=ports,
        labels=labels,
        annotations=dict(meta.get("annotations") or {}),
        linux=api_pb2.LinuxPodSandboxConfig(
            cgroup_parent="",
            security_context=security,
            sysctls={s["name"]: str(s.get("value", "")) for s in psc.get("sysctls") or ()},
        ),
    )
    if dns is not None:
        config.dns_config.CopyFrom(dns)
    return config


# --- resources -----------------------------------------------------------------------------


def _quantity(resources: Mapping[str, Any], kind: str, name: str) -> Any:
    return (resources.get(kind) or {}).get(name)


def oom_score_adj(pod: Mapping[str, Any], container: Mapping[str, Any], machine_memory: int) -> int:
    """Upstream's OOM score: Guaranteed or node-critical -997, BestEffort 1000, else 3..999."""
    qos = pod_qos_class(pod)
    critical = (pod.get("spec") or {}).get("priorityClassName") == "system-node-critical"
    if critical or qos == "Guaranteed":
        return _GUARANTEED_OOM_ADJ
    if qos == "BestEffort":
        return _BEST_EFFORT_OOM_ADJ
    if machine_memory <= 0:
        return _BEST_EFFORT_OOM_ADJ - 1
    request = _quantity(container.get("resources") or {}, "requests", "memory")
    mem = value(request) if request is not None else 0
    adj = 1000 - (1000 * mem) // machine_memory
    return max(1000 + _GUARANTEED_OOM_ADJ, min(_BEST_EFFORT_OOM_ADJ - 1, adj))


def linux_resources(
    container: Mapping[str, Any],
    *,
    pod: Mapping[str, Any] | None = None,
    machine_memory: int = 0,
) -> api_pb2.LinuxContainerResources:
    """cgroup settings for ``container``: CPU shares/quota, memory limit, OOM score.

    ``pod`` selects the QoS class for the OOM score (a pod of just this container if not
    given); ``machine_memory`` (bytes) scales a Burstable container's score, 0 = unknown.
    """
    res = container.get("resources") or {}
    cpu_req, cpu_lim = _quantity(res, "requests", "cpu"), _quantity(res, "limits", "cpu")
    mem_lim = _quantity(res, "limits", "memory")
    milli_req = milli_value(cpu_req) if cpu_req is not None else 0
    milli_lim = milli_value(cpu_lim) if cpu_lim is not None else 0
    if milli_req == 0:
        milli_req = milli_lim
    shares = milli_req * _SHARES_PER_CPU // 1000
    quota = max(_MIN_QUOTA, milli_lim * _CPU_PERIOD // 1000) if milli_lim else 0
    owner = pod if pod is not None else {"spec": {"containers": [container]}}
    return api_pb2.LinuxContainerResources(
        cpu_shares=max(_MIN_SHARES, min(_MAX_SHARES, shares)),
        cpu_period=_CPU_PERIOD,
        cpu_quota=quota,
        memory_limit_in_bytes=value(mem_lim) if mem_lim is not None else 0,
        oom_score_adj=oom_score_adj(owner, container, machine_memory),
    )


# --- container -----------------------------------------------------------------------------


def container_hash(container: Mapping[str, Any]) -> str:
    """FNV-32a (hex) of the container's name and image: changes when either does."""
    h = 0x811C9DC5
    data = json.dumps({"image": container.get("image", ""), "name": container["name"]})
    for b in data.encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return format(h, "x")


def _expand_all(items: Sequence[str], env: Sequence[tuple[str, str]]) -> list[str]:
    values = dict(env)
    return [expand(s, values) for s in items]


def container_config(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    *,
    restart_count: int,
    env: list[tuple[str, str]],
    mounts: list[api_pb2.Mount],
    machine_memory: int = 0,
) -> api_pb2.ContainerConfig:
    """The ``CreateContainer`` config for ``container`` of ``pod``.

    ``command``/``args`` go to the runtime separately (an empty command keeps the image's
    entrypoint) after ``$(VAR)`` expansion against ``env``, as upstream does.
    """
    meta = pod["metadata"]
    spec = pod.get("spec") or {}
    name = container["name"]
    annotations = {
        "io.kubernetes.container.hash": container_hash(container),
        "io.kubernetes.container.restartCount": str(restart_count),
        "io.kubernetes.container.terminationMessagePath": container.get(
            "terminationMessagePath", "/dev/termination-log"
        ),
        "io.kubernetes.container.terminationMessagePolicy": container.get(
            "terminationMessagePolicy", "File"
        ),
    }
    if spec.get("terminationGracePeriodSeconds") is not None:
        grace = str(spec["terminationGracePeriodSeconds"])
        annotations["io.kubernetes.pod.terminationGracePeriod"] = grace
    if meta.get("deletionGracePeriodSeconds") is not None:
        grace = str(meta["deletionGracePeriodSeconds"])
        annotations["io.kubernetes.pod.deletionGracePeriod"] = grace
    if container.get("ports"):
        annotations["io.kubernetes.container.ports"] = json.dumps(container["ports"])
    config = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name=name, attempt=restart_count),
        image=api_pb2.ImageSpec(image=container["image"], user_specified_image=container["image"]),
        command=_expand_all(container.get("command") or (), env),
        args=_expand_all(container.get("args") or (), env),
        working_dir=container.get("workingDir", ""),
        envs=[api_pb2.KeyValue(key=k, value=v) for k, v in env],
        mounts=mounts,
        labels={
            "io.kubernetes.container.name": name,
            "io.kubernetes.pod.name": meta["name"],
            "io.kubernetes.pod.namespace": meta.get("namespace", "default"),
            "io.kubernetes.pod.uid": meta["uid"],
        },
        annotations=annotations,
        log_path=f"{name}/{restart_count}.log",
        stdin=bool(container.get("stdin")),
        stdin_once=bool(container.get("stdinOnce")),
        tty=bool(container.get("tty")),
        linux=api_pb2.LinuxContainerConfig(
            resources=linux_resources(container, pod=pod, machine_memory=machine_memory),
            security_context=_container_security(pod, container),
        ),
    )
    return config


def _container_security(
    pod: Mapping[str, Any], container: Mapping[str, Any]
) -> api_pb2.LinuxContainerSecurityContext:
    psc = _pod_security(pod)
    csc = container.get("securityContext") or {}
    caps = csc.get("capabilities") or {}
    sc = api_pb2.LinuxContainerSecurityContext(
        privileged=bool(csc.get("privileged")),
        capabilities=api_pb2.Capability(
            add_capabilities=[c.upper() for c in caps.get("add") or ()],
            drop_capabilities=[c.upper() for c in caps.get("drop") or ()],
        ),
        namespace_options=namespace_options(pod),
        readonly_rootfs=bool(csc.get("readOnlyRootFilesystem")),
        supplemental_groups=_supplemental_groups(pod),
        no_new_privs=csc.get("allowPrivilegeEscalation") is False,
    )
    for field, key in (("run_as_user", "runAsUser"), ("run_as_group", "runAsGroup")):
        chosen = csc.get(key) if csc.get(key) is not None else psc.get(key)
        if chosen is not None:
            getattr(sc, field).value = int(chosen)
    return sc


# --- environment ---------------------------------------------------------------------------


def expand(text: str, *mappings: Mapping[str, str]) -> str:
    """Upstream's ``$(VAR)`` expansion: ``$$`` is a literal ``$``; unknown refs stay as is."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "$" or i + 1 >= len(text):
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(" and (end := text.find(")", i + 2)) != -1:
            name = text[i + 2 : end]
            found = next((m[name] for m in mappings if name in m), None)
            out.append(found if found is not None else f"$({name})")
            i = end + 1
        else:
            out.append("$" + nxt)
            i += 2
    return "".join(out)


def _text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


def resolve_env(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    *,
    node_name: str,
    host_ip: str,
    pod_ip: str,
    config_maps: Mapping[str, Mapping[str, str]],
    secrets: Mapping[str, Mapping[str, bytes | str]],
    service_env: Mapping[str, str] | None = None,
    node_allocatable: Mapping[str, str] | None = None,
    pod_ips: Sequence[str] | None = None,
) -> list[tuple[str, str]]:
    """The container's environment, as the kubelet builds it before ``CreateContainer``.

    ``envFrom`` first, then ``env`` in order (later names replace earlier ones in place),
    then service variables not already defined. ``config_maps``/``secrets`` hold the
    namespace's objects' data by name; a missing, non-optional one raises :class:`EnvError`.
    """
    ns = pod["metadata"].get("namespace", "default")
    service = service_env or {}
    allocatable = node_allocatable or {}
    ips = list(pod_ips) if pod_ips is not None else ([pod_ip] if pod_ip else [])
    env: dict[str, str] = {}

    def source(ref: Mapping[str, Any], kind: str) -> Mapping[str, bytes | str] | None:
        store: Mapping[str, Mapping[str, bytes | str]] = (
            config_maps if kind == "ConfigMap" else secrets
        )
        data = store.get(ref["name"])
        if data is None and not ref.get("optional"):
            raise EnvError(
                "CreateContainerConfigError", f'{kind.lower()} "{ref["name"]}" not found'
            )
        return data

    for item in container.get("envFrom") or ():
        ref, kind = (
            (item["configMapRef"], "ConfigMap")
            if "configMapRef" in item
            else (item["secretRef"], "Secret")
        )
        data = source(ref, kind)
        for key, val in (data or {}).items():
            env[item.get("prefix", "") + key] = _text(val)

    for var in container.get("env") or ():
        name, val, vfrom = var["name"], var.get("value") or "", var.get("valueFrom")
        if val:
            val = expand(val, env, service)
        elif vfrom:
            if "fieldRef" in vfrom:
                try:
                    val = downward.field_value(
                        pod,
                        vfrom["fieldRef"]["fieldPath"],
                        node_name=node_name,
                        host_ip=host_ip,
                        pod_ips=ips,
                    )
                except ValueError as err:
                    raise EnvError("CreateContainerConfigError", str(err)) from None
            elif "resourceFieldRef" in vfrom:
                val = downward.resource_value(container, vfrom["resourceFieldRef"], allocatable)
            else:
                ref, kind = (
                    (vfrom["configMapKeyRef"], "ConfigMap")
                    if "configMapKeyRef" in vfrom
                    else (vfrom["secretKeyRef"], "Secret")
                )
                data = source(ref, kind)
                if data is None:
                    continue
                if ref["key"] not in data:
                    if ref.get("optional"):
                        continue
                    raise EnvError(
                        "CreateContainerConfigError",
                        f"couldn't find key {ref['key']} in {kind} {ns}/{ref['name']}",
                    )
                val = _text(data[ref["key"]])
        env[name] = val
    return [*env.items(), *((k, v) for k, v in service.items() if k not in env)]
