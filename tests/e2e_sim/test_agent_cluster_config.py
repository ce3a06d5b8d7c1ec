"""A joining agent learns the server's networking settings (``kube-system/pyk8s-config``).

The session cluster is a real ``pyk8s server``: a host holding only the join token
(what ``pyk8s agent`` has before its kubelet gets a node certificate) reads the cluster
and service CIDRs, the DNS address and the domain the server runs with, and nothing
else of kube-system; the command lines the agent then gives its kubelet, proxy and DNS
carry them, with the agent's own flags after them so that those win.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from pyk8s.cli import _parser
from pyk8s.client import Client, is_forbidden, load_kubeconfig
from pyk8s.server import clusterconfig
from pyk8s.server.agent import Options, fetch_ca, kubelet_args, parse_token, write_agent_kubeconfig
from tests.e2e_sim.conftest import Cluster


async def _bootstrap_kubeconfig(cluster: Cluster, tmp_path: Path) -> Path:
    token, digest = parse_token((cluster.server.data_dir / "server" / "node-token").read_text())
    ca = await fetch_ca(cluster.server.url, digest)
    path = tmp_path / "bootstrap.kubeconfig"
    write_agent_kubeconfig(path, cluster.server.url, ca, token)
    return path


async def test_the_join_token_reads_the_servers_settings_and_nothing_else(
    cluster: Cluster, tmp_path: Path
) -> None:
    bootstrap = await _bootstrap_kubeconfig(cluster, tmp_path)
    # the session server runs with the defaults: k3s's CIDRs, kube-dns at the tenth
    # service address
    assert await clusterconfig.fetch(bootstrap, "test") == {
        "clusterCIDR": "10.42.0.0/16",
        "serviceCIDR": "10.43.0.0/16",
        "clusterDNS": "10.43.0.10",
        "clusterDomain": "cluster.local",
    }
    async with Client(load_kubeconfig(bootstrap)) as client:
        for path in (
            "/api/v1/namespaces/kube-system/configmaps/kube-root-ca.crt",
            "/api/v1/namespaces/kube-system/configmaps",
        ):
            with pytest.raises(Exception) as err:
                await client.request("GET", path)
            assert is_forbidden(err.value), path


def _parse(component: str, argv: list[str]) -> argparse.Namespace:
    return _parser().parse_args([component, *argv])


def test_learned_flags_reach_every_child_and_the_agents_own_win(tmp_path: Path) -> None:
    learned = clusterconfig.AgentFlags(
        {
            "clusterCIDR": "10.50.0.0/16,fd00:50::/56",
            "serviceCIDR": "10.60.0.0/16",
            "clusterDNS": "10.60.0.10",
            "clusterDomain": "corp.example",
        }
    )
    own = Options(
        server="https://s:6443",
        token="t",
        data_dir=tmp_path,
        kubelet_args=["--cluster-dns", "10.99.0.53"],
    )
    p = tmp_path / "k"
    kubelet = _parse("kubelet", list(kubelet_args(own, p, p, p, learned)))
    assert kubelet.cluster_cidr == "10.50.0.0/16,fd00:50::/56"
    assert kubelet.service_cidr == "10.60.0.0/16"
    assert kubelet.cluster_domain == "corp.example"
    assert kubelet.cluster_dns == "10.99.0.53"  # the agent's own flag wins
    proxy = _parse("proxy", [*learned.proxy])
    assert proxy.cluster_cidr == "10.50.0.0/16,fd00:50::/56"
    dns = _parse("dns", [*learned.dns, "--cluster-domain", "mine.example"])
    assert dns.cluster_domain == "mine.example"
    # an agent without --cluster-domain passes none, so the server's is the one used
    agent = _parse("agent", ["--server", "https://s:6443", "--token", "t"])
    assert agent.cluster_domain == ""
