"""Fork ``pyk8s server``'s components from one process that has imported them already.

Why: each component used to be a fresh ``python -m pyk8s NAME``: every one paid the
interpreter's start, imported aiohttp, the API package and the client (0.5-1 s of CPU
each, ~3.5 s over the server's six children against ~1.1 s to import them all once) and
kept its own private copy of every module (~30 MB each before doing anything). As
Android's zygote and gunicorn's ``--preload`` do, the server forks one process, the
zygote, before it has any thread or event loop; the zygote imports every component's
module (what :func:`pyk8s.server.startgate.wait_in_child` would import) and freezes the
garbage collector's view of them (``gc.freeze()``: a collection in a child then does not
write to those objects' pages), and forks a child for each component the server asks
for. The children share the imported modules' pages copy-on-write with the zygote and
with each other; each is still its own process with its own /metrics, /healthz, logs and
signal handling, named in ``ps`` as ``python -m pyk8s NAME ARGS`` (setproctitle) and
``pyk8s-NAME`` (the kernel's thread name). ``pyk8s agent`` forks its node components the
same way. What a running child still copies is every page it writes: reference counts,
the warm-up counters and quickened bytecode CPython 3.11 keeps in the code objects of
what it runs, new objects in the shared pools (18-40 MB a component, against ~1 MB for
a child that only started).

The server talks to the zygote over a socket pair, one JSON object a line: a ``spawn``
request (argv, environment, log file) is answered with the child's pid, a ``signal``
request is passed on to a live child, and the zygote reports each child's exit status
(``returncode`` as :mod:`subprocess` has it). :class:`Forked` gives the supervisor the
``asyncio.subprocess.Process`` calls it uses. The zygote dies with the server (its
parent-death signal, or the socket closing) and its children die with it (theirs), as an
exec'ed child dies with the server under ``setpriv --pdeathsig``. A server without a
zygote (it could not fork, or it died) starts children by exec as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import importlib
import logging
import os
import selectors
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Sequence
from typing import Any

import orjson

from pyk8s.server import gcfreeze

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
#: the modules every component imports, loaded even when no component is named
COMMON = ("pyk8s.cli", "pyk8s.server.component", "pyk8s.client", "aiohttp")

_zygote: Zygote | None = None


def current() -> Zygote | None:
    """This process's zygote, when it started one and it still runs."""
    if _zygote is not None and _zygote.alive:
        return _zygote
    return None


def start(components: Sequence[str]) -> Zygote | None:
    """Fork the zygote, which imports ``components`` (``kubelet``, ``controller-manager``,
    …) and then serves :meth:`Zygote.spawn`. Call before this process has any thread;
    None (children are exec'ed) when it has one or cannot fork."""
    global _zygote
    if threading.active_count() > 1:
        log.warning("not starting a zygote: the process has threads")
        return None
    gc.collect()
    gc.freeze()  # what the server imported: no collection on either side writes to it
    gcfreeze.shared()
    parent_end, child_end = socket.socketpair()
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        pid = os.fork()
    except OSError as err:
        log.warning("not starting a zygote: %s", err)
        parent_end.close()
        child_end.close()
        return None
    if pid == 0:  # pragma: no cover - the zygote's own process
        parent_end.close()
        code = 1
        try:
            code = _serve(child_end, os.getppid(), components)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    child_end.close()
    _zygote = Zygote(parent_end, pid)
    return _zygote


class Forked:
    """A child the zygote forked: what the supervisor uses of a subprocess."""

    def __init__(self, zygote: Zygote, pid: int) -> None:
        self._zygote = zygote
        self.pid = pid
        self.returncode: int | None = None
        self._exited = asyncio.Event()

    async def wait(self) -> int:
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            self._zygote.send({"signal": int(sig), "pid": self.pid})

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def _exit(self, code: int) -> None:
        self.returncode = code
        self._exited.set()


class Zygote:
    """The server's side of the zygote."""

    def __init__(self, sock: socket.socket, pid: int) -> None:
        self.sock = sock
        self.pid = pid
        self.alive = True
        self._writer: asyncio.StreamWriter | None = None
        self._connecting = asyncio.Lock()
        self._reader_task: asyncio.Task[None] | None = None
        self._next = 0
        self._pending: dict[int, asyncio.Future[int]] = {}
        self._children: dict[int, Forked] = {}

    async def spawn(self, argv: Sequence[str], log_file: str | None = None) -> Forked:
        """Fork ``pyk8s ARGV…`` with this process's environment; OSError when the zygote
        is gone."""
        async with self._connecting:  # the first spawns come at once
            if self._writer is None:
                reader, self._writer = await asyncio.open_unix_connection(sock=self.sock)
                self._reader_task = asyncio.create_task(self._read(reader), name="zygote")
        if not self.alive:
            raise OSError("the zygote exited")
        self._next += 1
        ask = self._next
        reply = asyncio.get_running_loop().create_future()
        self._pending[ask] = reply
        self.send({"spawn": ask, "argv": list(argv), "env": dict(os.environ), "log": log_file})
        pid = await reply
        proc = Forked(self, pid)
        self._children[pid] = proc
        return proc

    def send(self, message: dict[str, Any]) -> None:
        if self._writer is not None and self.alive:
            self._writer.write(orjson.dumps(message) + b"\n")

    async def _read(self, reader: asyncio.StreamReader) -> None:
        stopped = False
        try:
            while line := await reader.readline():
                message = orjson.loads(line)
                if "spawned" in message:
                    reply = self._pending.pop(message["spawned"])
                    if message.get("error"):
                        reply.set_exception(OSError(message["error"]))
                    else:
                        reply.set_result(message["pid"])
                elif "exited" in message:
                    proc = self._children.pop(message["exited"], None)
                    if proc is not None:
                        proc._exit(message["code"])
        except asyncio.CancelledError:  # this process is stopping
            stopped = True
            raise
        finally:
            self.alive = False
            if not stopped:
                log.warning("the zygote exited; components are started by exec from now on")
            for reply in self._pending.values():
                if not reply.done():
                    reply.set_exception(OSError("the zygote exited"))
            for proc in self._children.values():  # they die with it (parent-death signal)
                proc._exit(-signal.SIGTERM)
            self._children.clear()


def _die_with_parent(parent: int) -> None:
    """SIGTERM when the parent exits; exit now when it already has."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != parent:
        os._exit(1)


def _name(title: str, short: str) -> None:
    """What ``ps`` shows: the command line (setproctitle, when installed) and the
    kernel's 15-character thread name."""
    try:
        import setproctitle
    except ImportError:
        libc = ctypes.CDLL(None)
        libc.prctl(15, short.encode()[:15], 0, 0, 0)  # PR_SET_NAME
        return
    setproctitle.setproctitle(title)
    setproctitle.setthreadtitle(short[:15])


def _serve(sock: socket.socket, server: int, components: Sequence[str]) -> int:  # pragma: no cover
    """The zygote: import each component, forking each child once its component's
    modules are in (the ones a new node's Ready waits on first, and one asked for before
    one that is not), until the server goes."""
    from pyk8s.server import cohost, startgate

    _die_with_parent(server)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's ^C: the server stops us
    _name(f"{sys.executable} -m pyk8s zygote", "pyk8s-zygote")
    for name in COMMON:
        importlib.import_module(name)
    to_import = sorted(components, key=lambda c: c not in startgate.FULL_PRIORITY)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    me = os.getpid()
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    sel.register(wake_r, selectors.EVENT_READ)
    children: set[int] = set()
    waiting: list[dict[str, Any]] = []
    buf = b""

    def fork(message: dict[str, Any]) -> None:
        gc.freeze()  # a collection in the child leaves what is imported by now alone
        try:
            pid = os.fork()
        except OSError as err:
            sock.sendall(orjson.dumps({"spawned": message["spawn"], "error": str(err)}) + b"\n")
            return
        if pid == 0:
            os.close(wake_r)
            os.close(wake_w)
            sel.close()
            _run_child(sock, me, message)
        children.add(pid)
        sock.sendall(orjson.dumps({"spawned": message["spawn"], "pid": pid}) + b"\n")

    def forks_due() -> list[str]:
        """Fork the children whose components (a host's guests too) are imported; the
        components still waited for."""
        for message in list(waiting):
            if not set(cohost.commands(message["argv"])) & set(to_import):
                waiting.remove(message)
                fork(message)
        return [c for m in waiting for c in cohost.commands(m["argv"])]

    while True:
        for key, _ in sel.select(0 if to_import else None):
            if key.fileobj == wake_r:
                os.read(wake_r, 512)
                continue
            data = sock.recv(65536)
            if not data:
                return 0
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                message = orjson.loads(line)
                if "signal" not in message:
                    waiting.append(message)
                elif message["pid"] in children:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(message["pid"], message["signal"])
        asked = forks_due()
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            children.discard(pid)
            code = os.waitstatus_to_exitcode(status)
            sock.sendall(orjson.dumps({"exited": pid, "code": code}) + b"\n")
        if to_import:
            command = next((c for c in to_import if c in asked), to_import[0])
            to_import.remove(command)
            try:
                startgate.import_component(command)
            except Exception:  # the child will fail to import it too, and say why
                log.exception("zygote: importing %s failed", command)
            if not to_import and threading.active_count() > 1:
                log.warning("zygote: importing the components started threads")
            forks_due()


def _run_child(
    sock: socket.socket, zygote: int, request: dict[str, Any]
) -> None:  # pragma: no cover
    """In a forked child: become ``pyk8s ARGV…`` and exit with its status."""
    code: int = 1
    try:
        sock.close()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _die_with_parent(zygote)
        if request["log"]:
            fd = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.close(fd)
        os.environ.clear()
        os.environ.update(request["env"])
        argv: list[str] = request["argv"]
        sys.argv = [sys.executable, "-m", "pyk8s", *argv]
        _name(" ".join(sys.argv), f"pyk8s-{argv[0]}" if argv else "pyk8s")
        from pyk8s.cli import main

        code = main(argv)
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        logging.shutdown()
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)
