"""LimitRange admission: defaults and min/max rules for pods and claims, as upstream applies them.

Why a port: a LimitRange is how a namespace admin says "every container gets 100m CPU unless
it asks" and "no claim over 10Gi", and users meet it in two places: the
``kubernetes.io/limit-ranger`` annotation on their pod (``LimitRanger plugin set: cpu,
memory request for container c; cpu, memory limit for container c``) and a 403 such as
``pods "x" is forbidden: [maximum cpu usage per Container is 2, but limit is 3, ...]``.
This module follows upstream's plugin/pkg/admission/limitranger (v1.32) rule by rule:

* mutation (:func:`apply_defaults`): every container and init container gets, for each
  resource it does not set, the ``default`` (limits) and ``defaultRequest`` (requests) of
  the LimitRange's ``Container`` items; the annotation lists what was set, per container;
* validation (:func:`validate`): ``Container`` min/max/maxLimitRequestRatio per container
  and init container, ``Pod`` min/max/maxLimitRequestRatio on the pod's total (containers
  summed, restartable init containers added, the largest init container as a floor), and
  ``PersistentVolumeClaim`` min/max on the claim's requests. Comparisons are made in
  thousandths when no value overflows there, else in whole units, like upstream;
* the error (:func:`forbidden`): the messages of the first violated LimitRange, joined the
  way apimachinery joins an error list (one bare, several in ``[a, b]``, duplicates once).

Upstream iterates Go maps, so when one LimitRange item limits several resources the order of
their messages varies from run to run there; here it is the item's key order. Pure code:
the caller passes the namespace's LimitRanges and applies the result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from pyk8s.api import errors
from pyk8s.api.gofmt import go_quote
from pyk8s.api.quantity import (
    DECIMAL_SI,
    Format,
    canonical,
    format_quantity,
    milli_value,
    parse_quantity_with_format,
    value,
)

__all__ = [
    "ANNOTATION",
    "applies",
    "apply_defaults",
    "default_requirements",
    "forbidden",
    "forbidden_message",
    "validate",
    "validate_pod",
    "validate_pvc",
]

JSON = dict[str, Any]

ANNOTATION: Final = "kubernetes.io/limit-ranger"
CONTAINER: Final = "Container"
POD: Final = "Pod"
PVC: Final = "PersistentVolumeClaim"
_MAX_MILLI_VALUE: Final = (2**63 - 1) // 1000  # resource.MaxMilliValue


# --- quantities as upstream's Quantity values -----------------------------------------------


@dataclass(frozen=True, slots=True)
class _Q:
    """A quantity with what ``String()`` prints: the parsed text, or the canonical form."""

    amount: Decimal
    format: Format
    text: str

    @classmethod
    def of(cls, raw: Any) -> _Q:
        amount, fmt = parse_quantity_with_format(raw)
        return cls(amount, fmt, canonical(raw))

    def __add__(self, other: _Q) -> _Q:
        # upstream's Add keeps the receiver's format unless the receiver is zero
        fmt = other.format if not self.amount else self.format
        total = self.amount + other.amount
        return _Q(total, fmt, format_quantity(total, fmt))

    def __str__(self) -> str:
        return self.text


_ZERO: Final = _Q(Decimal(0), DECIMAL_SI, "0")
ResourceList = dict[str, _Q]


def _resource_list(raw: Any) -> ResourceList:
    if not isinstance(raw, Mapping):
        return {}
    return {str(k): _Q.of(v) for k, v in raw.items()}


def _obj(d: Any, key: str) -> JSON | None:
    v = d.get(key) if isinstance(d, Mapping) else None
    return v if isinstance(v, dict) else None


def _items(limit_range: JSON) -> list[JSON]:
    limits = (_obj(limit_range, "spec") or {}).get("limits")
    return [i for i in limits if isinstance(i, dict)] if isinstance(limits, list) else []


def _containers(pod: JSON, key: str) -> list[JSON]:
    items = (_obj(pod, "spec") or {}).get(key)
    return [c for c in items if isinstance(c, dict)] if isinstance(items, list) else []


# --- which writes -------------------------------------------------------------------------


def applies(
    operation: str,
    resource: str,
    *,
    group: str = "",
    subresource: str = "",
    old_obj: JSON | None = None,
) -> bool:
    """Whether LimitRanger looks at this write (upstream's SupportsAttributes and deletion skip).

    Pods on create (their containers are immutable afterwards) and claims on create and
    update, never subresources, never an object already being deleted.
    """
    op = operation.upper()
    if group or subresource or op not in ("CREATE", "UPDATE"):
        return False
    if old_obj is not None and (_obj(old_obj, "metadata") or {}).get("deletionTimestamp"):
        return False
    return (resource == "pods" and op == "CREATE") or resource == "persistentvolumeclaims"


# --- defaults -------------------------------------------------------------------------------


def default_requirements(limit_range: JSON) -> tuple[dict[str, Any], dict[str, Any]]:
    """(requests, limits) a container without them gets: ``defaultRequest`` and ``default``
    of the ``Container`` items (a later item wins for the same resource)."""
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    for item in _items(limit_range):
        if item.get("type") == CONTAINER:
            requests.update(_obj(item, "defaultRequest") or {})
            limits.update(_obj(item, "default") or {})
    return requests, limits


def _merge_container(
    container: JSON, requests: Mapping[str, Any], limits: Mapping[str, Any], kind: str
) -> list[str]:
    resources = container.get("resources")
    if not isinstance(resources, dict):
        resources = {}
    have_limits = dict(_obj(resources, "limits") or {})
    have_requests = dict(_obj(resources, "requests") or {})
    set_limits = sorted(k for k in limits if k not in have_limits)
    set_requests = sorted(k for k in requests if k not in have_requests)
    for k in set_limits:
        have_limits[k] = canonical(limits[k])
    for k in set_requests:
        have_requests[k] = canonical(requests[k])
    if set_limits or set_requests:
        if have_limits:
            resources["limits"] = have_limits
        if have_requests:
            resources["requests"] = have_requests
        container["resources"] = resources
    name = container.get("name", "")
    notes = []
    if set_requests:
        notes.append(f"{', '.join(set_requests)} request for {kind} {name}")
    if set_limits:
        notes.append(f"{', '.join(set_limits)} limit for {kind} {name}")
    return notes


def apply_defaults(pod: JSON, limit_ranges: Iterable[JSON]) -> bool:
    """Fill in missing container requests/limits from each LimitRange, in place.

    Returns whether anything was set. Each LimitRange that sets something rewrites the
    ``kubernetes.io/limit-ranger`` annotation with what it set (upstream's behaviour with
    several LimitRanges in a namespace).
    """
    changed = False
    for limit_range in limit_ranges:
        requests, limits = default_requirements(limit_range)
        if not requests and not limits:
            continue
        notes: list[str] = []
        for container in _containers(pod, "containers"):
            notes += _merge_container(container, requests, limits, "container")
        for container in _containers(pod, "initContainers"):
            notes += _merge_container(container, requests, limits, "init container")
        if notes:
            metadata = pod.setdefault("metadata", {})
            annotations = metadata.get("annotations")
            if not isinstance(annotations, dict):
                annotations = metadata["annotations"] = {}
            annotations[ANNOTATION] = "LimitRanger plugin set: " + "; ".join(notes)
            changed = True
    return changed


# --- constraints ----------------------------------------------------------------------------


def _compared(request: _Q, limit: _Q, enforced: _Q) -> tuple[int, int, int]:
    """Upstream's requestLimitEnforcedValues: milli-units unless that would overflow."""
    values = (value(request.amount), value(limit.amount), value(enforced.amount))
    if all(v <= _MAX_MILLI_VALUE for v in values):
        return milli_value(request.amount), milli_value(limit.amount), milli_value(enforced.amount)
    return values


def _min(
    kind: str, name: str, enforced: _Q, requests: ResourceList, limits: ResourceList
) -> str | None:
    req, lim = requests.get(name), limits.get(name)
    observed_req, observed_lim, minimum = _compared(req or _ZERO, lim or _ZERO, enforced)
    if req is None:
        return f"minimum {name} usage per {kind} is {enforced}.  No request is specified"
    if observed_req < minimum:
        return f"minimum {name} usage per {kind} is {enforced}, but request is {req}"
    if lim is not None and observed_lim < minimum:
        return f"minimum {name} usage per {kind} is {enforced}, but limit is {lim}"
    return None


def _max(
    kind: str, name: str, enforced: _Q, requests: ResourceList, limits: ResourceList
) -> str | None:
    req, lim = requests.get(name), limits.get(name)
    observed_req, observed_lim, maximum = _compared(req or _ZERO, lim or _ZERO, enforced)
    if lim is None:
        return f"maximum {name} usage per {kind} is {enforced}.  No limit is specified"
    if observed_lim > maximum:
        return f"maximum {name} usage per {kind} is {enforced}, but limit is {lim}"
    if req is not None and observed_req > maximum:
        return f"maximum {name} usage per {kind} is {enforced}, but request is {req}"
    return None


def _max_request(kind: str, name: str, enforced: _Q, requests: ResourceList) -> str | None:
    """The max of a claim, which has only requests."""
    req = requests.get(name)
    observed_req, _, maximum = _compared(req or _ZERO, _ZERO, enforced)
    if req is None:
        return f"maximum {name} usage per {kind} is {enforced}.  No request is specified"
    if observed_req > maximum:
        return f"maximum {name} usage per {kind} is {enforced}, but request is {req}"
    return None


def _ratio(
    kind: str, name: str, enforced: _Q, requests: ResourceList, limits: ResourceList
) -> str | None:
    req, lim = requests.get(name), limits.get(name)
    observed_req, observed_lim, _ = _compared(req or _ZERO, lim or _ZERO, enforced)
    prefix = f"{name} max limit to request ratio per {kind} is {enforced}"
    if req is None or observed_req == 0:
        return f"{prefix}, but no request is specified or request is 0"
    if lim is None or observed_lim == 0:
        return f"{prefix}, but no limit is specified or limit is 0"
    observed = float(observed_lim) / float(observed_req)
    shown = observed
    allowed = float(value(enforced.amount))
    if value(enforced.amount) <= _MAX_MILLI_VALUE:
        observed *= 1000
        allowed = float(milli_value(enforced.amount))
    if observed > allowed:
        return f"{prefix}, but provided ratio is {shown:f}"
    return None


def _check_item(
    item: JSON, kind: str, requests: ResourceList, limits: ResourceList, out: list[str]
) -> None:
    for key, rule in (("min", _min), ("max", _max), ("maxLimitRequestRatio", _ratio)):
        for name, raw in (_obj(item, key) or {}).items():
            if (msg := rule(kind, str(name), _Q.of(raw), requests, limits)) is not None:
                out.append(msg)


def _requirements(container: JSON) -> tuple[ResourceList, ResourceList]:
    resources = _obj(container, "resources")
    return (
        _resource_list((resources or {}).get("requests")),
        _resource_list((resources or {}).get("limits")),
    )


def _add(into: ResourceList, more: ResourceList) -> None:
    for name, q in more.items():
        into[name] = into[name] + q if name in into else q


def _max_into(into: ResourceList, more: ResourceList) -> None:
    for name, q in more.items():
        if name not in into or q.amount > into[name].amount:
            into[name] = q


def _pod_total(pod: JSON, which: int) -> ResourceList:
    """The pod's requests (``which=0``) or limits (``1``) as the scheduler counts them.

    Containers add up; a restartable (sidecar) init container adds to them and to every
    later init container; the largest init container is a floor.
    """
    total: ResourceList = {}
    for c in _containers(pod, "containers"):
        _add(total, _requirements(c)[which])
    sidecars: ResourceList = {}
    init_floor: ResourceList = {}
    for c in _containers(pod, "initContainers"):
        own = _requirements(c)[which]
        if c.get("restartPolicy") == "Always":
            _add(total, own)
            _add(sidecars, own)
            step = dict(sidecars)
        else:
            step = {}
            _add(step, own)
            _add(step, sidecars)
        _max_into(init_floor, step)
    _max_into(total, init_floor)
    return total


def validate_pod(pod: JSON, limit_range: JSON) -> list[str]:
    """Upstream's PodValidateLimitFunc: every message for one LimitRange, in item order."""
    out: list[str] = []
    for item in _items(limit_range):
        kind = item.get("type")
        if kind == CONTAINER:
            for key in ("containers", "initContainers"):
                for container in _containers(pod, key):
                    requests, limits = _requirements(container)
                    _check_item(item, CONTAINER, requests, limits, out)
        elif kind == POD:
            _check_item(item, POD, _pod_total(pod, 0), _pod_total(pod, 1), out)
    return out


def validate_pvc(pvc: JSON, limit_range: JSON) -> list[str]:
    """Upstream's PersistentVolumeClaimValidateLimitFunc: min/max on the claim's requests."""
    resources = _obj(_obj(pvc, "spec"), "resources") or {}
    requests = _resource_list(resources.get("requests"))
    out: list[str] = []
    for item in _items(limit_range):
        if item.get("type") != PVC:
            continue
        for name, raw in (_obj(item, "min") or {}).items():
            if (msg := _min(PVC, str(name), _Q.of(raw), requests, {})) is not None:
                out.append(msg)
        for name, raw in (_obj(item, "max") or {}).items():
            if (msg := _max_request(PVC, str(name), _Q.of(raw), requests)) is not None:
                out.append(msg)
    return out


def validate(resource: str, obj: JSON, limit_ranges: Iterable[JSON]) -> list[str]:
    """The messages of the first LimitRange ``obj`` violates ([] if none): upstream stops
    at the first LimitRange that fails. ``resource`` is ``pods`` or
    ``persistentvolumeclaims``; anything else passes."""
    check = {"pods": validate_pod, "persistentvolumeclaims": validate_pvc}.get(resource)
    if check is None:
        return []
    for limit_range in limit_ranges:
        if messages := check(obj, limit_range):
            return messages
    return []


# --- the error ------------------------------------------------------------------------------


def forbidden_message(resource: str, name: str, messages: Sequence[str], group: str = "") -> str:
    """``pods "x" is forbidden: [maximum cpu usage per Container is 2, but limit is 3, ...]``."""
    qualified = f"{resource}.{group}" if group else resource
    return f"{qualified} {go_quote(name)} is forbidden: {errors.aggregate_message(messages)}"


def forbidden(
    resource: str, obj: JSON | None, messages: Sequence[str], group: str = ""
) -> errors.StatusError:
    """The 403 the API server answers (admission's NewForbidden).

    The name is the object's name, else its ``generateName``, else ``Unknown``, as upstream
    reports it.
    """
    meta = _obj(obj, "metadata") or {}
    name = str(meta.get("name") or meta.get("generateName") or "Unknown")
    details: dict[str, Any] = {"name": name, "kind": resource}
    if group:
        details["group"] = group
    return errors.StatusError(
        403, "Forbidden", forbidden_message(resource, name, messages, group), details
    )
