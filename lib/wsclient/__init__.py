# A WebSocket client for asyncio on MicroPython (and CPython), on the same
# sans-I/O codec as the server (wsserver.frames). Only code that dials out
# imports it: a plain car never does.
#
#   from wsclient import connect
#   ws = await connect("wss://broker.example:8884/mqtt", subprotocols=["mqtt"], ssl=ctx)
#
# wsclient.bytestream.WebSocketByteStream carries a byte stream (MQTT) over
# binary messages. wsclient.dialled.dial() opens one served by the car's
# own server code (the uplink's). connect, ClientConnection and
# HandshakeError are client.py's, imported on first use: dialled.py's users
# do not load it.
# The server package first, from here: imported from inside .client it would
# nest every module's import one level deeper, and a deep chain of imports
# overflows a board's C stack (the esp32 proxy showed it).
import wsserver  # noqa: F401
from wsserver.errors import ConnectionClosed, ProtocolError  # noqa: F401

__all__ = ["connect", "ClientConnection", "HandshakeError", "ConnectionClosed", "ProtocolError"]


def __getattr__(name):
    if name in __all__:
        from . import client

        value = globals()[name] = getattr(client, name)
        return value
    # A submodule (`from wsclient import texts`): with a module __getattr__,
    # MicroPython's from-import asks it rather than importing the file itself.
    import sys

    try:
        __import__("wsclient." + name)
    except ImportError:
        raise AttributeError(name)
    return sys.modules["wsclient." + name]
