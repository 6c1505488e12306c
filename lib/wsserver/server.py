# The asyncio server: connections, WebSocket routes, deadlines, broadcast.
# Each request is answered by upgrade.py or exchange.py (loaded per request).
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

from .connection import ticks_diff, ticks_ms
from .errors import ConnectionClosed, ProtocolError, drop
from .frames import CLOSE_INTERNAL_ERROR, CLOSE_NORMAL, encode_message


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
      unload_http=...      drop the HTTP side's code (upgrade.py, exchange.py,
                           answer.py, http.py, body.py: ~12 KB as
                           .mpy files) whenever no request is in progress, and
                           import it again for the next one. On by default
                           where wsserver runs from .mpy files (on the
                           filesystem or in ROMFS), which import without
                           compiling; off where it runs from .py sources or
                           is frozen into the firmware (its code in flash)

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
    # The module's own file tells how it was loaded: only a .py source would
    # be compiled again by each re-import. (No __file__ on the ESP8266, whose
    # firmware cannot compile this code in its heap anyway.)
    unload_http = not globals().get("__file__", ".mpy").endswith(".py")
    next_id = 1  # the next WebSocket's id
    _listener = None
    _release_pending = False
    tls = None  # the SSLContext, when serving TLS
    tls_open = 0  # TLS sessions in use
    opening = 0  # WebSockets accepted (101 sent) and not yet in clients
    _requests = 0  # connections whose request is in progress

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
            from . import tls  # noqa: F401  (now, not inside a connection's first request)
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

    def admit(self, task):
        """Count `task` as an HTTP request in progress, its deadline starting
        now (`_watch` cancels it past request_timeout_ms). A flood (or
        slowloris) past max_pending makes room by dropping the request in
        progress the longest: a real browser sends its head in one go, so
        it is never the oldest for long, and a trickle of slow sockets
        cannot lock the page out."""
        pending = self.pending
        if len(pending) >= self.max_pending and task not in pending:
            oldest = None
            for t in pending:
                if oldest is None or ticks_diff(pending[t], pending[oldest]) < 0:
                    oldest = t
            del pending[oldest]
            oldest.cancel()
        pending[task] = ticks_ms()

    async def _serve_connection(self, stream, _writer=None):
        # One task per connection, from its request to its WebSocket's end:
        # a task of its own for the WebSocket would cost each connect one
        # more turn of the event loop to start it (five per open and close
        # instead of four, each with its poll() call). The request is served
        # by _request, whose frame (and every value that held the request's
        # code) is gone once it returns: this frame keeps only what the open
        # WebSocket needs.
        tls, ws = await self._request(stream)
        if not ws:  # None, or False: refused (and answered) by upgrade.py
            await self._close(stream, tls)
            return
        self.opening -= 1
        self.clients.add(ws)
        try:
            try:
                await self.ws_routes[ws.request.path][0](ws)
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

    async def _request(self, stream):
        # The request's code is loaded here, at the first request, and with
        # unload_http dropped after the last one: upgrade.py for what looks
        # like a WebSocket upgrade, exchange.py (and what it imports: the
        # head, the upgrade's rules, routes, files, error answers) for
        # anything else and for anything upgrade.py leaves to it.
        self._requests += 1
        tls = ws = None
        try:
            data = b""
            if self.tls is None:
                # The client's first bytes (its whole head, as a rule) are
                # waited for here, with the deadline and the flood rule of
                # any request in progress: they choose the code to load. A
                # connection that sends nothing in request_timeout_ms (a
                # browser's unused preconnect) is closed, loading nothing.
                task = asyncio.current_task()
                self.admit(task)
                try:
                    n = await stream.readinto(self.view[:self.max_head + 1])
                finally:
                    self.pending.pop(task, None)
                data = bytes(self.view[:n]) if n else None
            if data is not None and b"websocket" in data:
                from . import upgrade
                ws = await upgrade.serve(self, stream, data)
            if data is not None and ws is None:
                from . import exchange
                tls, ws = await exchange.serve(self, stream, data)
        except asyncio.CancelledError:  # past the deadline, or dropped for a newer request
            pass
        except OSError:  # the peer reset the connection before its request
            pass
        except MemoryError:
            # No room to load that code (exchange.serve answers its own
            # MemoryErrors): the answer is one constant, from here.
            try:
                stream.write(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\nConnection: close\r\n"
                             b"Content-Type: text/plain\r\n\r\nserver out of memory: retry\n")
                await stream.drain()
            except OSError:
                pass
        finally:
            self._requests -= 1
            if not self._requests and self.unload_http:
                self._unload_http()
        return tls, ws

    def _unload_http(self):
        # The next request imports these again, from .mpy or ROMFS without
        # compiling (unload_http's default is on only there). Every holder
        # of their functions is gone by now: the exchange's coroutines have
        # ended, and its module objects are held by sys.modules and the
        # package alone (the names stay interned).
        for name in "upgrade exchange answer http body".split():
            drop(name)

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
