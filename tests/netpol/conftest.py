"""Controller tests reuse the controller tests' fixtures: a real API server process, a
client, a fresh namespace per test."""

from tests.controllers.conftest import client, cm_server, namespace

__all__ = ["client", "cm_server", "namespace"]
