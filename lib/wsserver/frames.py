# WebSocket framing (RFC 6455 §5) as a sans-I/O codec: bytes in, events out;
# messages in, bytes to send out. No sockets, no asyncio: it runs the same on
# MicroPython and CPython, so it can be unit-tested and fuzzed alone.
#
#   codec = Codec(max_message=65536)
#   for opcode, payload in codec.receive(data): ...
#   wire_bytes = encode(TEXT, "hi")
#
# Events: (TEXT, str), (BINARY, bytes), (PING, bytes), (PONG, bytes),
# (CLOSE, (code, reason)). Broken rules raise ProtocolError(close_code, why).
# State (below) keeps a connection's close and ping rules, sans-I/O too.

import binascii
import hashlib

from .errors import ProtocolError

try:
    from micropython import const
except ImportError:  # CPython
    def const(value):
        return value

# const(): MicroPython puts the number itself into this module's bytecode
# instead of looking the name up per use (the codec runs per message).
CONT = const(0x0)
TEXT = const(0x1)
BINARY = const(0x2)
CLOSE = const(0x8)
PING = const(0x9)
PONG = const(0xA)

CLOSE_NORMAL = const(1000)
CLOSE_GOING_AWAY = const(1001)
CLOSE_PROTOCOL_ERROR = const(1002)
CLOSE_UNSUPPORTED = const(1003)
CLOSE_NO_STATUS = const(1005)
CLOSE_ABNORMAL = const(1006)
CLOSE_INVALID_DATA = const(1007)
CLOSE_POLICY = const(1008)
CLOSE_TOO_BIG = const(1009)
CLOSE_INTERNAL_ERROR = const(1011)

# Why a peer's frames fail the connection: ProtocolError reasons by number,
# worded by wsserver/reasons.py only when one is raised (errors.py), so the
# texts are not string objects in the heap of every car for as long as it runs.
_BAD_UTF8 = const(0)
_RSV_SET = const(1)
_UNMASKED = const(2)
_MASKED = const(3)
_RESERVED_CONTROL = const(4)
_FRAGMENTED_CONTROL = const(5)
_LONG_CONTROL = const(6)
_RESERVED_DATA = const(7)
_TOP_BIT = const(8)
_TOO_BIG = const(9)
_NOTHING_TO_CONTINUE = const(10)
_UNFINISHED = const(11)
_SHORT_CLOSE = const(12)
_BAD_CLOSE_CODE = const(13)
_BAD_CLOSE_REASON = const(14)


# -- unmasking and UTF-8 validation ---------------------------------------------
# unmask(buf, n, key): XOR n bytes of buf in place with the 4-byte key (§5.3).
# utf8_validate(buf, start, end, state): incremental UTF-8 check (_portable.py
# documents the state). Viper code (_native.py) where it loads, ~50x faster
# on a board; its Python twins (_portable.py) where it does not.
try:
    from ._native import unmask, utf8_validate
except (ImportError, SyntaxError, AttributeError, NameError, MemoryError):
    # MemoryError: the ESP8266 keeps viper code in a spare iRAM area of a few
    # hundred bytes (ports/esp8266/modesp.c esp_native_code_commit), too small
    # for _native (tools/board/stage.py leaves it out of that chip's tree).
    from ._portable import unmask, utf8_validate


def valid_close_code(code):
    # §7.4.1 + IANA registry: the codes a peer may put on the wire.
    return 1000 <= code <= 1003 or 1007 <= code <= 1011 or 3000 <= code <= 4999


try:
    memoryview("")
    STR_IS_BUFFER = True  # MicroPython: a str's UTF-8 bytes can be viewed, no copy
except TypeError:
    STR_IS_BUFFER = False  # CPython


def payload_view(payload):
    """A str's UTF-8 bytes, without a copy where the port allows it."""
    if isinstance(payload, str):
        return memoryview(payload) if STR_IS_BUFFER else payload.encode()
    return payload


def encode(opcode, payload=b"", fin=True):
    """One unmasked server frame. `payload`: bytes-like, or str for text."""
    payload = payload_view(payload)
    n = len(payload)
    if n < 126:
        head = 2
    elif n < 65536:
        head = 4
    else:
        head = 10
    # Header and payload in one buffer: one copy, one write.
    frame = bytearray(head + n)
    frame[0] = (0x80 if fin else 0) | opcode
    if head == 2:
        frame[1] = n
    elif head == 4:
        frame[1] = 126
        frame[2] = n >> 8
        frame[3] = n & 0xFF
    else:
        frame[1] = 127
        frame[2:10] = n.to_bytes(8, "big")
    frame[head:] = payload
    return frame


def header(opcode, n, fin=True):
    """Just the header of a server frame with an n-byte payload."""
    b0 = (0x80 if fin else 0) | opcode
    if n < 126:
        return bytes((b0, n))
    if n < 65536:
        return bytes((b0, 126, n >> 8, n & 0xFF))
    return bytes((b0, 127)) + n.to_bytes(8, "big")


def encode_message(message):
    """str -> text frame, bytes-like -> binary frame."""
    if isinstance(message, str):
        return encode(TEXT, message)
    return encode(BINARY, message)


def encode_close(code=CLOSE_NORMAL, reason=""):
    if code == CLOSE_NO_STATUS:
        return encode(CLOSE)
    reason = reason.encode() if isinstance(reason, str) else reason
    # Control frames carry at most 125 bytes (§5.5): trim the reason, not the code.
    return encode(CLOSE, bytes((code >> 8, code & 0xFF)) + reason[:123])


def accept_key(key):
    """Sec-WebSocket-Accept for a client's Sec-WebSocket-Key (§4.2.2): the
    one piece of the opening handshake both roles compute (the server's
    upgrade.py answers with it, lib/wsclient checks it), kept here, where
    both already are, rather than in a module of its own that each connect
    would load. hashlib and binascii are this module's imports, not the
    function's: a built-in module is not kept in sys.modules, so an import
    inside the function would search every sys.path entry for a file of
    that name at each connect (18 stat() calls per handshake on the Unix
    port; on a board, a look in each sys.path folder)."""
    digest = hashlib.sha1(key.encode() + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
    return binascii.b2a_base64(digest).strip().decode()


# -- connection state ---------------------------------------------------------
# The rules of a WebSocket connection's life as a sans-I/O state machine
# (like the closing state of aaugustin/websockets' Protocol): the close
# handshake (RFC 6455 §7), failing on a protocol error (§7.1.7), loss of the
# TCP connection, and idle pings. Events in, state and the bytes to send out;
# no sockets, no asyncio, no clock (callers pass the times), so it is tested
# alone under CPython and MicroPython (tests/codec/test_state.py). Here, not
# in a module of its own: a module costs a board heap (its object, its
# globals, its file name interned) for nothing the class needs.
#
#   state = State()
#   frame = state.close_frame(1000, "bye")   # bytes to write, or None
#   state.peer_closed(1000, "bye")           # their reply: closed
#   state.close_code                         # 1000
#
# connection.WebSocket is a State (no second object per connection) whose
# asyncio code writes what these methods return.

class State:
    """Close, fail, loss and idle-ping state of one connection.

    close_code: None while open; the code it closed with once closed.
    close_sent: our close frame went out (or can no longer go out): nothing
    more may be sent; True whenever close_code is set, so a sender checks
    this one attribute. pinged: an idle ping is out, not answered yet.
    """

    close_code = None
    close_reason = ""
    close_sent = False
    pinged = False

    def close_frame(self, code, reason=""):
        """We start the close handshake: the close frame to send, or None
        when one went out already (or the connection is closed)."""
        if self.close_sent or self.close_code is not None:
            return None
        self.close_sent = True
        return encode_close(code, reason)

    def peer_closed(self, code, reason):
        """The peer's close frame arrived: the connection is closed with its
        code. Returns our reply to send (its code echoed, §5.5.1), or None
        when our close frame went out first."""
        frame = self.close_frame(code, reason)
        self.close_code = code
        self.close_reason = reason
        return frame

    def fail(self, code, reason):
        """Fail the connection (§7.1.7): the close frame to send (None if
        ours went out already); closed with `code` unless it closed before.
        No reply is awaited: TCP is closed next."""
        frame = self.close_frame(code, reason)
        self.closed(code, reason)
        return frame

    def closed(self, code=CLOSE_ABNORMAL, reason=""):
        """The connection is over without the peer's close code: the TCP
        connection broke (1006), or our close got no reply in time (our
        code). Closed with `code` unless it closed before; nothing more is sent."""
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
        self.close_sent = True

    def idle(self, silent_ms, ping_interval_ms, ping_timeout_ms):
        """The peer has been silent for `silent_ms`. Returns None (nothing to
        do), a ping frame to send (silent over ping_interval_ms, once until
        the peer is heard again: the reader clears `pinged`), or the close
        code to drop the connection with (still silent ping_timeout_ms after
        that). The parameters are named as Server's attributes: each new name
        is interned for good."""
        if silent_ms > ping_interval_ms + ping_timeout_ms:
            return CLOSE_ABNORMAL
        if silent_ms > ping_interval_ms and not self.pinged:
            self.pinged = True
            if not self.close_sent and self.close_code is None:
                return encode(PING, b"idle?")
        return None


class Codec:
    """One side of a WebSocket connection's incoming byte stream.

    Codec(max_message) is the server's: masked frames in. Codec(max_message,
    client=True) is a client's: unmasked frames in (lib/wsclient).
    """

    # Class-level defaults: an idle connection's codec stores one attribute.
    _head = b""  # a frame header split across reads (< 14 bytes)
    _frame = None  # payload of a frame still arriving (bytearray)
    _have = 0  # bytes of _frame received so far
    _fin_op = 0  # fin bit | opcode of the frame still arriving
    _key = b""  # its masking key
    _msg_op = 0  # opcode of a fragmented message being assembled, 0 = none
    _msg = None  # its payload so far (bytearray, grows by doubling)
    _msg_len = 0
    _utf8 = 0  # UTF-8 validator state carried across fragments
    _text = False  # the frame still arriving is text: checked as it arrives
    _done = 0  # bytes of that frame unmasked and validated so far
    _tail = 0  # bytes past _done unmasked byte-wise (masked again before the next pass)
    error = None  # a ProtocolError found after events that came before it
    client = False  # the role: False receives masked frames (a server)

    def __init__(self, max_message=65536, client=False):
        self.max_message = max_message
        if client:
            self.client = True

    # -- receiving --------------------------------------------------------

    def receive(self, data, writable=False):
        """Feed bytes from the peer; returns the list of complete events.

        `data` may be a memoryview of a buffer the caller reuses: nothing is
        kept that points into it. writable=True lets the codec unmask text
        in place there (the caller's receive buffer, which it reads into
        afresh): a text message then costs one allocation, its str.
        """
        if self.error is not None:
            raise self.error
        events = []
        # A writable `data` is the caller's memoryview already: no second view.
        mv = data if writable else memoryview(data)
        end = len(mv)
        pos = 0
        limit = self.max_message
        try:
            while pos < end:
                # The fast path below is for a server's buffer it may write
                # in, between messages; checked again after any other frame.
                fast = writable and not self.client and self._frame is None \
                    and not self._head and not self._msg_op
                while fast and end - pos >= 6 and mv[pos] == 0x81:
                    # The common frame, in a few lines: a whole, unfragmented,
                    # masked text message (what _parse would do, minus its
                    # general checks; anything unusual goes to _parse).
                    n = mv[pos + 1] - 0x80
                    start = pos + 6
                    if n == 126 and end - pos >= 8:
                        n = (mv[pos + 2] << 8) | mv[pos + 3]
                        start = pos + 8
                    if n < 0 or n >= 65536 or n == 126 or n == 127 or n > limit or end - start < n:
                        break
                    view = mv[start:start + n]
                    unmask(view, n, mv[start - 4:start])
                    if utf8_validate(view, 0, n, 0):
                        raise ProtocolError(CLOSE_INVALID_DATA, _BAD_UTF8)
                    events.append((TEXT, str(view, "utf-8")))
                    pos = start + n
                if pos >= end:
                    break
                if self._frame is not None:
                    pos = self._fill(mv, pos, end)
                    if self._have == len(self._frame):
                        self._payload_done(events)
                elif self._head:
                    pos = self._resume_header(mv, pos, end, events)
                else:
                    pos = self._parse(mv, pos, end, events, writable)
        except ProtocolError as e:
            if not events:
                raise
            # Hand out what came before the broken frame first; fail after.
            self.error = e
        return events

    def lone_text(self, mv, n):
        """receive()'s result for the commonest read, as the str itself: mv[:n]
        is one whole masked text frame with a 7-bit length (the caller saw
        mv[0] == 0x81 and mv[1] == 0x80 | n - 6). None when a message or
        frame is in progress or the size is over the limit: then receive()
        takes the bytes. No list, no tuple, no frame loop: an echo's read
        costs its str and two memoryviews."""
        n -= 6
        # A client (dialled.py) reads with the server's code: a masked frame
        # from a server is receive()'s to refuse.
        if self._frame is not None or self._head or self._msg_op or n > self.max_message or self.client:
            return None
        text = mv[6:n + 6]
        unmask(text, n, mv[2:6])
        if utf8_validate(text, 0, n, 0):
            raise ProtocolError(CLOSE_INVALID_DATA, _BAD_UTF8)
        return str(text, "utf-8")

    def pending_payload(self):
        """Writable memoryview of the part of a large frame still to arrive, or None.

        Lets the I/O layer read a big payload straight into place; report what
        was read with payload_received(n).
        """
        if self._frame is None:
            return None
        return memoryview(self._frame)[self._have:]

    def payload_received(self, n):
        self._have += n
        if self._text:
            self._check_text()
        events = []
        if self._have == len(self._frame):
            self._payload_done(events)
        return events

    def _fill(self, mv, pos, end):
        frame = self._frame
        take = min(end - pos, len(frame) - self._have)
        frame[self._have:self._have + take] = mv[pos:pos + take]
        self._have += take
        if self._text:
            self._check_text()
        return pos + take

    def _check_text(self):
        # A text frame arriving in pieces is unmasked and validated as each
        # piece arrives, so bad UTF-8 fails the connection with the bad byte,
        # not when the frame completes (RFC 6455 §8.1 "fail fast", Autobahn
        # 6.4.3/6.4.4). Whole words go through the word-wise unmask (aligned,
        # key unrotated); the last 1-3 bytes are unmasked byte by byte to be
        # checked too, and masked again next time, when the word-wise pass
        # covers them. A frame that arrives in one read never comes here.
        frame = self._frame
        have = self._have
        done = self._done
        key = self._key
        if key:
            for i in range(done, done + self._tail):
                frame[i] ^= key[i & 3]
        upto = have if have == len(frame) else have & ~3
        if upto > done:
            if key:
                unmask(memoryview(frame)[done:upto], upto - done, key)
            state = utf8_validate(frame, done, upto, self._utf8)
            if state < 0:
                self._bad_text()
            self._utf8 = state
            self._done = done = upto
        self._tail = have - done
        if have > done:
            if key:
                for i in range(done, have):
                    frame[i] ^= key[i & 3]
            if utf8_validate(frame, done, have, self._utf8) < 0:
                self._bad_text()

    def _bad_text(self):
        self._reset_message()
        raise ProtocolError(CLOSE_INVALID_DATA, _BAD_UTF8)

    def _payload_done(self, events):
        frame = self._frame
        self._frame = None
        if self._text:
            self._text = False  # unmasked and validated already
            self._dispatch(self._fin_op, frame, events, True)
            return
        if self._key:
            unmask(frame, len(frame), self._key)
        self._dispatch(self._fin_op, frame, events)

    def _resume_header(self, mv, pos, end, events):
        old = self._head
        take = min(14 - len(old), end - pos)
        joined = old + bytes(mv[pos:pos + take])
        self._head = b""
        used = self._parse(memoryview(joined), 0, len(joined), events)
        if self._head:
            return pos + take  # still incomplete: all of it is kept as the head
        return pos + used - len(old)

    def _parse(self, mv, pos, end, events, writable=False):
        """Parse one frame at mv[pos:]; returns the new position."""
        avail = end - pos
        if avail < 2:
            self._head = bytes(mv[pos:end])
            return end
        b0 = mv[pos]
        b1 = mv[pos + 1]
        if b0 & 0x70:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, _RSV_SET)
        opcode = b0 & 0x0F
        # A server receives masked frames only, a client unmasked ones only
        # (the role is one class-attribute load per frame: within the noise
        # of the ~5 us a small frame takes here).
        if not b1 & 0x80:
            if not self.client:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, _UNMASKED)
            hlen = 2
        elif self.client:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, _MASKED)
        else:
            hlen = 6
        n = b1 & 0x7F
        if opcode >= 8:
            if opcode > PONG:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, _RESERVED_CONTROL, opcode)
            if not b0 & 0x80:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, _FRAGMENTED_CONTROL)
            if n > 125:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, _LONG_CONTROL)
        elif opcode > BINARY:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, _RESERVED_DATA, opcode)
        if n == 126:
            hlen += 2
        elif n == 127:
            hlen += 8
        if avail < hlen:
            self._head = bytes(mv[pos:end])
            return end
        if n == 126:
            n = (mv[pos + 2] << 8) | mv[pos + 3]
        elif n == 127:
            n = int.from_bytes(bytes(mv[pos + 2:pos + 10]), "big")
            if n >> 63:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, _TOP_BIT)
        if opcode < 8 and n + (self._msg_len if opcode == CONT else 0) > self.max_message:
            raise ProtocolError(CLOSE_TOO_BIG, _TOO_BIG, self.max_message)
        start = pos + hlen
        if end - start >= n:
            # Common case: the whole frame is in this read.
            if opcode == TEXT and b0 & 0x80 and not self._msg_op and (writable or not b1 & 0x80):
                # A whole text message: unmasked where it lies, validated
                # there, and its str made from there (no bytearray copy).
                view = mv[start:start + n]
                if b1 & 0x80:
                    unmask(view, n, mv[start - 4:start])
                if utf8_validate(view, 0, n, 0):
                    raise ProtocolError(CLOSE_INVALID_DATA, _BAD_UTF8)
                events.append((TEXT, str(view, "utf-8")))
                return start + n
            payload = bytearray(mv[start:start + n])
            if b1 & 0x80:
                unmask(payload, n, mv[start - 4:start])
            self._dispatch(b0 & 0x8F, payload, events)
            return start + n
        if b1 & 0x80:
            self._key = bytes(mv[start - 4:start])
        self._fin_op = b0 & 0x8F
        self._frame = bytearray(n)
        self._have = 0
        # Text of the message in progress (a frame that breaks the
        # fragmentation rules is left to _dispatch, which names the rule).
        msg_op = self._msg_op
        if (opcode == TEXT and not msg_op) or (opcode == CONT and msg_op == TEXT):
            self._text = True
            self._done = self._tail = 0
        return self._fill(mv, start, end)

    def _dispatch(self, fin_op, payload, events, checked=False):
        opcode = fin_op & 0x0F
        fin = fin_op & 0x80
        if opcode >= 8:
            if opcode == CLOSE:
                events.append((CLOSE, self._close_payload(payload)))
            else:
                events.append((opcode, bytes(payload)))
            return
        if opcode == CONT:
            if not self._msg_op:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, _NOTHING_TO_CONTINUE)
            opcode = self._msg_op
        elif self._msg_op:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, _UNFINISHED)
        if opcode == TEXT:
            state = self._utf8 if checked else utf8_validate(payload, 0, len(payload), self._utf8)
            if state < 0 or (fin and state):
                self._reset_message()
                raise ProtocolError(CLOSE_INVALID_DATA, _BAD_UTF8)
            self._utf8 = state
        if fin and not self._msg_op:
            # Binary payloads are handed out as the bytearray they were
            # unmasked in: no one else holds it, and a copy would double the
            # heap a large message needs.
            events.append((opcode, str(payload, "utf-8") if opcode == TEXT else payload))
            return
        self._append(opcode, payload)
        if fin:
            data = memoryview(self._msg)[:self._msg_len]
            events.append((opcode, str(data, "utf-8") if opcode == TEXT else bytes(data)))
            self._reset_message()

    def _append(self, opcode, payload):
        self._msg_op = opcode
        need = self._msg_len + len(payload)
        msg = self._msg
        if msg is None or len(msg) < need:
            # Doubling, but never past the limit (need <= max_message is
            # checked from the frame header): no slack beyond max_message.
            grown = bytearray(min(max(need, 2 * self._msg_len, 64), self.max_message))
            if msg is not None:
                grown[:self._msg_len] = memoryview(msg)[:self._msg_len]
            self._msg = msg = grown
        msg[self._msg_len:need] = payload
        self._msg_len = need

    def _reset_message(self):
        self._msg_op = 0
        self._msg = None
        self._msg_len = 0
        self._utf8 = 0

    @staticmethod
    def _close_payload(payload):
        n = len(payload)
        if n == 0:
            # No status: (1005, "") built like any other answer, not as a
            # constant tuple that would stay in the heap.
            code = CLOSE_NO_STATUS
        elif n == 1:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, _SHORT_CLOSE)
        else:
            code = (payload[0] << 8) | payload[1]
            if not valid_close_code(code):
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, _BAD_CLOSE_CODE, code)
            if utf8_validate(payload, 2, n, 0) != 0:
                raise ProtocolError(CLOSE_INVALID_DATA, _BAD_CLOSE_REASON)
        return (code, str(payload[2:], "utf-8"))
