"""DefaultTolerationSeconds: pods tolerate the ``not-ready`` and ``unreachable``
NoExecute taints for 300 s unless they say otherwise (upstream's plugin)."""

from __future__ import annotations

from pyk8s.apiserver.admission import JSON, Attributes, PodCreatePlugin

DEFAULT_TOLERATIONS = (
    ("node.kubernetes.io/not-ready", 300),
    ("node.kubernetes.io/unreachable", 300),
)


class DefaultTolerationSeconds(PodCreatePlugin):
    name = "DefaultTolerationSeconds"

    async def admit(self, attrs: Attributes) -> bool:
        assert attrs.obj is not None
        return default_toleration_seconds(attrs.obj)


def default_toleration_seconds(pod: JSON) -> bool:
    """Add the default tolerations a pod lacks; whether it lacked any."""
    spec = pod.setdefault("spec", {})
    tolerations: list[JSON] = spec.setdefault("tolerations", [])
    before = len(tolerations)
    for key, seconds in DEFAULT_TOLERATIONS:
        if any(
            (t.get("key") == key and t.get("effect") in ("NoExecute", None, ""))
            or (not t.get("key") and t.get("operator") == "Exists")
            for t in tolerations
        ):
            continue
        tolerations.append(
            {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}
        )
    return len(tolerations) > before
