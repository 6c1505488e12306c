# The client connection: the shared codec (wsserver.frames.Codec, client
# role) and masked frames (encode_masked) on an open socket. Opening it (TCP/
# TLS, the handshake's request and checks) is handshake.py's, which connect()
# imports for the connect only, after wsurl took the URL apart; closing it is
# closing.py's, imported for a close only; a ping is ping.py's, a message
# sent in pieces frames.py's.
#
#   ws = await connect("ws://127.0.0.1:8080/ws", subprotocols=["mqtt"])
#   await ws.send("hello")
#   reply = await ws.recv()   # str or bytes; None once closed
#   await ws.close()

import asyncio

from os import urandom

from wsserver.errors import ConnectionClosed, ProtocolError
from wsserver.frames import (BINARY, CLOSE, CLOSE_ABNORMAL, CLOSE_INTERNAL_ERROR, CLOSE_NORMAL, PING, PONG,
                             TEXT, Codec, payload_view, unmask)

# HandshakeError and MAX_HEAD: the package's names for them, common.py's.
from .common import MAX_HEAD, HandshakeError, load, open_socket, shut  # noqa: F401

try:
    from asyncio import current_task
except ImportError:  # CPython < 3.7 has it on Task only
    current_task = asyncio.Task.current_task

LARGE = 8192  # bytes: a message longer than this is masked in pieces (frames.py), not copied whole


class ClientConnection:
    """One open client WebSocket; made by connect().

    recv() hands out messages and, while it reads, answers pings and
    completes a close handshake the server starts: keep calling it (or
    `async for`) even on a connection you only send to.

    closing.py (loaded for a close), ping.py (a ping) and frames.py (a
    message sent in pieces) work on `pending`, `close_sent`, `reading`, `finished`,
    `buf`, `writer`, `pong`, read(), readinto(), send_frame(), wire() and
    abort(): that is their interface to the connection.
    """

    # Class-level defaults: an instance pays only for the ones it changes.
    subprotocol = None  # the one the server chose
    close_code = None  # set once the connection is closed
    close_reason = ""
    pending = None  # received events not handed out yet
    close_sent = False
    reading = None  # the task reading, while it waits for data
    pong = None  # [payload, Event] of the ping waiting for its pong
    _early = b""  # bytes that came right behind the 101, in the same read
    finished = False  # TCP closed: the connection is over
    # One frame at a time on the wire: made by the first write the socket
    # does not take at once (wire()), so a connection whose frames always go
    # straight out never loads asyncio's Lock (~430 bytes with its module).
    _lock = None

    def __init__(self, reader, writer, subprotocol, max_message, close_timeout_ms, buffer_size,
                 early=b""):
        self._r = reader
        self.writer = writer  # MicroPython: the same Stream object as reader
        if subprotocol:
            self.subprotocol = subprotocol
        self.close_timeout_ms = close_timeout_ms
        self.codec = Codec(max_message, client=True)
        self.buf = bytearray(buffer_size)
        self._view = memoryview(self.buf)
        if early:
            self._early = early

    # -- receiving --------------------------------------------------------

    def __aiter__(self):
        return self

    async def __anext__(self):
        message = await self.recv()
        if message is None:
            raise StopAsyncIteration
        return message

    async def recv(self):
        """The next message (str for text, bytes-like for binary), or None
        once the connection is closed (close_code says how)."""
        while True:
            events = self.pending
            if events:
                opcode, payload = events.pop(0)
                if opcode == CLOSE:
                    await load("closing").closed_by_peer(self, payload[0], payload[1])
                    return None
                return payload
            if self.close_code is not None:
                return None
            await self.read()

    async def read(self):
        """One read from the socket into the codec; the messages and closes
        it completes go to `pending`, its pings are answered and pongs matched."""
        codec = self.codec
        self.reading = current_task()
        try:
            try:
                if codec.error is not None:
                    raise codec.error
                big = codec.pending_payload()
                early = self._early
                if early:
                    self._early = b""
                    n = len(early)
                    events = codec.receive(early)
                elif big is not None and len(big) > len(self.buf):
                    n = await self.readinto(big)  # a large payload straight into place
                    events = codec.payload_received(n) if n else None
                else:
                    n = await self.readinto(self.buf)
                    events = codec.receive(self._view[:n]) if n else None
            finally:
                self.reading = None
        except ProtocolError as e:
            await self._fail(e.code, e.reason)
            return
        except MemoryError:
            await self._fail(CLOSE_INTERNAL_ERROR, "out of memory")
            return
        except OSError:
            self.abort()
            return
        # asyncio.CancelledError (a caller's wait_for(ws.recv(), ...)) is let
        # through: it comes while waiting for the socket, before any byte is
        # taken, so the connection stays usable.
        if n is None:
            return  # TLS: the socket was readable, but no whole record yet
        if not n:
            self.abort()
            return
        pings = None
        for event in events:
            opcode = event[0]
            if opcode == PING:
                if pings is None:
                    pings = []
                pings.append(event[1])
            elif opcode == PONG:
                pong = self.pong
                if pong is not None and bytes(event[1]) == pong[0]:
                    self.pong = None
                    pong[1].set()
            else:
                if self.pending is None:
                    self.pending = []
                self.pending.append(event)
                if opcode == CLOSE:
                    break  # nothing after the server's close frame counts (§5.5.1)
        if pings:
            for payload in pings:
                # A pong answers the ping it follows (§5.5.3): in order.
                await self.send_frame(encode_masked(PONG, payload), True)

    async def readinto(self, buf):
        readinto = getattr(self._r, "readinto", None)
        if readinto is not None:  # MicroPython's Stream: no copy
            return await readinto(buf)
        data = await self._r.read(len(buf))  # CPython's StreamReader
        buf[:len(data)] = data
        return len(data)

    # -- sending ----------------------------------------------------------

    async def send(self, message, fragment=0):
        """Send a str as a text message, bytes-like as a binary one; with
        fragment > 0, one longer than that goes as frames of at most that
        many payload bytes (RFC 6455 §5.4: for a peer with a frame limit).
        Raises ConnectionClosed once the connection is closing or closed."""
        if self.close_sent or self.close_code is not None:
            raise ConnectionClosed(self.close_code)
        opcode = TEXT if isinstance(message, str) else BINARY
        if fragment or len(message) > LARGE:  # in pieces: frames.py's, loaded for it
            await load("frames").send_pieces(self, opcode, message, fragment)
        else:
            await self.send_frame(encode_masked(opcode, message))

    async def ping(self, data=None, timeout_ms=None):
        """Send a ping and wait for its pong (up to timeout_ms, default
        close_timeout_ms); raises asyncio.TimeoutError if none came.

        The pong is seen by whichever task reads: recv() in another task,
        or this one when no task is reading (messages that arrive meanwhile
        are kept for recv()). ping.py's, loaded for it."""
        await load("ping").ping(self, data, timeout_ms)

    async def send_frame(self, frame, control=False):
        w = self.writer
        lock = self._lock
        if (lock is None or not lock.locked()) and not getattr(w, "out_buf", True):
            # MicroPython, nothing queued and no one mid-write: the socket
            # takes the frame now, so skip the lock and drain()'s yield.
            if control and self.close_sent:
                return
            try:
                w.write(frame)  # whatever the socket does not take goes to out_buf
            except OSError:
                self.abort()
                raise ConnectionClosed(CLOSE_ABNORMAL)
            if not w.out_buf:
                return
            frame = None  # the rest is in out_buf: drain it under the lock
        async with self.wire():
            if control and self.close_sent and frame is not None:
                return  # nothing may follow our close frame (§5.5.1)
            try:
                if frame is not None:
                    w.write(frame)
                await w.drain()
            except OSError:
                self.abort()
                raise ConnectionClosed(CLOSE_ABNORMAL)

    def wire(self):
        """The lock that keeps one frame (or one message's frames) at a time
        on the wire; made by the first write that needs it."""
        lock = self._lock
        if lock is None:
            lock = self._lock = asyncio.Lock()
        return lock

    # -- closing: closing.py's, loaded for it ----------------------------

    async def close(self, code=CLOSE_NORMAL, reason=""):
        """Start the close handshake: send our close frame, wait (up to
        close_timeout_ms) for the server's and for it to close TCP."""
        if not self.close_sent and self.close_code is None:  # else nothing to load it for
            await load("closing").close(self, code, reason)

    async def _fail(self, code, reason):
        # Fail the connection (§7.1.7, closing.fail). With no room even for
        # that code (MemoryError), the connection is dropped instead.
        try:
            closing = load("closing")
        except MemoryError:
            self._lost()
            return
        await closing.fail(self, code, reason)

    def abort(self):
        """Drop the connection now, without a close handshake (the TCP
        connection broke, or the caller gives up on a silent server)."""
        if self.close_code is None:
            self.close_code = CLOSE_ABNORMAL
        self.close_sent = True
        self.finished = True
        shut(self.writer)


def encode_masked(opcode, payload=b"", fin=True):
    """One masked frame (RFC 6455 §5.3, a fresh random key), as a memoryview
    of a buffer made for it. The payload sits at an offset that is a
    multiple of 4 in that buffer, so the word-at-a-time (viper) XOR can
    mask it in place. (frames.py has the header alone, for a message sent
    in pieces.)"""
    payload = payload_view(payload)
    n = len(payload)
    key = urandom(4)
    if n < 126:
        head = bytes(((0x80 if fin else 0) | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes(((0x80 if fin else 0) | opcode, 0xFE, n >> 8, n & 0xFF))
    else:
        head = bytes(((0x80 if fin else 0) | opcode, 0xFF)) + n.to_bytes(8, "big")
    head += key
    pad = -len(head) & 3  # 6, 8 or 14 header bytes -> 2, 0, 2 bytes of padding
    start = pad + len(head)
    frame = bytearray(start + n)
    frame[pad:start] = head
    if n:
        frame[start:] = payload
        unmask(memoryview(frame)[start:], n, key)  # XOR: masking and unmasking are one operation
    return memoryview(frame)[pad:] if pad else frame


async def connect(url, subprotocols=None, headers=None, ssl=None, server_hostname=None,
                  open_timeout_ms=10000, close_timeout_ms=2000, max_message=65536, buffer_size=1024):
    """Open a WebSocket to `url` (ws:// or wss://); returns a ClientConnection.

    subprotocols: offered in order; the server must choose one of them.
    headers: extra request headers, a dict or (name, value) pairs (e.g.
      {"Authorization": "Bearer ..."}).
    ssl: an ssl.SSLContext for wss:// (the default is a new client context:
      CPython's create_default_context(), MicroPython's
      SSLContext(PROTOCOL_TLS_CLIENT), which needs CA data loaded to verify).
    server_hostname: the TLS name to send and check (default: the URL's host).
    open_timeout_ms: deadline for TCP connect, TLS and the handshake together.
    close_timeout_ms: how long close() waits for the server's close frame
      and then for it to close TCP.
    max_message: a longer incoming message fails the connection with 1009.
    buffer_size: the receive buffer (a larger frame is read straight into place).

    Raises HandshakeError (its .status is the HTTP status, or None when no
    answer came in time), ValueError for a bad URL or header, OSError when
    the TCP connection fails.
    """
    reader, writer, subprotocol, early = await open_socket(url, subprotocols, headers, ssl, server_hostname,
                                                           open_timeout_ms)
    # Made here, once handshake.py's code can be freed: its buffer and codec
    # are not allocated on top of it, at the connect's peak.
    try:
        return ClientConnection(reader, writer, subprotocol, max_message, close_timeout_ms, buffer_size, early)
    except MemoryError:
        shut(writer)
        raise
