# One open WebSocket connection: receiving, sending (with write coalescing
# and a bounded queue for slow peers) and closing. The asyncio side of the
# codec in frames.py; the Server in server.py creates these.

import asyncio
from asyncio import current_task

from .errors import ConnectionClosed, ProtocolError
from .frames import (BINARY, CLOSE, CLOSE_ABNORMAL, CLOSE_INTERNAL_ERROR, CLOSE_NORMAL,
                     PING, PONG, TEXT, Codec, encode, encode_close, encode_message, header,
                     payload_view)

try:
    from time import ticks_diff, ticks_ms
except ImportError:  # CPython. The one fallback: car, hardware.sim and mqtt import it from here.
    import time

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
            self._reader = current_task()
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
                        self._events = codec.receive(server._view[:n], True)
                if n is None:
                    continue  # TLS: part of a record arrived, no data yet
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
        # The byte length from the view: len() of a str counts characters,
        # a walk over all of it on MicroPython.
        payload = payload_view(message)
        if len(payload) > LARGE:
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

    def _hold(self, frame, broadcast=False):
        """Hold `frame` to be written with the ones that follow it.

        Replies are released before the next read, or as soon as the handler
        yields; broadcasts by the server at the end of the loop turn, and may
        be dropped like any broadcast if the client is slow.
        """
        held = self._held
        if held is None:
            self._held = [frame]
            if not broadcast:
                asyncio.create_task(self._release_soon())
        else:
            held.append(frame)
            if len(held) > (self.server.max_queue if broadcast else 15):
                self._release(broadcast)

    def _broadcast(self, frame):
        """Take a broadcast frame; False if this connection is closed."""
        if self._flushing or self._queue or self._close_sent or self.close_code is not None:
            return self._enqueue(frame, True)  # queued behind a slow socket, or refused
        self._hold(frame, True)
        return True

    def _with_held(self, frame):
        """`frame`, preceded by any held frames, as one buffer."""
        held = self._held
        if not held:
            return frame
        self._held = None
        if frame is not None:
            held.append(frame)
        elif len(held) == 1:
            return held[0]  # a lone frame needs no copy
        return b"".join(held)

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
