# The texts of the codec's errors, by number (codec._fail). Imported only
# when an error is raised, and dropped again after: a car pays for them
# only while it reports one.

TEXTS = [
    "packet too large: remaining length %d > %d",  # 0
    "%s longer than 65535 bytes",  # 1
    "topic must be a string",  # 2
    "topic is empty",  # 3
    "topic longer than 65535 bytes",  # 4
    "topic contains U+0000",  # 5
    "topic %r: wildcards + and # are only allowed in subscriptions",  # 6
    "topic filter %r: # must be a whole last level",  # 7
    "topic filter %r: + must be a whole level",  # 8
    "keepalive must be 0 to 65535 s",  # 9
    "a password needs a user name (MQTT 3.1.1 3.1.2.9)",  # 10
    "qos must be 0 or 1",  # 11
    "packet id must be 1 to 65535",  # 12
    "SUBSCRIBE needs at least one topic filter",  # 13
    "malformed remaining length: more than 4 bytes",  # 14
    "packet type %d with remaining length %d (limit %d)",  # 15
    "%s: packet ends inside it",  # 16
    "%s: length %d runs past the packet's end",  # 17
    "%s: not valid UTF-8",  # 18
    "PUBLISH with QoS 3 (QoS bits must not both be set)",  # 19
    "PUBLISH with QoS 2: this client never subscribes at QoS 2",  # 20
    "PUBLISH QoS 0 with the DUP flag set",  # 21
    "PUBLISH topic is empty",  # 22
    "PUBLISH topic %r contains a wildcard or U+0000",  # 23
    "PUBLISH packet id 0",  # 24
    "packet type %d is reserved",  # 25
    "packet type %d is not sent to a client",  # 26
    "packet type %d: reserved flags 0x%x, must be 0",  # 27
    "PINGRESP remaining length %d, must be 0",  # 28
    "SUBACK remaining length %d, needs a packet id and a return code",  # 29
    "SUBACK return code 0x%x (must be 0, 1, 2 or 0x80)",  # 30
    "%s remaining length %d, must be 2",  # 31
    "CONNACK acknowledge flags 0x%x: reserved bits set",  # 32
    # session.py
    "expected CONNACK, got packet type %d",  # 33
    "broker closed the connection before CONNACK",  # 34
    "broker closed the connection",  # 35
    "a second CONNACK",  # 36
    "no packet from the broker for %d ms (keepalive %d s)",  # 37
    # transport.py (split_url)
    "must be a URL like mqtt://host:1883",  # 38
    "scheme %s: must be mqtt, mqtts, ws or wss",  # 39
    "mqtt:// and mqtts:// take no path",  # 40
    "unclosed [ in the host",  # 41
    "junk after ]",  # 42
    "has no host",  # 43
    "port %s: must be 1 to 65535",  # 44
]

REFUSED = ["unacceptable protocol version", "identifier rejected", "server unavailable",
           "bad user name or password", "not authorized"]
