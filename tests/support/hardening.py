"""Helpers for the hardening, fuzz and soak tests: heap and file-descriptor
readings of a running server, raw WebSocket connections that can vanish in
every way a real peer does."""
import base64
import os
import socket
import struct
import time

from wsraw import frame

SERVER = "tests/helpers_hardening_server.py"
KEY = base64.b64encode(b"hardening-tests!").decode()


def http_get(port, path, timeout=5.0):
    """(status, body) of one GET; raises OSError if the server does not answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path).encode())
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def heap(port):
    """gc.mem_alloc() after gc.collect() in the server (GET /heap)."""
    status, body = http_get(port, "/heap")
    assert status == 200, status
    return int(body)


def settle_heap(port, target=None, timeout=3.0):
    """Poll GET /heap until it is <= target (or stable when target is None);
    returns the last reading. Connections the server is still closing (close
    timeouts, pings) free their heap a little later than the client's close."""
    deadline = time.monotonic() + timeout
    last = heap(port)
    while time.monotonic() < deadline:
        if target is not None and last <= target:
            return last
        time.sleep(0.05)
        now = heap(port)
        if target is None and now == last:
            return now
        last = now
    return last


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def handshake(port, path="/", timeout=5.0, extra_headers=""):
    """A socket with the WebSocket open (101 read, nothing more)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n"
               % (path, port, KEY, extra_headers)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        if not chunk:
            s.close()
            raise ConnectionError("closed during the handshake: %r" % head)
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        s.close()
        raise ConnectionError("handshake refused: %r" % head.split(b"\r\n")[0])
    return s


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
