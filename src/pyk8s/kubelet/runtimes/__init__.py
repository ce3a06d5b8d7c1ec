"""Container runtimes the kubelet drives: a private containerd, and an in-memory fake
(:mod:`pyk8s.kubelet.runtimes.fake`) for tests without root."""

from pyk8s.kubelet.runtimes.containerd import Containerd, ContainerdConfig, ContainerdError
from pyk8s.kubelet.runtimes.fake import FakeRuntime

__all__ = ["Containerd", "ContainerdConfig", "ContainerdError", "FakeRuntime"]
