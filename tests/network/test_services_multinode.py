"""Services across two hosts (network namespaces), each running ``pyk8s agent``, with the
full controller set, a scheduler, the cloud controller manager (``local`` provider) and
``pyk8s dns`` on the bridge's gateway: a Deployment behind a Service answers from every
replica by its cluster DNS name, a NodePort answers at every node's address, scaling the
Deployment changes the rotation, a headless StatefulSet's pods resolve by name, and a
LoadBalancer Service answers at every node's address (with ``externalTrafficPolicy:
Local`` only where its pod runs, at its IPv4 and IPv6 addresses, where the pod sees the
client's own address of either family, and its health-check port answers on both); in the
address-pool mode (a second cloud controller manager, for its class) a LoadBalancer gets an
address of each family on the hosts' network, one elected node answers ARP (NDP for the
IPv6 one) for it, and another takes it over with gratuitous ARP when the holder's speaker
dies. The two hosts run the proxy in different modes (nftables, iptables), so every
scenario crosses both."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyk8s.proxy.announce import announcer
from tests.controllers.conftest import eventually
from tests.e2e_sim.conftest import child_pid
from tests.integration.conftest import KUBECTL, Kubectl, Server, free_port
from tests.kubelet.runtime_fixtures import require_runtime
from tests.network.hosts import Host, Hosts, sh, signing_flags

pytestmark = pytest.mark.e2e

DNS_IP = "10.43.0.10"
#: the module cluster is dual-stack (issue 20): pods and services of both families
CLUSTER_CIDRS = "10.42.0.0/16,fd00:42::/56"
SERVICE_CIDRS = "10.43.0.0/16,fd00:43::/112"
DUAL_STACK_AGENT_ARGS = (
    "--kubelet-arg", f"cluster-cidr={CLUSTER_CIDRS}",
    "--kubelet-arg", f"service-cidr={SERVICE_CIDRS}",
    "--kube-proxy-arg", f"cluster-cidr={CLUSTER_CIDRS}",
)  # fmt: skip
IMAGE = "pyk8s.local/busybox:1.35"
WEB_FQDN = "web.default.svc.cluster.local"
HTTPD = "mkdir -p /www; hostname > /www/index.html; exec httpd -f -p 8080 -h /www"
L2_CLASS = "pyk8s.io/l2"


def _v6_prefix(hosts: Hosts) -> str:
    """The hosts' IPv6 subnet, ``fd00:99:K::``."""
    return f"{hosts.hosts[0].ip6.rsplit(':', 1)[0]}:"


#: the module cluster's host-side components by name (the DNS test stops "dns")
COMPONENTS: dict[str, subprocess.Popen[bytes]] = {}


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[Server, Hosts]]:
    require_runtime()
    if shutil.which("ip") is None or not Path(KUBECTL).exists():
        pytest.skip("needs iproute2 and kubectl")
    base = Path(tempfile.mkdtemp(prefix="pyk8s-svc-", dir="/tmp"))
    hosts = Hosts.create(
        base / "hosts", 2, agent_args=("--cluster-dns", DNS_IP, *DUAL_STACK_AGENT_ARGS), ipv6=True
    )
    # one proxy per mode: the first host's in nftables mode, the default (the client pod
    # below runs there, so ClusterIP and DNS traffic go through it), the second's iptables
    second = hosts.hosts[1]
    second.agent_args = (*second.agent_args, "--kube-proxy-arg", "proxy-mode=iptables")
    server = Server(
        base / "server", free_port(),
        extra_args=("--bind-address", "0.0.0.0", "--advertise-address", hosts.gateway,
                    "--service-cidr", SERVICE_CIDRS),
    )  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []
    try:
        server.start()
        kubeconfig = str(server.kubeconfig)
        components = {
            "cm": ["controller-manager", "--kubeconfig", kubeconfig, "--leader-elect", "false",
                   "--controllers", "*", "--port", str(free_port()),
                   "--cluster-cidr", CLUSTER_CIDRS,
                   *signing_flags(server.data_dir)],
            "scheduler": ["scheduler", "--kubeconfig", kubeconfig, "--leader-elect", "false",
                          "--port", str(free_port())],
            "ccm": ["cloud-controller-manager", "--kubeconfig", kubeconfig,
                    "--leader-elect", "false", "--port", str(free_port())],
            # the address-pool mode beside it, for the services of its class
            "ccm-l2": ["cloud-controller-manager", "--kubeconfig", kubeconfig,
                       "--leader-elect", "false", "--port", str(free_port()),
                       "--controllers", "service-lb-controller", "--lb-class", L2_CLASS,
                       "--lb-address-pool",
                       f"{hosts.subnet_prefix}.200-{hosts.subnet_prefix}.209",
                       "--lb-address-pool", f"{_v6_prefix(hosts)}200-{_v6_prefix(hosts)}209"],
            "dns": ["dns", "--kubeconfig", kubeconfig, "--bind-address", hosts.gateway,
                    "--cluster-ip", DNS_IP, "--advertise-address", hosts.gateway,
                    "--node-name", "gateway",
                    "--health-bind-address", "127.0.0.1", "--health-port", str(free_port())],
        }  # fmt: skip
        for name, argv in components.items():
            with (base / f"{name}.log").open("ab") as log:
                COMPONENTS[name] = subprocess.Popen(
                    [sys.executable, "-m", "pyk8s", *argv], stdout=log, stderr=subprocess.STDOUT
                )
                procs.append(COMPONENTS[name])
        url = f"https://{hosts.gateway}:{server.port}"
        for host in hosts.hosts:
            host.start_agent(url, server.data_dir / "server" / "node-token")
        yield server, hosts
    finally:
        hosts.destroy()
        for proc in reversed(procs):
            _stop(proc)
        server.stop()
        if os.environ.get("PYK8S_KEEP_HOSTS") is None:
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def kubectl(cluster: tuple[Server, Hosts]) -> Kubectl:
    return Kubectl(cluster[0].kubeconfig)


async def _kubectl(kubectl: Kubectl, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(kubectl.run, *args, **kw)


async def _apply(kubectl: Kubectl, *docs: dict[str, Any]) -> None:
    doc = {"apiVersion": "v1", "kind": "List", "items": list(docs)}
    await _kubectl(kubectl, "apply", "-f", "-", input=json.dumps(doc))


async def _json(kubectl: Kubectl, *args: str) -> Any:
    out = await _kubectl(kubectl, *args, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


async def _nodes_ready(kubectl: Kubectl, count: int) -> None:
    async def ready() -> bool:
        nodes = await _json(kubectl, "get", "nodes")
        ok = [
            n for n in (nodes or {"items": []})["items"]
            if n["spec"].get("podCIDR")
            and any(c["type"] == "Ready" and c["status"] == "True"
                    for c in n["status"].get("conditions") or [])
        ]  # fmt: skip
        return len(ok) == count

    await eventually(ready, within=120, every=0.5)


def _web() -> list[dict[str, Any]]:
    labels = {"app": "web"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "DoNotSchedule",
                            "labelSelector": {"matchLabels": labels},
                        }
                    ],
                    "containers": [
                        {
                            "name": "httpd",
                            "image": IMAGE,
                            "command": ["sh", "-c", HTTPD],
                            "ports": [{"containerPort": 8080}],
                            "readinessProbe": {
                                "tcpSocket": {"port": 8080},
                                "periodSeconds": 1,
                            },
                        }
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "type": "NodePort",
            "selector": labels,
            "ports": [{"port": 80, "targetPort": 8080}],
        },
    }
    return [deployment, service]


async def _web_pods(kubectl: Kubectl) -> list[dict[str, Any]]:
    pods = await _json(kubectl, "get", "pods", "-l", "app=web")
    return [
        p for p in (pods or {"items": []})["items"]
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    ]  # fmt: skip


async def _ensure_web(kubectl: Kubectl) -> list[dict[str, Any]]:
    """The 3-replica web Deployment and its NodePort Service, all replicas ready."""
    await _apply(kubectl, *_web())

    async def ready() -> list[dict[str, Any]] | None:
        deploy = await _json(kubectl, "get", "deployment", "web")
        if deploy is None or deploy["status"].get("readyReplicas") != 3:
            return None
        pods = await _web_pods(kubectl)
        return pods if len(pods) == 3 else None

    return await eventually(ready, within=120, every=0.5)  # type: ignore[no-any-return]


async def _ensure_client(kubectl: Kubectl, node: str) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "client", "namespace": "default"},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": IMAGE, "command": ["sleep", "3600"]}],
        },
    }
    await _apply(kubectl, pod)

    async def running() -> bool:
        got = await _json(kubectl, "get", "pod", "client")
        return bool(got and got["status"].get("phase") == "Running")

    await eventually(running, within=90, every=0.5)


async def _fetch_in_client(kubectl: Kubectl, url: str, count: int) -> list[str]:
    """``count`` bounded requests from the client pod; one line per request ("" = failed)."""
    script = f"for i in $(seq {count}); do echo R:$(timeout 3 wget -q -O - {url} 2>/dev/null); done"
    out = await _kubectl(
        kubectl, "exec", "client", "--", "sh", "-c", script, check=False, timeout=5 * count + 30
    )
    return [line[2:].strip() for line in out.stdout.splitlines() if line.startswith("R:")]


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _http_get(url: str) -> str:
    try:
        with _NO_PROXY.open(url, timeout=3) as resp:
            return str(resp.read().decode().strip())
    except OSError:
        return ""


async def test_deployment_replicas_answer_by_service_name(
    cluster: tuple[Server, Hosts], kubectl: Kubectl
) -> None:
    _, hosts = cluster
    a, b = hosts.hosts
    await _nodes_ready(kubectl, 2)
    pods = await _ensure_web(kubectl)
    placement = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in pods}
    # spread over both nodes (maxSkew 1 of 3 replicas: 2 + 1)
    assert sorted(list(placement.values()).count(h.name) for h in (a, b)) == [1, 2], placement

    await _ensure_client(kubectl, a.name)
    resolv = (await _kubectl(kubectl, "exec", "client", "--", "cat", "/etc/resolv.conf")).stdout
    assert f"nameserver {DNS_IP}" in resolv, resolv

    url = f"http://{WEB_FQDN}/"

    async def answered() -> bool:
        return any(await _fetch_in_client(kubectl, url, 1))

    await eventually(answered, within=60, every=1)
    answers = await _fetch_in_client(kubectl, url, 60)
    assert len(answers) == 60 and all(answers), answers
    assert set(answers) == set(placement), (answers, placement)


async def test_nodeport_answers_at_every_node(
    cluster: tuple[Server, Hosts], kubectl: Kubectl
) -> None:
    _, hosts = cluster
    await _nodes_ready(kubectl, 2)
    pods = await _ensure_web(kubectl)
    names = {p["metadata"]["name"] for p in pods}
    svc = await _json(kubectl, "get", "service", "web")
    node_port = svc["spec"]["ports"][0]["nodePort"]
    assert 30000 <= node_port <= 32767
    for host in hosts.hosts:
        url = f"http://{host.ip}:{node_port}/"

        async def answered(url: str = url) -> str:
            return await asyncio.to_thread(_http_get, url)

        await eventually(answered, within=60, every=0.5)
        # from the root namespace; every replica, local to the node or not, is reached
        answers = [await asyncio.to_thread(_http_get, url) for _ in range(30)]
        assert all(answers), (host.name, answers)
        assert set(answers) == names, (host.name, answers, names)


async def test_scaling_changes_the_rotation(
    cluster: tuple[Server, Hosts], kubectl: Kubectl
) -> None:
    _, hosts = cluster
    await _nodes_ready(kubectl, 2)
    await _ensure_web(kubectl)
    await _ensure_client(kubectl, hosts.hosts[0].name)
    url = f"http://{WEB_FQDN}/"

    async def answered() -> bool:
        return any(await _fetch_in_client(kubectl, url, 1))

    await eventually(answered, within=60, every=1)

    start = time.monotonic()
    await _kubectl(kubectl, "scale", "deployment", "web", "--replicas", "1")

    async def one_replica() -> str | None:
        answers = await _fetch_in_client(kubectl, url, 10)
        if len(answers) == 10 and all(answers) and len(set(answers)) == 1:
            return answers[0]
        return None

    survivor = await eventually(one_replica, within=60, every=0.2)
    elapsed = time.monotonic() - start
    print(f"scale 3 -> 1: only {survivor} answers {elapsed:.1f}s after the scale")
    remaining = await eventually(lambda: _until_count(kubectl, 1), within=60, every=0.5)
    assert [p["metadata"]["name"] for p in remaining] == [survivor]
    # and it stays that way
    answers = await _fetch_in_client(kubectl, url, 30)
    assert answers == [survivor] * 30, answers

    # scale back up: the new replicas join the rotation
    start = time.monotonic()
    await _kubectl(kubectl, "scale", "deployment", "web", "--replicas", "3")
    pods = await _ensure_web(kubectl)
    names = {p["metadata"]["name"] for p in pods}
    ready_after = time.monotonic() - start
    print(f"scale 1 -> 3: 3 replicas ready {ready_after:.1f}s after the scale")
    if ready_after > 10:  # slow: show what the pods went through
        print((await _kubectl(kubectl, "get", "events", "--sort-by=.lastTimestamp")).stdout)
    for pod in pods:  # when each was created, scheduled, started and ready (for slow runs)
        conds = {c["type"]: c.get("lastTransitionTime") for c in pod["status"]["conditions"]}
        print(
            f"  {pod['metadata']['name']} on {pod['spec']['nodeName']}: created "
            f"{pod['metadata']['creationTimestamp']} scheduled {conds.get('PodScheduled')} "
            f"running {_started_at(pod)} ready {conds.get('Ready')}"
        )

    async def all_three() -> bool:
        return set(await _fetch_in_client(kubectl, url, 30)) == names

    await eventually(all_three, within=60, every=0.2)
    print(f"scale 1 -> 3: all replicas answer {time.monotonic() - start:.1f}s after the scale")


def _started_at(pod: dict[str, Any]) -> str:
    statuses = pod["status"].get("containerStatuses") or [{}]
    return str(statuses[0].get("state", {}).get("running", {}).get("startedAt"))


async def _until_count(kubectl: Kubectl, count: int) -> list[dict[str, Any]] | None:
    pods = await _json(kubectl, "get", "pods", "-l", "app=web")
    items = (pods or {"items": []})["items"]
    return items if len(items) == count else None


async def test_headless_statefulset_pods_resolve_by_name(
    cluster: tuple[Server, Hosts], kubectl: Kubectl
) -> None:
    _, hosts = cluster
    await _nodes_ready(kubectl, 2)
    labels = {"app": "web-sts"}
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web-hl", "namespace": "default"},
        "spec": {"clusterIP": "None", "selector": labels, "ports": [{"port": 8080}]},
    }
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 2,
            "serviceName": "web-hl",
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {"name": "httpd", "image": IMAGE, "command": ["sh", "-c", HTTPD]}
                    ],
                },
            },
        },
    }
    await _apply(kubectl, service, sts)
    await _ensure_client(kubectl, hosts.hosts[0].name)

    async def pod_ips() -> dict[str, str] | None:
        pods = await _json(kubectl, "get", "pods", "-l", "app=web-sts")
        ips = {
            p["metadata"]["name"]: p["status"].get("podIP", "")
            for p in (pods or {"items": []})["items"]
            if p["status"].get("phase") == "Running"
        }
        return ips if len(ips) == 2 and all(ips.values()) else None

    ips = await eventually(pod_ips, within=120, every=0.5)
    assert set(ips) == {"web-0", "web-1"}

    for name, ip in ips.items():
        fqdn = f"{name}.web-hl.default.svc.cluster.local"

        async def resolved(fqdn: str = fqdn, ip: str = ip) -> str:
            out = await _kubectl(
                kubectl, "exec", "client", "--", "timeout", "5", "nslookup", fqdn, check=False
            )
            found = re.findall(r"Address:\s*(\d+\.\d+\.\d+\.\d+)", out.stdout)
            return out.stdout if ip in found else ""

        await eventually(resolved, within=60, every=1)
    # web-0 serves its own hostname, fetched by its DNS name (once it listens)
    url = "http://web-0.web-hl.default.svc.cluster.local:8080/"
    start = time.monotonic()

    async def served() -> list[str]:
        return [a for a in await _fetch_in_client(kubectl, url, 1) if a]

    assert await eventually(served, within=30, every=0.5) == ["web-0"]
    print(f"web-0 answered by name {time.monotonic() - start:.1f}s after it resolved")


async def test_deleted_pod_leaves_the_rotation_before_it_stops(
    cluster: tuple[Server, Hosts], kubectl: Kubectl
) -> None:
    _, hosts = cluster
    await _nodes_ready(kubectl, 2)
    pods = await _ensure_web(kubectl)
    await _ensure_client(kubectl, hosts.hosts[0].name)
    url = f"http://{WEB_FQDN}/"
    victim = pods[0]["metadata"]["name"]

    async def answering(name: str) -> bool:
        return name in await _fetch_in_client(kubectl, url, 20)

    await eventually(lambda: answering(victim), within=60, every=0.5)
    # httpd runs as PID 1 and ignores SIGTERM: the pod stays Terminating for its grace period
    await _kubectl(kubectl, "delete", "pod", victim, "--grace-period=30", "--wait=false")

    async def gone_from_rotation() -> bool:
        return not await answering(victim)

    await eventually(gone_from_rotation, within=10, every=0.2)
    still = await _json(kubectl, "get", "pod", victim)
    assert still is not None and still["metadata"].get("deletionTimestamp"), still
    statuses = still["status"].get("containerStatuses") or [{}]
    assert "running" in statuses[0].get("state", {}), "the pod stopped before leaving"


async def _lb_addresses(kubectl: Kubectl, name: str, count: int) -> list[str] | None:
    svc = await _json(kubectl, "get", "service", name)
    ingress = ((svc or {}).get("status") or {}).get("loadBalancer", {}).get("ingress") or []
    ips = [i["ip"] for i in ingress]
    return ips if len(ips) == count else None


async def test_load_balancer_answers_at_every_node_until_deleted(
    cluster: tuple[Server, Hosts], kubectl: Kubectl
) -> None:
    _, hosts = cluster
    await _nodes_ready(kubectl, 2)
    pods = await _ensure_web(kubectl)
    names = {p["metadata"]["name"] for p in pods}
    start = time.monotonic()
    await _kubectl(
        kubectl, "expose", "deployment", "web", "--name", "web-lb", "--type=LoadBalancer",
        "--port", "80", "--target-port", "8080",
    )  # fmt: skip
    addresses = await eventually(lambda: _lb_addresses(kubectl, "web-lb", 2), within=30)
    print(f"load balancer addresses {time.monotonic() - start:.1f}s after the expose")
    assert sorted(addresses) == sorted(h.ip for h in hosts.hosts)
    get = await _kubectl(kubectl, "get", "service", "web-lb")
    assert ",".join(sorted(addresses)) in get.stdout.replace(", ", ","), get.stdout
    for ip in addresses:
        url = f"http://{ip}/"

        async def answered(url: str = url) -> str:
            return await asyncio.to_thread(_http_get, url)

        await eventually(answered, within=30, every=0.2)
        print(f"{ip} answers {time.monotonic() - start:.1f}s after the expose")
        answers = [await asyncio.to_thread(_http_get, url) for _ in range(30)]
        assert all(answers) and set(answers) == names, (ip, answers, names)

    # loadBalancerSourceRanges: a range without this client shuts it out, its /32 lets it in
    url = f"http://{addresses[0]}/"
    for ranges, admitted in ((["192.0.2.0/24"], False), ([f"{hosts.gateway}/32"], True)):
        patch = json.dumps({"spec": {"loadBalancerSourceRanges": ranges}})
        await _kubectl(kubectl, "patch", "service", "web-lb", "-p", patch)

        async def admission(admitted: bool = admitted) -> bool:
            return bool(await asyncio.to_thread(_http_get, url)) == admitted

        await eventually(admission, within=30, every=0.2)

    await _kubectl(kubectl, "delete", "service", "web-lb", "--wait=true", timeout=60)
    assert await _json(kubectl, "get", "service", "web-lb") is None  # the finalizer went

    async def port_freed(url: str = f"http://{addresses[0]}/") -> bool:
        return await asyncio.to_thread(_http_get, url) == ""

    await eventually(port_freed, within=30, every=0.2)
    print(f"deleted and freed {time.monotonic() - start:.1f}s after the expose")


ECHO_IP = (
    "mkdir -p /www/cgi-bin; printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\n"
    "echo $REMOTE_ADDR\\n' > /www/cgi-bin/ip; chmod +x /www/cgi-bin/ip; "
    "exec httpd -f -p 8080 -h /www"
)


async def test_local_policy_load_balancer_keeps_the_client_address(
    cluster: tuple[Server, Hosts], kubectl: Kubectl
) -> None:
    _, hosts = cluster
    a, b = hosts.hosts
    await _nodes_ready(kubectl, 2)
    labels = {"app": "echo-ip"}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "echo-ip", "namespace": "default", "labels": labels},
        "spec": {
            "nodeName": a.name,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "httpd", "image": IMAGE, "command": ["sh", "-c", ECHO_IP],
                "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
            }],
        },
    }  # fmt: skip
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "echo-ip", "namespace": "default"},
        "spec": {
            "type": "LoadBalancer",
            "externalTrafficPolicy": "Local",
            # dual stack: the node's address of each family (k3s's ServiceLB)
            "ipFamilyPolicy": "PreferDualStack",
            "selector": labels,
            "ports": [{"port": 8081, "targetPort": 8080}],
        },
    }
    await _apply(kubectl, pod, service)
    # only the node with a ready replica is listed
    ingress = await eventually(lambda: _lb_addresses(kubectl, "echo-ip", 2), within=90)
    assert ingress == [a.ip, a.ip6]
    # the test runs in the root namespace: its addresses on the hosts' bridge
    gateway6 = f"{_v6_prefix(hosts)}1"
    for ip, client in ((a.ip, hosts.gateway), (f"[{a.ip6}]", gateway6)):
        url = f"http://{ip}:8081/cgi-bin/ip"

        async def seen_client(url: str = url) -> str:
            # httpd listens dual-stack: an IPv4 peer reads [::ffff:a.b.c.d]
            seen = await asyncio.to_thread(_http_get, url)
            return seen.removeprefix("[::ffff:").removeprefix("[").removesuffix("]")

        try:
            seen = await eventually(seen_client, within=30, every=0.2)
        except AssertionError as err:
            raise AssertionError(f"{url}: {err}") from None
        assert seen == client, url
    svc = await _json(kubectl, "get", "service", "echo-ip")
    health_port = svc["spec"]["healthCheckNodePort"]

    def health(ip: str) -> tuple[int, dict[str, Any]]:
        try:
            with _NO_PROXY.open(f"http://{ip}:{health_port}/healthz", timeout=3) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    async def health_checks() -> tuple[tuple[int, dict[str, Any]], ...] | None:
        try:
            addresses = (a.ip, b.ip, f"[{a.ip6}]", f"[{b.ip6}]")  # both families
            return tuple([await asyncio.to_thread(health, ip) for ip in addresses])
        except OSError:
            return None

    (code_a, body_a), (code_b, body_b), *v6 = await eventually(health_checks, within=30)
    assert (code_a, body_a["localEndpoints"]) == (200, 1), body_a  # one pod, two addresses
    assert (code_b, body_b["localEndpoints"]) == (503, 0), body_b
    assert v6 == [(code_a, body_a), (code_b, body_b)], v6
    assert body_a["service"] == {"namespace": "default", "name": "echo-ip"}
    await _kubectl(kubectl, "delete", "service", "echo-ip", "--wait=true", timeout=60)
    await _kubectl(kubectl, "delete", "pod", "echo-ip", "--wait=false")


def _mac(host: str) -> str:
    return sh("cat", "/sys/class/net/eth0/address", netns=host).strip()


def _neighbour(bridge: str, ip: str) -> str:
    """The MAC address the root namespace (the test's client) sends ``ip``'s packets to."""
    entries = json.loads(sh("ip", "-j", "neigh", "show", ip, "dev", bridge) or "[]")
    return str(entries[0].get("lladdr") or "") if entries else ""


async def _assigned(kubectl: Kubectl, name: str, node: str) -> bool:
    """Whether ``node`` recorded MetalLB's ``nodeAssigned`` event on service ``name``."""
    events = await _json(
        kubectl, "get", "events", "--field-selector", f"involvedObject.name={name}"
    )
    wanted = f'announcing from node "{node}" with protocol "layer2"'
    return any(
        ev.get("reason") == "nodeAssigned" and ev.get("message") == wanted
        for ev in (events or {}).get("items") or []
    )


async def test_address_pool_load_balancer_moves_to_the_other_node_when_its_holder_dies(
    cluster: tuple[Server, Hosts], kubectl: Kubectl
) -> None:
    _, hosts = cluster
    await _nodes_ready(kubectl, 2)
    pods = await _ensure_web(kubectl)
    names = {p["metadata"]["name"] for p in pods}
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web-l2", "namespace": "default"},
        "spec": {
            "type": "LoadBalancer",
            "loadBalancerClass": L2_CLASS,
            # an address of each family: ARP for the IPv4 one, NDP for the IPv6 one
            "ipFamilyPolicy": "PreferDualStack",
            "selector": {"app": "web"},
            "ports": [{"port": 80, "targetPort": 8080}],
        },
    }
    start = time.monotonic()
    await _apply(kubectl, service)
    ip, ip6 = await eventually(lambda: _lb_addresses(kubectl, "web-l2", 2), within=30)
    # the pool's first address of each family
    assert (ip, ip6) == (f"{hosts.subnet_prefix}.200", f"{_v6_prefix(hosts)}200")
    by_name = {h.name: h for h in hosts.hosts}
    holder = by_name[str(announcer(by_name, ip))]
    (other,) = (h for h in hosts.hosts if h is not holder)
    url = f"http://{ip}/"

    async def answered_via(host: Host, ip: str = ip) -> bool:
        answer = await asyncio.to_thread(_http_get, f"http://[{ip}]/" if ":" in ip else url)
        return answer in names and _neighbour(hosts.bridge, ip) == _mac(host.name)

    await eventually(lambda: answered_via(holder), within=30, every=0.2)
    print(f"{ip} answered through {holder.name} {time.monotonic() - start:.1f}s after apply")
    await eventually(lambda: _assigned(kubectl, "web-l2", holder.name), within=10)
    answers = [await asyncio.to_thread(_http_get, url) for _ in range(20)]
    assert set(answers) == names, answers
    # the IPv6 address: its elected node answers the root namespace's solicitation
    holder6 = by_name[str(announcer(by_name, ip6))]
    await eventually(lambda: answered_via(holder6, ip6), within=30, every=0.2)
    print(f"{ip6} answered through {holder6.name} {time.monotonic() - start:.1f}s after apply")

    # the holder dies: its proxy (the speaker, in the kubelet's process: both) stops, and
    # it drops what reaches it for the address (its kernel would otherwise still forward
    # by the rules it keeps)
    assert holder.proc is not None
    proxy = child_pid(holder.proc.pid, "proxy")
    assert proxy is not None
    table = "pyk8s-test-l2"
    os.kill(proxy, signal.SIGSTOP)
    try:
        sh("nft", "add", "table", "inet", table, netns=holder.name)
        sh("nft", "add chain inet", table, "pre { type filter hook prerouting priority -300; }",
           netns=holder.name)  # fmt: skip
        for match in (f"ip daddr {ip}", f"ip6 daddr {ip6}"):
            sh("nft", "add rule inet", table, "pre", match, "drop", netns=holder.name)
        died = time.monotonic()
        await eventually(lambda: answered_via(other), within=30, every=0.2)
        print(f"{ip} moved to {other.name} {time.monotonic() - died:.1f}s after its holder died")
        await eventually(lambda: _assigned(kubectl, "web-l2", other.name), within=10)
        answers = [await asyncio.to_thread(_http_get, url) for _ in range(20)]
        assert set(answers) == names, answers
        # the IPv6 address is the survivor's too (moved with unsolicited advertisements
        # overriding the root namespace's cache, if the holder had it)
        await eventually(lambda: answered_via(other, ip6), within=30, every=0.2)
        print(f"{ip6} answered through {other.name} {time.monotonic() - died:.1f}s after")
    finally:
        sh("nft", "delete", "table", "inet", table, netns=holder.name, check=False)
        os.kill(proxy, signal.SIGCONT)
    await _kubectl(kubectl, "delete", "service", "web-l2", "--wait=true", timeout=60)
    assert await _json(kubectl, "get", "service", "web-l2") is None  # the finalizer went


def _np_pod(name: str, ns: str, node: str, labels: dict[str, str], serve: bool) -> dict[str, Any]:
    command = ["sh", "-c", HTTPD] if serve else ["sleep", "3600"]
    ports = [{"name": "http", "containerPort": 8080}] if serve else []
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "c", "image": IMAGE, "command": command,
                                 "ports": ports}]},
    }  # fmt: skip


def _np_policy(name: str, ns: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"podSelector": {}, **spec},
    }  # fmt: skip


async def test_network_policies_filter_pods_across_nodes(
    cluster: tuple[Server, Hosts], kubectl: Kubectl
) -> None:
    """The client pod (first host) talks to two servers on the second host: ingress is
    filtered there, egress on the client's host; replies of allowed connections pass."""
    _, hosts = cluster
    a, b = hosts.hosts
    await _nodes_ready(kubectl, 2)
    begun = time.monotonic()
    namespaces = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}
                  for n in ("np-srv", "np-cli")]  # fmt: skip
    await _apply(kubectl, *namespaces)
    await _apply(
        kubectl,
        _np_pod("srv", "np-srv", b.name, {"app": "srv"}, serve=True),
        _np_pod("other", "np-srv", b.name, {"app": "other"}, serve=True),
        _np_pod("client", "np-cli", a.name, {"app": "client"}, serve=False),
    )

    async def addresses() -> dict[str, str] | None:
        pods = await _json(kubectl, "get", "pods", "-A", "-l", "app in (srv,other,client)")
        running = {
            p["metadata"]["name"]: p["status"]["podIP"]
            for p in (pods or {"items": []})["items"]
            if p["status"].get("phase") == "Running" and p["status"].get("podIP")
        }
        return running if len(running) == 3 else None

    ips = await eventually(addresses, within=90, every=0.5)

    async def fetch(name: str) -> str:
        url = f"http://{ips[name]}:8080/"
        out = await _kubectl(
            kubectl, "exec", "-n", "np-cli", "client", "--", "sh", "-c",
            f"timeout 3 wget -q -O - {url} 2>/dev/null", check=False, timeout=30,
        )  # fmt: skip
        return out.stdout.strip()

    async def reaches(name: str, expected: str) -> bool:
        return await fetch(name) == expected

    assert await eventually(lambda: reaches("srv", "srv"), within=30, every=0.2)
    assert await fetch("other") == "other"

    # default deny (both directions) for the servers' namespace
    await _apply(kubectl, _np_policy("deny", "np-srv", policyTypes=["Ingress", "Egress"]))
    assert await eventually(lambda: reaches("srv", ""), within=20, every=0.2)

    # allowed by namespace label, on the named port: in place on the server's node, but the
    # client's namespace lacks the label yet
    allow = _np_policy(
        "from-clients", "np-srv", podSelector={"matchLabels": {"app": "srv"}},
        ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"team": "client"}}}],
                  "ports": [{"port": "http"}]}],
    )  # fmt: skip
    await _apply(kubectl, allow)

    async def programmed() -> bool:
        listing = await asyncio.to_thread(
            sh, "nft", "list", "table", "inet", "pyk8s-netpol", netns=b.name, check=False
        )
        return '"np-srv/from-clients"' in listing

    assert await eventually(programmed, within=20, every=0.2)
    assert await fetch("srv") == ""
    started = time.monotonic()
    await _kubectl(kubectl, "label", "namespace", "np-cli", "team=client")
    # the label change opens the way (the servers' egress is denied: replies pass as
    # established connections)
    assert await eventually(lambda: reaches("srv", "srv"), within=15, every=0.1)
    label_to_allowed = time.monotonic() - started
    assert await fetch("other") == ""  # not selected by the allow rule
    open_other = _np_policy("open", "np-srv", podSelector={"matchLabels": {"app": "other"}},
                            ingress=[{}])  # fmt: skip
    await _apply(kubectl, open_other)
    assert await eventually(lambda: reaches("other", "other"), within=20, every=0.2)

    # egress limited to one CIDR, for pods labelled role=limited: the client gets the label
    limit = _np_policy(
        "only-srv", "np-cli", podSelector={"matchLabels": {"role": "limited"}},
        policyTypes=["Egress"], egress=[{"to": [{"ipBlock": {"cidr": f"{ips['srv']}/32"}}]}],
    )  # fmt: skip
    await _apply(kubectl, limit)
    await _kubectl(kubectl, "label", "pod", "-n", "np-cli", "client", "role=limited")
    assert await eventually(lambda: reaches("other", ""), within=15, every=0.1)
    assert await fetch("srv") == "srv"

    # invalid policies are refused as upstream
    bad = _np_policy("bad", "np-cli", ingress=[{"from": [
        {"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.1.0.0/24"]}},
        {"ipBlock": {"cidr": "10.0.0.0/33"}}]}])  # fmt: skip
    out = await _kubectl(kubectl, "apply", "-f", "-", input=json.dumps(bad), check=False)
    assert out.returncode != 0
    assert "spec.ingress[0].from[0].ipBlock.except[0]" in out.stderr, out.stderr
    assert "must be a strict subset of `cidr`" in out.stderr
    assert "spec.ingress[0].from[1].ipBlock.cidr" in out.stderr
    print(f"namespace label to traffic allowed: {label_to_allowed:.2f}s;"
          f" with nodes ready, the test took {time.monotonic() - begun:.1f}s")  # fmt: skip
    await _kubectl(kubectl, "delete", "namespace", "np-srv", "np-cli", "--wait=false")


async def test_dual_stack_pods_and_services(
    cluster: tuple[Server, Hosts], kubectl: Kubectl
) -> None:
    """Dual stack (issue 20): every node has a pod CIDR and an InternalIP of each family,
    every replica an address of each; pods reach each other over IPv6 across nodes; a
    PreferDualStack Service gets a cluster IP of each family and answers on both (host
    a's nftables ``ip6`` table), its NodePort answers at host b's IPv6 address (host b's
    ip6tables), its EndpointSlices come per family, and DNS answers its AAAA record."""
    _, hosts = cluster
    a, b = hosts.hosts
    await _nodes_ready(kubectl, 2)
    pods = await _ensure_web(kubectl)
    await _ensure_client(kubectl, a.name)
    nodes = {n["metadata"]["name"]: n for n in (await _json(kubectl, "get", "nodes"))["items"]}
    for host in (a, b):
        spec, status = nodes[host.name]["spec"], nodes[host.name]["status"]
        assert [ipaddress.ip_network(c).version for c in spec["podCIDRs"]] == [4, 6], spec
        internal = [x["address"] for x in status["addresses"] if x["type"] == "InternalIP"]
        assert internal == [host.ip, host.ip6], status["addresses"]
    v6: dict[str, tuple[str, str]] = {}
    for pod in pods:
        ips = [x["ip"] for x in pod["status"]["podIPs"]]
        node_cidrs = nodes[pod["spec"]["nodeName"]]["spec"]["podCIDRs"]
        assert pod["status"]["podIP"] == ips[0] and len(ips) == 2, pod["status"]
        assert ipaddress.ip_address(ips[1]) in ipaddress.ip_network(node_cidrs[1]), ips
        v6[pod["metadata"]["name"]] = (ips[1], pod["spec"]["nodeName"])

    remote = next(name for name, (_, node) in v6.items() if node == b.name)

    async def pod_to_pod() -> bool:
        return await _fetch_in_client(kubectl, f"http://[{v6[remote][0]}]:8080/", 1) == [remote]

    await eventually(pod_to_pod, within=60, every=1)

    service = _web()[1]
    service["metadata"]["name"] = "web-ds"
    service["spec"]["ipFamilyPolicy"] = "PreferDualStack"
    await _apply(kubectl, service)
    spec = (await _json(kubectl, "get", "service", "web-ds"))["spec"]
    assert spec["ipFamilies"] == ["IPv4", "IPv6"], spec
    v4_ip, v6_ip = spec["clusterIPs"]
    assert ipaddress.ip_address(v6_ip) in ipaddress.ip_network(SERVICE_CIDRS.split(",")[1])
    for url in (f"http://{v4_ip}/", f"http://[{v6_ip}]/"):

        async def answered(url: str = url) -> bool:
            return any(await _fetch_in_client(kubectl, url, 1))

        await eventually(answered, within=60, every=1)
        answers = await _fetch_in_client(kubectl, url, 20)
        assert all(answers) and set(answers) <= set(v6), (url, answers)
    node_port = f"http://[{b.ip6}]:{spec['ports'][0]['nodePort']}/"

    async def node_port_answers() -> str:
        return await asyncio.to_thread(_http_get, node_port)

    await eventually(node_port_answers, within=60, every=0.5)
    answers = [await asyncio.to_thread(_http_get, node_port) for _ in range(20)]
    assert all(answers) and set(answers) <= set(v6), answers

    selector = "kubernetes.io/service-name=web-ds"
    slices = await _json(kubectl, "get", "endpointslices", "-l", selector)
    by_type = {
        s["addressType"]: sorted(x for e in s.get("endpoints") or [] for x in e["addresses"])
        for s in slices["items"]
    }
    assert by_type["IPv6"] == sorted(ip for ip, _ in v6.values()), by_type
    assert len(by_type["IPv4"]) == 3, by_type

    name = "web-ds.default.svc.cluster.local"
    out = await _kubectl(kubectl, "exec", "client", "--", "nslookup", "-type=AAAA", name)
    assert v6_ip in out.stdout, out.stdout
    await _kubectl(kubectl, "delete", "service", "web-ds", "--wait=false")


async def test_dns_survives_the_server_hosts_dns(
    cluster: tuple[Server, Hosts], kubectl: Kubectl
) -> None:
    """Every node runs the cluster DNS, each in its own kube-dns EndpointSlice: with the
    server host's DNS stopped (its endpoint marked not ready), a pod still resolves.
    Last in the module: the host-side DNS stays stopped."""
    _, hosts = cluster
    a, b = hosts.hosts
    await _nodes_ready(kubectl, 2)
    begun = time.monotonic()
    await _ensure_client(kubectl, a.name)

    async def endpoints() -> dict[str, tuple[list[str], bool]]:
        got = await _json(kubectl, "-n", "kube-system", "get", "endpointslices",
                          "-l", "kubernetes.io/service-name=kube-dns")  # fmt: skip
        return {
            s["metadata"]["name"]: (e["addresses"], e["conditions"]["ready"])
            for s in (got or {"items": []})["items"]
            if s["metadata"]["labels"].get("endpointslice.kubernetes.io/managed-by")
            == "dns.pyk8s.io"
            for e in s["endpoints"]
        }

    want = {f"kube-dns-{h.name}": ([h.ip], True) for h in (a, b)}
    want["kube-dns-gateway"] = ([hosts.gateway], True)

    async def all_published() -> bool:
        got = await endpoints()
        assert got == want, got
        return True

    await eventually(all_published, within=60, every=0.5)

    _stop(COMPONENTS["dns"])  # SIGTERM: the endpoint goes not ready, then the process exits
    assert COMPONENTS["dns"].returncode == 0
    assert (await endpoints())["kube-dns-gateway"] == ([hosts.gateway], False)

    name = "kubernetes.default.svc.cluster.local"
    script = f"for i in $(seq 10); do nslookup {name} | grep -c '10[.]43[.]0[.]1$'; done"

    async def resolved() -> bool:
        out = await _kubectl(kubectl, "exec", "client", "--", "sh", "-c", script, check=False)
        assert out.stdout.split() == ["1"] * 10, out.stdout + out.stderr
        return True

    # once the proxies dropped the endpoint, every lookup answers (from a's or b's DNS)
    await eventually(resolved, within=30, every=0.5)
    print(f"with nodes ready, the test took {time.monotonic() - begun:.1f}s")
