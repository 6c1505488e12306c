# HTTP/1.1 request parsing: the small subset a board needs, and a WebSocket
# upgrade's rules (check_upgrade, each broken one named). Sans-I/O:
# parse_request() takes the bytes of a request head. (Responses, error
# answers included, and static files: answer.py, which a WebSocket's
# upgrade does not load unless it is refused.)

from .connection import Request
from .errors import HTTPError

# RFC 9110 token characters, for header names.
_TCHAR = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _is_token(name):
    # Nearly every real method and header name is letters and dashes: check
    # that in C, and only look byte by byte at the rest.
    if name.replace(b"-", b"").isalpha():
        return True
    for c in name:
        if c not in _TCHAR:
            return False
    return len(name) > 0


def find_head_end(data, max_uri):
    """Index just past the blank line ending the head, or -1 if not there yet.

    Raises 414 as soon as the request line alone is longer than `max_uri`
    allows, so a client cannot make us buffer a huge URI first.
    """
    end = data.find(b"\r\n\r\n")
    # A head with a bare LF would never end: answer now rather than time out.
    lf = data.find(b"\n")
    while lf >= 0 and (end < 0 or lf < end):
        if lf == 0 or data[lf - 1] != 13:
            raise HTTPError(400, "lines must end with CRLF, not a bare LF")
        lf = data.find(b"\n", lf + 1)
    if end >= 0:
        return end + 4
    if data.find(b"\r\n") < 0 and len(data) > max_uri + 16:
        raise HTTPError(414, "request line over %d bytes" % max_uri)
    return -1


def unquote(s):
    """Percent-decode a URL component; raises 400 on a malformed escape."""
    if "%" not in s:
        return s
    raw = s.encode()
    out = bytearray()
    i = 0
    n = len(raw)
    while i < n:
        c = raw[i]
        if c == 0x25:  # '%'
            # Exactly two hex digits: int(..., 16) alone would also take a
            # sign or a space ("%+a" -> newline, "%-0" -> NUL).
            # (s, done with, holds each digit: a new name would be interned)
            c = 0
            for s in raw[i + 1:i + 3]:
                if 0x30 <= s <= 0x39:  # 0-9
                    c = c * 16 + s - 0x30
                elif 0x61 <= s | 0x20 <= 0x66:  # a-f, A-F
                    c = c * 16 + (s | 0x20) - 0x57
                else:
                    i = n  # marks the escape bad
            if i + 3 > n:
                raise HTTPError(400, "malformed percent-escape in URL")
            out.append(c)
            i += 3
        else:
            out.append(c)
            i += 1
    try:
        return str(out, "utf-8")
    except UnicodeError:
        raise HTTPError(400, "URL is not valid UTF-8")


def parse_query(qs):
    query = {}
    for pair in qs.split("&"):
        if pair:
            eq = pair.find("=")  # no str.partition on the ESP8266
            name, value = (pair, "") if eq < 0 else (pair[:eq], pair[eq + 1:])
            query[unquote(name.replace("+", " "))] = unquote(value.replace("+", " "))
    return query


def parse_request(head, max_uri=512, max_headers=32):
    """Parse a request head (bytes up to and including the blank line)."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise HTTPError(400, "malformed request line")
    method, target, version = parts
    if len(target) > max_uri:
        raise HTTPError(414, "URI over %d bytes" % max_uri)
    if version != b"HTTP/1.1" and version != b"HTTP/1.0":
        if version.startswith(b"HTTP/"):
            raise HTTPError(505, "only HTTP/1.0 and HTTP/1.1 are supported")
        raise HTTPError(400, "malformed HTTP version")
    if not _is_token(method):
        raise HTTPError(400, "malformed method")
    if target[0] != 0x2F:  # '/': origin-form only
        raise HTTPError(400, "request target must start with /")
    headers = {}
    count = -1  # the request line is lines[0]: counted, not copied off
    for line in lines:
        count += 1
        if not line or not count:
            continue
        if count > max_headers:
            raise HTTPError(431, "more than %d header fields" % max_headers)
        colon = line.find(b":")
        if colon <= 0:
            raise HTTPError(400, "malformed header line")
        name = line[:colon]
        if not _is_token(name):
            raise HTTPError(400, "malformed header name")
        # Lower-cased as bytes: a str is made once (a token is ASCII), and
        # the common names are interned already, so no new str at all.
        key = str(name.lower(), "utf-8")
        try:
            value = str(line[colon + 1:].strip(), "utf-8")
        except UnicodeError:
            raise HTTPError(400, "header is not valid UTF-8")
        if key in headers:
            value = headers[key] + ", " + value
        headers[key] = value
    try:
        target = str(target, "utf-8")
    except UnicodeError:
        raise HTTPError(400, "URL is not valid UTF-8")
    mark = target.find("?")  # no str.partition on the ESP8266
    path, qs = (target, "") if mark < 0 else (target[:mark], target[mark + 1:])
    return Request(str(method, "utf-8"), target, path, parse_query(qs) if qs else {},
                   str(version, "utf-8"), headers)


def header_tokens(value):
    """'keep-alive, Upgrade' -> ['keep-alive', 'upgrade']"""
    return [t.strip().lower() for t in value.split(",")]


def check_upgrade(request):
    """Raise HTTPError naming the first handshake rule the request breaks."""
    h = request.headers
    if request.method != "GET":
        raise HTTPError(405, "WebSocket handshake must use GET", ["Allow: GET"])
    if request.version != "HTTP/1.1":
        raise HTTPError(400, "WebSocket handshake needs HTTP/1.1")
    if "host" not in h:
        raise HTTPError(400, "missing Host header")
    # The values as browsers send them are compared first: splitting a list
    # into tokens makes a str per token (each one looked up in the qstr pool).
    value = h.get("upgrade", "")
    if value != "websocket" and "websocket" not in header_tokens(value):
        raise HTTPError(400, "Upgrade header must contain 'websocket'")
    value = h.get("connection", "")
    if value != "Upgrade" and "upgrade" not in header_tokens(value):
        raise HTTPError(400, "Connection header must contain 'upgrade'")
    if h.get("sec-websocket-version") != "13":  # parse_request strips values
        raise HTTPError(426, "Sec-WebSocket-Version must be 13",
                        ["Sec-WebSocket-Version: 13"])
    # Here, not at the top: a page request loads this module, and must not
    # load upgrade.py with it.
    from .upgrade import valid_key

    if not valid_key(h.get("sec-websocket-key", "")):
        raise HTTPError(400, "Sec-WebSocket-Key must be base64 of 16 bytes")
