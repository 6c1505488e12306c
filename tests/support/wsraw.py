"""The tests' one raw WebSocket client: it can break every rule.

- frame()/close_frame(): client frames, any opcode, mask, RSV bits or lying length;
- request()/raw_request()/read_response(), upgrade_headers(), upgrade(): raw HTTP and
  handshakes that may be refused;
- RawWS: an open WebSocket over a plain socket, read frame by frame (or never:
  `rcvbuf` and unread_bytes() make a peer whose buffers fill up);
- open_socket() and the socket-level echo/close_clean/close_code/reset: peers that
  vanish in every way a real one does (the hardening, fuzz and soak tests).
"""
import base64
import fcntl
import os
import socket
import struct
import sys
import termios
import time

from support import ROOT

sys.path.insert(0, ROOT)
from tools.common import read_head, read_to_eof  # noqa: E402,F401  (the tools' own: one copy of each loop)

sys.path.pop(0)

KEY = base64.b64encode(b"0123456789abcdef").decode()


def frame(opcode, payload=b"", fin=True, mask=True, rsv=0, key=b"\x11\x22\x33\x44", length=None):
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    mbit = 0x80 if mask else 0
    if n < 126:
        head = bytes((b0, mbit | n))
    elif n < 65536:
        head = bytes((b0, mbit | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((b0, mbit | 127)) + n.to_bytes(8, "big")
    if not mask:
        return head + payload
    return head + key + bytes(b ^ key[i & 3] for i, b in enumerate(payload))


def close_frame(code=None, reason=b""):
    payload = b"" if code is None else code.to_bytes(2, "big") + reason
    return frame(0x8, payload)


def request(port, path="/", headers=None, method="GET", version="HTTP/1.1", extra=b""):
    """Send one raw request; returns (status, headers dict, body bytes)."""
    h = {"Host": "127.0.0.1:%d" % port}
    h.update(headers or {})
    head = "%s %s %s\r\n" % (method, path, version) + "".join("%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
    return raw_request(port, head.encode() + extra)


def raw_request(port, data, timeout=5):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        return read_response(s)


def read_response(s):
    buf = read_head(s)
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if status in (101, 304):
        return status, headers, body  # no body follows these
    length = int(headers.get("content-length", -1))
    while length < 0 or len(body) < length:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        body += chunk
    return status, headers, body


def upgrade(port, path="/ws", host=None, **headers):
    """One upgrade request with `headers` (Origin=...): (status, headers, body)."""
    h = upgrade_headers()
    if host:
        h["Host"] = host
    h.update(headers)
    return request(port, path, h)


def upgrade_headers(**overrides):
    h = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": KEY,
         "Sec-WebSocket-Version": "13"}
    for k, v in overrides.items():
        k = k.replace("_", "-")
        if v is None:
            h.pop(k, None)
        else:
            h[k] = v
    return h


class RawWS:
    """An open WebSocket over a plain socket."""

    def __init__(self, port, path="/", headers=None, rcvbuf=None, timeout=5):
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        h = {"Host": "127.0.0.1:%d" % port}
        h.update(upgrade_headers())
        h.update(headers or {})
        head = "GET %s HTTP/1.1\r\n" % path + "".join("%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
        self.sock.sendall(head.encode())
        buf = b""
        while b"\r\n\r\n" not in buf:  # byte by byte: nothing after the response is read
            chunk = self.sock.recv(1)
            if not chunk:
                self.sock.close()
                raise ConnectionError("closed during the handshake: %r" % buf)
            buf += chunk
        self.status = int(buf.split()[1])
        self.head = buf.decode()
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def send_text(self, text):
        self.sock.sendall(frame(0x1, text, key=os.urandom(4)))

    def unread_bytes(self):
        """Bytes waiting in our receive buffer (Linux SIOCINQ)."""
        buf = fcntl.ioctl(self.sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
        return struct.unpack("i", buf)[0]

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk

    def recv_frame(self):
        """(fin, opcode, payload) of the next server frame."""
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        assert not b1 & 0x80, "server frames must not be masked"
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            self._need(4)
            n = int.from_bytes(self.buf[2:4], "big")
            pos = 4
        elif n == 127:
            self._need(10)
            n = int.from_bytes(self.buf[2:10], "big")
            pos = 10
        self._need(pos + n)
        payload = self.buf[pos:pos + n]
        self.buf = self.buf[pos + n:]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def expect_close(self):
        """Read until the close frame; returns its code (None if empty)."""
        while True:
            fin, op, payload = self.recv_frame()
            if op == 0x8:
                return int.from_bytes(payload[:2], "big") if payload else None

    def closed_by_server(self, timeout=3.0):
        """True when the server closes the TCP connection within `timeout`."""
        self.sock.settimeout(timeout)
        end = time.monotonic() + timeout
        try:
            while time.monotonic() < end:
                if not self.sock.recv(65536):
                    return True
        except (socket.timeout, ConnectionResetError):
            return False if time.monotonic() >= end else True
        return False

    def close(self):
        self.sock.close()


def random_bytes(n):
    return os.urandom(n)


# -- socket-level helpers: a plain socket with the WebSocket open ---------------------

def open_socket(port, path="/", timeout=5.0, headers=None):
    """A socket with the WebSocket open (the 101 read, nothing more)."""
    ws = RawWS(port, path, headers, timeout=timeout)
    if ws.status != 101:
        ws.close()
        raise ConnectionError("handshake refused: %r" % ws.head.split("\r\n")[0])
    return ws.sock


def read_frame(s, buf=b""):
    """(opcode, payload, rest) of the next server frame; EOFError when closed."""
    def need(n):
        nonlocal buf
        while len(buf) < n:
            chunk = s.recv(65536)
            if not chunk:
                raise EOFError
            buf += chunk
    need(2)
    n = buf[1] & 0x7F
    pos = 2
    if n == 126:
        need(4)
        n, pos = int.from_bytes(buf[2:4], "big"), 4
    elif n == 127:
        need(10)
        n, pos = int.from_bytes(buf[2:10], "big"), 10
    need(pos + n)
    return buf[0] & 0x0F, buf[pos:pos + n], buf[pos + n:]


def echo(s, text):
    """Send a text message and return the echo (skipping pings)."""
    s.sendall(frame(1, text))
    rest = b""
    while True:
        op, payload, rest = read_frame(s, rest)
        if op == 1:
            return payload.decode()
        if op == 8:
            raise EOFError("closed: %r" % payload)


def close_clean(s):
    """Client close handshake, wait for the server's close frame, then close."""
    s.sendall(frame(8, (1000).to_bytes(2, "big")))
    rest = b""
    try:
        while True:
            op, payload, rest = read_frame(s, rest)
            if op == 8:
                break
    except (EOFError, OSError):
        pass
    s.close()


def reset(s):
    """Vanish with a TCP RST (SO_LINGER 0): a peer that crashed or lost power."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def close_code(s, timeout=3.0):
    """The code of the server's close frame (None if empty), or 'eof'."""
    s.settimeout(timeout)
    rest = b""
    try:
        while True:
            op, payload, rest = read_frame(s, rest)
            if op == 8:
                return int.from_bytes(payload[:2], "big") if payload else None
    except EOFError:
        return "eof"
