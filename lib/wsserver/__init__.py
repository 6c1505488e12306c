# A small WebSocket + HTTP server for MicroPython (and CPython where free).
# Knows nothing of cars: see lib/car for the application.
# server first, out of alphabetical order: run from .py sources, each module
# is compiled on import, and the biggest one compiles best while the heap is
# still empty (docs/memory.md section 6).
from .server import Server
from .errors import ConnectionClosed, HTTPError, ProtocolError
from .connection import WebSocket

__version__ = "0.1.0"
__all__ = ["Server", "WebSocket", "ConnectionClosed", "HTTPError", "ProtocolError"]
