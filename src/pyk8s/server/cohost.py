"""Run some of ``pyk8s server``'s and ``pyk8s agent``'s components inside another's process.

Why: every Python component process keeps 20-30 MiB of pages of its own however much it
shares with the zygote (:mod:`pyk8s.server.zygote`): reference counts, the interpreter's
warm-up data in the code it runs, its own heap. k3s runs every component in one
process. Here the node's kube-proxy and cluster DNS run in the kubelet's process, and
the scheduler in the controller manager's (:data:`HOSTS`), which saves that much each.

Each guest keeps what makes it a component of its own: its own options (the host gets
the guest's whole argv as a hidden, repeatable ``--embedded-NAME-arg=ARG`` and parses it
with the guest's own subcommand parser), its own client and credentials, its own
``/healthz`` and ``/metrics`` ports, its own Lease, and its own ``component`` in the
structured log (:func:`pyk8s.server.logs.set_component`, per asyncio task). The host and
its guests stop together: SIGTERM stops all of them
(:func:`pyk8s.server.component.stop_on_signals`), and when one of them ends (an error, a
lost Lease) the others are stopped and the process exits, so that its supervisor starts
all of them again, as k3s exits when one of its components fails. The standalone
``pyk8s proxy``/``dns``/``scheduler`` commands are unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Sequence
from typing import Any

from pyk8s.server import logs, startgate
from pyk8s.server.component import stop_all

#: guest component -> the component whose process it runs in
HOSTS = {"proxy": "kubelet", "dns": "kubelet", "scheduler": "controller-manager"}


def flag(guest: str) -> str:
    """The host's hidden flag that carries one argument of ``guest``'s argv."""
    return f"--embedded-{guest}-arg"


def fold(components: Sequence[Sequence[str]]) -> list[list[str]]:
    """``components`` (each ``NAME, *ARGS``) with every guest whose host is among them
    moved into its host's argv; the others as they were."""
    names = {c[0] for c in components}
    out = [list(c) for c in components if HOSTS.get(c[0]) not in names]
    for guest in components:
        host = HOSTS.get(guest[0])
        if host in names:
            into = next(c for c in out if c[0] == host)
            into += [f"{flag(guest[0])}={arg}" for arg in guest[1:]]
    return out


def commands(argv: Sequence[str]) -> list[str]:
    """The components a ``pyk8s NAME …`` argv runs: NAME and the guests it embeds."""
    if not argv:
        return []
    found = [argv[0]]
    for guest, host in HOSTS.items():
        if host == argv[0] and any(a.startswith(flag(guest) + "=") for a in argv):
            found.append(guest)
    return found


async def _as_component(name: str, job: Coroutine[Any, Any, None]) -> None:
    logs.set_component(name)  # this task's context and the tasks it starts
    await startgate.until_open()  # a guest of the kubelet starts after the server's policy
    await job


async def run_together(host: Coroutine[Any, Any, None], guests: dict[str, Any]) -> None:
    """Run the host's coroutine and each guest's (``{name: coroutine}``), each logging
    as itself, until one of them returns or fails; then stop the others and raise the
    first error."""
    if not guests:
        await host
        return
    tasks = [asyncio.ensure_future(host)]
    tasks += [asyncio.ensure_future(_as_component(n, job)) for n, job in guests.items()]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        stop_all()
        await asyncio.wait(tasks)
        for task in tasks:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
