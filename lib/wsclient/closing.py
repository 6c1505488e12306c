# Closing a client connection (client.ClientConnection, `ws` below): the
# close handshake either side starts and failing the connection (RFC 6455
# §7). Loaded for a close and dropped again (common.load): a car keeps its
# connection open for hours, and this code would sit in its heap all along.
import asyncio

from wsserver.errors import ConnectionClosed
from wsserver.frames import CLOSE, CLOSE_NO_STATUS, CLOSE_NORMAL

from .client import encode_masked


def encode_close(code=CLOSE_NORMAL, reason=""):
    """A masked close frame."""
    if code == CLOSE_NO_STATUS:
        return encode_masked(CLOSE)
    reason = reason.encode() if isinstance(reason, str) else reason
    # Control frames carry at most 125 bytes (§5.5): trim the reason, not the code.
    return encode_masked(CLOSE, bytes((code >> 8, code & 0xFF)) + reason[:123])


async def close(ws, code=CLOSE_NORMAL, reason=""):
    """Start the close handshake: send our close frame, wait (up to
    close_timeout_ms) for the server's and for it to close TCP."""
    if ws.close_sent or ws.close_code is not None:
        return
    await send_close(ws, code, reason)
    try:
        if ws.reading is not None:
            # Another task is reading: it sees the server's close frame.
            await asyncio.wait_for(_wait_closed_by_reader(ws), ws.close_timeout_ms / 1000)
        else:
            await asyncio.wait_for(_drain_until_closed(ws), ws.close_timeout_ms / 1000)
    except asyncio.TimeoutError:
        pass
    if ws.close_code is None:
        ws.close_code = code
        ws.close_reason = reason
    ws.abort()


async def _wait_closed_by_reader(ws):
    # Until the reader has seen the server's close and its TCP close.
    while not ws.finished:
        await asyncio.sleep(0.01)


async def _drain_until_closed(ws):
    # recv()'s loop, data after our close frame discarded (§5.5.1), and the
    # server's close frame taken here (recv() would load this module again).
    while ws.close_code is None:
        events = ws.pending
        if events:
            opcode, payload = events.pop(0)
            if opcode == CLOSE:
                await closed_by_peer(ws, payload[0], payload[1])
        else:
            await ws.read()


async def send_close(ws, code, reason=""):
    if ws.close_sent:
        return
    ws.close_sent = True  # before the await: no second close frame, no data after it
    try:
        await ws.send_frame(encode_close(code, reason))
    except ConnectionClosed:
        pass


async def closed_by_peer(ws, code, reason):
    if not ws.close_sent:
        await send_close(ws, code, reason)  # echo the server's code (§5.5.1)
    ws.close_code = code
    ws.close_reason = reason
    await _wait_for_eof(ws)


async def fail(ws, code, reason):
    """Fail the connection (§7.1.7): our close frame with `code`, then
    wait a bounded time for the server to close TCP."""
    ws.pending = None
    if ws.close_code is None:
        ws.close_code = code
        ws.close_reason = reason
    await send_close(ws, code, reason)
    await _wait_for_eof(ws)


async def _wait_for_eof(ws):
    # The server closes TCP first (§7.1.1); we wait for that, bounded,
    # discarding what still arrives, then close our end.
    try:
        await asyncio.wait_for(_discard_until_eof(ws), ws.close_timeout_ms / 1000)
    except (asyncio.TimeoutError, OSError):
        pass
    ws.abort()


async def _discard_until_eof(ws):
    while True:
        n = await ws.readinto(ws.buf)
        if n == 0:
            return
