# What the client's modules share and what outlives each connect: the
# refusal (HandshakeError), closing a socket, and open_socket(), the URL
# and the opening handshake up to an open stream. client.py's
# ClientConnection and dialled.py's DialledWebSocket are both made on what
# open_socket() returns.

MAX_HEAD = 4096  # bytes: a longer response head is refused


class HandshakeError(Exception):
    """The server did not open a WebSocket.

    status: the HTTP status it answered (e.g. 301, 401, 404), 101 when the
    101 itself broke a rule, or None when no answer came (a deadline passed,
    the connection closed). headers: the response's headers (names in lower
    case), or None.
    """

    def __init__(self, status, message, headers=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def load(name):
    """wsclient.<name>, imported for one use and dropped from sys.modules at
    once: handshake.py (TCP/TLS, the request and the response checks;
    ~2.8 KB on a 32-bit board) for a connect, closing.py for a close,
    ping.py for a ping, frames.py for a message sent in pieces, so an open
    connection does not keep their code in the heap (HandshakeError, which
    callers catch, is defined here: one class, however often handshake.py
    is loaded)."""
    import sys

    import wsclient

    __import__("wsclient." + name)
    wsclient.__dict__.pop(name, None)
    return sys.modules.pop("wsclient." + name)


def shut(writer):
    """Close a connection's socket now."""
    try:
        writer.close()
    except OSError:
        pass
    # MicroPython's Stream.close() does nothing; wait_closed() closes the socket.
    sock = getattr(writer, "s", None)
    if sock is not None:
        try:
            sock.close()
        except OSError:
            pass


async def open_socket(url, subprotocols, headers, ssl, server_hostname, open_timeout_ms):
    """(reader, writer, the subprotocol chosen, the bytes that came behind the
    101 in the same read) for a WebSocket opened to `url`; raises what
    client.connect() documents. The URL first, with wsurl alone (ValueError
    for a bad one), then the handshake's code: the two are not loaded on top
    of each other, and neither stays."""
    import sys

    from wsurl import parse_url

    sys.modules.pop("wsurl", None)
    parts = parse_url(url)
    del parse_url
    return await load("handshake").open_connection(url, parts, subprotocols, headers, ssl, server_hostname,
                                                   open_timeout_ms)
