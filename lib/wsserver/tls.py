# TLS for the server (Server.start(..., ssl=context)): loaded only by a
# server started with an SSLContext, so a plain one carries none of this.
import asyncio

from .http import error_response


async def start(server, stream):
    # Wait for a free session (browsers open several connections for one
    # page; they are served in turn), then wrap the socket. The handshake
    # itself runs inside the first read, under the request deadline.
    while server._tls_open >= server.max_tls:
        await asyncio.sleep_ms(20)
    server._tls_open += 1
    raw = stream.s
    try:  # as _accept_websocket does for plain sockets (a TLS socket has no setsockopt)
        raw.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY
    except (OSError, AttributeError):
        pass
    try:
        stream.s = server._tls.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
    except (OSError, MemoryError):
        server._tls_open -= 1
        raise OSError(12)  # ENOMEM: this connection is closed, the server goes on
    return raw


def not_tls(server, sock):
    # Plain HTTP on the TLS port (someone typed http://): answer in plain
    # text on the socket under the failed session. Its unread input is
    # read first, or the kernel would reset the connection over the answer.
    try:
        while sock.readinto(server._buf):
            pass
    except OSError:
        pass
    try:
        sock.write(error_response(400, "this port speaks HTTPS: use https://", None, False))
    except OSError:
        pass
