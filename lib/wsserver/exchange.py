# One HTTP exchange on a new connection: the request head read and parsed,
# then a WebSocket upgrade checked and answered 101, a route's or a static
# file's response (answer.py), or an error that names the problem. The
# common upgrade is upgrade.py's alone; this is every other request, and
# that one whenever it breaks a rule. An open WebSocket needs none of this
# code: the server loads it while a request is in progress and, with
# Server.unload_http, drops it once none is (docs/memory.md, "Code loaded
# per request").

import asyncio

from .connection import read_now, read_off, ticks_ms
from .errors import HTTPError
from .http import check_upgrade, find_head_end, parse_request


async def serve(server, stream, data):
    """Answer one request on `stream`, whose first bytes (`data`, maybe
    b"") the server has read. Returns [tls, ws]: the plain socket under a
    TLS session (or None), and the accepted WebSocket (or None, and then the
    answer is sent and the stream is the caller's to close)."""
    method = ws = tls = None
    pending = server.pending
    task = asyncio.current_task()
    try:
        server.admit(task)  # Server._watch cancels us past request_timeout_ms
        try:
            if server.tls is not None:
                from . import tls as session  # loaded by Server.start already
                tls = await session.start(server, stream)
            request, extra = await read_request(server, stream, data)
        except asyncio.CancelledError:
            if server.tls is not None:
                # Waiting for a session or mid-handshake: nothing can be
                # said to the peer (a write would wait for its next
                # handshake message), so the connection is just closed.
                return [tls, None]
            raise HTTPError(408, "request head not complete in time")
        finally:
            pending.pop(task, None)
        if request is None:
            return [tls, None]  # the client went away before sending a request
        method = request.method
        route = server.ws_routes.get(request.path)
        if route is not None:
            ws = accept_websocket(server, stream, request, route, extra)
        elif "upgrade" in request.headers:
            raise HTTPError(404, "no WebSocket endpoint at %s" % request.path)
        else:
            from . import answer
            # The response too must be taken within request_timeout_ms: a
            # client that never reads must not hold a connection forever.
            pending[task] = ticks_ms()
            try:
                if request.path in server.http_routes:
                    await answer.route(server, stream, request, server.http_routes[request.path], extra)
                else:
                    await answer.file(server, stream, request)
            except asyncio.CancelledError:
                body = getattr(request, "body", None)
                if body is not None and body.left > 0:
                    raise HTTPError(408, "request body not complete in time")
            finally:
                pending.pop(task, None)
    except OSError as e:
        if tls is not None and e.args[0] == -29184:  # MBEDTLS_ERR_SSL_INVALID_RECORD
            from . import tls as session
            session.not_tls(server, tls)
    except Exception as e:  # a rule broken (HTTPError), no room (MemoryError), a bug
        from . import answer
        await answer.fail(server, stream, e, method == "HEAD")
    if ws is None and (method == "POST" or method == "PUT"):
        read_off(stream, server.buf)  # the body we did not read
    return [tls, ws]


async def read_request(server, stream, data):
    # Read into the shared buffer and keep only what arrived, so a request
    # costs the heap its head really takes, not max_head bytes up front
    # (on a fragmented board heap, that block is what fails first).
    buf = server.buf
    view = server.view
    while True:
        if data:
            if data[0] == 22:
                # A TLS record (handshake, 0x16) on a plain port: say so at
                # once rather than wait for a head that never ends.
                raise HTTPError(400, "this port speaks plain HTTP, not TLS: use http://")
            end = find_head_end(data, server.max_uri)
            if end >= 0:
                return parse_request(data[:end], server.max_uri, server.max_headers), data[end:]
            if len(data) > server.max_head:
                raise HTTPError(431, "request head over %d bytes" % server.max_head)
        room = min(len(buf), server.max_head + 1 - len(data))
        n = None
        if server.tls is None:
            # The rest of a head sent in pieces may be here already.
            n = read_now(stream, view[:room])
        if n is None:
            n = await stream.readinto(view[:room])
        if n is None:
            continue  # TLS: a handshake message or part of a record, no data yet
        if not n:
            return None, data  # no request (data: whatever came; a (None, None) would be a constant tuple)
        data += view[:n]  # copied before the next await: the buffer is shared


def accept_websocket(server, stream, request, route, extra):
    """Check the handshake, answer 101, and return the new WebSocket."""
    check_upgrade(request)
    # Only for an upgrade: a page request never loads upgrade.py.
    from .upgrade import full_reason, open_websocket

    if len(server.clients) + server.opening >= server.max_clients:
        raise HTTPError(503, full_reason(server), ["Retry-After: 2"])
    return open_websocket(server, stream, request, route, extra)
