"""Every namespace gets a `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import ApiError, Client, is_not_found, load_kubeconfig
from pyk8s.controllers.runtime import Manager
from pyk8s.controllers.serviceaccount import DESCRIPTION
from tests.controllers.conftest import eventually
from tests.integration.conftest import Server

RunControllers = Callable[..., Awaitable[Manager]]


def _res(plural: str) -> Resource:
    r = REGISTRY.get("", "v1", plural)
    assert r is not None
    return r


SERVICE_ACCOUNTS = _res("serviceaccounts")
CONFIGMAPS = _res("configmaps")


async def _get(client: Client, r: Resource, name: str, namespace: str) -> dict[str, Any] | None:
    try:
        return await client.get(r, name, namespace)
    except ApiError as err:
        if is_not_found(err):
            return None
        raise


async def test_default_service_account_is_created_and_recreated(
    client: Client, namespace: str, run_controllers: RunControllers
) -> None:
    await run_controllers("serviceaccount")

    first = await eventually(lambda: _get(client, SERVICE_ACCOUNTS, "default", namespace))
    await client.delete(SERVICE_ACCOUNTS, "default", namespace)

    async def recreated() -> dict[str, Any] | None:
        sa = await _get(client, SERVICE_ACCOUNTS, "default", namespace)
        if sa is None or sa["metadata"]["uid"] == first["metadata"]["uid"]:
            return None
        return sa

    await eventually(recreated, within=30)


async def test_root_ca_configmap_is_published_and_kept(
    client: Client, namespace: str, run_controllers: RunControllers, cm_server: Server
) -> None:
    ca = load_kubeconfig(cm_server.kubeconfig).ca_data
    assert ca, "the test server's kubeconfig carries its CA"
    await run_controllers("serviceaccount")

    cm = await eventually(lambda: _get(client, CONFIGMAPS, "kube-root-ca.crt", namespace))
    assert cm["data"] == {"ca.crt": ca.decode()}
    assert cm["metadata"]["annotations"]["kubernetes.io/description"] == DESCRIPTION

    # somebody edits it: the publisher puts the CA back
    await client.patch(
        CONFIGMAPS,
        "kube-root-ca.crt",
        {"data": {"ca.crt": "tampered", "extra": "x"}},
        namespace,
        patch_type="merge",
    )

    async def restored() -> bool:
        cm = await _get(client, CONFIGMAPS, "kube-root-ca.crt", namespace)
        return cm is not None and cm.get("data") == {"ca.crt": ca.decode()}

    await eventually(restored, within=30)

    # somebody deletes it: it comes back
    old_uid = (await client.get(CONFIGMAPS, "kube-root-ca.crt", namespace))["metadata"]["uid"]
    await client.delete(CONFIGMAPS, "kube-root-ca.crt", namespace)

    async def recreated() -> bool:
        cm = await _get(client, CONFIGMAPS, "kube-root-ca.crt", namespace)
        return cm is not None and cm["metadata"]["uid"] != old_uid

    await eventually(recreated, within=30)
