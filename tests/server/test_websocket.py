"""WebSocket side of the server against RFC 6455: handshake, framing, close, limits."""
import asyncio
import base64
import hashlib
import time

import pytest
import websockets

from support.micropython import MicroPythonProcess
from support.polling import wait_steady, wait_until
from support.tcp import send_queue
from support.wsraw import KEY, RawWS, close_frame, frame, request, upgrade_headers

TEXT, BINARY, CLOSE, PING, PONG, CONT = 1, 2, 8, 9, 10, 0


@pytest.fixture(scope="module")
def server():
    p = MicroPythonProcess("tests/support/servers/app_server.py",
                           ["--max-clients", "6", "--max-message", "1000", "--close-timeout-ms", "500"])
    yield p
    p.stop()


# -- handshake (§4.2) ---------------------------------------------------------

def test_handshake_accept_key(server):
    status, headers, _ = request(server.port, "/echo", upgrade_headers())
    assert status == 101
    expected = base64.b64encode(hashlib.sha1((KEY + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
    assert headers["sec-websocket-accept"] == expected.decode()
    assert headers["upgrade"].lower() == "websocket"


def test_connection_header_token_lists_case_insensitive(server):
    status, _, _ = request(server.port, "/echo", upgrade_headers(Connection="keep-alive, UPGRADE", Upgrade="WebSocket"))
    assert status == 101


@pytest.mark.parametrize("overrides,status", [
    ({"Upgrade": None}, 400),
    ({"Upgrade": "h2c"}, 400),
    ({"Connection": None}, 400),
    ({"Connection": "keep-alive"}, 400),
    ({"Connection": "upgraded"}, 400),
    ({"Sec-WebSocket-Key": None}, 400),
    ({"Sec-WebSocket-Key": "not base64 at all!!!!!=="}, 400),
    ({"Sec-WebSocket-Key": base64.b64encode(b"fifteen bytes!!").decode()}, 400),
    ({"Sec-WebSocket-Key": base64.b64encode(b"seventeen bytes!!").decode()}, 400),
])
def test_bad_handshake_status(server, overrides, status):
    assert request(server.port, "/echo", upgrade_headers(**overrides))[0] == status


@pytest.mark.parametrize("version", [None, "8", "14", "13, 8"])
def test_wrong_version_426_names_13(server, version):
    status, headers, _ = request(server.port, "/echo", upgrade_headers(**{"Sec-WebSocket-Version": version}))
    assert status == 426
    assert headers["sec-websocket-version"] == "13"


def test_handshake_must_be_get(server):
    status, headers, _ = request(server.port, "/echo", upgrade_headers(), method="POST")
    assert status == 405


def test_handshake_needs_http11(server):
    assert request(server.port, "/echo", upgrade_headers(), version="HTTP/1.0")[0] == 400


def test_unknown_ws_path_404(server):
    assert request(server.port, "/nowhere", upgrade_headers())[0] == 404


def test_subprotocol_negotiation(server):
    ws = RawWS(server.port, "/chat", {"Sec-WebSocket-Protocol": "chat.v1, chat.v2"})
    assert "Sec-WebSocket-Protocol: chat.v2" in ws.head  # our preference among the offered
    assert ws.recv_frame()[2] == b"chat.v2"
    ws.close()
    ws = RawWS(server.port, "/chat", {"Sec-WebSocket-Protocol": "chat.v1"})
    assert ws.recv_frame()[2] == b"chat.v1"
    ws.close()
    ws = RawWS(server.port, "/chat", {"Sec-WebSocket-Protocol": "mqtt"})
    assert "Sec-WebSocket-Protocol" not in ws.head
    assert ws.recv_frame()[2] == b"none"
    ws.close()


def test_accept_hook_refuses_before_101(server):
    status, _, body = request(server.port, "/private", upgrade_headers())
    assert status == 403 and b"token required" in body
    ws = RawWS(server.port, "/private?token=letmein")
    assert ws.status == 101 and ws.recv_frame()[2] == b"welcome"
    ws.close()


def test_accept_hook_value_is_the_connections_data(server):
    status, _, body = request(server.port, "/whoami", upgrade_headers())
    assert status == 401 and b"name required" in body  # a [status, reason] list refuses
    ws = RawWS(server.port, "/whoami?name=ada")
    assert ws.status == 101 and ws.recv_frame()[2] == b"{'name': 'ada'}"
    ws.close()
    ws = RawWS(server.port, "/whoami?name=anon")  # True accepts and keeps nothing
    assert ws.status == 101 and ws.recv_frame()[2] == b"None"
    ws.close()


def test_max_clients_503(server):
    conns = [RawWS(server.port, "/feed") for _ in range(6)]
    assert all(c.status == 101 for c in conns)
    status, headers, _ = request(server.port, "/echo", upgrade_headers())
    assert status == 503
    conns.pop().close()
    extra = wait_until(lambda: accepted(server.port, "/echo"), what="a slot freed by the client that left")
    for c in conns + [extra]:
        c.close()
    # The next tests need slots: wait until all six are free again.
    wait_until(lambda: all_slots_free(server.port, 6), what="every slot free again")


def accepted(port, path):
    """An open RawWS if the server let it in (101), else None (the refusal closed)."""
    ws = RawWS(port, path)
    if ws.status == 101:
        return ws
    ws.close()
    return None


def all_slots_free(port, n):
    conns = []
    try:
        for _ in range(n):
            ws = accepted(port, "/echo")
            if ws is None:
                return False
            conns.append(ws)
        return True
    finally:
        for c in conns:
            c.close()


# -- framing (§5) ---------------------------------------------------------------

def echo(server):
    ws = RawWS(server.port, "/echo")
    assert ws.status == 101
    return ws


@pytest.mark.parametrize("size", [0, 125, 126, 65535 % 1000, 999])
def test_lengths_echo(server, size):
    ws = echo(server)
    data = bytes(range(256)) * 4
    ws.send(frame(BINARY, data[:size]))
    assert ws.recv_frame() == (True, BINARY, data[:size])
    ws.close()


def test_16_and_64_bit_lengths():
    p = MicroPythonProcess("tests/support/servers/app_server.py", ["--max-message", "200000"])
    try:
        ws = RawWS(p.port, "/echo")
        for n in (300, 70000):
            ws.send(frame(BINARY, b"\xab" * n))
            fin, op, payload = ws.recv_frame()
            assert (op, len(payload)) == (BINARY, n)
        # A 64-bit length header for a short payload is legal too.
        body = b"x" * 10
        key = b"\x01\x02\x03\x04"
        ws.send(bytes((0x82, 0xFF)) + (10).to_bytes(8, "big") + key + bytes(b ^ key[i & 3] for i, b in enumerate(body)))
        assert ws.recv_frame()[2] == body
        ws.close()
    finally:
        p.stop()


@pytest.mark.parametrize("bad", [
    frame(TEXT, b"hi", mask=False),                    # unmasked client frame
    bytes((0x81, 0x7C)),                               # the same, 2 bytes read alone (124 = 2 + 0x7A:
                                                       # not the short path's lone frame)
    frame(TEXT, b"hi", rsv=1),                         # RSV1 without extension
    frame(TEXT, b"hi", rsv=4),
    frame(3, b"x"),                                    # reserved data opcode
    frame(0xB, b"x"),                                  # reserved control opcode
    frame(PING, b"p" * 126),                           # control frame > 125
    frame(PING, b"p", fin=False),                      # fragmented control frame
    frame(CONT, b"x"),                                 # continuation with nothing to continue
    frame(TEXT, b"a", fin=False) + frame(TEXT, b"b"),  # new message inside a fragmented one
])
def test_protocol_errors_close_1002(server, bad):
    ws = echo(server)
    ws.send(bad)
    assert ws.expect_close() == 1002
    ws.send(close_frame(1002))
    assert ws.closed_by_server()
    ws.close()


def test_fragments_reassembled_with_ping_interleaved(server):
    ws = echo(server)
    ws.send(frame(TEXT, "Hel", fin=False) + frame(PING, b"are you there") + frame(CONT, "lo, ", fin=False)
            + frame(CONT, "wörld"))
    assert ws.recv_frame() == (True, PONG, b"are you there")
    assert ws.recv_frame() == (True, TEXT, "Hello, wörld".encode())
    ws.send(frame(BINARY, b"\x00", fin=False) + frame(CONT, b"\x01"))
    assert ws.recv_frame() == (True, BINARY, b"\x00\x01")
    ws.close()


def test_automatic_pong_echoes_payload(server):
    ws = echo(server)
    ws.send(frame(PING, b"\x00\xffabc"))
    assert ws.recv_frame() == (True, PONG, b"\x00\xffabc")
    ws.close()


def test_invalid_utf8_split_across_fragments_fails_at_once(server):
    ws = echo(server)
    # "κ" is CE BA: a valid prefix in one fragment; the next fragment starts
    # with a byte that cannot continue it. Fails without waiting for FIN.
    ws.send(frame(TEXT, b"ok \xce", fin=False))
    time.sleep(0.1)
    ws.send(frame(CONT, b"\x41more", fin=False))
    assert ws.expect_close() == 1007
    ws.close()


def test_valid_utf8_split_across_fragments(server):
    ws = echo(server)
    text = "κόσμε 🚗".encode()
    ws.send(frame(TEXT, text[:2 + 1], fin=False) + frame(CONT, text[3:10], fin=False) + frame(CONT, text[10:]))
    assert ws.recv_frame() == (True, TEXT, text)
    ws.close()


@pytest.mark.parametrize("payload", [
    b"\xed\xa0\x80",          # surrogate U+D800
    b"\xc0\xaf",              # overlong '/'
    b"\xf4\x90\x80\x80",      # above U+10FFFF
    b"abc\xce",               # truncated at the end of the message
    b"\xff",
])
def test_invalid_utf8_1007(server, payload):
    ws = echo(server)
    ws.send(frame(TEXT, payload))
    assert ws.expect_close() == 1007
    ws.close()


def test_message_over_limit_1009(server):
    ws = echo(server)
    ws.send(frame(BINARY, b"x" * 1001))
    assert ws.expect_close() == 1009
    ws.close()
    ws = echo(server)  # the same limit holds across fragments
    ws.send(frame(BINARY, b"x" * 600, fin=False) + frame(CONT, b"x" * 600))
    assert ws.expect_close() == 1009
    ws.close()


# -- closing (§5.5.1, §7) ---------------------------------------------------------

@pytest.mark.parametrize("code", [1000, 1001, 1003, 1007, 1011, 3000, 4999])
def test_valid_close_code_echoed_then_tcp_closed(server, code):
    ws = echo(server)
    ws.send(close_frame(code, b"bye"))
    assert ws.expect_close() == code
    assert ws.closed_by_server()


def test_empty_close_answered_with_empty_close(server):
    ws = echo(server)
    ws.send(close_frame())
    assert ws.expect_close() is None
    assert ws.closed_by_server()


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1012, 1015, 1016, 2000, 2999, 5000])
def test_invalid_close_code_1002(server, code):
    ws = echo(server)
    ws.send(close_frame(code))
    assert ws.expect_close() == 1002


def test_one_byte_close_payload_1002(server):
    ws = echo(server)
    ws.send(frame(CLOSE, b"\x03"))
    assert ws.expect_close() == 1002


def test_close_reason_must_be_utf8(server):
    ws = echo(server)
    ws.send(close_frame(1000, b"\xff"))
    assert ws.expect_close() == 1007


def test_server_initiated_close_times_out_when_peer_silent(server):
    ws = RawWS(server.port, "/closer")
    ws.send(frame(TEXT, "close please"))
    assert ws.expect_close() == 4000
    t0 = time.monotonic()
    assert ws.closed_by_server(timeout=3)  # we never answer: 500 ms close timeout
    assert time.monotonic() - t0 < 2


def test_handler_crash_closes_1011_and_server_lives(server):
    ws = RawWS(server.port, "/crash")
    ws.send(frame(TEXT, "boom"))
    assert ws.expect_close() == 1011
    ws.close()
    ws = echo(server)
    ws.send(frame(TEXT, "still here"))
    assert ws.recv_frame()[2] == b"still here"
    ws.close()


# -- with a real client, and slow clients -------------------------------------------

def test_websockets_client_roundtrip(server):
    async def main():
        async with websockets.connect(server.ws_url + "/echo") as ws:
            for message in ["", "hello", "ü" * 300, b"\x00\x01\x02", bytes(999)]:
                await ws.send(message)
                assert await ws.recv() == message
            await ws.close(1000, "done")
            return ws.close_code
    assert asyncio.run(main()) == 1000


@pytest.fixture
def big_feed():
    # 16 KB frames every 5 ms: enough to overflow the kernel's socket buffers
    # (up to 4 MB on Linux loopback) so our own queue has to act.
    p = MicroPythonProcess("tests/support/servers/app_server.py", ["--feed-pad", "16000"])
    yield p
    p.stop()


@pytest.mark.slow
def test_broadcast_to_stalled_client_does_not_delay_reader(big_feed):
    """A client that never reads fills its socket; the broadcast keeps
    reaching a client that does read, at the full rate."""
    stalled = RawWS(big_feed.port, "/feed", rcvbuf=4096)
    # Until the stalled socket is full: the server's kernel send queue to it stops growing.
    stalled_port = stalled.sock.getsockname()[1]
    wait_steady(lambda: send_queue(big_feed.port, stalled_port), reads=6, what="the stalled client's send queue")
    reader = RawWS(big_feed.port, "/feed")
    seqs = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.0:
        seqs.append(int(reader.recv_frame()[2].split(b",")[0].split(b":")[1]))
    # The ticker broadcasts every 5 ms: ~200/s. A blocked broadcast would stall this.
    assert len(seqs) > 100
    assert all(b == a + 1 for a, b in zip(seqs, seqs[1:])), "reader missed frames"
    # The stalled client's backlog is bounded: once it reads again it catches
    # up to the newest frames within a queue's worth, the older ones dropped.
    def seq(payload):
        return int(payload.split(b",")[0].split(b":")[1])
    stalled.sock.settimeout(2)
    got = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.5:
        got.append(seq(stalled.recv_frame()[2]))
    newest = seq(reader.recv_frame()[2])
    gaps = [b - a for a, b in zip(got, got[1:])]
    assert max(gaps) > 1, "nothing was dropped for the stalled client"
    assert newest - got[-1] < 30, "the stalled client is still reading an old backlog"
    stalled.close()
    reader.close()


def test_server_alive(server):
    assert server.poll() is None
