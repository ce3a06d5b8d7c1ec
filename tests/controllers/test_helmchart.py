"""k3s's HelmChart from an auto-deployed manifest: a small local chart (``chartContent``,
base64 .tgz) is installed through Helm's own library, upgraded when its values or its
HelmChartConfig change, reported Failed (previous release kept) for a chart that does
not load, and uninstalled when the manifest is removed; Helm's own release list agrees
at each step."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import helm_python as helm

from pyk8s.client import ApiError, Client
from pyk8s.controllers.deploy import ADDON_CRD, ManifestDeployer
from pyk8s.controllers.helmchart import (
    CRDS,
    FINALIZER,
    HELMCHARTCONFIGS,
    HELMCHARTS,
    HelmChartController,
    chart_values,
)
from tests.controllers.conftest import eventually, serve_crds

CONFIGMAPS = ("v1", "ConfigMap")


def _chart(tmp: Path, version: str = "0.1.0") -> str:
    """A chart making one ConfigMap from its values, packaged and base64-encoded."""
    src = tmp / f"src-{version}" / "hello"
    (src / "templates").mkdir(parents=True)
    (src / "Chart.yaml").write_text(f"apiVersion: v2\nname: hello\nversion: {version}\n")
    (src / "values.yaml").write_text("colour: blue\nsize: small\n")
    (src / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\n"
        "data:\n  colour: {{ .Values.colour | quote }}\n  size: {{ .Values.size | quote }}\n"
    )
    out = tmp / f"dist-{version}"
    helm.package(str(src), destination=str(out))
    return base64.b64encode((out / f"hello-{version}.tgz").read_bytes()).decode()


def _manifest(name: str, target: str, content: str, values: str) -> str:
    indented = "".join(f"    {line}\n" for line in values.splitlines())
    return (
        f"apiVersion: helm.cattle.io/v1\nkind: HelmChart\nmetadata:\n  name: {name}\n"
        f"  namespace: kube-system\nspec:\n  targetNamespace: {target}\n"
        f"  createNamespace: true\n  chartContent: {content}\n  set:\n    size: large\n"
        f"  valuesContent: |-\n{indented}"
    )


def _releases(kubeconfig: Path, namespace: str) -> list[tuple[str, int, str]]:
    with helm.Config(kubeconfig_path=str(kubeconfig), namespace=namespace) as cfg:
        return [(r["name"], int(r["revision"]), r["status"]) for r in cfg.list()]


@contextlib.asynccontextmanager
async def _running(ctl: HelmChartController) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(ctl.manager.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_helmchart_install_upgrade_fail_uninstall(
    client: Client, cm_server: Any, tmp_path: Path
) -> None:
    name = f"hello-{uuid.uuid4().hex[:6]}"
    target = f"{name}-ns"
    kubeconfig = cm_server.kubeconfig
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    path = manifests / f"{name}.yaml"
    await serve_crds(client, [ADDON_CRD, *CRDS])  # as pyk8s server does at start
    deployer = ManifestDeployer(client, manifests)
    content = _chart(tmp_path)
    async with _running(HelmChartController(client, kubeconfig)):
        await _scenario(client, deployer, kubeconfig, path, name, target, content)


async def _scenario(
    client: Client,
    deployer: ManifestDeployer,
    kubeconfig: Path,
    path: Path,
    name: str,
    target: str,
    content: str,
) -> None:

    async def colour_size() -> tuple[str, str] | None:
        try:
            cm = await client.get(CONFIGMAPS, f"{name}-cm", target)
        except ApiError as err:
            if err.status == 404:
                return None
            raise
        return cm["data"]["colour"], cm["data"]["size"]

    async def releases() -> list[tuple[str, int, str]]:
        return await asyncio.to_thread(_releases, kubeconfig, target)

    # installed from the manifest
    await asyncio.to_thread(path.write_text, _manifest(name, target, content, "colour: red"))
    await deployer.sync()
    assert await eventually(colour_size, within=90) == ("red", "large")
    chart = await client.get(HELMCHARTS, name, "kube-system")
    assert FINALIZER in chart["metadata"]["finalizers"]
    # helm writes the release's "deployed" record after the chart's objects: wait for it
    assert await eventually(lambda: _is(releases, [(name, 1, "deployed")]), within=90)

    # a values change upgrades; a HelmChartConfig's values go over the chart's
    await asyncio.to_thread(path.write_text, _manifest(name, target, content, "colour: green"))
    await deployer.sync()
    assert await eventually(lambda: _is(colour_size, ("green", "large")), within=90)
    await client.create(
        HELMCHARTCONFIGS,
        {
            "apiVersion": "helm.cattle.io/v1", "kind": "HelmChartConfig",
            "metadata": {"name": name, "namespace": "kube-system"},
            "spec": {"valuesContent": "colour: black\n"},
        },
        "kube-system",
    )  # fmt: skip
    assert await eventually(lambda: _is(colour_size, ("black", "large")), within=90)
    assert await eventually(lambda: _is(releases, [(name, 3, "deployed")]), within=90)

    async def failed() -> str | None:
        got = await client.get(HELMCHARTS, name, "kube-system")
        conds = {c["type"]: c for c in (got.get("status") or {}).get("conditions") or []}
        cond = conds.get("Failed") or {}
        return str(cond.get("message")) if cond.get("status") == "True" else None

    # a chart that does not load: Failed with Helm's message, the release kept
    broken = base64.b64encode(b"not a chart").decode()
    await asyncio.to_thread(path.write_text, _manifest(name, target, broken, "colour: white"))
    await deployer.sync()
    message = await eventually(failed, within=90)
    assert "gzip" in message or "chart" in message
    assert await colour_size() == ("black", "large")
    assert await asyncio.to_thread(_releases, kubeconfig, target) == [(name, 3, "deployed")]

    # the manifest removed: the HelmChart goes, and with it the release and its objects
    await asyncio.to_thread(path.unlink)
    await deployer.sync()
    assert await eventually(lambda: _is(colour_size, None), within=90)
    assert await eventually(lambda: _gone(client, HELMCHARTS, name, "kube-system"), within=90)
    assert await asyncio.to_thread(_releases, kubeconfig, target) == []
    await client.delete(HELMCHARTCONFIGS, name, "kube-system")


async def _is(get: Callable[[], Awaitable[Any]], want: Any) -> bool:
    return bool(await get() == want)


async def _gone(client: Client, ref: tuple[str, str], name: str, ns: str) -> bool:
    try:
        await client.get(ref, name, ns)
    except ApiError as err:
        return err.status == 404
    return False


def test_values_order() -> None:
    """valuesContent, then the HelmChartConfig's (maps merged), then ``set`` (strings
    kept as strings, numbers and booleans typed)."""
    chart = {
        "spec": {
            "valuesContent": "a: {b: 1, c: 2}\nname: x\n",
            "set": {"a.c": 3, "name": "007", "on": "true"},
        }
    }
    config = {"spec": {"valuesContent": "a: {d: 4}\nname: y\n"}}
    assert chart_values(chart, config) == {"a": {"b": 1, "c": 3, "d": 4}, "name": "007", "on": True}
