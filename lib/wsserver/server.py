# The asyncio server: HTTP requests, static files, WebSocket connections.
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
import time

from . import static
from .errors import ConnectionClosed, HTTPError, ProtocolError
from .frames import (BINARY, CLOSE, CLOSE_ABNORMAL, CLOSE_INTERNAL_ERROR, CLOSE_NORMAL,
                     PING, PONG, TEXT, Codec, encode, encode_close, encode_message, header,
                     payload_view)
from .handshake import check_upgrade, choose_subprotocol, switching_protocols
from .http import error_response, find_head_end, parse_request, response_head

try:
    from time import ticks_diff, ticks_ms
except ImportError:  # CPython
    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b


LARGE = 8192  # bytes: a message this big is sent without copying it into a frame


class WebSocket:
    """One open WebSocket connection, handed to the route's handler."""

    # Class-level defaults: an instance only pays for the attributes it changes
    # (MicroPython keeps instance attributes in a per-object hash table).
    subprotocol = None
    close_code = None  # set once the connection is closed
    close_reason = ""
    dropped = 0  # queued messages dropped because this client was too slow
    _events = None  # received events not handed out yet
    _queue = None  # frames waiting behind a slow socket
    _flushing = False
    _flushed = None  # Event, made only when a sender must wait
    _held = None  # replies held back to be written together (see send)
    _close_sent = False
    _reader = None  # the task reading, while it waits for data
    _pinged = False  # an idle ping is out

    def __init__(self, server, stream, request, subprotocol, ws_id):
        self.server = server
        self.stream = stream
        self.request = request
        self.path = request.path
        if subprotocol:
            self.subprotocol = subprotocol
        self.id = ws_id
        self.codec = Codec(server.max_message)
        self.last_seen = ticks_ms()

    # -- receiving --------------------------------------------------------

    def __aiter__(self):
        return self

    async def recv(self):
        """The next message (str or bytes), or None once the connection is closed.

        Pings are answered and the close handshake is completed here, so keep
        calling it (or `async for`) even on a connection you only send to.
        """
        try:
            return await self.__anext__()
        except StopAsyncIteration:
            return None

    async def __anext__(self):
        # One coroutine from the handler down to the socket read: every
        # coroutine frame alive while a connection waits costs heap.
        while True:
            events = self._events
            if events:
                opcode, payload = events.pop(0)
                if opcode <= BINARY:
                    return payload
                if opcode == PING:
                    self._enqueue(encode(PONG, payload), False)
                elif opcode == CLOSE:
                    await self._closed_by_peer(payload[0], payload[1])
                    raise StopAsyncIteration
                continue
            if self.close_code is not None:
                raise StopAsyncIteration
            if self._held:
                self._release()
            server = self.server
            codec = self.codec
            self._reader = asyncio.current_task()
            try:
                if codec.error is not None:
                    raise codec.error
                big = codec.pending_payload()
                if big is not None and len(big) > len(server._buf):
                    n = await self.stream.readinto(big)  # straight into place, no copy
                    if n:
                        self._events = codec.payload_received(n)
                else:
                    n = await self.stream.readinto(server._buf)
                    if n:
                        self._events = codec.receive(server._view[:n])
                self._reader = None
                if not n:
                    self._lost()
                else:
                    self.last_seen = ticks_ms()
                    if self._pinged:
                        self._pinged = False
            except ProtocolError as e:
                self._reader = None
                await self._fail(e.code, e.reason)
            except MemoryError:
                self._reader = None
                await self._fail(CLOSE_INTERNAL_ERROR, "out of memory")
            except (OSError, asyncio.CancelledError):
                self._reader = None
                self._lost()

    # -- sending ----------------------------------------------------------

    async def send(self, message):
        """Send a str (text frame) or bytes (binary frame); waits while the peer is slow."""
        if self._close_sent or self.close_code is not None:
            raise ConnectionClosed(self.close_code)
        opcode = TEXT if isinstance(message, str) else BINARY
        if len(message) > LARGE:
            # Header and payload written apart: no copy of a large message.
            payload = payload_view(message)
            self._enqueue(header(opcode, len(payload)), False)
            self._enqueue(payload, False)
            if self._flushing:
                await self._wait_flushed()
            return
        frame = encode(opcode, message)
        if self._flushing or self._queue:
            if self._queue is None:
                self._queue = []
            self._queue.append(frame)  # in order, never dropped: we wait instead
            await self._wait_flushed()
        elif self._events:
            # More input is already here (a pipelining client): hold the reply
            # and answer the whole batch with one write before the next read.
            self._hold(frame)
        elif self._write(self._with_held(frame)):
            self._flushing = True
            await self._flush()
        if self.close_code == CLOSE_ABNORMAL:
            raise ConnectionClosed(CLOSE_ABNORMAL)

    def send_nowait(self, message):
        """Queue a message without waiting. When this client's queue is full
        the oldest queued message is dropped: a slow reader gets the newest."""
        self._enqueue(encode_message(message), True)

    def _hold(self, frame):
        held = self._held
        if held is None:
            self._held = [frame]
            # Should the handler wait on something else before reading again,
            # the held replies go out as soon as it yields.
            asyncio.create_task(self._release_soon())
        else:
            held.append(frame)
            if len(held) >= 16:
                self._release()

    def _with_held(self, frame):
        """`frame`, preceded by any held frames, as one buffer."""
        held = self._held
        if not held:
            return frame
        self._held = None
        if frame is not None:
            held.append(frame)
        return b"".join(held)

    def _hold_broadcast(self, frame):
        held = self._held
        if held is None:
            self._held = [frame]
        else:
            held.append(frame)
            if len(held) > self.server.max_queue:
                self._release(True)

    async def _release_soon(self):
        self._release()

    def _release(self, droppable=False):
        """Write the held frames now (called before waiting for input)."""
        if self._held:
            self._enqueue(self._with_held(None), droppable)

    def _enqueue(self, frame, droppable):
        if self._close_sent or self.close_code is not None:
            return False
        if not self._flushing and not self._queue:
            if self._write(self._with_held(frame)):
                self._flushing = True
                asyncio.create_task(self._flush())
            return True
        q = self._queue
        if q is None:
            self._queue = q = []
        if self._held:
            q.append(self._with_held(None))
        q.append(frame)
        if droppable and len(q) > self.server.max_queue:
            q.pop(0)
            self.dropped += 1
        return True

    def _write(self, frame):
        """Write without waiting; True if part of it is still to be sent."""
        stream = self.stream
        try:
            n = stream.s.write(frame) or 0  # None: the socket takes nothing now
        except OSError:
            self._lost()
            return False
        if n < len(frame):
            # Keep the rest where it is (asyncio's Stream.write would copy
            # it); stream.drain() in _flush sends it.
            stream.out_buf = memoryview(frame)[n:]
            return True
        return False

    async def _flush(self):
        # Runs while self._flushing: the only writer that waits on the socket.
        stream = self.stream
        try:
            while True:
                await stream.drain()
                q = self._queue
                if not q:
                    break
                self._write(q.pop(0))
        except (OSError, asyncio.CancelledError):
            self._queue = None
            self._lost()
        finally:
            self._flushing = False
            if self._flushed is not None:
                self._flushed.set()

    async def _wait_flushed(self):
        while self._flushing:
            if self._flushed is None:
                self._flushed = asyncio.Event()
            else:
                self._flushed.clear()
            await self._flushed.wait()

    # -- closing ----------------------------------------------------------

    async def close(self, code=CLOSE_NORMAL, reason=""):
        """Start the close handshake and wait (up to close_timeout_ms) for the peer's reply."""
        if self._close_sent or self.close_code is not None:
            return
        self._send_close(code, reason)
        deadline = ticks_ms() + self.server.close_timeout_ms
        if self._reader is not None:
            # Another task is reading: it will see the peer's close frame.
            while self.close_code is None and ticks_diff(deadline, ticks_ms()) > 0:
                await asyncio.sleep_ms(10)
        else:
            try:
                await asyncio.wait_for_ms(self._drain_until_closed(), self.server.close_timeout_ms)
            except asyncio.TimeoutError:
                pass
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
        await self._shutdown()

    async def _drain_until_closed(self):
        while await self.recv() is not None:
            pass  # data after our close frame is discarded (§5.5.1)

    def _send_close(self, code, reason=""):
        self._enqueue(encode_close(code, reason), False)
        self._close_sent = True

    async def _closed_by_peer(self, code, reason):
        if not self._close_sent:
            self._send_close(code, reason)  # echo the peer's code (§5.5.1)
        self.close_code = code
        self.close_reason = reason
        await self._shutdown()

    async def _fail(self, code, reason):
        """Fail the connection for a protocol error (§7.1.7): send our close
        frame and close TCP, without waiting for a reply we could not parse."""
        if self.server.debug:
            print("ws %d: failing with %d: %s" % (self.id, code, reason))
        self._events = None
        self._held = None
        if not self._close_sent:
            self._send_close(code, reason)
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
        await self._shutdown()

    def abort(self, code=CLOSE_ABNORMAL):
        """Drop the connection now, without a close handshake (a dead peer)."""
        self._lost(code)
        try:
            self.stream.s.close()
        except OSError:
            pass

    def _lost(self, code=CLOSE_ABNORMAL):
        """The TCP connection broke without a close handshake."""
        if self.close_code is None:
            self.close_code = code
        self._close_sent = True
        reader = self._reader
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()

    async def _shutdown(self):
        # The server closes the TCP connection first (§7.1.1), after a
        # bounded wait for what is still queued (our close frame included).
        if self._flushing:
            try:
                await asyncio.wait_for_ms(self._wait_flushed(), self.server.close_timeout_ms)
            except asyncio.TimeoutError:
                pass
        # Unread input would make the kernel answer our close with a reset,
        # which can destroy the close frame still in flight to the peer.
        sock = self.stream.s
        try:
            while sock.readinto(self.server._buf):
                pass
        except OSError:
            pass
        try:
            await self.stream.wait_closed()
        except OSError:
            pass


class Server:
    """A small HTTP + WebSocket server for asyncio on MicroPython.

    Limits (keyword arguments, defaults sized for a board):
      max_clients=4        open WebSockets; more get 503
      max_message=4096     bytes in one WebSocket message; more closes with 1009
      max_queue=8          frames queued per client behind a slow socket
      max_head=2048        bytes in a request head; more gets 431
      max_uri=512          bytes in the request target; more gets 414
      max_headers=32       header fields; more gets 431
      request_timeout_ms=5000  to receive a whole request head; else 408
      close_timeout_ms=2000    to wait for the peer's close frame
      buffer_size=2048     the one receive buffer shared by all connections
      max_pending=8        HTTP requests in progress (head being sent, or a
                           file being served); past it the oldest is dropped
                           (connection floods, slowloris)
      ping_interval_ms=10000  a WebSocket silent this long is pinged ...
      ping_timeout_ms=5000    ... and closed if still silent this much later
                              (0 turns pinging off)
    """

    def __init__(self, static_dir=None, max_clients=4, max_message=4096, max_queue=8,
                 max_head=2048, max_uri=512, max_headers=32, request_timeout_ms=5000,
                 close_timeout_ms=2000, buffer_size=2048, max_pending=8,
                 ping_interval_ms=10000, ping_timeout_ms=5000, debug=False):
        self.static_dir = static_dir
        self.max_clients = max_clients
        self.max_message = max_message
        self.max_queue = max_queue
        self.max_head = max_head
        self.max_uri = max_uri
        self.max_headers = max_headers
        self.request_timeout_ms = request_timeout_ms
        self.close_timeout_ms = close_timeout_ms
        self.max_pending = max_pending
        self.ping_interval_ms = ping_interval_ms
        self.ping_timeout_ms = ping_timeout_ms
        self._heads = {}  # task -> when it started, for connections still sending their head
        self.debug = debug
        self.routes = {}  # WebSocket endpoints
        self.http_routes = {}
        self.clients = set()
        # One buffer for every connection: data is parsed (copied out) before
        # the next await, so no two connections ever use it at once.
        self._buf = bytearray(buffer_size)
        self._view = memoryview(self._buf)
        self._next_id = 1
        self._listener = None
        self._release_pending = False

    def websocket(self, path, subprotocols=None, accept=None):
        """Decorator: `handler(ws)` serves WebSocket connections at `path`.

        subprotocols: the ones we speak, in order of preference.
        accept(request): return None to accept, or an HTTP status (int, or
        (status, reason)) to refuse the handshake before the 101.
        """
        def register(handler):
            self.routes[path] = (handler, subprotocols, accept)
            return handler
        return register

    def route(self, path):
        """Decorator: `handler(request)` answers GET/HEAD at `path` with a str or
        bytes body, or a (status, body, content_type) tuple."""
        def register(handler):
            self.http_routes[path] = handler
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
        for ws in self.clients:
            if path is None or ws.path == path:
                if ws._flushing or ws._queue or ws.close_code is not None or ws._close_sent:
                    if not ws._enqueue(frame, True):
                        continue
                else:
                    ws._hold_broadcast(frame)
                count += 1
        if count and not self._release_pending:
            self._release_pending = True
            asyncio.create_task(self._release_all())
        return count

    async def _release_all(self):
        self._release_pending = False
        for ws in self.clients:
            if ws._held:
                ws._release(True)

    async def start(self, host="0.0.0.0", port=80, backlog=5):
        """Listen, and return once listening; connections are served in the background."""
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
            now = ticks_ms()
            for task, started in tuple(self._heads.items()):
                if ticks_diff(now, started) > self.request_timeout_ms:
                    task.cancel()
            if not interval:
                continue
            for ws in tuple(self.clients):
                idle = ticks_diff(now, ws.last_seen)
                if idle > interval + self.ping_timeout_ms:
                    ws.abort(CLOSE_ABNORMAL)
                elif idle > interval and not ws._pinged:
                    ws._pinged = True
                    ws._enqueue(encode(PING, b"idle?"), False)

    async def serve(self, host="0.0.0.0", port=80):
        await self.start(host, port)
        await self._listener.wait_closed()

    def run(self, host="0.0.0.0", port=80):
        asyncio.run(self.serve(host, port))

    def close(self):
        if self._listener:
            self._listener.close()

    # -- one TCP connection -------------------------------------------------

    async def _serve_connection(self, stream, _writer=None):
        method = None
        heads = self._heads
        if len(heads) >= self.max_pending:
            # A flood (or slowloris): make room by dropping the connection
            # that has been sending its head the longest. A real browser
            # sends its head in one go, so it is never the oldest for long,
            # and a trickle of slow sockets cannot lock the page out.
            oldest = None
            for t, started in heads.items():
                if oldest is None or ticks_diff(started, heads[oldest]) < 0:
                    oldest = t
            del heads[oldest]
            oldest.cancel()
        task = asyncio.current_task()
        try:
            heads[task] = ticks_ms()  # _watch cancels us past request_timeout_ms
            try:
                request, extra = await self._read_request(stream)
            except asyncio.CancelledError:
                raise HTTPError(408, "request head not complete in time")
            finally:
                heads.pop(task, None)
            if request is None:
                return  # the client went away before sending a request
            method = request.method
            route = self.routes.get(request.path)
            if route is not None:
                ws = self._accept_websocket(stream, request, route, extra)
                try:
                    await route[0](ws)
                    if ws.close_code is None:
                        await ws.close(CLOSE_NORMAL)
                except ConnectionClosed:
                    pass
                except ProtocolError as e:
                    await ws._fail(e.code, e.reason)
                except Exception as e:  # the handler crashed: tell the peer, keep serving others
                    if self.debug:
                        sys.print_exception(e)
                    if ws.close_code is None:
                        await ws.close(CLOSE_INTERNAL_ERROR, "internal error")
                finally:
                    self.clients.discard(ws)
                    # The codec may hold a half-received frame (up to max_message):
                    # let it go now, even if something still holds `ws`
                    # (found by tests/test_hardening_dead_peers.py).
                    ws.codec = None
                    if ws.close_code is None:
                        ws.close_code = CLOSE_ABNORMAL
            elif "upgrade" in request.headers:
                raise HTTPError(404, "no WebSocket endpoint at %s" % request.path)
            else:
                # The response too must be taken within request_timeout_ms: a
                # client that never reads must not hold a connection forever.
                heads[task] = ticks_ms()
                try:
                    if request.path in self.http_routes:
                        await self._serve_route(stream, request, self.http_routes[request.path])
                    else:
                        await self._serve_file(stream, request)
                except asyncio.CancelledError:
                    pass
                finally:
                    heads.pop(task, None)
        except HTTPError as e:
            await self._answer_error(stream, e, method == "HEAD")
        except OSError:
            pass
        except Exception as e:  # a bug: answer 500, keep serving everyone else
            if self.debug:
                sys.print_exception(e)
            await self._answer_error(stream, HTTPError(500, "internal error"), False)
        finally:
            try:
                await stream.wait_closed()
            except OSError:
                pass

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
        buf = self._buf
        view = self._view
        data = b""
        while True:
            room = min(len(buf), self.max_head + 1 - len(data))
            n = await stream.readinto(view[:room])
            if not n:
                return None, None
            data += view[:n]  # copied before the next await: the buffer is shared
            end = find_head_end(data, self.max_uri)
            if end >= 0:
                return parse_request(data[:end], self.max_uri, self.max_headers), data[end:]
            if len(data) > self.max_head:
                raise HTTPError(431, "request head over %d bytes" % self.max_head)

    def _accept_websocket(self, stream, request, route, extra):
        """Check the handshake, answer 101, and return the new WebSocket."""
        check_upgrade(request)
        if len(self.clients) >= self.max_clients:
            raise HTTPError(503, "server full: %d WebSocket clients connected" % self.max_clients,
                            [("Retry-After", "2")])
        subprotocols, accept = route[1], route[2]
        if accept is not None:
            verdict = accept(request)
            if verdict is not None and verdict is not True:
                if isinstance(verdict, int):
                    raise HTTPError(verdict, "handshake refused")
                raise HTTPError(verdict[0], verdict[1])
        subprotocol = choose_subprotocol(request, subprotocols)
        response = switching_protocols(request, subprotocol)
        try:  # low latency for small frames, where the stack allows it
            stream.s.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY
        except (OSError, AttributeError):
            pass
        # Headers were for the handshake (and the accept hook); an open
        # connection keeps only its path and query, to save heap.
        request.headers = None
        ws = WebSocket(self, stream, request, subprotocol, self._next_id)
        ws._enqueue(response, False)  # the 101, through the same ordered writer as frames
        self._next_id += 1
        self.clients.add(ws)
        if extra:
            ws._events = ws.codec.receive(extra)
        return ws

    async def _serve_route(self, stream, request, handler):
        if request.method not in ("GET", "HEAD"):
            raise HTTPError(405, "only GET and HEAD are allowed here", [("Allow", "GET, HEAD")])
        result = handler(request)
        status, ctype = 200, "text/plain; charset=utf-8"
        if isinstance(result, tuple):
            status, result, ctype = result
        body = result.encode() if isinstance(result, str) else result
        stream.write(response_head(status, [("Content-Type", ctype), ("Content-Length", len(body)),
                                            ("Cache-Control", "no-store"), ("Connection", "close")]))
        if request.method != "HEAD":
            stream.write(body)
        await stream.drain()

    async def _serve_file(self, stream, request):
        if self.static_dir is None:
            raise HTTPError(404, "not found")
        if request.method not in ("GET", "HEAD"):
            raise HTTPError(405, "only GET and HEAD are allowed here", [("Allow", "GET, HEAD")])
        path, size, etag, ctype, gzipped = static.find(
            self.static_dir, request.path, request.headers.get("accept-encoding", ""))
        headers = [("Content-Type", ctype), ("ETag", etag), ("Cache-Control", "no-cache"),
                   ("Vary", "Accept-Encoding"), ("Connection", "close")]
        if gzipped:
            headers.append(("Content-Encoding", "gzip"))
        match = request.headers.get("if-none-match")
        if match and etag in match:
            stream.write(response_head(304, headers))
            await stream.drain()
            return
        headers.append(("Content-Length", size))
        stream.write(response_head(200, headers))
        if request.method == "HEAD":
            await stream.drain()
            return
        # Stream in chunks through the shared buffer: a file is never read whole.
        buf = self._buf
        view = self._view
        with open(path, "rb") as f:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                stream.write(view[:n])  # whatever the socket doesn't take now is copied
                await stream.drain()
