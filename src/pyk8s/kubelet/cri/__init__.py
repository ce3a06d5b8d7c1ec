"""pyk8s.kubelet.cri: the kubelet's link to the container runtime (CRI runtime.v1).

``CRIClient`` is the async client; ``api_pb2`` holds the request/config messages
callers build (e.g. ``api_pb2.PodSandboxConfig``)."""

from . import api_pb2
from .client import CRIClient, CRIError, CRINotFound

__all__ = ["CRIClient", "CRIError", "CRINotFound", "api_pb2"]
