"""k3s's agent load balancer: a TCP proxy on loopback in front of every API server.

An agent's kubelet, proxy and DNS talk to ``https://127.0.0.1:<port>`` (k3s's 6444);
this proxy passes each connection, unopened (TLS stays end to end, so every server's
certificate must name 127.0.0.1, which pyk8s's do), to one API server:

* **The server list** starts as the ``--server`` the agent joined and then follows the
  ``default/kubernetes`` Endpoints -- every live API server, kept by the servers' lease
  endpoint reconciler -- read every :data:`REFRESH` seconds. The ``--server`` address
  stays in the list as the last resort, as k3s keeps its default server.
* **One current server.** New connections go to the current server while it accepts
  them; when a connect fails (refused, or no answer within :data:`CONNECT_TIMEOUT`) the
  next server is tried and becomes current.
* **Health checks.** Every :data:`HEALTH_INTERVAL` seconds the current server is dialled;
  when it does not answer, its open connections are closed, so clients whose server's
  host vanished (no RST ever comes) reconnect at once -- to the next server -- rather
  than waiting for their own timeouts. Watches then resume from their last
  resourceVersion, as after any dropped connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 2.0
HEALTH_INTERVAL = 1.0
REFRESH = 5.0


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


class LoadBalancer:
    """Listen on ``bind:port`` (0: any free port) and forward to ``servers``
    (``host:port``; the first is the default server)."""

    def __init__(self, servers: Sequence[str], bind: str = "127.0.0.1", port: int = 0) -> None:
        if not servers:
            raise ValueError("a load balancer needs at least one server")
        self.default = servers[0]
        self.servers: list[str] = list(dict.fromkeys(servers))
        self.current = self.servers[0]
        self._bind = bind
        self._port = port
        self._listener: asyncio.Server | None = None
        self._conns: dict[str, set[asyncio.StreamWriter]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._health: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        assert self._listener is not None
        return int(self._listener.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"https://{self._bind}:{self.port}"

    async def start(self) -> None:
        self._listener = await asyncio.start_server(
            self._accept, self._bind, self._port, reuse_address=True
        )
        self._health = asyncio.create_task(self._check_health(), name="lb-health")
        log.info("load balancer started", extra={"url": self.url, "servers": self.servers})

    async def stop(self) -> None:
        if self._health is not None:
            self._health.cancel()
        if self._listener is not None:
            self._listener.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._listener is not None:
            await self._listener.wait_closed()

    def set_servers(self, servers: Sequence[str]) -> None:
        """The API servers now known (the default server is kept last)."""
        wanted = list(dict.fromkeys([*servers, self.default]))
        if wanted != self.servers:
            log.info("load balancer servers", extra={"servers": wanted})
            self.servers = wanted
            if self.current not in wanted:
                self._switch(self.current)

    def _switch(self, failed: str) -> None:
        """Make the server after ``failed`` current and close connections to ``failed``."""
        if failed != self.current:
            return
        order = self.servers
        i = order.index(failed) if failed in order else -1
        self.current = order[(i + 1) % len(order)]
        if self.current != failed:
            log.warning("load balancer failed over", extra={"from": failed, "to": self.current})
        for writer in self._conns.pop(failed, set()):
            writer.close()

    async def _dial(self, server: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        host, port = _split(server)
        return await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_TIMEOUT)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            for _ in range(len(self.servers)):
                server = self.current
                try:
                    up_reader, up_writer = await self._dial(server)
                except (OSError, TimeoutError) as err:
                    log.warning(
                        "cannot reach API server", extra={"server": server, "err": str(err)}
                    )
                    self._switch(server)
                    continue
                await self._pipe(server, reader, writer, up_reader, up_writer)
                return
        except asyncio.CancelledError:
            pass  # stop(): asyncio's server callback would log a cancelled handler
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _pipe(
        self,
        server: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        conns = self._conns.setdefault(server, set())
        conns.update((writer, up_writer))

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, ConnectionError):
                pass
            finally:
                with contextlib.suppress(OSError):
                    if dst.can_write_eof():
                        dst.write_eof()

        up = asyncio.create_task(copy(reader, up_writer))
        down = asyncio.create_task(copy(up_reader, writer))
        try:
            await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
            if down.done():  # the server is done: nothing more will come back
                up.cancel()
            else:  # the client half-closed: let the server's answer through
                await asyncio.wait([down], timeout=5)
                down.cancel()
        finally:
            conns.discard(writer)
            conns.discard(up_writer)
            up_writer.close()

    async def _check_health(self) -> None:
        while True:
            await asyncio.sleep(HEALTH_INTERVAL)
            server = self.current
            try:
                _, w = await self._dial(server)
                w.close()
            except (OSError, TimeoutError):
                self._switch(server)

    async def follow_endpoints(self, client: object, stop: asyncio.Event) -> None:
        """Keep the server list equal to the ``kubernetes`` Endpoints until ``stop``."""
        from pyk8s.client import Client, ClientError

        assert isinstance(client, Client)
        while not stop.is_set():
            try:
                page = await client.list(
                    ("v1", "Endpoints"), "default", field_selector="metadata.name=kubernetes"
                )
                servers = [
                    f"{a['ip']}:{p['port']}"
                    for item in page.get("items", [])
                    for subset in item.get("subsets") or []
                    for p in subset.get("ports") or []
                    if p.get("name", "https") == "https"
                    for a in subset.get("addresses") or []
                ]
                if servers:
                    self.set_servers(servers)
            except (ClientError, OSError, TimeoutError) as err:
                log.warning("kubernetes endpoints not read: %s", err)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), REFRESH)
