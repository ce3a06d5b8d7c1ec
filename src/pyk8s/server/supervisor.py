"""``pyk8s server`` runs the control plane as separate processes (two cores are two cores;
the GIL is one): the API server in this process, every other component as a child that
is restarted when it dies and stopped with SIGTERM when the server stops. A pyk8s
component is forked by the process's zygote when it has one (:mod:`pyk8s.server.zygote`:
its modules are imported already and shared), else exec'ed. A component whose host is a
child too runs in the host's process (:mod:`pyk8s.server.cohost`: the proxy and DNS in
the kubelet's, the scheduler in the controller manager's)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pyk8s.server import cohost, zygote

log = logging.getLogger(__name__)

#: Every child runs under util-linux's ``setpriv --pdeathsig``: SIGTERM when the
#: supervisor dies, even by SIGKILL, so no orphaned component outlives a crashed server
#: or agent (containers do: they belong to containerd's shims, and the next kubelet
#: adopts them). Not a ``preexec_fn`` calling prctl: that makes Python fork() (not
#: vfork) and run the at-fork handlers in the child, and gRPC's (the embedded etcd's
#: client lives in this process) then aborted the child before its exec -- a scheduler
#: or controller manager "exited with -6" now and then.
_DIE_WITH_PARENT = ("setpriv", "--pdeathsig", "SIGTERM", "--")
#: restart delays double from the first to the cap; a child that ran at least
#: ``steady`` seconds before exiting starts over at the first (the kubelet resets its
#: crash-loop backoff after a container ran fine for a while): a component that lost
#: its leader lease once a day must not wait the cap to campaign again
FIRST_DELAY, MAX_DELAY = 1.0, 30.0


class Process(Protocol):
    """What the supervisor uses of a child: an exec'ed subprocess or a forked one."""

    @property
    def pid(self) -> int: ...
    @property
    def returncode(self) -> int | None: ...
    async def wait(self) -> int: ...
    def send_signal(self, sig: int) -> None: ...
    def kill(self) -> None: ...


@dataclass
class Child:
    name: str
    args: list[str]
    proc: Process | None = None
    restarts: int = 0
    #: where stdout and stderr go (appended); None: inherited
    log: Path | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    #: ``pyk8s`` command line (without ``python -m pyk8s``) a zygote may fork instead
    command: list[str] | None = None


class Supervisor:
    def __init__(self, steady: float = MAX_DELAY) -> None:
        self.children: list[Child] = []
        self.steady = steady
        self._stopping = False

    def add(self, name: str, *args: str) -> None:
        argv = [name, *args]
        self.children.append(Child(name, [sys.executable, "-m", "pyk8s", *argv], command=argv))

    def add_command(self, name: str, argv: list[str], log: Path | None = None) -> Child:
        """A child that is not a pyk8s component (the embedded etcd)."""
        child = Child(name, argv, log=log)
        self.children.append(child)
        return child

    async def start(self) -> None:
        self._fold()
        for child in self.children:
            child.task = asyncio.create_task(self._keep(child), name=f"supervise-{child.name}")

    def _fold(self) -> None:
        """Each guest child whose host is a child too: into the host's argv."""
        commands = [c.command for c in self.children if c.command is not None]
        folded = {argv[0]: argv for argv in cohost.fold(commands)}
        kept = []
        for child in self.children:
            if child.command is None:
                kept.append(child)
            elif child.name in folded:
                argv = folded[child.name]
                child.command, child.args = argv, [sys.executable, "-m", "pyk8s", *argv]
                kept.append(child)
        self.children = kept

    async def _keep(self, child: Child) -> None:
        loop = asyncio.get_running_loop()
        delay = FIRST_DELAY
        while not self._stopping:
            child.proc = await self._spawn(child)
            log.info("started %s", child.name, extra={"pid": child.proc.pid})
            started = loop.time()
            code = await child.proc.wait()
            if self._stopping:
                return
            if loop.time() - started >= self.steady:
                delay = FIRST_DELAY
            child.restarts += 1
            log.warning("%s exited with %s; restarting in %.0fs", child.name, code, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_DELAY)

    async def _spawn(self, child: Child) -> Process:
        forks = zygote.current()
        if forks is not None and child.command is not None:
            try:
                return await forks.spawn(
                    child.command, None if child.log is None else str(child.log)
                )
            except OSError as err:
                log.warning("the zygote could not start %s: %s", child.name, err)
        out = None if child.log is None else child.log.open("ab")
        try:
            return await asyncio.create_subprocess_exec(
                *_DIE_WITH_PARENT, *child.args, stdout=out, stderr=out
            )
        finally:
            if out is not None:
                out.close()

    async def stop(self, grace: float = 10.0) -> None:
        self._stopping = True
        for child in self.children:
            if child.proc is not None and child.proc.returncode is None:
                child.proc.send_signal(signal.SIGTERM)
        for child in self.children:
            if child.proc is not None and child.proc.returncode is None:
                try:
                    await asyncio.wait_for(child.proc.wait(), grace)
                except TimeoutError:
                    child.proc.kill()
                    await child.proc.wait()
            if child.task is not None:
                child.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await child.task
