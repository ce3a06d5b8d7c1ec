"""The controller's own rules on informer stores filled by hand (no API server): which
Ingresses it serves and which addresses go into their status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyk8s.ingress.controller import ControllerConfig, IngressController
from pyk8s.ingress.nginx import Nginx
from tests.ingress.objects import ingress, path, rule

JSON = dict[str, Any]


def controller(tmp_path: Path, **config: Any) -> IngressController:
    client: Any = None  # nothing here talks to the API server
    return IngressController(client, Nginx(tmp_path), ControllerConfig(**config))


def lb_service(*entries: JSON) -> JSON:
    return {
        "metadata": {"name": "pyk8s-ingress", "namespace": "kube-system"},
        "spec": {"type": "LoadBalancer"},
        "status": {"loadBalancer": {"ingress": list(entries)} if entries else {}},
    }


def ingress_class(default: bool) -> JSON:
    annotations = {"ingressclass.kubernetes.io/is-default-class": "true"} if default else {}
    return {"metadata": {"name": "pyk8s", "annotations": annotations},
            "spec": {"controller": "pyk8s.io/ingress-nginx"}}  # fmt: skip


def test_status_is_the_load_balancer_services_addresses(tmp_path: Path) -> None:
    c = controller(tmp_path, address="192.0.2.9")
    # what ServiceLB writes: every eligible node's address, ipMode VIP
    svc = lb_service({"ip": "192.0.2.2", "ipMode": "VIP"}, {"ip": "192.0.2.1", "ipMode": "VIP"})
    c.informers["services"].store.add(svc)
    assert c.status_addresses() == [{"ip": "192.0.2.1"}, {"ip": "192.0.2.2"}]


def test_status_falls_back_to_this_hosts_address_until_the_service_has_one(
    tmp_path: Path,
) -> None:
    c = controller(tmp_path, address="192.0.2.9")
    assert c.status_addresses() == [{"ip": "192.0.2.9"}]  # no Service yet
    c.informers["services"].store.add(lb_service())
    assert c.status_addresses() == [{"ip": "192.0.2.9"}]  # <pending>


def test_ingresses_without_a_class_are_served_while_ours_is_the_default(tmp_path: Path) -> None:
    c = controller(tmp_path)
    named = ingress("named", rule("a.example.com", path("/", "web")))
    classless = ingress("classless", rule("b.example.com", path("/", "web")), class_name=None)
    other = ingress("other", rule("c.example.com", path("/", "web")), class_name="traefik")
    for i in (named, classless, other):
        c.informers["ingresses"].store.add(i)
    c.informers["ingressclasses"].store.add(ingress_class(default=True))
    assert {i["metadata"]["name"] for i in c.served()} == {"named", "classless"}
    c.informers["ingressclasses"].store.add(ingress_class(default=False))
    assert {i["metadata"]["name"] for i in c.served()} == {"named"}


def test_pyk8s_server_runs_the_controller_unless_disabled(tmp_path: Path) -> None:
    from pyk8s import cli
    from pyk8s.server import ingress_controller

    def child(*flags: str) -> list[str] | None:
        args = cli.parse_args(["server", "--data-dir", str(tmp_path), *flags])
        passed = cli._passed_through(args.ingress_controller_args)
        return ingress_controller.server_args(args, passed)

    flags = child("--node-ip", "192.0.2.5", "--ingress-controller-arg", "http-port=9080")
    data_dir = str(tmp_path / "server")
    assert flags == ["--data-dir", data_dir, "--node-ip", "192.0.2.5", "--http-port", "9080"]
    assert child("--disable", "ingress") is None
    assert child("--disable", "traefik,servicelb") is None  # k3s's name and list form
