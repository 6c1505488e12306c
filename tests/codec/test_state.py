"""The connection state machine (lib/wsserver/frames.py: State): close handshake,
failing, loss, idle pings, with no socket and no clock. Plain asserts, no
pytest features: this same file runs under CPython (pytest) and inside
MicroPython (tests/support/mp_runner.py, from test_state_micropython.py)."""
import sys

if "lib" not in sys.path:
    sys.path.insert(0, "lib")

from wsserver.frames import CLOSE_ABNORMAL, PING, Codec, State, encode, encode_close

INTERVAL = 10000
TIMEOUT = 5000


def sent(frame):
    """What a client's codec reads from a frame the state asked us to send."""
    return Codec(1000, client=True).receive(bytes(frame))


def test_a_new_connection_is_open():
    s = State()
    assert s.close_code is None and s.close_reason == ""
    assert not s.close_sent and not s.pinged


def test_our_close_is_sent_once_and_the_peer_reply_closes():
    s = State()
    frame = s.close_frame(1000, "bye")
    assert bytes(frame) == bytes(encode_close(1000, "bye"))
    assert s.close_sent and s.close_code is None  # waiting for the reply
    assert s.close_frame(1001, "again") is None
    assert s.fail(1002, "late") is None  # a failure now sends nothing more ...
    assert s.close_code == 1002  # ... but closes with its code: no reply will be read
    s = State()
    s.close_frame(1000, "bye")
    assert s.peer_closed(1000, "ok") is None  # ours went first: nothing to echo
    assert (s.close_code, s.close_reason) == (1000, "ok")


def test_the_peer_closing_first_is_echoed_with_its_code():
    s = State()
    reply = s.peer_closed(1001, "going away")
    assert sent(reply) == [(0x8, (1001, "going away"))]  # §5.5.1: its code echoed
    assert s.close_sent and (s.close_code, s.close_reason) == (1001, "going away")
    assert s.close_frame(1000) is None and s.fail(1002, "x") is None
    assert s.close_code == 1001  # the first code stays


def test_a_close_without_reply_ends_with_our_code():
    s = State()
    s.close_frame(1000, "bye")
    s.closed(1000, "bye")  # no reply in time: closed with our code
    assert (s.close_code, s.close_reason) == (1000, "bye")
    s = State()
    s.close_frame(1000, "bye")
    s.peer_closed(4000, "theirs")
    s.closed(1000, "bye")  # the reply came: its code is kept
    assert (s.close_code, s.close_reason) == (4000, "theirs")


def test_fail_sends_the_close_code_once():
    s = State()
    frame = s.fail(1002, "reserved bits set")
    assert sent(frame) == [(0x8, (1002, "reserved bits set"))]
    assert s.close_sent and (s.close_code, s.close_reason) == (1002, "reserved bits set")
    assert s.fail(1007, "again") is None
    assert s.close_code == 1002


def test_a_long_reason_is_trimmed_to_fit_a_control_frame():
    s = State()
    frame = s.fail(1011, "x" * 300)
    assert len(frame) == 2 + 125  # §5.5: a control frame carries at most 125 bytes
    assert sent(frame) == [(0x8, (1011, "x" * 123))]


def test_a_lost_connection_sends_nothing_and_keeps_a_code_it_had():
    s = State()
    s.closed()
    assert s.close_code == CLOSE_ABNORMAL and s.close_sent
    assert s.close_frame(1000) is None and s.fail(1002, "x") is None
    assert s.close_code == CLOSE_ABNORMAL
    s = State()
    s.peer_closed(1000, "")
    s.closed()
    assert s.close_code == 1000
    s = State()
    s.closed(1001)  # abort(1001)
    assert s.close_code == 1001 and s.close_reason == ""


def test_a_silent_peer_is_pinged_once_then_dropped():
    s = State()
    assert s.idle(0, INTERVAL, TIMEOUT) is None
    assert s.idle(INTERVAL, INTERVAL, TIMEOUT) is None  # not over the interval yet
    ping = s.idle(INTERVAL + 1, INTERVAL, TIMEOUT)
    assert bytes(ping) == bytes(encode(PING, b"idle?")) and s.pinged
    assert s.idle(INTERVAL + 2000, INTERVAL, TIMEOUT) is None  # one ping per silence
    assert s.idle(INTERVAL + TIMEOUT, INTERVAL, TIMEOUT) is None
    assert s.idle(INTERVAL + TIMEOUT + 1, INTERVAL, TIMEOUT) == CLOSE_ABNORMAL
    assert s.close_code is None  # dropping is the caller's (it closes the socket)


def test_a_peer_heard_again_is_pinged_at_its_next_silence():
    s = State()
    assert s.idle(INTERVAL + 1, INTERVAL, TIMEOUT) is not None
    s.pinged = False  # the reader heard from it
    assert s.idle(INTERVAL + 1, INTERVAL, TIMEOUT) is not None


def test_a_closing_connection_is_not_pinged_but_still_dropped():
    s = State()
    s.close_frame(1000)
    assert s.idle(INTERVAL + 1, INTERVAL, TIMEOUT) is None
    assert s.idle(INTERVAL + TIMEOUT + 1, INTERVAL, TIMEOUT) == CLOSE_ABNORMAL
