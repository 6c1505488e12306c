# The texts of the opening handshake's errors (handshake.py), by number.
# Imported only when one is raised, and dropped again after (handshake._text):
# a connect does not load them on top of the running car, the moment a
# WebSocket link's edge is set (docs/fleet.md, Memory).

TEXTS = [
    "header %r contains a line break",  # 0
    "bad header name %r",  # 1
    "not an HTTP response: %r",  # 2
    "malformed header line in the response: %r",  # 3
    "response header is not valid UTF-8",  # 4
    "server answered %s, a redirect%s; redirects are not followed",  # 5
    "server answered %s, not 101 Switching Protocols",  # 6
    "101 without Upgrade: websocket",  # 7
    "101 without Connection: Upgrade",  # 8
    "Sec-WebSocket-Accept is %r, expected %r (RFC 6455 §4.1)",  # 9
    "server chose extension %r, which we did not offer",  # 10
    "server chose subprotocol %r; we offered %s",  # 11
    "server chose no subprotocol; we need one of %s",  # 12
    "%s closed the connection before answering the handshake",  # 13
    "handshake response head over %d bytes",  # 14
    "ssl= given for a ws:// URL; use wss:// for TLS",  # 15
    "no WebSocket handshake from %s within %d ms",  # 16
]
