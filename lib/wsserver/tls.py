# TLS for the server (Server.start(..., ssl=context)): loaded only by a
# server started with an SSLContext, so a plain one carries none of this.
import asyncio

from .connection import nodelay, read_off


async def start(server, stream):
    # Wait for a free session (browsers open several connections for one
    # page; they are served in turn), then wrap the socket. The handshake
    # itself runs inside the first read, under the request deadline.
    while server.tls_open >= server.max_tls:
        await asyncio.sleep_ms(20)
    server.tls_open += 1
    nodelay(stream)  # on the plain socket: a TLS socket has no setsockopt
    raw = stream.s  # asyncio's Stream's socket (see connection.py, the stream adapter)
    try:
        # A server-side session on it; its handshake runs in the first read.
        stream.s = server.tls.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
        return raw  # the plain socket under it
    except (OSError, MemoryError):
        server.tls_open -= 1
        raise OSError(12)  # ENOMEM: this connection is closed, the server goes on


def not_tls(server, sock):
    # Plain HTTP on the TLS port (someone typed http://): answer in plain
    # text on the socket under the failed session. Its unread input is
    # read first, or the kernel would reset the connection over the answer.
    read_off(sock, server.buf)
    from .answer import error_response  # here: tls.py stays loaded, answer.py does not (unload_http)
    try:
        sock.write(error_response(400, "this port speaks HTTPS: use https://", None, False))
    except OSError:
        pass
