# A client's ping waiting for its pong (client.ClientConnection.ping, `ws`
# below). Loaded for each ping and dropped again (common.load): a car's
# uplink pings only a server that has been quiet for a while.
import asyncio

from wsserver.errors import ConnectionClosed
from wsserver.frames import CLOSE, PING

from .client import encode_masked


async def ping(ws, data=None, timeout_ms=None):
    """ClientConnection.ping(): send a ping, wait for its pong."""
    if data is None:
        from os import urandom
        data = urandom(4)
    data = bytes(data)
    if len(data) > 125:
        raise ValueError("ping payload over 125 bytes (RFC 6455 §5.5)")
    event = asyncio.Event()
    ws.pong = [data, event]
    await ws.send_frame(encode_masked(PING, data))
    await asyncio.wait_for(_await_pong(ws, event),
                           (timeout_ms if timeout_ms is not None else ws.close_timeout_ms) / 1000)


async def _await_pong(ws, event):
    while not event.is_set():
        if ws.close_code is not None or (ws.pending and ws.pending[-1][0] == CLOSE):
            raise ConnectionClosed(ws.close_code)
        if ws.reading is None:
            await ws.read()
        else:
            await event.wait()
