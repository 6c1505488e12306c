"""The upgrade's fast path (lib/wsserver/upgrade.py) against the full one
(exchange.py: http.parse_request and http.check_upgrade): what the fast path
accepts, the full path accepts too, as the same request, and the fast path
leaves everything else to it (so every refusal keeps its named reason).
Under CPython with Hypothesis (mutated heads of real clients), then under
MicroPython through a real server: the code a connect loads, and the answers
when the fast path steps aside."""
import socket
import sys
import textwrap
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support import LIB
from support.micropython import MicroPythonProcess
from support.wsraw import KEY, RawWS, frame, read_frame, request, upgrade_headers

sys.path.insert(0, LIB)
from wsserver.errors import HTTPError  # noqa: E402
from wsserver.http import check_upgrade, parse_request  # noqa: E402
from wsserver.upgrade import parse, switching_protocols  # noqa: E402

ROUTE = ("handler", None, None)


def limits(**over):
    server = SimpleNamespace(max_head=2048, max_uri=512, max_headers=32, ws_routes={"/ws": ROUTE})
    for k, v in over.items():
        setattr(server, k, v)
    return server


# Heads as real clients send them (header order and case kept).
CHROME = ("GET /ws?token=abc HTTP/1.1\r\nHost: 192.168.4.1\r\nConnection: Upgrade\r\nPragma: no-cache\r\n"
          "Cache-Control: no-cache\r\nUser-Agent: Mozilla/5.0 (Linux; Android 14) Chrome/131.0 Mobile\r\n"
          "Upgrade: websocket\r\nOrigin: http://192.168.4.1\r\nSec-WebSocket-Version: 13\r\n"
          "Accept-Encoding: gzip, deflate\r\nAccept-Language: en-GB,en;q=0.9\r\n"
          "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
          "\r\n" % KEY).encode()
FIREFOX = ("GET /ws HTTP/1.1\r\nHost: tether.local\r\nUser-Agent: Mozilla/5.0 Firefox/133.0\r\n"
           "Accept: */*\r\nSec-WebSocket-Version: 13\r\nOrigin: http://tether.local\r\n"
           "Sec-WebSocket-Key: %s\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n" % KEY).encode()
WEBSOCKETS = ("GET /ws HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: tether, mqtt\r\n"
              "User-Agent: Python/3.11 websockets/15.0\r\n\r\n" % KEY).encode()
CLIENTS = [CHROME, FIREFOX, WEBSOCKETS]


def full(data, server):
    """What exchange.py makes of a whole head: the request, or the HTTPError."""
    end = data.find(b"\r\n\r\n") + 4
    try:
        request = parse_request(data[:end], server.max_uri, server.max_headers)
        if request.path not in server.ws_routes:
            return None
        check_upgrade(request)
        return request
    except HTTPError as e:
        return e


def same(fast, slow):
    request, route, extra = fast
    assert not isinstance(slow, HTTPError) and slow is not None, slow
    assert route is ROUTE
    for field in ("method", "target", "path", "query", "version", "headers"):
        assert getattr(request, field) == getattr(slow, field), field
    return extra


@pytest.mark.parametrize("head", CLIENTS, ids=["chrome", "firefox", "websockets"])
def test_the_heads_real_clients_send_take_the_fast_path_as_the_same_request(head):
    extra = same(parse(limits(), head + b"\x81\x80frame"), full(head, limits()))
    assert extra == b"\x81\x80frame"  # what came after the head is the WebSocket's


BROKEN = {
    "POST": (b"GET /ws", b"POST /ws"),
    "HTTP/1.0": (b"HTTP/1.1\r\n", b"HTTP/1.0\r\n"),
    "version 8": (b"Version: 13", b"Version: 8"),
    "no key": (b"Sec-WebSocket-Key", b"Sec-WebSocket-Kex"),
    "bad key": (KEY[:4].encode(), b"!!!!"),
    "no host": (b"Host:", b"Hots:"),
    "no upgrade": (b"Upgrade: websocket", b"Upgrade: h2c"),
    "bare LF": (b"Pragma: no-cache\r\n", b"Pragma: no-cache\n"),
    "other route": (b"GET /ws", b"GET /wss"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_or_unknown_upgrade_is_left_to_the_full_path(name):
    old, new = BROKEN[name]
    head = CHROME.replace(old, new, 1)
    assert head != CHROME
    assert parse(limits(), head) is None


@pytest.mark.parametrize("over,expect_fast", [
    ({"max_headers": 12}, True), ({"max_headers": 11}, False),
    ({"max_uri": 13}, True), ({"max_uri": 12}, False),
    ({"max_head": len(CHROME)}, True), ({"max_head": len(CHROME) - 1}, False),
])
def test_the_limits_hold_on_the_fast_path_too(over, expect_fast):
    # CHROME: 12 header fields, a 13-byte target
    assert (parse(limits(**over), CHROME) is not None) is expect_fast


@given(st.binary(min_size=16, max_size=16))
def test_the_101s_accept_is_the_rfcs_hash_of_the_key(raw):
    # RFC 6455 §4.2.2, computed here with CPython's own modules.
    import base64
    import hashlib
    key = base64.b64encode(raw).decode()
    accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
    head = switching_protocols(SimpleNamespace(headers={"sec-websocket-key": key}))
    assert b"\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n" in head


def test_what_the_fast_path_cannot_decode_is_left_to_the_full_path():
    for old, new in [(b"token=abc", b"token=a%62c"), (b"token=abc", b"token=a+c"),
                     (b"Host: 192.168.4.1", b"Host: \xff"), (b"Pragma:", b"Pra_gma:"),
                     (b"Pragma: no-cache", b"Cache-Control: again"), (b"Connection: Upgrade", b"Connection: upgrade,x")]:
        head = CHROME.replace(old, new, 1)
        assert parse(limits(), head) is None, new
        slow = full(head, limits())
        assert slow is not None  # the full path decides: accepts or names the rule


def test_every_one_byte_edit_of_a_real_head_is_accepted_by_both_or_left_to_the_full_path():
    accepted = left = 0
    for head in CLIENTS:
        for at in range(len(head)):
            for edit in [("delete", at, 0), ("case", at, 0), ("set", at, 0x78), ("insert", at, 0x20),
                         ("insert", at, 0x0A), ("set", at, 0x25)]:
                data = mutate(head, [edit])
                fast = parse(limits(), data)
                if fast is None:
                    left += 1
                else:
                    accepted += 1
                    same(fast, full(data, limits()))
    assert accepted > 1000 and left > 1000, (accepted, left)  # both sides exercised


def mutations():
    byte = st.integers(0, 255)
    edit = st.one_of(
        st.tuples(st.just("set"), st.integers(0, 10**6), byte),
        st.tuples(st.just("insert"), st.integers(0, 10**6), st.sampled_from(b" \r\n:,-%+?&=\x80Aa0")),
        st.tuples(st.just("delete"), st.integers(0, 10**6), st.just(0)),
        st.tuples(st.just("case"), st.integers(0, 10**6), st.just(0)),
    )
    return st.tuples(st.sampled_from(CLIENTS), st.lists(edit, min_size=1, max_size=4))


def mutate(head, edits):
    data = bytearray(head)
    for kind, at, value in edits:
        at %= len(data)
        if kind == "set":
            data[at] = value
        elif kind == "insert":
            data.insert(at, value)
        elif kind == "delete":
            del data[at]
        else:
            data[at:at + 1] = bytes(data[at:at + 1]).swapcase()
    return bytes(data)


@settings(max_examples=1500, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(mutations())
def test_whatever_the_fast_path_accepts_the_full_path_accepts_as_the_same_request(case):
    head, edits = case
    data = mutate(head, edits)
    fast = parse(limits(), data)
    if fast is not None:
        same(fast, full(data, limits()))


# -- under MicroPython, through a real server -------------------------------

SERVER = textwrap.dedent("""
    import sys
    sys.path.insert(0, "lib")
    from wsserver import Server

    port = int(sys.argv[sys.argv.index("--port") + 1])
    seen = []  # the server's request modules loaded when each accept hook ran

    def accept(request):
        seen.append(" ".join(sorted(m[9:] for m in sys.modules if m.startswith("wsserver."))))
        if "refuse" in request.query:
            return [403, "refused by the hook"]
        if "crash" in request.query:
            raise ValueError("a bug in the hook")
        return None

    server = Server(unload_http=True, max_clients=2)
    dropped = []  # the request modules loaded when the server last dropped them

    def unload():
        dropped.append(" ".join(sorted(m[9:] for m in sys.modules if m.startswith("wsserver."))))
        Server._unload_http(server)

    server._unload_http = unload

    @server.websocket("/ws", accept=accept)
    async def echo(ws):
        async for message in ws:
            await ws.send(seen[-1] if message == "seen" else dropped[-1] if message == "dropped" else message)

    server.run("127.0.0.1", port)
""")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    script = tmp_path_factory.mktemp("fast") / "server.py"
    script.write_text(SERVER)
    p = MicroPythonProcess(str(script))
    yield p
    p.stop()


def loaded_at_accept(port, head):
    """The request modules the server had loaded when the accept hook ran
    for this upgrade head (sent as it is)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head)
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = sock.recv(1)
            assert chunk, response
            response += chunk
        assert response.startswith(b"HTTP/1.1 101 "), response
        sock.sendall(frame(0x1, "seen"))
        return set(read_frame(sock)[1].decode().split())


def local(head, port):
    return head.replace(b"192.168.4.1", b"127.0.0.1:%d" % port).replace(b"tether.local", b"127.0.0.1:%d" % port)


COLD = {"exchange", "http", "answer"}


def test_a_connect_as_browsers_send_it_loads_neither_the_parser_nor_the_answers(server):
    for head in CLIENTS:
        modules = loaded_at_accept(server.port, local(head, server.port))
        assert "upgrade" in modules and not modules & COLD, modules


def test_an_upgrade_the_fast_path_leaves_is_accepted_by_the_full_one(server):
    head = local(FIREFOX.replace(b"keep-alive, Upgrade", b"Upgrade,keep-alive"), server.port)
    modules = loaded_at_accept(server.port, head)
    assert {"exchange", "http"} <= modules, modules


def test_a_refusal_keeps_its_reason_from_either_path(server):
    status, _, body = request(server.port, "/ws?refuse=1", upgrade_headers())
    assert status == 403 and b"refused by the hook" in body
    status, _, body = request(server.port, "/ws?crash=1", upgrade_headers())
    assert status == 500 and b"internal error" in body
    status, _, body = request(server.port, "/ws", upgrade_headers(**{"Sec-WebSocket-Version": "8"}))
    assert status == 426 and b"Sec-WebSocket-Version must be 13" in body
    assert "upgrade" in loaded_at_accept(server.port, local(CHROME, server.port))  # still serving


def test_the_fast_paths_server_full_is_the_answer_the_full_path_gives():
    from wsserver.answer import error_response
    from wsserver.upgrade import full_reason, server_full

    full = SimpleNamespace(max_clients=3)
    assert server_full(full) == error_response(503, full_reason(full), ["Retry-After: 2"])
    assert b"server full: 3 WebSocket clients connected\n" in server_full(full)


def test_the_client_past_max_clients_gets_503_without_the_full_path_loaded(server):
    opened = [RawWS(server.port, "/ws") for _ in range(2)]
    try:
        assert [ws.status for ws in opened] == [101, 101]
        status, headers, body = request(server.port, "/ws", upgrade_headers())
        assert status == 503 and b"server full: 2 WebSocket clients connected" in body
        assert headers.get("retry-after") == "2", headers
        opened[0].send_text("dropped")
        loaded = set(opened[0].recv_frame()[2].decode().split())
        assert "upgrade" in loaded and not loaded & COLD, loaded
        # A head the fast path leaves to exchange.py is told the same.
        head = local(FIREFOX.replace(b"keep-alive, Upgrade", b"Upgrade,keep-alive"), server.port)
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(head)
            answer = b""
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 503 ") and answer.endswith(b"server full: 2 WebSocket clients connected\n"), answer
    finally:
        for ws in opened:
            ws.close()
