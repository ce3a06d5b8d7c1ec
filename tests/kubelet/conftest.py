"""Simulated-node tests reuse the controller tests' fixtures: a real API server process,
a client, a fresh namespace per test, and ``eventually``."""

from tests.controllers.conftest import client, cm_server, namespace, run_controllers

__all__ = ["client", "cm_server", "namespace", "run_controllers"]
