"""Components run inside another's process (:mod:`pyk8s.server.cohost`): the supervisor
folds the proxy and DNS into the kubelet's argv and the scheduler into the controller
manager's, the host parses each guest's argv with the guest's own parser, every
component in the process logs under its own name, and SIGTERM, or one component
ending, stops all of them."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator

import pytest

from pyk8s import cli
from pyk8s.server import cohost, logs
from pyk8s.server.component import stop_on_signals
from pyk8s.server.supervisor import Supervisor


def test_the_supervisor_runs_guests_in_their_hosts_processes() -> None:
    sup = Supervisor()
    sup.add("controller-manager", "--kubeconfig", "cm.kubeconfig")
    sup.add("scheduler", "--kubeconfig", "scheduler.kubeconfig", "--secure-port", "0")
    sup.add("kubelet", "--kubeconfig", "kubelet.kubeconfig")
    sup.add("proxy", "--kubeconfig", "proxy.kubeconfig", "--hostname-override", "n1")
    sup.add("dns", "--kubeconfig", "dns.kubeconfig", "--cluster-ip", "10.43.0.10")
    sup.add("metrics-server", "--secure-port", "0")
    sup.add_command("etcd", ["etcd"])
    sup._fold()
    assert [c.name for c in sup.children] == [
        "controller-manager",
        "kubelet",
        "metrics-server",
        "etcd",
    ]
    kubelet = sup.children[1]
    assert kubelet.command is not None
    assert kubelet.args == [sys.executable, "-m", "pyk8s", *kubelet.command]
    assert cohost.commands(kubelet.command) == ["kubelet", "proxy", "dns"]
    args = cli.parse_args(kubelet.command)
    assert args.kubeconfig.name == "kubelet.kubeconfig"
    guests = cli._guests(args, "proxy", "dns")
    assert guests["proxy"].kubeconfig.name == "proxy.kubeconfig"
    assert guests["proxy"].node_name == "n1"
    assert guests["dns"].kubeconfig.name == "dns.kubeconfig"
    assert guests["dns"].cluster_ip == "10.43.0.10"
    cm = cli.parse_args(sup.children[0].command or [])
    scheduler = cli._scheduler_options(cli._guests(cm, "scheduler")["scheduler"])
    assert scheduler.kubeconfig is not None and scheduler.kubeconfig.name == "scheduler.kubeconfig"
    assert scheduler.port == 0


def test_a_guest_without_its_host_runs_alone() -> None:
    sup = Supervisor()
    sup.add("scheduler", "--kubeconfig", "scheduler.kubeconfig")
    sup.add("proxy")
    sup._fold()
    assert [c.command for c in sup.children] == [
        ["scheduler", "--kubeconfig", "scheduler.kubeconfig"],
        ["proxy"],
    ]
    assert cohost.commands(["proxy"]) == ["proxy"]


async def _component(
    name: str, seen: list[str], started: asyncio.Event | None = None, fail: bool = False
) -> None:
    stop = stop_on_signals()
    logging.getLogger(f"test.{name}").info("%s started", name)
    seen.append(f"{name} started")
    if started is not None:
        started.set()
    if fail:
        raise RuntimeError(f"{name} failed")
    await stop.wait()
    logging.getLogger(f"test.{name}").info("%s stopped", name)
    seen.append(f"{name} stopped")


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.JSONFormatter("kubelet"))
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    yield out
    root.removeHandler(handler)
    root.setLevel(level)


async def test_sigterm_stops_the_host_and_its_guests_each_logging_as_itself(
    json_logs: io.StringIO,
) -> None:
    seen: list[str] = []
    started = asyncio.Event()
    together = asyncio.create_task(
        cohost.run_together(
            _component("kubelet", seen),
            {"proxy": _component("proxy", seen), "dns": _component("dns", seen, started)},
        )
    )
    await started.wait()  # the last one asked for its stop event
    os.kill(os.getpid(), signal.SIGTERM)
    await together
    assert sorted(seen[3:]) == ["dns stopped", "kubelet stopped", "proxy stopped"]
    lines = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    by_logger = {
        (r["logger"], r["msg"]): r["component"] for r in lines if r["logger"].startswith("test.")
    }
    assert by_logger == {
        ("test.kubelet", "kubelet started"): "kubelet",
        ("test.kubelet", "kubelet stopped"): "kubelet",
        ("test.proxy", "proxy started"): "proxy",
        ("test.proxy", "proxy stopped"): "proxy",
        ("test.dns", "dns started"): "dns",
        ("test.dns", "dns stopped"): "dns",
    }


async def test_a_failing_guest_stops_its_host_and_the_error_comes_back() -> None:
    seen: list[str] = []
    with pytest.raises(RuntimeError, match="proxy failed"):
        await cohost.run_together(
            _component("kubelet", seen), {"proxy": _component("proxy", seen, fail=True)}
        )
    assert "kubelet stopped" in seen
