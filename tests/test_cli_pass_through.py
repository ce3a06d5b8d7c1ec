"""k3s's pass-through flags: ``pyk8s server``/``agent`` hand ``--<component>-arg FLAG=VALUE``
to the component as ``--FLAG VALUE``, and the in-process API server's own flags can be
given as ``--kube-apiserver-arg``."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyk8s import cli
from tests.integration.conftest import pyk8s_cli


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


# ---------------------------------------------------------------- ports: two pyk8s on a host


def test_controller_manager_and_scheduler_take_upstreams_secure_port() -> None:
    for command, default in (("controller-manager", 10257), ("scheduler", 10259)):
        assert cli._parser().parse_args([command]).port == default
        assert cli._parser().parse_args([command, "--secure-port", "20001"]).port == 20001
        assert cli._parser().parse_args([command, "--port", "20002"]).port == 20002  # still


def test_secure_port_reaches_the_children_of_pyk8s_server() -> None:
    args = _server(
        "--kube-controller-manager-arg=secure-port=20257",
        "--kube-scheduler-arg",
        "secure-port=20259",
    )
    cm_argv = cli._passed_through(args.controller_manager_args)  # type: ignore[attr-defined]
    sched_argv = cli._passed_through(args.scheduler_args)  # type: ignore[attr-defined]
    assert cli._parser().parse_args(["controller-manager", *cm_argv]).port == 20257
    assert cli._parser().parse_args(["scheduler", *sched_argv]).port == 20259


def test_the_api_server_takes_secure_port_as_well_as_https_listen_port(tmp_path: Path) -> None:
    assert cli.parse_args(["apiserver", "--secure-port", "16443"]).https_listen_port == 16443
    argv = ["server", "--data-dir", str(tmp_path), "--kube-apiserver-arg", "secure-port=16444"]
    assert cli.parse_args(argv).https_listen_port == 16444


def test_kubelet_health_and_server_ports_through_kubelet_arg() -> None:
    args = _server("--kubelet-arg=healthz-port=20248", "--kubelet-arg=port=20250")
    child = cli._parser().parse_args(["kubelet", *cli._agent_args(args)])  # type: ignore[arg-type]
    assert (child.healthz_port, child.port) == (20248, 20250)


def test_proxy_takes_kube_proxys_ip_port_bind_addresses() -> None:
    assert cli.host_port("0.0.0.0", 10256) == ("0.0.0.0", 10256)
    assert cli.host_port("127.0.0.1:20256", 10256) == ("127.0.0.1", 20256)
    assert cli.host_port("[::1]:20256", 10256) == ("::1", 20256)
    assert cli.host_port("::", 10256) == ("::", 10256)
    args = _server(
        "--kube-proxy-arg=healthz-bind-address=127.0.0.1:20256",
        "--kube-proxy-arg=metrics-bind-address=127.0.0.1:20249",
    )
    child = cli._parser().parse_args(["proxy", *cli._proxy_args(args)])  # type: ignore[arg-type]
    assert cli.host_port(child.bind_address, child.port) == ("127.0.0.1", 20256)
    assert cli.host_port(child.metrics_bind_address, 0) == ("127.0.0.1", 20249)


def test_dns_health_port_through_dns_arg() -> None:
    args = _server("--node-ip", "127.0.0.1", "--dns-arg", "health-port=20153")
    child = cli._parser().parse_args(["dns", *cli._dns_args(args)])  # type: ignore[arg-type]
    assert child.health_port == 20153
    default = cli._dns_args(_server())  # type: ignore[arg-type]
    assert cli._parser().parse_args(["dns", *default]).health_port == 9153


def test_inflight_limits_on_both_commands_and_through_kube_apiserver_arg(tmp_path: Path) -> None:
    defaults = cli.parse_args(["apiserver"])
    assert (defaults.max_requests_inflight, defaults.max_mutating_requests_inflight) == (400, 200)
    argv = [
        "server",
        "--data-dir",
        str(tmp_path),
        "--kube-apiserver-arg",
        "max-requests-inflight=50",
        "--kube-apiserver-arg=max-mutating-requests-inflight=0",
    ]
    args = cli.parse_args(argv)
    assert (args.max_requests_inflight, args.max_mutating_requests_inflight) == (50, 0)


def test_proxy_mode_through_kube_proxy_arg() -> None:
    args = _server("--kube-proxy-arg", "proxy-mode=iptables")
    child = cli._parser().parse_args(["proxy", *cli._proxy_args(args)])  # type: ignore[arg-type]
    assert child.mode == "iptables"
    assert cli._parser().parse_args(["proxy"]).mode == "nftables"  # the faster one
    agent = cli._parser().parse_args(
        ["agent", "--server", "https://h:6443", "--kube-proxy-arg=proxy-mode=nftables"]
    )
    assert cli._proxy_args(agent)[-2:] == ["--proxy-mode", "nftables"]


def test_leader_election_timings_and_identity_reach_the_scheduler_and_controller_manager() -> None:
    timings = ("leader-elect-lease-duration=5s", "leader-elect-renew-deadline=3s",
               "leader-elect-retry-period=1s")  # fmt: skip
    args = cli._parser().parse_args(
        ["server", "--node-name", "s1", "--bind-address", "127.0.0.2",
         *(f"--kube-scheduler-arg={t}" for t in timings),
         *(f"--kube-controller-manager-arg={t}" for t in timings)]
    )  # fmt: skip
    common = cli._control_plane_args(args)
    for command, passed in (
        ("scheduler", args.scheduler_args),
        ("controller-manager", args.controller_manager_args),
    ):
        child = cli._parser().parse_args([command, *common, *cli._passed_through(passed)])
        lease = cli._lease_settings(child)
        assert (lease.lease_duration, lease.renew_deadline, lease.retry_period) == (5, 3, 1)
        assert lease.config("kube-scheduler").identity.startswith("s1_")
        assert child.bind_address == "127.0.0.2"
    # upstream's defaults, this host's name
    default = cli._lease_settings(cli._parser().parse_args(["scheduler"]))
    assert (default.lease_duration, default.renew_deadline, default.retry_period) == (15, 10, 2)
    assert default.host == ""


def test_leader_election_timings_are_checked_as_client_go_does() -> None:
    bad = cli._parser().parse_args(["controller-manager", "--leader-elect-renew-deadline", "15s"])
    with pytest.raises(ValueError, match="leaseDuration must be greater than renewDeadline"):
        cli._lease_settings(bad)
    bad = cli._parser().parse_args(["scheduler", "--leader-elect-retry-period", "1m"])
    with pytest.raises(ValueError, match="renewDeadline must be greater than retryPeriod"):
        cli._lease_settings(bad)
    bad = cli._parser().parse_args(["scheduler", "--leader-elect-lease-duration", "15"])
    with pytest.raises(ValueError, match="invalid duration"):
        cli._lease_settings(bad)


def test_the_helm_controllers_lease_takes_k3s_election_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """k3s's wrangler leader election reads CATTLE_ELECTION_*; so does pyk8s server's
    Helm controller lease (kube-system/pyk8s). A bad value stops the server at once."""
    args = cli._parser().parse_args(["server", "--node-name", "s1"])
    default = cli._helm_lease(args)
    assert default is not None
    assert (default.lease_duration, default.renew_deadline, default.retry_period) == (15, 10, 2)
    monkeypatch.setenv("CATTLE_ELECTION_LEASE_DURATION", "5s")
    monkeypatch.setenv("CATTLE_ELECTION_RENEW_DEADLINE", "3s")
    monkeypatch.setenv("CATTLE_ELECTION_RETRY_PERIOD", "1s")
    lease = cli._helm_lease(args)
    assert lease is not None
    assert (lease.lease_duration, lease.renew_deadline, lease.retry_period) == (5, 3, 1)
    assert lease.config("pyk8s").identity.startswith("s1_")
    assert cli._helm_lease(cli._parser().parse_args(["apiserver"])) is None
    monkeypatch.setenv("CATTLE_ELECTION_RETRY_PERIOD", "1")
    out = pyk8s_cli("server", "--data-dir", str(tmp_path))
    assert out.returncode == 1
    assert out.stderr == "Error: CATTLE_ELECTION_RETRY_PERIOD='1' is not a valid duration\n"
    assert not any(tmp_path.iterdir())  # refused before anything was touched
