"""The local provider's address-pool mode (MetalLB layer 2), its allocation rules: pool
parsing, first free address, spec.loadBalancerIP, sharing by annotation, exhaustion,
addresses kept across restarts and freed on delete, and the class the provider answers."""

from __future__ import annotations

from typing import Any

import pytest

from pyk8s.cloudprovider.addresspool import SHARED_IP_ANNOTATION, parse_pools
from pyk8s.cloudprovider.local import LocalCloud
from pyk8s.cloudprovider.provider import CloudProviderError, Context


def svc(name: str, port: int = 80, ip: str = "", **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "default", "uid": f"uid-{name}"}
    if "share" in extra:
        meta["annotations"] = {SHARED_IP_ANNOTATION: extra.pop("share")}
    status = {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}} if ip else {}
    spec = {"type": "LoadBalancer", "ports": [{"port": port, "protocol": "TCP"}], **extra}
    return {"metadata": meta, "spec": spec, "status": status}


def cloud(services: list[dict[str, Any]], *pools: str, lb_class: str = "") -> LocalCloud:
    provider = LocalCloud(address_pools=pools, lb_class=lb_class)
    classes = provider.load_balancer_classes()
    provider.initialize(
        Context(
            services=lambda: services,
            endpoint_slices=lambda ns, name: [],
            report=lambda obj, reason, message: None,
            owns=lambda s: ((s.get("spec") or {}).get("loadBalancerClass") or "") in classes,
        )
    )
    return provider


async def ensure(provider: LocalCloud, service: dict[str, Any]) -> str:
    lb = provider.load_balancer()
    assert lb is not None
    status = await lb.ensure_load_balancer("kubernetes", service, [])
    assert status["ingress"][0]["ipMode"] == "VIP"
    return str(status["ingress"][0]["ip"])


def test_pools_parse_ranges_and_cidrs() -> None:
    pool = parse_pools(["192.0.2.200-192.0.2.202", "198.51.100.0/30,198.51.100.9"])
    assert list(pool) == [
        "192.0.2.200", "192.0.2.201", "192.0.2.202", "198.51.100.1", "198.51.100.2",
        "198.51.100.9",
    ]  # fmt: skip
    assert "192.0.2.201" in pool and "192.0.2.203" not in pool and "x" not in pool
    for bad in ("192.0.2.9-192.0.2.1", "300.0.0.1", ""):
        with pytest.raises(ValueError, match="--lb-address-pool"):
            parse_pools([bad])


async def test_addresses_are_given_once_then_kept_shared_or_refused() -> None:
    services: list[dict[str, Any]] = []
    provider = cloud(services, "192.0.2.200-192.0.2.202")
    a, b = svc("a"), svc("b")
    services += [a, b]
    assert await ensure(provider, a) == "192.0.2.200"
    assert await ensure(provider, b) == "192.0.2.201"  # a's is given, not yet in its status
    assert await ensure(provider, a) == "192.0.2.200"  # stable
    # spec.loadBalancerIP: granted when free and in the pool, refused otherwise
    c = svc("c", loadBalancerIP="192.0.2.202")
    services.append(c)
    assert await ensure(provider, c) == "192.0.2.202"
    for wanted, why in (("192.0.2.200", "in use by default/a"), ("10.0.0.1", "not in the")):
        with pytest.raises(CloudProviderError, match=why):
            await ensure(provider, svc("d", loadBalancerIP=wanted))
    with pytest.raises(CloudProviderError, match="no available IP in the address pool"):
        await ensure(provider, svc("e"))
    # deleting one frees its address for the next
    lb = provider.load_balancer()
    assert lb is not None
    services.remove(b)
    await lb.ensure_load_balancer_deleted("kubernetes", b)
    assert await ensure(provider, svc("e")) == "192.0.2.201"


async def test_sharing_needs_the_same_key_distinct_ports_and_the_same_policy() -> None:
    first = svc("web", 80, share="k")
    services = [first]
    provider = cloud(services, "192.0.2.10-192.0.2.20")
    ip = await ensure(provider, first)
    second = svc("dns", 53, share="k")
    services.append(second)
    assert await ensure(provider, second) == ip
    clash = svc("web2", 80, share="k")  # same port
    other_key = svc("ssh", 22, share="other")
    local = svc("mail", 25, share="k", externalTrafficPolicy="Local")
    services += [clash, other_key, local]
    for s in (clash, other_key, local):
        assert await ensure(provider, s) != ip


async def test_a_restarted_controller_keeps_the_addresses_in_the_status() -> None:
    held = svc("held", ip="192.0.2.11")
    services = [held]
    provider = cloud(services, "192.0.2.10-192.0.2.12")
    fresh = svc("fresh")
    services.append(fresh)
    assert await ensure(provider, fresh) == "192.0.2.10"
    assert await ensure(provider, svc("next")) == "192.0.2.12"
    assert await ensure(provider, held) == "192.0.2.11"


def test_the_answered_classes() -> None:
    assert cloud([]).load_balancer_classes() == {"", "pyk8s.io/servicelb"}
    assert cloud([], lb_class="pyk8s.io/l2").load_balancer_classes() == {"pyk8s.io/l2"}
    assert type(cloud([], "192.0.2.1").load_balancer()).__name__ == "AddressPoolLoadBalancer"
    assert type(cloud([]).load_balancer()).__name__ == "NodePortsLoadBalancer"


def test_pyk8s_server_passes_its_pools_to_the_cloud_controller_manager() -> None:
    """Its controller manager runs the cloud controllers (flags of their own, each
    ``--embedded-cloud-controller-arg``), as the cloud controller manager's own user."""
    from pyk8s.cli import _cloud_controller_manager, _cloud_controller_options, _parser

    def embedded(argv: list[str]) -> list[str]:
        flags = _cloud_controller_manager(_parser().parse_args(["server", *argv]))
        prefix = "--embedded-cloud-controller-arg="
        assert all(f.startswith(prefix) for f in flags)
        return [f.removeprefix(prefix) for f in flags]

    pools = ["--lb-address-pool", "10.0.0.200-10.0.0.220", "--lb-address-pool", "10.1.0.0/28"]
    kubeconfig = "/d/server/cred/cloud-controller-manager.kubeconfig"
    assert embedded(["--data-dir", "/d", *pools]) == [
        "--kubeconfig", kubeconfig, "--cloud-provider", "local", *pools,
    ]  # fmt: skip
    opts = _cloud_controller_options(
        _parser().parse_args(["cloud-controller-manager", *embedded(["--data-dir", "/d", *pools])])
    )
    assert opts.lb_address_pools == ["10.0.0.200-10.0.0.220", "10.1.0.0/28"]
    assert str(opts.kubeconfig) == kubeconfig
    alone = ["--kubeconfig", kubeconfig, "--cloud-provider", "local"]
    assert embedded(["--data-dir", "/d"]) == alone
    assert embedded(["--disable-cloud-controller"]) == []


async def test_a_service_gets_an_address_of_each_of_its_families_the_pool_has() -> None:
    """IPv6 ranges too (MetalLB's dual-stack pools): an address per ``ipFamilies``
    entry, in that order; RequireDualStack needs both in the pool."""
    pool = parse_pools(["fd00:99::200-fd00:99::201", "192.0.2.200/31", "fd00:98::/127"])
    assert list(pool.addresses("IPv4")) == ["192.0.2.200", "192.0.2.201"]
    assert list(pool.addresses("IPv6"))[:3] == ["fd00:99::200", "fd00:99::201", "fd00:98::"]
    assert "fd00:99::201" in pool and "fd00:99::202" not in pool
    with pytest.raises(ValueError, match="mixes IPv4 and IPv6"):
        parse_pools(["192.0.2.1-fd00::1"])
    services: list[dict[str, Any]] = []
    provider = cloud(services, "192.0.2.200-192.0.2.201", "fd00:99::200-fd00:99::201")
    lb = provider.load_balancer()
    assert lb is not None
    dual = svc("dual", ipFamilyPolicy="PreferDualStack", ipFamilies=["IPv6", "IPv4"])
    v6 = svc("v6", ipFamilies=["IPv6"])
    services += [dual, v6]
    status = await lb.ensure_load_balancer("kubernetes", dual, [])
    assert [i["ip"] for i in status["ingress"]] == ["fd00:99::200", "192.0.2.200"]
    assert await ensure(provider, v6) == "fd00:99::201"
    v4_only = cloud([], "192.0.2.200-192.0.2.201").load_balancer()
    assert v4_only is not None
    status = await v4_only.ensure_load_balancer("kubernetes", dual, [])  # prefer: v4 only
    assert [i["ip"] for i in status["ingress"]] == ["192.0.2.200"]
    required = svc("req", ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv4", "IPv6"])
    for service in (required, v6):
        with pytest.raises(CloudProviderError, match="the address pool has no IPv6 addresses"):
            await v4_only.ensure_load_balancer("kubernetes", service, [])
