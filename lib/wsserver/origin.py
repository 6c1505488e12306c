# Origin checks for WebSocket handshakes (RFC 6455 §10.2, RFC 6454).
#
# A browser sends `Origin: scheme://host[:port]` with every WebSocket
# handshake, and a page cannot forge it. Comparing it with the Host header is
# NOT enough: after a DNS rebinding attack the browser sends `Origin:
# http://evil.example` and `Host: evil.example` to our address, and the two
# agree. So the origin is compared with the names and addresses the server
# really has, which the application passes in:
#
#   check = origin.checker(hosts=("tether-car", "tether-car.local", "192.168.4.1"),
#                          ports=(80,), allowed=("http://192.168.1.20:8080",))
#   server.websocket("/ws", accept=check)
#
# Sans-I/O, no knowledge of any application; runs under CPython too.

def parse(value):
    """'http://Car.local:8080' -> ('http', 'car.local', 8080); None if malformed.

    IPv6 hosts keep their brackets stripped: 'http://[::1]:80' -> ('http', '::1', 80).
    """
    value = value.strip().lower()
    sep = value.find("://")  # no str.partition on the ESP8266
    scheme, rest = value[:sep], value[sep + 3:]
    # The schemes and their default ports, compared inline: a dict of them
    # would be built in the heap at import and kept.
    if scheme == "http" or scheme == "ws":
        default_port = 80
    elif scheme == "https" or scheme == "wss":
        default_port = 443
    else:
        return None
    if sep < 0 or not rest or "/" in rest or "@" in rest:
        return None
    if rest.startswith("["):  # [v6]:port
        end = rest.find("]")
        if end < 0:
            return None
        host, port = rest[1:end], rest[end + 1:]
        if port and not port.startswith(":"):
            return None
        port = port[1:]
    else:
        colon = rest.find(":")
        host, port = (rest, "") if colon < 0 else (rest[:colon], rest[colon:])
        port = port[1:]
    if not host:
        return None
    if port:
        if not port.isdigit() or len(port) > 5:
            return None
        port = int(port)
    else:
        port = default_port
    return scheme, host, port


def allowed_origin(value, hosts, ports, allowed=()):
    """True if an Origin header `value` is one of ours.

    hosts: our host names and IP addresses (lower-case, no brackets);
    ports: the ports we serve on; allowed: extra origins, exactly as a browser
    sends them ('http://name:port', default port omitted), or '*' for any.
    """
    value = value.strip().lower()
    for extra in allowed:
        if extra == "*" or extra == value:
            return True
    parts = parse(value)
    if parts is None:
        return False  # "null" (sandboxed pages, file://) and garbage
    return parts[1] in hosts and parts[2] in ports


def checker(hosts, ports, allowed=(), allow_missing=True):
    """An `accept(request)` hook: None for a good origin, (403, why) otherwise.

    `hosts` may be a function returning the current list (addresses change
    when a board joins another network); it is called only for handshakes
    that carry an Origin. Clients without an Origin header are not browsers
    (curl, scripts): `allow_missing` decides for them.
    """
    def accept(request):
        value = request.headers.get("origin")
        if value is None:
            # a list, built per call: a constant tuple would stay in the heap
            return None if allow_missing else [403, "an Origin header is required"]
        names = hosts() if callable(hosts) else hosts
        if allowed_origin(value, names, ports, allowed):
            return None
        return 403, "origin %s is not allowed" % value[:100]
    return accept
