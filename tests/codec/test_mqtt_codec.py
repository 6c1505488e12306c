"""MQTT codec unit tests. Plain asserts, no pytest features: this same file
runs under CPython (pytest) and inside MicroPython (tests/support/mp_runner.py)."""
import sys

if "lib" not in sys.path:
    sys.path.insert(0, "lib")

from mqtt import codec, dial
from mqtt.codec import MQTTError, Parser


def expect_error(data, *words):
    try:
        Parser().feed(data)
    except MQTTError as e:
        for word in words:
            assert word in str(e), (word, str(e))
        return str(e)
    raise AssertionError("no MQTTError for %r" % data)


def one(data, **kw):
    packets = Parser(**kw).feed(data)
    assert len(packets) == 1, packets
    return packets[0]


def test_connect_bytes_match_the_spec_layout():
    # MQTT 3.1.1 3.1: protocol name, level 4, flags, keepalive, then the payload in order.
    wire = dial.connect("car-1", keepalive_s=15, username="u", password="pw",
                         will_topic="tether/car-1/status", will_payload=b'{"online": false}',
                         will_qos=1, will_retain=True)
    assert wire[0] == 0x10
    body = wire[2:]
    assert wire[1] == len(body)
    assert body[:7] == b"\x00\x04MQTT\x04"
    # user name 0x80, password 0x40, will retain 0x20, will QoS 1 0x08, will 0x04, clean 0x02
    assert body[7] == 0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02
    assert body[8:10] == b"\x00\x0f"
    rest = body[10:]
    assert rest == (b"\x00\x05car-1" + b"\x00\x13tether/car-1/status" + b"\x00\x11{\"online\": false}"
                    + b"\x00\x01u" + b"\x00\x02pw")


def test_connect_without_will_or_login():
    wire = dial.connect("x", keepalive_s=0, clean=False)
    assert wire == b"\x10\x0d\x00\x04MQTT\x04\x00\x00\x00\x00\x01x"


def test_password_without_user_name_is_refused():
    try:
        dial.connect("x", password="p")
    except MQTTError as e:
        assert "user name" in str(e)
        return
    raise AssertionError("no error")


def test_remaining_length_encoding_boundaries():
    # spec 2.2.3 table: 127 -> 1 byte, 128 -> 2, 16383 -> 2, 16384 -> 3, 2097152 -> 4
    for n, size in ((0, 1), (127, 1), (128, 2), (16383, 2), (16384, 3), (2097151, 3),
                    (2097152, 4), (268435455, 4)):
        assert len(codec._length(n)) == size, n
    assert codec._length(321) == b"\xc1\x02"
    try:
        codec._length(268435456)
    except MQTTError as e:
        assert "too large" in str(e)
    else:
        raise AssertionError("no error")


def test_publish_round_trip_qos0_and_qos1():
    wire = codec.publish("a/b", b"hello")
    assert wire == b"\x30\x0a\x00\x03a/bhello"
    p = one(wire)
    assert (p.type, p.topic, p.payload, p.qos, p.retain, p.packet_id) == (codec.PUBLISH, "a/b", b"hello", 0, False, None)
    wire = codec.publish("a/b", "hi", qos=1, retain=True, packet_id=258, dup=True)
    assert wire[0] == 0x30 | 0x08 | 0x02 | 0x01
    p = one(wire)
    assert (p.topic, p.payload, p.qos, p.retain, p.dup, p.packet_id) == ("a/b", b"hi", 1, True, True, 258)


def test_long_publish_uses_a_multibyte_length_and_parses_in_pieces():
    payload = bytes(range(256)) * 3
    wire = codec.publish("t", payload, qos=1, packet_id=1)
    parser = Parser(max_packet=1000)
    got = []
    for i in range(len(wire)):
        got += parser.feed(wire[i:i + 1])
    assert len(got) == 1 and got[0].payload == payload


def test_several_packets_in_one_piece():
    wire = codec.publish("t", b"1") + b"\xd0\x00" + codec.publish("u", b"2") + b"\x90\x03\x00\x07\x01"
    packets = Parser().feed(wire)
    assert [p.type for p in packets] == [codec.PUBLISH, codec.PINGRESP, codec.PUBLISH, codec.SUBACK]
    assert packets[3].packet_id == 7 and packets[3].codes == [1]


def test_connack_and_its_return_codes():
    p = one(b"\x20\x02\x01\x00")
    assert p.type == codec.CONNACK and p.session_present and p.return_code == 0
    assert "not authorized" in str(dial.refused(5))
    assert "bad user name or password" in str(dial.refused(4))
    assert "identifier rejected" in str(dial.refused(2))
    assert "server unavailable" in str(dial.refused(3))
    assert "unacceptable protocol version" in str(dial.refused(1))
    assert "CONNACK return code 9: unknown" in str(dial.refused(9))


def test_puback_subscribe_ping_disconnect_bytes():
    assert codec.puback(513) == b"\x40\x02\x02\x01"
    assert one(b"\x40\x02\x02\x01").packet_id == 513
    assert dial.subscribe(1, [("tether/+/status", 1)]) == b"\x82\x14\x00\x01\x00\x0ftether/+/status\x01"
    assert codec.pingreq() == b"\xc0\x00" and codec.disconnect() == b"\xe0\x00"
    assert one(b"\xb0\x02\x00\x05").packet_id == 5  # UNSUBACK


def test_topic_limits():
    for bad, word in (("", "empty"), ("a/+", "wildcards"), ("a/#", "wildcards"), ("a\x00b", "U+0000")):
        try:
            codec.publish(bad, b"")
        except MQTTError as e:
            assert word in str(e), (bad, str(e))
        else:
            raise AssertionError("no error for %r" % bad)
    for bad in ("a/#/b", "a/b#", "a+/b"):
        try:
            dial.subscribe(1, [(bad, 0)])
        except MQTTError as e:
            assert "topic filter" in str(e)
        else:
            raise AssertionError("no error for %r" % bad)
    dial.subscribe(1, [("#", 0), ("+/x/+", 0), ("a/#", 1)])
    try:
        codec.publish("x" * 65536, b"")
    except MQTTError as e:
        assert "65535" in str(e)
    else:
        raise AssertionError("no error")


def test_malformed_packets_name_what_is_wrong():
    expect_error(b"\x30\xff\xff\xff\xff\x01", "remaining length", "4 bytes")
    expect_error(b"\x36\x03\x00\x01a", "QoS 3")
    expect_error(b"\x34\x05\x00\x01a\x00\x01", "QoS 2")
    expect_error(b"\x38\x03\x00\x01a", "DUP")
    expect_error(b"\x30\x03\x00\x05a", "PUBLISH topic", "runs past")
    expect_error(b"\x30\x01\x00", "PUBLISH topic", "ends inside")
    expect_error(b"\x30\x04\x00\x02\xff\xfe", "PUBLISH topic", "UTF-8")
    expect_error(b"\x30\x02\x00\x00", "topic is empty")
    expect_error(b"\x30\x03\x00\x01#", "wildcard")
    expect_error(b"\x32\x03\x00\x01a", "packet id", "ends inside")
    expect_error(b"\x32\x05\x00\x01a\x00\x00", "packet id 0")
    expect_error(b"\x20\x03\x00\x00\x00", "CONNACK", "must be 2")
    expect_error(b"\x21\x02\x00\x00", "reserved flags")
    expect_error(b"\x20\x02\x02\x00", "acknowledge flags")
    expect_error(b"\x90\x02\x00\x01", "SUBACK", "return code")
    expect_error(b"\x90\x03\x00\x01\x05", "SUBACK return code 0x5")
    expect_error(b"\xd0\x01\x00", "PINGRESP", "must be 0")
    expect_error(b"\x10\x00", "type 1", "not sent to a client")
    expect_error(b"\xf0\x00", "type 15", "reserved")
    expect_error(b"\x00\x00", "type 0", "reserved")
    expect_error(b"\x40\x01\x00", "PUBACK", "must be 2")


def test_oversized_publish_is_skipped_not_held_and_the_stream_continues():
    big = codec.publish("t", b"x" * 5000)
    small = codec.publish("t", b"ok")
    parser = Parser(max_packet=100)
    got = []
    for i in range(0, len(big), 700):
        got += parser.feed(big[i:i + 700])
        assert len(parser.buf) < 800
    got += parser.feed(small)
    assert [p.payload for p in got] == [b"ok"] and parser.skipped == 1
    # the oversized packet and the next one in the same piece
    parser = Parser(max_packet=100)
    assert [p.payload for p in parser.feed(big + small)] == [b"ok"]


def test_oversized_control_packet_is_an_error():
    expect_error(b"\x90\x80\x80\x01", "type 9", "limit")


def test_good_packets_before_a_malformed_one_are_returned_then_the_error():
    parser = Parser()
    got = parser.feed(codec.publish("t", b"1") + b"\xf0\x00" + codec.publish("t", b"2"))
    assert [p.payload for p in got] == [b"1"]
    for _ in range(2):  # the error is sticky: the stream cannot be resynchronised
        try:
            parser.feed(b"")
        except MQTTError as e:
            assert "reserved" in str(e)
        else:
            raise AssertionError("no error")
