"""The WebSocket client (lib/wsclient), under MicroPython and CPython, against real servers on
loopback: CPython `websockets` servers started here, and the Tether server under MicroPython.

Each scenario is tests/support/clients/ws_client_cases.py, run by both interpreters; it prints what
happened and the servers record what they saw."""
import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

import pytest
import websockets
from websockets.asyncio.server import serve

from support.micropython import MICROPYTHON, ROOT
from support.processes import free_port

CASES = "tests/support/clients/ws_client_cases.py"
INTERPRETERS = {"micropython": [MICROPYTHON], "cpython": [sys.executable]}


def run_client(interp, *args, timeout=60):
    env = dict(os.environ, MICROPYPATH=os.path.join(ROOT, "lib") + ":.frozen")
    result = subprocess.run(INTERPRETERS[interp] + [CASES] + [str(a) for a in args], cwd=ROOT,
                            capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def lines(output):
    return [line for line in output.splitlines() if line]


def facts(output):
    """'key rest' lines -> {key: rest} (the last line of each key wins)."""
    out = {}
    for line in lines(output):
        key, _, rest = line.partition(" ")
        out[key] = rest
    return out


@pytest.fixture(params=sorted(INTERPRETERS))
def interp(request):
    return request.param


# -- a CPython websockets server with misbehaving paths ----------------------------

class Peer:
    """websockets 17 on a loopback port, in its own thread. Paths:
    /echo, /mqtt (subprotocol mqtt chosen when offered), /badaccept, /badproto (chooses
    "bogus"), /noproto (chooses none), /301, /401, /404, /auth (sends back Authorization),
    /fragments, /serverping, /close4001, /big (3000-byte binary), /watchclose.
    `seen[token]` holds what the server saw for ?t=token (e.g. the client's close code)."""

    def __init__(self, ssl_context=None):
        self.seen = {}
        self.ssl_context = ssl_context
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        assert ready.wait(10)

    def _run(self, ready):
        asyncio.set_event_loop(self.loop)

        async def main():
            self.stop_event = asyncio.Event()
            async with serve(self.handler, "127.0.0.1", 0, process_request=self.process_request,
                             process_response=self.process_response, max_size=2 ** 20,
                             ping_interval=None, ssl=self.ssl_context) as server:
                self.port = server.sockets[0].getsockname()[1]
                ready.set()
                await self.stop_event.wait()

        self.loop.run_until_complete(main())

    def url(self, path, scheme="ws"):
        return "%s://127.0.0.1:%d%s" % (scheme, self.port, path)

    def stop(self):
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(10)

    @staticmethod
    def _path(request):
        return urllib.parse.urlsplit(request.path).path

    def process_request(self, connection, request):
        path = self._path(request)
        if path == "/301":
            response = connection.respond(301, "moved\n")
            response.headers["Location"] = "ws://127.0.0.1:1/elsewhere"
            return response
        if path == "/401":
            response = connection.respond(401, "token needed\n")
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        if path == "/404":
            return connection.respond(404, "no such endpoint\n")
        return None

    def process_response(self, connection, request, response):
        path = self._path(request)
        offered = request.headers.get("Sec-WebSocket-Protocol", "")
        # Headers[name] = value adds a field: delete the one websockets made first.
        if path == "/badaccept":
            del response.headers["Sec-WebSocket-Accept"]
            response.headers["Sec-WebSocket-Accept"] = "dGhpcyBpcyBub3QgdGhlIGtleT0="
        elif path == "/badproto":
            response.headers["Sec-WebSocket-Protocol"] = "bogus"  # websockets chose none
        elif path in ("/mqtt", "/mqtttext") and "mqtt" in [p.strip() for p in offered.split(",")]:
            response.headers["Sec-WebSocket-Protocol"] = "mqtt"
        return None

    async def handler(self, ws):
        split = urllib.parse.urlsplit(ws.request.path)
        path = split.path
        token = urllib.parse.parse_qs(split.query).get("t", [None])[0]
        try:
            if path in ("/echo", "/mqtt", "/badaccept", "/badproto", "/noproto"):
                async for message in ws:
                    await ws.send(message)
            elif path == "/fragsizes":  # each message's frame sizes, then the message
                while True:
                    parts = [part async for part in ws.recv_streaming(decode=False)]
                    await ws.send(",".join(str(len(p)) for p in parts))
                    await ws.send(b"".join(parts))
            elif path == "/auth":
                await ws.send("auth=" + ws.request.headers.get("Authorization", "-"))
                await ws.wait_closed()
            elif path == "/fragments":
                await ws.send(["hé", "llo ", "wö", "rld"])  # one text message in 4 frames
                await ws.send([b"\x01\x02", b"", b"\x03"])  # one binary message in 3 frames
                await ws.wait_closed()
            elif path == "/serverping":
                waiter = await ws.ping(b"from-server")
                await asyncio.wait_for(waiter, 5)
                await ws.send("server got its pong")
                await ws.wait_closed()
            elif path == "/close4001":
                await ws.close(4001, "bye")
            elif path == "/big":
                await ws.send(bytes(3000))
                await ws.wait_closed()
            elif path == "/mqtttext":
                await ws.send("a text message")  # MQTT over WebSocket is binary only
                await ws.wait_closed()
            elif path == "/watchclose":
                await ws.wait_closed()
        except websockets.ConnectionClosed:
            pass
        finally:
            if token:
                self.seen[token] = (ws.close_code, ws.close_reason)


@pytest.fixture(scope="module")
def peer():
    p = Peer()
    yield p
    p.stop()


def wait_seen(peer, token, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if token in peer.seen:
            return peer.seen[token]
        time.sleep(0.02)
    raise AssertionError("the server never finished the connection for %s" % token)


# -- against websockets ---------------------------------------------------------------

@pytest.mark.slow
def test_echo_text_binary_large_and_empty(peer, interp):
    out = lines(run_client(interp, "echo", peer.url("/echo")))
    assert out[0] == "subprotocol None"
    echoes = [line for line in out if line.startswith("echo")]
    assert echoes == ["echo text 5 same True", "echo binary 5 same True", "echo text 0 same True",
                      "echo text 5000 same True", "echo binary 70000 same True", "echo text 9000 same True"]
    assert out[-1] == "closed 1000"


def test_subprotocol_negotiated(peer, interp):
    assert lines(run_client(interp, "open", peer.url("/mqtt"), "mqtt")) == ["open mqtt", "closed 1000"]


@pytest.mark.slow
@pytest.mark.parametrize("path,status,words", [
    ("/badaccept", "101", "Sec-WebSocket-Accept is 'dGhpcyBpcyBub3QgdGhlIGtleT0='"),
    ("/badproto", "101", "server chose subprotocol 'bogus'; we offered mqtt"),
    ("/noproto", "101", "server chose no subprotocol; we need one of mqtt"),
    ("/301", "301", "server answered 301 Moved Permanently, a redirect to ws://127.0.0.1:1/elsewhere"),
    ("/401", "401", "server answered 401 Unauthorized, not 101 Switching Protocols"),
    ("/404", "404", "server answered 404 Not Found, not 101 Switching Protocols"),
])
def test_handshake_errors_name_the_status_or_rule(peer, interp, path, status, words):
    f = facts(run_client(interp, "open", peer.url(path), "mqtt"))
    assert f["error"] == status, f
    assert words in f["message"], f


def test_a_dial_and_a_connect_in_one_program_raise_the_same_handshake_error(peer, interp):
    # wsclient/dialled.py drops common.py after its connect only when it loaded
    # it: client.py's copy (whose HandshakeError is wsclient.HandshakeError) stays.
    assert lines(run_client(interp, "dial_then_connect", peer.url("/404"))) == [
        "dial HandshakeError 404", "connect HandshakeError 404", "dial HandshakeError 404"]


def test_extra_headers_reach_the_server(peer, interp):
    f = facts(run_client(interp, "headers", peer.url("/auth"), "Bearer sesame"))
    assert f["first"] == "text 18 auth=Bearer sesame"


@pytest.mark.slow
def test_handshake_deadline_on_a_silent_server(interp):
    # A listener that accepts TCP and never answers the upgrade.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        url = "ws://127.0.0.1:%d/" % listener.getsockname()[1]
        f = facts(run_client(interp, "deadline", url, 700))
    assert f["error"] == "None"
    assert f["message"] == "no WebSocket handshake from %s within 700 ms" % url
    assert 650 <= int(f["elapsed"]) < 3000, f


def test_refused_connection_is_an_oserror_at_once(interp):
    port = free_port()  # nothing listens there
    f = facts(run_client(interp, "deadline", "ws://127.0.0.1:%d/" % port, 5000))
    assert f["oserror"] == "111"  # ECONNREFUSED
    assert int(f["elapsed"]) < 1000, f


def test_client_ping_gets_its_pong(peer, interp):
    out = lines(run_client(interp, "ping", peer.url("/echo")))
    assert out == ["pong", "pong while reading", "reader text 11 after pings", "closed 1000"]


def test_client_answers_the_servers_ping(peer, interp):
    # The server sends its message only once its ping was answered with the same payload.
    out = lines(run_client(interp, "take", peer.url("/serverping"), 1))
    assert out == ["message text 19 server got its pong", "closed 1000"]


@pytest.mark.slow
@pytest.mark.parametrize("code", [1000, 1001, 4321])
def test_client_close_handshake_sends_its_code(peer, interp, code):
    token = "close-%s-%d" % (interp, code)
    f = facts(run_client(interp, "close", peer.url("/watchclose?t=" + token), code))
    assert f["closed"] == str(code)
    assert wait_seen(peer, token) == (code, "client bye")


def test_close_while_another_task_reads(peer, interp):
    token = "closereading-" + interp
    out = lines(run_client(interp, "close_while_reading", peer.url("/watchclose?t=" + token), 4002))
    assert out == ["reader None", "closed 4002 fast"]
    assert wait_seen(peer, token) == (4002, "client bye")


def test_server_close_code_and_reason_reach_the_client(peer, interp):
    out = lines(run_client(interp, "recv", peer.url("/close4001"), 1000))
    assert out[:2] == ["message None", "closed 4001 bye"]
    assert out[2] == "send after close raises ConnectionClosed 4001"


def test_fragmented_messages_are_reassembled(peer, interp):
    out = lines(run_client(interp, "take", peer.url("/fragments"), 2))
    assert out == ["message text 11 héllo wörld", "message binary 3 010203", "closed 1000"]


def test_a_message_longer_than_fragment_goes_in_fragments(peer, interp):
    out = lines(run_client(interp, "fragment", peer.url("/echo"), 1000))
    # websockets reassembles them into the same message, of the same type.
    assert out[:4] == ["echo str same", "echo bytes same", "echo str same", "echo str same"], out
    # 6000 bytes of UTF-8 in frames of 1000 (a frame may end inside a
    # character); 2500 binary bytes; messages up to the limit in one frame.
    assert out[4:8] == ["frames 1000,1000,1000,1000,1000,1000 same", "frames 1000,1000,500 same",
                        "frames 5 same", "frames 1000 same"], out
    assert out[8] == "closed 1000", out


def test_max_message_exceeded_closes_with_1009(peer, interp):
    token = "big-" + interp
    out = lines(run_client(interp, "recv", peer.url("/big?t=" + token), 1000))
    assert out[0] == "message None"
    assert out[1].startswith("closed 1009 message over the 1000-byte limit")
    assert wait_seen(peer, token)[0] == 1009


@pytest.mark.slow
def test_byte_stream_adapter_carries_binary_messages(peer, interp):
    out = lines(run_client(interp, "bytestream", peer.url("/mqtt")))
    assert out[0] == "subprotocol mqtt"
    assert out[1] == "recv binary 14 100c00044d515454"
    assert out[2] == "recv big 20000 True"
    assert out[3] == "after close b''"
    assert out[4].startswith("send after close raises OSError")


@pytest.mark.slow
def test_byte_stream_refuses_a_text_message_with_1003(peer, interp):
    token = "mqtttext-" + interp
    out = lines(run_client(interp, "bytestream_text", peer.url("/mqtttext?t=" + token)))
    assert out == ["ProtocolError 1003 text message on a binary byte stream (MQTT over WebSocket is binary only)"]
    assert wait_seen(peer, token)[0] == 1003


@pytest.mark.slow
def test_bad_urls_are_named(interp):
    for url, words in [("http://127.0.0.1/", "must start with ws:// or wss://"),
                       ("ws://127.0.0.1:99999/", "bad port"),
                       ("ws://user:pw@127.0.0.1/", "credentials in a WebSocket URL are not sent")]:
        f = facts(run_client(interp, "bad_url", url))
        assert words in f["ValueError"], (url, f)


# -- wss:// --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tls_peer(tmp_path_factory):
    import ssl
    d = tmp_path_factory.mktemp("tls")
    cert, key = str(d / "cert.pem"), str(d / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=tether-test.local",
                    "-addext", "subjectAltName=DNS:tether-test.local",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-in", cert, "-outform", "DER", "-out", str(d / "cert.der")],
                   check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    p = Peer(ssl_context=ctx)
    p.cert = str(d / "cert.der")
    yield p
    p.stop()


@pytest.mark.slow
def test_wss_with_a_verified_certificate(tls_peer, interp):
    out = lines(run_client(interp, "wss", tls_peer.url("/echo", "wss"), tls_peer.cert, "tether-test.local"))
    assert out == ["echo text 8 over tls", "echo big True", "closed 1000"]


def test_wss_refuses_a_certificate_for_another_name(tls_peer, interp):
    env = dict(os.environ, MICROPYPATH=os.path.join(ROOT, "lib") + ":.frozen")
    result = subprocess.run(INTERPRETERS[interp] + [CASES, "wss", tls_peer.url("/echo", "wss"), tls_peer.cert,
                                                    "other.local"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode != 0
    assert "echo" not in result.stdout
    said = result.stdout + result.stderr
    assert "certificate" in said.lower() or "CERT" in said, said


# -- against the Tether server (tests/support/servers/app_server.py under MicroPython) ----------

@pytest.fixture(scope="module")
def tether():
    from support.micropython import MicroPythonProcess
    p = MicroPythonProcess("tests/support/servers/app_server.py",
                           ["--max-message", "200000", "--ping-interval-ms", "200", "--ping-timeout-ms", "300",
                            "--max-clients", "8"])
    yield p
    p.stop()


def test_tether_echo(tether, interp):
    out = lines(run_client(interp, "echo", tether.ws_url + "/echo"))
    assert [line for line in out if line.startswith("echo")] == [
        "echo text 5 same True", "echo binary 5 same True", "echo text 0 same True",
        "echo text 5000 same True", "echo binary 70000 same True", "echo text 9000 same True"]
    assert out[-1] == "closed 1000"


def test_tether_subprotocol_chosen_and_missing(tether, interp):
    assert lines(run_client(interp, "open", tether.ws_url + "/chat", "chat.v1"))[0] == "open chat.v1"
    f = facts(run_client(interp, "open", tether.ws_url + "/chat", "mqtt"))
    assert f["error"] == "101" and "server chose no subprotocol; we need one of mqtt" in f["message"]


@pytest.mark.slow
def test_tether_refusals_name_the_status(tether, interp):
    f = facts(run_client(interp, "open", tether.ws_url + "/private"))
    assert f["error"] == "403" and f["message"] == "server answered 403 Forbidden, not 101 Switching Protocols"
    f = facts(run_client(interp, "open", tether.ws_url + "/nowhere"))
    assert f["error"] == "404" and f["message"] == "server answered 404 Not Found, not 101 Switching Protocols"
    out = lines(run_client(interp, "take", tether.ws_url + "/private?token=letmein", 1))
    assert out == ["message text 7 welcome", "closed 1000"]


@pytest.mark.slow
def test_tether_pings_an_idle_client_and_its_pongs_keep_it_open(tether, interp):
    # The server pings after 200 ms of silence and drops a client silent 300 ms more;
    # 1.5 s in recv() is five rounds of that.
    out = lines(run_client(interp, "idle", tether.ws_url + "/echo", 1.5))
    assert out == ["idle 1.5", "echo text 10 still here", "closed 1000"]


@pytest.mark.slow
def test_tether_ping_from_the_client(tether, interp):
    out = lines(run_client(interp, "ping", tether.ws_url + "/echo"))
    assert out == ["pong", "pong while reading", "reader text 11 after pings", "closed 1000"]


@pytest.mark.slow
def test_tether_server_close_code_reaches_the_client(tether, interp):
    out = lines(run_client(interp, "recv", tether.ws_url + "/closer", 1000, "close please"))
    assert out[:2] == ["message None", "closed 4000 asked to"]


def test_tether_feed_over_max_message_closes_with_1009(tether, interp):
    out = lines(run_client(interp, "recv", tether.ws_url + "/feed", 40))
    assert out[0] == "message None"
    assert out[1] == "closed 1009 message over the 40-byte limit"


# -- a plain car does not load the client -------------------------------------------

def test_server_and_plain_car_do_not_import_the_client():
    from support.micropython import run_micropython
    for name in os.listdir(os.path.join(ROOT, "lib", "wsserver")):
        if name.endswith(".py"):
            with open(os.path.join(ROOT, "lib", "wsserver", name)) as f:
                text = f.read()
                assert "import wsclient" not in text and "from wsclient" not in text, name
    result = run_micropython("import sys\nsys.path.insert(0, 'tests/support/fakes')\nsys.path.insert(0, 'lib')\n"
                             "import wsserver, car.main, car.app\n"
                             "print(sorted(m for m in sys.modules if m.startswith('wsclient')))\n")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "[]"


# -- the codec's client role under MicroPython, and the client on the board proxies ----

@pytest.mark.slow
@pytest.mark.parametrize("chip", [None, "esp32", "esp8266"])
def test_client_codec_suite_under_micropython(chip):
    from support.micropython import board_proxy, run_test_module
    run_test_module("tests/codec/test_wsclient_codec.py", micropython=board_proxy(chip) if chip else None)


@pytest.mark.slow
@pytest.mark.parametrize("chip", ["esp32", "esp8266"])
def test_client_on_the_board_proxies(peer, chip):
    # The boards' object model and, on the esp8266 proxy, its missing language features.
    # Functional only: 256 KB of heap, the sources compiled in RAM (heap figures: docs/client.md).
    from support.micropython import board_proxy
    INTERPRETERS[chip] = [board_proxy(chip), "-X", "heapsize=256K"]
    try:
        assert lines(run_client(chip, "open", peer.url("/mqtt"), "mqtt")) == ["open mqtt", "closed 1000"]
        f = facts(run_client(chip, "open", peer.url("/404")))
        assert f["error"] == "404"
        out = lines(run_client(chip, "bytestream", peer.url("/mqtt"), 9000))  # > 8 KB: masked in pieces
        assert out[:4] == ["subprotocol mqtt", "recv binary 14 100c00044d515454", "recv big 9000 True",
                           "after close b''"]
    finally:
        del INTERPRETERS[chip]


# -- a raw TCP peer: bytes exactly as a test wants them ----------------------------------

def raw_peer(reply, answer_close=True):
    """A one-connection server on loopback: reads the upgrade request, sends reply(key) (bytes),
    then records what the client sends until it closes or sends a close frame (then the peer
    closes TCP, as a server does). Returns (url, received, thread)."""
    import base64
    import hashlib
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    received = bytearray()

    def serve():
        conn, _ = listener.accept()
        with conn, listener:
            conn.settimeout(5)
            head = b""
            while b"\r\n\r\n" not in head:
                head += conn.recv(4096)
            key = [line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:")][0]
            accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
            conn.sendall(reply(accept))
            try:
                while True:
                    data = conn.recv(4096)
                    if not data:
                        break
                    received.extend(data)
                    if answer_close and received[0] & 0x0F == 0x8 and len(received) >= 6 + (received[1] & 0x7F):
                        break  # the client's close frame: close TCP first, as a server does
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return "ws://127.0.0.1:%d/" % listener.getsockname()[1], received, thread


def unmask_client_frame(data):
    """(opcode, payload) of the first masked frame in data."""
    assert data[1] & 0x80, "client frame not masked"
    n = data[1] & 0x7F
    key = data[2:6]
    return data[0] & 0x0F, bytes(b ^ key[i % 4] for i, b in enumerate(data[6:6 + n]))


def switching(accept):
    return (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")


@pytest.mark.slow
def test_frames_in_the_same_packet_as_the_101_are_not_lost(interp):
    # 101, a text message and a close frame in one write: the client reads them in one go.
    url, received, thread = raw_peer(lambda accept: switching(accept) + b"\x81\x05early" + b"\x88\x02\x03\xe8")
    out = lines(run_client(interp, "recv", url, 1000))
    thread.join(5)
    assert out[:3] == ["message text 5 early", "message None", "closed 1000 "]
    assert unmask_client_frame(received) == (0x8, b"\x03\xe8")  # our close echoes 1000


def test_a_masked_frame_from_the_server_fails_with_1002(interp):
    url, received, thread = raw_peer(lambda accept: switching(accept) + b"\x81\x82abcd" + bytes([ord("h") ^ 0x61, ord("i") ^ 0x62]))
    out = lines(run_client(interp, "recv", url, 1000))
    thread.join(5)
    assert out[:2] == ["message None", "closed 1002 server frames must not be masked (RFC 6455 §5.1)"]
    opcode, payload = unmask_client_frame(received)
    assert (opcode, payload[:2]) == (0x8, b"\x03\xea")  # 1002


@pytest.mark.slow
def test_close_is_bounded_when_the_server_never_answers(interp):
    # The peer takes our close frame and neither answers it nor closes TCP.
    url, received, thread = raw_peer(switching, answer_close=False)
    out = lines(run_client(interp, "close_timeout", url, 300))
    thread.join(5)
    assert out == ["closed 1000 within bound"], out
    assert unmask_client_frame(received)[0] == 0x8


@pytest.mark.slow
@pytest.mark.parametrize("reply,words", [
    (lambda a: b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + a + b"\r\n\r\n",
     "101 without Upgrade: websocket"),
    (lambda a: switching(a)[:-2] + b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
     "server chose extension 'permessage-deflate', which we did not offer"),
    (lambda a: b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "not an HTTP response: b'SSH-2.0-OpenSSH_9.2'"),
])
def test_broken_101_answers_are_named(interp, reply, words):
    url, received, thread = raw_peer(reply)
    f = facts(run_client(interp, "open", url))
    thread.join(5)
    assert words in f["message"], f
