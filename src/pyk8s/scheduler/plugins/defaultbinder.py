"""DefaultBinder: binds through the ``pods/binding`` subresource, as upstream does."""

from __future__ import annotations

from pyk8s.client import Client, ClientError
from pyk8s.scheduler.framework.interface import CycleState, Status
from pyk8s.scheduler.framework.types import Obj

NAME = "DefaultBinder"


class DefaultBinder:
    name = NAME

    def __init__(self, client: Client) -> None:
        self.client = client

    async def bind(self, state: CycleState, pod: Obj, node_name: str) -> Status | None:
        meta = pod["metadata"]
        try:
            await self.client.bind(meta["namespace"], meta["name"], node_name, uid=meta.get("uid"))
        except ClientError as err:
            return Status.error(str(err), plugin=NAME)
        return None
