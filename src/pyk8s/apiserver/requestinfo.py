"""Parse a request path the way upstream's RequestInfoFactory does.

``/api/v1/namespaces/default/pods/web/log`` becomes group "", version v1, namespace
default, resource pods, name web, subresource log, and a verb from the HTTP method
(GET on a collection is ``list``, or ``watch`` with ``?watch=true``). Authorization,
routing and audit all work on this one structure.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyk8s.api.registry import Registry
from pyk8s.api.selectors import SelectorError, parse_field_selector


@dataclass(frozen=True, slots=True)
class RequestInfo:
    resource_request: bool
    path: str
    verb: str
    group: str = ""
    version: str = ""
    namespace: str = ""
    resource: str = ""
    name: str = ""
    subresource: str = ""
    #: the request's path within the API prefix (for non-resource GETs like /api/v1)
    parts: tuple[str, ...] = ()
    #: a list or watch's ``fieldSelector``
    field_selector: str = ""

    @property
    def authorized_name(self) -> str:
        """The name authorization sees: a list or watch selecting one object by
        ``metadata.name=<name>`` is about that object (upstream's RequestInfoFactory)."""
        if self.name or not self.field_selector:
            return self.name
        try:
            name = parse_field_selector(self.field_selector).requires_exact_match("metadata.name")
        except SelectorError:
            return ""
        if not name or name in (".", "..") or "/" in name or "%" in name:
            return ""
        return name


_METHOD_VERBS = {
    "POST": "create",
    "PUT": "update",
    "PATCH": "patch",
    "GET": "get",
    "HEAD": "get",
    "DELETE": "delete",
}


def parse_request(method: str, path: str, query: dict[str, str], registry: Registry) -> RequestInfo:
    parts = [p for p in path.split("/") if p]
    method = method.upper()
    # a non-resource request's verb is the lower-cased method (put, post, head), as upstream
    plain = method.lower()
    if not parts or parts[0] not in ("api", "apis"):
        return RequestInfo(False, path, plain, parts=tuple(parts))
    if parts[0] == "api":
        if len(parts) < 2:
            return RequestInfo(False, path, plain, parts=tuple(parts))
        group, version, rest = "", parts[1], parts[2:]
    else:
        if len(parts) < 3:
            return RequestInfo(False, path, plain, parts=tuple(parts))
        group, version, rest = parts[1], parts[2], parts[3:]
    if not rest:
        return RequestInfo(False, path, plain, group, version, parts=tuple(parts))
    verb = _METHOD_VERBS.get(method, plain)

    watch_prefix = False
    if rest[0] == "watch":  # the deprecated /api/v1/watch/... form
        watch_prefix = True
        rest = rest[1:]

    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        candidate = registry.get(group, version, rest[2])
        if candidate is not None and candidate.namespaced:
            namespace = rest[1]
            rest = rest[2:]
        elif rest[2] not in ("status", "finalize"):
            # /api/v1/namespaces/ns/unknown: a namespaced request for an unknown resource
            namespace = rest[1]
            rest = rest[2:]
    elif len(rest) == 2 and rest[0] == "namespaces" and group == "":
        pass  # GET /api/v1/namespaces/<name>: the namespace itself
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if len(rest) > 3 and subresource != "proxy":
        subresource = "/".join(rest[2:])

    if watch_prefix or (
        method in ("GET", "HEAD") and query.get("watch", "").lower() in ("true", "1")
    ):
        verb = "watch"
    elif method in ("GET", "HEAD") and not name:
        verb = "list"
    elif method == "DELETE" and not name:
        verb = "deletecollection"
    field_selector = query.get("fieldSelector", "") if verb in ("list", "watch") else ""
    return RequestInfo(
        True,
        path,
        verb,
        group,
        version,
        namespace,
        resource,
        name,
        subresource,
        tuple(parts),
        field_selector,
    )
