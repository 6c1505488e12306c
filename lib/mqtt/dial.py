# Connecting a session (session.py): the URL, TCP and TLS (a WebSocket is
# opened by transport.opener alone, so the WebSocket handshake's code is
# never loaded together with this), CONNECT and the CONNACK that answers
# it, SUBSCRIBE. Needed
# only while connecting, so it is loaded for each connect and dropped from
# sys.modules at once (codec._load), as the WebSocket client drops its
# handshake: a connected car does not hold this code. car.fleet_config
# checks fleet.url with split_url at boot, which loads this module alone
# (the codec only to word an error: its code and names on top of the boot's
# config check would take the qstr pool's next chunk, 4.7 KB in one block,
# docs/memory.md).
import asyncio


def _text(n, *args):
    # An error text (mqtt/texts.py, through the codec's loader).
    from mqtt.codec import _text as text

    return text(n, *args)


def split_url(url):
    """(scheme, host, port, path) of mqtt://, mqtts://, ws:// or wss:// URLs;
    ValueError names what is wrong."""
    if type(url) is not str or "://" not in url:
        raise ValueError(_text(38))  # must be a URL like mqtt://host:1883
    i = url.find("://")
    scheme = url[:i]
    rest = url[i + 3:]
    if scheme == "mqtt":
        port = 1883
    elif scheme == "mqtts":
        port = 8883
    elif scheme == "ws":
        port = 80
    elif scheme == "wss":
        port = 443
    else:
        raise ValueError(_text(39, scheme))  # scheme %s: must be mqtt, mqtts, ws or wss
    slash = rest.find("/")
    path = "/"
    if slash >= 0:
        path = rest[slash:]
        rest = rest[:slash]
    if scheme[0] == "m" and path != "/":
        raise ValueError(_text(40))  # mqtt:// and mqtts:// take no path
    if rest.startswith("["):  # [::1]:1883
        end = rest.find("]")
        if end < 0:
            raise ValueError(_text(41))  # unclosed [ in the host
        host = rest[1:end]
        rest = rest[end + 1:]
        if rest and rest[0] != ":":
            raise ValueError(_text(42))  # junk after ]
        port_text = rest[1:] if rest else ""
    else:
        colon = rest.find(":")
        host = rest if colon < 0 else rest[:colon]
        port_text = "" if colon < 0 else rest[colon + 1:]
    if not host:
        raise ValueError(_text(43))  # has no host
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(_text(44, port_text))  # port %s: must be 1 to 65535
        port = int(port_text)
    return scheme, host, port, path


async def open_tcp(host, port, ssl=None, secure=False):
    """A transport.StreamTransport over TCP, or TLS (secure) with an
    ssl.SSLContext (default: a new client context, which checks certificates
    where the platform has CA data; its checks are the context's). The host
    name is looked up by the socket layer, which blocks on a board: give a
    numeric address there or keep the lookup fast."""
    from mqtt.transport import StreamTransport

    if secure or ssl is not None:
        if ssl is None:
            import ssl as tls

            ssl = tls.create_default_context() if hasattr(tls, "create_default_context") \
                else tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
        reader, writer = await asyncio.open_connection(host, port, ssl=ssl, server_hostname=host)
    else:
        reader, writer = await asyncio.open_connection(host, port)
    return StreamTransport(reader, writer)


# --- the packets of a connect ------------------------------------------

def connect(client_id, keepalive_s=60, clean=True, username=None, password=None,
            will_topic=None, will_payload=b"", will_qos=0, will_retain=False):
    """A CONNECT packet (MQTT 3.1.1 3.1)."""
    from mqtt.codec import _bytes, _fail, _packet, check_topic

    if keepalive_s < 0 or keepalive_s > 65535:
        raise _fail(9)  # keepalive must be 0 to 65535 s
    flags = 0x02 if clean else 0
    body = bytearray(b"\x00\x04MQTT\x04")
    payload = _bytes(client_id, "client id")
    if will_topic is not None:
        check_topic(will_topic)
        flags |= 0x04 | (will_qos << 3) | (0x20 if will_retain else 0)
        payload += _bytes(will_topic, "will topic") + _bytes(will_payload, "will message")
    if username is not None:
        flags |= 0x80
        payload += _bytes(username, "user name")
    if password is not None:
        if username is None:
            raise _fail(10)  # a password needs a user name (MQTT 3.1.1 3.1.2.9)
        flags |= 0x40
        payload += _bytes(password, "password")
    body.append(flags)
    body.append(keepalive_s >> 8)
    body.append(keepalive_s & 0xFF)
    return _packet(0x10, body + payload)  # CONNECT << 4


def check_filter(topic):
    """Raise MQTTError unless topic is a topic filter MQTT allows."""
    from mqtt.codec import _fail, check_topic

    check_topic(topic, True)  # a string, not empty, not too long, no U+0000
    levels = topic.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise _fail(7, topic)  # topic filter %r: # must be a whole last level
        if "+" in level and level != "+":
            raise _fail(8, topic)  # topic filter %r: + must be a whole level


def subscribe(packet_id, topics):
    """A SUBSCRIBE packet; topics: list of (topic filter, qos)."""
    from mqtt.codec import _bytes, _fail, _id, _packet

    if not topics:
        raise _fail(13)  # SUBSCRIBE needs at least one topic filter
    body = _id(packet_id)
    for topic, qos in topics:
        check_filter(topic)
        body += _bytes(topic, "topic filter")
        body.append(qos)
    return _packet(0x82, body)  # SUBSCRIBE << 4 | 2


def refused(code):
    """The MQTTError for a CONNACK with return code `code` (its .code)."""
    from mqtt.codec import MQTTError, _load

    names = _load("texts").REFUSED
    e = MQTTError("CONNACK return code %d: %s" % (code, names[code - 1] if 1 <= code <= 5
                                                  else "unknown return code"))
    e.code = code
    return e


async def _first(t, parser):
    # The packets of the first read that holds any: CONNACK and what followed it.
    from mqtt.codec import _fail

    while True:
        data = await t.recv()
        if not data:
            raise _fail(34)  # broker closed the connection before CONNACK
        packets = parser.feed(data)
        if packets:
            return packets


async def handshake(s):
    """Connect session s on its open transport (s.transport): send CONNECT,
    wait for the CONNACK (up to s.connect_timeout_ms) and queue in s.urgent
    the unacknowledged QoS 1 messages (DUP, spec 4.4) and the SUBSCRIBE.
    Returns (parser, the packets that came behind the CONNACK); raises
    MQTTError (refused(): the broker said no), OSError or TimeoutError."""
    from mqtt.codec import Parser, _fail, publish

    t = s.transport
    will = s.will or (None, b"", 0, False)
    await t.send(connect(s.client_id, s.keepalive_s, True, s.username, s.password,
                         will[0], will[1], will[2], will[3]))
    parser = Parser(s.max_packet)
    packets = await asyncio.wait_for(_first(t, parser), s.connect_timeout_ms / 1000)
    ack = packets.pop(0)
    if ack.type != 2:  # CONNACK
        raise _fail(33, ack.type)  # expected CONNACK, got packet type %d
    if ack.return_code:
        raise refused(ack.return_code)
    urgent = s.urgent = []
    inflight = s.inflight
    for pid in sorted(inflight):
        topic, payload, qos, retain = inflight[pid]
        urgent.append(publish(topic, payload, qos, retain, pid, dup=True))
    if s.subscriptions:
        urgent.append(subscribe(s.new_id(), s.subscriptions))
    return parser, packets
