"""pyk8s: Kubernetes, written in Python.

The real architecture (API server over a revisioned store, scheduler, controller manager,
kubelet on containerd, kube-proxy, DNS) speaking the real Kubernetes API, one package per
component; see the project README and ../shared/DESIGN.md.
"""

__version__ = "0.1.0"
