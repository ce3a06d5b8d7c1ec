"""Request bodies in, responses out: the content types kubectl and client libraries use.

Bodies may be JSON, YAML or Kubernetes protobuf (``kubectl create -f`` sends JSON, kubectl's
typed commands such as ``kubectl create namespace`` send protobuf, curl users send YAML);
patches come in the three patch media types; anything else is 415. Bodies over 3 MiB are
413, as upstream's limit. Malformed bodies are 400 with the decoder's message, so the
user sees what is wrong before anything is written.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import orjson
import yaml
from aiohttp import web

from pyk8s.api import errors, protobuf
from pyk8s.api.gofmt import json_kind
from pyk8s.api.validation import decode_error

JSON = dict[str, Any]

MAX_BODY = 3 * 1024 * 1024

JSON_TYPES = ("application/json", "*/*", "")
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")
PROTOBUF = protobuf.MEDIA_TYPE  # kubectl's typed clients (create namespace|secret|..., run)
PATCH_JSON = "application/json-patch+json"
PATCH_MERGE = "application/merge-patch+json"
PATCH_STRATEGIC = "application/strategic-merge-patch+json"
PATCH_APPLY = "application/apply-patch+yaml"
PATCH_TYPES = (PATCH_JSON, PATCH_MERGE, PATCH_STRATEGIC, PATCH_APPLY)

try:
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader


def json_response(
    data: Any,
    status: int = 200,
    *,
    headers: dict[str, str] | None = None,
    warnings: list[str] | None = None,
    content_type: str = "application/json",
) -> web.Response:
    """A JSON answer (``data`` may be ready-made bytes) ending with a newline, as
    kube-apiserver's encoder writes it (bytes that already end with it are sent as they
    are: a large list is not copied again); ``warnings`` become upstream's
    ``Warning: 299 - "…"`` headers."""
    if not isinstance(data, bytes):
        body = orjson.dumps(data, option=orjson.OPT_APPEND_NEWLINE)
    elif data.endswith(b"\n"):
        body = data
    else:
        body = data + b"\n"
    resp = web.Response(body=body, status=status, headers=headers)
    resp.headers["Content-Type"] = content_type
    for w in warnings or ():
        resp.headers.add("Warning", '299 - "' + w.replace('"', '\\"') + '"')
    return resp


def status_response(err: errors.StatusError) -> web.Response:
    """A failure Status; ``retryAfterSeconds`` in its details also sets ``Retry-After``."""
    retry = (err.details or {}).get("retryAfterSeconds")
    headers = {"Retry-After": str(retry)} if retry else None
    return json_response(err.status(), err.code, headers=headers, warnings=err.warnings)


async def read_body(request: web.Request) -> bytes:
    """The whole request body (413 beyond 3 MiB). ``StreamReader.read(n)`` may return
    fewer bytes than sent, so the body is read to its end, never in one partial read."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise errors.too_large()
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise errors.too_large() from None
    if len(body) > MAX_BODY:
        raise errors.too_large()
    return body


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def decode_body(body: bytes, content_type: str | None, *, patch: bool = False) -> Any:
    """The request body as data; StatusError 400/413/415 when it cannot be."""
    if len(body) > MAX_BODY:
        raise errors.too_large()
    mt = media_type(content_type)
    if patch:
        if mt not in PATCH_TYPES:
            raise errors.unsupported_media_type(mt)
    elif mt not in JSON_TYPES and mt not in YAML_TYPES and mt != PROTOBUF:
        raise errors.unsupported_media_type(mt)
    if not body.strip():
        raise errors.bad_request("the body of the request was empty")
    if mt == PROTOBUF:
        return protobuf.decode_object(body)
    if mt == PATCH_APPLY and body.lstrip()[:1] == b"{":
        # kubectl and client libraries send the configuration as JSON, which is YAML;
        # orjson reads it 10x faster than the YAML parser
        with contextlib.suppress(orjson.JSONDecodeError):
            return orjson.loads(body)
    if mt in YAML_TYPES or mt == PATCH_APPLY:
        try:
            return yaml.load(body, Loader=_Loader)
        except yaml.YAMLError as err:
            raise errors.bad_request(f"error decoding YAML: {err}") from err
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise errors.bad_request(f"couldn't get version/kind; json parse error: {err}") from err


def check_type_meta(data: JSON) -> None:
    """400 unless ``apiVersion`` and ``kind`` are strings (or absent): upstream reads them
    first, into a struct of two strings, before it knows what the body is."""
    for key in ("apiVersion", "kind"):
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            raise errors.bad_request(
                "couldn't get version/kind; json parse error: json: cannot unmarshal "
                f"{json_kind(value)} into Go struct field .{key} of type string"
            )


def check_types(data: JSON, group: str, version: str, kind: str, *, patched: bool = False) -> None:
    """400 when a body does not decode as the built-in ``kind``: upstream's decoder error,
    wrapped as its create and update handlers wrap it, before anything else reads the
    body (defaulting, admission, validation can count on the types). ``patched``: the
    result of a patch, which upstream's patch handler answers 422 on the field
    ``patch``. Custom resources are checked by their structural schema instead."""
    problem = decode_error(group, version, kind, data)
    if problem is None:
        return
    if patched:
        value = orjson.dumps(data).decode()
        raise errors.invalid_object("", "", [errors.invalid("patch", value, problem)])
    raise errors.bad_request(
        f'{data.get("kind") or kind} in version "{version}" cannot be handled as a '
        f"{kind}: {problem}"
    )


@functools.lru_cache(maxsize=256)
def accept_entries(accept: str | None) -> tuple[tuple[str, dict[str, str]], ...]:
    """An ``Accept`` header as (media type, parameters) in the client's order, e.g.
    ``application/json;as=Table;v=v1;g=meta.k8s.io`` → ("application/json", {as, v, g}).
    Clients send a handful of distinct headers, each asked several times a request: the
    answers are kept (shared: do not change them)."""
    out = []
    for part in (accept or "").split(","):
        params = {
            k.strip(): v.strip() for k, _, v in (p.partition("=") for p in part.split(";")[1:])
        }
        out.append((media_type(part), params))
    return tuple(out)


def wants_table(accept: str | None) -> bool:
    """kubectl asks ``application/json;as=Table;v=v1;g=meta.k8s.io`` for `kubectl get`."""
    return any(
        params.get("as") == "Table" and params.get("g") == "meta.k8s.io"
        for _, params in accept_entries(accept)
    )


#: the metadata-only kinds (controller-runtime's and the garbage collector's lists and
#: watches ask for them) and the meta.k8s.io versions they are served at
PARTIAL_OBJECT_METADATA = "PartialObjectMetadata"
PARTIAL_OBJECT_METADATA_LIST = "PartialObjectMetadataList"
_METADATA_VERSIONS = ("v1", "v1beta1")


def wants_metadata(accept: str | None) -> tuple[str, str] | None:
    """(kind, apiVersion) when the client asks for metadata only, e.g.
    ``application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1``."""
    for _, params in accept_entries(accept):
        kind = params.get("as")
        if (
            kind in (PARTIAL_OBJECT_METADATA, PARTIAL_OBJECT_METADATA_LIST)
            and params.get("g") == "meta.k8s.io"
            and params.get("v") in _METADATA_VERSIONS
        ):
            return kind, "meta.k8s.io/" + params["v"]
    return None


def partial_metadata(obj: JSON, api_version: str) -> JSON:
    """An object as PartialObjectMetadata: its kind, apiVersion and metadata alone."""
    return {
        "kind": PARTIAL_OBJECT_METADATA,
        "apiVersion": api_version,
        "metadata": obj.get("metadata") or {},
    }


def go_type_name(group: str, kind: str, *, custom: bool) -> str:
    """How upstream's 406 names the object it could not turn into the requested kind."""
    if custom:
        return "*unstructured.Unstructured"
    return f"*{group.split('.', 1)[0] or 'core'}.{kind}"
