"""The OpenAPI documents: /openapi/v3 (per group-version) and /openapi/v2 (Swagger 2.0).

kubectl reads these, not just people: ``kubectl explain`` renders the v3 document of a
group-version (it finds the kind through the ``x-kubernetes-group-version-kind`` of the
resource's list/get operations, then the schema carrying the same GVK); ``kubectl
create/apply --validate=strict`` looks for a ``fieldValidation`` parameter on the PATCH
operations of the kind to decide that the server validates (and then sends
``?fieldValidation=Strict``); ``kubectl apply`` computes its strategic merge patch from the
v3 schemas (``x-kubernetes-patch-merge-key``/``-strategy``) when the kind's PATCH accepts
``application/strategic-merge-patch+json``; and client-side validation (a ``kind: List``
file, or a server without field validation) downloads /openapi/v2 *as protobuf only*
(gnostic's ``openapi.v2.Document``), so that is served too, encoded by hand below.

Built-in types come from two sources, so the documents cannot drift from what we serve: the
registry (paths, operations, parameters, the way upstream's installer lays them out) and
the official v1.32 definitions shipped by kubernetes-validate, converted back to
upstream's shapes: JSON-schema ``[T, "null"]`` types become ``T``, the ``enum`` the
converter added to apiVersion/kind goes, v3 wraps a ``$ref`` that has siblings in
``allOf`` as kube-openapi does, IntOrString and Quantity get their upstream forms. A
document holds only the definitions its paths reach. Custom resources come from a third
source, their CustomResourceDefinitions, built the way apiextensions-apiserver builds them
(see "custom resources" below), so ``kubectl explain <cr>`` and client-side validation
see the custom types too.

Each document is built once per registry generation (lazily, off the event loop; a CRD
that starts or stops being served moves the generation) and its bytes are cached with
upstream's cache keys: the v3 index points at ``?hash=<SHA-512, hex upper>`` URLs that
are served ``Cache-Control: public, immutable``; a stale hash redirects (301);
``If-None-Match`` gets 304.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import struct
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

import orjson
from aiohttp import web

from pyk8s.api import errors
from pyk8s.api.registry import Registry, Resource
from pyk8s.api.schema import KUBERNETES_VERSION, schemas

JSON = dict[str, Any]
GVK = tuple[str, str, str]

V3_REF = "#/components/schemas/"
V2_REF = "#/definitions/"

JSON_CT = "application/json"
PB_V2_CT = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
#: media types a client may ask /openapi/v2 for (subtype, as goautoneg splits them)
_V2_PB_SUBTYPES = (
    "com.github.proto-openapi.spec.v2@v1.0+protobuf",
    "com.github.proto-openapi.spec.v2.v1.0+protobuf",
)

# ----------------------------------------------------------------------------- parameters


@dataclass(frozen=True, slots=True)
class Param:
    """One query or path parameter (upstream's descriptions)."""

    name: str
    where: str  # "query" | "path"
    type: str
    description: str
    required: bool = False


def _q(name: str, type_: str, description: str) -> Param:
    return Param(name, "query", type_, description)


ALLOW_WATCH_BOOKMARKS = _q(
    "allowWatchBookmarks",
    "boolean",
    'allowWatchBookmarks requests watch events with type "BOOKMARK". Servers that do not '
    "implement bookmarks may ignore this flag and bookmarks are sent at the server's "
    "discretion. Clients should not assume bookmarks are returned at any specific interval, "
    "nor may they assume the server will send any BOOKMARK event during a session. If this "
    "is not a watch, this field is ignored.",
)
CONTINUE = _q(
    "continue",
    "string",
    "The continue option should be set when retrieving more results from the server. Since "
    "this value is server defined, clients may only use the continue value from a previous "
    "query result with identical query parameters (except for the value of continue) and the "
    "server may reject a continue value it does not recognize. If the specified continue "
    "value is no longer valid whether due to expiration (generally five to fifteen minutes) "
    "or a configuration change on the server, the server will respond with a 410 "
    "ResourceExpired error together with a continue token. If the client needs a consistent "
    "list, it must restart their list without the continue field. Otherwise, the client may "
    "send another list request with the token received with the 410 error, the server will "
    "respond with a list starting from the next key, but from the latest snapshot, which is "
    "inconsistent from the previous list results - objects that are created, modified, or "
    "deleted after the first list request will be included in the response, as long as their "
    'keys are after the "next key".\n\nThis field is not supported when watch is true. '
    "Clients may start a watch from the last resourceVersion value returned by the server "
    "and not miss any modifications.",
)
FIELD_SELECTOR = _q(
    "fieldSelector",
    "string",
    "A selector to restrict the list of returned objects by their fields. Defaults to everything.",
)
LABEL_SELECTOR = _q(
    "labelSelector",
    "string",
    "A selector to restrict the list of returned objects by their labels. Defaults to everything.",
)
LIMIT = _q(
    "limit",
    "integer",
    "limit is a maximum number of responses to return for a list call. If more items exist, "
    "the server will set the `continue` field on the list metadata to a value that can be "
    "used with the same initial query to retrieve the next set of results. Setting a limit "
    "may return fewer than the requested amount of items (up to zero items) in the event all "
    "requested objects are filtered out and clients should only use the presence of the "
    "continue field to determine whether more results are available. Servers may choose not "
    "to support the limit argument and will return all of the available results. If limit "
    "is specified and the continue field is empty, clients may assume that no more results "
    "are available. This field is not supported if watch is true.\n\nThe server guarantees "
    "that the objects returned when using continue will be identical to issuing a single "
    "list call without a limit - that is, no objects created, modified, or deleted after the "
    "first request is issued will be included in any subsequent continued requests. This is "
    "sometimes referred to as a consistent snapshot, and ensures that a client that is using "
    "limit to receive smaller chunks of a very large result can ensure they see all possible "
    "objects. If objects are updated during a chunked list the version of the object that "
    "was present at the time the first list result was calculated is returned.",
)
PRETTY = _q(
    "pretty",
    "string",
    "If 'true', then the output is pretty printed. Defaults to 'false' unless the user-agent "
    "indicates a browser or command-line HTTP tool (curl and wget).",
)
RESOURCE_VERSION = _q(
    "resourceVersion",
    "string",
    "resourceVersion sets a constraint on what resource versions a request may be served "
    "from. See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions "
    "for details.\n\nDefaults to unset",
)
RESOURCE_VERSION_MATCH = _q(
    "resourceVersionMatch",
    "string",
    "resourceVersionMatch determines how resourceVersion is applied to list calls. It is "
    "highly recommended that resourceVersionMatch be set for list calls where "
    "resourceVersion is set See "
    "https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for "
    "details.\n\nDefaults to unset",
)
SEND_INITIAL_EVENTS = _q(
    "sendInitialEvents",
    "boolean",
    "`sendInitialEvents=true` may be set together with `watch=true`. In that case, the watch "
    "stream will begin with synthetic events to produce the current state of objects in the "
    'collection. Once all such events have been sent, a synthetic "Bookmark" event  will be '
    "sent. The bookmark will report the ResourceVersion (RV) corresponding to the set of "
    'objects, and be marked with `"k8s.io/initial-events-end": "true"` annotation. '
    "Afterwards, the watch stream will proceed as usual, sending watch events corresponding "
    "to changes (subsequent to the RV) to objects watched.\n\nWhen `sendInitialEvents` option "
    "is set, we require `resourceVersionMatch` option to also be set. The semantic of the "
    "watch request is as following: - `resourceVersionMatch` = NotOlderThan\n  is "
    'interpreted as "data at least as new as the provided `resourceVersion`"\n  and the '
    "bookmark event is send when the state is synced\n  to a `resourceVersion` at least as "
    "fresh as the one provided by the ListOptions.\n  If `resourceVersion` is unset, this is "
    'interpreted as "consistent read" and the\n  bookmark event is send when the state is '
    "synced at least to the moment\n  when request started being processed.\n- "
    "`resourceVersionMatch` set to any other value or unset\n  Invalid error is returned."
    '\n\nDefaults to true if `resourceVersion=""` or `resourceVersion="0"` (for backward '
    "compatibility reasons) and to false otherwise.",
)
TIMEOUT_SECONDS = _q(
    "timeoutSeconds",
    "integer",
    "Timeout for the list/watch call. This limits the duration of the call, regardless of "
    "any activity or inactivity.",
)
WATCH = _q(
    "watch",
    "boolean",
    "Watch for changes to the described resources and return them as a stream of add, "
    "update, and remove notifications. Specify resourceVersion.",
)
DRY_RUN = _q(
    "dryRun",
    "string",
    "When present, indicates that modifications should not be persisted. An invalid or "
    "unrecognized dryRun directive will result in an error response and no further "
    "processing of the request. Valid values are: - All: all dry run stages will be processed",
)
_FIELD_MANAGER_TEXT = (
    "fieldManager is a name associated with the actor or entity that is making these "
    "changes. The value must be less than or 128 characters long, and only contain printable "
    "characters, as defined by https://golang.org/pkg/unicode/#IsPrint."
)
FIELD_MANAGER = _q("fieldManager", "string", _FIELD_MANAGER_TEXT)
FIELD_MANAGER_PATCH = _q(
    "fieldManager",
    "string",
    _FIELD_MANAGER_TEXT + " This field is required for apply requests "
    "(application/apply-patch) but optional for non-apply patch types (JsonPatch, "
    "MergePatch, StrategicMergePatch).",
)
FIELD_VALIDATION = _q(
    "fieldValidation",
    "string",
    "fieldValidation instructs the server on how to handle objects in the request "
    "(POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: "
    "This will ignore any unknown fields that are silently dropped from the object, and will "
    "ignore all but the last duplicate field that the decoder encounters. This is the "
    "default behavior prior to v1.23. - Warn: This will send a warning via the standard "
    "warning response header for each unknown field that is dropped from the object, and for "
    "each duplicate field that is encountered. The request will still succeed if there are "
    "no other errors, and will only persist the last of any duplicate fields. This is the "
    "default in v1.23+ - Strict: This will fail the request with a BadRequest error if any "
    "unknown fields would be dropped from the object, or if any duplicate fields are present. "
    "The error returned from the server will contain all unknown and duplicate fields "
    "encountered.",
)
FORCE = _q(
    "force",
    "boolean",
    'Force is going to "force" Apply requests. It means user will re-acquire conflicting '
    "fields owned by other people. Force flag must be unset for non-apply patch requests.",
)
GRACE_PERIOD_SECONDS = _q(
    "gracePeriodSeconds",
    "integer",
    "The duration in seconds before the object should be deleted. Value must be non-negative "
    "integer. The value zero indicates delete immediately. If this value is nil, the default "
    "grace period for the specified type will be used. Defaults to a per object value if not "
    "specified. zero means delete immediately.",
)
IGNORE_STORE_READ_ERROR = _q(
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "boolean",
    "if set to true, it will trigger an unsafe deletion of the resource in case the normal "
    "deletion flow fails with a corrupt object error. A resource is considered corrupt if it "
    "can not be retrieved from the underlying storage successfully because of a) its data "
    "can not be transformed e.g. decryption failure, or b) it fails to decode into an "
    "object. NOTE: unsafe deletion ignores finalizer constraints, skips precondition checks, "
    "and removes the object from the storage. WARNING: This may potentially break the "
    "cluster if the workload associated with the resource being unsafe-deleted relies on "
    "normal deletion flow. Use only if you REALLY know what you are doing. The default value "
    "is false, and the user must opt in to enable it",
)
ORPHAN_DEPENDENTS = _q(
    "orphanDependents",
    "boolean",
    "Deprecated: please use the PropagationPolicy, this field will be deprecated in 1.7. "
    'Should the dependent objects be orphaned. If true/false, the "orphan" finalizer will be '
    "added to/removed from the object's finalizers list. Either this field or "
    "PropagationPolicy may be set, but not both.",
)
PROPAGATION_POLICY = _q(
    "propagationPolicy",
    "string",
    "Whether and how garbage collection will be performed. Either this field or "
    "OrphanDependents may be set, but not both. The default policy is decided by the "
    "existing finalizer set in the metadata.finalizers and the resource-specific default "
    "policy. Acceptable values are: 'Orphan' - orphan the dependents; 'Background' - allow "
    "the garbage collector to delete the dependents in the background; 'Foreground' - a "
    "cascading policy that deletes all dependents in the foreground.",
)
NAMESPACE = Param(
    "namespace",
    "path",
    "string",
    "object name and auth scope, such as for teams and projects",
    True,
)

LIST_PARAMS = (
    ALLOW_WATCH_BOOKMARKS,
    CONTINUE,
    FIELD_SELECTOR,
    LABEL_SELECTOR,
    LIMIT,
    RESOURCE_VERSION,
    RESOURCE_VERSION_MATCH,
    SEND_INITIAL_EVENTS,
    TIMEOUT_SECONDS,
    WATCH,
)
WRITE_PARAMS = (DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION)
PATCH_PARAMS = (DRY_RUN, FIELD_MANAGER_PATCH, FIELD_VALIDATION, FORCE)
DELETE_PARAMS = (
    DRY_RUN,
    GRACE_PERIOD_SECONDS,
    IGNORE_STORE_READ_ERROR,
    ORPHAN_DEPENDENTS,
    PROPAGATION_POLICY,
)
DELETECOLLECTION_PARAMS = (
    CONTINUE,
    DRY_RUN,
    FIELD_SELECTOR,
    GRACE_PERIOD_SECONDS,
    IGNORE_STORE_READ_ERROR,
    LABEL_SELECTOR,
    LIMIT,
    ORPHAN_DEPENDENTS,
    PROPAGATION_POLICY,
    RESOURCE_VERSION,
    RESOURCE_VERSION_MATCH,
    SEND_INITIAL_EVENTS,
    TIMEOUT_SECONDS,
)
#: parameters kubectl looks for on the operation itself (never hoisted to the path)
_OPERATION_ONLY = frozenset({"dryRun", "fieldManager", "fieldValidation", "force"})

LOG_PARAMS = (
    _q(
        "container",
        "string",
        "The container for which to stream logs. Defaults to only "
        "container if there is one container in the pod.",
    ),
    _q("follow", "boolean", "Follow the log stream of the pod. Defaults to false."),
    _q(
        "insecureSkipTLSVerifyBackend",
        "boolean",
        "insecureSkipTLSVerifyBackend indicates that the apiserver should not confirm the "
        "validity of the serving certificate of the backend it is connecting to.  This will "
        "make the HTTPS connection between the apiserver and the backend insecure. This means "
        "the apiserver cannot verify the log data it is receiving came from the real kubelet.  "
        "If the kubelet is configured to verify the apiserver's TLS credentials, it does not "
        "mean the connection to the real kubelet is vulnerable to a man in the middle attack "
        "(e.g. an attacker could not intercept the actual log data coming from the real "
        "kubelet).",
    ),
    _q(
        "limitBytes",
        "integer",
        "If set, the number of bytes to read from the server before terminating the log "
        "output. This may not display a complete final line of logging, and may return "
        "slightly more or slightly less than the specified limit.",
    ),
    _q("previous", "boolean", "Return previous terminated container logs. Defaults to false."),
    _q(
        "sinceSeconds",
        "integer",
        "A relative time in seconds before the current time from which to show logs. If this "
        "value precedes the time a pod was started, only logs since the pod start will be "
        "returned. If this value is in the future, no logs will be returned. Only one of "
        "sinceSeconds or sinceTime may be specified.",
    ),
    _q(
        "stream",
        "string",
        "Specify which container log stream to return to the client. Acceptable values are "
        '"All", "Stdout" and "Stderr". If not specified, "All" is used, and both stdout and '
        'stderr are returned interleaved. Note that when "TailLines" is specified, "Stream" '
        'can only be set to nil or "All".',
    ),
    _q(
        "tailLines",
        "integer",
        "If set, the number of lines from the end of the logs to show. If not specified, logs "
        "are shown from the creation of the container or sinceSeconds or sinceTime. Note that "
        'when "TailLines" is specified, "Stream" can only be set to nil or "All".',
    ),
    _q(
        "timestamps",
        "boolean",
        "If true, add an RFC3339 or RFC3339Nano timestamp at the beginning of every line of "
        "log output. Defaults to false.",
    ),
)
EXEC_PARAMS = (
    _q(
        "command",
        "string",
        "Command is the remote command to execute. argv array. Not executed within a shell.",
    ),
    _q(
        "container",
        "string",
        "Container in which to execute the command. Defaults to only "
        "container if there is only one container in the pod.",
    ),
    _q("stderr", "boolean", "Redirect the standard error stream of the pod for this call."),
    _q(
        "stdin",
        "boolean",
        "Redirect the standard input stream of the pod for this call. Defaults to false.",
    ),
    _q("stdout", "boolean", "Redirect the standard output stream of the pod for this call."),
    _q(
        "tty",
        "boolean",
        "TTY if true indicates that a tty will be allocated for the exec call. Defaults to false.",
    ),
)
ATTACH_PARAMS = (
    _q(
        "container",
        "string",
        "The container in which to execute the command. Defaults to "
        "only container if there is only one container in the pod.",
    ),
    _q(
        "stderr",
        "boolean",
        "Stderr if true indicates that stderr is to be redirected for the "
        "attach call. Defaults to true.",
    ),
    _q(
        "stdin",
        "boolean",
        "Stdin if true, redirects the standard input stream of the pod for "
        "this call. Defaults to false.",
    ),
    _q(
        "stdout",
        "boolean",
        "Stdout if true indicates that stdout is to be redirected for the "
        "attach call. Defaults to true.",
    ),
    _q(
        "tty",
        "boolean",
        "TTY if true indicates that a tty will be allocated for the attach call. This is "
        "passed through the container runtime so the tty is allocated on the worker node by "
        "the container runtime. Defaults to false.",
    ),
)
PORTFORWARD_PARAMS = (
    _q("ports", "integer", "List of ports to forward Required when using WebSockets"),
)
_PROXY_PATH_TEXT = {
    "Pod": "Path is the URL path to use for the current proxy request to pod.",
    "Node": "Path is the URL path to use for the current proxy request to node.",
    "Service": "Path is the part of URLs that include service endpoints, suffixes, and "
    "parameters to use for the current proxy request to service. For example, the whole "
    "request URL is http://localhost/api/v1/namespaces/kube-system/services/"
    "elasticsearch-logging/_search?q=user:kimchy. Path is _search?q=user:kimchy.",
}

# --------------------------------------------------------------------------- operations

OBJECT_TYPES = ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf")
LIST_TYPES = (
    *OBJECT_TYPES,
    "application/json;stream=watch",
    "application/vnd.kubernetes.protobuf;stream=watch",
)
PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)
LOG_TYPES = ("text/plain", *OBJECT_TYPES)
ANY_TYPES = ("*/*",)

STATUS = "io.k8s.apimachinery.pkg.apis.meta.v1.Status"
DELETE_OPTIONS = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"
PATCH = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
WATCH_EVENT = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent"
API_RESOURCE_LIST = "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList"
#: a response schema that is a plain string (logs, connect)
STRING = "<string>"

_RESPONSE_TEXT = {"200": "OK", "201": "Created", "202": "Accepted", "401": "Unauthorized"}
#: kinds whose DELETE answers with the deleted object rather than a Status (as upstream)
_RETURNS_DELETED = frozenset(
    {
        ("", "Pod"),
        ("", "Service"),
        ("", "PersistentVolume"),
        ("", "PersistentVolumeClaim"),
        ("", "ServiceAccount"),
    }
)


@dataclass(slots=True)
class Operation:
    """One operation of a path, independent of the OpenAPI version it is rendered to."""

    op_id: str
    description: str
    tag: str
    action: str | None
    gvk: GVK | None
    params: tuple[Param, ...]
    #: (status code, response schema: a definition name, STRING, or None for no body)
    responses: tuple[tuple[str, str | None], ...]
    produces: tuple[str, ...] = OBJECT_TYPES
    consumes: tuple[str, ...] = OBJECT_TYPES
    #: the request body's definition, and whether it must be sent
    body: str | None = None
    body_required: bool = True


Paths = dict[str, dict[str, Operation]]

_METHOD_ORDER = ("get", "put", "post", "delete", "options", "head", "patch")


def _group_word(group: str) -> str:
    """``rbac.authorization.k8s.io`` -> ``rbacAuthorization`` (upstream's tag stem)."""
    if not group:
        return "core"
    stem = group.removesuffix(".k8s.io")
    words = [w for w in stem.replace("-", ".").split(".") if w]
    return words[0] + "".join(w[:1].upper() + w[1:] for w in words[1:])


def _tag(group: str, version: str) -> str:
    return f"{_group_word(group)}_{version}"


def _id_prefix(group: str, version: str) -> str:
    word = _group_word(group)
    return word[:1].upper() + word[1:] + version[:1].upper() + version[1:]


def gv_key(group: str, version: str) -> str:
    """The v3 index key (and URL tail) of a group-version: ``api/v1``, ``apis/apps/v1``."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


@dataclass(frozen=True, slots=True)
class _Sub:
    methods: tuple[str, ...]
    #: what the subresource takes and returns; None: the parent's kind
    gvk: GVK | None = None
    connect: bool = False


_SUBRESOURCES: dict[str, _Sub] = {
    "status": _Sub(("get", "put", "patch")),
    "scale": _Sub(("get", "put", "patch"), ("autoscaling", "v1", "Scale")),
    "ephemeralcontainers": _Sub(("get", "put", "patch")),
    "binding": _Sub(("post",), ("", "v1", "Binding")),
    "eviction": _Sub(("post",), ("policy", "v1", "Eviction")),
    "token": _Sub(("post",), ("authentication.k8s.io", "v1", "TokenRequest")),
    "finalize": _Sub(("put",)),
    "log": _Sub(("get",)),
    "exec": _Sub(("get", "post"), ("", "v1", "PodExecOptions"), connect=True),
    "attach": _Sub(("get", "post"), ("", "v1", "PodAttachOptions"), connect=True),
    "portforward": _Sub(("get", "post"), ("", "v1", "PodPortForwardOptions"), connect=True),
    "proxy": _Sub(("get", "put", "post", "delete", "options", "head", "patch"), connect=True),
}
_CONNECT_PARAMS = {"exec": EXEC_PARAMS, "attach": ATTACH_PARAMS, "portforward": PORTFORWARD_PARAMS}
_VERB_WORD = {
    "get": "read",
    "put": "replace",
    "post": "create",
    "patch": "patch",
    "delete": "delete",
}
_ACTION = {"get": "get", "put": "put", "post": "post", "patch": "patch", "delete": "delete"}


def _definition(gvk: GVK) -> str | None:
    return schemas().name_for(*gvk)


def _read_responses(schema: str | None) -> tuple[tuple[str, str | None], ...]:
    return (("200", schema), ("401", None))


def _resource_paths(paths: Paths, r: Resource, prefix: str) -> None:
    """The paths upstream's installer registers for one resource and its subresources."""
    tag = _tag(r.group, r.version)
    idp = _id_prefix(r.group, r.version)
    gvk: GVK = (r.group, r.version, r.kind)
    kind_def = _definition(gvk)
    list_def = _definition((r.group, r.version, r.list_kind))
    scope = f"Namespaced{r.kind}" if r.namespaced else r.kind
    ns: tuple[Param, ...] = (NAMESPACE,) if r.namespaced else ()
    base = (
        f"{prefix}/namespaces/{{namespace}}/{r.plural}" if r.namespaced else f"{prefix}/{r.plural}"
    )
    name = Param("name", "path", "string", f"name of the {r.kind}", True)
    verbs = set(r.verbs)
    write = (("200", kind_def), ("201", kind_def), ("401", None))

    collection: dict[str, Operation] = {}
    if "list" in verbs:
        collection["get"] = Operation(
            f"list{idp}{scope}",
            f"list or watch objects of kind {r.kind}",
            tag,
            "list",
            gvk,
            (*ns, PRETTY, *LIST_PARAMS),
            (("200", list_def), ("401", None)),
            LIST_TYPES,
        )
    if "create" in verbs:
        collection["post"] = Operation(
            f"create{idp}{scope}",
            f"create a {r.kind}",
            tag,
            "post",
            gvk,
            (*ns, PRETTY, *WRITE_PARAMS),
            (("200", kind_def), ("201", kind_def), ("202", kind_def), ("401", None)),
            consumes=ANY_TYPES,
            body=kind_def,
        )
    if "deletecollection" in verbs:
        collection["delete"] = Operation(
            f"delete{idp}Collection{scope}",
            f"delete collection of {r.kind}",
            tag,
            "deletecollection",
            gvk,
            (*ns, PRETTY, *DELETECOLLECTION_PARAMS),
            _read_responses(STATUS),
            consumes=ANY_TYPES,
            body=DELETE_OPTIONS,
            body_required=False,
        )
    if collection:
        paths[base] = collection

    item: dict[str, Operation] = {}
    iparams = (name, *ns, PRETTY)
    if "get" in verbs:
        item["get"] = Operation(
            f"read{idp}{scope}",
            f"read the specified {r.kind}",
            tag,
            "get",
            gvk,
            iparams,
            _read_responses(kind_def),
        )
    if "update" in verbs:
        item["put"] = Operation(
            f"replace{idp}{scope}",
            f"replace the specified {r.kind}",
            tag,
            "put",
            gvk,
            (*iparams, *WRITE_PARAMS),
            write,
            consumes=ANY_TYPES,
            body=kind_def,
        )
    if "patch" in verbs:
        item["patch"] = Operation(
            f"patch{idp}{scope}",
            f"partially update the specified {r.kind}",
            tag,
            "patch",
            gvk,
            (*iparams, *PATCH_PARAMS),
            write,
            consumes=PATCH_TYPES,
            body=PATCH,
        )
    if "delete" in verbs:
        deleted = kind_def if (r.group, r.kind) in _RETURNS_DELETED else STATUS
        item["delete"] = Operation(
            f"delete{idp}{scope}",
            f"delete a {r.kind}",
            tag,
            "delete",
            gvk,
            (*iparams, *DELETE_PARAMS),
            (("200", deleted), ("202", deleted), ("401", None)),
            consumes=ANY_TYPES,
            body=DELETE_OPTIONS,
            body_required=False,
        )
    if item:
        paths[f"{base}/{{name}}"] = item

    if "watch" in verbs:
        events = (("200", WATCH_EVENT), ("401", None))
        watch_base = base.replace(prefix, f"{prefix}/watch", 1)
        paths[watch_base] = {
            "get": Operation(
                f"watch{idp}{scope}List",
                f"watch individual changes to a list of {r.kind}. deprecated: use the 'watch' "
                "parameter with a list operation instead.",
                tag,
                "watchlist",
                gvk,
                (*ns, PRETTY, *LIST_PARAMS),
                events,
                LIST_TYPES,
            )
        }
        paths[f"{watch_base}/{{name}}"] = {
            "get": Operation(
                f"watch{idp}{scope}",
                f"watch changes to an object of kind {r.kind}. deprecated: use the 'watch' "
                "parameter with a list operation instead, filtered to a single item with the "
                "'fieldSelector' parameter.",
                tag,
                "watch",
                gvk,
                (name, *ns, PRETTY, *LIST_PARAMS),
                events,
                LIST_TYPES,
            )
        }
    if r.namespaced and "list" in verbs:
        paths[f"{prefix}/{r.plural}"] = {
            "get": Operation(
                f"list{idp}{r.kind}ForAllNamespaces",
                f"list or watch objects of kind {r.kind}",
                tag,
                "list",
                gvk,
                (PRETTY, *LIST_PARAMS),
                (("200", list_def), ("401", None)),
                LIST_TYPES,
            )
        }
        if "watch" in verbs:
            paths[f"{prefix}/watch/{r.plural}"] = {
                "get": Operation(
                    f"watch{idp}{r.kind}ListForAllNamespaces",
                    f"watch individual changes to a list of {r.kind}. deprecated: use the "
                    "'watch' parameter with a list operation instead.",
                    tag,
                    "watchlist",
                    gvk,
                    (PRETTY, *LIST_PARAMS),
                    (("200", WATCH_EVENT), ("401", None)),
                    LIST_TYPES,
                )
            }

    for sub in r.subresources:
        spec = _SUBRESOURCES.get(sub)
        if spec is not None:
            _subresource_paths(paths, r, sub, spec, f"{base}/{{name}}/{sub}", ns, idp, tag)


def _subresource_paths(
    paths: Paths,
    r: Resource,
    sub: str,
    spec: _Sub,
    path: str,
    ns: tuple[Param, ...],
    idp: str,
    tag: str,
) -> None:
    scope = f"Namespaced{r.kind}" if r.namespaced else r.kind
    word = sub[:1].upper() + sub[1:]
    gvk: GVK = spec.gvk or (r.group, r.version, r.kind)
    if sub == "proxy":
        gvk = ("", "v1", f"{r.kind}ProxyOptions")
    definition = _definition(gvk)
    name = Param("name", "path", "string", f"name of the {gvk[2]}", True)
    ops: dict[str, Operation] = {}
    if spec.connect:
        extra = _CONNECT_PARAMS.get(sub, ())
        if sub == "proxy":
            extra = (
                _q(
                    "path",
                    "string",
                    _PROXY_PATH_TEXT.get(
                        r.kind, "Path is the URL path to use for the current proxy request."
                    ),
                ),
            )
        with_path: dict[str, Operation] = {}
        for m in spec.methods:
            verb = m[:1].upper() + m[1:]
            text = f"connect {m.upper()} requests to {sub} of {r.kind}"
            ops[m] = Operation(
                f"connect{idp}{verb}{scope}{word}",
                text,
                tag,
                "connect",
                gvk,
                (name, *ns, *extra),
                (("200", STRING), ("401", None)),
                ANY_TYPES,
                ANY_TYPES,
            )
            if sub == "proxy":
                resource_path = Param("path", "path", "string", "path to the resource", True)
                with_path[m] = Operation(
                    f"connect{idp}{verb}{scope}{word}WithPath",
                    text,
                    tag,
                    "connect",
                    gvk,
                    (name, *ns, resource_path, *extra),
                    (("200", STRING), ("401", None)),
                    ANY_TYPES,
                    ANY_TYPES,
                )
        paths[path] = ops
        if with_path:
            paths[f"{path}/{{path}}"] = with_path
        return
    if sub == "log":
        ops["get"] = Operation(
            f"read{idp}{scope}Log",
            f"read log of the specified {r.kind}",
            tag,
            "get",
            gvk,
            (name, *ns, PRETTY, *LOG_PARAMS),
            (("200", STRING), ("401", None)),
            LOG_TYPES,
        )
        paths[path] = ops
        return
    for m in spec.methods:
        if m == "get":
            ops[m] = Operation(
                f"read{idp}{scope}{word}",
                f"read {sub} of the specified {r.kind}",
                tag,
                "get",
                gvk,
                (name, *ns, PRETTY),
                _read_responses(definition),
            )
        elif m == "put":
            ops[m] = Operation(
                f"replace{idp}{scope}{word}",
                f"replace {sub} of the specified {r.kind}",
                tag,
                "put",
                gvk,
                (name, *ns, PRETTY, *WRITE_PARAMS),
                (("200", definition), ("201", definition), ("401", None)),
                consumes=ANY_TYPES,
                body=definition,
            )
        elif m == "patch":
            ops[m] = Operation(
                f"patch{idp}{scope}{word}",
                f"partially update {sub} of the specified {r.kind}",
                tag,
                "patch",
                gvk,
                (name, *ns, PRETTY, *PATCH_PARAMS),
                (("200", definition), ("201", definition), ("401", None)),
                consumes=PATCH_TYPES,
                body=PATCH,
            )
        elif m == "post":
            ops[m] = Operation(
                f"create{idp}{scope}{word}",
                f"create {sub} of a {r.kind}",
                tag,
                "post",
                gvk,
                (name, *ns, PRETTY, *WRITE_PARAMS),
                (("200", definition), ("201", definition), ("202", definition), ("401", None)),
                consumes=ANY_TYPES,
                body=definition,
            )
    paths[path] = ops


def group_version_paths(
    registry: Registry, group: str, version: str, crds: CRDs | None = None
) -> Paths:
    """Every path of one group-version, as upstream's installer lays them out (and, for
    custom resources, as apiextensions' builder does: no discovery or watch paths)."""
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    crds = crds or {}
    paths: Paths = {}
    resources = registry.in_group_version(group, version)
    if any((r.group, r.version, r.plural) not in crds for r in resources):
        paths[f"{prefix}/"] = {
            "get": Operation(
                f"get{_id_prefix(group, version)}APIResources",
                "get available resources",
                _tag(group, version),
                None,
                None,
                (),
                _read_responses(API_RESOURCE_LIST),
            )
        }
    for r in resources:
        crd = crds.get((r.group, r.version, r.plural))
        if crd is None:
            _resource_paths(paths, r, prefix)
        else:
            _custom_resource_paths(paths, r, crd, prefix)
    return paths


def _discovery_paths(registry: Registry, crds: CRDs | None = None) -> dict[str, Paths]:
    """The non-resource documents upstream lists too: api, apis, apis/<group>, version
    (a group of custom resources only has no apis/<group> document, as upstream)."""
    out: dict[str, Paths] = {}
    crds = crds or {}
    groups = registry.group_versions()
    builtin_groups = {r.group for r in registry if (r.group, r.version, r.plural) not in crds}
    if "" in groups:
        out["api"] = {
            "/api/": {
                "get": Operation(
                    "getCoreAPIVersions",
                    "get available API versions",
                    "core",
                    None,
                    None,
                    (),
                    _read_responses("io.k8s.apimachinery.pkg.apis.meta.v1.APIVersions"),
                )
            }
        }
    if any(groups):
        out["apis"] = {
            "/apis/": {
                "get": Operation(
                    "getAPIVersions",
                    "get available API versions",
                    "apis",
                    None,
                    None,
                    (),
                    _read_responses("io.k8s.apimachinery.pkg.apis.meta.v1.APIGroupList"),
                )
            }
        }
    for group in groups:
        if group and group in builtin_groups:
            word = _group_word(group)
            out[f"apis/{group}"] = {
                f"/apis/{group}/": {
                    "get": Operation(
                        f"get{word[:1].upper()}{word[1:]}APIGroup",
                        "get information of a group",
                        word,
                        None,
                        None,
                        (),
                        _read_responses("io.k8s.apimachinery.pkg.apis.meta.v1.APIGroup"),
                    )
                }
            }
    out["version"] = {
        "/version/": {
            "get": Operation(
                "getCodeVersion",
                "get the code version",
                "version",
                None,
                None,
                (),
                _read_responses("io.k8s.apimachinery.pkg.version.Info"),
                (JSON_CT,),
                (JSON_CT,),
            )
        }
    }
    return out


# -------------------------------------------------------------------------- definitions

_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
_INT_OR_STRING_TEXT = (
    "IntOrString is a type that can hold an int32 or a string.  When used in JSON or YAML "
    "marshalling and unmarshalling, it produces or consumes the inner type.  This allows you "
    "to have, for example, a JSON field that can accept a name or number."
)
_QUANTITY_TEXT = (
    "Quantity is a fixed-point representation of a number. It provides convenient "
    "marshaling/unmarshaling in JSON and YAML, in addition to String() and AsInt64() "
    "accessors.\n\nThe serialization format is:\n\n``` <quantity>        ::= "
    '<signedNumber><suffix>\n\n\t(Note that <suffix> may be empty, from the "" case in '
    "<decimalSI>.)\n\n<digit>           ::= 0 | 1 | ... | 9 <digits>          ::= <digit> | "
    "<digit><digits> <number>          ::= <digits> | <digits>.<digits> | <digits>. | "
    '.<digits> <sign>            ::= "+" | "-" <signedNumber>    ::= <number> | '
    "<sign><number> <suffix>          ::= <binarySI> | <decimalExponent> | <decimalSI> "
    "<binarySI>        ::= Ki | Mi | Gi | Ti | Pi | Ei\n\n\t(International System of units; "
    'See: http://physics.nist.gov/cuu/Units/binary.html)\n\n<decimalSI>       ::= m | "" | '
    "k | M | G | T | P | E\n\n\t(Note that 1024 = 1Ki but 1000 = 1k; I didn't choose the "
    'capitalization.)\n\n<decimalExponent> ::= "e" <signedNumber> | "E" <signedNumber> '
    "```\n\nNo matter which of the three exponent forms is used, no quantity may represent a "
    "number greater than 2^63-1 in magnitude, nor may it have more than 3 decimal places. "
    "Numbers larger or more precise will be capped or rounded up. (E.g.: 0.1m will rounded "
    "up to 1m.) This may be extended in the future if we require larger or smaller "
    "quantities.\n\nWhen a Quantity is parsed from a string, it will remember the type of "
    "suffix it had, and will use the same type again when it is serialized.\n\nBefore "
    'serializing, Quantity will be put in "canonical form". This means that '
    "Exponent/suffix will be adjusted up or down (with a corresponding increase or decrease "
    "in Mantissa) such that:\n\n- No precision is lost - No fractional digits will be "
    "emitted - The exponent (or suffix) is as large as possible.\n\nThe sign will be omitted "
    'unless the number is negative.\n\nExamples:\n\n- 1.5 will be serialized as "1500m" - '
    '1.5Gi will be serialized as "1536Mi"\n\nNote that the quantity will NEVER be '
    "internally represented by a floating point number. That is the whole point of this "
    "exercise.\n\nNon-canonical values will still parse as long as they are well formed, but "
    "will be re-emitted in their canonical form. (So always use canonical form, or don't "
    "diff.)\n\nThis format is intended to make it difficult to use these numbers without "
    "writing some sort of special handling code in the hopes that that will cause "
    "implementors to also use a fixed point implementation."
)
#: upstream's own forms of the two scalar unions (v3 uses oneOf, v2 a string + format)
_SPECIAL: dict[str, tuple[JSON, JSON]] = {
    _INT_OR_STRING: (
        {
            "description": _INT_OR_STRING_TEXT,
            "format": "int-or-string",
            "oneOf": [{"type": "integer"}, {"type": "string"}],
        },
        {"description": _INT_OR_STRING_TEXT, "format": "int-or-string", "type": "string"},
    ),
    _QUANTITY: (
        {"description": _QUANTITY_TEXT, "oneOf": [{"type": "string"}, {"type": "number"}]},
        {"description": _QUANTITY_TEXT, "type": "string"},
    ),
}
_SCHEMA_LISTS = ("allOf", "oneOf", "anyOf")
_SCHEMA_ONE = ("items", "additionalProperties", "not")


def _convert(node: JSON, ref_prefix: str, v3: bool, refs: set[str]) -> JSON:
    """One kubernetes-validate schema node in upstream's form (v3 or v2)."""
    out: JSON = {}
    ref: str | None = None
    for key, value in node.items():
        if key == "$ref":
            target = value.rsplit("/", 1)[-1]
            refs.add(target)
            ref = ref_prefix + target
        elif key == "type":
            types = [t for t in (value if isinstance(value, list) else [value]) if t != "null"]
            if types:
                out["type"] = types[0] if len(types) == 1 else types
        elif key == "properties":
            props: JSON = {}
            for pname, pschema in value.items():
                converted = _convert(pschema, ref_prefix, v3, refs)
                if pname in ("apiVersion", "kind"):
                    # kubernetes-validate pins these with an enum; upstream does not
                    converted.pop("enum", None)
                props[pname] = converted
            out[key] = props
        elif key in _SCHEMA_ONE and isinstance(value, dict):
            out[key] = _convert(value, ref_prefix, v3, refs)
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [_convert(v, ref_prefix, v3, refs) for v in value]
        else:
            out[key] = value
    if ref is None:
        return out
    if not out:
        return {"$ref": ref}
    if v3:
        # kube-openapi's v3: a reference with siblings is wrapped so the siblings apply
        return {"allOf": [{"$ref": ref}], **out}
    return {"$ref": ref, **out}


@dataclass(slots=True)
class _Definitions:
    """Every definition in both forms, with the names each one references."""

    v3: dict[str, JSON] = field(default_factory=dict)
    v2: dict[str, JSON] = field(default_factory=dict)
    refs: dict[str, frozenset[str]] = field(default_factory=dict)

    def closure(self, roots: Iterable[str]) -> list[str]:
        """The definitions reachable from ``roots`` (those that exist), sorted."""
        seen: set[str] = set()
        stack = [r for r in roots if r in self.v3]
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            stack.extend(n for n in self.refs.get(name, ()) if n not in seen and n in self.v3)
        return sorted(seen)


def _served_gvk_filter(
    group_versions: frozenset[tuple[str, str]],
) -> Callable[[list[JSON]], list[JSON]]:
    served = group_versions | {("", "v1")}

    def keep(gvks: list[JSON]) -> list[JSON]:
        # meta kinds (DeleteOptions, WatchEvent…) list every group; keep the ones we serve
        if len(gvks) <= 1:
            return gvks
        return [g for g in gvks if (g.get("group", ""), g.get("version", "")) in served]

    return keep


_BUILTIN_DEFINITIONS: dict[frozenset[tuple[str, str]], _Definitions] = {}
_BUILTIN_LOCK = threading.Lock()


def _builtin_definitions(registry: Registry, crds: CRDs) -> _Definitions:
    """The official definitions in both forms; they only depend on the built-in versions
    served (meta kinds list those), so custom resources coming and going reuse them."""
    served = frozenset((r.group, r.version) for r in registry if _path(r) not in crds)
    with _BUILTIN_LOCK:
        cached = _BUILTIN_DEFINITIONS.get(served)
        if cached is not None:
            return cached
    keep = _served_gvk_filter(served)
    out = _Definitions()
    for name, node in schemas().definitions.items():
        refs: set[str] = set()
        if name in _SPECIAL:
            v3, v2 = _SPECIAL[name]
        else:
            v3 = _convert(node, V3_REF, True, refs)
            v2 = _convert(node, V2_REF, False, set())
            gvks = node.get("x-kubernetes-group-version-kind")
            if isinstance(gvks, list):
                kept = keep(gvks)
                for doc in (v3, v2):
                    if kept:
                        doc["x-kubernetes-group-version-kind"] = kept
                    else:
                        doc.pop("x-kubernetes-group-version-kind", None)
        out.v3[name] = v3
        out.v2[name] = v2
        out.refs[name] = frozenset(refs)
    with _BUILTIN_LOCK:
        if len(_BUILTIN_DEFINITIONS) >= 8:  # CRDs come and go: keep the last few sets
            _BUILTIN_DEFINITIONS.pop(next(iter(_BUILTIN_DEFINITIONS)))
        _BUILTIN_DEFINITIONS[served] = out
    return out


def _path(r: Resource) -> tuple[str, str, str]:
    return (r.group, r.version, r.plural)


def _refs_in(node: Any) -> set[str]:
    out: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            out.add(ref.rsplit("/", 1)[-1])
        for value in node.values():
            out |= _refs_in(value)
    elif isinstance(node, list):
        for value in node:
            out |= _refs_in(value)
    return out


def _build_definitions(registry: Registry, crds: CRDs | None = None) -> _Definitions:
    """The official definitions plus those of the custom resources served."""
    crds = crds or {}
    builtin = _builtin_definitions(registry, crds)
    if not crds:
        return builtin
    out = _Definitions(dict(builtin.v3), dict(builtin.v2), dict(builtin.refs))
    for (_, version, _), crd in crds.items():
        v3 = crd_definitions(crd, version, v2=False)
        v2 = crd_definitions(crd, version, v2=True)
        for name, schema in v3.items():
            out.v3[name] = schema
            out.v2[name] = v2[name]
            out.refs[name] = frozenset(_refs_in(schema))
    return out


# ----------------------------------------------------------------------- custom resources
#
# apiextensions-apiserver's openapi/builder, per served version of a CRD: a definition
# named with the reversed group (``com.example.stable.v1.CronTab``) made from the
# version's structural schema (``ToKubeOpenAPI``: only what a structural schema holds),
# with int-or-string unfolded, apiVersion/kind/metadata added (also inside embedded
# resources), the group-version-kind and the selectable fields; a list definition; and
# the resource's paths. v2 cannot say everything v3 can (``ToStructuralOpenAPIV2``):
# junctors go, ``nullable`` drops the type, ``x-kubernetes-preserve-unknown-fields``
# drops properties (at the root, the whole schema), and defaults are pruned.

#: the CustomResourceDefinition that serves a resource (None for a built-in resource)
CRDLookup = Callable[[Resource], JSON | None]
#: (group, version, plural) -> the CRD serving it, taken when the documents are built
CRDs = Mapping[tuple[str, str, str], JSON]

_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_LIST_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"
_SCALE = "io.k8s.api.autoscaling.v1.Scale"
_CONVENTIONS = "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md"
#: TypeMeta's fields, as k8s.io/apimachinery's generated OpenAPI describes them
_TYPE_META_API_VERSION = (
    "APIVersion defines the versioned schema of this representation of an object. Servers "
    "should convert recognized schemas to the latest internal value, and may reject "
    f"unrecognized values. More info: {_CONVENTIONS}#resources"
)
_TYPE_META_KIND = (
    "Kind is a string value representing the REST resource this object represents. Servers "
    "may infer this from the endpoint the client submits requests to. Cannot be updated. In "
    f"CamelCase. More info: {_CONVENTIONS}#types-kinds"
)
#: PartialObjectMetadata(List)'s metadata fields
_OBJECT_META_TEXT = f"Standard object's metadata. More info: {_CONVENTIONS}#metadata"
_LIST_META_TEXT = f"Standard list metadata. More info: {_CONVENTIONS}#types-kinds"
#: what addEmbeddedProperties says of an embedded resource's own apiVersion and kind
_EMBEDDED_API_VERSION = (
    "apiVersion defines the versioned schema of this representation of an object. "
    f"More info: {_CONVENTIONS}#resources"
)
_EMBEDDED_KIND = (
    "kind is a string value representing the type of this object. In CamelCase. "
    f"More info: {_CONVENTIONS}#types-kinds"
)
_CRD_INFO = {"title": "Kubernetes CRD Swagger", "version": "v0.1.0"}

_OPENAPI_V3_TYPES = frozenset({"array", "boolean", "integer", "number", "object", "string"})
_STRINGS = ("type", "description", "title", "format", "pattern")
_FLAGS = (
    "nullable",
    "uniqueItems",
    "exclusiveMaximum",
    "exclusiveMinimum",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string",
)
_NUMBERS = (
    "maximum",
    "minimum",
    "maxLength",
    "minLength",
    "maxItems",
    "minItems",
    "multipleOf",
    "maxProperties",
    "minProperties",
)
_LISTS = ("enum", "required", "x-kubernetes-list-map-keys", "x-kubernetes-validations")
_POINTERS = ("x-kubernetes-list-type", "x-kubernetes-map-type")
_JUNCTORS = ("allOf", "anyOf", "oneOf")
_INT_OR_STRING_ANY_OF = [{"type": "integer"}, {"type": "string"}]


def definition_name(group: str, version: str, kind: str) -> str:
    """kube-openapi's REST-friendly name: ``stable.example.com`` reversed, then v and kind."""
    reversed_group = ".".join(reversed(group.split("."))) if "." in group else group
    return f"{reversed_group}.{version}.{kind}"


def _crd_names(crd: JSON) -> JSON:
    accepted = (crd.get("status") or {}).get("acceptedNames") or {}
    names = accepted if accepted.get("kind") else (crd.get("spec") or {}).get("names") or {}
    return dict(names)


def _crd_version(crd: JSON, version: str) -> JSON:
    for v in (crd.get("spec") or {}).get("versions") or []:
        if isinstance(v, dict) and v.get("name") == version:
            return v
    return {}


def _invalid_types(s: Any) -> bool:
    """apiextensions' SchemaHasInvalidTypes (and items given as a list: not structural)."""
    if not isinstance(s, dict):
        return False
    t = s.get("type")
    if t and t not in _OPENAPI_V3_TYPES:
        return True
    if isinstance(s.get("items"), list):
        return True
    children: list[Any] = list((s.get("properties") or {}).values())
    children += [s.get("items"), s.get("additionalProperties"), s.get("not")]
    for key in _JUNCTORS:
        children += s.get(key) or []
    return any(_invalid_types(c) for c in children)


def _structural(s: JSON, nested: bool = False) -> JSON:
    """What a structural schema keeps of a node (``ToKubeOpenAPI``), Go's zero values omitted."""
    out: JSON = {}
    for key in _STRINGS:
        if isinstance(s.get(key), str) and s[key]:
            out[key] = s[key]
    for key in _FLAGS:
        if s.get(key) is True:
            out[key] = True
    for key in _NUMBERS:
        if isinstance(s.get(key), int | float) and not isinstance(s.get(key), bool):
            out[key] = s[key]
    for key in _LISTS:
        if isinstance(s.get(key), list) and s[key]:
            out[key] = copy.deepcopy(s[key])
    for key in _POINTERS:
        if isinstance(s.get(key), str):
            out[key] = s[key]
    if s.get("default") is not None:
        out["default"] = copy.deepcopy(s["default"])
    docs = s.get("externalDocs")
    if isinstance(docs, dict) and (docs.get("description") or docs.get("url")):
        out["externalDocs"] = {k: docs[k] for k in ("description", "url") if docs.get(k)}
    if isinstance(s.get("properties"), dict):
        out["properties"] = {
            name: _structural(p, nested)
            for name, p in s["properties"].items()
            if isinstance(p, dict)
        }
    if isinstance(s.get("items"), dict):
        out["items"] = _structural(s["items"], nested)
    extra = s.get("additionalProperties")
    if not nested and isinstance(extra, dict):
        out["additionalProperties"] = _structural(extra)
    elif not nested and isinstance(extra, bool):
        out["additionalProperties"] = extra
    for key in _JUNCTORS:
        if isinstance(s.get(key), list) and s[key]:
            out[key] = [_structural(j, True) for j in s[key] if isinstance(j, dict)]
    if isinstance(s.get("not"), dict):
        out["not"] = _structural(s["not"], True)
    return out


def _structural_children(s: JSON) -> list[JSON]:
    children = [p for p in (s.get("properties") or {}).values()]
    for key in ("items", "additionalProperties"):
        if isinstance(s.get(key), dict):
            children.append(s[key])
    return children


def _is_int_or_string_any_of(any_of: Any) -> bool:
    return (
        isinstance(any_of, list)
        and [
            {
                k: v
                for k, v in a.items()
                if k in ("type", "description", "title", "default", "nullable")
            }
            for a in any_of
        ]
        == _INT_OR_STRING_ANY_OF
    )


def _unfold(s: JSON) -> None:
    """Structural's Unfold: an int-or-string node states its two types in an anyOf."""
    if s.get("x-kubernetes-int-or-string"):
        all_of = s.get("allOf") or []
        if not (
            _is_int_or_string_any_of(s.get("anyOf"))
            or (all_of and _is_int_or_string_any_of(all_of[0].get("anyOf")))
        ):
            if "anyOf" not in s:
                s["anyOf"] = copy.deepcopy(_INT_OR_STRING_ANY_OF)
            else:
                s["allOf"] = [{"anyOf": copy.deepcopy(_INT_OR_STRING_ANY_OF)}, *all_of]
    for child in _structural_children(s):
        _unfold(child)


def _to_v2(s: JSON) -> None:
    """ToStructuralOpenAPIV2, and the v2 document's pruned defaults."""
    for key in (*_JUNCTORS, "not", "default"):
        s.pop(key, None)
    if s.pop("nullable", False):
        for key in ("type", "items", "properties"):
            s.pop(key, None)
    preserve = s.get("x-kubernetes-preserve-unknown-fields") is True
    if preserve:
        s.pop("items", None)
        s.pop("properties", None)
    if "items" not in s and s.get("type") == "array":
        del s["type"]
    if preserve and s.get("type") == "object":
        del s["type"]
    required = s.get("required")
    if required:
        nullable = {n for n, p in (s.get("properties") or {}).items() if p.get("nullable")}
        extra = s.get("additionalProperties")
        if isinstance(extra, dict) and extra.get("nullable"):
            s.pop("required")
        elif nullable:
            kept = [r for r in required if r not in nullable]
            if kept:
                s["required"] = kept
            else:
                s.pop("required")
    for child in _structural_children(s):
        _to_v2(child)


def _meta_ref(name: str, description: str, v2: bool) -> JSON:
    if v2:
        return {"$ref": V2_REF + name, "description": description}
    return {"allOf": [{"$ref": V3_REF + name}], "description": description}


def _add_embedded(s: JSON, v2: bool) -> None:
    """addEmbeddedProperties: an embedded resource's apiVersion, kind and metadata."""
    for child in _structural_children(s):
        _add_embedded(child, v2)
    if v2 and s.get("x-kubernetes-preserve-unknown-fields"):
        return
    if s.get("x-kubernetes-embedded-resource"):
        props = s.setdefault("properties", {})
        props["apiVersion"] = {"description": _EMBEDDED_API_VERSION, "type": "string"}
        props["kind"] = {"description": _EMBEDDED_KIND, "type": "string"}
        props["metadata"] = _meta_ref(_OBJECT_META, _OBJECT_META_TEXT, v2)
        required = list(s.get("required") or [])
        for name in ("kind", "apiVersion"):
            if name not in required:
                required.append(name)
        s["required"] = required


def _type_meta() -> JSON:
    return {
        "apiVersion": {"description": _TYPE_META_API_VERSION, "type": "string"},
        "kind": {"description": _TYPE_META_KIND, "type": "string"},
    }


def crd_definitions(crd: JSON, version: str, *, v2: bool) -> dict[str, JSON]:
    """The kind and list definitions of one version of a CRD (upstream's builder)."""
    spec = crd.get("spec") or {}
    group = str(spec.get("group", ""))
    names = _crd_names(crd)
    kind = str(names.get("kind", ""))
    list_kind = str(names.get("listKind") or f"{kind}List")
    served = _crd_version(crd, version)
    schema = (served.get("schema") or {}).get("openAPIV3Schema")
    bare = (
        not isinstance(schema, dict)
        or not schema
        or _invalid_types(schema)
        or (
            v2
            and (
                schema.get("x-kubernetes-preserve-unknown-fields") is True
                or spec.get("preserveUnknownFields") is True
            )
        )
    )
    if bare:
        out: JSON = {"type": "object"}
    else:
        assert isinstance(schema, dict)
        out = _structural(schema)
        _unfold(out)
        if v2:
            _to_v2(out)
        props = out.setdefault("properties", {})
        props["metadata"] = _meta_ref(_OBJECT_META, _OBJECT_META_TEXT, v2)
        props.update(_type_meta())
        _add_embedded(out, v2)
    out["x-kubernetes-group-version-kind"] = [{"group": group, "kind": kind, "version": version}]
    selectable = [
        {"fieldPath": str(f.get("jsonPath", "")).removeprefix(".")}
        for f in served.get("selectableFields") or []
        if isinstance(f, dict)
    ]
    if selectable:
        out["x-kubernetes-selectable-fields"] = selectable
    kind_name = definition_name(group, version, kind)
    plural = str(names.get("plural", ""))
    items_ref = (V2_REF if v2 else V3_REF) + kind_name
    listed: JSON = {
        "description": f"{list_kind} is a list of {kind}",
        "properties": {
            **_type_meta(),
            "items": {
                "description": f"List of {plural}. More info: {_CONVENTIONS}",
                "items": {"$ref": items_ref},
                "type": "array",
            },
            "metadata": _meta_ref(_LIST_META, _LIST_META_TEXT, v2),
        },
        "required": ["items"],
        "type": "object",
        "x-kubernetes-group-version-kind": [
            {"group": group, "kind": list_kind, "version": version}
        ],
    }
    return {kind_name: out, definition_name(group, version, list_kind): listed}


def crd_snapshot(registry: Registry, lookup: CRDLookup | None) -> dict[tuple[str, str, str], JSON]:
    """The CRD behind each custom resource the registry serves now."""
    if lookup is None:
        return {}
    out = {}
    for r in registry:
        crd = lookup(r)
        if crd is not None:
            out[(r.group, r.version, r.plural)] = crd
    return out


def crds_from_strategies(strategy: Callable[[Resource], object]) -> CRDLookup:
    """A :data:`CRDLookup` over the API server's strategies: a custom resource is served
    by a :class:`~pyk8s.apiserver.apiextensions.strategy.CustomResourceStrategy`."""
    from pyk8s.apiserver.apiextensions.strategy import CustomResourceStrategy

    def lookup(r: Resource) -> JSON | None:
        s = strategy(r)
        return s.crd if isinstance(s, CustomResourceStrategy) else None

    return lookup


def _article(noun: str) -> str:
    """upstream's GetArticleForNoun with padding " "."""
    if noun.endswith("s") and not noun.endswith("ss"):
        return " "
    return " an " if noun[:1].lower() in "aeiou" and noun else " a "


def _custom_resource_paths(paths: Paths, r: Resource, crd: JSON, prefix: str) -> None:
    """The routes apiextensions' builder declares for one version of a CRD."""
    names = _crd_names(crd)
    kind = r.kind
    list_kind = str(names.get("listKind") or f"{kind}List")
    kind_def = definition_name(r.group, r.version, kind)
    list_def = definition_name(r.group, r.version, list_kind)
    tag = _tag(r.group, r.version)
    idp = _id_prefix(r.group, r.version)
    gvk: GVK = (r.group, r.version, kind)
    scoped = "Namespaced" if r.namespaced else ""
    ns: tuple[Param, ...] = (NAMESPACE,) if r.namespaced else ()
    name = Param("name", "path", "string", f"name of the {kind}", True)
    produces = ("application/json", "application/yaml")
    consumes = ("application/json", "application/yaml")
    patch_types = (
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/apply-patch+yaml",
    )

    def op(
        verb: str,
        action: str,
        params: tuple[Param, ...],
        responses: tuple[tuple[str, str | None], ...],
        *,
        sub: str = "",
        body: str | None = None,
        body_required: bool = True,
        op_id: str | None = None,
    ) -> Operation:
        of = f" {sub} of" if sub else ""
        if verb == "list":
            text = f"list{of} objects of kind {kind}"
        elif verb == "patch":
            text = f"partially update{of} the specified {kind}"
        elif verb == "deletecollection":
            text = f"delete collection of{of + ' a' if of else ''} {kind}"
        elif verb in ("read", "replace"):
            text = f"{verb}{of} the specified {kind}"
        else:
            text = f"{verb}{of}{_article(kind)}{kind}"
        word = sub[:1].upper() + sub[1:]
        return Operation(
            op_id or f"{verb}{idp}{scoped}{kind}{word}",
            text,
            tag,
            action,
            gvk,
            params,
            responses,
            produces,
            patch_types if action == "patch" else consumes,
            body,
            body_required,
        )

    base = f"{prefix}/{r.plural}"
    if r.namespaced:
        paths[base] = {
            "get": op(
                "list",
                "list",
                (PRETTY, *LIST_PARAMS),
                (("200", list_def), ("401", None)),
                op_id=f"list{idp}{kind}ForAllNamespaces",
            )
        }
        base = f"{prefix}/namespaces/{{namespace}}/{r.plural}"
    paths[base] = {
        "get": op("list", "list", (*ns, PRETTY, *LIST_PARAMS), (("200", list_def), ("401", None))),
        "post": op(
            "create",
            "post",
            (*ns, PRETTY, *WRITE_PARAMS),
            (("200", kind_def), ("201", kind_def), ("202", kind_def), ("401", None)),
            body=kind_def,
        ),
        "delete": op(
            "deletecollection",
            "deletecollection",
            (*ns, PRETTY, *LIST_PARAMS),
            (("200", STATUS), ("401", None)),
        ),
    }
    item = (name, *ns, PRETTY)
    paths[f"{base}/{{name}}"] = {
        "get": op("read", "get", (*item, RESOURCE_VERSION), (("200", kind_def), ("401", None))),
        "put": op(
            "replace",
            "put",
            (*item, *WRITE_PARAMS),
            (("200", kind_def), ("201", kind_def), ("401", None)),
            body=kind_def,
        ),
        "delete": op(
            "delete",
            "delete",
            (*item, *DELETE_PARAMS),
            (("200", STATUS), ("202", STATUS), ("401", None)),
            body=DELETE_OPTIONS,
            body_required=False,
        ),
        "patch": op(
            "patch",
            "patch",
            (*item, *PATCH_PARAMS),
            (("200", kind_def), ("401", None)),
            body=PATCH,
        ),
    }
    for sub, schema in (("status", kind_def), ("scale", _SCALE)):
        if sub not in r.subresources:
            continue
        paths[f"{base}/{{name}}/{sub}"] = {
            "get": op(
                "read",
                "get",
                (*item, RESOURCE_VERSION),
                (("200", schema), ("401", None)),
                sub=sub,
            ),
            "put": op(
                "replace",
                "put",
                (*item, *WRITE_PARAMS),
                (("200", schema), ("201", schema), ("401", None)),
                sub=sub,
                body=schema,
            ),
            "patch": op(
                "patch",
                "patch",
                (*item, *PATCH_PARAMS),
                (("200", schema), ("401", None)),
                sub=sub,
                body=PATCH,
            ),
        }


# ----------------------------------------------------------------------------- renderers


def _hoisted(ops: dict[str, Operation]) -> list[Param]:
    """Parameters every operation of a path shares: upstream lists them on the path."""
    common: set[Param] | None = None
    for op in ops.values():
        params = {p for p in op.params if p.name not in _OPERATION_ONLY}
        common = params if common is None else common & params
    return sorted(common or (), key=lambda p: (p.name, p.where))


def _own(op: Operation, hoisted: list[Param]) -> list[Param]:
    shared = set(hoisted)
    return sorted((p for p in op.params if p not in shared), key=lambda p: (p.name, p.where))


def _gvk_json(gvk: GVK) -> JSON:
    return {"group": gvk[0], "kind": gvk[2], "version": gvk[1]}


def _v3_param(p: Param) -> JSON:
    out: JSON = {
        "description": p.description,
        "in": p.where,
        "name": p.name,
        "schema": {"type": p.type, "uniqueItems": True},
    }
    if p.required:
        out["required"] = True
    return out


def _v3_schema_ref(schema: str) -> JSON:
    return {"type": "string"} if schema == STRING else {"$ref": V3_REF + schema}


def _v3_operation(op: Operation, hoisted: list[Param]) -> JSON:
    out: JSON = {"description": op.description, "operationId": op.op_id}
    own = _own(op, hoisted)
    if own:
        out["parameters"] = [_v3_param(p) for p in own]
    if op.body is not None:
        body: JSON = {"content": {ct: {"schema": {"$ref": V3_REF + op.body}} for ct in op.consumes}}
        if op.body_required:
            body["required"] = True
        out["requestBody"] = body
    responses: JSON = {}
    for code, schema in op.responses:
        resp: JSON = {"description": _RESPONSE_TEXT[code]}
        if schema is not None:
            resp["content"] = {ct: {"schema": _v3_schema_ref(schema)} for ct in op.produces}
        responses[code] = resp
    out["responses"] = responses
    out["tags"] = [op.tag]
    if op.action:
        out["x-kubernetes-action"] = op.action
    if op.gvk is not None:
        out["x-kubernetes-group-version-kind"] = _gvk_json(op.gvk)
    return out


def _v2_param(p: Param) -> JSON:
    out: JSON = {
        "description": p.description,
        "in": p.where,
        "name": p.name,
        "type": p.type,
        "uniqueItems": True,
    }
    if p.required:
        out["required"] = True
    return out


def _v2_operation(op: Operation, hoisted: list[Param]) -> JSON:
    out: JSON = {
        "consumes": list(op.consumes),
        "description": op.description,
        "operationId": op.op_id,
    }
    params = [_v2_param(p) for p in _own(op, hoisted)]
    if op.body is not None:
        body: JSON = {"in": "body", "name": "body", "schema": {"$ref": V2_REF + op.body}}
        if op.body_required:
            body["required"] = True
        params.insert(0, body)
    if params:
        out["parameters"] = params
    out["produces"] = list(op.produces)
    responses: JSON = {}
    for code, schema in op.responses:
        resp: JSON = {"description": _RESPONSE_TEXT[code]}
        if schema is not None:
            resp["schema"] = {"type": "string"} if schema == STRING else {"$ref": V2_REF + schema}
        responses[code] = resp
    out["responses"] = responses
    out["schemes"] = ["https"]
    out["tags"] = [op.tag]
    if op.action:
        out["x-kubernetes-action"] = op.action
    if op.gvk is not None:
        out["x-kubernetes-group-version-kind"] = _gvk_json(op.gvk)
    return out


def _render_paths(paths: Paths, v3: bool) -> JSON:
    out: JSON = {}
    for path, ops in paths.items():
        hoisted = _hoisted(ops)
        item: JSON = {}
        for method in _METHOD_ORDER:
            if method in ops:
                op = ops[method]
                item[method] = _v3_operation(op, hoisted) if v3 else _v2_operation(op, hoisted)
        if hoisted:
            item["parameters"] = [(_v3_param if v3 else _v2_param)(p) for p in hoisted]
        out[path] = item
    return out


def _referenced(paths: Paths) -> set[str]:
    names: set[str] = set()
    for ops in paths.values():
        for op in ops.values():
            if op.body is not None:
                names.add(op.body)
            names.update(s for _, s in op.responses if s is not None and s != STRING)
    return names


_BEARER = {
    "description": "Bearer Token authentication",
    "in": "header",
    "name": "authorization",
    "type": "apiKey",
}
_INFO = {"title": "Kubernetes", "version": KUBERNETES_VERSION}


def build_v3(
    registry: Registry, definitions: _Definitions | None = None, crds: CRDs | None = None
) -> dict[str, JSON]:
    """Every OpenAPI v3 document, keyed as the /openapi/v3 index keys them.

    ``crds`` names the CRD behind each custom resource (see :func:`crd_snapshot`); a
    group-version of custom resources only is the document apiextensions builds for it.
    """
    crds = crds or {}
    defs = definitions or _build_definitions(registry, crds)
    docs: dict[str, JSON] = {}
    per_key: dict[str, Paths] = _discovery_paths(registry, crds)
    custom_only: set[str] = set()
    for group, versions in registry.group_versions().items():
        for version in versions:
            key = gv_key(group, version)
            per_key[key] = group_version_paths(registry, group, version, crds)
            if all(
                (group, version, r.plural) in crds
                for r in registry.in_group_version(group, version)
            ):
                custom_only.add(key)
    for key in sorted(per_key):
        paths = per_key[key]
        components: JSON = {"schemas": {n: defs.v3[n] for n in defs.closure(_referenced(paths))}}
        if key not in custom_only:
            components["securitySchemes"] = {"BearerToken": _BEARER}
        docs[key] = {
            "components": components,
            "info": _CRD_INFO if key in custom_only else _INFO,
            "openapi": "3.0.0",
            "paths": _render_paths(paths, v3=True),
        }
    return docs


def build_v2(
    registry: Registry, definitions: _Definitions | None = None, crds: CRDs | None = None
) -> JSON:
    """The Swagger 2.0 document of everything served (upstream's /openapi/v2), custom
    resources merged in as upstream's aggregator does."""
    crds = crds or {}
    defs = definitions or _build_definitions(registry, crds)
    paths: Paths = {}
    for extra in _discovery_paths(registry, crds).values():
        paths.update(extra)
    for group, versions in registry.group_versions().items():
        for version in versions:
            paths.update(group_version_paths(registry, group, version, crds))
    return {
        "definitions": {n: defs.v2[n] for n in defs.closure(_referenced(paths))},
        "info": _INFO,
        "paths": _render_paths(dict(sorted(paths.items())), v3=False),
        "security": [{"BearerToken": []}],
        "securityDefinitions": {"BearerToken": _BEARER},
        "swagger": "2.0",
    }


# ------------------------------------------------------------- v2 as gnostic's protobuf
#
# kubectl (client-go's OpenAPISchema) asks for /openapi/v2 only as
# application/com.github.proto-openapi.spec.v2@v1.0+protobuf and decodes it into gnostic's
# openapi.v2.Document. The field numbers below are that proto's (OpenAPIv2.proto); vendor
# extensions travel as YAML text, and JSON is YAML.


def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _ld(num: int, payload: bytes) -> bytes:
    """A length-delimited field (string, bytes, message)."""
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def _s(num: int, value: str) -> bytes:
    return _ld(num, value.encode()) if value else b""


def _b(num: int, value: bool) -> bytes:
    return _varint(num << 3) + b"\x01" if value else b""


def _i(num: int, value: int) -> bytes:
    return _varint(num << 3) + _varint(value) if value else b""


def _d(num: int, value: float) -> bytes:
    return _varint(num << 3 | 1) + struct.pack("<d", value) if value else b""


def _json_as_yaml(value: Any) -> str:
    # JSON with a space after every separator is YAML to every parser gnostic's users use
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _any(num: int, value: Any) -> bytes:
    """gnostic's Any message: the value as YAML (field 2)."""
    return _ld(num, _s(2, _json_as_yaml(value)))


def _extensions(num: int, obj: JSON) -> bytes:
    return b"".join(
        _ld(num, _s(1, k) + _any(2, v)) for k, v in sorted(obj.items()) if k.startswith("x-")
    )


_SCHEMA_STRINGS = {
    "$ref": 1,
    "format": 2,
    "title": 3,
    "description": 4,
    "pattern": 13,
    "discriminator": 26,
}
_SCHEMA_DOUBLES = {"multipleOf": 6, "maximum": 7, "minimum": 9}
_SCHEMA_BOOLS = {"exclusiveMaximum": 8, "exclusiveMinimum": 10, "uniqueItems": 16, "readOnly": 27}
_SCHEMA_INTS = {
    "maxLength": 11,
    "minLength": 12,
    "maxItems": 14,
    "minItems": 15,
    "maxProperties": 17,
    "minProperties": 18,
}


def _pb_schema(s: JSON) -> bytes:
    fields: list[tuple[int, bytes]] = []
    for key, value in s.items():
        if key in _SCHEMA_STRINGS:
            fields.append((_SCHEMA_STRINGS[key], _s(_SCHEMA_STRINGS[key], value)))
        elif key in _SCHEMA_DOUBLES:
            fields.append((_SCHEMA_DOUBLES[key], _d(_SCHEMA_DOUBLES[key], float(value))))
        elif key in _SCHEMA_BOOLS:
            fields.append((_SCHEMA_BOOLS[key], _b(_SCHEMA_BOOLS[key], bool(value))))
        elif key in _SCHEMA_INTS:
            fields.append((_SCHEMA_INTS[key], _i(_SCHEMA_INTS[key], int(value))))
        elif key == "default":
            fields.append((5, _any(5, value)))
        elif key == "example":
            fields.append((30, _any(30, value)))
        elif key == "externalDocs":  # ExternalDocs: description, url
            docs = _s(1, value.get("description", "")) + _s(2, value.get("url", ""))
            fields.append((29, _ld(29, docs)))
        elif key == "required":
            fields.append((19, b"".join(_s(19, v) for v in value)))
        elif key == "enum":
            fields.append((20, b"".join(_any(20, v) for v in value)))
        elif key == "additionalProperties":
            inner = (
                _ld(1, _pb_schema(value))
                if isinstance(value, dict)
                else _varint(2 << 3) + (b"\x01" if value else b"\x00")
            )
            fields.append((21, _ld(21, inner)))
        elif key == "type":
            types = value if isinstance(value, list) else [value]
            fields.append((22, _ld(22, b"".join(_s(1, t) for t in types))))
        elif key == "items":
            items = value if isinstance(value, list) else [value]
            fields.append((23, _ld(23, b"".join(_ld(1, _pb_schema(i)) for i in items))))
        elif key == "allOf":
            fields.append((24, b"".join(_ld(24, _pb_schema(i)) for i in value)))
        elif key == "properties":
            named = b"".join(
                _ld(1, _s(1, n) + _ld(2, _pb_schema(p))) for n, p in sorted(value.items())
            )
            fields.append((25, _ld(25, named)))
        elif key.startswith("x-"):
            fields.append((31, _extensions(31, {key: value})))
        else:
            raise ValueError(f"no protobuf field for schema keyword {key!r}")
    fields.sort(key=lambda f: f[0])
    return b"".join(b for _, b in fields)


def _pb_param(p: JSON) -> bytes:
    if p["in"] == "body":
        body = (
            _s(1, p.get("description", ""))
            + _s(2, p["name"])
            + _s(3, "body")
            + _b(4, p.get("required", False))
            + _ld(5, _pb_schema(p["schema"]))
        )
        parameter = _ld(1, body)
    else:
        common = (
            _b(1, p.get("required", False))
            + _s(2, p["in"])
            + _s(3, p.get("description", ""))
            + _s(4, p["name"])
        )
        if p["in"] == "path":  # PathParameterSubSchema
            sub = common + _s(5, p["type"]) + _b(19, p.get("uniqueItems", False))
            parameter = _ld(2, _ld(4, sub))
        else:  # QueryParameterSubSchema
            sub = common + _s(6, p["type"]) + _b(20, p.get("uniqueItems", False))
            parameter = _ld(2, _ld(3, sub))
    return _ld(1, parameter)  # ParametersItem.parameter


def _pb_operation(op: JSON) -> bytes:
    out = b"".join(_s(1, t) for t in op.get("tags", ()))
    out += _s(3, op.get("description", "")) + _s(5, op.get("operationId", ""))
    out += b"".join(_s(6, t) for t in op.get("produces", ()))
    out += b"".join(_s(7, t) for t in op.get("consumes", ()))
    out += b"".join(_ld(8, _pb_param(p)) for p in op.get("parameters", ()))
    codes = b""
    for code, resp in op.get("responses", {}).items():
        response = _s(1, resp.get("description", ""))
        if "schema" in resp:
            response += _ld(2, _ld(1, _pb_schema(resp["schema"])))  # SchemaItem.schema
        codes += _ld(1, _s(1, code) + _ld(2, _ld(1, response)))
    out += _ld(9, codes)
    out += b"".join(_s(10, s) for s in op.get("schemes", ()))
    return out + _extensions(13, op)


_PATH_ITEM_FIELDS = {
    "get": 2,
    "put": 3,
    "post": 4,
    "delete": 5,
    "options": 6,
    "head": 7,
    "patch": 8,
}


def encode_v2_protobuf(doc: JSON) -> bytes:
    """A Swagger 2.0 document as gnostic's ``openapi.v2.Document`` protobuf."""
    out = _s(1, doc.get("swagger", "2.0"))
    info = doc.get("info", {})
    out += _ld(2, _s(1, info.get("title", "")) + _s(2, info.get("version", "")))
    paths = b""
    for path, item in doc.get("paths", {}).items():
        body = b""
        for method, num in sorted(_PATH_ITEM_FIELDS.items(), key=lambda kv: kv[1]):
            if method in item:
                body += _ld(num, _pb_operation(item[method]))
        body += b"".join(_ld(9, _pb_param(p)) for p in item.get("parameters", ()))
        paths += _ld(2, _s(1, path) + _ld(2, body))
    out += _ld(8, paths)
    definitions = b"".join(
        _ld(1, _s(1, name) + _ld(2, _pb_schema(schema)))
        for name, schema in doc.get("definitions", {}).items()
    )
    out += _ld(9, definitions)
    for requirement in doc.get("security", ()):
        named = b"".join(
            _ld(1, _s(1, k) + _ld(2, b"".join(_s(1, v) for v in vs)))
            for k, vs in requirement.items()
        )
        out += _ld(12, named)
    security_defs = b""
    for name, sd in doc.get("securityDefinitions", {}).items():
        api_key = (
            _s(1, sd.get("type", ""))
            + _s(2, sd.get("name", ""))
            + _s(3, sd.get("in", ""))
            + _s(4, sd.get("description", ""))
        )
        security_defs += _ld(1, _s(1, name) + _ld(2, _ld(2, api_key)))
    if security_defs:
        out += _ld(13, security_defs)
    return out


# ---------------------------------------------------------------------- cached documents


def _dumps(doc: JSON) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def content_hash(data: bytes) -> str:
    """Upstream's ETag and ``?hash=``: SHA-512 of the bytes, upper-case hex."""
    return hashlib.sha512(data).hexdigest().upper()


@dataclass(frozen=True, slots=True)
class Blob:
    data: bytes
    etag: str  # unquoted hash


class Documents:
    """The documents of one registry, each built on first use and then kept as bytes."""

    def __init__(self, registry: Registry, crds: CRDs | None = None) -> None:
        self.registry = registry
        #: the registry generation these documents describe (rebuilt when it moves)
        self.generation = registry.generation
        #: the CRDs behind the custom resources, as they were at that generation
        self.crds: CRDs = dict(crds or {})
        self.built_at = time.time()
        self._lock = threading.Lock()
        self._defs: _Definitions | None = None
        self._v3: dict[str, Blob] | None = None
        self._v3_index: Blob | None = None
        self._v2_json: Blob | None = None
        self._v2_pb: Blob | None = None

    @property
    def has_v3(self) -> bool:
        return self._v3_index is not None

    @property
    def has_v2_json(self) -> bool:
        return self._v2_json is not None

    @property
    def has_v2_protobuf(self) -> bool:
        return self._v2_pb is not None

    def _definitions(self) -> _Definitions:
        if self._defs is None:
            self._defs = _build_definitions(self.registry, self.crds)
        return self._defs

    def v3(self) -> dict[str, Blob]:
        with self._lock:
            if self._v3 is None:
                docs = build_v3(self.registry, self._definitions(), self.crds)
                blobs = {}
                for key, doc in docs.items():
                    data = _dumps(doc)
                    blobs[key] = Blob(data, content_hash(data))
                self._v3 = blobs
            return self._v3

    def v3_index(self) -> Blob:
        blobs = self.v3()
        with self._lock:
            if self._v3_index is None:
                index = {
                    "paths": {
                        key: {"serverRelativeURL": v3_url(key, blob.etag)}
                        for key, blob in blobs.items()
                    }
                }
                data = _dumps(index)
                self._v3_index = Blob(data, content_hash(data))
            return self._v3_index

    def v2_json(self) -> Blob:
        with self._lock:
            if self._v2_json is None:
                data = _dumps(build_v2(self.registry, self._definitions(), self.crds))
                self._v2_json = Blob(data, content_hash(data))
            return self._v2_json

    def v2_protobuf(self) -> Blob:
        source = self.v2_json()
        with self._lock:
            if self._v2_pb is None:
                data = encode_v2_protobuf(orjson.loads(source.data))
                self._v2_pb = Blob(data, content_hash(data))
            return self._v2_pb


def v3_url(key: str, etag: str) -> str:
    return f"/openapi/v3/{key}?hash={etag}"


_CACHE: weakref.WeakKeyDictionary[Registry, Documents] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def documents(registry: Registry, crds: CRDLookup | None = None) -> Documents:
    """The (shared, lazily built) documents of a registry.

    ``crds`` finds the CRD behind a custom resource; it is asked (on the caller's thread)
    only when the registry has changed since the documents were made.
    """
    with _CACHE_LOCK:
        docs = _CACHE.get(registry)
        if docs is None or docs.generation != registry.generation:
            docs = _CACHE[registry] = Documents(registry, crd_snapshot(registry, crds))
        return docs


# --------------------------------------------------------------------------------- HTTP


def _accepts(header: str) -> list[tuple[str, str]]:
    """(type, subtype) clauses of an Accept header, most preferred first (goautoneg)."""
    clauses: list[tuple[float, int, int, str, str]] = []
    for index, part in enumerate((header or "*/*").split(",")):
        media, *params = [p.strip() for p in part.split(";")]
        if not media:
            continue
        q = 1.0
        for param in params:
            k, _, v = param.partition("=")
            if k.strip() == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        typ, _, sub = media.partition("/")
        specificity = (typ != "*") + (sub not in ("*", ""))
        clauses.append((-q, -specificity, index, typ, sub or "*"))
    clauses.sort()
    return [(typ, sub) for q, _, _, typ, sub in clauses if q < 0]


def _negotiate(request: web.Request, offers: list[tuple[str, str]]) -> str | None:
    """The first offered ``application/<subtype>`` the client accepts, or None."""
    for typ, sub in _accepts(request.headers.get("Accept", "")):
        for otype, osub in offers:
            if typ in (otype, "*") and sub in (osub, "*"):
                return osub
    return None


def _not_modified(request: web.Request, etag: str) -> bool:
    header = request.headers.get("If-None-Match")
    if not header:
        return False
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return f'"{etag}"' in tags or "*" in tags


def _respond(
    request: web.Request,
    blob: Blob,
    content_type: str,
    built_at: float,
    headers: dict[str, str] | None = None,
) -> web.Response:
    h = {
        "ETag": f'"{blob.etag}"',
        "Last-Modified": formatdate(built_at, usegmt=True),
        **(headers or {}),
    }
    if _not_modified(request, blob.etag):
        return web.Response(status=304, headers=h)
    resp = web.Response(body=blob.data, headers=h)
    resp.headers["Content-Type"] = content_type
    return resp


async def _built(ready: bool, get: Callable[[], Any]) -> Any:
    """Build off the event loop the first time (a few hundred ms); later, just return."""
    return get() if ready else await asyncio.to_thread(get)


async def serve(
    request: web.Request,
    registry: Registry,
    parts: tuple[str, ...],
    crds: CRDLookup | None = None,
) -> web.StreamResponse:
    """Answer a GET under /openapi: the v3 index, a v3 document, or the v2 document.

    ``crds`` maps a served resource to the CustomResourceDefinition behind it (None for
    built-in resources), so custom resources are described from their schemas."""
    docs = documents(registry, crds)
    if parts == ("openapi", "v2"):
        subtype = _negotiate(
            request, [("application", "json"), *[("application", s) for s in _V2_PB_SUBTYPES]]
        )
        if subtype is None:
            raise errors.not_acceptable(
                f"only the following media types are accepted: application/json, {PB_V2_CT}"
            )
        vary = {"Vary": "Accept"}
        if subtype == "json":
            blob = await _built(docs.has_v2_json, docs.v2_json)
            return _respond(request, blob, JSON_CT, docs.built_at, vary)
        blob = await _built(docs.has_v2_protobuf, docs.v2_protobuf)
        return _respond(request, blob, PB_V2_CT, docs.built_at, vary)
    if parts[:2] != ("openapi", "v3"):
        raise errors.no_such_resource()
    if len(parts) == 2:
        index = await _built(docs.has_v3, docs.v3_index)
        return _respond(request, index, JSON_CT, docs.built_at)
    key = "/".join(parts[2:])
    blobs: dict[str, Blob] = await _built(docs.has_v3, docs.v3)
    blob = blobs.get(key)
    if blob is None:
        raise errors.no_such_resource()
    if _negotiate(request, [("application", "json")]) is None:
        raise errors.not_acceptable("only the following media types are accepted: application/json")
    headers = {"Vary": "Accept"}
    wanted = request.query.get("hash")
    if wanted:
        if wanted != blob.etag:
            return web.Response(status=301, headers={"Location": v3_url(key, blob.etag)})
        headers["Cache-Control"] = "public, immutable"
        headers["Expires"] = formatdate(time.time() + 365 * 24 * 3600, usegmt=True)
    return _respond(request, blob, JSON_CT, docs.built_at, headers)
