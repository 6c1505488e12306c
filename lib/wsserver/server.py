# The asyncio server: HTTP requests, static files, WebSocket routes.
#
#   server = Server(static_dir="web")
#
#   @server.websocket("/ws")
#   async def echo(ws):
#       async for message in ws:
#           await ws.send(message)
#
#   server.run("0.0.0.0", 80)

import asyncio
import sys

from .connection import WebSocket, nodelay, read_now, read_off, ticks_diff, ticks_ms
from .errors import ConnectionClosed, HTTPError, ProtocolError
from .frames import CLOSE_INTERNAL_ERROR, CLOSE_NORMAL, encode_message
from .handshake import check_upgrade, choose_subprotocol, switching_protocols
from .http import error_response, find, find_head_end, parse_request, response_head


class Server:
    """A small HTTP + WebSocket server for asyncio on MicroPython.

    Limits (keyword arguments, defaults sized for a board):
      max_clients=4        open WebSockets; more get 503
      max_message=4096     bytes in one WebSocket message; more closes with 1009
      max_queue=8          frames queued per client behind a slow socket
      max_head=2048        bytes in a request head; more gets 431
      max_uri=512          bytes in the request target; more gets 414
      max_headers=32       header fields; more gets 431
      request_timeout_ms=5000  to receive a whole request head (else 408), and
                               again to send a file or route response
      close_timeout_ms=2000    to wait for the peer's close frame
      buffer_size=2048     the one receive buffer shared by all connections
      buffer=None          or that buffer, a bytearray allocated by the caller:
                           on a small heap, allocate it first thing, before
                           imports leave no free block that large
      max_pending=8        HTTP requests in progress (head being sent, or a
                           file being served); past it the oldest is dropped
                           (connection floods, slowloris)
      ping_interval_ms=10000  a WebSocket silent this long is pinged ...
      ping_timeout_ms=5000    ... and closed if still silent this much later
                              (0 turns pinging off)
      max_tls=3            TLS sessions at once, when started with ssl= (each
                           holds mbedTLS's record buffers, ~20 KB): more
                           connections wait for one to end, within
                           request_timeout_ms. Keep it above max_clients, so
                           the client past max_clients can still be told 503
      debug=False          print handler crashes and protocol failures

    start(host, port, ssl=context) serves HTTPS and WSS: `context` is an
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER) with the certificate loaded.

    For the connection, body and TLS code (docs/server.md, "Server and
    connection"): `buf`/`view` is the one receive buffer, `pending` the HTTP
    requests in progress (task -> ticks_ms when its deadline started),
    `tls` the SSLContext or None, `tls_open` the TLS sessions in use.
    """

    # The limits' defaults live on the class: an instance stores only the
    # ones it is given (MicroPython keeps instance attributes in a per-object
    # hash table, so each costs heap).
    max_clients = 4
    max_message = 4096
    max_queue = 8
    max_head = 2048
    max_uri = 512
    max_headers = 32
    request_timeout_ms = 5000
    close_timeout_ms = 2000
    max_pending = 8
    ping_interval_ms = 10000
    ping_timeout_ms = 5000
    max_tls = 3
    debug = False
    _next_id = 1
    _listener = None
    _release_pending = False
    tls = None  # the SSLContext, when serving TLS
    tls_open = 0  # TLS sessions in use
    _opening = 0  # WebSockets accepted whose task has not started yet

    def __init__(self, static_dir=None, buffer_size=2048, buffer=None, **limits):
        for name in limits:
            # Limits are the public int (or bool) class attributes; not methods.
            if name[0] == "_" or type(getattr(Server, name, None)) not in (int, bool):
                raise TypeError("Server() has no limit named %r" % name)
            setattr(self, name, limits[name])
        self.static_dir = static_dir
        self.pending = {}  # task -> start, for HTTP requests in progress (see _watch)
        self.ws_routes = {}  # path -> (handler, subprotocols, accept)
        self.http_routes = {}  # path -> (handler, methods, max_body, timeout_ms)
        self.clients = set()
        # One buffer for every connection: data is parsed (copied out) before
        # the next await, so no two connections ever use it at once.
        self.buf = buffer if buffer is not None else bytearray(buffer_size)
        self.view = memoryview(self.buf)

    def websocket(self, path, subprotocols=None, accept=None):
        """Decorator: `handler(ws)` serves WebSocket connections at `path`.

        subprotocols: the ones we speak, in order of preference.
        accept(request): return an HTTP status (int, or [status, reason])
        to refuse the handshake before the 101; None or True to accept; or
        any other value to accept and keep it on the connection as ws.data,
        the application's per-connection slot (who the client is, what it
        may do).
        """
        def register(handler):
            self.ws_routes[path] = (handler, subprotocols, accept)
            return handler
        return register

    def route(self, path, methods="GET, HEAD", max_body=0, timeout_ms=0):
        """Decorator: `handler(request)` answers `methods` at `path` with a str
        or bytes body, or a (status, body, content_type) tuple or list (a
        resident module returns a list: a constant tuple stays in the heap); it may be a
        coroutine, and may raise HTTPError to refuse.

        POST/PUT: a body of up to max_body bytes (Content-Length; 411/413
        otherwise) is request.body, a Body to read in pieces. timeout_ms
        (default request_timeout_ms) bounds the whole body; other methods get
        405 with Allow.
        """
        def register(handler):
            self.http_routes[path] = (handler, methods, max_body, timeout_ms)
            return handler
        return register

    def broadcast(self, message, path=None):
        """Send to every open WebSocket (on `path`, if given) without waiting.

        The frame is encoded once. Frames broadcast in one turn of the event
        loop go out together, one write per client. A client whose socket is
        full gets them queued; past max_queue its oldest queued frame is
        dropped. Returns how many clients it was sent to.
        """
        frame = encode_message(message)
        count = 0
        room = self.max_queue  # a client holding fewer frames than this just takes one more
        for ws in self.clients:
            if path is not None and ws.request.path != path:
                continue
            # Fast path, the common case of a burst: this client already holds
            # frames for this turn (so its socket was free and it is open),
            # and has room: append, without the checks offer() repeats.
            held = ws.held
            if held is not None and len(held) < room and ws.close_code is None:
                held.append(frame)
                count += 1
            elif ws.offer(frame):
                count += 1
        if count and not self._release_pending:
            self._release_pending = True
            asyncio.create_task(self._release_all())
        return count

    async def _release_all(self):
        self._release_pending = False
        for ws in self.clients:
            if ws.held:
                ws.release(True)

    async def start(self, host="0.0.0.0", port=80, backlog=5, ssl=None):
        """Listen, and return once listening; connections are served in the background.

        ssl: an SSLContext (server side) to speak TLS on this port. Each
        connection is wrapped here rather than by asyncio's start_server(ssl=),
        whose accept loop allocates the session before anything can count it
        and ends on a MemoryError: here max_tls is checked first and a
        MemoryError ends that one connection."""
        self.tls = ssl
        if ssl is not None:  # the TLS code is loaded only by a server that speaks it
            from . import tls
            self._tls_mod = tls
        self._listener = await asyncio.start_server(self._serve_connection, host, port, backlog)
        asyncio.create_task(self._watch())
        return self._listener

    async def _watch(self):
        # One task keeps every deadline, rather than a timer task per connection:
        # - a request head must arrive within request_timeout_ms (slowloris);
        # - dead peers (a phone that left WiFi, a half-open socket) send
        #   nothing, not even a FIN: ping the silent, drop those that stay so.
        interval = self.ping_interval_ms
        period = self.request_timeout_ms // 4
        if interval:
            period = min(period, min(interval, self.ping_timeout_ms) // 2)
        while True:
            await asyncio.sleep_ms(period or 1)
            self._check_deadlines(ticks_ms())

    def _check_deadlines(self, now):
        # A plain function, not inlined in _watch: a coroutine's frame lives
        # on the heap as long as it does, and MicroPython leaves popped value
        # stack slots as they were, so a connection handled there would stay
        # reachable for the conservative GC after it is dropped (found by
        # tests/server/test_dead_peers.py). This frame is gone on return.
        # No copies of pending or clients are iterated: cancel() and abort()
        # change neither at once (the tasks clean up when they next run).
        pending = self.pending
        for task in pending:
            if ticks_diff(now, pending[task]) > self.request_timeout_ms:
                task.cancel()
        interval = self.ping_interval_ms
        if not interval:
            return
        for ws in self.clients:
            ws.watch(now, interval, self.ping_timeout_ms)

    async def serve(self, host="0.0.0.0", port=80, ssl=None):
        await self.start(host, port, ssl=ssl)
        await self._listener.wait_closed()

    def run(self, host="0.0.0.0", port=80, ssl=None):
        asyncio.run(self.serve(host, port, ssl))

    def close(self):
        if self._listener:
            self._listener.close()

    # -- one TCP connection -------------------------------------------------

    async def _serve_connection(self, stream, _writer=None):
        method = None
        pending = self.pending
        if len(pending) >= self.max_pending:
            # A flood (or slowloris): make room by dropping the connection
            # that has been sending its head the longest. A real browser
            # sends its head in one go, so it is never the oldest for long,
            # and a trickle of slow sockets cannot lock the page out.
            oldest = None
            for t, started in pending.items():
                if oldest is None or ticks_diff(started, pending[oldest]) < 0:
                    oldest = t
            del pending[oldest]
            oldest.cancel()
        task = asyncio.current_task()
        tls = None  # the plain socket under a TLS session
        try:
            pending[task] = ticks_ms()  # _watch cancels us past request_timeout_ms
            try:
                if self.tls is not None:
                    tls = await self._tls_mod.start(self, stream)
                request, extra = await self._read_request(stream)
            except asyncio.CancelledError:
                if self.tls is not None:
                    # Waiting for a session or mid-handshake: nothing can be
                    # said to the peer (a write would wait for its next
                    # handshake message), so the connection is just closed.
                    return
                raise HTTPError(408, "request head not complete in time")
            finally:
                pending.pop(task, None)
            if request is None:
                return  # the client went away before sending a request
            method = request.method
            route = self.ws_routes.get(request.path)
            if route is not None:
                ws = self._accept_websocket(stream, request, route, extra)
                # Served by a task of its own: this coroutine's frame (the
                # biggest, it holds the request parsing's slots) ends here
                # instead of staying in the heap as long as the WebSocket is open.
                asyncio.create_task(self._serve_websocket(stream, ws, route[0], tls))
                stream = tls = None  # closed by _serve_websocket
            elif "upgrade" in request.headers:
                raise HTTPError(404, "no WebSocket endpoint at %s" % request.path)
            else:
                # The response too must be taken within request_timeout_ms: a
                # client that never reads must not hold a connection forever.
                pending[task] = ticks_ms()
                try:
                    if request.path in self.http_routes:
                        await self._serve_route(stream, request, self.http_routes[request.path], extra)
                    else:
                        await self._serve_file(stream, request)
                except asyncio.CancelledError:
                    body = getattr(request, "body", None)
                    if body is not None and body.left > 0:
                        raise HTTPError(408, "request body not complete in time")
                finally:
                    pending.pop(task, None)
        except HTTPError as e:
            await self._answer_error(stream, e, method == "HEAD")
        except OSError as e:
            if tls is not None and e.args[0] == -29184:  # MBEDTLS_ERR_SSL_INVALID_RECORD
                self._tls_mod.not_tls(self, tls)
        except Exception as e:  # a bug: answer 500, keep serving everyone else
            if self.debug:
                sys.print_exception(e)
            await self._answer_error(stream, HTTPError(500, "internal error"), False)
        finally:
            if stream is not None:
                if method == "POST" or method == "PUT":
                    read_off(stream, self.buf)  # the body we did not read
                await self._close(stream, tls)

    async def _close(self, stream, tls):
        try:
            await stream.wait_closed()
        except (OSError, MemoryError):
            pass
        if tls is not None:
            self.tls_open -= 1
            # Closing a TLS socket whose read failed (plain HTTP on
            # this port: MBEDTLS_ERR_SSL_INVALID_RECORD) leaves the
            # plain one open (MicroPython 1.28, tested): close it too.
            tls.close()

    async def _serve_websocket(self, stream, ws, handler, tls):
        self._opening -= 1
        self.clients.add(ws)
        try:
            try:
                await handler(ws)
                if ws.close_code is None:
                    await ws.close(CLOSE_NORMAL)
            except ConnectionClosed:
                pass
            except ProtocolError as e:
                await ws.fail_connection(e.code, e.reason)
            except Exception as e:  # the handler crashed: tell the peer, keep serving others
                if self.debug:
                    sys.print_exception(e)
                if ws.close_code is None:
                    await ws.close(CLOSE_INTERNAL_ERROR, "internal error")
            finally:
                self.clients.discard(ws)
                # The codec may hold a half-received frame (up to max_message):
                # let it go now, even if something still holds `ws`
                # (found by tests/server/test_dead_peers.py).
                ws.codec = None
                ws.closed()  # with 1006 unless it closed before
        except OSError:
            pass
        except Exception as e:  # a bug in closing: keep serving everyone else
            if self.debug:
                sys.print_exception(e)
        finally:
            await self._close(stream, tls)

    async def _answer_error(self, stream, e, head_only):
        try:
            stream.write(error_response(e.status, e.reason, e.headers, head_only))
            await stream.drain()
        except OSError:
            pass

    async def _read_request(self, stream):
        # Read into the shared buffer and keep only what arrived, so a request
        # costs the heap its head really takes, not max_head bytes up front
        # (on a fragmented board heap, that block is what fails first).
        buf = self.buf
        view = self.view
        data = b""
        while True:
            room = min(len(buf), self.max_head + 1 - len(data))
            n = None
            if self.tls is None:
                # A client sends its head right after connecting: it is
                # usually here by the time the connection is accepted.
                n = read_now(stream, view[:room])
            if n is None:
                n = await stream.readinto(view[:room])
            if n is None:
                continue  # TLS: a handshake message or part of a record, no data yet
            if not n:
                return None, data  # no request (data: whatever came; a (None, None) would be a constant tuple)
            if not data and buf[0] == 22:
                # A TLS record (handshake, 0x16) on a plain port: say so at
                # once rather than wait for a head that never ends.
                raise HTTPError(400, "this port speaks plain HTTP, not TLS: use http://")
            data += view[:n]  # copied before the next await: the buffer is shared
            end = find_head_end(data, self.max_uri)
            if end >= 0:
                return parse_request(data[:end], self.max_uri, self.max_headers), data[end:]
            if len(data) > self.max_head:
                raise HTTPError(431, "request head over %d bytes" % self.max_head)

    def _accept_websocket(self, stream, request, route, extra):
        """Check the handshake, answer 101, and return the new WebSocket."""
        check_upgrade(request)
        if len(self.clients) + self._opening >= self.max_clients:
            raise HTTPError(503, "server full: %d WebSocket clients connected" % self.max_clients,
                            ["Retry-After: 2"])
        subprotocols, accept = route[1], route[2]
        data = None
        if accept is not None:
            data = accept(request)
            if data is True:
                data = None
            elif isinstance(data, int):  # False too: a bool is an int
                raise HTTPError(data, "handshake refused")
            elif isinstance(data, list) or isinstance(data, tuple):
                raise HTTPError(data[0], data[1])
        subprotocol = choose_subprotocol(request, subprotocols)
        response = switching_protocols(request, subprotocol)
        nodelay(stream)
        # Headers were for the handshake (and the accept hook); an open
        # connection keeps only its path and query, to save heap.
        request.headers = None
        ws = WebSocket(self, stream, request, subprotocol, self._next_id, response, extra, data)
        self._next_id += 1
        # In self.clients once its task starts, so nothing is broadcast to it
        # before its handler has run (a hello comes first); counted till then.
        self._opening += 1
        return ws

    async def _serve_route(self, stream, request, route, extra):
        handler, methods, max_body, timeout_ms = route
        method = request.method
        if (" " + methods.replace(",", " ") + " ").find(" " + method + " ") < 0:
            raise HTTPError(405, "allowed here: " + methods, [("Allow", methods)])
        if method == "POST" or method == "PUT":
            # Imported by the first body: a server without them never loads
            # the module (nor interns its names).
            from .body import Body
            request.body = Body(self, stream, request, max_body, extra, timeout_ms or self.request_timeout_ms)
        result = handler(request)
        if hasattr(result, "send"):  # a coroutine (a generator on MicroPython)
            result = await result
        status = 200
        ctype = "text/plain; charset=utf-8"
        if isinstance(result, tuple) or isinstance(result, list):
            status, result, ctype = result
        body = result.encode() if isinstance(result, str) else result
        stream.write(response_head(status, [("Content-Type", ctype), ("Content-Length", len(body)),
                                            "Cache-Control: no-store", "Connection: close"]))
        if request.method != "HEAD":
            stream.write(body)
        await stream.drain()

    async def _serve_file(self, stream, request):
        if self.static_dir is None:
            raise HTTPError(404, "not found")
        if request.method != "GET" and request.method != "HEAD":
            raise HTTPError(405, "only GET and HEAD are allowed here", ["Allow: GET, HEAD"])
        path, size, etag, ctype, gzipped = find(
            self.static_dir, request.path, request.headers.get("accept-encoding", ""))
        headers = [("Content-Type", ctype), ("ETag", etag), "Cache-Control: no-cache",
                   "Vary: Accept-Encoding", "Connection: close"]
        if gzipped:
            headers.append("Content-Encoding: gzip")
        match = request.headers.get("if-none-match")
        if match and (etag in match or match.strip() == "*"):  # "*": any current version
            stream.write(response_head(304, headers))
            await stream.drain()
            return
        headers.append(("Content-Length", size))
        stream.write(response_head(200, headers))
        if request.method == "HEAD":
            await stream.drain()
            return
        # Stream in chunks through the shared buffer: a file is never read whole.
        buf = self.buf
        view = self.view
        with open(path, "rb") as f:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                stream.write(view[:n])  # whatever the socket doesn't take now is copied
                await stream.drain()
