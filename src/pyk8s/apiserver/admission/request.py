"""The AdmissionRequest a webhook receives and a policy's CEL ``request`` variable reads.

Why this module exists: upstream builds one ``admission.k8s.io/v1`` AdmissionRequest from
a request's admission attributes for both consumers — the body of an AdmissionReview sent
to a webhook, and the ``request`` variable of ValidatingAdmissionPolicy and of
``matchConditions``. Building it in one place keeps the two identical.

Fields follow upstream: ``kind``/``resource`` are what the hook matched (another version
of the same objects under ``matchPolicy: Equivalent``), ``requestKind``/``requestResource``
what the client sent; ``options`` is the Create/Update/DeleteOptions of the request; for
CONNECT the ``object`` is the connect options (PodExecOptions …). ``userInfo`` omits an
empty uid and extra, as Go's ``omitempty`` does.
"""

from __future__ import annotations

from typing import Any

from pyk8s.api.registry import Resource
from pyk8s.apiserver.admission import CONNECT, CREATE, DELETE, UPDATE, Attributes

JSON = dict[str, Any]

_OPTIONS_KIND = {CREATE: "CreateOptions", UPDATE: "UpdateOptions", DELETE: "DeleteOptions"}

#: the kind of the options object a CONNECT carries, by (group, plural, subresource)
_CONNECT_KIND = {
    ("", "pods", "exec"): "PodExecOptions",
    ("", "pods", "attach"): "PodAttachOptions",
    ("", "pods", "portforward"): "PodPortForwardOptions",
    ("", "pods", "proxy"): "PodProxyOptions",
    ("", "services", "proxy"): "ServiceProxyOptions",
    ("", "nodes", "proxy"): "NodeProxyOptions",
}
_BOOL_OPTIONS = ("stdin", "stdout", "stderr", "tty")


def _gvk(api_version: str, kind: str) -> JSON:
    group, _, version = api_version.rpartition("/")
    return {"group": group, "version": version, "kind": kind}


def _kind(attrs: Attributes, r: Resource) -> JSON:
    """The kind of the request's object as ``r`` serves it (a subresource's own kind —
    Scale, Binding, Eviction — when the object says it)."""
    obj = attrs.obj
    if attrs.operation == CONNECT:
        kind = _CONNECT_KIND.get((r.group, r.plural, attrs.subresource), r.kind)
        return {"group": "", "version": "v1", "kind": kind}
    if attrs.subresource and isinstance(obj, dict) and obj.get("kind") and obj.get("apiVersion"):
        return _gvk(str(obj["apiVersion"]), str(obj["kind"]))
    return {"group": r.group, "version": r.version, "kind": r.kind}


def _gvr(r: Resource) -> JSON:
    return {"group": r.group, "version": r.version, "resource": r.plural}


def user_info(attrs: Attributes) -> JSON:
    user = attrs.user
    out: JSON = {"username": user.name}
    if user.uid:
        out["uid"] = user.uid
    out["groups"] = list(user.groups)
    if user.extra:
        out["extra"] = {k: list(v) for k, v in user.extra.items()}
    return out


def _connect_options(attrs: Attributes, kind: str) -> JSON:
    out: JSON = {"kind": kind, "apiVersion": "v1"}
    for key, value in (attrs.options or {}).items():
        if key in _BOOL_OPTIONS:
            out[key] = value in ("1", "true", "True")
        elif key == "command":
            out[key] = [value] if isinstance(value, str) else list(value)
        else:
            out[key] = value
    return out


def _options(attrs: Attributes) -> JSON | None:
    kind = _OPTIONS_KIND.get(attrs.operation)
    if kind is None:
        return None
    out: JSON = {"kind": kind, "apiVersion": "meta.k8s.io/v1"}
    sent = attrs.options if isinstance(attrs.options, dict) else {}
    out.update((k, v) for k, v in sent.items() if k not in ("kind", "apiVersion"))
    if attrs.dry_run:
        out["dryRun"] = ["All"]
    return out


def admission_request(attrs: Attributes, resource: Resource | None = None) -> JSON:
    """The AdmissionRequest for ``attrs``, seen as ``resource`` (default: the request's
    own; pass the resource a hook matched through equivalence, with ``attrs.obj`` and
    ``attrs.old`` already converted to it)."""
    r = resource or attrs.resource
    kind = _kind(attrs, r)
    request_kind = kind if r is attrs.resource else _kind(attrs, attrs.resource)
    obj: Any = attrs.obj
    options = _options(attrs)
    if attrs.operation == CONNECT:
        obj, options = _connect_options(attrs, kind["kind"]), None
    out: JSON = {
        "uid": attrs.request_uid,
        "kind": kind,
        "resource": _gvr(r),
        "requestKind": request_kind,
        "requestResource": _gvr(attrs.resource),
    }
    if attrs.subresource:
        out["subResource"] = attrs.subresource
        out["requestSubResource"] = attrs.subresource
    if attrs.name:
        out["name"] = attrs.name
    if attrs.namespace:
        out["namespace"] = attrs.namespace
    out["operation"] = attrs.operation
    out["userInfo"] = user_info(attrs)
    out["object"] = obj
    out["oldObject"] = attrs.old
    out["dryRun"] = attrs.dry_run
    out["options"] = options
    return out
