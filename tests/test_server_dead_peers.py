"""Dead peers and floods: idle pings, silent peers dropped, pending-connection cap."""
import socket
import time

import pytest

from conftest import MicroPythonProcess
from wsraw import RawWS, frame, request, upgrade_headers

PING, PONG = 9, 10


@pytest.fixture
def server():
    p = MicroPythonProcess("tests/servers/app_server.py",
                           ["--ping-interval-ms", "300", "--ping-timeout-ms", "300", "--max-pending", "4",
                            "--request-timeout-ms", "1500"])
    yield p
    p.stop()


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


def test_connection_flood_is_capped_and_server_recovers(server):
    # Sockets that connect and never send a byte (slowloris): past max_pending
    # the server closes new ones at once instead of holding them.
    idle = []
    for _ in range(12):
        s = socket.create_connection(("127.0.0.1", server.port))
        idle.append(s)
    time.sleep(0.3)
    refused = 0
    for s in idle:
        s.settimeout(0.05)
        try:
            data = s.recv(100)
            if data.startswith(b"HTTP/1.1 503") or data == b"":
                refused += 1
        except socket.timeout:
            pass
    assert refused >= 12 - 4 - 1
    # The held ones time out (408) and a normal client is served again.
    time.sleep(1.6)
    for s in idle:
        s.close()
    assert request(server.port, "/echo", upgrade_headers())[0] == 101
