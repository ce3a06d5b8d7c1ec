"""CustomResourceDefinitions for the integration tests, written the way users write them.

Each test builds its own CRD (its own group and names, so tests sharing the session's
server never collide) with :func:`crd`, installs it with :func:`install` (``kubectl apply``,
then ``kubectl wait`` for ``Established``) and talks to the custom resources through
kubectl, the official client's ``CustomObjectsApi`` or its ``dynamic`` client.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from tests.integration.conftest import Kubectl

JSON = dict[str, Any]

#: a schema that says nothing (every field kept)
OPEN_SCHEMA: JSON = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}

#: ``spec.replicas``, ``status.replicas`` and ``status.selector``: what the scale
#: subresource reads and writes
SCALABLE_SCHEMA: JSON = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "replicas": {"type": "integer", "minimum": 0},
                "color": {"type": "string"},
            },
        },
        "status": {
            "type": "object",
            "properties": {
                "replicas": {"type": "integer"},
                "selector": {"type": "string"},
                "phase": {"type": "string"},
            },
        },
    },
}


def version(
    name: str,
    schema: JSON | None = None,
    *,
    served: bool = True,
    storage: bool = True,
    status: bool = False,
    scale: JSON | None = None,
    columns: Sequence[JSON] = (),
    selectable: Sequence[str] = (),
) -> JSON:
    """One entry of ``spec.versions``."""
    v: JSON = {
        "name": name,
        "served": served,
        "storage": storage,
        "schema": {"openAPIV3Schema": schema if schema is not None else OPEN_SCHEMA},
    }
    subresources: JSON = {}
    if status:
        subresources["status"] = {}
    if scale is not None:
        subresources["scale"] = scale
    if subresources:
        v["subresources"] = subresources
    if columns:
        v["additionalPrinterColumns"] = list(columns)
    if selectable:
        v["selectableFields"] = [{"jsonPath": p} for p in selectable]
    return v


def crd(
    group: str,
    kind: str,
    *,
    plural: str = "",
    singular: str = "",
    versions: Sequence[JSON] = (),
    scope: str = "Namespaced",
    short_names: Sequence[str] = (),
    categories: Sequence[str] = (),
    conversion: JSON | None = None,
) -> JSON:
    """A CustomResourceDefinition manifest (``plural`` defaults to ``kind`` lowercased + s)."""
    plural = plural or kind.lower() + "s"
    names: JSON = {"plural": plural, "singular": singular or kind.lower(), "kind": kind}
    if short_names:
        names["shortNames"] = list(short_names)
    if categories:
        names["categories"] = list(categories)
    spec: JSON = {
        "group": group,
        "scope": scope,
        "names": names,
        "versions": list(versions) or [version("v1")],
    }
    if conversion is not None:
        spec["conversion"] = conversion
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": spec,
    }


def name_of(definition: JSON) -> str:
    return str(definition["metadata"]["name"])


def install(kubectl: Kubectl, definition: JSON, timeout: int = 30) -> JSON:
    """``kubectl apply`` the CRD and wait until it is Established (then it is served)."""
    kubectl("apply", "-f", "-", input=json.dumps(definition))
    kubectl(
        "wait",
        "--for=condition=Established",
        f"crd/{name_of(definition)}",
        f"--timeout={timeout}s",
    )
    got: JSON = kubectl.json("get", "crd", name_of(definition))
    return got


def condition(obj: JSON, type_: str) -> JSON:
    """The condition of ``type_`` in ``obj``'s status ({} when absent)."""
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return {}


def apply(kubectl: Kubectl, obj: JSON, *args: str) -> str:
    return kubectl("apply", "-f", "-", *args, input=json.dumps(obj))


def create(kubectl: Kubectl, obj: JSON, *args: str, check: bool = True) -> Any:
    """``kubectl create -f -``; the CompletedProcess (check=False) or stdout."""
    out = kubectl.run("create", "-f", "-", *args, input=json.dumps(obj), check=check)
    return out if not check else out.stdout


def cr(api_version: str, kind: str, name: str, spec: JSON | None = None, **meta: Any) -> JSON:
    """A custom resource manifest."""
    obj: JSON = {"apiVersion": api_version, "kind": kind, "metadata": {"name": name, **meta}}
    if spec is not None:
        obj["spec"] = spec
    return obj


def error_lines(stderr: str) -> set[str]:
    """The errors of kubectl's "... is invalid: ..." message, as a set: the ``* ...``
    items of a list, or the one error printed after the heading (messages may span
    lines, as a CEL compile error's does)."""
    text = stderr.strip().split(" is invalid: ", 1)[1]
    if text.lstrip().startswith("* "):
        return {e.strip() for e in ("\n" + text.lstrip()).split("\n* ") if e.strip()}
    return {text}


def wait_until(check: Callable[[], Any], within: float = 30.0, every: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy (returned) or fail."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (AssertionError, KeyError, json.JSONDecodeError) as err:
            last = err
        time.sleep(every)
    raise AssertionError(f"condition not met within {within}s; last: {last!r}")


__all__ = [
    "OPEN_SCHEMA",
    "SCALABLE_SCHEMA",
    "apply",
    "condition",
    "cr",
    "crd",
    "create",
    "error_lines",
    "install",
    "name_of",
    "version",
    "wait_until",
]
