# One open WebSocket connection: receiving, sending (with write coalescing
# and a bounded queue for slow peers) and closing: the asyncio side of the
# sans-I/O codec and connection state (frames.py: Codec, State). The Server in
# server.py makes these and uses only the seam marked below (docs/server.md,
# "Server and connection").

import asyncio
import socket
from asyncio import current_task

try:
    from asyncio import core
except ImportError:  # CPython
    core = None

from .errors import ConnectionClosed, ProtocolError
from .frames import (BINARY, CLOSE, CLOSE_ABNORMAL, CLOSE_INTERNAL_ERROR, CLOSE_NORMAL,
                     PING, PONG, STR_IS_BUFFER, TEXT, Codec, State, encode, encode_message, header, payload_view)

try:
    from micropython import const
    from time import ticks_diff, ticks_ms
except ImportError:  # CPython. The one fallback: car, hardware.sim and mqtt import it from here.
    import time

    def const(value):
        return value

    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b


_LARGE = const(8192)  # bytes: a message this big is sent without copying it into a frame


# -- the stream adapter -----------------------------------------------------
# asyncio's Stream (extmod/asyncio/stream.py) keeps its socket in `.s` and
# what write() could not send yet in `.out_buf`, neither documented. Only
# this file touches them: read_now(), read_off() and nodelay() below, WebSocket._write
# and abort(); and tls.start() puts a TLS session on `.s`. WebSocket.__anext__
# also does Stream.readinto's two lines itself (core._io_queue.queue_read). (Inline where
# there is one caller: a function costs a board more heap than its lines.)

def read_now(stream, buf):
    """Read what has arrived, without waiting: the byte count, 0 at the end
    of the stream, None when nothing is there yet. (Stream.readinto always
    waits for the poller first: a turn of the event loop and a poll() call
    even when the bytes are there.)"""
    return stream.s.readinto(buf)


def read_off(stream, buf):
    """Read and drop the input waiting now: unread input makes the kernel
    answer our close with a reset, which can destroy the answer (or close
    frame) still in flight to the peer. `stream`: a Stream or a socket."""
    sock = getattr(stream, "s", stream)
    try:
        while sock.readinto(buf):
            pass
    except (OSError, AttributeError):
        pass


def nodelay(stream):
    """Nagle off, for low latency on small frames."""
    try:
        # The socket module's own constants: extmod/modlwip.c (ESP8266)
        # ignores the level and knows TCP_NODELAY as 0x40 (lwIP's TF_NODELAY),
        # printing "lwip.setsockopt() not implemented" for any other option.
        # The Unix port has neither constant: 6 and 1 are Linux's and the BSDs'.
        stream.s.setsockopt(getattr(socket, "IPPROTO_TCP", 6), getattr(socket, "TCP_NODELAY", 1), 1)
    except (OSError, AttributeError):  # a TLS socket has no setsockopt
        pass


class Request:
    """A parsed request head (http.parse_request). An open WebSocket keeps
    this one, headers dropped: its class lives here, with the connection's
    code, not with the parser, which is loaded only while requests are in
    progress."""

    data = None  # the application's, for this request (ws.data for a WebSocket)

    def __init__(self, method, target, path, query, version, headers):
        self.method = method  # "GET"
        self.target = target  # "/ws?token=x", as sent
        self.path = path  # "/ws", percent-decoded
        self.query = query  # {"token": "x"}
        self.version = version  # "HTTP/1.1"
        self.headers = headers  # {"host": "car.local"}, names lower-case


class WebSocket(State):
    """One open WebSocket connection, handed to the route's handler.

    close_code / close_reason (State): None / "" while open. `data`: the
    application's per-connection value, returned by the route's accept hook
    (None without one); the server never reads it.
    """

    # Class-level defaults: an instance only pays for the attributes it changes
    # (MicroPython keeps instance attributes in a per-object hash table).
    # The close and ping state (close_code, close_sent, pinged) is State's.
    subprotocol = None
    data = None
    dropped = 0  # queued messages dropped because this client was too slow
    held = None  # frames held back to be written together (see send, offer)
    _events = None  # received events not handed out yet
    _queue = None  # frames waiting behind a slow socket
    _flushing = False
    _flushed = None  # Event, made only when a sender must wait
    _reader = None  # the task reading, while it waits for data

    def __init__(self, server, stream, request, subprotocol, ws_id, head=None, extra=None, data=None):
        """Made by the server once the handshake is accepted: `head` is the
        101 response, sent first; `extra` the bytes that came after it;
        `data` the accept hook's value."""
        self.server = server
        self.stream = stream
        self.request = request
        if subprotocol:
            self.subprotocol = subprotocol
        if data is not None:
            self.data = data
        self.id = ws_id
        self.codec = Codec(server.max_message)
        self.last_seen = ticks_ms()
        if head:
            self._enqueue(head, False)  # through the same ordered writer as frames
        if extra:
            self._events = self.codec.receive(extra)

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
                    reply = self.peer_closed(payload[0], payload[1])
                    if reply is not None:
                        self._enqueue(reply, False, True)
                    await self._shutdown()
                    raise StopAsyncIteration
                continue
            if self.close_code is not None:
                raise StopAsyncIteration
            if self.held:
                self.release()
            server = self.server
            codec = self.codec
            self._reader = current_task()
            try:
                if codec.error is not None:
                    raise codec.error
                # codec.pending_payload()'s test, inline: a call per read costs
                # more than the rest of an echo's bookkeeping.
                big = codec._frame
                if big is not None and len(big) - codec._have > len(server.buf):
                    n = await self.stream.readinto(codec.pending_payload())  # straight into place, no copy
                    if n:
                        self._events = codec.payload_received(n)
                else:
                    buf = server.buf
                    # Stream.readinto's work, without its generator (one
                    # less to make, resume and finish per message: 3.7k
                    # instructions of a 75k round trip): the task is queued on
                    # asyncio's poller, then suspended once (awaiting a bytes
                    # object yields its one item to the loop, which ignores
                    # it), and the poller wakes it when the socket is readable.
                    sock = self.stream.s
                    core._io_queue.queue_read(sock)
                    await b"r"
                    n = sock.readinto(buf)
                    if n:
                        # One small text message, alone in the read (a phone's
                        # command, an echo): its str straight back, no events list.
                        if 5 < n < 132 and buf[0] == 0x81 and buf[1] == n + 0x7A:
                            text = codec.lone_text(server.view, n)
                            if text is not None:
                                self._reader = None
                                self.last_seen = ticks_ms()
                                if self.pinged:
                                    self.pinged = False
                                return text
                        self._events = codec.receive(server.view[:n], True)
                if n is None:
                    continue  # TLS: part of a record arrived, no data yet
                self._reader = None
                if not n:
                    self._lose()
                else:
                    self.last_seen = ticks_ms()
                    if self.pinged:
                        self.pinged = False  # heard from: the next silence is pinged again
            except ProtocolError as e:
                self._reader = None
                await self.fail_connection(e.code, e.reason)
            except MemoryError:
                self._reader = None
                await self.fail_connection(CLOSE_INTERNAL_ERROR, "out of memory")
            except (OSError, asyncio.CancelledError):
                self._reader = None
                self._lose()

    # -- sending ----------------------------------------------------------

    def send(self, message):
        """Send a str (text frame) or bytes (binary frame); await it: it waits
        while the peer is slow.

        A plain function, not a coroutine: when the frame goes out at once
        (or is held for a pipelining client's batch), as it nearly always
        does, it returns an empty tuple, which `await` takes without a
        coroutine being made and run (on MicroPython that costs more than
        the rest of a small echo). Every case that waits is `_send`.
        """
        if self._flushing or self._queue or self.close_sent:
            return self._send(message)  # waits, or raises ConnectionClosed when awaited
        # The byte length from the view: len() of a str counts characters,
        # a walk over all of it on MicroPython.
        if isinstance(message, str):
            b0 = 0x81  # FIN, text (numbers: TEXT and BINARY are globals here, not const)
            payload = memoryview(message) if STR_IS_BUFFER else message.encode()  # payload_view's work
        else:
            b0 = 0x82  # FIN, binary
            payload = message
        n = len(payload)
        size = n + 2
        if n < 126:
            # A small frame built here, encode()'s work without its calls
            # and branches: header and payload in one buffer.
            frame = bytearray(size)
            frame[0] = b0
            frame[1] = n
            frame[2:] = payload
        elif n > _LARGE:
            return self._send(message)
        else:
            frame = encode(b0 & 0x0F, payload)
            size += 2
        if self._events:
            # More input is already here (a pipelining client): hold the reply
            # and answer the whole batch with one write before the next read.
            self._hold(frame)
            return ()
        if self.held:
            frame = self._with_held(frame)
            size = len(frame)
        # _write's work, inline: the reply's one call on the way out.
        stream = self.stream
        try:
            n = stream.s.write(frame)  # None: the socket takes nothing now
        except OSError:
            self._lose()
            raise ConnectionClosed(CLOSE_ABNORMAL)  # the write failed: connection lost
        if n != size:
            stream.out_buf = memoryview(frame)[n or 0:]
            self._flushing = True
            return self._send(None)  # the rest of it, as the socket takes it
        return ()  # the empty tuple is a constant of the VM, not a heap object

    async def _send(self, message):
        # send() when it has to wait: the socket is busy with earlier frames,
        # the message is large, or (message None) the frame send() wrote is
        # still going out; and the ConnectionClosed of a closed connection.
        if message is None:
            await self._flush()
        else:
            if self.close_sent:  # also set whenever close_code is (State)
                raise ConnectionClosed(self.close_code)
            opcode = TEXT if isinstance(message, str) else BINARY
            payload = payload_view(message)
            if len(payload) > _LARGE:
                # Header and payload written apart: no copy of a large message.
                self._enqueue(header(opcode, len(payload)), False)
                self._enqueue(payload, False)
                if self._flushing:
                    await self._wait_flushed()
                return
            frame = encode(opcode, payload)
            if self._flushing or self._queue:
                if self._queue is None:
                    self._queue = []
                self._queue.append(frame)  # in order, never dropped: we wait instead
                await self._wait_flushed()
            elif self._write(self._with_held(frame)):  # the socket took the earlier frames meanwhile
                self._flushing = True
                await self._flush()
        if self.close_code == CLOSE_ABNORMAL:
            raise ConnectionClosed(CLOSE_ABNORMAL)

    def send_nowait(self, message):
        """Queue a message without waiting. When this client's queue is full
        the oldest queued message is dropped: a slow reader gets the newest."""
        self._enqueue(encode_message(message), True)

    def _hold(self, frame, broadcast=False):
        """Hold `frame` to be written with the ones that follow it.

        Replies are released before the next read, or as soon as the handler
        yields; broadcasts by the server at the end of the loop turn, and may
        be dropped like any broadcast if the client is slow.
        """
        held = self.held
        if held is None:
            self.held = [frame]
            if not broadcast:
                asyncio.create_task(self._release_soon())
        else:
            held.append(frame)
            if len(held) > (self.server.max_queue if broadcast else 15):
                self.release(broadcast)

    # -- the seam: what the server calls (docs/server.md) ---------------------
    # Also `held`: Server.broadcast appends to a list it finds there, and
    # State's attributes.

    def offer(self, frame):
        """Take a broadcast frame (encoded once for all clients): held to be
        written at the end of the loop turn, or queued (droppable) behind a
        slow socket. False if this connection is closing or closed."""
        if self._flushing or self._queue or self.close_sent or self.close_code is not None:
            return self._enqueue(frame, True)  # queued behind a slow socket, or refused
        self._hold(frame, True)
        return True

    def release(self, droppable=False):
        """Write the held frames now: replies before the next read, and
        broadcasts (`droppable`) at the end of the loop turn."""
        if self.held:
            self._enqueue(self._with_held(None), droppable)

    def watch(self, now, ping_interval_ms, ping_timeout_ms):
        """Called by the server's watcher: ping this connection when it has
        been silent, drop it when it stays so (the rule is State.idle's)."""
        todo = self.idle(ticks_diff(now, self.last_seen), ping_interval_ms, ping_timeout_ms)
        if type(todo) is int:
            self.abort(todo)
        elif todo is not None:
            self._enqueue(todo, False)

    async def fail_connection(self, code, reason):
        """Fail the connection for a protocol error (§7.1.7): send our close
        frame and close TCP, without waiting for a reply we could not parse."""
        if self.server.debug:
            print("ws %d: failing with %d: %s" % (self.id, code, reason))
        self._events = None
        self.held = None
        frame = self.fail(code, reason)
        if frame is not None:
            self._enqueue(frame, False, True)
        await self._shutdown()

    def abort(self, code=CLOSE_ABNORMAL):
        """Drop the connection now, without a close handshake (a dead peer)."""
        self._lose(code)
        try:
            self.stream.s.close()  # at once: Stream.close() does nothing, wait_closed() waits
        except OSError:
            pass

    # -- writing --------------------------------------------------------------

    def _with_held(self, frame):
        """`frame`, preceded by any held frames, as one buffer."""
        held = self.held
        if not held:
            return frame
        self.held = None
        if frame is not None:
            held.append(frame)
        elif len(held) == 1:
            return held[0]  # a lone frame needs no copy
        return b"".join(held)

    async def _release_soon(self):
        self.release()

    def _enqueue(self, frame, droppable, close=False):
        # close: our close frame, which State marked as sent already.
        if self.close_sent and not close:  # close_sent: set whenever close_code is
            return False
        if not self._flushing and not self._queue:
            if self._write(self._with_held(frame)):
                self._flushing = True
                asyncio.create_task(self._flush())
            return True
        q = self._queue
        if q is None:
            self._queue = q = []
        if self.held:
            q.append(self._with_held(None))
        q.append(frame)
        if droppable and len(q) > self.server.max_queue:
            q.pop(0)
            self.dropped += 1
        return True

    def _write(self, frame):
        """Write what the socket takes now, without waiting or copying; True
        if part of it is left for stream.drain() (in _flush) to send."""
        stream = self.stream
        try:
            n = stream.s.write(frame) or 0  # None: the socket takes nothing now
        except OSError:
            self._lose()
            return False
        if n < len(frame):
            stream.out_buf = memoryview(frame)[n:]  # kept where it is: Stream.write would copy it
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
            self._lose()
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
        frame = self.close_frame(code, reason)
        if frame is None:
            return  # closing or closed already
        self._enqueue(frame, False, True)
        started = ticks_ms()  # compared by ticks_diff: ticks wrap every 2^30 ms on a board
        if self._reader is not None:
            # Another task is reading: it will see the peer's close frame.
            while self.close_code is None and \
                    ticks_diff(ticks_ms(), started) < self.server.close_timeout_ms:
                await asyncio.sleep_ms(10)
        else:
            try:
                await asyncio.wait_for_ms(self._drain_until_closed(), self.server.close_timeout_ms)
            except asyncio.TimeoutError:
                pass
        self.closed(code, reason)  # no reply in time: our code
        await self._shutdown()

    async def _drain_until_closed(self):
        while await self.recv() is not None:
            pass  # data after our close frame is discarded (§5.5.1)

    def _lose(self, code=CLOSE_ABNORMAL):
        """The TCP connection broke without a close handshake."""
        self.closed(code)
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
        read_off(self.stream, self.server.buf)
        try:
            await self.stream.wait_closed()
        except OSError:
            pass
