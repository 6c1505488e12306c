"""Request bodies (POST/PUT with Content-Length) through the real server on the
Unix port: pieces through the shared buffer, 411/413/400/408/405 at once."""
import hashlib
import os
import socket
import time

import pytest
import websockets.sync.client

from support.micropython import MicroPythonProcess
from support.wsraw import read_response, request


@pytest.fixture(scope="module")
def server():
    p = MicroPythonProcess("tests/support/servers/app_server.py", ["--request-timeout-ms", "500"])
    yield p
    p.stop()


def post(port, path, body, headers=None, method="POST"):
    h = {"Content-Length": str(len(body))}
    h.update(headers or {})
    return request(port, path, h, method=method, extra=body)


def open_request(port, head):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(head)
    return s


def test_body_arrives_in_pieces_through_the_shared_buffer(server):
    body = os.urandom(50000)
    status, headers, answer = post(server.port, "/upload", body)
    assert status == 200, answer
    digest, length, pieces, largest, buf = answer.decode().split()
    assert digest == hashlib.sha256(body).hexdigest()
    assert int(length) == 50000
    # Never whole in RAM: at most one shared buffer's worth per piece.
    assert int(largest) <= int(buf) == 2048 and int(pieces) >= 50000 // 2048


def test_put_and_small_body_sent_with_the_head(server):
    status, _, answer = post(server.port, "/upload", b"hello", method="PUT")
    assert status == 200
    assert answer.decode().split()[:2] == [hashlib.sha256(b"hello").hexdigest(), "5"]


def test_missing_length_is_an_empty_body(server):
    status, _, answer = request(server.port, "/upload", method="POST")
    assert status == 200 and answer.decode().split()[:2] == [hashlib.sha256(b"").hexdigest(), "0"]


def test_chunked_refused_with_411(server):
    status, _, answer = request(server.port, "/upload", {"Transfer-Encoding": "chunked"}, method="POST",
                                extra=b"5\r\nhello\r\n0\r\n\r\n")
    assert status == 411 and b"Content-Length" in answer


def test_huge_content_length_refused_before_reading(server):
    start = time.monotonic()
    status, _, answer = request(server.port, "/upload", {"Content-Length": str(10 ** 11)}, method="POST")
    assert status == 413 and b"100000" in answer
    assert request(server.port, "/upload", {"Content-Length": "9" * 40}, method="POST")[0] == 413
    assert time.monotonic() - start < 0.4  # at once, not after the 500 ms deadline


@pytest.mark.parametrize("value", ["abc", "-1", "5, 5", "0x10", "1e3", ""])
def test_bad_content_length_400(server, value):
    status, _, answer = request(server.port, "/upload", {"Content-Length": value}, method="POST",
                                extra=b"hello")
    assert status == 400 and b"Content-Length" in answer


def test_body_shorter_than_declared_and_closed_400(server):
    s = open_request(server.port, b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
                     + b"x" * 40)
    s.shutdown(socket.SHUT_WR)
    status, _, answer = read_response(s)
    s.close()
    assert status == 400 and b"40 of 100" in answer


def test_slow_body_408_at_the_deadline(server):
    start = time.monotonic()
    s = open_request(server.port, b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
                     + b"x" * 40)
    status, _, answer = read_response(s)
    elapsed = time.monotonic() - start
    s.close()
    assert status == 408 and b"body" in answer
    assert 0.4 < elapsed < 1.5, elapsed  # request_timeout_ms is 500 here


@pytest.mark.slow
def test_trickled_body_408_even_though_each_piece_is_in_time(server):
    # Pieces every 200 ms keep the idle deadline alive; the whole body must
    # still arrive within the route's timeout (request_timeout_ms here).
    start = time.monotonic()
    s = open_request(server.port, b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
    status = None
    for _ in range(20):
        time.sleep(0.2)
        try:
            s.sendall(b"x")
        except OSError:
            break
    status, _, answer = read_response(s)
    s.close()
    assert status == 408, (status, answer)
    assert time.monotonic() - start < 4.5


def test_longer_body_than_declared_reads_only_the_declared_length(server):
    status, _, answer = request(server.port, "/upload", {"Content-Length": "5"}, method="POST",
                                extra=b"helloEXTRA")
    assert status == 200 and answer.decode().split()[0] == hashlib.sha256(b"hello").hexdigest()


def test_methods_per_route_405_with_allow(server):
    status, headers, _ = request(server.port, "/upload")
    assert status == 405 and headers["allow"] == "POST, PUT"
    status, headers, _ = request(server.port, "/status", method="DELETE")
    assert status == 405 and headers["allow"] == "GET, HEAD"
    status, headers, _ = post(server.port, "/status", b"x")
    assert status == 405
    assert request(server.port, "/status")[0] == 200


def test_expect_100_continue(server):
    body = os.urandom(3000)
    s = open_request(server.port, b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 3000\r\n"
                     b"Expect: 100-continue\r\n\r\n")
    first = s.recv(64)
    assert first == b"HTTP/1.1 100 Continue\r\n\r\n"
    s.sendall(body)
    status, _, answer = read_response(s)
    s.close()
    assert status == 200 and answer.decode().split()[0] == hashlib.sha256(body).hexdigest()


def test_refused_before_the_body_answer_arrives_intact(server):
    # The handler refuses without reading; the unread body must not turn our
    # close into a reset that destroys the 403.
    for _ in range(5):
        status, _, answer = post(server.port, "/refuse", os.urandom(20000))
        assert status == 403 and answer == b"refused before the body\n"


def test_bad_bodies_do_not_disturb_a_websocket_client(server):
    with websockets.sync.client.connect(server.ws_url + "/echo") as ws:
        slow = [open_request(server.port, b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 9000\r\n\r\nab")
                for _ in range(3)]
        worst = 0.0
        for i in range(40):
            start = time.monotonic()
            ws.send("m%d" % i)
            assert ws.recv(timeout=2) == "m%d" % i
            worst = max(worst, time.monotonic() - start)
            post(server.port, "/upload", b"x", {"Content-Length": str(10 ** 9)})
        for s in slow:
            s.close()
    assert worst < 0.1, worst
