"""Custom resource conversion through the CRD's webhook (``conversion.strategy: Webhook``).

Why this exists: a CRD serving several versions stores one of them; every read in another
version, and every write in a version other than the storage one, goes through a
conversion. With the ``Webhook`` strategy the API server sends the objects to the user's
webhook in a ``ConversionReview`` and must not trust what comes back. This module does
that exchange as upstream's ``webhookConverter`` (apiextensions-apiserver v1.32) does:

* only the objects not already at the desired version are sent, in one review, as
  ``apiextensions.k8s.io/v1`` (or ``v1beta1`` when the CRD's ``conversionReviewVersions``
  names that first), with a fresh ``uid``; the call has upstream's fixed 30 s timeout;
* the answer must be a ``v1`` ConversionReview with the same ``uid`` (``v1beta1`` answers
  are not checked for either, as upstream), ``result.status: Success`` (else the result's
  message is the error), as many ``convertedObjects`` as were sent, each at the desired
  ``apiVersion`` with the same kind, name, namespace and UID;
* the webhook may change labels and annotations only (they are validated when changed);
  every other metadata field is restored from the original object.

Every failure is a :class:`ConversionError`: a 500 ``StatusError`` with upstream's text,
e.g. ``conversion webhook for stable.example.com/v1, Kind=CronTab failed: Post
"https://conv.ns.svc:443/convert?timeout=30s": dial tcp 10.42.0.7:8443: connect:
connection refused``. Its reason is empty, which is what a read answers upstream (kubectl
prints ``Error from server: …``); writes answer ``Internal error occurred: …``, so the
write path raises :meth:`ConversionError.internal` instead.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any, Final

import orjson

from pyk8s.api import errors
from pyk8s.api.gofmt import go_quote, go_type, json_kind
from pyk8s.api.validation.meta import validate_annotations, validate_labels
from pyk8s.apiserver.webhook import (
    DEFAULT_TIMEOUT,
    WebhookCallError,
    WebhookClient,
    WebhookConfigError,
)

__all__ = ["REVIEW_GROUP", "ConversionError", "convert", "review_version"]

JSON = dict[str, Any]

REVIEW_GROUP: Final = "apiextensions.k8s.io"
_SUPPORTED: Final = ("v1beta1", "v1")


class ConversionError(errors.StatusError):
    """A conversion webhook call failed or its answer was refused (HTTP 500)."""

    def __init__(self, message: str) -> None:
        super().__init__(500, "", message)

    def internal(self) -> errors.StatusError:
        """The same failure as a write answers it (``Internal error occurred: …``)."""
        return errors.internal(self.message)


# --------------------------------------------------------------------------- Go's renderings


def _split_api_version(api_version: str) -> tuple[str, str] | None:
    """Go's ``schema.ParseGroupVersion``: (group, version), or None when unparsable."""
    if not api_version:
        return ("", "")
    parts = api_version.split("/")
    if len(parts) == 1:
        return ("", parts[0])
    if len(parts) == 2:
        return (parts[0], parts[1])
    return None


def _gv(api_version: str) -> str:
    """``GroupVersion.String()`` of an apiVersion (empty when unparsable)."""
    gv = _split_api_version(api_version)
    if gv is None:
        return ""
    group, version = gv
    return f"{group}/{version}" if group else version


def _gvk(api_version: str, kind: str) -> str:
    """``GroupVersionKind.String()``: ``group/version, Kind=kind``."""
    gv = _split_api_version(api_version)
    if gv is None:
        return "/, Kind="
    return f"{gv[0]}/{gv[1]}, Kind={kind}"


def _meta(obj: JSON) -> JSON:
    m = obj.get("metadata")
    return m if isinstance(m, dict) else {}


def _str(v: Any) -> str:
    return v if isinstance(v, str) else ""


# --------------------------------------------------------------------------- the review


def review_version(crd: JSON) -> str | None:
    """The ConversionReview version to send: the first of the CRD's list we speak."""
    webhook = ((crd.get("spec") or {}).get("conversion") or {}).get("webhook") or {}
    for v in webhook.get("conversionReviewVersions") or ():
        if v in _SUPPORTED:
            return str(v)
    return None


def _build_review(version: str, uid: str, desired: str, objects: list[JSON]) -> JSON:
    # Upstream sends an empty response stanza along with the request; keep the shape.
    return {
        "kind": "ConversionReview",
        "apiVersion": f"{REVIEW_GROUP}/{version}",
        "request": {"uid": uid, "desiredAPIVersion": desired, "objects": objects},
        "response": {"uid": "", "convertedObjects": None, "result": {"metadata": {}}},
    }


def _converted_objects(version: str, uid: str, review: JSON) -> list[Any]:
    """The answer's convertedObjects, or the error text upstream's checks produce."""
    response = review.get("response")
    if response is not None and not isinstance(response, dict):
        raise _Refused(
            f"json: cannot unmarshal {json_kind(response)} into Go struct field "
            f"ConversionReview.response of type {version}.ConversionResponse"
        )
    if version == "v1":
        want = f"{REVIEW_GROUP}/v1, Kind=ConversionReview"
        got = _gvk(_str(review.get("apiVersion")), _str(review.get("kind")))
        if got != want:
            raise _Refused(f"expected webhook response of {want}, got {got}")
    if response is None:
        raise _Refused("no response provided")
    if version == "v1" and response.get("uid") != uid:
        raise _Refused(
            f"expected response.uid={go_quote(uid)}, got {go_quote(_str(response.get('uid')))}"
        )
    result = response.get("result")
    result = result if isinstance(result, dict) else {}
    status = _str(result.get("status"))
    if status != "Success":
        message = _str(result.get("message"))
        raise _Refused(message or f"response.result.status was '{status}', not 'Success'")
    converted = response.get("convertedObjects")
    if converted is None:
        return []
    if not isinstance(converted, list):
        raise _Refused(
            f"json: cannot unmarshal {json_kind(converted)} into Go struct field "
            "ConversionReview.response.convertedObjects of type []runtime.RawExtension"
        )
    return converted


class _Refused(Exception):
    """An answer check failed; the text is upstream's, before the ``conversion …`` prefix."""


def _as_object(item: Any) -> JSON:
    """``Unstructured.UnmarshalJSON`` of one converted object."""
    if item is None:
        raise _Refused("Object 'Kind' is missing in 'null'")
    if not isinstance(item, dict):
        raise _Refused(
            f"json: cannot unmarshal {json_kind(item)} into Go value of type "
            "map[string]interface {}"
        )
    if not _str(item.get("kind")):
        raise _Refused(f"Object 'Kind' is missing in '{orjson.dumps(item).decode()}'")
    return item


def _check_identity(original: JSON, converted: JSON) -> None:
    """Upstream's ``validateConvertedObject``: kind, name, namespace and UID must stay."""
    om, cm = _meta(original), _meta(converted)
    for what, a, b in (
        ("kind", _str(original.get("kind")), _str(converted.get("kind"))),
        ("name", _str(om.get("name")), _str(cm.get("name"))),
        ("namespace", _str(om.get("namespace")), _str(cm.get("namespace"))),
        ("UID", _str(om.get("uid")), _str(cm.get("uid"))),
    ):
        if a != b:
            raise _Refused(f"must have the same {what}: {a} != {b}")


def _restore_metadata(original: JSON, converted: JSON) -> JSON:
    """Upstream's ``restoreObjectMeta``: the original metadata plus the answer's labels and
    annotations (validated when they changed). Returns a new object."""
    if "metadata" not in converted:
        raise _Refused("missing metadata in converted object")
    response_meta = converted["metadata"]
    if not isinstance(response_meta, dict):
        raise _Refused(f"invalid metadata of type {go_type(response_meta)} in converted object")
    out = dict(converted)
    restored = copy.deepcopy(original["metadata"]) if "metadata" in original else {}
    if not isinstance(restored, dict):
        raise _Refused(f"invalid metadata of type {go_type(restored)} in input object")
    for fld in ("labels", "annotations"):
        value = response_meta.get(fld)
        if value is None:
            restored.pop(fld, None)
            continue
        if not isinstance(value, dict):
            raise _Refused(f"invalid metadata.{fld} of type {go_type(value)} in converted object")
        before = restored.get(fld)
        if before is not None and not isinstance(before, dict):
            raise _Refused(f"invalid metadata.{fld} of type {go_type(before)} in original object")
        before = before or {}
        changed = len(before) != len(value)
        for k, v in value.items():
            if not isinstance(v, str):
                raise _Refused(
                    f"metadata.{fld}[{k}] must be a string, but is {go_type(v)} in converted object"
                )
            if before.get(k) != v:
                changed = True
        if changed:
            errs = (
                validate_labels(value, "metadata.labels")
                if fld == "labels"
                else validate_annotations(value, "metadata.annotation")
            )
            if errs:
                raise _Refused(errors.aggregate_message([str(e) for e in errs]))
        restored[fld] = value
    out["metadata"] = restored
    return out


async def convert(
    client: WebhookClient,
    crd: JSON,
    objects: list[JSON],
    desired_api_version: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - also sent to the webhook
    as_list: bool | None = None,
) -> list[JSON]:
    """``objects`` at ``desired_api_version``, converted by ``crd``'s webhook.

    Objects already at that version are returned untouched and not sent; the result has
    the input's order. One object is converted with upstream's single-object messages;
    a list with its list messages (the list named ``<group>/<desired version>,
    Kind=<Kind>List``, as the CRD storage builds it). ``as_list`` says which (a LIST
    answer of one item is still a list); by default, anything but one object is a list.
    The inputs are not modified. Raises :class:`ConversionError`.
    """
    crd_name = _str(_meta(crd).get("name"))
    webhook = ((crd.get("spec") or {}).get("conversion") or {}).get("webhook") or {}
    client_config = webhook.get("clientConfig") or {}
    is_list = len(objects) != 1 if as_list is None else as_list or not objects
    if is_list:
        kind = _str(objects[0].get("kind")) if objects else ""
        subject = _gvk(desired_api_version, f"{kind}List")
    else:
        subject = _gvk(_str(objects[0].get("apiVersion")), _str(objects[0].get("kind")))

    version = review_version(crd)
    if version is None:
        raise ConversionError("no supported conversion review versions")
    if not is_list and set(objects[0]) == {"apiVersion", "kind"}:
        # Upstream's special case: an empty object converts by changing its apiVersion.
        return [{**objects[0], "apiVersion": desired_api_version}]
    pending = [i for i, o in enumerate(objects) if o.get("apiVersion") != desired_api_version]
    if not pending:
        return list(objects)

    uid = str(uuid.uuid4())
    review = _build_review(version, uid, desired_api_version, [objects[i] for i in pending])
    try:
        answer = await client.post(
            client_config,
            "convert",
            review,
            timeout=timeout,
            webhook_name=f"conversion_webhook_for_{crd_name}",
            client_timeout=True,
        )
    except WebhookConfigError as e:
        raise ConversionError(e.detail) from None
    except WebhookCallError as e:
        raise ConversionError(f"conversion webhook for {subject} failed: {e.detail}") from None

    try:
        converted = _converted_objects(version, uid, answer)
    except _Refused as e:
        raise ConversionError(f"conversion webhook for {subject} failed: {e}") from None
    if len(converted) != len(pending):
        raise ConversionError(
            f"conversion webhook for {subject} returned {len(converted)} objects, "
            f"expected {len(pending)}"
        )

    want_gv = _gv(desired_api_version)
    out = list(objects)
    for n, (i, item) in enumerate(zip(pending, converted, strict=True)):
        original = objects[i]
        where = f"invalid converted object at index {n}" if is_list else "invalid object at index 0"
        try:
            obj = _as_object(item)
        except _Refused as e:
            if is_list:
                raise ConversionError(
                    f"conversion webhook for {subject} returned {where}: {e}"
                ) from None
            raise ConversionError(str(e)) from None
        got_api = _str(obj.get("apiVersion"))
        got_gv = _gv(got_api)
        if got_gv != want_gv:
            raise ConversionError(
                f"conversion webhook for {subject} returned {where}: invalid groupVersion "
                f"(expected {want_gv}, received {got_gv})"
            )
        want_kind = _str(original.get("kind"))
        got_kind = _str(obj.get("kind")) if _split_api_version(got_api) is not None else ""
        if got_kind != want_kind:
            raise ConversionError(
                f"conversion webhook for {subject} returned {where}: invalid kind "
                f"(expected {want_kind}, received {got_kind})"
            )
        try:
            _check_identity(original, obj)
        except _Refused as e:
            where = f"invalid converted object at index {n}" if is_list else "invalid object"
            raise ConversionError(
                f"conversion webhook for {subject} returned {where}: {e}"
            ) from None
        try:
            out[i] = _restore_metadata(original, obj)
        except _Refused as e:
            where = f"invalid metadata in object at index {n}" if is_list else "invalid metadata"
            raise ConversionError(
                f"conversion webhook for {subject} returned {where}: {e}"
            ) from None
    return out
