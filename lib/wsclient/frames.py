# Client frames (RFC 6455 §5.3) for a message sent in pieces: a long one
# (over client.LARGE) masked through a scratch buffer, or one the caller
# fragments. Loaded for such a send and dropped again (common.load): a car
# sends small messages, which client.encode_masked frames whole. Receiving
# is the shared codec's: wsserver.frames.Codec(client=True).

from os import urandom

from wsserver.errors import ConnectionClosed
from wsserver.frames import CLOSE_ABNORMAL, CONT, payload_view
from wsserver.frames import unmask as apply_mask  # XOR: masking and unmasking are one operation

from .client import LARGE, encode_masked

# A message longer than this is masked piece by piece through a scratch
# buffer of this size (a multiple of 4, so every piece starts the key over),
# never copied whole: a board can send a message bigger than its largest
# free block.
PIECE = 4096


def masked_header(opcode, n, key, fin=True):
    """Header of a masked frame with an n-byte payload, the key included."""
    first = (0x80 if fin else 0) | opcode
    if n < 126:
        return bytes((first, 0x80 | n)) + key
    if n < 65536:
        return bytes((first, 0x80 | 126, n >> 8, n & 0xFF)) + key
    return bytes((first, 0x80 | 127)) + n.to_bytes(8, "big") + key


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


async def send_pieces(ws, opcode, message, fragment=0):
    """ClientConnection.send() of a message longer than client.LARGE, or
    (fragment > 0) in frames of at most `fragment` payload bytes. Under the
    connection's lock for the whole message: no other data frame may come
    between its fragments (§5.4)."""
    if fragment:
        message = payload_view(message)  # a str's UTF-8 bytes: the limit counts bytes
        if len(message) <= fragment:
            fragment = 0
    if not fragment and len(message) <= LARGE:
        await ws.send_frame(encode_masked(opcode, message))
        return
    w = ws.writer
    async with ws.wire():
        try:
            if fragment:  # message: bytes-like; a fragment may split a UTF-8 sequence
                n = len(message)
                view = memoryview(message)
                for at in range(0, n, fragment):
                    w.write(encode_masked(opcode if at == 0 else CONT, view[at:at + fragment], at + fragment >= n))
                    await w.drain()
                return
            for piece in masked_pieces(opcode, message):
                w.write(piece)
                await w.drain()  # before the scratch buffer is reused
        except OSError:
            ws.abort()
            raise ConnectionClosed(CLOSE_ABNORMAL)
