# A WebSocket client for asyncio on MicroPython (and CPython), on the same
# sans-I/O codec as the server (wsserver.frames). Only code that dials out
# imports it: a plain car never does.
#
#   from wsclient import connect
#   ws = await connect("wss://broker.example:8884/mqtt", subprotocols=["mqtt"], ssl=ctx)
#
# wsclient.bytestream.WebSocketByteStream carries a byte stream (MQTT) over
# binary messages.
# The server package first, from here: imported from inside .client it would
# nest every module's import one level deeper, and a deep chain of imports
# overflows a board's C stack (the esp32 proxy showed it).
import wsserver  # noqa: F401
from .client import ClientConnection, HandshakeError, connect
from wsserver.errors import ConnectionClosed, ProtocolError

__all__ = ["connect", "ClientConnection", "HandshakeError", "ConnectionClosed", "ProtocolError"]
