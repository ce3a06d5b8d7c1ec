"""Random (version 4) UUIDs for object uids and audit IDs, from a pool of random bytes.

Why: ``str(uuid.uuid4())`` asks the kernel for 16 bytes each time, and ``os.urandom``
lets go of the GIL around that call, so on a busy API server the event loop then waits
for another thread (the store's writer) to hand it back; building the ``UUID`` object
costs more than the string. A create made two of them. Here the bytes come from the
kernel's generator 4 KiB at a time (the same source, as upstream's ``uuid.New()`` reads
crypto/rand) and the string is written directly, in the same form. A forked child
starts with an empty pool.
"""

from __future__ import annotations

import os
import threading

_POOL_BYTES = 4096

_lock = threading.Lock()
_pool = b""
_pos = _POOL_BYTES


def new_uid() -> str:
    """A random RFC 4122 version 4 UUID, as ``str(uuid.uuid4())`` writes it."""
    global _pool, _pos
    with _lock:
        if _pos >= _POOL_BYTES:
            _pool, _pos = os.urandom(_POOL_BYTES), 0
        raw = bytearray(_pool[_pos : _pos + 16])
        _pos += 16
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _forked() -> None:
    """A forked child draws its own bytes: never the parent's pool (the same uids)."""
    global _lock, _pool, _pos
    _lock, _pool, _pos = threading.Lock(), b"", _POOL_BYTES


os.register_at_fork(after_in_child=_forked)
