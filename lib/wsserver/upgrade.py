# A WebSocket upgrade as browsers and client libraries send it, accepted
# with the least code: the request a running car gets again and again (a
# phone reconnecting, one more viewer), while its other clients hold the
# heap. Loaded per request and dropped as exchange.py is, it is a third of
# the code the whole HTTP side loads (docs/memory.md, "Code loaded per
# request").
#
# It says yes, "server full", or "not mine": any request it does not
# recognise at a glance (another method or route, a head not here in one
# read, a header it would have to look at closely, a rule broken) goes to
# exchange.py from the same bytes, which reads on, checks every rule and
# names the one broken. The one refusal it answers itself is the one a
# full server gives again and again, when the heap is at its tightest:
# loading exchange.py then would intern its names for good (the qstr pool
# never shrinks), and on an ESP8266 that was the heap telemetry needed.
# tests/http/test_upgrade_fast_path.py checks that whatever it accepts,
# exchange.py would accept too, as the same request. The handshake's
# answer (the key's check, the subprotocol, the 101 with its
# Sec-WebSocket-Accept, §4.2.2) is here too, for both paths: one module
# for a connect to load, not two.

import binascii

from .connection import Request, WebSocket, nodelay
from .errors import HTTPError
from .frames import accept_key


def parse(server, data):
    """[request, route, extra] when `data` holds the whole head of a plain
    upgrade to one of `server.ws_routes` (extra: the bytes after the head),
    else None. `server`: its limits and ws_routes."""
    end = data.find(b"\r\n\r\n")
    if end < 0 or end + 4 > server.max_head:
        return None
    stop = data.find(b"\r\n")  # the request line's end
    # Two rules checked on the whole head at once rather than line by line
    # (a line's checks are most of a connect's parsing): the number of
    # header fields (each ends with the CRLF before the next line, the
    # request line's own included), and no bare LF anywhere (exchange.py
    # says 400 for one).
    lines = data.count(b"\r\n", 0, end)
    if lines > server.max_headers or data.count(b"\n", 0, end) != lines:
        return None
    parts = data[:stop].split(b" ")
    if len(parts) != 3 or parts[0] != b"GET" or parts[2] != b"HTTP/1.1":
        return None
    target = parts[1]
    if not target or target[0] != 0x2F or len(target) > server.max_uri:
        return None
    headers = {}
    try:
        while stop < end:
            # One line at a time, not a list of them all: less to hold at
            # once while a connect is what fills the heap.
            start = stop + 2
            stop = data.find(b"\r\n", start)
            colon = data.find(b":", start, stop)
            name = data[start:colon]
            # Letters and dashes, as every header a client sends for this
            # is named.
            if colon <= start or not name.replace(b"-", b"").isalpha():
                return None
            name = str(name.lower(), "utf-8")
            if name in headers:
                return None  # a repeated field: exchange.py joins them
            headers[name] = str(data[colon + 1:stop].strip(), "utf-8")
        target = str(target, "utf-8")
    except UnicodeError:
        return None
    mark = target.find("?")  # no str.partition on the ESP8266
    path = target if mark < 0 else target[:mark]
    route = server.ws_routes.get(path)
    if route is None or "%" in target or "+" in target:  # an escape to decode
        return None
    query = {}
    if mark >= 0:
        for pair in target[mark + 1:].split("&"):
            if pair:
                eq = pair.find("=")
                if eq < 0:
                    query[pair] = ""
                else:
                    query[pair[:eq]] = pair[eq + 1:]
    value = headers.get("connection", "")
    if "host" not in headers or headers.get("upgrade") != "websocket" \
            or (value != "Upgrade" and "upgrade" not in value.lower().split(", ")) \
            or headers.get("sec-websocket-version") != "13" \
            or not valid_key(headers.get("sec-websocket-key", "")):
        return None
    return [Request("GET", target, path, query, "HTTP/1.1", headers), route, data[end + 4:]]


async def serve(server, stream, data):
    """The WebSocket for the upgrade in `data`, False when refused (and
    answered), None when it is exchange.py's to serve from `data`."""
    try:
        found = parse(server, data)
        if found is None:
            return None
        if len(server.clients) + server.opening >= server.max_clients:
            stream.write(server_full(server))
            await stream.drain()
            return False
        return open_websocket(server, stream, found[0], found[1], found[2])
    except OSError:
        return False  # the peer went away
    except MemoryError:
        raise  # the server's own fixed 503: no room to load answer.py either
    except Exception as e:  # the route's accept hook refused it, or failed
        from . import answer

        await answer.fail(server, stream, e, False)
        return False


def full_reason(server):
    return "server full: " + str(server.max_clients) + " WebSocket clients connected"


def server_full(server):
    """The 503 for the client past max_clients, from either path: the bytes
    answer.error_response would give (tests/http/test_upgrade_fast_path.py),
    built without loading it."""
    body = (full_reason(server) + "\n").encode()
    return (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: " + str(len(body)).encode()
            + b"\r\nConnection: close\r\nRetry-After: 2\r\n\r\n" + body)


def open_websocket(server, stream, request, route, extra):
    """After the handshake's checks: the route's accept hook asked, the
    101 sent with the new WebSocket. Raises HTTPError when the hook
    refuses."""
    subprotocols, accept = route[1], route[2]
    data = None
    if accept is not None:
        data = accept(request)
        if data is True:
            data = None
        elif isinstance(data, int):  # False too: a bool is an int
            raise HTTPError(data, "handshake refused")
        elif isinstance(data, list) or isinstance(data, tuple):
            raise HTTPError(data[0], data[1])
    subprotocol = choose_subprotocol(request, subprotocols)
    response = switching_protocols(request, subprotocol)
    nodelay(stream)
    # Headers were for the handshake (and the accept hook); an open
    # connection keeps only its path and query, to save heap.
    request.headers = None
    ws = WebSocket(server, stream, request, subprotocol, server.next_id, response, extra, data)
    server.next_id += 1
    # In server.clients once its task starts, so nothing is broadcast to it
    # before its handler has run (a hello comes first); counted till then.
    server.opening += 1
    return ws


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
