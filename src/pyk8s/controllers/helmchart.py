"""k3s's Helm controller: ``HelmChart`` and ``HelmChartConfig`` (``helm.cattle.io/v1``).

A HelmChart names a chart and its values; this controller installs it as the Helm
release named after the HelmChart, in ``spec.targetNamespace`` (else the HelmChart's
namespace), upgrades the release when the chart or the values change, and uninstalls it
when the HelmChart is deleted (k3s's finalizer ``wrangler.cattle.io/on-helm-chart-remove``
holds the object until then). A HelmChartConfig of the same name and namespace adds its
``valuesContent`` over the chart's, as on k3s.

Helm itself does the work — loading, templating, the release records (Secrets,
``owner=helm``, so ``helm list`` agrees) and the apply — through Helm's own Go library
(the ``helm-python-sdk`` package), in this process. k3s runs the same library in a Job
(``helm-install-<name>`` with the klipper-helm image); here no Job is made, so
``status.jobName`` stays empty, and the conditions and events say what Helm did.

Where a chart comes from (no internet is assumed):

* ``spec.chartContent``: a base64 ``.tgz`` (k3s's offline form), taking precedence;
* ``spec.chart`` ``https://%{KUBERNETES_API}%/static/charts/x.tgz``: k3s's own
  ``DATA_DIR/server/static`` directory, read from this host's data dir;
* ``spec.chart`` an absolute path to a chart directory or archive on the server;
* ``spec.chart`` a name with ``spec.repo`` (HTTP repository) or an ``oci://`` reference,
  pulled by Helm.

Values are ``valuesContent`` (YAML), then the HelmChartConfig's ``valuesContent``, then
``spec.set`` (strings as ``--set-string``, numbers and booleans as ``--set``), each
merged over the one before. A change is detected by a hash of the chart archive and the
merged values (k3s's ``helmcharts.helm.cattle.io/configHash``), kept as a label on the
release. A failure — a chart that does not load, Helm refusing to render or apply — sets
the ``Failed`` condition to True with Helm's own message and a ``Warning`` event; with
``failurePolicy: reinstall`` (the default) a release left failed is uninstalled and
installed again on the next try, with ``abort`` it is left for the administrator. A
chart that fails before Helm acts leaves the previous release as it was.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import datetime as dt
import hashlib
import json
import logging
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from pyk8s.client import ApiError, Client, Obj
from pyk8s.controllers.runtime import Manager, Request, Result

__all__ = [
    "CRDS",
    "FINALIZER",
    "HELMCHARTCONFIGS",
    "HELMCHARTS",
    "HelmChartController",
    "chart_values",
]

log = logging.getLogger(__name__)

GROUP = "helm.cattle.io"
HELMCHARTS = (f"{GROUP}/v1", "HelmChart")
HELMCHARTCONFIGS = (f"{GROUP}/v1", "HelmChartConfig")
FINALIZER = "wrangler.cattle.io/on-helm-chart-remove"
LABEL_CHART = "helmcharts.helm.cattle.io/chart"
LABEL_CONFIG_HASH = "helmcharts.helm.cattle.io/configHash"
ANN_UNMANAGED = "helmcharts.helm.cattle.io/unmanaged"
API_PLACEHOLDER = "%{KUBERNETES_API}%"
DEFAULT_TIMEOUT = 300
#: after a failure, as a Job's backoff would: 10 s doubling to 5 min
RETRY_INITIAL, RETRY_CAP = 10.0, 300.0

_STRING_FIELDS = (
    "targetNamespace", "chart", "version", "repo", "valuesContent", "helmVersion",
    "chartContent", "jobImage", "timeout", "repoCA",
)  # fmt: skip


def _crd(kind: str, plural: str, spec_props: Obj, columns: list[Obj], status: bool) -> Obj:
    props: Obj = {"spec": {"type": "object", "properties": spec_props}}
    if status:
        props["status"] = {
            "type": "object",
            "properties": {
                "jobName": {"type": "string"},
                "conditions": {
                    "type": "array",
                    "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                },
            },
        }
    version: Obj = {
        "name": "v1",
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": {"type": "object", "properties": props}},
    }
    if columns:
        version["additionalPrinterColumns"] = columns
    if status:
        version["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
            },
            "scope": "Namespaced",
            "versions": [version],
        },
    }


_FAILURE_POLICY: Obj = {"type": "string", "enum": ["abort", "reinstall"]}
_CHART_SPEC: Obj = {
    **{f: {"type": "string"} for f in _STRING_FIELDS},
    "set": {"type": "object", "additionalProperties": {"x-kubernetes-int-or-string": True}},
    "bootstrap": {"type": "boolean"},
    "createNamespace": {"type": "boolean"},
    "plainHTTP": {"type": "boolean"},
    "insecureSkipTLSVerify": {"type": "boolean"},
    "failurePolicy": {**_FAILURE_POLICY, "default": "reinstall"},
    "backOffLimit": {"type": "integer", "format": "int32"},
}
#: k3s's two CRDs, with its printer columns
CRDS: tuple[Obj, ...] = (
    _crd(
        "HelmChart",
        "helmcharts",
        _CHART_SPEC,
        [
            {"name": "Repo", "type": "string", "jsonPath": ".spec.repo"},
            {"name": "Chart", "type": "string", "jsonPath": ".spec.chart"},
            {"name": "Version", "type": "string", "jsonPath": ".spec.version"},
            {"name": "TargetNamespace", "type": "string", "jsonPath": ".spec.targetNamespace"},
            {"name": "Bootstrap", "type": "boolean", "jsonPath": ".spec.bootstrap"},
            {
                "name": "Failed",
                "type": "string",
                "jsonPath": ".status.conditions[?(@.type=='Failed')].status",
            },
            {"name": "Job", "type": "string", "jsonPath": ".status.jobName", "priority": 10},
        ],
        status=True,
    ),
    _crd(
        "HelmChartConfig",
        "helmchartconfigs",
        {"valuesContent": {"type": "string"}, "failurePolicy": _FAILURE_POLICY},
        [],
        status=False,
    ),
)


class ChartError(Exception):
    """The chart or its values cannot be had (the ``Failed`` condition's message)."""


def _merge(base: Obj, over: Mapping[str, Any]) -> Obj:
    """Helm's values coalescing: maps merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _yaml_values(text: str, where: str) -> Obj:
    try:
        loaded = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as err:
        raise ChartError(f"{where}: {err}") from err
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ChartError(f"{where}: values must be a map, not {type(loaded).__name__}")
    return loaded


def chart_values(chart: Obj, config: Obj | None) -> Obj:
    """The values Helm gets: valuesContent, the HelmChartConfig's, then ``set``."""
    import helm_python as helm

    spec = chart.get("spec") or {}
    values = _yaml_values(str(spec.get("valuesContent") or ""), "valuesContent")
    if config is not None:
        extra = str((config.get("spec") or {}).get("valuesContent") or "")
        values = _merge(values, _yaml_values(extra, "HelmChartConfig valuesContent"))
    for key, value in sorted((spec.get("set") or {}).items()):
        if isinstance(value, bool) or not isinstance(value, str) or value in ("true", "false"):
            text = str(value).lower() if isinstance(value, bool) else str(value)
            values = _merge(values, helm.parse_set_string(f"{key}={text}"))
        else:
            values = _merge(values, helm.parse_set_string_values(f"{key}={value}"))
    return values


def _timeout(spec: Obj) -> int:
    """``spec.timeout`` as Go's duration (``300s``, ``5m``, ``1h30m``) in seconds."""
    text = str(spec.get("timeout") or "")
    if not text:
        return DEFAULT_TIMEOUT
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
    if parts is None or not any(parts.groups()):
        raise ChartError(f'invalid timeout "{text}"')
    h, m, s = (int(p or 0) for p in parts.groups())
    return h * 3600 + m * 60 + s


def _condition(kind: str, status: str, reason: str = "", message: str = "") -> Obj:
    cond: Obj = {"type": kind, "status": status}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


class HelmChartController:
    """Reconciles HelmCharts (and the HelmChartConfigs beside them) with Helm releases;
    its :attr:`manager` runs it once the CRDs are served (``pyk8s server`` runs it under a
    leader lease: :mod:`pyk8s.server.manifests`)."""

    def __init__(self, client: Client, kubeconfig: Path, data_dir: Path | None = None) -> None:
        self.client = client
        self.kubeconfig = kubeconfig
        self.static_dir = data_dir / "server" / "static" if data_dir is not None else None
        self.manager = Manager(client, component="helm-controller")
        self.recorder = self.manager.recorder
        self.charts = self.manager.informers.informer(HELMCHARTS)
        self.configs = self.manager.informers.informer(HELMCHARTCONFIGS)
        controller = self.manager.add("helmchart", self, workers=1)
        controller.watch(self.charts)
        controller.watch(self.configs)  # same namespace/name as the chart it configures
        #: chart key -> consecutive failures (for the retry backoff)
        self._failures: dict[str, int] = {}

    # ------------------------------------------------------------------ reconcile

    async def reconcile(self, request: Request) -> Result | None:
        chart = self.charts.store.get_by_name(request.namespace, request.name)
        if chart is None or not self._managed(chart):
            return None
        key = f"{request.namespace}/{request.name}"
        if chart["metadata"].get("deletionTimestamp"):
            return await self._remove(chart, key)
        if FINALIZER not in (chart["metadata"].get("finalizers") or []):
            finalizers = [*(chart["metadata"].get("finalizers") or []), FINALIZER]
            await self._patch_meta(chart, {"finalizers": finalizers})
            return None  # the update comes back through the informer
        config = self.configs.store.get_by_name(request.namespace, request.name)
        try:
            action, release = await self._apply(chart, config)
        except Exception as err:  # Helm's errors, and ours, are the condition's message
            return await self._failed(chart, key, err)
        self._failures.pop(key, None)
        if action:
            self.recorder.event(
                chart,
                "Normal",
                "ApplyChart",
                f"{action} release {release.get('name')} revision {release.get('revision')} "
                f"in namespace {release.get('namespace')}",
            )
        await self._status(chart, [_condition("Failed", "False")])
        return None

    def _managed(self, chart: Obj) -> bool:
        spec = chart.get("spec") or {}
        if not spec.get("chart") and not spec.get("chartContent"):
            return False
        return ANN_UNMANAGED not in (chart["metadata"].get("annotations") or {})

    @staticmethod
    def _target(chart: Obj) -> tuple[str, str]:
        """The release's name and namespace."""
        spec = chart.get("spec") or {}
        meta = chart["metadata"]
        return str(meta["name"]), str(spec.get("targetNamespace") or meta["namespace"])

    async def _apply(self, chart: Obj, config: Obj | None) -> tuple[str, Obj]:
        """Install, upgrade, or nothing when the release already has this hash."""
        spec = chart.get("spec") or {}
        values = chart_values(chart, config)
        timeout = _timeout(spec)
        policy = str(
            ((config or {}).get("spec") or {}).get("failurePolicy")
            or spec.get("failurePolicy")
            or "reinstall"
        )
        with tempfile.TemporaryDirectory(prefix="helmchart-") as tmp:
            archive = await self._fetch(chart, Path(tmp))
            digest = hashlib.sha256(await asyncio.to_thread(archive.read_bytes)).hexdigest()
            hashed = json.dumps({"chart": digest, "values": values}, sort_keys=True)
            config_hash = hashlib.sha256(hashed.encode()).hexdigest()[:63]  # a label value
            return await asyncio.to_thread(
                self._helm_apply, chart, archive, values, config_hash, timeout, policy
            )

    def _helm_apply(
        self, chart: Obj, archive: Path, values: Obj, config_hash: str, timeout: int, policy: str
    ) -> tuple[str, Obj]:
        import helm_python as helm

        name, namespace = self._target(chart)
        spec = chart.get("spec") or {}
        labels = {LABEL_CHART: str(chart["metadata"]["name"]), LABEL_CONFIG_HASH: config_hash}
        with (
            helm.Config(kubeconfig_path=str(self.kubeconfig), namespace=namespace) as cfg,
            helm.Chart.load(archive) as loaded,
        ):
            current = self._current(cfg, name)
            if current is not None and current.get("status") != "deployed":
                if policy == "abort":
                    raise ChartError(
                        f"release {name} is {current.get('status')}; failurePolicy is abort"
                    )
                cfg.uninstall(name, timeout=timeout)
                current = None
            if current is None:
                release = cfg.install(
                    loaded, name, values, namespace=namespace, timeout=timeout,
                    create_namespace=bool(spec.get("createNamespace")), labels=labels,
                )  # fmt: skip
                return "Installed", release
            if (current.get("labels") or {}).get(LABEL_CONFIG_HASH) == config_hash:
                return "", current
            release = cfg.upgrade(
                loaded, name, values, namespace=namespace, timeout=timeout, labels=labels,
                reset_values=True,
            )  # fmt: skip
            return "Upgraded", release

    @staticmethod
    def _current(cfg: Any, name: str) -> Obj | None:
        import helm_python as helm

        try:
            release: Obj = cfg.status(name)
        except helm.HelmNotFoundError:
            return None
        return release

    async def _fetch(self, chart: Obj, tmp: Path) -> Path:
        """The chart archive (or directory) to load, from wherever the spec says."""
        spec = chart.get("spec") or {}
        content = str(spec.get("chartContent") or "")
        if content:
            try:
                data = base64.b64decode(content, validate=True)
            except (binascii.Error, ValueError) as err:
                raise ChartError(f"chartContent is not base64: {err}") from err
            path = tmp / "chart.tgz"
            await asyncio.to_thread(path.write_bytes, data)
            return path
        ref = str(spec.get("chart") or "")
        if ref.startswith(API_PLACEHOLDER) or "://" + API_PLACEHOLDER in ref:
            rel = ref.split(API_PLACEHOLDER, 1)[1].lstrip("/")
            if not rel.startswith("static/") or self.static_dir is None:
                raise ChartError(f"chart {ref}: only the server's static/ files are served")
            local = (self.static_dir / rel.removeprefix("static/")).resolve()
            if not local.is_relative_to(self.static_dir.resolve()) or not local.is_file():
                raise ChartError(f"chart {ref}: no such file {local}")
            return local
        if ref.startswith("/"):
            if not await asyncio.to_thread(Path(ref).exists):
                raise ChartError(f"chart {ref}: no such file or directory")
            return Path(ref)
        return await asyncio.to_thread(self._pull, spec, ref, tmp)

    @staticmethod
    def _pull(spec: Obj, ref: str, tmp: Path) -> Path:
        import helm_python as helm

        helm.pull(
            ref,
            destination=tmp,
            version=str(spec.get("version") or "") or None,
            repo_url=str(spec.get("repo") or "") or None,
            plain_http=bool(spec.get("plainHTTP")),
            insecure_skip_tls_verify=bool(spec.get("insecureSkipTLSVerify")),
        )
        archives = sorted(tmp.glob("*.tgz"))
        if not archives:
            raise ChartError(f"chart {ref}: nothing was downloaded")
        return archives[0]

    async def _failed(self, chart: Obj, key: str, err: Exception) -> Result:
        message = str(err) or type(err).__name__
        log.warning("helm chart %s failed: %s", key, message)
        self.recorder.event(chart, "Warning", "ApplyChartFailed", message)
        await self._status(chart, [_condition("Failed", "True", "Error", message)])
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        return Result(requeue_after=min(RETRY_CAP, RETRY_INITIAL * 2 ** (failures - 1)))

    async def _remove(self, chart: Obj, key: str) -> Result | None:
        if FINALIZER not in (chart["metadata"].get("finalizers") or []):
            return None
        name, namespace = self._target(chart)
        try:
            await asyncio.to_thread(self._uninstall, name, namespace)
        except Exception as err:
            return await self._failed(chart, key, err)
        self._failures.pop(key, None)
        self.recorder.event(
            chart, "Normal", "RemoveChart", f"Uninstalled release {name} in namespace {namespace}"
        )
        finalizers = [f for f in chart["metadata"].get("finalizers") or [] if f != FINALIZER]
        with contextlib.suppress(ApiError):  # gone already: nothing left to release
            await self._patch_meta(chart, {"finalizers": finalizers})
        return None

    def _uninstall(self, name: str, namespace: str) -> None:
        import helm_python as helm

        with helm.Config(kubeconfig_path=str(self.kubeconfig), namespace=namespace) as cfg:
            cfg.uninstall(name, ignore_not_found=True)

    # ------------------------------------------------------------------ writes

    async def _patch_meta(self, chart: Obj, meta: Obj) -> None:
        body = {"metadata": {**meta, "resourceVersion": chart["metadata"].get("resourceVersion")}}
        await self.client.patch(
            HELMCHARTS,
            chart["metadata"]["name"],
            body,
            chart["metadata"]["namespace"],
            patch_type="merge",
        )

    async def _status(self, chart: Obj, conditions: list[Obj]) -> None:
        old = {c.get("type"): c for c in (chart.get("status") or {}).get("conditions") or []}
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        merged = []
        for cond in conditions:
            prev = old.get(cond["type"])
            same = prev is not None and all(prev.get(k) == cond.get(k) for k in cond)
            if same and prev is not None:
                merged.append(prev)
            else:
                merged.append({**cond, "lastTransitionTime": now})
        if merged == list(old.values()):
            return
        body = {"status": {"conditions": merged}}
        with contextlib.suppress(ApiError):  # deleted meanwhile: nothing to report on
            await self.client.patch(
                HELMCHARTS,
                chart["metadata"]["name"],
                body,
                chart["metadata"]["namespace"],
                patch_type="merge",
                subresource="status",
            )
