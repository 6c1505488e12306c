"""Codec unit tests. Plain asserts, no pytest features: this same file runs
under CPython (pytest) and inside MicroPython (tests/support/mp_runner.py)."""
import sys

if "lib" not in sys.path:
    sys.path.insert(0, "lib")

from wsserver import frames
from wsserver.errors import ProtocolError
from wsserver.frames import accept_key
from wsserver._portable import unmask as portable_unmask
from wsserver.frames import unmask


def is_valid(data):
    """True when `data` is one complete, valid UTF-8 text."""
    return frames.utf8_validate(data, 0, len(data), 0) == 0


KEY = b"\x37\xfa\x21\x3d"


def client_frame(op, payload, fin=True, key=KEY):
    n = len(payload)
    b0 = (0x80 if fin else 0) | op
    if n < 126:
        head = bytes((b0, 0x80 | n))
    elif n < 65536:
        head = bytes((b0, 0xFE, n >> 8, n & 0xFF))
    else:
        head = bytes((b0, 0xFF)) + n.to_bytes(8, "big")
    return head + key + bytes([payload[i] ^ key[i & 3] for i in range(n)])


def expect_error(data, code, max_message=1 << 16):
    try:
        frames.Codec(max_message).receive(data)
    except ProtocolError as e:
        assert e.code == code, (e.code, code)
        return str(e)
    raise AssertionError("no ProtocolError")


def test_rfc_example_accept_key():
    # RFC 6455 §1.3
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_unmask_matches_reference_for_all_lengths():
    for lead in range(4):  # at any alignment too (a frame inside the receive buffer)
        for n in range(0, 40):
            data = bytearray([(i * 7 + 3) & 0xFF for i in range(lead + n)])
            expected = data[:lead] + bytes([data[lead + i] ^ KEY[i & 3] for i in range(n)])
            unmask(memoryview(data)[lead:], n, KEY)
            assert data == expected, (lead, n)
    for n in range(0, 40):
        data = bytearray([(i * 7 + 3) & 0xFF for i in range(n)])
        expected = bytes([data[i] ^ KEY[i & 3] for i in range(n)])
        fast = bytearray(data)
        unmask(fast, n, KEY)
        slow = bytearray(data)
        portable_unmask(slow, n, KEY)
        assert bytes(fast) == expected and bytes(slow) == expected


def test_utf8_validator():
    good = ["", "ascii", "κόσμε", "🚗💨", "\u07ff\u0800\uffff", "\U00010000\U0010ffff"]
    for s in good:
        assert is_valid(s.encode()), s
    bad = [b"\x80", b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\x80", b"\xed\xa0\x80", b"\xed\xbf\xbf",
           b"\xf0\x80\x80\x80", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xff", b"\xce",
           b"a\xe2\x82", b"\xe2\x28\xa1"]
    for b in bad:
        assert not is_valid(b), b


def test_utf8_state_carries_across_chunks():
    data = "a€b🚗".encode()
    for cut in range(len(data) + 1):
        state = frames.utf8_validate(data, 0, cut, 0)
        assert state >= 0
        assert frames.utf8_validate(data, cut, len(data), state) == 0
    # Fails at the first byte that cannot continue, even mid-sequence.
    state = frames.utf8_validate(b"\xf0\x9f", 0, 2, 0)
    assert state > 0
    assert frames.utf8_validate(b"A", 0, 1, state) == -1  # invalid


def test_events_in_order_and_every_split_point():
    data = (client_frame(1, "héllo".encode()) + client_frame(2, bytes(300)) + client_frame(1, b"ab", fin=False)
            + client_frame(9, b"p") + client_frame(0, b"cd") + client_frame(8, b"\x03\xe8bye")
            + client_frame(2, bytes(range(256)) * 300))
    expected = frames.Codec(1 << 20).receive(data)
    assert [e[0] for e in expected] == [1, 2, 9, 1, 8, 2]
    assert expected[0][1] == "héllo" and expected[3][1] == "abcd" and expected[4][1] == (1000, "bye")
    for step in (1, 2, 3, 5, 13, 127, 4096):
        codec = frames.Codec(1 << 20)
        got = []
        for i in range(0, len(data), step):
            got += codec.receive(data[i:i + step])
        assert got == expected, step
    # writable=True: text unmasked in the caller's buffer, at any offset in
    # it (as in the server's receive buffer), gives the same events.
    for lead in range(4):
        for step in (1, 7, 300, 4096):
            codec = frames.Codec(1 << 20)
            got = []
            for i in range(0, len(data), step):
                buf = bytearray(lead) + data[i:i + step]
                got += codec.receive(memoryview(buf)[lead:], True)
            assert got == expected, (lead, step)


def _fails_mid_frame(codec, data, bad_at, code=1007):
    """Feed data byte by byte: the error comes with byte bad_at, not later."""
    for i in range(len(data)):
        try:
            codec.receive(data[i:i + 1])
        except ProtocolError as e:
            assert e.code == code, e.code
            assert i == bad_at, (i, bad_at)
            return
    raise AssertionError("no ProtocolError")


def test_invalid_utf8_fails_when_the_bad_byte_arrives():
    # One text frame of 200 bytes: valid, then a byte that can never start or
    # continue a character, then more. The error must come with that byte,
    # long before the frame is whole (Autobahn 6.4.3/6.4.4), wherever it
    # falls in a 4-byte word.
    text = b"a" * 41 + b"\xce\xba" + b"\xff" + b"b" * 156
    head = 8  # 2-byte header with 126 -> 4, plus the 4-byte key
    data = client_frame(1, text)
    bad = text.index(b"\xff")
    for shift in range(4):
        padded = b"c" * shift + text
        _fails_mid_frame(frames.Codec(1 << 16), client_frame(1, padded), head + shift + bad)
        # The client's role: unmasked frames, same rule.
        unmasked = bytes((0x81, 126, 0, len(padded))) + padded
        _fails_mid_frame(frames.Codec(1 << 16, client=True), unmasked, 4 + shift + bad)
    # Autobahn 6.4.3's own parts: the 2nd chop fails at its 2nd byte (f4 90).
    part1, part2 = bytes.fromhex("cebae1bdb9cf83cebcceb5"), bytes.fromhex("f4908080")
    data = client_frame(1, part1 + part2 + b"edited")
    codec = frames.Codec(1 << 16)
    assert codec.receive(data[:6 + len(part1)]) == []
    try:
        codec.receive(data[6 + len(part1):6 + len(part1) + 4])
        raise AssertionError("no ProtocolError")
    except ProtocolError as e:
        assert e.code == 1007
    # A continuation frame of a text message: the carried state counts too
    # (a 3-byte character started in the first fragment, broken in the 2nd).
    data = client_frame(1, b"ok\xe2", fin=False) + client_frame(0, b"\x82" + b"\x28" + b"c" * 200)
    _fails_mid_frame(frames.Codec(1 << 16), data, len(client_frame(1, b"ok\xe2", fin=False)) + 8 + 1)


def test_invalid_utf8_in_a_whole_frame_fails_in_place_too():
    for data in (client_frame(1, b"ok\xff"), client_frame(1, b"\xed\xa0\x80")):
        try:
            frames.Codec(1 << 16).receive(memoryview(bytearray(b"x") + data)[1:], True)
            raise AssertionError("no ProtocolError")
        except ProtocolError as e:
            assert e.code == 1007


def test_lone_text_is_receive_for_one_small_text_frame():
    # The connection's short path for a read holding one small text frame:
    # the same str as receive(), the same 1007 for bad UTF-8, and None
    # (receive() then takes the bytes) over the limit or mid-message.
    for text in (b"", b"x", b"drive \xc3\xa9" * 9, b"y" * 125):
        data = bytearray(client_frame(1, text))
        assert data[0] == 0x81 and data[1] == len(data) + 0x7A
        got = frames.Codec(1 << 16).lone_text(memoryview(data), len(data))
        assert got == frames.Codec(1 << 16).receive(client_frame(1, text))[0][1] == text.decode()
    data = bytearray(client_frame(1, b"ok\xff"))
    try:
        frames.Codec(1 << 16).lone_text(memoryview(data), len(data))
        raise AssertionError("no ProtocolError")
    except ProtocolError as e:
        assert e.code == 1007
    data = bytearray(client_frame(1, b"z" * 65))
    assert frames.Codec(64).lone_text(memoryview(data), len(data)) is None
    codec = frames.Codec(1 << 16)
    assert codec.receive(client_frame(1, b"part", fin=False)) == []
    data = bytearray(client_frame(1, b"new"))
    assert codec.lone_text(memoryview(data), len(data)) is None  # receive() names the broken rule


def test_text_split_anywhere_still_decodes():
    # The piecewise check unmasks in place: the text handed out must be exact.
    text = ("κόσμε 🚗 " * 40).encode()
    for key in (KEY, b"\x00\x00\x00\x00"):
        data = client_frame(1, text, key=key) + client_frame(1, text[:50], fin=False, key=key) \
            + client_frame(0, text[50:], key=key)
        for step in (1, 3, 4, 7, 64, 1000):
            codec = frames.Codec(1 << 16)
            got = []
            for i in range(0, len(data), step):
                got += codec.receive(data[i:i + step])
            assert got == [(1, text.decode()), (1, text.decode())], step


def test_pending_payload_read_in_place():
    payload = bytes(range(256)) * 40
    data = client_frame(2, payload)
    codec = frames.Codec(1 << 20)
    assert codec.receive(data[:100]) == []
    target = codec.pending_payload()
    rest = data[100:]
    target[:len(rest)] = rest
    assert codec.payload_received(len(rest)) == [(2, payload)]
    assert codec.pending_payload() is None


def test_protocol_errors_name_the_rule():
    assert "masked" in expect_error(bytes((0x81, 0x01, 0x41)), 1002)
    assert "RSV" in expect_error(bytes((0xC1,)) + client_frame(1, b"x")[1:], 1002)
    assert "opcode" in expect_error(client_frame(3, b""), 1002)
    assert "opcode" in expect_error(client_frame(0xB, b""), 1002)
    assert "125" in expect_error(client_frame(9, bytes(126)), 1002)
    assert "fragmented" in expect_error(client_frame(9, b"", fin=False), 1002)
    assert "continuation" in expect_error(client_frame(0, b"x"), 1002)
    assert "fragmented message" in expect_error(client_frame(1, b"a", fin=False) + client_frame(1, b"b"), 1002)
    assert "UTF-8" in expect_error(client_frame(1, b"\xed\xa0\x80"), 1007)
    assert "limit" in expect_error(client_frame(2, bytes(101)), 1009, max_message=100)
    assert "limit" in expect_error(client_frame(2, bytes(60), fin=False) + client_frame(0, bytes(60)), 1009,
                                   max_message=100)
    assert "close code" in expect_error(client_frame(8, b"\x03\xed"), 1002)  # 1005
    assert "1-byte" in expect_error(client_frame(8, b"\x03"), 1002)
    assert "UTF-8" in expect_error(client_frame(8, b"\x03\xe8\xff"), 1007)


def test_oversized_frame_refused_from_its_header():
    # The 1009 comes from the length field alone: no buffering of the payload.
    codec = frames.Codec(1000)
    try:
        codec.receive(bytes((0x82, 0xFF)) + (10 ** 9).to_bytes(8, "big") + KEY)
    except ProtocolError as e:
        assert e.code == 1009
    else:
        raise AssertionError("no 1009")


def test_error_after_good_frames_is_deferred():
    codec = frames.Codec()
    events = codec.receive(client_frame(1, b"first") + bytes((0x81, 0x01, 0x41)))
    assert events == [(1, "first")]
    assert codec.error is not None and codec.error.code == 1002


def test_close_codes():
    for code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999):
        assert frames.valid_close_code(code), code
    for code in (0, 999, 1004, 1005, 1006, 1012, 1013, 1014, 1015, 1016, 2000, 2999, 5000, 65535):
        assert not frames.valid_close_code(code), code
    assert frames.Codec().receive(client_frame(8, b"")) == [(8, (1005, ""))]


def test_encode_lengths():
    for n, head in ((0, b"\x81\x00"), (125, b"\x81\x7d"), (126, b"\x81\x7e\x00\x7e"),
                    (65535, b"\x81\x7e\xff\xff"), (65536, b"\x81\x7f" + (65536).to_bytes(8, "big"))):
        f = frames.encode(1, b"a" * n)
        assert f[:len(head)] == head and len(f) == len(head) + n
    assert frames.encode_message("é") == b"\x81\x02\xc3\xa9"
    assert frames.encode_message(b"\x00") == b"\x82\x01\x00"
    close = frames.encode_close(1000, "x" * 200)
    assert len(close) == 2 + 125 and close[2:4] == b"\x03\xe8"


def test_utf8_word_fast_path_sees_every_byte():
    # Long ASCII runs are checked four bytes at a time: a bad or multi-byte
    # sequence at any offset within a word must still be seen.
    for pos in range(16):
        for bad, valid in ((b"\xff", False), (b"\x80", False), (b"\xc3\xa9", True), (b"\xe2\x82", False)):
            data = bytearray(b"a" * pos + bad + b"b" * (20 - pos))
            assert (frames.utf8_validate(data, 0, len(data), 0) == 0) == valid, (pos, bad)


def test_reason_phrases_and_content_types_from_their_string_tables():
    # Both tables are one string each (they stay in flash); every entry must
    # come out whole, and anything else gets the fallback.
    from wsserver.answer import reason_phrase
    from wsserver.answer import content_type
    assert reason_phrase(101) == "Switching Protocols"
    assert reason_phrase(200) == "OK"
    assert reason_phrase(431) == "Request Header Fields Too Large"
    assert reason_phrase(505) == "HTTP Version Not Supported"
    assert reason_phrase(999) == "Unknown" and reason_phrase(20) == "Unknown"
    assert content_type("index.html") == "text/html; charset=utf-8"
    assert content_type("APP.JS") == "text/javascript; charset=utf-8"
    assert content_type("site.webmanifest") == "application/manifest+json"
    assert content_type("icon.ico") == "image/x-icon"
    for name in ("noext", "a.", "a.gz", "a.t|x", "a.html x", "a.tml"):
        assert content_type(name) == "application/octet-stream", name


def test_percent_escapes_take_exactly_two_hex_digits():
    # int(s, 16) alone would read "%+a" as a newline and "%-0" as a NUL.
    from wsserver.errors import HTTPError
    from wsserver.http import parse_query, unquote
    assert unquote("a%20b%2Fc%e2%82%AC") == "a b/c\u20ac"
    assert unquote("%00%0a%7E%7e") == "\x00\n~~"
    assert parse_query("x=%41+b&y=%2b") == {"x": "A b", "y": "+"}
    for bad in ("%+a", "%-0", "% a", "%a ", "%0x", "%x0", "%g0", "%0G", "%", "%4", "a%2", "%@0", "%`1", "%\u00e90"):
        try:
            unquote(bad)
        except HTTPError as e:
            assert e.status == 400 and "percent-escape" in e.reason, (bad, e.reason)
        else:
            raise AssertionError("accepted " + repr(bad))
