# The opening handshake's answer, server side (RFC 6455 §4.2): the parts the
# upgrade's fast path (upgrade.py), the full path (exchange.py, with
# http.check_upgrade's rules) and the client (wsclient.handshake) share.

import binascii
import hashlib

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_key(key):
    """Sec-WebSocket-Accept for a client's Sec-WebSocket-Key (§4.2.2)."""
    digest = hashlib.sha1(key.encode() + GUID).digest()
    return binascii.b2a_base64(digest).strip().decode()


def valid_key(key):
    # base64 of exactly 16 bytes: 22 alphabet characters then "==" (§4.1).
    # Decoding and encoding again must give the same text: that rejects
    # characters outside the alphabet even where a2b_base64 skips them.
    if len(key) != 24 or key[22:] != "==":
        return False
    try:
        raw = binascii.a2b_base64(key)
    except ValueError:
        return False
    return len(raw) == 16 and binascii.b2a_base64(raw).strip() == key.encode()


def choose_subprotocol(request, supported):
    """The first of our `supported` subprotocols the client offered, else None."""
    offered = request.headers.get("sec-websocket-protocol")
    if not offered or not supported:
        return None
    offered = [t.strip() for t in offered.split(",")]
    for name in supported:
        if name in offered:
            return name
    return None


def switching_protocols(request, subprotocol=None):
    """The 101 response, as bytes: built by concatenation, not by
    response_head's formatting (the handshake's hottest step after parsing)."""
    head = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept_key(request.headers["sec-websocket-key"]).encode())
    if subprotocol:
        head += b"\r\nSec-WebSocket-Protocol: " + subprotocol.encode()
    return head + b"\r\n\r\n"
