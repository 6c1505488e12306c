# The rules of a WebSocket connection's life as a sans-I/O state machine
# (like the closing state of aaugustin/websockets' Protocol): the close
# handshake (RFC 6455 §7), failing on a protocol error (§7.1.7), loss of the
# TCP connection, and idle pings. Events in, state and the bytes to send out;
# no sockets, no asyncio, no clock (callers pass the times), so it is tested
# alone under CPython and MicroPython (tests/test_state.py).
#
#   state = State()
#   frame = state.close_frame(1000, "bye")   # bytes to write, or None
#   state.peer_closed(1000, "bye")           # their reply: closed
#   state.close_code                         # 1000
#
# connection.WebSocket is a State (no second object per connection) whose
# asyncio code writes what these methods return.

from .frames import CLOSE_ABNORMAL, PING, encode, encode_close


class State:
    """Close, fail, loss and idle-ping state of one connection.

    close_code: None while open; the code it closed with once closed.
    close_sent: our close frame went out (or can no longer go out): nothing
    more may be sent. pinged: an idle ping is out, not answered yet.
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
