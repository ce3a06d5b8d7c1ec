"""Container runtimes the kubelet drives; today only a private containerd."""

from pyk8s.kubelet.runtimes.containerd import Containerd, ContainerdConfig, ContainerdError

__all__ = ["Containerd", "ContainerdConfig", "ContainerdError"]
