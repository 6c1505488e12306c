"""Property-based fuzzing of the MQTT parser (lib/mqtt/codec.py) with Hypothesis.

For random bytes, and for valid packet streams with random mutations, each fed
in pieces split at random points:
- the only exception is the documented MQTTError (with a message);
- the packets (and the error) are the same whatever the split points;
- the parser never holds more than max_packet + 5 bytes;
- a valid stream gives back exactly the packets that were built.
"""
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support import LIB
sys.path.insert(0, LIB)
from mqtt import codec  # noqa: E402
from mqtt.codec import MQTTError, Parser  # noqa: E402

pytestmark = [pytest.mark.fuzz]

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])
MAX = 300


def summary(p):
    return (p.type, p.topic, p.payload, p.qos, p.retain, p.dup, p.packet_id,
            getattr(p, "codes", None), getattr(p, "return_code", None))


def run(data, cuts, limit=MAX):
    """(packets, error text or None, largest buffer) feeding data split at cuts."""
    parser = Parser(max_packet=limit)
    got, high = [], 0
    points = sorted(set(c % (len(data) + 1) for c in cuts)) + [len(data)]
    start = 0
    try:
        for end in points:
            got += [summary(p) for p in parser.feed(data[start:end])]
            high = max(high, len(parser.buf))
            start = end
        got += [summary(p) for p in parser.feed(b"")]
    except MQTTError as e:
        assert str(e)
        return got, str(e), high
    return got, None, high


topics = st.text(st.characters(blacklist_characters="+#\x00", blacklist_categories=("Cs",)),
                 min_size=1, max_size=30)
payloads = st.binary(max_size=300)


@st.composite
def packets(draw):
    kind = draw(st.sampled_from(["pub0", "pub1", "puback", "suback", "connack", "pingresp"]))
    if kind == "pub0":
        return codec.publish(draw(topics), draw(payloads), retain=draw(st.booleans()))
    if kind == "pub1":
        return codec.publish(draw(topics), draw(payloads), qos=1, packet_id=draw(st.integers(1, 65535)),
                             dup=draw(st.booleans()), retain=draw(st.booleans()))
    if kind == "puback":
        return codec.puback(draw(st.integers(1, 65535)))
    if kind == "suback":
        pid = draw(st.integers(1, 65535))
        codes = draw(st.lists(st.sampled_from([0, 1, 2, 0x80]), min_size=1, max_size=4))
        return bytes([0x90, 2 + len(codes), pid >> 8, pid & 255] + codes)
    if kind == "connack":
        return bytes([0x20, 2, draw(st.integers(0, 1)), draw(st.integers(0, 5))])
    return b"\xd0\x00"


cuts = st.lists(st.integers(0, 5000), max_size=8)


@SETTINGS
@given(st.binary(max_size=600), cuts, cuts)
def test_random_bytes_give_packets_or_a_named_error_whatever_the_splits(data, cuts_a, cuts_b):
    a = run(data, cuts_a)
    b = run(data, cuts_b)
    assert a[:2] == b[:2]
    assert a[2] <= MAX + 5 and b[2] <= MAX + 5


@SETTINGS
@given(st.lists(packets(), min_size=1, max_size=6), cuts)
def test_valid_streams_round_trip(stream, cut):
    data = b"".join(stream)
    got, error, _ = run(data, cut, limit=1000)
    assert error is None
    expected = [summary(p) for wire in stream for p in Parser(max_packet=1000).feed(wire)]
    assert len(expected) == len(stream) and got == expected


@SETTINGS
@given(st.lists(packets(), min_size=1, max_size=6), cuts)
def test_oversized_publishes_are_skipped_and_the_rest_comes_back(stream, cut):
    got, error, high = run(b"".join(stream), cut, limit=100)
    assert error is None and high <= 105
    expected = []
    for wire in stream:
        size = len(wire) - (2 if len(wire) < 130 else 3)
        if size <= 100:
            expected += [summary(p) for p in Parser().feed(wire)]
    assert got == expected


@SETTINGS
@given(st.lists(packets(), min_size=1, max_size=4), st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)),
                                                            min_size=1, max_size=4), cuts, cuts)
def test_mutated_streams_only_raise_mqtterror_and_do_not_depend_on_splits(stream, flips, cuts_a, cuts_b):
    data = bytearray(b"".join(stream))
    for at, value in flips:
        data[at % len(data)] = value
    data = bytes(data)
    a = run(data, cuts_a)
    b = run(data, cuts_b)
    assert a[:2] == b[:2]
    assert a[2] <= MAX + 5
