"""The seam between the autoscaler and whatever makes machines (upstream's
``cloudprovider.NodeGroup``: IncreaseSize / DeleteNodes). The autoscaler names the
nodes and decides; a provider only creates and destroys them."""

from __future__ import annotations

from typing import Protocol

from pyk8s.autoscaler.config import NodeGroup

__all__ = ["NodeProvider"]


class NodeProvider(Protocol):
    async def create_node(self, group: NodeGroup, name: str) -> None:
        """Bring up one node of ``group`` called ``name``; it registers itself."""
        ...

    async def delete_node(self, group: NodeGroup, name: str) -> None:
        """Destroy the machine behind ``name`` and its Node object."""
        ...
