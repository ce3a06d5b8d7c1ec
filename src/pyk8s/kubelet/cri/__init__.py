"""pyk8s.kubelet.cri: the kubelet's link to the container runtime (CRI runtime.v1).

``RuntimeService``/``ImageService`` (``ContainerRuntime``: both) are the interfaces the
kubelet depends on; ``CRIClient`` is the async gRPC client implementing them;
``api_pb2`` holds the request/config messages callers build (e.g.
``api_pb2.PodSandboxConfig``)."""

from . import api_pb2
from .client import CRIClient, CRIError, CRINotFound
from .service import ContainerRuntime, ImageService, RuntimeService

__all__ = [
    "CRIClient",
    "CRIError",
    "CRINotFound",
    "ContainerRuntime",
    "ImageService",
    "RuntimeService",
    "api_pb2",
]
