"""Hypothesis strategies for the fuzz tests: WebSocket client frames with every
header field random (lies included), valid client streams with the events they
must produce, and byte-level mutations (shared by the codec and server fuzzers)."""
import sys

from hypothesis import strategies as st

from support import LIB
from support.wsraw import frame

if LIB not in sys.path:
    sys.path.insert(0, LIB)
from wsserver.frames import BINARY, CLOSE, PING, PONG, TEXT  # noqa: E402


def client_frame(b0, payload, key=b"\x01\x02\x03\x04", mask=True, length=None):
    """A client frame from its raw first byte (FIN, RSV bits and opcode)."""
    return frame(b0 & 0x0F, payload, fin=bool(b0 & 0x80), mask=mask, rsv=(b0 >> 4) & 7, key=key,
                 length=length)


keys = st.binary(min_size=4, max_size=4)
texts = st.text(max_size=120)
blobs = st.binary(max_size=300)


@st.composite
def valid_stream(draw, max_message=256):
    """A valid client stream and the events it must produce."""
    data, expected = b"", []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["text", "binary", "ping", "pong", "close"]))
        key = draw(keys)
        if kind in ("text", "binary"):
            payload = draw(texts).encode() if kind == "text" else draw(blobs)
            if len(payload) > max_message:
                payload = payload[:max_message]
                if kind == "text":
                    payload = payload.decode("utf-8", "ignore").encode()
            op = TEXT if kind == "text" else BINARY
            # Fragment at random points; pings may sit between fragments.
            cuts = sorted(set(draw(st.lists(st.integers(0, len(payload)), max_size=3))))
            pieces = [payload[a:b] for a, b in zip([0] + cuts, cuts + [len(payload)])]
            for i, piece in enumerate(pieces):
                fin = 0x80 if i == len(pieces) - 1 else 0
                data += client_frame(fin | (op if i == 0 else 0), piece, key)
                if not fin and draw(st.booleans()):
                    data += client_frame(0x80 | PING, b"mid", key)
                    expected.append((PING, b"mid"))
            expected.append((op, payload.decode() if op == TEXT else payload))
        elif kind in ("ping", "pong"):
            payload = draw(st.binary(max_size=125))
            op = PING if kind == "ping" else PONG
            data += client_frame(0x80 | op, payload, key)
            expected.append((op, payload))
        else:
            code = draw(st.sampled_from([1000, 1001, 1003, 1011, 3000, 4999]))
            reason = draw(st.text(max_size=20)).encode()[:123]
            reason = reason.decode("utf-8", "ignore").encode()
            data += client_frame(0x80 | CLOSE, code.to_bytes(2, "big") + reason, key)
            expected.append((CLOSE, (code, reason.decode())))
    return data, expected


@st.composite
def random_frame(draw):
    """A frame with every header field random: fin, RSV, opcode, mask bit,
    length encoding (including lies), payload."""
    b0 = draw(st.integers(0, 255))
    payload = draw(st.binary(max_size=200))
    length = draw(st.one_of(st.none(), st.integers(0, 300), st.sampled_from([125, 126, 127, 65535, 65536, 1 << 40, (1 << 63) + 5])))
    mask = draw(st.sampled_from([True, True, True, False]))  # mostly past the mask rule
    n = len(payload) if length is None else length
    if n >= 1 << 63:
        return bytes((b0, 0xFF)) + n.to_bytes(8, "big") + draw(keys) + payload
    return client_frame(b0, payload, draw(keys), mask, length)


def cut_points(data):
    return st.lists(st.integers(0, max(0, len(data))), max_size=12)


def mutate(data, ops):
    data = bytearray(data)
    for kind, pos, byte in ops:
        if not data:
            break
        pos %= len(data)
        if kind == 0:
            data[pos] ^= byte or 1
        elif kind == 1:
            data.insert(pos, byte)
        elif kind == 2:
            del data[pos]
        else:
            del data[pos:]
    return bytes(data)


mutations = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1, max_size=4)
