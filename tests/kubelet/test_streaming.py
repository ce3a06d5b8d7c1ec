"""kubectl logs / exec / cp / attach / port-forward through the API server to a kubelet.

The pod, its containerd and its kubelet are :mod:`tests.kubelet.stream_fixtures`' ``env``;
the real kubectl 1.32 drives everything (the Python client and raw WebSocket clients are
:mod:`tests.kubelet.test_websocket_streaming`'s).
"""

from __future__ import annotations

import asyncio
import os
import pty
import ssl
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, Counter

from pyk8s.api.registry import REGISTRY
from pyk8s.client import Client
from pyk8s.kubelet import images, podconfig
from pyk8s.kubelet.cri import CRIClient
from pyk8s.kubelet.server import KubeletServer, kubelet_ssl_context
from tests.integration.conftest import KUBECTL, Server, free_port
from tests.kubelet.stream_fixtures import Env, node_object, pod_container

PODS = REGISTRY.get("", "v1", "pods")
NODES = REGISTRY.get("", "v1", "nodes")


async def _eventually_logs(env: Env, want: str, *args: str) -> str:
    out = ""
    for _ in range(50):
        code, out, err = await env.kubectl("logs", env.pod, "-c", "main", *args)
        assert code == 0, err
        if want in out:
            return out
        await asyncio.sleep(0.2)
    raise AssertionError(f"{want!r} never showed up in the logs: {out!r}")


# --------------------------------------------------------------------------- logs


def _first_run(out: str) -> bool:
    """The output of MAIN_SCRIPT up to "later" (stderr's line may land anywhere: the
    runtime reads stdout and stderr from separate pipes)."""
    lines = out.splitlines()[:5]
    return "oops" in lines and [x for x in lines if x != "oops"] == [
        "line 1",
        "line 2",
        "line 3",
        "later",
    ]


@pytest.mark.e2e
async def test_logs(env: Env) -> None:
    async with asyncio.timeout(90):
        out = await _eventually_logs(env, "later")
        assert _first_run(out)
        whole = out

        code, out, _ = await env.kubectl("logs", env.pod, "-c", "main", "--tail", "1")
        assert code == 0 and out.count("\n") == 1 and out in ("later\n", "tick\n")

        code, out, _ = await env.kubectl("logs", env.pod, "-c", "main", "--timestamps")
        first = out.splitlines()[0].split(" ", 1)
        assert first[0].endswith("Z") and first[1] in ("line 1", "oops")

        code, out, _ = await env.kubectl("logs", env.pod, "-c", "main", "--limit-bytes", "7")
        # the first 7 bytes of the log, whichever stream's line the runtime wrote first
        assert (code, out) == (0, whole[:7]) and out in ("line 1\n", "oops\nli")

        # -f keeps streaming: new ticks arrive while kubectl is still running
        proc = await env.spawn("logs", "-f", env.pod, "-c", "main", "--tail", "1")
        try:
            assert proc.stdout is not None
            lines = [await asyncio.wait_for(proc.stdout.readline(), 10) for _ in range(3)]
            assert lines[-1] == b"tick\n"
            assert proc.returncode is None
        finally:
            proc.kill()
            await proc.wait()


@pytest.mark.e2e
async def test_logs_of_a_restarted_container(env: Env) -> None:
    async with asyncio.timeout(90):
        await _eventually_logs(env, "later")
        labels = {"io.kubernetes.pod.name": env.pod, "io.kubernetes.container.name": "main"}
        (first,) = await env.cri.list_containers(labels=labels)
        await env.cri.stop_container(first.id, timeout=0)
        # the next attempt, as the kubelet would start it after a crash
        spec = pod_container("main", "echo second run; sleep 2; echo bye")
        config = podconfig.container_config(env.obj, spec, restart_count=1, env=[], mounts=[])
        sandbox = podconfig.sandbox_config(env.obj, log_root=env.tmp / "logs")
        await env.cri.start_container(
            await env.cri.create_container(first.pod_sandbox_id, config, sandbox)
        )
        # -f ends by itself once the container has exited
        code, out, err = await env.kubectl("logs", "-f", env.pod, "-c", "main", limit=20)
        assert (code, out) == (0, "second run\nbye\n"), err
        code, out, _ = await env.kubectl("logs", env.pod, "-c", "main", "--previous")
        assert code == 0 and _first_run(out)


@pytest.mark.e2e
async def test_log_errors(env: Env, client: Client) -> None:
    assert PODS is not None
    async with asyncio.timeout(60):
        code, _, err = await env.kubectl("logs", env.pod, "-c", "nope")
        assert code == 1
        assert f"container nope is not valid for pod {env.pod}" in err

        code, _, err = await env.kubectl("logs", "missing")
        assert code == 1 and 'pods "missing" not found' in err

        code, _, err = await env.kubectl("logs", env.pod, "-c", "main", "--previous")
        assert code == 1
        assert 'previous terminated container "main" in pod "streamer" not found' in err

        # a container still waiting: upstream's message from the pod's status
        waiting = await client.create(
            PODS,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "waiting", "namespace": env.namespace},
                "spec": {"nodeName": env.node, "containers": [pod_container("c", "true")]},
            },
        )
        waiting["status"] = {
            "phase": "Pending",
            "containerStatuses": [
                {
                    "name": "c",
                    "image": images.BUSYBOX_REF,
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "state": {"waiting": {"reason": "ContainerCreating"}},
                }
            ],
        }
        await client.update_status(PODS, waiting)
        code, _, err = await env.kubectl("logs", "waiting")
        assert code == 1
        assert 'container "c" in pod "waiting" is waiting to start: ContainerCreating' in err

        # a pod whose kubelet does not answer: a clear error, not a hang
        dead = f"dead-{uuid.uuid4().hex[:8]}"
        await node_object(client, dead, free_port())
        try:
            await client.create(
                PODS,
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "orphan", "namespace": env.namespace},
                    "spec": {"nodeName": dead, "containers": [pod_container("c", "true")]},
                },
            )
            code, _, err = await env.kubectl("logs", "orphan")
            assert code == 1 and "error dialing kubelet" in err and "/containerLogs/" in err
            code, _, err = await env.kubectl("exec", "orphan", "--", "true")
            assert code == 1 and "error dialing kubelet" in err
        finally:
            assert NODES is not None
            await client.delete(NODES, dead)


# --------------------------------------------------------------------------- exec, cp, attach


@pytest.mark.e2e
async def test_exec(env: Env) -> None:
    async with asyncio.timeout(90):
        code, out, err = await env.kubectl(
            "exec", env.pod, "-c", "main", "--", "sh", "-c", "echo hi; echo there >&2; exit 3"
        )
        assert (code, out) == (3, "hi\n")
        assert err == "there\ncommand terminated with exit code 3\n"

        code, out, _ = await env.kubectl("exec", env.pod, "-c", "main", "--", "hostname")
        assert (code, out) == (0, "streamer\n")

        # stdin reaches the process and its end is EOF (cat exits)
        code, out, _ = await env.kubectl(
            "exec", "-i", env.pod, "-c", "main", "--", "sh", "-c", "cat; echo done",
            input=b"hello stdin\n",
        )  # fmt: skip
        assert (code, out) == (0, "hello stdin\ndone\n")

        code, _, err = await env.kubectl("exec", env.pod, "-c", "nope", "--", "true")
        assert code == 1 and f"container nope is not valid for pod {env.pod}" in err


def _python_client_shell(kubeconfig: Path, namespace: str, pod: str) -> tuple[str, str]:
    """An interactive ``sh`` through the official client's ``stream()``: its stdin goes
    out as TEXT frames (str input), which the API server must accept like BINARY ones."""
    from kubernetes import client, config
    from kubernetes.stream import stream

    api = client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))
    resp = stream(
        api.connect_get_namespaced_pod_exec,
        pod,
        namespace,
        container="main",
        command=["sh"],
        stdin=True,
        stdout=True,
        stderr=True,
        tty=False,
        _preload_content=False,
    )
    try:
        resp.write_stdin("echo test\n")
        out = ""
        for _ in range(100):
            resp.update(timeout=0.2)
            out += resp.read_stdout() if resp.peek_stdout() else ""
            if "test\n" in out:
                break
        resp.write_stdin(b"echo bytes too\n")  # BINARY frames still work
        more = ""
        for _ in range(100):
            resp.update(timeout=0.2)
            more += resp.read_stdout() if resp.peek_stdout() else ""
            if "bytes too\n" in more:
                break
        return out, more
    finally:
        resp.close()


@pytest.mark.e2e
async def test_exec_from_the_python_client_with_stdin(env: Env) -> None:
    async with asyncio.timeout(60):
        out, more = await asyncio.to_thread(
            _python_client_shell, env.kubeconfig, env.namespace, env.pod
        )
    assert out == "test\n"
    assert more == "bytes too\n"


@pytest.mark.e2e
async def test_exec_with_a_terminal(env: Env) -> None:
    """``kubectl exec -it``: a tty in the container (and the resize stream it needs)."""
    primary, secondary = pty.openpty()
    proc = await asyncio.create_subprocess_exec(
        KUBECTL, "--kubeconfig", str(env.kubeconfig), "-n", env.namespace,
        "exec", "-it", env.pod, "-c", "main", "--",
        "sh", "-c", "test -t 0 && echo is-a-tty; echo TERM=$TERM; read line; echo got=$line",
        stdin=secondary, stdout=secondary, stderr=secondary,
    )  # fmt: skip
    os.close(secondary)
    output = b""
    try:
        async with asyncio.timeout(30):
            while b"TERM=" not in output:
                output += await asyncio.to_thread(os.read, primary, 4096)
            os.write(primary, b"typed\r")
            while b"got=typed" not in output:
                output += await asyncio.to_thread(os.read, primary, 4096)
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        os.close(primary)
    assert b"is-a-tty" in output and b"TERM=xterm" in output


@pytest.mark.e2e
async def test_cp_both_ways(env: Env) -> None:
    async with asyncio.timeout(90):
        src = env.tmp / "upload.bin"
        src.write_bytes(os.urandom(300_000))  # several frames of stdin
        code, _, err = await env.kubectl(
            "cp", "-c", "main", str(src), f"{env.namespace}/{env.pod}:/tmp/upload.bin"
        )
        assert code == 0, err
        code, out, _ = await env.kubectl(
            "exec", env.pod, "-c", "main", "--", "sh", "-c", "ls -l /tmp/upload.bin"
        )
        assert "300000" in out

        back = env.tmp / "download.bin"
        code, _, err = await env.kubectl(
            "cp", "-c", "main", f"{env.namespace}/{env.pod}:/tmp/upload.bin", str(back)
        )
        assert code == 0, err
        assert back.read_bytes() == src.read_bytes()


@pytest.mark.e2e
async def test_attach(env: Env) -> None:
    async with asyncio.timeout(60):
        proc = await env.spawn("attach", env.pod, "-c", "main")
        try:
            assert proc.stdout is not None
            # the output from now on (what was printed before attaching is not replayed)
            lines = [await asyncio.wait_for(proc.stdout.readline(), 15) for _ in range(2)]
            assert lines[-1] == b"tick\n"
            assert b"line 1\n" not in lines
        finally:
            proc.kill()
            await proc.wait()


# --------------------------------------------------------------------------- port-forward


@pytest.mark.e2e
async def test_port_forward(env: Env) -> None:
    async with asyncio.timeout(60):
        proc = await env.spawn("port-forward", f"pod/{env.pod}", ":8080")
        try:
            assert proc.stdout is not None
            line = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode()
            # "Forwarding from 127.0.0.1:40123 -> 8080"
            if not line.startswith("Forwarding from 127.0.0.1:"):
                assert proc.stderr is not None
                raise AssertionError(f"{line!r}: {(await proc.stderr.read()).decode()}")
            port = int(line.split(":")[1].split(" ")[0])
            body = ""
            for _ in range(20):  # httpd may still be starting
                try:
                    body = await asyncio.to_thread(_fetch, f"http://127.0.0.1:{port}/")
                    break
                except OSError:
                    await asyncio.sleep(0.3)
            assert body == "hello-from-pod\n"
            # a second connection over the same forward
            assert await asyncio.to_thread(_fetch, f"http://127.0.0.1:{port}/") == body
        finally:
            proc.kill()
            await proc.wait()


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())


# --------------------------------------------------------------------------- the kubelet itself


@pytest.mark.e2e
async def test_kubelet_endpoints_require_a_client_cert(env: Env, cm_server: Server) -> None:
    tls = cm_server.data_dir / "server" / "tls"
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    base = f"https://127.0.0.1:{env.kubelet.port}"
    async with asyncio.timeout(30), aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientError):
            await http.get(f"{base}/healthz", ssl=ctx)
        ctx.load_cert_chain(
            tls / "apiserver-kubelet-client.crt", tls / "apiserver-kubelet-client.key"
        )
        async with http.get(f"{base}/healthz", ssl=ctx) as resp:
            assert (resp.status, await resp.text()) == (200, "ok")
        async with http.get(f"{base}/stats/summary", ssl=ctx) as resp:
            assert resp.status == 404
        async with http.get(f"{base}/metrics", ssl=ctx) as resp:
            assert resp.status == 200
        path = f"/containerLogs/{env.namespace}/{env.pod}/nope"
        async with http.get(base + path, ssl=ctx) as resp:
            assert resp.status == 404
            assert 'container "nope" not found' in await resp.text()


async def test_kubelet_server_without_a_runtime(tmp_path: Path) -> None:
    """Not e2e: the plain endpoints, the summary hook, TLS files, and a raw upgrade's error."""
    registry = CollectorRegistry()
    Counter("kubelet_test_events", "a test counter", registry=registry).inc()
    summary = {"node": {"nodeName": "n1"}, "pods": []}

    async def get_summary() -> dict[str, Any]:
        return summary

    ctx = kubelet_ssl_context(tmp_path / "pki", None)
    crt = (tmp_path / "pki" / "kubelet.crt").read_bytes()
    assert (tmp_path / "pki" / "kubelet.key").stat().st_mode & 0o777 == 0o600
    kubelet_ssl_context(tmp_path / "pki", None)
    assert (tmp_path / "pki" / "kubelet.crt").read_bytes() == crt  # made once, then reused

    client_ctx = ssl.create_default_context(cafile=tmp_path / "pki" / "kubelet.crt")
    client_ctx.check_hostname = False
    cri = CRIClient(str(tmp_path / "no-runtime.sock"), timeout=2)
    cri.connect()
    async with asyncio.timeout(30):
        for hook, want in ((None, 404), (get_summary, 200)):
            kubelet = KubeletServer(
                cri,
                host="127.0.0.1",
                port=0,
                ssl_context=ctx,
                registry=registry,
                summary=hook,
            )
            await kubelet.start()
            base = f"https://127.0.0.1:{kubelet.port}"
            try:
                async with aiohttp.ClientSession() as http:
                    async with http.get(f"{base}/stats/summary", ssl=client_ctx) as resp:
                        assert resp.status == want
                        if want == 200:
                            assert await resp.json() == summary
                    async with http.get(f"{base}/healthz", ssl=client_ctx) as resp:
                        assert (resp.status, await resp.text()) == (200, "ok")
                    async with http.get(f"{base}/metrics", ssl=client_ctx) as resp:
                        assert "kubelet_test_events_total 1.0" in await resp.text()
                    async with http.get(f"{base}/exec/ns/pod/c", ssl=client_ctx) as resp:
                        assert resp.status == 400  # not an upgrade
                    # an upgrade the runtime cannot serve: a plain HTTP error, then close
                    headers = {"Connection": "Upgrade", "Upgrade": "SPDY/3.1"}
                    url = f"{base}/exec/ns/pod/c?command=true&output=1"
                    async with http.post(url, headers=headers, ssl=client_ctx) as resp:
                        assert resp.status == 500
            finally:
                await kubelet.stop()
    await cri.close()
