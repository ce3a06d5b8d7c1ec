"""The Gateway API's CustomResourceDefinitions (gateway.networking.k8s.io, standard
channel: GatewayClass, Gateway, HTTPRoute v1 and ReferenceGrant v1beta1), which the
controller installs at start as it creates its IngressClass, so ``pyk8s server`` serves
them with nothing else installed.

The schemas are structural and trimmed to what pyk8s serves: the fields the renderer
reads are typed (with upstream's enums and defaults where they change behaviour), the
rest of each object is kept as given (``x-kubernetes-preserve-unknown-fields``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["CRDS", "GATEWAYS", "GATEWAY_CLASSES", "HTTP_ROUTES", "REFERENCE_GRANTS", "VERSION"]

JSON = dict[str, Any]
GROUP = "gateway.networking.k8s.io"
VERSION = f"{GROUP}/v1"
GATEWAY_CLASSES = (VERSION, "GatewayClass")
GATEWAYS = (VERSION, "Gateway")
HTTP_ROUTES = (VERSION, "HTTPRoute")
#: standard channel serves ReferenceGrant as v1beta1 only
REFERENCE_GRANTS = (f"{GROUP}/v1beta1", "ReferenceGrant")

_FREE: JSON = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
_STR: JSON = {"type": "string"}
_INT: JSON = {"type": "integer", "format": "int32"}


def _obj(required: tuple[str, ...] = (), /, **props: JSON) -> JSON:
    out: JSON = {
        "type": "object",
        "properties": props,
        "x-kubernetes-preserve-unknown-fields": True,
    }
    if required:
        out["required"] = list(required)
    return out


def _list(item: JSON, max_items: int = 64) -> JSON:
    return {"type": "array", "items": item, "maxItems": max_items}


_PARENT_REF = _obj(
    ("name",),
    group=_STR,
    kind=_STR,
    namespace=_STR,
    name=_STR,
    sectionName=_STR,
    port=_INT,
)
_BACKEND_REF = _obj(
    ("name",),
    group=_STR,
    kind=_STR,
    namespace=_STR,
    name=_STR,
    port=_INT,
    weight={"type": "integer", "format": "int32", "minimum": 0, "maximum": 1000000, "default": 1},
)
_MATCH = _obj(
    path=_obj(
        type={"type": "string", "enum": ["Exact", "PathPrefix", "RegularExpression"],
              "default": "PathPrefix"},
        value={"type": "string", "default": "/", "maxLength": 1024},
    ),
    headers=_list(_obj(("name", "value"), type={"type": "string", "default": "Exact"},
                       name=_STR, value=_STR), 16),
    queryParams=_list(_obj(("name", "value"), type={"type": "string", "default": "Exact"},
                           name=_STR, value=_STR), 16),
    method=_STR,
)  # fmt: skip
_FROM: JSON = {"type": "string", "enum": ["All", "Selector", "Same"], "default": "Same"}


def _crd(
    kind: str, plural: str, scope: str, spec: JSON, columns: list[JSON], version: str = "v1"
) -> JSON:
    status: JSON = {"status": {}} if version == "v1" else {}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "annotations": {
                # *.k8s.io groups need it; upstream's CRDs name the API review
                "api-approved.kubernetes.io": "https://github.com/kubernetes-sigs/gateway-api/pull/2997",
                "gateway.networking.k8s.io/bundle-version": "v1.2.1",
                "gateway.networking.k8s.io/channel": "standard",
            },
        },
        "spec": {
            "group": GROUP,
            "scope": scope,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "categories": ["gateway-api"],
                **({"shortNames": ["gc"]} if kind == "GatewayClass" else {}),
            },
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "subresources": status,
                    "additionalPrinterColumns": [
                        *columns,
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": _STR,
                                "kind": _STR,
                                "metadata": {"type": "object"},
                                "spec": spec,
                                **({"status": _FREE} if status else {}),
                            },
                        }
                    },
                }
            ],
        },
    }


def _column(name: str, path: str) -> JSON:
    return {"name": name, "type": "string", "jsonPath": path}


CRDS: list[JSON] = [
    _crd(
        "GatewayClass",
        "gatewayclasses",
        "Cluster",
        _obj(("controllerName",), controllerName=_STR, description=_STR, parametersRef=_FREE),
        [
            _column("Controller", ".spec.controllerName"),
            _column("Accepted", '.status.conditions[?(@.type=="Accepted")].status'),
        ],
    ),
    _crd(
        "Gateway",
        "gateways",
        "Namespaced",
        _obj(
            ("gatewayClassName", "listeners"),
            gatewayClassName=_STR,
            addresses=_list(_FREE, 16),
            listeners=_list(
                _obj(
                    ("name", "port", "protocol"),
                    name=_STR,
                    hostname=_STR,
                    port={"type": "integer", "format": "int32", "minimum": 1, "maximum": 65535},
                    protocol=_STR,
                    tls=_FREE,
                    allowedRoutes=_obj(
                        namespaces=_obj(
                            **{"from": _FROM},
                            selector=_FREE,
                        ),
                        kinds=_list(_FREE, 8),
                    ),
                ),
            ),
        ),
        [
            _column("Class", ".spec.gatewayClassName"),
            _column("Address", ".status.addresses[*].value"),
            _column("Programmed", '.status.conditions[?(@.type=="Programmed")].status'),
        ],
    ),
    _crd(
        "HTTPRoute",
        "httproutes",
        "Namespaced",
        _obj(
            parentRefs=_list(_PARENT_REF, 32),
            hostnames=_list(_STR, 16),
            rules=_list(
                _obj(
                    name=_STR,
                    matches=_list(_MATCH, 64),
                    filters=_list(_FREE, 16),
                    backendRefs=_list(_BACKEND_REF, 16),
                    timeouts=_FREE,
                ),
                16,
            ),
        ),
        [_column("Hostnames", ".spec.hostnames")],
    ),
    _crd(
        "ReferenceGrant",
        "referencegrants",
        "Namespaced",
        _obj(
            ("from", "to"),
            **{
                "from": _list(
                    _obj(("group", "kind", "namespace"), group=_STR, kind=_STR, namespace=_STR), 16
                ),
                "to": _list(_obj(("group", "kind"), group=_STR, kind=_STR, name=_STR), 16),
            },
        ),
        [],
        version="v1beta1",
    ),
]
