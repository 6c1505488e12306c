"""Dead peers and floods: idle pings, silent peers dropped, pending-connection cap."""
import socket
import time

import pytest

from support.micropython import MicroPythonProcess
from support.polling import wait_until
from support.tcp import ESTABLISHED, tcp_state
from support.wsraw import RawWS, frame, request, upgrade_headers

PING, PONG = 9, 10


@pytest.fixture
def server():
    p = MicroPythonProcess("tests/support/servers/app_server.py",
                           ["--ping-interval-ms", "300", "--ping-timeout-ms", "300", "--max-pending", "4",
                            "--request-timeout-ms", "1500"])
    yield p
    p.stop()


@pytest.mark.slow
def test_silent_peer_is_pinged_then_dropped(server):
    ws = RawWS(server.port, "/feed")
    # /feed broadcasts constantly; look for the ping among the frames.
    t0 = time.monotonic()
    while True:
        fin, op, payload = ws.recv_frame()
        if op == PING:
            break
        assert time.monotonic() - t0 < 2, "no idle ping within 2 s"
    assert 0.25 < time.monotonic() - t0 < 1.0
    t1 = time.monotonic()
    ws.sock.settimeout(3)
    with pytest.raises((EOFError, ConnectionResetError)):
        while True:
            ws.recv_frame()
    assert time.monotonic() - t1 < 1.5  # dropped ~300 ms after the unanswered ping


@pytest.mark.slow
def test_peer_that_answers_pings_stays(server):
    ws = RawWS(server.port, "/echo")
    t0 = time.monotonic()
    pings = 0
    while time.monotonic() - t0 < 2.0:
        fin, op, payload = ws.recv_frame()
        if op == PING:
            pings += 1
            ws.send(frame(PONG, payload))
    assert pings >= 2
    ws.send(frame(1, "still open"))
    while True:
        fin, op, payload = ws.recv_frame()
        if op == 1:
            break
    assert payload == b"still open"
    ws.close()


def dropped_by_server(s):
    """True once the server answered 408 on `s` or closed it (peeked: the data stays)."""
    try:
        data = s.recv(100, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False
    except OSError:
        return True
    return data.startswith(b"HTTP/1.1 408") or data == b""


def test_slow_sockets_cannot_lock_out_a_real_client(server):
    # Sockets that connect and never send a byte (slowloris). Past max_pending
    # the oldest is dropped to make room, so the held sockets stay bounded and
    # a real client that sends its request at once is still served.
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(12)]
    # Until the server has dropped the oldest past max_pending (408 or EOF on them).
    wait_until(lambda: sum(map(dropped_by_server, idle)) >= 12 - 4, what="the oldest slow sockets dropped")
    assert request(server.port, "/echo", upgrade_headers())[0] == 101
    dropped = 0
    for s in idle:
        s.settimeout(0.05)
        try:
            data = s.recv(100)
            if data.startswith(b"HTTP/1.1 408") or data == b"":
                dropped += 1
        except socket.timeout:
            pass
    assert dropped >= 12 - 4, "more than max_pending slow sockets were held"
    for s in idle:
        s.close()


@pytest.mark.slow
def test_file_response_has_a_deadline(tmp_path):
    # A client that asks for a big file and never reads it is cut off after
    # request_timeout_ms, instead of holding the connection forever.
    (tmp_path / "big.bin").write_bytes(b"x" * (24 << 20))
    p = MicroPythonProcess("tests/support/servers/app_server.py",
                           ["--static", str(tmp_path), "--request-timeout-ms", "1000"])
    try:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", p.port))
        s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        # Never read: the server's writes stall until request_timeout_ms cuts the
        # response off, which takes its side of the connection out of ESTABLISHED.
        wait_until(lambda: tcp_state(p.port, s.getsockname()[1]) != ESTABLISHED, timeout=10,
                   what="the server giving up on the stalled response")
        s.settimeout(5)
        received = 0
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            received += len(chunk)
        assert received < (24 << 20), "the whole file went out: no stall to cut off"
        assert request(p.port, "/big.bin", method="HEAD")[0] == 200
    finally:
        p.stop()
