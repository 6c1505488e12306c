# The opening handshake, client side (RFC 6455 §4.1): sans-I/O functions (a
# URL in, request bytes out; response-head bytes in, the subprotocol or an
# error naming what is wrong out) and open_connection(), which runs them on
# a new TCP/TLS connection for client.connect(). Loaded only to connect;
# its error texts (texts.py) only to word an error.

import asyncio
import binascii
import os

from wsserver.frames import accept_key

# HandshakeError is common.py's: it outlives this module (see common.load).
from .common import MAX_HEAD, HandshakeError, shut


def _text(n, *args):
    # Error text number n of wsclient/texts.py, formatted with args: the
    # texts are loaded only to word an error, and dropped again.
    import sys

    import wsclient
    from wsclient import texts

    sys.modules.pop("wsclient.texts", None)
    wsclient.__dict__.pop("texts", None)
    text = texts.TEXTS[n]
    return text % args if args else text


def parse_url(url):
    """wsurl.parse_url, here too for this module's callers and tests: loaded
    for the call and dropped (client.connect parses the URL before it loads
    this module, so the two are not in the heap together)."""
    import sys

    from wsurl import parse_url as parse

    sys.modules.pop("wsurl", None)
    return parse(url)


def new_key():
    """A Sec-WebSocket-Key: base64 of 16 random bytes (§4.1)."""
    return binascii.b2a_base64(os.urandom(16)).strip().decode()


def _header_items(headers):
    if headers is None:
        return ()
    if isinstance(headers, dict):
        return headers.items()
    return headers


def request(host, port, target, key, secure=False, subprotocols=None, headers=None):
    """The bytes of the upgrade request."""
    host_header = "[%s]" % host if ":" in host else host
    if port != (443 if secure else 80):
        host_header += ":%d" % port
    lines = ["GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n" % (target, host_header, key)]
    if subprotocols:
        lines.append("Sec-WebSocket-Protocol: %s\r\n" % ", ".join(subprotocols))
    for name, value in _header_items(headers):
        value = str(value)
        # A CR or LF would end the header and let a value inject others.
        for c in "\r\n":
            if c in name or c in value:
                raise ValueError(_text(0, name))  # header %r contains a line break
        if not name or ":" in name or " " in name:
            raise ValueError(_text(1, name))  # bad header name %r
        lines.append("%s: %s\r\n" % (name, value))
    lines.append("\r\n")
    return "".join(lines).encode()


def parse_response(head):
    """(status, reason, headers) from a response head (bytes, up to the blank line)."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise HandshakeError(None, _text(2, bytes(lines[0][:80])))  # not an HTTP response: %r
    status = int(parts[1])
    try:
        reason = str(parts[2], "utf-8") if len(parts) > 2 else ""
    except UnicodeError:
        reason = ""
    headers = {}
    for line in lines[1:]:
        if not line:
            continue
        colon = line.find(b":")
        if colon <= 0:
            raise HandshakeError(status, _text(3, bytes(line[:80])))  # malformed header line in the response
        try:
            name = str(line[:colon], "utf-8").lower()
            value = str(line[colon + 1:].strip(), "utf-8")
        except UnicodeError:
            raise HandshakeError(status, _text(4))  # response header is not valid UTF-8
        if name in headers:
            value = headers[name] + ", " + value
        headers[name] = value
    return status, reason, headers


def _tokens(value):
    return [t.strip().lower() for t in value.split(",")]


def check_response(status, reason, headers, key, subprotocols=None):
    """The subprotocol the server chose (or None); raises HandshakeError
    naming the status or the broken rule."""
    if status != 101:
        what = ("%d %s" % (status, reason)) if reason else str(status)
        if 300 <= status < 400:
            where = headers.get("location")
            # server answered %s, a redirect%s; redirects are not followed
            raise HandshakeError(status, _text(5, what, " to " + where if where else ""), headers)
        raise HandshakeError(status, _text(6, what), headers)  # server answered %s, not 101 ...
    if "websocket" not in _tokens(headers.get("upgrade", "")):
        raise HandshakeError(101, _text(7), headers)  # 101 without Upgrade: websocket
    if "upgrade" not in _tokens(headers.get("connection", "")):
        raise HandshakeError(101, _text(8), headers)  # 101 without Connection: Upgrade
    accept = headers.get("sec-websocket-accept")
    expected = accept_key(key)
    if accept != expected:
        # Sec-WebSocket-Accept is %r, expected %r (RFC 6455 §4.1)
        raise HandshakeError(101, _text(9, accept, expected), headers)
    if headers.get("sec-websocket-extensions"):
        # server chose extension %r, which we did not offer
        raise HandshakeError(101, _text(10, headers["sec-websocket-extensions"]), headers)
    chosen = headers.get("sec-websocket-protocol")
    if chosen is not None:
        if not subprotocols or chosen not in subprotocols:
            # server chose subprotocol %r; we offered %s
            raise HandshakeError(101, _text(11, chosen, ", ".join(subprotocols) if subprotocols else "none"),
                                 headers)
        return chosen
    if subprotocols:
        # server chose no subprotocol; we need one of %s
        raise HandshakeError(101, _text(12, ", ".join(subprotocols)), headers)
    return None


async def _open(secure, host, port, target, url, subprotocols, headers, ssl, server_hostname):
    key = new_key()
    req = request(host, port, target, key, secure, subprotocols, headers)
    if secure:
        reader, writer = await asyncio.open_connection(host, port, ssl=ssl,
                                                       server_hostname=server_hostname or host)
    else:
        reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(req)
        await writer.drain()
        head = b""
        while True:
            # Small reads: a response head is ~150 bytes, and a connect in a
            # running car's fragmented heap found no 1 KB block to read into
            # (the uplink's edge on the esp32 proxy, docs/memory.md).
            chunk = await reader.read(256)
            if chunk is None:
                continue  # TLS: no whole record yet
            if not chunk:
                # %s closed the connection before answering the handshake
                raise HandshakeError(None, _text(13, url))
            head += chunk
            end = head.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(head) > MAX_HEAD:
                raise HandshakeError(None, _text(14, MAX_HEAD))  # handshake response head over %d bytes
        status, reason, resp_headers = parse_response(head[:end])
        subprotocol = check_response(status, reason, resp_headers, key, subprotocols)
        # The response's headers are dropped here, as the server drops a
        # request's: an open connection keeps only what it uses (~340 bytes).
        return reader, writer, subprotocol, head[end + 4:]
    except BaseException:
        shut(writer)
        raise


async def open_connection(url, parts, subprotocols, headers, ssl, server_hostname, open_timeout_ms):
    """client.connect()'s work up to the open connection (its docstring says
    what each argument does; parts: parse_url(url)): (reader, writer, the
    subprotocol chosen, the bytes that came behind the 101 in the same read)."""
    secure, host, port, target = parts
    if not secure and ssl is not None:
        raise ValueError(_text(15))  # ssl= given for a ws:// URL; use wss:// for TLS
    if secure and ssl is None:
        import ssl as _ssl
        ssl = _ssl.create_default_context() if hasattr(_ssl, "create_default_context") \
            else _ssl.SSLContext(_ssl.PROTOCOL_TLS_CLIENT)
    try:
        return await asyncio.wait_for(
            _open(secure, host, port, target, url, subprotocols, headers, ssl, server_hostname),
            open_timeout_ms / 1000)
    except asyncio.TimeoutError:
        # no WebSocket handshake from %s within %d ms
        raise HandshakeError(None, _text(16, url, open_timeout_ms))
