"""SPDY/3.1 framing: what the API server sends to a kubelet decodes the way the peer reads it."""

from __future__ import annotations

import hashlib
import struct
import zlib

import pytest

from pyk8s.apiserver import spdy


def test_dictionary_is_the_spdy3_one() -> None:
    # draft 3's dictionary: 1423 bytes, starting with the length-prefixed "options"
    assert len(spdy.DICTIONARY) == 1423
    assert spdy.DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert spdy.DICTIONARY.endswith(b"enq=0.")
    digest = "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02"
    assert hashlib.sha256(spdy.DICTIONARY).hexdigest() == digest


def test_syn_stream_round_trip_between_two_framers() -> None:
    client, server = spdy.Framer(), spdy.Framer()
    reader = spdy.FrameReader()
    wire = client.syn_stream(1, {"streamType": ["error"]}) + client.syn_stream(
        3, {"streamtype": ["stdin"], "x": ["a", "b"]}
    )
    frames = reader.feed(wire)
    assert [f.stream_id for f in frames] == [1, 3]
    assert all(isinstance(f, spdy.ControlFrame) and f.type == spdy.SYN_STREAM for f in frames)
    # names go out lowercased; several values travel NUL-separated
    assert server.headers_of(frames[0]) == {"streamtype": ["error"]}  # type: ignore[arg-type]
    assert server.headers_of(frames[1]) == {"streamtype": ["stdin"], "x": ["a", "b"]}  # type: ignore[arg-type]


def test_header_block_is_zlib_with_the_dictionary() -> None:
    wire = spdy.Framer().syn_reply(5, {"status": ["200"]})
    block = wire[8 + 4 :]
    raw = zlib.decompressobj(zdict=spdy.DICTIONARY).decompress(block)
    assert raw == struct.pack(">I", 1) + b"\x00\x00\x00\x06status\x00\x00\x00\x03200"


def test_control_frame_header_layout() -> None:
    wire = spdy.rst_stream(7, spdy.RST_CANCEL)
    assert wire == bytes.fromhex("80030003000000080000000700000005")
    assert spdy.ping(2) == bytes.fromhex("800300060000000400000002")


def test_data_frames_split_and_fin() -> None:
    reader = spdy.FrameReader()
    wire = spdy.data_frame(3, b"hello") + spdy.data_frame(3, b"", fin=True)
    # fed one byte at a time, frames come out whole
    frames = [f for i in range(len(wire)) for f in reader.feed(wire[i : i + 1])]
    assert frames == [spdy.DataFrame(3, b"hello"), spdy.DataFrame(3, b"", fin=True)]


def test_data_larger_than_one_frame() -> None:
    big = b"x" * (spdy.MAX_FRAME + 10)
    frames = spdy.FrameReader().feed(spdy.data_frame(1, big, fin=True))
    assert [len(f.data) for f in frames] == [spdy.MAX_FRAME, 10]  # type: ignore[union-attr]
    assert [f.fin for f in frames] == [False, True]


def test_wrong_version_and_garbage_headers_are_errors() -> None:
    bad = struct.pack(">HHI", 0x8002, spdy.PING, 4) + b"\x00\x00\x00\x01"
    with pytest.raises(spdy.SpdyError):
        spdy.FrameReader().feed(bad)
    with pytest.raises(spdy.SpdyError):
        spdy.Framer().decode_headers(b"not zlib")
