"""Scheduler integration fixtures: a real API server of our own (so the cluster's nodes
are exactly the ones a test creates), and ``client``/``namespace``/``eventually`` from the
controller tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.controllers.conftest import client, eventually, namespace
from tests.integration.conftest import Server, free_port

__all__ = ["client", "cm_server", "eventually", "namespace"]


@pytest.fixture(scope="session")
def cm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("sched") / "data", free_port()).start()
    try:
        yield srv
    finally:
        srv.stop()
