"""Priority: ``priorityClassName`` resolves to ``spec.priority`` (the system classes are
built in; a globalDefault class applies to pods that name none), as upstream's plugin."""

from __future__ import annotations

from pyk8s.api import errors
from pyk8s.apiserver.admission import JSON, Attributes, PodCreatePlugin, Reader

SYSTEM_PRIORITY_CLASSES = {
    "system-node-critical": 2000001000,
    "system-cluster-critical": 2000000000,
}


class Priority(PodCreatePlugin):
    name = "Priority"

    async def admit(self, attrs: Attributes) -> bool:
        assert attrs.obj is not None
        spec = attrs.obj.setdefault("spec", {})
        before = [spec.get(k, _UNSET) for k in _FIELDS]
        await priority(attrs.obj, self.reader)
        return [spec.get(k, _UNSET) for k in _FIELDS] != before


#: what :func:`priority` may set
_FIELDS = ("priority", "priorityClassName", "preemptionPolicy")
_UNSET = object()


async def priority(pod: JSON, reader: Reader) -> None:
    spec = pod.setdefault("spec", {})
    name = spec.get("priorityClassName")
    classes = reader.list("scheduling.k8s.io", "priorityclasses")
    if not name:
        defaults = [c for c in classes if c.get("globalDefault")]
        if not defaults:
            spec.setdefault("priority", 0)
            return
        chosen = defaults[0]
        spec["priorityClassName"] = chosen["metadata"]["name"]
    elif name in SYSTEM_PRIORITY_CLASSES:
        value = SYSTEM_PRIORITY_CLASSES[name]
        if spec.get("priority") not in (None, value):
            raise _priority_mismatch()
        spec["priority"] = value
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        return
    else:
        found = [c for c in classes if c["metadata"]["name"] == name]
        if not found:
            raise errors.forbidden_request(
                f'pods "{pod.get("metadata", {}).get("name", "")}" is forbidden: '
                f"no PriorityClass with name {name} was found"
            )
        chosen = found[0]
    value = int(chosen.get("value", 0))
    if spec.get("priority") not in (None, value):
        raise _priority_mismatch()
    spec["priority"] = value
    spec.setdefault("preemptionPolicy", chosen.get("preemptionPolicy", "PreemptLowerPriority"))


def _priority_mismatch() -> errors.StatusError:
    return errors.forbidden_request(
        "the integer value of priority must not be provided in pod spec; priority admission "
        "controller computed the priority from the given PriorityClass name"
    )
