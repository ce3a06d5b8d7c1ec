"""The pod worker: make the runtime run what one pod's spec says, then report it.

``sync`` is level-based, like every kubelet loop upstream (``SyncPod`` /
``computePodActions``): it reads the runtime snapshot (:mod:`.runtimestate`), decides
what is missing — a sandbox, the next init container, an app container to (re)start — does
one step of it, and writes the status (:mod:`.podstatus`). It keeps no state that cannot
be rebuilt from the runtime, except timers and verdicts that upstream also keeps in memory
(back-offs, probe results, why a container is waiting). So after a kubelet restart the
running containers are simply found again and left alone.

Termination (``kill``): preStop hooks and SIGTERM with the pod's grace period, SIGKILL
when it runs out, then the sandbox; a deleted pod is finally removed from the API server
with grace 0 and a uid precondition once its containers are gone.

Exceptions a sync raises are retried by the caller with back-off; everything a user
should see (image pull failures, a missing configMap, a crash loop) is reported in the
container's waiting state and in events instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.api.spans import became_ready
from pyk8s.client import Client, is_conflict, is_not_found
from pyk8s.client.errors import ClientError
from pyk8s.client.events import EventRecorder
from pyk8s.client.tracing import SpanExporter
from pyk8s.kubelet import podconfig, probes, pullsecrets
from pyk8s.kubelet.backoff import Backoff
from pyk8s.kubelet.cri import ContainerRuntime, CRIError, CRINotFound
from pyk8s.kubelet.cri import api_pb2 as pb
from pyk8s.kubelet.logs import link_container_log, log_path, parse_line, unlink_container_logs
from pyk8s.kubelet.podinputs import NodeInfo, PodInputs, VolumeState
from pyk8s.kubelet.podstatus import PodView, pod_status, same_status
from pyk8s.kubelet.resolv import dns_config
from pyk8s.kubelet.runtimestate import (
    ContainerInfo,
    PodRuntime,
    Relister,
    read_pod_runtime,
    sandbox_info,
    with_new_containers,
)
from pyk8s.kubelet.volumes import PodVolumes, VolumeError

__all__ = ["NodeInfo", "PodWorker"]

log = logging.getLogger(__name__)

PODS: Resource = REGISTRY.get("", "v1", "pods")  # type: ignore[assignment]

Obj = dict[str, Any]

#: how often a running pod is looked at even without events (volume updates, status)
RESYNC_SECONDS = 10.0
#: a pod whose volumes could not be set up is retried after 0.5 s, doubling up to 5 s
#: (upstream's volume operations back off from 500 ms; a missing configMap that appears
#: a moment later, as a new namespace's kube-root-ca.crt does, costs at most that)
MOUNT_RETRY_FIRST, MOUNT_RETRY_MAX = 0.5, 5.0
DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"
#: upstream's minimum time a container gets between SIGTERM and SIGKILL after preStop
MIN_GRACE_AFTER_PRESTOP = 2
#: how much of a failed container's log FallbackToLogsOnError reports
MESSAGE_LOG_LINES = 80
MESSAGE_MAX_BYTES = 4096


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key(pod: Mapping[str, Any]) -> str:
    meta = pod["metadata"]
    return f"{meta['name']}_{meta.get('namespace', 'default')}({meta['uid']})"


@dataclass
class _Probes:
    container_id: str
    workers: dict[str, probes.ProbeWorker]


@dataclass
class _PodState:
    """In-memory facts about one pod that the runtime does not hold."""

    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)
    probes: dict[str, _Probes] = field(default_factory=dict)
    #: container name -> container id a liveness failure condemned
    unhealthy: dict[str, str] = field(default_factory=dict)
    volumes: VolumeState = field(default_factory=VolumeState)
    dns_warned: bool = False
    #: the pod finished and its volumes were torn down (once; a restart does it again)
    volumes_released: bool = False
    #: the delay before the next try to set up volumes that failed (0: they did not)
    mount_retry: float = 0.0
    #: what the running sync did to the runtime: the containers it created, and whether
    #: it did anything else (stopped or removed something) that a re-read must show
    created: list[str] = field(default_factory=list)
    changed: bool = False


class PodWorker:
    """Syncs and kills pods on one node; one instance per kubelet."""

    def __init__(
        self,
        client: Client,
        cri: ContainerRuntime,
        recorder: EventRecorder,
        node: NodeInfo,
        *,
        root: Path,
        log_root: Path = Path("/var/log/pods"),
        services: Callable[[], Sequence[Mapping[str, Any]]] = list,
        wake: Callable[[str], None] = lambda uid: None,
        probe_registry: CollectorRegistry | None = None,
        volumes: PodVolumes | None = None,
        spans: SpanExporter | None = None,
        pleg: Relister | None = None,
    ) -> None:
        self.client = client
        #: spans of each pod's first sync, volume setup and sandbox (pyk8s trace)
        self.spans = spans or SpanExporter(client, "kubelet")
        #: upstream's /metrics/probes: every probe run by type and result
        self.probe_total = Counter(
            "prober_probe_total",
            "Cumulative number of a liveness, readiness or startup probe for a container "
            "by result.",
            ["probe_type", "result", "container", "pod", "namespace", "pod_uid"],
            registry=probe_registry or CollectorRegistry(),
        )
        #: pod uid -> its prober_probe_total label sets (dropped with the pod)
        self._probe_series: dict[str, set[tuple[str, ...]]] = {}
        self.cri = cri
        self.recorder = recorder
        self.node = node
        self.root = root
        self.log_root = log_root
        #: the volume plugins and what they set up (default: every in-tree plugin)
        self.volumes = volumes or PodVolumes(root)
        self.services = services
        self.wake = wake
        #: PLEG: told which pods are being synced and what each sync saw (its own changes
        #: are no change to wake for); it says whether it has seen anything of a pod
        self.pleg = pleg
        self.backoff = Backoff()
        self.image_backoff = Backoff()
        #: image back-off key -> when its last pull failed
        self._pull_failed: dict[str, float] = {}
        self._pods: dict[str, _PodState] = {}
        self.inputs = PodInputs(client, recorder, node, self.volumes, services)

    # ------------------------------------------------------------------ public

    def state(self, uid: str) -> _PodState:
        return self._pods.setdefault(uid, _PodState())

    async def sync(self, pod: Obj) -> float | None:
        """One reconcile step for ``pod``; seconds until it wants another look (or None)."""
        if self.pleg is None:
            return await self._sync(pod)
        uid = pod["metadata"]["uid"]
        self.pleg.sync_started(uid)
        try:
            return await self._sync(pod)
        finally:
            if self.pleg.sync_ended(uid):
                self.wake(uid)

    async def _sync(self, pod: Obj) -> float | None:
        uid = pod["metadata"]["uid"]
        first = uid not in self._pods
        if first and not pod["metadata"].get("deletionTimestamp"):
            seen = time.time()
            self.spans.record(pod, "kubelet.seen", seen, seen, {"node": self.node.name})
        if first and self.pleg is not None and not self.pleg.knows(uid):
            # nothing of it in the runtime: this process has not made anything for it
            # yet, and what an earlier kubelet made was listed before the workers started
            rt = PodRuntime(uid)
        else:
            rt = await read_pod_runtime(self.cri, uid)
        if pod["metadata"].get("deletionTimestamp"):
            await self._terminate(pod, rt, deleting=True)
            return None
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            await self._terminate(pod, rt, deleting=False)
            return None
        deadline = _deadline_left(pod)
        if deadline is not None and deadline <= 0:
            await self._kill(pod, rt, _grace(pod), "stop")
            self.recorder.event(pod, "Normal", "DeadlineExceeded", DEADLINE_MESSAGE)
            rt = await read_pod_runtime(self.cri, uid)
            failed = {**pod, "status": {**(pod.get("status") or {}), "phase": "Failed"}}
            status = pod_status(failed, rt, self._view(pod, rt, terminating=True))
            status.update(reason="DeadlineExceeded", message=DEADLINE_MESSAGE)
            await self._patch_status(pod, status)
            return None
        state = self.state(uid)
        state.created, state.changed = [], False
        wake, rt = await self._reconcile(pod, rt)
        if state.changed:
            rt = await read_pod_runtime(self.cri, uid)
        elif state.created:
            # only containers were created and started: their status is all that is new
            rt = await with_new_containers(self.cri, rt, state.created)
        if self.pleg is not None:
            self.pleg.observe(rt)
        status = await self._write_status(pod, rt)
        if status.get("phase") in ("Succeeded", "Failed"):
            await self._kill(pod, rt, grace=0, reason="")
            await self._release_volumes(uid)
            return None
        if deadline is None:  # the first status write has just set startTime
            deadline = _deadline_left({**pod, "status": status})
        if deadline is not None:
            wake = deadline if wake is None else min(wake, deadline)
        await self._ensure_probes(pod, rt)
        return min(wake, RESYNC_SECONDS) if wake is not None else RESYNC_SECONDS

    async def cleanup(self, uid: str) -> None:
        """Remove everything of a pod the API server no longer has (or that was deleted)."""
        state = self._pods.pop(uid, None)
        if state is not None:
            for p in state.probes.values():
                await _stop_workers(p)
        for key in self._probe_series.pop(uid, set()):
            with contextlib.suppress(KeyError):
                self.probe_total.remove(*key)
        rt = await read_pod_runtime(self.cri, uid)
        for c in rt.running():
            with contextlib.suppress(CRINotFound):
                await self.cri.stop_container(c.id, 0)
        for c in rt.containers:
            with contextlib.suppress(CRINotFound):
                await self.cri.remove_container(c.id)
            unlink_container_logs(self.log_root, c.id)
        for s in rt.sandboxes:
            with contextlib.suppress(CRINotFound):
                await self.cri.stop_pod_sandbox(s.id)
                await self.cri.remove_pod_sandbox(s.id)
        await asyncio.to_thread(self.volumes.teardown, uid)
        self.backoff.forget(f"{uid}/")
        log.info("pod cleaned up", extra={"uid": uid})

    async def shutdown(self) -> None:
        """Stop probe workers (containers keep running: a restarted kubelet adopts them)."""
        for state in self._pods.values():
            for p in state.probes.values():
                await _stop_workers(p)
        self._pods.clear()
        await self.spans.close()

    # ------------------------------------------------------------------ reconcile

    async def _reconcile(self, pod: Obj, rt: PodRuntime) -> tuple[float | None, PodRuntime]:
        """One step towards the spec; when to look again, and the runtime snapshot the
        step started its containers from (with the sandbox it created, if it did)."""
        spec = pod.get("spec") or {}
        uid = pod["metadata"]["uid"]
        state = self.state(uid)
        policy = spec.get("restartPolicy") or "Always"
        sandbox = rt.sandbox
        if sandbox is None or not sandbox.ready:
            ran = any(c.exited for c in rt.containers)
            if sandbox is not None and policy == "Never" and ran:
                return None, rt  # upstream does not re-create the sandbox of a finished pod
            for c in rt.running():
                state.changed = True
                await self._stop(pod, c, 0, "")
            started = time.time()
            mounted = await self.inputs.setup_volumes(pod, state.volumes)
            volumes = len(spec.get("volumes") or [])
            self.spans.record(
                pod, "kubelet.volumes", started, time.time(), {"volumes": volumes, "ok": mounted}
            )
            if not mounted:
                state.mount_retry = min(MOUNT_RETRY_MAX, state.mount_retry * 2 or MOUNT_RETRY_FIRST)
                return state.mount_retry, rt
            state.mount_retry = 0.0
            attempt = sandbox.attempt + 1 if sandbox is not None else 0
            if sandbox is not None:
                self.recorder.event(
                    pod,
                    "Normal",
                    "SandboxChanged",
                    "Pod sandbox changed, it will be killed and re-created.",
                )
                with contextlib.suppress(CRINotFound):
                    await self.cri.stop_pod_sandbox(sandbox.id)
            started = time.time()
            try:
                sandbox_id = await self.cri.run_pod_sandbox(self._sandbox_config(pod, attempt))
            except CRIError as err:
                self.spans.record(pod, "kubelet.sandbox", started, time.time(), {"error": str(err)})
                self.recorder.event(
                    pod,
                    "Warning",
                    "FailedCreatePodSandBox",
                    f"Failed to create pod sandbox: {err}",
                )
                return 5.0, rt
            if rt.sandboxes or rt.containers:
                rt = await read_pod_runtime(self.cri, uid)
            else:  # the pod's first sandbox: its status is all there is to read
                created = await sandbox_info(self.cri, sandbox_id)
                rt = PodRuntime(uid, [created] if created is not None else [])
            sandbox = rt.sandbox
            ips = sandbox.ips if sandbox is not None else []
            self.spans.record(
                pod, "kubelet.sandbox", started, time.time(), {"attempt": attempt, "ips": ips}
            )
            if sandbox is None or not sandbox.ready:
                return 1.0, rt
        elif time.monotonic() - state.volumes.synced > RESYNC_SECONDS:
            await self.inputs.setup_volumes(pod, state.volumes)

        for c in spec.get("initContainers") or []:
            cur = rt.latest(c["name"])
            if cur is not None and cur.exited and cur.exit_code == 0:
                continue
            if cur is not None and cur.running:
                return None, rt
            if cur is not None and cur.exited and policy == "Never":
                return None, rt  # a failed init container fails the pod
            return await self._start_or_backoff(pod, c, rt, cur), rt

        wake: float | None = None
        for c in spec.get("containers") or []:
            cur = rt.latest(c["name"])
            if cur is not None and cur.running:
                why = self._restart_reason(state, c, cur)
                if why is None:
                    continue
                self.recorder.event(pod, "Normal", "Killing", why)
                state.changed = True
                await self._stop(pod, cur, _grace(pod), "")
                state.unhealthy.pop(c["name"], None)
                cur = (await read_pod_runtime(self.cri, uid)).latest(c["name"])
            if cur is not None and cur.exited:
                if not _should_restart(policy, cur.exit_code):
                    continue
            elif cur is not None and not cur.running:
                # created but never started (a kubelet died in between): start it over
                state.changed = True
                with contextlib.suppress(CRINotFound):
                    await self.cri.remove_container(cur.id)
                unlink_container_logs(self.log_root, cur.id)
                cur = rt.previous(c["name"])
            if cur is not None and cur.running:
                continue
            later = await self._start_or_backoff(pod, c, rt, cur)
            if later is not None:
                wake = later if wake is None else min(wake, later)
        return wake, rt

    def _restart_reason(
        self, state: _PodState, c: Mapping[str, Any], cur: ContainerInfo
    ) -> str | None:
        name = c["name"]
        if state.unhealthy.get(name) == cur.id:
            return f"Container {name} failed liveness probe, will be restarted"
        if cur.hash and cur.hash != podconfig.container_hash(c):
            return f"Container {name} definition changed, will be restarted"
        return None

    async def _start_or_backoff(
        self, pod: Obj, c: Mapping[str, Any], rt: PodRuntime, cur: ContainerInfo | None
    ) -> float | None:
        """Start container ``c`` (a new attempt after ``cur``) unless it is backing off."""
        uid, name = pod["metadata"]["uid"], c["name"]
        state = self.state(uid)
        key = f"{uid}/{name}"
        if cur is not None:
            finished = cur.finished_at / 1e9
            if self.backoff.in_backoff_since(key, finished):
                delay = int(self.backoff.delay(key))
                message = f"back-off {delay}s restarting failed container={name} pod={_key(pod)}"
                if state.waiting.get(name, ("",))[0] != "CrashLoopBackOff":
                    self.recorder.event(
                        pod,
                        "Warning",
                        "BackOff",
                        f"Back-off restarting failed container {name} in pod {_key(pod)}",
                    )
                state.waiting[name] = ("CrashLoopBackOff", message)
                return max(0.1, self.backoff.remaining(key, finished))
            self.backoff.next(key)
        attempt = cur.attempt + 1 if cur is not None else 0
        return await self._start(pod, c, rt, attempt)

    # ------------------------------------------------------------------ starting

    async def _start(
        self, pod: Obj, c: Mapping[str, Any], rt: PodRuntime, attempt: int
    ) -> float | None:
        uid, name = pod["metadata"]["uid"], c["name"]
        state = self.state(uid)
        sandbox = rt.sandbox
        assert sandbox is not None
        later = await self._ensure_image(pod, c, state)
        if later is not None:
            return later
        ip = sandbox.ips[0] if sandbox.ips else ""
        if (pod.get("spec") or {}).get("hostNetwork"):
            ip = self.node.host_ip
        try:
            env = await self.inputs.env(pod, c, ip, sandbox.ips)
            mounts = self.inputs.mounts(pod, c, state.volumes, ip, attempt)
        except (podconfig.EnvError, VolumeError) as err:
            message = getattr(err, "message", str(err))
            state.waiting[name] = ("CreateContainerConfigError", message)
            self.recorder.event(pod, "Warning", "Failed", f"Error: {message}")
            return 5.0
        config = podconfig.container_config(
            pod,
            c,
            restart_count=attempt,
            env=env,
            mounts=mounts,
            machine_memory=self.node.machine_memory,
        )
        sandbox_config = self._sandbox_config(pod, sandbox.attempt)
        try:
            cid = await self.cri.create_container(sandbox.id, config, sandbox_config)
        except CRIError as err:
            state.waiting[name] = ("CreateContainerError", str(err))
            self.recorder.event(pod, "Warning", "Failed", f"Error: {err}")
            return 5.0
        state.created.append(cid)
        self.recorder.event(pod, "Normal", "Created", f"Created container {name}")
        meta = pod["metadata"]
        target = log_path(self.log_root, meta["namespace"], meta["name"], uid, name, attempt)
        try:
            link_container_log(self.log_root, meta["namespace"], meta["name"], name, cid, target)
        except OSError as err:
            log.warning("linking the log of container %s failed: %s", cid, err)
        try:
            await self.cri.start_container(cid)
        except CRIError as err:
            state.waiting.pop(name, None)
            self.recorder.event(pod, "Warning", "Failed", f"Error: {err}")
            return 1.0
        state.waiting.pop(name, None)
        self.recorder.event(pod, "Normal", "Started", f"Started container {name}")
        hook = (c.get("lifecycle") or {}).get("postStart")
        if hook:
            failure = await self._run_hook(pod, hook, cid, ip)
            if failure:
                self.recorder.event(pod, "Warning", "FailedPostStartHook", failure)
                state.changed = True
                with contextlib.suppress(CRINotFound):
                    await self.cri.stop_container(cid, _grace(pod))
        return None

    async def _ensure_image(self, pod: Obj, c: Mapping[str, Any], state: _PodState) -> float | None:
        """Make the image present per imagePullPolicy; a retry delay when it is not."""
        name, image = c["name"], c["image"]
        policy = c.get("imagePullPolicy") or "IfNotPresent"
        present = await self.cri.image_status(image) is not None
        if policy == "Never" and not present:
            message = f'Container image "{image}" is not present with pull policy of Never'
            state.waiting[name] = ("ErrImageNeverPull", message)
            self.recorder.event(pod, "Warning", "ErrImageNeverPull", message)
            return 10.0
        if present and policy != "Always":
            self.recorder.event(
                pod, "Normal", "Pulled", f'Container image "{image}" already present on machine'
            )
            return None
        key = f"{pod['metadata']['uid']}/{image}"
        if state.waiting.get(name, ("",))[0] in ("ErrImagePull", "ImagePullBackOff"):
            last = self.image_backoff.delay(key)
            if self.image_backoff.in_backoff_since(key, self._pull_failed.get(key, 0.0)):
                state.waiting[name] = ("ImagePullBackOff", f'Back-off pulling image "{image}"')
                self.recorder.event(pod, "Normal", "BackOff", f'Back-off pulling image "{image}"')
                return max(0.5, self.image_backoff.remaining(key, self._pull_failed[key]) or last)
        self.recorder.event(pod, "Normal", "Pulling", f'Pulling image "{image}"')
        started = time.monotonic()
        try:
            secrets = await self.inputs.pull_secrets(pod)
            await pullsecrets.pull_with_secrets(self.cri, image, secrets)
        except (CRIError, pullsecrets.PullSecretError) as err:
            self._pull_failed[key] = time.time()
            self.image_backoff.next(key)
            message = f'Failed to pull image "{image}": {err}'
            state.waiting[name] = ("ErrImagePull", message)
            self.recorder.event(pod, "Warning", "Failed", message)
            self.recorder.event(pod, "Warning", "Failed", "Error: ErrImagePull")
            return max(1.0, self.image_backoff.delay(key))
        took = time.monotonic() - started
        self.recorder.event(
            pod, "Normal", "Pulled", f'Successfully pulled image "{image}" in {took:.3f}s'
        )
        return None

    def _sandbox_config(self, pod: Obj, attempt: int) -> pb.PodSandboxConfig:
        dns, missing = dns_config(pod, self.node.cluster_dns, self.node.cluster_domain)
        state = self.state(pod["metadata"]["uid"])
        if missing and not state.dns_warned:
            state.dns_warned = True
            self.recorder.event(
                pod,
                "Warning",
                "MissingClusterDNS",
                'pod: "' + _key(pod) + '". kubelet does not have ClusterDNS IP configured and '
                'cannot create Pod using "ClusterFirst" policy. Falling back to "Default" policy.',
            )
        return podconfig.sandbox_config(pod, attempt=attempt, log_root=self.log_root, dns=dns)

    # ------------------------------------------------------------------ probes

    async def _ensure_probes(self, pod: Obj, rt: PodRuntime) -> None:
        uid = pod["metadata"]["uid"]
        state = self.state(uid)
        sandbox = rt.sandbox
        ip = sandbox.ips[0] if sandbox is not None and sandbox.ips else ""
        if (pod.get("spec") or {}).get("hostNetwork"):
            ip = self.node.host_ip
        for c in (pod.get("spec") or {}).get("containers") or []:
            name = c["name"]
            cur = rt.latest(name)
            have = state.probes.get(name)
            if have is not None and (cur is None or not cur.running or have.container_id != cur.id):
                await _stop_workers(state.probes.pop(name))
                have = None
            if have is not None or cur is None or not cur.running:
                continue
            workers: dict[str, probes.ProbeWorker] = {}
            for kind in ("startup", "readiness", "liveness"):
                spec = c.get(f"{kind}Probe")
                if spec:
                    workers[kind] = self._probe_worker(pod, c, cur.id, ip, kind, spec)
            state.probes[name] = _Probes(cur.id, workers)
            for kind, w in workers.items():
                if kind == "startup" or "startup" not in workers:
                    w.start()

    def _probe_worker(
        self, pod: Obj, c: Mapping[str, Any], cid: str, ip: str, kind: str, spec: Mapping[str, Any]
    ) -> probes.ProbeWorker:
        uid, name = pod["metadata"]["uid"], c["name"]
        label = {"liveness": "Liveness", "readiness": "Readiness", "startup": "Startup"}[kind]
        timeout = float(spec.get("timeoutSeconds") or 1)

        pod_labels = (name, pod["metadata"]["name"], pod["metadata"]["namespace"], uid)
        keys = {ok: (label, "successful" if ok else "failed", *pod_labels) for ok in (True, False)}
        self._probe_series.setdefault(uid, set()).update(keys.values())
        counted = {ok: self.probe_total.labels(*key) for ok, key in keys.items()}

        async def run_once() -> probes.ProbeResult:
            result = await self._probe(spec, c, cid, ip, timeout)
            counted[result.ok].inc()
            if not result.ok:
                self.recorder.event(
                    pod, "Warning", "Unhealthy", f"{label} probe failed: {result.message}"
                )
            return result

        def changed(ok: bool) -> None:
            state = self.state(uid)
            if kind == "liveness" and not ok:
                state.unhealthy[name] = cid
            if kind == "startup" and ok:
                p = state.probes.get(name)
                if p is not None:
                    for k, w in p.workers.items():
                        if k != "startup":
                            w.start()
            if kind == "startup" and not ok:
                state.unhealthy[name] = cid
            self.wake(uid)

        return probes.ProbeWorker(spec, run_once, kind, changed)  # type: ignore[arg-type]

    async def _probe(
        self, spec: Mapping[str, Any], c: Mapping[str, Any], cid: str, ip: str, limit: float
    ) -> probes.ProbeResult:
        """Run one probe handler of container ``cid`` (at ``ip``) within ``limit`` seconds."""
        timeout = limit
        if "exec" in spec:
            cmd = list(spec["exec"].get("command") or [])

            async def runner(argv: list[str], t: float) -> tuple[int, bytes, bytes]:
                return await self.cri.exec_sync(cid, argv, int(max(1, t)))

            return await probes.probe_exec(runner, cmd, timeout)
        if "httpGet" in spec:
            h = spec["httpGet"]
            return await probes.probe_http(
                h.get("host") or ip,
                _port(h["port"], c),
                h.get("path") or "/",
                h.get("scheme") or "HTTP",
                h.get("httpHeaders") or (),
                timeout,
            )
        if "tcpSocket" in spec:
            t = spec["tcpSocket"]
            return await probes.probe_tcp(t.get("host") or ip, _port(t["port"], c), timeout)
        if "grpc" in spec:
            g = spec["grpc"]
            return await probes.probe_grpc(ip, int(g["port"]), g.get("service") or "", timeout)
        return probes.ProbeResult("success")

    # ------------------------------------------------------------------ status

    def _view(self, pod: Obj, rt: PodRuntime, terminating: bool = False) -> PodView:
        state = self.state(pod["metadata"]["uid"])
        ready: dict[str, bool] = {}
        started: dict[str, bool] = {}
        for name, p in state.probes.items():
            if "readiness" in p.workers:
                ready[name] = p.workers["readiness"].value
            if "startup" in p.workers:
                started[name] = p.workers["startup"].value
        for c in (pod.get("spec") or {}).get("containers") or []:
            cur = rt.latest(c["name"])
            if cur is not None and cur.running and c["name"] not in state.probes:
                if c.get("readinessProbe"):
                    ready[c["name"]] = False
                if c.get("startupProbe"):
                    started[c["name"]] = False
        messages = {c.id: self._termination_message(pod, c) for c in rt.containers if c.exited}
        return PodView(
            host_ip=self.node.host_ip,
            host_ips=self.node.secondary_ips,
            now=_now(),
            waiting=dict(state.waiting),
            ready=ready,
            started=started,
            messages=messages,
            terminating=terminating,
        )

    def _termination_message(self, pod: Obj, c: ContainerInfo) -> str:
        spec = _container_spec(pod, c.name)
        path = spec.get("terminationMessagePath") or "/dev/termination-log"
        text = ""
        host = c.mounts.get(path)
        if host:
            with contextlib.suppress(OSError):
                text = Path(host).read_bytes()[:MESSAGE_MAX_BYTES].decode(errors="replace")
        if (
            not text
            and c.exit_code != 0
            and spec.get("terminationMessagePolicy") == "FallbackToLogsOnError"
            and c.log_path
        ):
            with contextlib.suppress(OSError, ValueError):
                lines = Path(c.log_path).read_bytes().splitlines()[-MESSAGE_LOG_LINES:]
                text = b"".join(parse_line(x).content for x in lines).decode(errors="replace")
                text = text[-MESSAGE_MAX_BYTES:]
        return text

    async def _write_status(self, pod: Obj, rt: PodRuntime, terminating: bool = False) -> Obj:
        status = pod_status(pod, rt, self._view(pod, rt, terminating))
        old = pod.get("status") or {}
        if not same_status(old, status):
            started = time.time()
            await self._patch_status(pod, status)
            if became_ready(old, status):
                self.spans.record(pod, "kubelet.ready", started, time.time())
        return status

    async def _patch_status(self, pod: Obj, status: Obj) -> None:
        """Write ``status`` (a pod that is gone or was replaced is not an error)."""
        meta = pod["metadata"]
        body = {"metadata": {"uid": meta["uid"]}, "status": status}
        try:
            await self.client.patch(
                PODS, meta["name"], body, meta.get("namespace"),
                patch_type="merge", subresource="status",
            )  # fmt: skip
        except ClientError as err:
            if not (is_not_found(err) or is_conflict(err)):
                raise

    # ------------------------------------------------------------------ termination

    async def _stop(self, pod: Obj, c: ContainerInfo, grace: int, reason: str) -> None:
        """preStop hook, then SIGTERM and SIGKILL after what is left of ``grace``."""
        spec = _container_spec(pod, c.name)
        if reason:
            self.recorder.event(pod, "Normal", "Killing", reason)
        started = time.monotonic()
        hook = (spec.get("lifecycle") or {}).get("preStop")
        if hook and grace > 0:
            ip = ""
            with contextlib.suppress(Exception):
                rt = await read_pod_runtime(self.cri, pod["metadata"]["uid"])
                ip = rt.sandbox.ips[0] if rt.sandbox and rt.sandbox.ips else ""
            try:
                async with asyncio.timeout(grace):
                    failure = await self._run_hook(pod, hook, c.id, ip)
            except TimeoutError:
                failure = f"PreStopHook failed: timed out after {grace}s"
            if failure:
                self.recorder.event(pod, "Warning", "FailedPreStopHook", failure)
            grace = max(MIN_GRACE_AFTER_PRESTOP, grace - int(time.monotonic() - started))
        with contextlib.suppress(CRINotFound):
            await self.cri.stop_container(c.id, grace)

    async def _run_hook(self, pod: Obj, hook: Mapping[str, Any], cid: str, ip: str) -> str:
        """Run a lifecycle hook; an error message, or "" when it succeeded."""
        if "exec" in hook:
            cmd = list(hook["exec"].get("command") or [])
            try:
                code, out, err = await self.cri.exec_sync(cid, cmd, 30)
            except CRIError as e:
                return f"Exec lifecycle hook ({cmd}) for Container in Pod {_key(pod)} failed: {e}"
            if code != 0:
                output = (out + err).decode(errors="replace")
                return (
                    f"Exec lifecycle hook ({cmd}) for Container in Pod {_key(pod)} failed - "
                    f"error: command '{' '.join(cmd)}' exited with {code}: {output}"
                )
            return ""
        if "httpGet" in hook:
            h = hook["httpGet"]
            res = await probes.probe_http(
                h.get("host") or ip,
                _port(h["port"], {}),
                h.get("path") or "/",
                h.get("scheme") or "HTTP",
                h.get("httpHeaders") or (),
                30.0,
            )
            return (
                ""
                if res.ok
                else f"HTTP lifecycle hook ({h.get('path') or '/'}) failed: {res.message}"
            )
        if "sleep" in hook:
            await asyncio.sleep(float(hook["sleep"].get("seconds") or 0))
        return ""

    async def _kill(self, pod: Obj, rt: PodRuntime, grace: int, reason: str) -> None:
        """Stop every running container (concurrently) and the pod's sandboxes."""
        state = self.state(pod["metadata"]["uid"])
        for p in list(state.probes.values()):
            await _stop_workers(p)
        state.probes.clear()
        running = rt.running()
        await asyncio.gather(
            *(self._stop(pod, c, grace, reason and f"Stopping container {c.name}") for c in running)
        )
        for s in rt.sandboxes:
            if s.ready:
                with contextlib.suppress(CRINotFound):
                    await self.cri.stop_pod_sandbox(s.id)

    async def _release_volumes(self, uid: str) -> None:
        """A finished pod that is not deleted keeps its containers (for logs and status)
        but not its volumes: unmounted once its containers have stopped, as upstream's
        volume manager drops a terminated pod from its desired state of the world."""
        state = self.state(uid)
        if state.volumes_released:
            return
        await asyncio.to_thread(self.volumes.teardown_volumes, uid)
        state.volumes = VolumeState()
        state.volumes_released = True

    async def _terminate(self, pod: Obj, rt: PodRuntime, deleting: bool) -> None:
        meta = pod["metadata"]
        if rt.running() or any(s.ready for s in rt.sandboxes):
            grace = _grace(pod) if deleting else 0
            await self._kill(pod, rt, grace, "stop" if deleting else "")
            rt = await read_pod_runtime(self.cri, meta["uid"])
        state = self.state(meta["uid"])
        state.waiting.clear()
        if not deleting:
            await self._write_status(pod, rt, terminating=True)
            await self._release_volumes(meta["uid"])
            return
        status = pod_status(pod, rt, self._view(pod, rt, terminating=True))
        if status["phase"] not in ("Succeeded", "Failed"):
            exits = [
                c["state"]["terminated"]["exitCode"]
                for c in status["containerStatuses"]
                if "terminated" in c["state"]
            ]
            status["phase"] = "Succeeded" if exits and not any(exits) else "Failed"
        with contextlib.suppress(ClientError):
            await self._patch_status(pod, status)
        await self.cleanup(meta["uid"])
        try:
            await self.client.delete(
                PODS,
                meta["name"],
                meta.get("namespace"),
                grace_period_seconds=0,
                preconditions={"uid": meta["uid"]},
            )
        except ClientError as err:
            if not (is_not_found(err) or is_conflict(err)):
                raise


def _deadline_left(pod: Mapping[str, Any]) -> float | None:
    """Seconds left of ``activeDeadlineSeconds`` (counted from startTime), if it has one."""
    limit = (pod.get("spec") or {}).get("activeDeadlineSeconds")
    started = (pod.get("status") or {}).get("startTime")
    if limit is None or not started:
        return None
    start = dt.datetime.strptime(started, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    return float(limit) - (dt.datetime.now(dt.UTC) - start).total_seconds()


def _grace(pod: Mapping[str, Any]) -> int:
    meta, spec = pod["metadata"], pod.get("spec") or {}
    if meta.get("deletionGracePeriodSeconds") is not None:
        return int(meta["deletionGracePeriodSeconds"])
    return int(spec.get("terminationGracePeriodSeconds", 30))


def _container_spec(pod: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """The (init) container ``name`` of the pod spec ({} if the spec no longer has it)."""
    spec = pod.get("spec") or {}
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if c["name"] == name:
            return dict(c)
    return {}


def _should_restart(policy: str, exit_code: int) -> bool:
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


def _port(port: int | str, container: Mapping[str, Any]) -> int:
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"port {port!r} not found in container ports")


async def _stop_workers(p: _Probes) -> None:
    for w in p.workers.values():
        await w.stop()
