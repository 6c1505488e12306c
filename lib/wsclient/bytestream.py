"""A byte stream over a WebSocket's binary messages: how MQTT runs over WebSocket.

    stream = await open_byte_stream("ws://broker:8080/mqtt", subprotocol="mqtt")
    await stream.send(connect_packet)
    data = await stream.recv()

The byte-stream interface (the MQTT session's transport; its TCP twin has
the same three methods):

    await recv() -> bytes-like (bytes or bytearray): the payload of the next
        binary message, never empty while the stream is open; b"" once the
        stream is closed (by either side, or lost). Message boundaries mean
        nothing: one message may hold several MQTT packets or part of one.
        A text message breaks MQTT's rule (MQTT 3.1.1 §6, binary frames only):
        the WebSocket is closed with 1003 and recv() raises
        ProtocolError(1003, ...) naming it.
    await send(data): `data` (bytes-like) as one binary message. Raises
        OSError once the stream is closed or broken.
    await close(): the WebSocket close handshake (code 1000), bounded by the
        connection's close_timeout_ms. Safe to call twice.
"""

from wsserver.errors import ConnectionClosed, ProtocolError
from wsserver.frames import CLOSE_UNSUPPORTED


class WebSocketByteStream:
    """The byte-stream interface on an open wsclient.ClientConnection (or
    dialled.DialledWebSocket: the same recv, send and close)."""

    def __init__(self, ws):
        self.ws = ws

    async def recv(self):
        ws = self.ws
        while True:
            message = await ws.recv()
            if message is None:
                return b""
            if isinstance(message, str):
                reason = "text message on a binary byte stream (MQTT over WebSocket is binary only)"
                await ws.close(CLOSE_UNSUPPORTED, reason)
                raise ProtocolError(CLOSE_UNSUPPORTED, reason)
            if message:
                return message

    async def send(self, data):
        try:
            await self.ws.send(data if not isinstance(data, str) else data.encode())
        except ConnectionClosed as e:
            raise OSError("WebSocket closed (code %s)" % e.code)

    async def close(self):
        await self.ws.close()


async def open_byte_stream(url, subprotocol="mqtt", server=None, **options):
    """connect(url, subprotocols=[subprotocol], **options) as a WebSocketByteStream.

    The server must choose `subprotocol` (None: offer none). server: a
    wsserver Server whose code serves the connection (dialled.dial: the
    car's fleet link; the options are dial's: headers, ssl,
    open_timeout_ms, max_message), so client.py is not loaded."""
    subprotocols = [subprotocol] if subprotocol else None
    if server is not None:
        from .dialled import dial

        ws = await dial(server, url, subprotocols, **options)
    else:
        from .client import connect

        ws = await connect(url, subprotocols=subprotocols, **options)
    return WebSocketByteStream(ws)
