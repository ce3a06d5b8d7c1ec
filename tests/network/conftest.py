"""Network tests use the controller tests' API server fixtures."""

from tests.controllers.conftest import client, cm_server, namespace

__all__ = ["client", "cm_server", "namespace"]
