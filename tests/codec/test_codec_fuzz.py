"""Property-based fuzzing of the WebSocket codec (lib/wsserver/frames.py) under
CPython with Hypothesis.

For random bytes, structurally random frames, and valid streams with random
mutations, each fed in pieces split at random points (through a reused
buffer, the way the server feeds it, and optionally the server's
read-straight-into-the-payload path):
- the only exception is the documented ProtocolError, with code 1002/1007/1009;
- the events (and the error) are the same whatever the split points;
- no internal buffer ever grows past max_message + 14 bytes (control frames:
  125 + 14), and no event carries more than max_message bytes;
- a valid stream gives back exactly the messages that were framed.

Budgets are small (see SETTINGS) so this runs in seconds; `-s` prints how many
examples each property ran.
"""
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.fuzz import client_frame, cut_points, mutate, mutations, random_frame, valid_stream  # puts lib/ on the path
from wsserver.errors import ProtocolError  # noqa: E402
from wsserver.frames import BINARY, CLOSE, PING, PONG, TEXT, Codec  # noqa: E402

pytestmark = [pytest.mark.fuzz]

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
DOCUMENTED_CODES = {1002, 1007, 1009}
EXAMPLES = Counter()
PEAKS = {}  # max_message -> most bytes held in codec buffers at once


@pytest.fixture(scope="module", autouse=True)
def report_counts():
    yield
    print("\nfuzz codec examples:", dict(EXAMPLES), "total", sum(EXAMPLES.values()))
    print("fuzz codec peak bytes buffered at once (fragmented), by max_message:", PEAKS)


# ------------------------------------------------------------------ feeding

class Feeder:
    """Feeds a byte stream to a Codec in pieces, like server.py does: through
    one reused buffer (scribbled over after each call, so a codec that kept a
    view into it would be caught), and in `direct` mode reading a large
    pending payload straight into the codec's own buffer."""

    def __init__(self, max_message, direct=False, bufsize=64):
        self.codec = Codec(max_message)
        self.max_message = max_message
        self.direct = direct
        self.buf = bytearray(bufsize)
        self.events = []
        self.peak = 0

    def check_limits(self):
        c = self.codec
        frame_cap = max(self.max_message, 125)
        assert len(c._head) < 14, len(c._head)
        sizes = [len(c._head)]
        if c._frame is not None:
            assert len(c._frame) <= frame_cap
            sizes.append(len(c._frame))
        if c._msg is not None:
            sizes.append(len(c._msg))
        for size in sizes:
            assert size <= frame_cap + 14, "internal buffer of %d bytes (max_message %d)" % (
                size, self.max_message)
        self.peak = max(self.peak, sum(sizes))

    def feed(self, chunk):
        c = self.codec
        pos = 0
        while pos < len(chunk):
            if c.error is not None:
                raise c.error
            big = c.pending_payload() if self.direct else None
            if big is not None and len(big) > len(self.buf):
                n = min(len(big), len(chunk) - pos)
                big[:n] = chunk[pos:pos + n]
                new = c.payload_received(n)
            else:
                n = min(len(self.buf), len(chunk) - pos)
                self.buf[:n] = chunk[pos:pos + n]
                new = c.receive(memoryview(self.buf)[:n])
                self.buf[:] = b"\xAA" * len(self.buf)
            pos += n
            self.events.extend(new)
            self.check_limits()

    def run(self, data, cuts):
        """(events, error code or None) for `data` split at `cuts`."""
        error = None
        try:
            prev = 0
            for cut in sorted(set(cuts)) + [len(data)]:
                if cut > prev:
                    self.feed(data[prev:cut])
                    prev = cut
            if self.codec.error is not None:  # events came first; the error is pending
                raise self.codec.error
        except ProtocolError as e:
            assert e.code in DOCUMENTED_CODES, e.code
            assert isinstance(e.reason, str) and e.reason
            error = e.code
        for opcode, payload in self.events:
            if opcode in (TEXT, BINARY):
                size = len(payload.encode() if opcode == TEXT else payload)
                assert size <= self.max_message
            elif opcode == CLOSE:
                code, reason = payload
                assert isinstance(code, int) and isinstance(reason, str)
            else:
                assert opcode in (PING, PONG) and len(payload) <= 125
        return self.events, error


def decode(data, cuts=(), max_message=256, direct=False, bufsize=64):
    return Feeder(max_message, direct, bufsize).run(data, cuts)


def assert_split_invariant(data, draw, max_messages):
    """Decoded whole and decoded in drawn pieces (cuts, direct or buffered, a
    drawn buffer size), data gives the same events, with a drawn max_message."""
    max_message = draw.draw(st.sampled_from(max_messages))
    whole = decode(data, max_message=max_message)
    split = decode(data, draw.draw(cut_points(data)), max_message, draw.draw(st.booleans()),
                   draw.draw(st.sampled_from([1, 7, 64])))
    assert whole == split


# ------------------------------------------------------------------ frames

# ------------------------------------------------------------------ properties

@SETTINGS
@given(st.binary(max_size=600), st.data())
def test_random_bytes_only_protocol_errors_and_split_invariant(data, draw):
    EXAMPLES["random_bytes"] += 1
    assert_split_invariant(data, draw, [16, 125, 256, 1024])


@SETTINGS
@given(st.lists(random_frame(), max_size=5), st.data())
def test_random_frames_only_protocol_errors_and_split_invariant(frames_, draw):
    EXAMPLES["random_frames"] += 1
    data = b"".join(frames_)
    assert_split_invariant(data, draw, [16, 125, 256, 4096])


@SETTINGS
@given(valid_stream(), st.data())
def test_valid_streams_decode_exactly_whatever_the_splits(stream, draw):
    EXAMPLES["valid_streams"] += 1
    data, expected = stream
    events, error = decode(data, draw.draw(cut_points(data)), 256, draw.draw(st.booleans()),
                           draw.draw(st.sampled_from([1, 7, 64])))
    assert error is None
    assert events == expected


@SETTINGS
@given(valid_stream(), mutations, st.data())
def test_mutated_streams_only_protocol_errors_and_split_invariant(stream, ops, draw):
    EXAMPLES["mutated_streams"] += 1
    data = mutate(stream[0], ops)
    whole = decode(data)
    split = decode(data, draw.draw(cut_points(data)), 256, draw.draw(st.booleans()),
                   draw.draw(st.sampled_from([1, 7, 64])))
    assert whole == split


@SETTINGS
@given(st.lists(st.integers(1, 400), min_size=1, max_size=8), st.sampled_from([256, 1000, 1024]),
       st.data())
def test_fragmented_messages_never_buffer_past_the_limit(sizes, max_message, draw):
    # Fragments whose total crosses max_message must fail with 1009, and the
    # reassembly buffer must never grow past the limit on the way there.
    EXAMPLES["fragment_growth"] += 1
    data, total = b"", 0
    for i, n in enumerate(sizes):
        fin = 0x80 if i == len(sizes) - 1 else 0
        data += client_frame(fin | (BINARY if i == 0 else 0), bytes(n))
        total += n
    feeder = Feeder(max_message, draw.draw(st.booleans()), draw.draw(st.sampled_from([7, 64, 2048])))
    events, error = feeder.run(data, draw.draw(cut_points(data)))
    if total > max_message:
        assert error == 1009 and events == []
    else:
        assert error is None and events == [(BINARY, bytes(total))]
    # Per buffer the limit holds (check_limits); together, the reassembly
    # buffer (at most max_message, grown by doubling) and the fragment still
    # arriving (at most max_message minus what is assembled) stay under 2x.
    assert feeder.peak <= 2 * max_message
    PEAKS[max_message] = max(PEAKS.get(max_message, 0), feeder.peak)
