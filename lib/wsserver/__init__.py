# A small WebSocket + HTTP server for MicroPython (and CPython where free).
# Knows nothing of cars: see lib/car for the application.
from .server import Server
from .errors import ConnectionClosed, HTTPError, ProtocolError
from .connection import WebSocket

__version__ = "0.1.0"
__all__ = ["Server", "WebSocket", "ConnectionClosed", "HTTPError", "ProtocolError"]
