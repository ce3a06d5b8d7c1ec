"""What can go wrong talking to an API server, as exceptions a controller can branch on.

Controllers decide what to do from the *kind* of failure (``NotFound`` → the object is
gone, forget it; ``Conflict`` → re-read and retry; ``Gone`` → relist), exactly as Go code
does with ``apierrors.IsNotFound``. So every failure answer from the server becomes one
:class:`ApiError` carrying the server's ``Status`` (``status`` code, ``reason``,
``message`` and the whole ``body``), and the ``is_*`` helpers accept any exception so they
can be used without an ``isinstance`` check first. The tree is drawn in the package
docstring (:mod:`pyk8s.client`).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ApiError",
    "ClientError",
    "ConfigError",
    "TransportError",
    "is_already_exists",
    "is_conflict",
    "is_forbidden",
    "is_gone",
    "is_invalid",
    "is_not_found",
    "is_too_many_requests",
    "is_unauthorized",
]

#: the reason client-go infers when a failure body is not a ``Status``
_REASON_FOR_CODE = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Gone",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class ClientError(Exception):
    """The root of every error :mod:`pyk8s.client` raises on purpose."""


class ConfigError(ClientError):
    """A kubeconfig or in-cluster configuration that cannot be used."""


class TransportError(ClientError):
    """The server could not be reached (or the connection broke) after every retry."""


class ApiError(ClientError):
    """The server answered with a failure ``Status``.

    ``status`` is the HTTP code, ``reason`` the Status reason (``NotFound``,
    ``AlreadyExists``, ``Conflict``, ``Expired``…), ``message`` the human text and
    ``body`` the decoded Status (or ``{}`` when the server sent something else).
    """

    def __init__(self, status: int, reason: str, message: str, body: dict[str, Any]) -> None:
        super().__init__(f"({reason}) {message}" if reason else message)
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body

    @classmethod
    def from_status(cls, status: dict[str, Any], code: int | None = None) -> ApiError:
        """From a ``Status`` object (a failure response or a watch ``ERROR`` event)."""
        raw_code = status.get("code")
        c = code if code is not None else raw_code if isinstance(raw_code, int) else 500
        reason = str(status.get("reason") or _REASON_FOR_CODE.get(c, ""))
        message = str(status.get("message") or reason or f"HTTP {c}")
        return cls(c, reason, message, status)

    @classmethod
    def from_response(cls, code: int, body: Any, text: str = "") -> ApiError:
        """From any failure response: a ``Status`` when the server sent one, else the text."""
        if isinstance(body, dict) and body.get("kind") == "Status":
            return cls.from_status(body, code)
        reason = _REASON_FOR_CODE.get(code, "Unknown")
        message = text.strip() or f"the server responded with HTTP {code}"
        return cls(code, reason, message, body if isinstance(body, dict) else {})

    @property
    def retry_after(self) -> float | None:
        """``details.retryAfterSeconds`` when the server suggested when to come back."""
        details = self.body.get("details")
        if isinstance(details, dict):
            value = details.get("retryAfterSeconds")
            if isinstance(value, int | float) and value > 0:
                return float(value)
        return None

    def is_not_found(self) -> bool:
        return is_not_found(self)

    def is_conflict(self) -> bool:
        return is_conflict(self)

    def is_already_exists(self) -> bool:
        return is_already_exists(self)

    def is_gone(self) -> bool:
        return is_gone(self)


def _api(err: BaseException | None) -> ApiError | None:
    return err if isinstance(err, ApiError) else None


def is_not_found(err: BaseException | None) -> bool:
    """404: the object (or the resource) does not exist."""
    e = _api(err)
    return e is not None and (e.reason == "NotFound" or (e.status == 404 and not e.reason))


def is_already_exists(err: BaseException | None) -> bool:
    """409 ``AlreadyExists``: a create of a name that is taken."""
    e = _api(err)
    return e is not None and e.reason == "AlreadyExists"


def is_conflict(err: BaseException | None) -> bool:
    """409 ``Conflict``: a write against a stale resourceVersion (re-read and retry)."""
    e = _api(err)
    return e is not None and (e.reason == "Conflict" or (e.status == 409 and not e.reason))


def is_gone(err: BaseException | None) -> bool:
    """410 (``Expired`` or ``Gone``): a resourceVersion older than the server keeps."""
    e = _api(err)
    return e is not None and (e.status == 410 or e.reason in ("Expired", "Gone"))


def is_invalid(err: BaseException | None) -> bool:
    """422 ``Invalid``: validation refused the object."""
    e = _api(err)
    return e is not None and (e.reason == "Invalid" or e.status == 422)


def is_forbidden(err: BaseException | None) -> bool:
    e = _api(err)
    return e is not None and (e.reason == "Forbidden" or e.status == 403)


def is_unauthorized(err: BaseException | None) -> bool:
    e = _api(err)
    return e is not None and (e.reason == "Unauthorized" or e.status == 401)


def is_too_many_requests(err: BaseException | None) -> bool:
    e = _api(err)
    return e is not None and (e.reason == "TooManyRequests" or e.status == 429)
