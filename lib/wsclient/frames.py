# Client frames (RFC 6455 §5.3): masked with a fresh random key each.
# Receiving is the shared codec's: wsserver.frames.Codec(client=True).

from os import urandom

from wsserver.frames import CLOSE, CLOSE_NO_STATUS, CLOSE_NORMAL, payload_view
from wsserver.frames import unmask as apply_mask  # XOR: masking and unmasking are one operation

# A message longer than this is masked piece by piece through a scratch
# buffer of this size (a multiple of 4, so every piece starts the key over),
# never copied whole: a board can send a message bigger than its largest
# free block.
PIECE = 4096


def _length_bytes(n):
    """The length part of a masked frame header: 1, 3 or 9 bytes."""
    if n < 126:
        return bytes((0x80 | n,))
    if n < 65536:
        return bytes((0x80 | 126, n >> 8, n & 0xFF))
    return bytes((0x80 | 127,)) + n.to_bytes(8, "big")


def masked_header(opcode, n, key, fin=True):
    """Header of a masked frame with an n-byte payload, the key included."""
    return bytes(((0x80 if fin else 0) | opcode,)) + _length_bytes(n) + key


def encode_masked(opcode, payload=b"", fin=True):
    """One masked frame, as a memoryview of a buffer made for it.

    The payload sits at an offset that is a multiple of 4 in that buffer,
    so the word-at-a-time (viper) XOR can mask it in place.
    """
    payload = payload_view(payload)
    n = len(payload)
    key = urandom(4)
    head = masked_header(opcode, n, key, fin)
    pad = -len(head) & 3  # 6, 8 or 14 header bytes -> 2, 0, 2 bytes of padding
    start = pad + len(head)
    frame = bytearray(start + n)
    frame[pad:start] = head
    if n:
        frame[start:] = payload
        apply_mask(memoryview(frame)[start:], n, key)
    return memoryview(frame)[pad:] if pad else frame


def encode_close(code=CLOSE_NORMAL, reason=""):
    if code == CLOSE_NO_STATUS:
        return encode_masked(CLOSE)
    reason = reason.encode() if isinstance(reason, str) else reason
    # Control frames carry at most 125 bytes (§5.5): trim the reason, not the code.
    return encode_masked(CLOSE, bytes((code >> 8, code & 0xFF)) + reason[:123])


def masked_pieces(opcode, payload, fin=True):
    """A large frame as a header and then PIECE-sized masked pieces.

    Yields buffers to write in order; each piece lives in one scratch buffer
    that is overwritten for the next, so write each before asking for more.
    """
    payload = payload_view(payload)
    n = len(payload)
    key = urandom(4)
    yield masked_header(opcode, n, key, fin)
    scratch = bytearray(min(n, PIECE))
    view = memoryview(scratch)
    src = memoryview(payload)
    at = 0
    while at < n:
        take = min(PIECE, n - at)
        view[:take] = src[at:at + take]
        apply_mask(scratch, take, key)
        yield view[:take] if take < len(scratch) else scratch
        at += take
