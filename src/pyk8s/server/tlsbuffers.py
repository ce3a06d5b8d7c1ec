"""Every pyk8s process reads TLS through one 64 KiB buffer per thread, not asyncio's
256 KiB per connection.

Why: asyncio's TLS transport (``asyncio.sslproto.SSLProtocol``) gives each connection a
zero-filled read buffer of ``max_size`` bytes, 256 KiB, resident for the connection's
life. pyk8s's clients hold one HTTP/1.1 connection per watch (upstream's Go clients
multiplex them over HTTP/2), so an idle controller manager with its controllers' own
credentials kept ~90 connections and 23 MB of these buffers (tracemalloc), and the API
server one per connection on its side too.

The buffer only carries bytes from the socket to the connection's TLS object: the event
loop asks the protocol for it (``get_buffer``), ``recv_into`` fills it, and
``buffer_updated`` copies what arrived into the connection's ``ssl.MemoryBIO`` before it
does anything else. Nothing else runs on the loop's thread in between, so every
connection of a thread can read through the same buffer; a connection keeps no buffer
of its own. A read never returns more than the buffer: 64 KiB still holds four full TLS
records (16 KiB each) per read (``max_size`` also bounds each decrypted read).
"""

from __future__ import annotations

import asyncio.sslproto
import threading
from typing import Any

#: bytes read from a TLS connection's socket at a time (asyncio's default: 256 KiB)
READ_BUFFER = 64 * 1024

_local = threading.local()


def _thread_buffer(size: int) -> bytearray:
    """This thread's read buffer of at least ``size`` bytes."""
    buffer: bytearray | None = getattr(_local, "buffer", None)
    if buffer is None or len(buffer) < size:
        buffer = _local.buffer = bytearray(size)
    return buffer


def shrink() -> None:
    """Connections made from now on in this process (and its forks) read through their
    thread's shared buffer of :data:`READ_BUFFER` bytes."""
    protocol = asyncio.sslproto.SSLProtocol
    protocol.max_size = READ_BUFFER
    if getattr(protocol.__init__, "_pyk8s_shared_buffer", False):
        return
    original = protocol.__init__

    def __init__(self: asyncio.sslproto.SSLProtocol, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        buffer = _thread_buffer(self.max_size)
        self._ssl_buffer = buffer  # type: ignore[attr-defined]
        self._ssl_buffer_view = memoryview(buffer)  # type: ignore[attr-defined]

    __init__._pyk8s_shared_buffer = True  # type: ignore[attr-defined]
    protocol.__init__ = __init__  # type: ignore[method-assign]
