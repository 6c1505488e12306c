# A client WebSocket served by the server's own connection code: the
# WebSocket of wsserver.connection in the client role, for a program whose
# server is loaded anyway (the car's uplink, its fleet link over
# WebSocket). It costs the heap this module (~1.0 KB on the esp32 proxy)
# instead of client.py's ~3.7 KB and its receive buffer: reads go into the
# server's buffer, as its own clients' do, and the receiving, queueing,
# closing and idle-ping rules are the server's, tested there.
#
#   ws = await dial(server, "ws://10.0.0.2:8080/car", open_timeout_ms=5000, max_message=1024)
#   await ws.send(text)        # masked, as a client's frames must be (RFC 6455 §5.3)
#   message = await ws.recv()  # None once closed
#   ws.watch(now, quiet_ms, pong_ms)  # the server's idle rule: ping when quiet, drop when it stays so
#
# What the client role changes: every frame goes out masked (in _write, the
# one place all frames pass, so pongs, close frames and idle pings are masked
# too), frames must come in unmasked (the codec's client role), and send()
# takes messages up to 8 KB (the server sends larger ones as a header and a
# payload written apart, which _write cannot mask as one frame).
# client.connect() is the general client: standalone, with ping() that waits
# for its pong, messages of any size sent in pieces.

from os import urandom

from wsserver.connection import WebSocket, nodelay
from wsserver.frames import Codec, payload_view, unmask

_LARGE = 8192  # connection.py's _LARGE: a longer message it writes as header and payload apart


class DialledWebSocket(WebSocket):
    """The server's WebSocket, on a connection we opened (dial())."""

    def __init__(self, server, stream, subprotocol, max_message, early):
        WebSocket.__init__(self, server, stream, None, subprotocol, -1)
        self.codec = Codec(max_message, True)  # unmasked frames in
        if early:
            self._events = self.codec.receive(early)

    def send(self, message):
        """Send a str (text) or bytes (binary) of up to 8 KB; await it."""
        if len(payload_view(message)) > _LARGE:
            raise ValueError("message over %d bytes" % _LARGE)
        return self._send(message)  # not send()'s inline write: every frame through _write

    def _write(self, frame):
        # One frame at a time comes here: the server's connection joins
        # frames only when it holds them, which send()'s inline path and
        # broadcasts do, and neither reaches this class.
        src = memoryview(frame)
        length = src[1]  # the 7-bit length, or 126/127 for a 16/64-bit one after it
        head = 2 if length < 126 else 4 if length == 126 else 10
        out = bytearray(len(src) + 4)
        out[:head] = src[:head]
        out[1] |= 0x80  # MASK
        key = urandom(4)
        out[head:head + 4] = key
        out[head + 4:] = src[head:]
        unmask(memoryview(out)[head + 4:], len(src) - head, key)  # XOR: masking and unmasking are one operation
        return WebSocket._write(self, out)


async def dial(server, url, subprotocols=None, headers=None, ssl=None, open_timeout_ms=10000,
               max_message=4096):
    """Open a WebSocket to `url` (ws:// or wss://) served by `server`'s code
    and buffer (a wsserver Server; its close_timeout_ms, max_queue and debug
    apply); the arguments and errors are client.connect()'s."""
    import sys

    import wsclient

    # common.py for the connect only (handshake.py, which it loads, imports
    # it too): the link has no use for it once open. Kept where it was
    # loaded before (client.py's, whose HandshakeError callers catch).
    loaded = "wsclient.common" in sys.modules
    from wsclient import common

    try:
        stream, _, subprotocol, early = await common.open_socket(url, subprotocols, headers, ssl, None,
                                                                 open_timeout_ms)
    finally:
        del common
        if not loaded:
            sys.modules.pop("wsclient.common", None)
            wsclient.__dict__.pop("common", None)
    nodelay(stream)
    return DialledWebSocket(server, stream, subprotocol, max_message, early)
