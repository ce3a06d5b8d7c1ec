"""API errors as upstream's ``Status`` objects: same codes, reasons and messages.

Clients branch on ``reason`` and print ``message`` (kubectl prints ``Error from server
(NotFound): pods "x" not found``), so every failure the API server answers is a
:class:`StatusError` built by one of the constructors below, with upstream's wording.

Field validation errors (:class:`FieldError`) render exactly as upstream's
``field.Error`` does, e.g. ``spec.containers[0].image: Required value``; a list of them
becomes a 422 ``Invalid`` Status with one cause per field.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pyk8s.api.gofmt import go_bad_value, go_quote


class FieldErrorType(enum.Enum):
    """Upstream's field.ErrorType: (cause reason, message prefix)."""

    NOT_FOUND = ("FieldValueNotFound", "Not found")
    REQUIRED = ("FieldValueRequired", "Required value")
    DUPLICATE = ("FieldValueDuplicate", "Duplicate value")
    INVALID = ("FieldValueInvalid", "Invalid value")
    NOT_SUPPORTED = ("FieldValueNotSupported", "Unsupported value")
    FORBIDDEN = ("FieldValueForbidden", "Forbidden")
    TOO_LONG = ("FieldValueTooLong", "Too long")
    TOO_MANY = ("FieldValueTooMany", "Too many")
    INTERNAL = ("InternalError", "Internal error")
    TYPE_INVALID = ("FieldValueTypeInvalid", "Invalid value")

    @property
    def reason(self) -> str:
        return self.value[0]

    @property
    def text(self) -> str:
        return self.value[1]


_NO_VALUE = object()


@dataclass(frozen=True, slots=True)
class FieldError:
    """One ``field.Error``; the bad value prints as v1.32's ``ErrorBody`` prints it.

    Strings are quoted with ``%q``, nil is ``"null"``, floats read ``1e+06`` and maps
    and lists use ``%#v`` (:func:`pyk8s.api.gofmt.go_bad_value`); pass a list that is a
    typed ``[]string`` upstream as a :class:`~pyk8s.api.gofmt.GoStringSlice`.
    """

    type: FieldErrorType
    field: str
    value: Any = _NO_VALUE
    detail: str = ""

    def body(self) -> str:
        t = self.type
        if (
            t
            in (
                FieldErrorType.REQUIRED,
                FieldErrorType.FORBIDDEN,
                FieldErrorType.TOO_LONG,
                FieldErrorType.INTERNAL,
            )
            or self.value is _NO_VALUE
        ):
            s = t.text
        else:
            s = f"{t.text}: {go_bad_value(self.value)}"
        if self.detail:
            s = f"{s}: {self.detail}"
        return s

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}" if self.field else self.body()


def required(field: str, detail: str = "") -> FieldError:
    return FieldError(FieldErrorType.REQUIRED, field, detail=detail)


def invalid(field: str, value: Any, detail: str = "") -> FieldError:
    return FieldError(FieldErrorType.INVALID, field, value, detail)


def not_supported(field: str, value: Any, supported: Sequence[str]) -> FieldError:
    detail = ""
    if supported:
        detail = "supported values: " + ", ".join(go_quote(str(s)) for s in supported)
    return FieldError(FieldErrorType.NOT_SUPPORTED, field, value, detail)


def forbidden(field: str, detail: str) -> FieldError:
    return FieldError(FieldErrorType.FORBIDDEN, field, detail=detail)


def duplicate(field: str, value: Any) -> FieldError:
    return FieldError(FieldErrorType.DUPLICATE, field, value)


def too_long(field: str, max_length: int) -> FieldError:
    msg = f"may not be more than {max_length} bytes" if max_length >= 0 else "value is too long"
    return FieldError(FieldErrorType.TOO_LONG, field, detail=msg)


def too_many(field: str, actual: int, maximum: int) -> FieldError:
    """``Too many: 5: must have at most 3 items`` (the count left out when negative)."""
    msg = f"must have at most {maximum} items" if maximum >= 0 else "has too many items"
    if actual < 0:
        return FieldError(FieldErrorType.TOO_MANY, field, detail=msg)
    return FieldError(FieldErrorType.TOO_MANY, field, actual, msg)


def type_invalid(field: str, value: Any, detail: str) -> FieldError:
    return FieldError(FieldErrorType.TYPE_INVALID, field, value, detail)


def aggregate_message(messages: Sequence[str]) -> str:
    """``utilerrors.NewAggregate(errs).Error()``: one message bare, several as ``[a, b]``,
    a repeated message shown once."""
    unique = list(dict.fromkeys(messages))
    if len(unique) == 1:
        return unique[0]
    return "[" + ", ".join(unique) + "]" if unique else ""


class StatusError(Exception):
    """An API failure carrying the ``Status`` the server answers with."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        #: ``Warning`` headers the failed request still answers (an admission webhook's
        #: warnings next to its refusal, as upstream's request-scoped warning recorder)
        self.warnings: list[str] = []

    def status(self) -> dict[str, Any]:
        """The Status object, its keys in metav1.Status's field order (kind, apiVersion,
        metadata, status, message, reason, details, code), as kube-apiserver writes it:
        clients that compare error bodies byte for byte see the same text."""
        s: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            s["details"] = _ordered_details(self.details)
        s["code"] = self.code
        return s


#: metav1.StatusDetails' and StatusCause's field order
_DETAIL_KEYS = ("name", "group", "kind", "uid", "causes", "retryAfterSeconds")
_CAUSE_KEYS = ("reason", "message", "field")


def _ordered(d: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    out = {k: d[k] for k in keys if k in d}
    out.update((k, v) for k, v in d.items() if k not in out)
    return out


def _ordered_details(details: dict[str, Any]) -> dict[str, Any]:
    out = _ordered(details, _DETAIL_KEYS)
    causes = out.get("causes")
    if isinstance(causes, list):
        out["causes"] = [_ordered(c, _CAUSE_KEYS) if isinstance(c, dict) else c for c in causes]
    return out


def _details(name: str, group: str, kind: str) -> dict[str, Any]:
    d: dict[str, Any] = {"name": name, "kind": kind}
    if group:
        d["group"] = group
    return d


def not_found(group_resource: str, name: str, group: str = "", plural: str = "") -> StatusError:
    """``pods "x" not found``."""
    return StatusError(
        404,
        "NotFound",
        f'{group_resource} "{name}" not found',
        _details(name, group, plural or group_resource.split(".")[0]),
    )


def already_exists(
    group_resource: str, name: str, group: str = "", plural: str = ""
) -> StatusError:
    return StatusError(
        409,
        "AlreadyExists",
        f'{group_resource} "{name}" already exists',
        _details(name, group, plural or group_resource.split(".")[0]),
    )


def conflict(group_resource: str, name: str, why: str, group: str = "") -> StatusError:
    """``Operation cannot be fulfilled on pods "x": <why>``."""
    return StatusError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {group_resource} "{name}": {why}',
        _details(name, group, group_resource.split(".")[0]),
    )


OBJECT_MODIFIED = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


def invalid_object(kind: str, name: str, errors: list[FieldError], group: str = "") -> StatusError:
    """422 ``Pod "x" is invalid: spec...: Required value`` with one cause per error."""
    summary = str(errors[0]) if len(errors) == 1 else "[" + ", ".join(map(str, errors)) + "]"
    details = _details(name, group, kind)
    details["causes"] = [
        {"reason": e.type.reason, "message": e.body(), "field": e.field} for e in errors
    ]
    qualified = f"{kind}.{group}" if group else kind  # upstream's GroupKind string
    return StatusError(422, "Invalid", f'{qualified} "{name}" is invalid: {summary}', details)


def no_such_resource() -> StatusError:
    """404 for a path that names no resource (upstream's generic NotFound)."""
    return StatusError(404, "NotFound", "the server could not find the requested resource", {})


def bad_request(message: str) -> StatusError:
    return StatusError(400, "BadRequest", message)


def unauthorized(message: str = "Unauthorized") -> StatusError:
    return StatusError(401, "Unauthorized", message)


def forbidden_request(message: str) -> StatusError:
    return StatusError(403, "Forbidden", message)


def method_not_allowed(message: str) -> StatusError:
    return StatusError(405, "MethodNotAllowed", message)


def not_acceptable(message: str) -> StatusError:
    return StatusError(406, "NotAcceptable", message)


def gone(message: str) -> StatusError:
    """410 ``Expired``: a resourceVersion older than the retained history."""
    return StatusError(410, "Expired", message)


def too_large(message: str = "Request entity too large: limit is 3145728") -> StatusError:
    return StatusError(413, "RequestEntityTooLarge", message)


def unsupported_media_type(content_type: str) -> StatusError:
    return StatusError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - "
        f"accepted media types include: application/json, application/yaml, "
        f"application/json-patch+json, application/merge-patch+json, "
        f"application/strategic-merge-patch+json ({content_type!r})",
    )


def internal(message: str) -> StatusError:
    return StatusError(500, "InternalError", f"Internal error occurred: {message}")


def service_unavailable(message: str) -> StatusError:
    return StatusError(503, "ServiceUnavailable", message)


def timeout(message: str) -> StatusError:
    return StatusError(504, "Timeout", message)
