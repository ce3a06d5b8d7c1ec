"""SPDY/3.1 framing: just enough to open streams to a kubelet and move bytes over them.

Why this exists: kubectl 1.32 speaks WebSocket (``v5.channel.k8s.io``) to the API server
for exec and attach, but the kubelet and containerd's stream server speak SPDY/3.1,
the only one of the two protocols that can half-close a stream (``kubectl cp`` into a
pod needs stdin to reach EOF while stdout stays open). Upstream's API server translates
between the two; this module is the SPDY side of that translation.

It is pure: bytes in, frames out, no I/O. A :class:`Framer` owns the two zlib contexts
of a connection (SPDY compresses every header block of one direction with one shared
zlib stream, primed with the protocol's dictionary). Flow control is not enforced:
Kubernetes' SPDY implementation (spdystream) neither sends nor honours window updates.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

__all__ = [
    "DICTIONARY",
    "FLAG_FIN",
    "ControlFrame",
    "DataFrame",
    "FrameReader",
    "Framer",
    "SpdyError",
]

VERSION = 3

SYN_STREAM = 1
SYN_REPLY = 2
RST_STREAM = 3
SETTINGS = 4
PING = 6
GOAWAY = 7
HEADERS = 8
WINDOW_UPDATE = 9

FLAG_FIN = 0x01

RST_PROTOCOL_ERROR = 1
RST_CANCEL = 5

MAX_FRAME = (1 << 24) - 1

# The SPDY/3 header dictionary (draft 3, section 2.6.10.1): length-prefixed words
# followed by one run of common values.
_DICT_WORDS = (
    "options|head|post|put|delete|trace|accept|accept-charset|accept-encoding|"
    "accept-language|accept-ranges|age|allow|authorization|cache-control|connection|"
    "content-base|content-encoding|content-language|content-length|content-location|"
    "content-md5|content-range|content-type|date|etag|expect|expires|from|host|if-match|"
    "if-modified-since|if-none-match|if-range|if-unmodified-since|last-modified|location|"
    "max-forwards|pragma|proxy-authenticate|proxy-authorization|range|referer|retry-after|"
    "server|te|trailer|transfer-encoding|upgrade|user-agent|vary|via|warning|"
    "www-authenticate|method|get|status|200 OK|version|HTTP/1.1|url|public|set-cookie|"
    "keep-alive|origin"
)
_DICT_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417"
    "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently"
    "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error"
    "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct "
    "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,"
    "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,"
    "publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY = (
    b"".join(struct.pack(">I", len(w)) + w.encode() for w in _DICT_WORDS.split("|"))
    + _DICT_TAIL.encode()
)

Headers = dict[str, list[str]]


class SpdyError(Exception):
    """The peer sent something that is not SPDY/3.1."""


@dataclass(frozen=True, slots=True)
class DataFrame:
    stream_id: int
    data: bytes
    fin: bool = False


@dataclass(frozen=True, slots=True)
class ControlFrame:
    type: int
    flags: int
    payload: bytes

    @property
    def stream_id(self) -> int:
        """The stream a SYN/RST/HEADERS/WINDOW_UPDATE frame is about (0 otherwise)."""
        if self.type in (SYN_STREAM, SYN_REPLY, RST_STREAM, HEADERS, WINDOW_UPDATE):
            return int(struct.unpack_from(">I", self.payload)[0]) & 0x7FFFFFFF
        return 0

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


Frame = DataFrame | ControlFrame


@dataclass
class FrameReader:
    """Splits a byte stream into frames (feed it whatever arrived; it keeps the rest)."""

    _buf: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames: list[Frame] = []
        while len(self._buf) >= 8:
            word, flags_len = struct.unpack_from(">II", self._buf)
            length = flags_len & 0xFFFFFF
            if len(self._buf) < 8 + length:
                break
            payload = bytes(self._buf[8 : 8 + length])
            del self._buf[: 8 + length]
            flags = flags_len >> 24
            if word & 0x80000000:
                version, ftype = (word >> 16) & 0x7FFF, word & 0xFFFF
                if version != VERSION:
                    raise SpdyError(f"unsupported SPDY version {version}")
                frames.append(ControlFrame(ftype, flags, payload))
            else:
                frames.append(DataFrame(word, payload, bool(flags & FLAG_FIN)))
        return frames


def _control(ftype: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, ftype, (flags << 24) | len(payload)) + payload


def data_frame(stream_id: int, data: bytes, *, fin: bool = False) -> bytes:
    """One or more DATA frames carrying ``data`` (the last one with FIN if asked)."""
    out = bytearray()
    chunks = [data[i : i + MAX_FRAME] for i in range(0, len(data), MAX_FRAME)] or [b""]
    for i, chunk in enumerate(chunks):
        flags = FLAG_FIN if fin and i == len(chunks) - 1 else 0
        out += struct.pack(">II", stream_id & 0x7FFFFFFF, (flags << 24) | len(chunk)) + chunk
    return bytes(out)


def rst_stream(stream_id: int, status: int = RST_CANCEL) -> bytes:
    return _control(RST_STREAM, 0, struct.pack(">II", stream_id, status))


def ping(ping_id: int) -> bytes:
    return _control(PING, 0, struct.pack(">I", ping_id))


def goaway(last_stream_id: int = 0, status: int = 0) -> bytes:
    return _control(GOAWAY, 0, struct.pack(">II", last_stream_id, status))


class Framer:
    """The stateful half of SPDY: header blocks, compressed with per-direction zlib streams."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(zdict=DICTIONARY)
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)

    def encode_headers(self, headers: Headers) -> bytes:
        block = bytearray(struct.pack(">I", len(headers)))
        for name, values in headers.items():
            n, v = name.lower().encode(), "\x00".join(values).encode()
            block += struct.pack(">I", len(n)) + n + struct.pack(">I", len(v)) + v
        return self._deflate.compress(bytes(block)) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def decode_headers(self, compressed: bytes) -> Headers:
        try:
            block = self._inflate.decompress(compressed)
            (count,) = struct.unpack_from(">I", block)
            pos, headers = 4, {}
            for _ in range(count):
                (n,) = struct.unpack_from(">I", block, pos)
                name = block[pos + 4 : pos + 4 + n].decode()
                pos += 4 + n
                (n,) = struct.unpack_from(">I", block, pos)
                headers[name] = block[pos + 4 : pos + 4 + n].decode().split("\x00")
                pos += 4 + n
        except (zlib.error, struct.error, UnicodeDecodeError) as err:
            raise SpdyError(f"bad header block: {err}") from err
        return headers

    def syn_stream(self, stream_id: int, headers: Headers, *, fin: bool = False) -> bytes:
        """Open stream ``stream_id`` (odd from a client) with ``headers``."""
        head = struct.pack(">IIH", stream_id, 0, 0)  # no associated stream, priority 0
        return _control(SYN_STREAM, FLAG_FIN if fin else 0, head + self.encode_headers(headers))

    def syn_reply(self, stream_id: int, headers: Headers, *, fin: bool = False) -> bytes:
        head = struct.pack(">I", stream_id)
        return _control(SYN_REPLY, FLAG_FIN if fin else 0, head + self.encode_headers(headers))

    def headers_of(self, frame: ControlFrame) -> Headers:
        """The header block of a SYN_STREAM, SYN_REPLY or HEADERS frame.

        Every such frame must go through here, in order: the zlib context is shared.
        """
        offset = 10 if frame.type == SYN_STREAM else 4
        return self.decode_headers(frame.payload[offset:])
