# Who may connect and who may drive (docs/reliability.md, "Access").
#
# Two independent checks, both at the WebSocket handshake (the server's
# accept hook), so a refused client costs no WebSocket heap at all:
# - Origin: a browser page may connect only when it was loaded from the car
#   itself (its names and addresses) or from an origin on `access.origins`.
#   Stops other web pages the phone has open from driving the car.
# - Token: when `access.token` is set, only clients that bring it in the URL
#   (`/ws?token=...`; the page copies it from its own `?token=`) may drive,
#   set the speed limit or switch actuators. Everyone may `stop`. With
#   `access.viewers_need_token` the others are refused (403) instead of
#   being let in as viewers.
from wsserver.origin import checker

DRIVER = "driver"  # the data accept() gives a client that brought the token


def equal(given, secret):
    """Constant-time comparison of two str/bytes (no hmac.compare_digest on
    MicroPython). Time depends only on len(given), never on how many leading
    characters match, so the token cannot be guessed one character at a time."""
    if isinstance(given, str):
        given = given.encode()
    if isinstance(secret, str):
        secret = secret.encode()
    n = len(secret)
    diff = len(given) ^ n
    if not n:
        return False  # no secret: nothing matches it
    for i in range(len(given)):
        diff |= given[i] ^ secret[i % n]
    return diff == 0


def board_addresses():
    """The board's current IP addresses (station and access point)."""
    found = []
    try:
        import network
    except ImportError:  # Unix port: the caller lists its own
        return found
    for iface in ["STA_IF", "AP_IF"]:  # a list, built per call: a constant tuple stays in the heap
        try:
            wlan = network.WLAN(getattr(network, iface))
            if wlan.active():
                found.append(wlan.ifconfig()[0])
        except (AttributeError, OSError, ValueError):
            pass
    return found


class Access:
    def __init__(self, cfg, hostname, port, hosts=()):
        self.token = cfg["token"]
        self.viewers_need_token = cfg["viewers_need_token"] and self.token is not None
        # Our names: mDNS/DHCP name and the fixed ones (the Unix port passes
        # 127.0.0.1, localhost and --host); the board's IPs are looked up at
        # each handshake because DHCP may change them.
        fixed = [hostname.lower(), hostname.lower() + ".local"] + [h.lower() for h in hosts]

        def names():
            return fixed + board_addresses()

        self.origin_ok = checker(names, (port,), cfg["origins"], cfg["allow_no_origin"])

    def accept(self, request):
        """The server's accept hook (and the HTTP API's check): [403, reason]
        to refuse, else the client's data for the server to keep as ws.data
        (request.data for HTTP): DRIVER when it brought the token, None for
        a viewer or when no token is configured (everyone drives)."""
        verdict = self.origin_ok(request)
        if verdict is not None:
            return verdict
        # Not kept in the connection's query dict: it would sit in the heap
        # (and in any debug print) for the connection's whole life.
        given = request.query.pop("token", None)
        if self.token is None:
            return None
        if given is not None and equal(given, self.token):
            return DRIVER
        if self.viewers_need_token:
            return [403, "access token missing or wrong (add ?token=... to the URL)"]
        return None

    def authorized(self, client):
        """True if this client may drive: a WebSocket (ws.data from accept),
        an HTTP request (request.data) or the link (car/remote.py)."""
        return self.token is None or client.data == DRIVER
