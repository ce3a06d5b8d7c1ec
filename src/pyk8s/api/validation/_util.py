"""Small shared helpers: tolerant accessors over decoded JSON and the error constructors.

Validation runs after decoding, but a wrong type that slipped through (an object built
by a component rather than sent over the wire) must produce errors, never a crash; so
every accessor here returns a neutral value for the wrong type, the way Go's zero values
behave after a lenient decode.
"""

from __future__ import annotations

from typing import Any, TypeGuard

from pyk8s.api import errors
from pyk8s.api.errors import FieldError, FieldErrorType

JSON = dict[str, Any]
Errs = list[FieldError]

IMMUTABLE = "field is immutable"
NEGATIVE = "must be greater than or equal to 0"


def d(v: Any) -> JSON:
    """``v`` if it is an object, else an empty one."""
    return v if isinstance(v, dict) else {}


def lst(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def s(v: Any) -> str:
    return v if isinstance(v, str) else ""


def i(v: Any, default: int = 0) -> int:
    if isinstance(v, bool):
        return default
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return default


def is_int(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def smap(v: Any) -> dict[str, str]:
    """A map[string]string (non-string values read as "")."""
    return {str(k): s(x) for k, x in d(v).items()}


def child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def key(path: str, k: str) -> str:
    return f"{path}[{k}]"


def idx(path: str, n: int) -> str:
    return f"{path}[{n}]"


def not_found(path: str, value: Any) -> FieldError:
    return FieldError(FieldErrorType.NOT_FOUND, path, value)


def too_many(path: str, actual: int, limit: int) -> FieldError:
    return FieldError(FieldErrorType.TOO_MANY, path, actual, f"must have at most {limit} items")


def nonneg(value: Any, path: str) -> Errs:
    """Upstream's ``ValidateNonnegativeField`` (absent values are Go zero: fine)."""
    if is_int(value) and value < 0:
        return [errors.invalid(path, value, NEGATIVE)]
    return []


def equal(a: Any, b: Any) -> bool:
    """Semantic equality: absent, null, and empty collections/strings compare equal."""
    return bool(_norm(a) == _norm(b))


def _norm(v: Any) -> Any:
    if isinstance(v, dict):
        out = {k: _norm(x) for k, x in v.items()}
        return {k: x for k, x in out.items() if x is not None}
    if isinstance(v, list):
        return [_norm(x) for x in v] or None
    if v == "" or v == {} or v is False:
        return None
    return v


def immutable(new: Any, old: Any, path: str) -> Errs:
    if equal(new, old):
        return []
    return [errors.invalid(path, new, IMMUTABLE)]
