# Byte streams an MQTT session runs over. Every transport is an object with
#   async recv() -> bytes-like   the next chunk (b"" once the peer has closed)
#   async send(data)        returns when the bytes are handed to the socket
#   async close()
# so the session does not care whether the bytes go over TCP, TLS or
# WebSocket frames (the WebSocket client provides the same three methods).
# Opening one (the URL, TCP, TLS, the WebSocket) is dial.py's.
from mqtt.codec import _load

READ_SIZE = 256  # a car's messages are small (a longer packet comes in several reads)


class StreamTransport:
    """An asyncio stream pair (TCP, or TLS when opened with an SSL context).

    recv() reads into one buffer of READ_SIZE made with the transport and
    returns a view of it, valid until the next recv() (the session's parser
    copies it at once): a read that allocates its buffer anew each time
    needs a free block of that size in a running car's fragmented heap, and
    a 513-byte one was where the TCP link failed first (esp32 proxy)."""

    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer
        self.buf = bytearray(READ_SIZE)

    async def recv(self):
        buf = self.buf
        readinto = getattr(self.reader, "readinto", None)
        if readinto is None:  # CPython's StreamReader
            return await self.reader.read(READ_SIZE)
        n = None
        while n is None:  # TLS: readable, but no whole record yet
            n = await readinto(buf)
        return memoryview(buf)[:n] if n else b""

    async def send(self, data):
        self.writer.write(data)
        await self.writer.drain()

    async def close(self):
        try:
            self.writer.close()
            await self.writer.wait_closed()
        except Exception:  # already reset by the peer: nothing left to close
            pass


def opener(url, ssl_context=None, ws_options=None):
    """An async function that opens a new transport to url each time it is
    called (the session calls it on every reconnect): mqtt:// (TCP),
    mqtts:// (TLS), ws:// or wss:// (MQTT over WebSocket). ssl_context: for
    mqtts:// and wss:// (default: a new client context, which checks
    certificates where the platform has CA data). ws_options: extra
    arguments for the WebSocket client (max_message, buffer_size, ...).
    A bad url raises ValueError here, naming what is wrong. TCP and TLS
    are opened by dial.py, which the session loads for its connect alone."""
    scheme, host, port, path = _load("dial").split_url(url)
    if scheme[0] == "w":  # ws://, wss://
        async def open_ws():
            # MQTT over WebSocket: binary messages, subprotocol "mqtt", through
            # the WebSocket client's byte stream (the same three methods). Not
            # through dial.py: the handshake's code and dial's would be in the
            # heap together, at the connect's peak.
            from wsclient.bytestream import open_byte_stream

            return await open_byte_stream(url, subprotocol="mqtt", ssl=ssl_context, **(ws_options or {}))
        return open_ws

    async def open_stream():
        # Inside the session's connect, which loads dial.py and drops it after.
        return await _load("dial", True).open_tcp(host, port, ssl_context, scheme == "mqtts")
    return open_stream
