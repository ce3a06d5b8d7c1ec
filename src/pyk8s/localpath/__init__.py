"""The local-path provisioner (``pyk8s.io/local-path``): node-local directories as
dynamically provisioned PersistentVolumes, like k3s's bundled local-path-provisioner.

Why its own package: it is neither the controller manager (it must run on the node
whose disk it writes, including nodes joined with ``pyk8s agent`` on other hosts) nor the
kubelet (it is an external provisioner speaking to the rest of the cluster only through
the API: claims' annotations in, PersistentVolumes out). ``pyk8s kubelet`` runs one
beside the kubelet for its node; ``pyk8s sim-nodes`` runs one for all its nodes.
"""

from pyk8s.localpath.provisioner import PROVISIONER_NAME, LocalPathProvisioner

__all__ = ["PROVISIONER_NAME", "LocalPathProvisioner"]
