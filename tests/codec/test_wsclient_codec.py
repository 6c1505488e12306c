"""The codec's client role and the client's masked frames. Plain asserts, no pytest
features: this file runs under CPython (pytest) and inside MicroPython (tests/support/mp_runner.py,
from tests/client/test_wsclient.py), board proxies included."""
import sys

if "lib" not in sys.path:
    sys.path.insert(0, "lib")

from wsclient import closing
from wsclient import frames as cframes
from wsclient.handshake import HandshakeError, check_response, new_key, parse_response, parse_url, request
from wsserver import frames
from wsserver.errors import ProtocolError
from wsserver.frames import accept_key


def pattern(n):
    return bytes((i * 13 + 5) & 0xFF for i in range(n))


def server_decode(data, max_message=1 << 20):
    return frames.Codec(max_message).receive(data)


def client_decode(data, max_message=1 << 20):
    return frames.Codec(max_message, client=True).receive(data)


def protocol_error(codec, data):
    try:
        codec.receive(data)
    except ProtocolError as e:
        return e.code, e.reason
    raise AssertionError("no ProtocolError")


def test_client_codec_reads_unmasked_server_frames():
    data = bytes(frames.encode(frames.TEXT, "héllo")) + bytes(frames.encode(frames.BINARY, b"\x00\x01"))
    assert client_decode(data) == [(frames.TEXT, "héllo"), (frames.BINARY, bytearray(b"\x00\x01"))]


def test_client_codec_reassembles_fragments_fed_a_byte_at_a_time():
    text = "wö" * 100  # 300 bytes: a 16-bit length, and é split across frames
    raw = text.encode()
    data = (bytes(frames.encode(frames.TEXT, raw[:151], fin=False))
            + bytes(frames.encode(frames.PING, b"p"))
            + bytes(frames.encode(frames.CONT, raw[151:], fin=True)))
    codec = frames.Codec(1 << 16, client=True)
    events = []
    for i in range(len(data)):
        events += codec.receive(data[i:i + 1])
    assert events == [(frames.PING, b"p"), (frames.TEXT, text)], events


def test_client_codec_large_frame_through_pending_payload():
    payload = pattern(50000)
    data = bytes(frames.encode(frames.BINARY, payload))
    codec = frames.Codec(1 << 16, client=True)
    assert codec.receive(data[:1000]) == []
    rest = data[1000:]
    view = codec.pending_payload()
    assert len(view) == len(rest)
    view[:] = rest
    assert codec.payload_received(len(rest)) == [(frames.BINARY, bytearray(payload))]


def test_roles_refuse_the_other_sides_masking():
    code, reason = protocol_error(frames.Codec(100, client=True), cframes.encode_masked(frames.TEXT, "hi"))
    assert (code, reason) == (1002, "server frames must not be masked (RFC 6455 §5.1)")
    code, reason = protocol_error(frames.Codec(100), frames.encode(frames.TEXT, "hi"))
    assert (code, reason) == (1002, "client frames must be masked (RFC 6455 §5.1)")


def test_client_codec_enforces_max_message_with_1009():
    code, reason = protocol_error(frames.Codec(10, client=True), frames.encode(frames.BINARY, bytes(11)))
    assert (code, reason) == (1009, "message over the 10-byte limit")


def test_masked_frames_round_trip_through_the_server_codec():
    for n in (0, 1, 3, 4, 5, 125, 126, 127, 1000, 65535, 65536, 70001):
        payload = pattern(n)
        frame = cframes.encode_masked(frames.BINARY, payload)
        assert frame[1] & 0x80, n  # mask bit set
        assert server_decode(bytes(frame)) == [(frames.BINARY, bytearray(payload))], n
    assert server_decode(bytes(cframes.encode_masked(frames.TEXT, "é" * 70))) == [(frames.TEXT, "é" * 70)]


def test_masked_frames_use_a_fresh_key_each():
    keys = set()
    for _ in range(20):
        frame = bytes(cframes.encode_masked(frames.TEXT, "same"))
        keys.add(frame[2:6])
    assert len(keys) == 20  # 20 draws of 32 random bits: a repeat is a broken generator


def test_masked_pieces_round_trip():
    for n in (8193, 4096 * 3, 4097, 100000):
        payload = pattern(n)
        data = b"".join(bytes(piece) for piece in cframes.masked_pieces(frames.BINARY, payload))
        assert server_decode(data) == [(frames.BINARY, bytearray(payload))], n
    text = "ü" * 6000
    data = b"".join(bytes(piece) for piece in cframes.masked_pieces(frames.TEXT, text))
    assert server_decode(data) == [(frames.TEXT, text)]


def test_masked_close_frame():
    assert server_decode(bytes(closing.encode_close(4001, "bye"))) == [(frames.CLOSE, (4001, "bye"))]
    assert server_decode(bytes(closing.encode_close(1005))) == [(frames.CLOSE, (1005, ""))]


def test_parse_url():
    assert parse_url("ws://127.0.0.1:8080/ws?token=x") == (False, "127.0.0.1", 8080, "/ws?token=x")
    assert parse_url("wss://broker.example/mqtt") == (True, "broker.example", 443, "/mqtt")
    assert parse_url("ws://car.local") == (False, "car.local", 80, "/")
    assert parse_url("ws://[::1]:9001?x=1#frag") == (False, "::1", 9001, "/?x=1")
    for bad in ("http://x/", "ws://:80/", "ws://x:0/", "ws://x:port/", "ws://[::1/", "ws://a b/"):
        try:
            parse_url(bad)
        except ValueError:
            continue
        raise AssertionError("accepted " + bad)


def test_request_and_response_checks():
    key = new_key()
    assert len(key) == 24 and key.endswith("==")
    head = request("::1", 9001, "/mqtt", key, False, ["mqtt"], {"Authorization": "Bearer t"})
    assert head.startswith(b"GET /mqtt HTTP/1.1\r\nHost: [::1]:9001\r\n")
    for line in (b"Sec-WebSocket-Key: " + key.encode(), b"Sec-WebSocket-Protocol: mqtt",
                 b"Authorization: Bearer t", b"Sec-WebSocket-Version: 13"):
        assert b"\r\n" + line + b"\r\n" in head, line
    assert head.endswith(b"\r\n\r\n")
    try:
        request("h", 80, "/", key, headers={"X": "a\r\nInjected: 1"})
        raise AssertionError("a line break in a header was sent")
    except ValueError as e:
        assert "line break" in str(e)
    good = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: mqtt" % accept_key(key)).encode()
    status, reason, headers = parse_response(good)
    assert (status, reason) == (101, "Switching Protocols")
    assert check_response(status, reason, headers, key, ["mqtt"]) == "mqtt"
    try:
        check_response(status, reason, headers, new_key(), ["mqtt"])
        raise AssertionError("a wrong accept passed")
    except HandshakeError as e:
        assert e.status == 101 and "Sec-WebSocket-Accept" in str(e)
    status, reason, headers = parse_response(b"HTTP/1.1 302 Found\r\nLocation: /elsewhere")
    try:
        check_response(status, reason, headers, key)
        raise AssertionError("a redirect passed")
    except HandshakeError as e:
        assert e.status == 302
        assert str(e) == "server answered 302 Found, a redirect to /elsewhere; redirects are not followed"


def test_masking_without_viper():
    # The ESP8266 has no room for viper code (wsserver/frames.py falls back to _portable.py):
    # the client's frames must come out the same through the big-int XOR.
    from wsserver._portable import unmask
    native = cframes.apply_mask
    cframes.apply_mask = unmask
    try:
        for n in (0, 5, 126, 5000, 9000):
            payload = pattern(n)
            assert server_decode(bytes(cframes.encode_masked(frames.BINARY, payload))) == \
                [(frames.BINARY, bytearray(payload))], n
            data = b"".join(bytes(p) for p in cframes.masked_pieces(frames.BINARY, payload))
            assert server_decode(data) == [(frames.BINARY, bytearray(payload))], n
    finally:
        cframes.apply_mask = native
