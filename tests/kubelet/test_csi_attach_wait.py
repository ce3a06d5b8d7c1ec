"""The kubelet waits for a CSI volume's attachment on a watch, against a real API server.

A pod's CSI volume whose driver needs attaching is staged only once its VolumeAttachment
says ``attached``. The kubelet reads the attachment and then watches that one object,
so the attacher's status write ends the wait. The test writes that status only after the
kubelet's read: if the kubelet answers, the watch is what told it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pyk8s.api.registry import REGISTRY
from pyk8s.client import Client
from pyk8s.csi import attachment_name
from pyk8s.kubelet import podinputs
from pyk8s.kubelet.podinputs import NodeInfo, PodInputs
from pyk8s.kubelet.volumes import PodVolumes

ATTACHMENTS = REGISTRY.get("storage.k8s.io", "v1", "volumeattachments")
Obj = dict[str, Any]


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def event(self, obj: Any, event_type: str, reason: str, message: str) -> None:
        self.events.append((reason, message))


class Spy:
    """The API client the kubelet uses, telling the test when the kubelet has listed
    and what it called."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.calls: list[str] = []
        self.listed = asyncio.Event()

    async def get(self, *args: Any, **kw: Any) -> Obj:
        self.calls.append("get")
        return await self.client.get(*args, **kw)

    async def list(self, *args: Any, **kw: Any) -> Obj:
        self.calls.append("list")
        out = await self.client.list(*args, **kw)
        self.listed.set()
        return out

    def watch(self, *args: Any, **kw: Any) -> Any:
        self.calls.append("watch")
        return self.client.watch(*args, **kw)


async def test_the_attach_wait_ends_on_the_attachers_status_write(
    client: Client, tmp_path: Path
) -> None:
    node, driver, handle = "attach-wait-node", "wait.csi.pyk8s.io", "vol-1"
    name = attachment_name(handle, driver, node)
    spy = Spy(client)
    recorder = Recorder()
    inputs = PodInputs(
        spy,  # type: ignore[arg-type]
        recorder,  # type: ignore[arg-type]
        NodeInfo(name=node),
        PodVolumes(root=tmp_path),
        services=lambda: [],
    )
    pv = {"metadata": {"name": "pv-1"}, "spec": {"csi": {"driver": driver, "volumeHandle": handle}}}
    # no CSIDriver object: attaching is required, as upstream
    wait = asyncio.create_task(inputs._csi_objects({"pv-1": pv}))
    await asyncio.wait_for(spy.listed.wait(), podinputs.ATTACH_WAIT)
    assert not wait.done()
    # the attach/detach controller creates the attachment after the kubelet's read ...
    await client.create(ATTACHMENTS, {
        "apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttachment",
        "metadata": {"name": name},
        "spec": {"attacher": driver, "nodeName": node, "source": {"persistentVolumeName": "pv-1"}},
    })  # fmt: skip
    # ... and the attacher reports it attached
    await client.patch(
        ATTACHMENTS, name,
        {"status": {"attached": True, "attachmentMetadata": {"device": "/dev/x"}}},
        patch_type="merge", subresource="status",
    )  # fmt: skip
    drivers, attachments = await asyncio.wait_for(wait, podinputs.ATTACH_WAIT)
    try:
        assert drivers == {driver: None}
        va = attachments["pv-1"]
        assert va is not None and va["status"]["attachmentMetadata"] == {"device": "/dev/x"}
        # read once, then told by the watch: no second read, no poll
        assert spy.calls == ["get", "list", "watch"]  # the CSIDriver, then the attachment
        assert recorder.events == []
    finally:
        await client.delete(ATTACHMENTS, name)
