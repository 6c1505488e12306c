"""Helpers for the hardening, fuzz and soak tests: heap and file-descriptor
readings of a running server (support/servers/hardening_server.py). Their raw
WebSocket peers are support.wsraw's."""
import os
import socket
import time

from support.wsraw import read_to_eof

SERVER = "tests/support/servers/hardening_server.py"


def http_get(port, path, timeout=5.0):
    """(status, body) of one GET; raises OSError if the server does not answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path).encode())
        data = read_to_eof(s)
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
