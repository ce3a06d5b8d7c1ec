"""Relaying one WebSocket session to another, message for message.

The API server stands between a client and somebody else's WebSocket server in two
places: exec/attach/port-forward sessions it hands to a kubelet
(:mod:`pyk8s.apiserver.kubeletproxy`) and upgrades under an aggregated API it hands to an
extension API server (:mod:`pyk8s.apiserver.aggregator.proxy`). Both copy TEXT and
BINARY messages as they are, in both directions, and pass on the close code of whichever
side ended first.
"""

from __future__ import annotations

import contextlib

import aiohttp
from aiohttp import web

__all__ = ["relay_messages", "sendable_close_code"]


def sendable_close_code(close_code: int | None) -> int:
    """A close code to pass on: the peer's, unless it is one that only says no close
    frame came (1005, 1006: the other side just ended), which never goes on the wire."""
    unsendable = (aiohttp.WSCloseCode.ABNORMAL_CLOSURE, 1005, 1015)
    if close_code is None or close_code in unsendable:
        return aiohttp.WSCloseCode.OK
    return close_code


async def relay_messages(
    source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
) -> None:
    """Every TEXT and BINARY message of ``source`` to ``sink``, until ``source`` closes;
    then ``sink`` is closed with the same code."""
    with contextlib.suppress(ConnectionError):
        async for msg in source:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await sink.send_str(msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await sink.send_bytes(msg.data)
        await sink.close(code=sendable_close_code(source.close_code))
