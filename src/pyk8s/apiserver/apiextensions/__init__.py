"""CustomResourceDefinitions (apiextensions.k8s.io/v1): the CRD object's strategy, the
strategy custom resources are served with, and the controller that serves them."""

from pyk8s.apiserver.apiextensions.controller import CRDController
from pyk8s.apiserver.apiextensions.strategy import (
    CLEANUP_FINALIZER,
    CustomResourceDefinitionStrategy,
    CustomResourceStrategy,
)

__all__ = [
    "CLEANUP_FINALIZER",
    "CRDController",
    "CustomResourceDefinitionStrategy",
    "CustomResourceStrategy",
]
