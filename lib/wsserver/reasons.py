# The codec's reasons for failing a connection (wsserver/frames.py raises
# ProtocolError(close_code, number)), by number: worded by errors.ProtocolError
# when one is raised, this module loaded for that and dropped again, so a
# car does not keep fifteen sentences in its heap for a peer that may never
# break a rule. The numbers are frames.py's _NAMES, in this order.

TEXTS = [
    "text message is not valid UTF-8 (RFC 6455 §8.1)",  # 0
    "RSV bits set without a negotiated extension (RFC 6455 §5.2)",  # 1
    "client frames must be masked (RFC 6455 §5.1)",  # 2
    "server frames must not be masked (RFC 6455 §5.1)",  # 3
    "reserved control opcode 0x%X (RFC 6455 §5.2)",  # 4
    "control frames must not be fragmented (RFC 6455 §5.5)",  # 5
    "control frame payload over 125 bytes (RFC 6455 §5.5)",  # 6
    "reserved data opcode 0x%X (RFC 6455 §5.2)",  # 7
    "64-bit length with the top bit set (RFC 6455 §5.2)",  # 8
    "message over the %d-byte limit",  # 9
    "continuation frame without a message to continue (RFC 6455 §5.4)",  # 10
    "new data frame before the fragmented message finished (RFC 6455 §5.4)",  # 11
    "close frame with a 1-byte payload (RFC 6455 §5.5.1)",  # 12
    "invalid close code %d (RFC 6455 §7.4)",  # 13
    "close reason is not valid UTF-8 (RFC 6455 §5.5.1)",  # 14
]
