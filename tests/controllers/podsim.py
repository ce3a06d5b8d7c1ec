"""Test helpers that play the kubelet's part: patch pods/status as a node would."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pyk8s.api.registry import REGISTRY
from pyk8s.client import Client

PODS = REGISTRY.get("", "v1", "pods")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def set_running(
    client: Client, pod: dict[str, Any], ip: str, *, ready: bool = True
) -> dict[str, Any]:
    """Running with ``ip``, Ready as asked."""
    assert PODS is not None
    meta = pod["metadata"]
    status = {
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "conditions": [
            {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": _now()}
        ],
    }
    out: dict[str, Any] = await client.patch(
        PODS,
        meta["name"],
        {"status": status},
        meta["namespace"],
        patch_type="merge",
        subresource="status",
    )
    return out


async def set_terminated(client: Client, pod: dict[str, Any], exit_code: int) -> dict[str, Any]:
    """Succeeded (exit code 0) or Failed, with the container's terminated state."""
    assert PODS is not None
    meta = pod["metadata"]
    containers = pod["spec"]["containers"]
    status = {
        "phase": "Succeeded" if exit_code == 0 else "Failed",
        "containerStatuses": [
            {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": "",
                "ready": False,
                "restartCount": 0,
                "state": {
                    "terminated": {
                        "exitCode": exit_code,
                        "reason": "Completed" if exit_code == 0 else "Error",
                        "startedAt": _now(),
                        "finishedAt": _now(),
                    }
                },
            }
            for c in containers
        ],
    }
    out: dict[str, Any] = await client.patch(
        PODS,
        meta["name"],
        {"status": status},
        meta["namespace"],
        patch_type="merge",
        subresource="status",
    )
    return out
