"""Fuzzing the real server over loopback: Hypothesis generates random and
mutated WebSocket frame streams (sent after a valid handshake) and random and
mutated HTTP requests, each on its own connection, ended in a random way
(half-close, RST, or just our FIN after the server answered). Every answer
must be well-formed and documented; afterwards the server still answers and
its heap and file descriptors are back at their baseline.
`-s` prints the example counts and the heap/fd figures."""
import socket
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.hardening import fd_count, settle_heap
from support.wsraw import close_clean, echo, reset
from support.wsraw import open_socket as handshake
from support.fuzz import mutate, mutations, random_frame, valid_stream

pytestmark = [pytest.mark.fuzz]

SETTINGS = settings(max_examples=500, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
HTTP_STATUSES = {200, 304, 400, 404, 405, 406, 408, 414, 426, 431, 503, 505}
SERVER_CLOSE_CODES = {1000, 1001, 1002, 1003, 1007, 1009, 1011} | set(range(3000, 5000))
EXAMPLES = Counter()
# Less than one idle connection (~1.9 KB on x64): a conservative GC can keep
# one dead object reachable from a stale slot for a while; growth would not fit.
HEAP_SLACK = 1536


@pytest.fixture(scope="module")
def server():
    from support.micropython import MicroPythonProcess
    p = MicroPythonProcess("tools/measure/echo_server.py", ["--bench", "--max-message", "4096", "--static", "web"])
    s = handshake(p.port)
    assert echo(s, "warm") == "warm"
    close_clean(s)
    p.base_heap = settle_heap(p.port)
    p.base_fds = fd_count(p.proc.pid)
    yield p
    p.stop()


@pytest.fixture(scope="module", autouse=True)
def final_check(server):
    yield
    # Still answering, and everything the fuzzing cost has been given back.
    s = handshake(server.port)
    assert echo(s, "still here") == "still here"
    close_clean(s)
    # MicroPython's GC is conservative: a dead object can stay reachable from
    # a stale slot (C stack, a finished coroutine's frame) until later work
    # overwrites it. That is a constant, not growth: a few ordinary
    # connections clear it, and it must then be back at the baseline.
    heap = settle_heap(server.port, server.base_heap + HEAP_SLACK, timeout=3.0)
    first, rounds = heap, 0
    while heap > server.base_heap + HEAP_SLACK and rounds < 5:
        rounds += 1
        for _ in range(10):
            s = handshake(server.port)
            assert echo(s, "x" * 100) == "x" * 100
            close_clean(s)
        heap = settle_heap(server.port, server.base_heap + HEAP_SLACK, timeout=1.0)
    EXAMPLES["clearing_rounds"] = rounds
    print("\nfuzz server: heap right after the fuzzing %d (%+d)" % (first, first - server.base_heap))
    fds = fd_count(server.proc.pid)
    print("\nfuzz server examples: %s; heap %d -> %d (%+d); fds %d -> %d"
          % (dict(EXAMPLES), server.base_heap, heap, heap - server.base_heap, server.base_fds, fds))
    assert heap <= server.base_heap + HEAP_SLACK
    assert fds <= server.base_fds
    assert server.poll() is None


def read_all(s, timeout=3.0):
    s.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data, True
            data += chunk
    except ConnectionResetError:
        return data, True
    except socket.timeout:
        return data, False


def check_server_frames(data):
    """Server frames: unmasked, known opcodes, a close (if any) last with a documented code."""
    pos, closed = 0, False
    while pos + 2 <= len(data):
        b0, b1 = data[pos], data[pos + 1]
        assert not b1 & 0x80, "server frame masked"
        assert b0 & 0x70 == 0
        op = b0 & 0x0F
        assert op in (0, 1, 2, 8, 9, 10), op
        n, pos = b1 & 0x7F, pos + 2
        if n == 126:
            n, pos = int.from_bytes(data[pos:pos + 2], "big"), pos + 2
        elif n == 127:
            n, pos = int.from_bytes(data[pos:pos + 8], "big"), pos + 8
        payload = data[pos:pos + n]
        pos += n
        assert not closed, "frame after the close frame"
        if op == 8:
            closed = True
            if payload:
                assert int.from_bytes(payload[:2], "big") in SERVER_CLOSE_CODES, payload
    assert pos == len(data) or not closed, "partial frame after close"


def finish(s, how):
    if how == "rst":
        reset(s)
        return
    s.shutdown(socket.SHUT_WR)  # EOF: the server must notice and let go
    data, eof = read_all(s)
    s.close()
    assert eof, "server kept the connection open after our FIN"
    return data


def send_and_finish(s, data, how):
    """Send data, then end the connection `how` (finish); None when the server
    already refused mid-send or on "rst", else what it answered."""
    try:
        s.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        s.close()
        return None
    return finish(s, how)


@SETTINGS
@given(st.one_of(st.lists(random_frame(), max_size=4).map(b"".join),
                 st.tuples(valid_stream(), mutations).map(lambda t: mutate(t[0][0], t[1])),
                 st.binary(max_size=300)),
       st.sampled_from(["fin", "rst"]))
def test_random_frames_to_the_server(server, data, how):
    EXAMPLES["ws_" + how] += 1
    out = send_and_finish(handshake(server.port), data, how)
    if out is not None:
        check_server_frames(out)


head_bytes = st.sampled_from([b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                              b"GET /index.html HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n",
                              b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                              b"HEAD /app.js HTTP/1.0\r\n\r\n",
                              b"GET /heap?x=%41&y HTTP/1.1\r\nHost: x\r\n\r\n"])


@SETTINGS
@given(st.one_of(st.binary(max_size=600), st.tuples(head_bytes, mutations).map(lambda t: mutate(*t))),
       st.sampled_from(["fin", "rst"]))
def test_random_requests_to_the_server(server, data, how):
    EXAMPLES["http_" + how] += 1
    out = send_and_finish(socket.create_connection(("127.0.0.1", server.port), timeout=5), data, how)
    if not out:
        return  # nothing to answer (e.g. no complete head before our FIN)
    assert out.startswith(b"HTTP/1.1 "), out[:60]
    status = int(out[9:12])
    if status == 101:
        check_server_frames(out.partition(b"\r\n\r\n")[2])
    else:
        assert status in HTTP_STATUSES, out[:80]
