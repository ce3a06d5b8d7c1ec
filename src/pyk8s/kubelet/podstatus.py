"""The pod status a kubelet reports, computed from the runtime snapshot (no I/O).

Everything a user reads in ``kubectl get pod`` / ``describe`` comes from here, with
upstream's rules (``generateAPIPodStatus`` / ``getPhase``): the phase from the container
states and the restart policy, the conditions (PodReadyToStartContainers, Initialized,
ContainersReady, Ready, PodScheduled kept from the scheduler) with upstream's reasons and
messages, and per container ``state`` / ``lastState`` / ``restartCount`` / ``ready`` /
``started`` where a container that never ran is *waiting* with the reason the pod worker
recorded (ContainerCreating, PodInitializing, ErrImagePull, CrashLoopBackOff, …).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pyk8s.api.qos import pod_qos_class
from pyk8s.kubelet.runtimestate import ContainerInfo, PodRuntime

__all__ = ["PodView", "pod_status", "same_status", "timestamp"]

Obj = dict[str, Any]


def timestamp(ns: int) -> str:
    """A CRI time (ns since the epoch) as an API timestamp."""
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class PodView:
    """What the pod worker knows beyond the runtime snapshot."""

    host_ip: str
    now: str
    #: the node's other-family address on a dual-stack node (``status.hostIPs``)
    host_ips: tuple[str, ...] = ()
    #: container name -> (reason, message) for containers waiting to (re)start
    waiting: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    #: container name -> readiness / startup verdicts (absent: no probe, i.e. True)
    ready: Mapping[str, bool] = field(default_factory=dict)
    started: Mapping[str, bool] = field(default_factory=dict)
    #: container id -> termination message read from the container's file
    messages: Mapping[str, str] = field(default_factory=dict)
    #: the pod is being torn down for good (deleted, or finished)
    terminating: bool = False


def _terminated(c: ContainerInfo, message: str) -> Obj:
    out: Obj = {
        "exitCode": c.exit_code,
        "reason": c.reason or ("Completed" if c.exit_code == 0 else "Error"),
        "startedAt": timestamp(c.started_at) if c.started_at else None,
        "finishedAt": timestamp(c.finished_at) if c.finished_at else None,
        "containerID": c.container_id,
    }
    if message or c.message:
        out["message"] = message or c.message
    return {k: v for k, v in out.items() if v is not None}


def _container_status(
    spec: Mapping[str, Any], rt: PodRuntime, view: PodView, default_waiting: str, init: bool
) -> Obj:
    name = spec["name"]
    cur, prev = rt.latest(name), rt.previous(name)
    st: Obj = {
        "name": name,
        "image": spec.get("image", ""),
        "imageID": "",
        "restartCount": cur.attempt if cur is not None else 0,
        "ready": False,
        "started": False,
        "lastState": {},
    }
    if prev is not None and prev.exited:
        st["lastState"] = {"terminated": _terminated(prev, view.messages.get(prev.id, ""))}
    waiting = view.waiting.get(name)
    if cur is not None:
        st["containerID"] = cur.container_id
        st["imageID"] = cur.image_ref
    if cur is not None and cur.running:
        st["state"] = {"running": {"startedAt": timestamp(cur.started_at or cur.created_at)}}
        started = view.started.get(name, True)
        st["started"] = started
        st["ready"] = (
            started and view.ready.get(name, True) and not view.terminating if not init else False
        )
    elif cur is not None and cur.exited and waiting is None:
        st["state"] = {"terminated": _terminated(cur, view.messages.get(cur.id, ""))}
        st["ready"] = init and cur.exit_code == 0
    else:
        if cur is not None and cur.exited:
            st["lastState"] = {"terminated": _terminated(cur, view.messages.get(cur.id, ""))}
        reason, message = waiting or (default_waiting, "")
        st["state"] = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
    return st


def _init_done(st: Obj) -> bool:
    term = st["state"].get("terminated")
    return bool(term) and term.get("exitCode") == 0


def _phase(pod: Mapping[str, Any], inits: list[Obj], apps: list[Obj]) -> str:
    """Upstream's getPhase for a pod that is not being deleted."""
    policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
    for st in inits:
        if _init_done(st):
            continue
        term = st["state"].get("terminated") or (st["lastState"] or {}).get("terminated")
        if term and policy == "Never" and "terminated" in st["state"]:
            return "Failed"
        return "Pending"
    running = waiting = stopped = succeeded = 0
    for st in apps:
        state = st["state"]
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            succeeded += state["terminated"].get("exitCode") == 0
        elif (st["lastState"] or {}).get("terminated"):
            stopped += 1
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        return "Running" if policy == "OnFailure" else "Failed"
    return "Pending"


def pod_status(pod: Mapping[str, Any], rt: PodRuntime, view: PodView) -> Obj:
    """The full ``status`` to write for ``pod``."""
    spec = pod.get("spec") or {}
    old = pod.get("status") or {}
    init_specs = spec.get("initContainers") or []
    inits = [_container_status(c, rt, view, "PodInitializing", True) for c in init_specs]
    init_pending = [st["name"] for st in inits if not _init_done(st)]
    app_default = "PodInitializing" if init_pending else "ContainerCreating"
    apps = [
        _container_status(c, rt, view, app_default, False) for c in spec.get("containers") or []
    ]
    phase = _phase(pod, inits, apps)
    if old.get("phase") in ("Succeeded", "Failed"):
        phase = old["phase"]  # terminal phases never change
    terminal = phase in ("Succeeded", "Failed")
    sandbox = rt.sandbox
    ips = sandbox.ips if sandbox is not None and sandbox.ready else []
    if spec.get("hostNetwork"):
        ips = [view.host_ip, *view.host_ips]
    unready = [st["name"] for st in apps if not st["ready"]]
    old_conds = {c.get("type"): c for c in old.get("conditions") or []}

    def cond(ctype: str, ok: bool, reason: str = "", message: str = "") -> Obj:
        status = "True" if ok else "False"
        prev = old_conds.get(ctype)
        kept = prev is not None and prev.get("status") == status
        c: Obj = {
            "type": ctype,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": prev.get("lastTransitionTime") if kept and prev else view.now,
        }
        if not ok and reason:
            c["reason"] = reason
        if not ok and message:
            c["message"] = message
        return c

    if terminal:
        ready_reason, ready_msg = "PodCompleted", ""
    else:
        ready_reason = "ContainersNotReady"
        ready_msg = f"containers with unready status: [{' '.join(unready)}]"
    init_ok = not init_pending or (terminal and not inits)
    pod_ready, pod_reason, pod_msg = not unready and not terminal, ready_reason, ready_msg
    if pod_ready:  # readiness gates: conditions other controllers set on the pod
        for gate in spec.get("readinessGates") or []:
            ctype = gate.get("conditionType", "")
            found = old_conds.get(ctype)
            if found is None or found.get("status") != "True":
                pod_ready, pod_reason = False, "ReadinessGatesNotReady"
                pod_msg = (
                    f'corresponding condition of pod readiness gate "{ctype}" does not exist.'
                    if found is None
                    else f'the status of pod readiness gate "{ctype}" is not "True", '
                    f"but {found.get('status')}"
                )
                break
    conditions = [
        cond("PodReadyToStartContainers", bool(sandbox and sandbox.ready and not terminal)),
        cond(
            "Initialized",
            init_ok,
            "ContainersNotInitialized",
            f"containers with incomplete status: [{' '.join(init_pending)}]",
        ),
        cond("Ready", pod_ready, pod_reason, pod_msg),
        cond("ContainersReady", not unready and not terminal, ready_reason, ready_msg),
    ]
    conditions.append(old_conds.get("PodScheduled") or cond("PodScheduled", True))
    types = {c["type"] for c in conditions}
    conditions.extend(c for t, c in old_conds.items() if t not in types)
    status: Obj = {
        "phase": phase,
        "conditions": conditions,
        "hostIP": view.host_ip,
        "hostIPs": [{"ip": ip} for ip in (view.host_ip, *view.host_ips)],
        "startTime": old.get("startTime") or view.now,
        "qosClass": old.get("qosClass") or pod_qos_class(pod),
        "containerStatuses": apps,
    }
    if ips:
        status["podIP"] = ips[0]
        status["podIPs"] = [{"ip": ip} for ip in ips]
    elif old.get("podIP"):
        status["podIP"], status["podIPs"] = old["podIP"], old.get("podIPs") or []
    if inits:
        status["initContainerStatuses"] = inits
    for key in ("nominatedNodeName", "reason", "message"):
        if old.get(key):
            status[key] = old[key]
    return status


def _digest(status: Mapping[str, Any]) -> Any:
    """What matters in a status, so server-side normalisation never causes a rewrite."""

    def containers(key: str) -> list[Any]:
        return [
            (
                c.get("name"),
                c.get("state"),
                c.get("lastState") or {},
                c.get("ready"),
                c.get("started"),
                c.get("restartCount"),
                c.get("containerID"),
                c.get("imageID"),
            )
            for c in status.get(key) or []
        ]

    return (
        status.get("phase"),
        status.get("podIP"),
        status.get("hostIP"),
        status.get("startTime"),
        status.get("qosClass"),
        sorted(
            (str(c.get("type")), str(c.get("status")), str(c.get("reason", "")))
            for c in status.get("conditions") or []
        ),
        containers("initContainerStatuses"),
        containers("containerStatuses"),
    )


def same_status(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return bool(_digest(old) == _digest(new))
