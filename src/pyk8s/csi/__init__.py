"""The Container Storage Interface as pyk8s speaks it: our subset of the csi.v1 protos and
the kubelet's plugin-registration v1 protos (generated modules beside this file, see
scripts/gen_csi.sh), plus the few names every side agrees on.

The kubelet (node calls, plugin registration), the controller manager (attach/detach:
VolumeAttachment names) and ``pyk8s csi-hostpath`` (the driver and its provisioner,
attacher and resizer loops) all import this package; it imports nothing else of ours.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from pyk8s.csi import csi_pb2 as pb

__all__ = [
    "ANN_NODE_ID",
    "CSI_PLUGIN_TYPE",
    "access_mode",
    "attachment_name",
    "channel_target",
    "pb",
    "volume_capability",
]

#: PluginInfo.type of a CSI driver's registrar (upstream's ``CSIPlugin``)
CSI_PLUGIN_TYPE = "CSIPlugin"
#: the Node annotation listing each registered driver's node ID (JSON driver -> id)
ANN_NODE_ID = "csi.volume.kubernetes.io/nodeid"

_MODES = {
    "ReadWriteOnce": pb.VolumeCapability.AccessMode.SINGLE_NODE_WRITER,
    "ReadOnlyMany": pb.VolumeCapability.AccessMode.MULTI_NODE_READER_ONLY,
    "ReadWriteMany": pb.VolumeCapability.AccessMode.MULTI_NODE_MULTI_WRITER,
    "ReadWriteOncePod": pb.VolumeCapability.AccessMode.SINGLE_NODE_SINGLE_WRITER,
}


def attachment_name(volume_handle: str, driver: str, node: str) -> str:
    """The VolumeAttachment of a CSI volume on a node: ``csi-<sha256(handle+driver+node)>``,
    as upstream's attacher names it, so every side finds the same object."""
    return "csi-" + hashlib.sha256(f"{volume_handle}{driver}{node}".encode()).hexdigest()


def channel_target(socket: str) -> str:
    """A gRPC target for a unix socket path (``unix:///abs/path``)."""
    return socket if socket.startswith("unix:") else f"unix://{socket}"


def access_mode(modes: Iterable[str]) -> Any:
    """The CSI access mode for a PV's or claim's access modes (the widest one listed)."""
    best = pb.VolumeCapability.AccessMode.SINGLE_NODE_WRITER
    for mode in modes:
        best = max(best, _MODES.get(mode, best))
    return best


def volume_capability(
    modes: Iterable[str], fs_type: str = "", mount_flags: Iterable[str] = ()
) -> pb.VolumeCapability:
    """A mount (filesystem) VolumeCapability for the given access modes."""
    return pb.VolumeCapability(
        mount=pb.VolumeCapability.MountVolume(fs_type=fs_type, mount_flags=list(mount_flags)),
        access_mode=pb.VolumeCapability.AccessMode(mode=access_mode(modes)),
    )
