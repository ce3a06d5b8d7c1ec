"""``pyk8s csi-hostpath``: a CSI driver keeping each volume as a directory on this host, as
upstream's hostpath example driver, plus the sidecar loops upstream deploys next to a
driver (external-provisioner, external-attacher, external-resizer) and its node-driver
registrar, all in one process and all talking to the driver over its CSI socket."""

from pyk8s.csihostpath.driver import DRIVER_NAME, TOPOLOGY_KEY, HostPathDriver

__all__ = ["DRIVER_NAME", "TOPOLOGY_KEY", "HostPathDriver"]
