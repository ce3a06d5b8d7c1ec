"""k3s's pass-through flags: ``pyk8s server``/``agent`` hand ``--<component>-arg FLAG=VALUE``
to the component as ``--FLAG VALUE``, and the in-process API server's own flags can be
given as ``--kube-apiserver-arg``."""

from __future__ import annotations

from pathlib import Path

from pyk8s import cli


def _server(*extra: str) -> object:
    return cli._parser().parse_args(["server", "--data-dir", "/tmp/x", *extra])


def test_kubelet_and_proxy_args_reach_their_children() -> None:
    args = _server("--kubelet-arg", "healthz-port=20248", "--kube-proxy-arg=healthz-port=20256")
    kubelet = cli._agent_args(args)  # type: ignore[arg-type]
    assert kubelet[-2:] == ["--healthz-port", "20248"]
    assert cli._proxy_args(args)[-2:] == ["--healthz-port", "20256"]  # type: ignore[arg-type]


def test_agent_takes_them_too() -> None:
    args = cli._parser().parse_args(
        ["agent", "--server", "https://h:6443", "--kubelet-arg", "port=20250"]
    )
    assert cli._kubelet_flags(args)[-2:] == ["--port", "20250"]


def test_a_flag_without_value_passes_alone() -> None:
    assert cli._passed_through(["node-routes", "port=1"]) == ["--node-routes", "--port", "1"]


def test_apiserver_args_are_the_servers_own_flags(tmp_path: Path) -> None:
    argv = [
        "server",
        "--data-dir",
        str(tmp_path),
        "--kube-apiserver-arg",
        "disable-admission-plugins=ServiceAccount",
        "--kube-apiserver-arg=service-cidr=10.96.0.0/16",
    ]
    again = cli.parse_args(argv)
    assert again.disable_admission_plugins == ["ServiceAccount"]
    assert again.service_cidr == "10.96.0.0/16"
