# MQTT 3.1.1 packets as a sans-I/O codec: bytes in, Packet objects out;
# fields in, bytes to send out. No sockets, no asyncio, so it runs the same on
# MicroPython and CPython and can be unit-tested and fuzzed alone.
#
#   parser = Parser(max_packet=4096)
#   for packet in parser.feed(data): ...       # raises MQTTError on bad input
#   wire = publish("tether/car-1/telemetry", b"{...}", qos=1, packet_id=7)
#
# Only what a client needs: it builds PUBLISH, PUBACK, PINGREQ and
# DISCONNECT (CONNECT and SUBSCRIBE, sent only while connecting, are
# dial.py's) and reads every packet a broker sends a client (CONNACK,
# PUBLISH, PUBACK, SUBACK, UNSUBACK, PINGRESP). QoS 2 is not spoken: the
# client never asks for it, so a broker never sends it.
try:
    from micropython import const
except ImportError:  # CPython
    def const(value):
        return value

CONNACK = const(2)
PUBLISH = const(3)
PUBACK = const(4)
SUBACK = const(9)
UNSUBACK = const(11)
PINGRESP = const(13)

MAX_REMAINING = const(268435455)  # 4-byte remaining length (spec 2.2.3)
MAX_TOPIC = const(65535)  # a 16-bit length prefix


class MQTTError(Exception):
    """The peer broke MQTT 3.1.1 (or a limit); the message says what. The
    session ends on it and reconnects."""


def _load(name, keep=False):
    """mqtt.<name>, imported for one use and dropped from sys.modules again
    (its code is freed once the caller lets go of it): mqtt/texts.py, the
    error texts, so a running car does not hold ~2.5 KB of strings it shows
    only when something is wrong, and mqtt/dial.py, the code of a connect.
    keep: leave it in sys.modules (_drop drops it), so that what runs
    inside a connect uses the one copy instead of loading another."""
    import sys

    __import__("mqtt." + name)
    module = sys.modules["mqtt." + name]
    if not keep:
        _drop(name)
    return module


def _drop(name):
    import sys

    import mqtt

    sys.modules.pop("mqtt." + name, None)
    mqtt.__dict__.pop(name, None)


def _text(n, *args):
    """Text number n of mqtt/texts.py, formatted with args."""
    text = _load("texts").TEXTS[n]
    return text % args if args else text


def _fail(n, *args):
    return MQTTError(_text(n, *args))


class Packet:
    """One parsed packet. `type` is one of the constants above; the other
    attributes are set when the type has them."""

    topic = payload = None
    packet_id = None
    qos = 0
    retain = dup = False

    def __init__(self, kind):
        self.type = kind


# --- building ----------------------------------------------------------

def _length(n):
    if n > MAX_REMAINING:
        raise _fail(0, n, MAX_REMAINING)  # packet too large: remaining length %d > %d
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | 0x80 if n else byte)
        if not n:
            return out


def _packet(first, body, tail=b""):
    # A bytearray (it compares equal to bytes) made at its full size, then
    # the header, the body and tail (a PUBLISH's payload) copied into it:
    # a telemetry message is copied once, into the one block of its size
    # that the packet takes (no growing, which may copy it again).
    head = _length(len(body) + len(tail))
    at = 1 + len(head) + len(body)
    out = bytearray(at + len(tail))
    out[0] = first
    out[1:1 + len(head)] = head
    out[1 + len(head):at] = body
    out[at:] = tail
    return out


def _bytes(value, what):
    if type(value) is str:
        value = value.encode()
    if len(value) > 65535:
        raise _fail(1, what)  # %s longer than 65535 bytes
    return bytearray((len(value) >> 8, len(value) & 0xFF)) + value


def check_topic(topic, wildcards=False):
    """Raise MQTTError unless topic is a topic name MQTT allows (with
    wildcards, only the checks a topic filter shares: dial.check_filter)."""
    if type(topic) is not str:
        raise _fail(2)  # topic must be a string
    if not topic:
        raise _fail(3)  # topic is empty
    if len(topic.encode()) > MAX_TOPIC:
        raise _fail(4)  # topic longer than 65535 bytes
    if "\x00" in topic:
        raise _fail(5)  # topic contains U+0000
    if not wildcards and ("+" in topic or "#" in topic):
        raise _fail(6, topic)  # topic %r: wildcards + and # are only allowed in subscriptions


def publish(topic, payload, qos=0, retain=False, packet_id=None, dup=False):
    check_topic(topic)
    if qos != 0 and qos != 1:
        raise _fail(11)  # qos must be 0 or 1
    if type(payload) is str:
        try:
            payload = memoryview(payload)  # MicroPython: the str's UTF-8 bytes, not a copy
        except TypeError:  # CPython
            payload = payload.encode()
    body = _bytes(topic, "topic")
    if qos:
        body += _id(packet_id)
    return _packet((PUBLISH << 4) | (0x08 if dup and qos else 0) | (qos << 1) | (1 if retain else 0), body,
                   payload)


def _id(packet_id):
    if type(packet_id) is not int or not 0 < packet_id < 65536:
        raise _fail(12)  # packet id must be 1 to 65535
    return bytearray((packet_id >> 8, packet_id & 0xFF))


def puback(packet_id):
    return _packet(PUBACK << 4, _id(packet_id))


def pingreq():
    return b"\xc0\x00"


def disconnect():
    return b"\xe0\x00"


# --- parsing -----------------------------------------------------------

class Parser:
    """Feed it bytes as they arrive, in pieces of any size; it returns the
    complete packets. A packet longer than max_packet is skipped (its bytes
    are read and dropped, never held) and reported in `skipped`."""

    def __init__(self, max_packet=4096):
        self.max_packet = max_packet
        self.buf = bytearray()
        self.skip = 0  # bytes of an oversized packet still to drop
        self.skipped = 0  # how many oversized packets were dropped
        self.error = None

    def feed(self, data):
        """The complete packets so far. A malformed packet raises MQTTError,
        after the good packets before it have been returned: the error is
        raised by the next call (feed(b"") is enough) and by every later one."""
        if self.error:
            raise self.error
        if self.skip:
            n = min(self.skip, len(data))
            self.skip -= n
            data = data[n:]
        self.buf += data
        out = []
        while True:
            try:
                packet = self._next()
            except MQTTError as e:
                self.error = e
                if out:
                    return out
                raise
            if packet is None:
                return out
            out.append(packet)

    def _next(self):
        buf = self.buf
        if len(buf) < 2:
            return None
        # Remaining length: 1 to 4 bytes, 7 bits each, low first (2.2.3).
        n = shift = 0
        i = 1
        while True:
            if i >= len(buf):
                return None
            byte = buf[i]
            n |= (byte & 0x7F) << shift
            i += 1
            if not byte & 0x80:
                break
            shift += 7
            if i > 4:
                raise _fail(14)  # malformed remaining length: more than 4 bytes
        first = buf[0]
        kind = first >> 4
        if n > self.max_packet:
            if kind != PUBLISH:  # only a message can legitimately be big
                raise _fail(15, kind, n, self.max_packet)  # packet type %d with remaining length %d (limit...
            self.skipped += 1
            have = len(buf) - i
            if have >= n:
                self.buf = buf[i + n:]
            else:
                self.skip = n - have
                self.buf = bytearray()
            return self._next()
        if len(buf) < i + n:
            return None
        body = bytes(buf[i:i + n])
        self.buf = buf[i + n:]
        return parse(first, body)


def parse(first, body):
    """One packet from its first byte and its body (after the length)."""
    kind = first >> 4
    flags = first & 0x0F
    n = len(body)
    p = Packet(kind)
    if kind == PUBLISH:
        p.qos = qos = (flags >> 1) & 3
        if qos == 3:
            raise _fail(19)  # PUBLISH with QoS 3 (QoS bits must not both be set)
        if qos == 2:
            raise _fail(20)  # PUBLISH with QoS 2: this client never subscribes at QoS 2
        p.dup = flags & 8 != 0
        p.retain = flags & 1 != 0
        if p.dup and not qos:
            raise _fail(21)  # PUBLISH QoS 0 with the DUP flag set
        # The topic: a 16-bit length, then UTF-8.
        if n < 2:
            raise _fail(16, "PUBLISH topic")  # %s: packet ends inside it
        at = 2 + ((body[0] << 8) | body[1])
        if at > n:
            raise _fail(17, "PUBLISH topic", at - 2)  # %s: length %d runs past the packet's end
        try:
            topic = body[2:at].decode()
        except UnicodeError:
            raise _fail(18, "PUBLISH topic")  # %s: not valid UTF-8
        if not topic:
            raise _fail(22)  # PUBLISH topic is empty
        if "+" in topic or "#" in topic or "\x00" in topic:
            raise _fail(23, topic)  # PUBLISH topic %r contains a wildcard or U+0000
        p.topic = topic
        if qos:
            if at + 2 > n:
                raise _fail(16, "PUBLISH packet id")  # %s: packet ends inside it
            p.packet_id = (body[at] << 8) | body[at + 1]
            if not p.packet_id:
                raise _fail(24)  # PUBLISH packet id 0
            at += 2
        p.payload = body[at:]
        return p
    if kind < 1 or kind > 14:
        raise _fail(25, kind)  # packet type %d is reserved
    if kind != CONNACK and kind != PUBACK and kind != SUBACK and kind != UNSUBACK and kind != PINGRESP:
        raise _fail(26, kind)  # packet type %d is not sent to a client
    if flags:
        raise _fail(27, kind, flags)  # packet type %d: reserved flags 0x%x, must be 0
    if kind == PINGRESP:
        if n:
            raise _fail(28, n)  # PINGRESP remaining length %d, must be 0
        return p
    if kind == SUBACK:
        if n < 3:
            raise _fail(29, n)  # SUBACK remaining length %d, needs a packet id and a return code
        p.codes = list(body[2:])
        for code in p.codes:
            if code > 2 and code != 0x80:
                raise _fail(30, code)  # SUBACK return code 0x%x (must be 0, 1, 2 or 0x80)
    elif n != 2:
        name = "CONNACK" if kind == CONNACK else "PUBACK" if kind == PUBACK else "UNSUBACK"
        raise _fail(31, name, n)  # %s remaining length %d, must be 2
    if kind == CONNACK:
        if body[0] & 0xFE:
            raise _fail(32, body[0])  # CONNACK acknowledge flags 0x%x: reserved bits set
        p.session_present = body[0] & 1 != 0
        p.return_code = body[1]
        return p
    p.packet_id = (body[0] << 8) | body[1]
    return p
