"""Every pyk8s process reads TLS through 64 KiB buffers, not asyncio's 256 KiB.

Why: asyncio's TLS transport (``asyncio.sslproto.SSLProtocol``) gives each connection a
zero-filled read buffer of ``max_size`` bytes, 256 KiB, resident for the connection's
life. pyk8s's clients hold one HTTP/1.1 connection per watch (upstream's Go clients
multiplex them over HTTP/2), so an idle controller manager with its controllers' own
credentials kept ~90 connections and 23 MB of these buffers (tracemalloc), and the API
server one per connection on its side too. A read never returns more than the buffer,
so a smaller one only means more reads for a large body: 64 KiB still holds four
full TLS records (16 KiB each) per read.
"""

from __future__ import annotations

import asyncio.sslproto

#: bytes read from a TLS connection's socket at a time (asyncio's default: 256 KiB)
READ_BUFFER = 64 * 1024


def shrink() -> None:
    """Connections made from now on in this process (and its forks) use the smaller
    buffer."""
    asyncio.sslproto.SSLProtocol.max_size = READ_BUFFER
