"""Every pyk8s process reads TLS through one 64 KiB buffer per thread, not asyncio's
256 KiB per connection, and encrypts a large write one TLS record at a time.

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

The write side has a buffer per connection too: the encrypted bytes of each
``transport.write`` go into the connection's outgoing ``ssl.MemoryBIO`` before they are
handed to the socket, and OpenSSL's memory BIO keeps the capacity of the largest write
it ever held for the connection's life (an API server connection that once answered a
300 KB discovery document or LIST kept ~300 KB: both ends of 200 such connections held
451 KiB a pair, 72 KiB after small answers). So a write larger than
:data:`WRITE_PIECE` goes to the TLS object in pieces of that size, each piece's records
taken out of the BIO before the next is encrypted (178 KiB a pair; most of the rest is the
incoming BIO's capacity, up to one read buffer), and the records of one write reach the
socket as one write.
"""

from __future__ import annotations

import asyncio.sslproto
import threading
from typing import Any

#: bytes read from a TLS connection's socket at a time (asyncio's default: 256 KiB)
READ_BUFFER = 64 * 1024
#: the most plaintext encrypted into a connection's outgoing BIO at a time: one TLS
#: record's (moving 64 MB over one connection took the same CPU, within the noise, as
#: whole 4 MB writes; a 16 KiB read buffer took ~25 % more, so reads stay at 64 KiB)
WRITE_PIECE = 16 * 1024

_local = threading.local()


def _thread_buffer(size: int) -> bytearray:
    """This thread's read buffer of at least ``size`` bytes."""
    buffer: bytearray | None = getattr(_local, "buffer", None)
    if buffer is None or len(buffer) < size:
        buffer = _local.buffer = bytearray(size)
    return buffer


def _encrypt_in_records(protocol: Any, view: memoryview, size: int) -> int:
    """Encrypt ``view`` one record at a time, emptying the outgoing BIO after each, and
    hand the socket all of it in one write; return how many bytes were encrypted.

    Only when nothing else is waiting (no backlog, the socket not paused, the handshake
    done); otherwise, or from where the TLS object stops taking data (a renegotiation),
    the caller writes the rest piece by piece through asyncio's own path. One socket
    write per answer, not one per record: a 200 KB LIST page in 13 ``sendto`` calls cost
    the API server ~37 % more CPU per page.
    """
    if (
        protocol._state is not asyncio.sslproto.SSLProtocolState.WRAPPED
        or protocol._write_backlog
        or protocol._ssl_writing_paused
    ):
        return 0
    records: list[bytes] = []
    done = 0
    try:
        while done < size:
            piece = view[done : done + WRITE_PIECE]
            count = protocol._sslobj.write(piece)
            records.append(protocol._outgoing.read())
            done += count
            if count < len(piece):
                break
    except asyncio.sslproto.SSLAgainErrors:
        pass
    except Exception as ex:
        protocol._fatal_error(ex, "Fatal error on SSL protocol")
        return size
    if records:
        protocol._transport.write(b"".join(records))
    protocol._control_app_writing()
    return done


def shrink() -> None:
    """Connections made from now on in this process (and its forks) read through their
    thread's shared buffer of :data:`READ_BUFFER` bytes, and every TLS connection
    encrypts at most :data:`WRITE_PIECE` bytes of a write before sending them."""
    protocol = asyncio.sslproto.SSLProtocol
    protocol.max_size = READ_BUFFER
    if getattr(protocol.__init__, "_pyk8s_shared_buffer", False):
        return
    original = protocol.__init__
    write_appdata = protocol._write_appdata

    def __init__(self: asyncio.sslproto.SSLProtocol, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        buffer = _thread_buffer(self.max_size)
        self._ssl_buffer = buffer  # type: ignore[attr-defined]
        self._ssl_buffer_view = memoryview(buffer)  # type: ignore[attr-defined]

    def _write_appdata(self: asyncio.sslproto.SSLProtocol, list_of_data: Any) -> None:
        for data in list_of_data:
            size = data.nbytes if isinstance(data, memoryview) else len(data)
            if size <= WRITE_PIECE:
                write_appdata(self, [data])
                continue
            view = memoryview(data).cast("B")
            done = _encrypt_in_records(self, view, size)
            for start in range(done, size, WRITE_PIECE):
                piece: Any = view[start : start + WRITE_PIECE]  # what transport.write takes
                if not isinstance(data, bytes):  # a view of bytes is safe to keep; a
                    piece = bytes(piece)  # bytearray's caller may resize it once written
                write_appdata(self, [piece])

    __init__._pyk8s_shared_buffer = True  # type: ignore[attr-defined]
    protocol.__init__ = __init__  # type: ignore[method-assign]
    protocol._write_appdata = _write_appdata  # type: ignore[method-assign]
