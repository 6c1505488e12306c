"""The car's uplink (lib/car/uplink.py) against both reference servers, as real
processes: tools/uplink/uplink_server.py (CPython websockets) and tools/uplink/uplink_server.js
(Node.js ws, installed from its lockfile). The real firmware under the
MicroPython Unix port, a simulated car; the car's own /ws watches its motors at
50 Hz."""
import asyncio
import base64
import hashlib
import json
import os
import re
import signal
import socket
import threading
import time

import pytest

from support import unavailable
from support.micropython import run_micropython
from support.polling import wait_until
from support.car import Client as WsClient
from support.car import moving, page_ok, stopped
from support.processes import stopped_after
from support.tcp import send_queue
from support.tls import cert
from support.uplink import KINDS, RefServer, car_config, node_ready, start_car


@pytest.fixture(params=KINDS)
def kind(request):
    if request.param == "node":
        why = node_ready()
        if why:
            unavailable(why)
    return request.param


@pytest.fixture
def servers():
    yield from stopped_after(RefServer)


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def synced(server, car=1, timeout=10, since=0.0):
    """Wait for the car's hello and the pong that gives the server its clock."""
    server.wait_line(lambda t: t.startswith("car %d hello" % car), timeout, since)
    server.wait_line(lambda t: t.startswith("car %d reply" % car) and '"pong"' in t, 5, since)


async def in_thread(function, *args, **kw):
    """A blocking wait on the server's output, without blocking the event loop
    (the car's /ws client keeps reading and timestamping telemetry)."""
    return await asyncio.get_running_loop().run_in_executor(None, lambda: function(*args, **kw))


def retry_delays(output):
    return [int(ms) for ms in re.findall(r"retrying in (\d+) ms", output)]


def answer_upgrade(conn):
    """The scripted servers' side of the handshake: read the car's request,
    answer 101 with its Sec-WebSocket-Accept (RFC 6455 §4.2.2)."""
    head = b""
    while b"\r\n\r\n" not in head:
        head += conn.recv(1)
    key = re.search(rb"Sec-WebSocket-Key: (\S+)", head).group(1)
    accept_key = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Accept: " + accept_key + b"\r\n\r\n")


@pytest.mark.slow
def test_hello_first_then_telemetry_at_the_configured_rate(kind, servers, tmp_path, start_micropython):
    server = servers(kind)
    car = start_car(start_micropython, tmp_path, server.url, uplink={"telemetry_hz": 5})
    synced(server)
    first = [text for _, text in server.lines if text.startswith("car 1 ")]
    assert first[0].startswith("car 1 connected"), first[:3]
    assert first[1].startswith("car 1 hello"), first[:3]  # before any telemetry
    hello = server.events("hello")[0][1]
    assert hello["type"] == "hello" and hello["id"] == -1 and hello["role"] == "viewer", hello
    assert hello["device"] == "car-u" and hello["simulated"] is True and hello["limits"]["deadman_ms"] == 500
    t0 = time.monotonic()
    time.sleep(3)
    got = server.events("telemetry", 1, since=t0)
    rate = len(got) / (time.monotonic() - t0)
    seqs = [m["seq"] for _, m in got]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # the uplink's own count, no gaps
    assert got[-1][1]["type"] == "telemetry" and "pose" in got[-1][1] and got[-1][1]["driver"] is None
    print("%s server: uplink telemetry %.2f Hz (configured 5)" % (kind, rate))
    assert 4.0 <= rate <= 6.0, rate
    assert "uplink: connected to " + server.url in car.output()


@pytest.mark.slow
def test_drive_from_the_server_moves_the_car_stop_stops_it_and_it_is_one_control_client(
        kind, servers, tmp_path, start_micropython):
    server = servers(kind)
    car = start_car(start_micropython, tmp_path, server.url)
    synced(server)

    async def main():
        w = await WsClient.connect(car)
        server.command("drive 0.6 0")
        _, m = await w.wait_for(moving, 2)
        await asyncio.sleep(0.3)
        assert (await w.latest())["driver"] == -1
        # A local client is refused while the uplink drives (client -1).
        await w.drive(0.3)
        refused = await w.reply()
        assert refused["code"] == "not_driver" and "client -1" in refused["message"], refused
        moved = (await w.latest())["pose"]
        assert moved["x"] != m["pose"]["x"] or moved["y"] != m["pose"]["y"]  # the simulated car moves
        t = server.command("stop")
        arrived, _ = await w.wait_for(stopped, 1)
        await w.close()
        return arrived - t
    took = run(main())
    print("%s server: stop -> motors at 0 in %.0f ms" % (kind, took * 1000))
    assert {"type": "role", "role": "driver"} in server.replies(1)
    # with the heartbeat over, the deadman releases the uplink, which is told so
    server.wait_line(lambda t: t == 'car 1 reply {"type":"role","role":"viewer"}', 3)


@pytest.mark.slow
def test_server_killed_stops_the_car_within_the_deadman_and_it_reconnects_within_the_backoff(
        kind, servers, tmp_path, start_micropython):
    deadman = 300
    server = servers(kind)
    car = start_car(start_micropython, tmp_path, server.url, limits={"deadman_ms": deadman})
    synced(server)

    async def main():
        w = await WsClient.connect(car)
        server.command("drive 0.5 0")
        await w.wait_for(moving, 2)
        await asyncio.sleep(0.5)
        server.kill()  # SIGKILL mid-drive: no close frame
        killed = time.monotonic()
        arrived, _ = await w.wait_for(stopped, 2, since=killed - 0.2)
        await asyncio.sleep(1.5)  # away for a while: the car retries with backoff
        server.start()  # the same port
        back = server.started
        await in_thread(synced, server, 1, 20, since=back)  # a new process: its first car again
        reconnected = (await in_thread(server.wait_line, lambda t: t.startswith("car 1 connected"), 1,
                                       since=back))[0]
        assert all(stopped(m) for t, m in w.telemetry if t >= arrived)  # nothing moved on return
        await w.close()
        return arrived - killed, reconnected - back
    took, again = run(main())
    delays = retry_delays(car.output())
    print("%s server killed -> motors stopped %.0f ms later (deadman %d ms); back %.2f s after the "
          "server listened again (retry waits %s ms)" % (kind, took * 1000, deadman, again, delays))
    # deadman + one control tick (20 ms) + one 50 Hz telemetry period + scheduling slack
    assert took <= (deadman + 20 + 20 + 80) / 1000, took
    assert "connection lost (no close frame)" in car.output() or "connection closed" in car.output()
    # No wait is longer than one backoff step, so the car is back within the
    # longest wait it announced (plus the connect itself), and never beyond 8 s.
    assert len(delays) >= 2 and max(delays) <= 8000, delays
    assert again <= max(delays) / 1000 + 0.5, (again, delays)


@pytest.mark.slow
def test_a_burst_of_late_drive_commands_after_a_stall_does_not_move_the_car(kind, servers, tmp_path,
                                                                           start_micropython):
    # The car freezes (SIGSTOP) while the server keeps its 100 ms heartbeat
    # going into the socket; then the server stops sending and, 0.5 s later,
    # the car thaws: it reads ~10 drive commands at once, each stamped more
    # than deadman_ms ago. Acted on, they would drive the car for another
    # deadman; refused, the deadman stops it on the first tick.
    deadman = 300
    server = servers(kind)
    car = start_car(start_micropython, tmp_path, server.url, limits={"deadman_ms": deadman})
    synced(server)

    async def main():
        w = await WsClient.connect(car)
        server.command("drive 0.5 0")
        await w.wait_for(moving, 2)
        car.proc.send_signal(signal.SIGSTOP)
        await asyncio.sleep(1.0)
        server.command("car 99")  # talk to no car: the heartbeat ends
        await asyncio.sleep(0.5)  # the last drive sent is now older than the deadman
        since = time.monotonic()
        car.proc.send_signal(signal.SIGCONT)
        await in_thread(server.wait_line, lambda t: '"stale"' in t, 3, since)
        await asyncio.sleep(0.5)
        after = [m for t, m in w.telemetry if t >= since + 0.1]
        stale = [r for r in server.replies(1, since) if r.get("code") == "stale"]
        await w.close()
        return after, stale
    after, stale = run(main())
    print("%s server: %d late drive commands refused as stale after a 1.5 s stall" % (kind, len(stale)))
    assert len(stale) >= 5 and "ms old (limit 300 ms" in stale[0]["message"], stale
    assert after and all(stopped(m) for m in after)


@pytest.mark.slow
def test_refused_handshakes_are_named_in_the_log_and_retried_with_backoff(kind, servers, tmp_path,
                                                                         start_micropython):
    server = servers(kind, args=["--bearer", "s3cret-token", "--subprotocol", "tether.v1"])
    good = {"Authorization": "Bearer s3cret-token"}
    no_token = start_car(start_micropython, tmp_path, server.url, name="car-a",
                         uplink={"subprotocol": "tether.v1"})
    bad_path = start_car(start_micropython, tmp_path, server.url.replace("/car", "/nowhere"), name="car-b",
                         uplink={"headers": good, "subprotocol": "tether.v1"})
    bad_protocol = start_car(start_micropython, tmp_path, server.url, name="car-c",
                             uplink={"headers": good, "subprotocol": "tether.v2"})
    ok = start_car(start_micropython, tmp_path, server.url, name="car-d",
                   uplink={"headers": good, "subprotocol": "tether.v1"})
    # The one with the right token, path and subprotocol connects (the server
    # numbers car-c too: it completes the server's side of the handshake).
    server.wait_line(lambda t: re.match(r"car \d+ hello", t), 10)
    assert server.events("hello")[0][1]["device"] == "car-d"
    deadline = time.monotonic() + 10
    expected = {no_token: "server answered 401 Unauthorized, not 101 Switching Protocols",
                bad_path: "server answered 404 Not Found, not 101 Switching Protocols",
                bad_protocol: "server chose no subprotocol; we need one of tether.v2"}
    while time.monotonic() < deadline and not all(
            len(retry_delays(c.output())) >= 3 for c in expected):
        time.sleep(0.1)
    for c, words in expected.items():
        out = c.output()
        assert "uplink %s: handshake refused: %s; retrying in" % (
            c.cmd and json.load(open(c.cmd[-1]))["uplink"]["url"], words) in out, out
        delays = retry_delays(out)
        assert len(delays) >= 3, out
        # failure n waits a random 50-100 % of min(8 s, 0.5 s x 2^(n-1))
        for n, ms in enumerate(delays[:4], 1):
            step = min(8000, 500 << (n - 1))
            assert step // 2 <= ms <= step, (n, ms, delays)
        assert c.poll() is None and page_ok(c)
    refused = [text for _, text in server.lines if text.startswith("refused")]
    assert sum(": 401 (" in t for t in refused) >= 3 and sum(": 404 (" in t for t in refused) >= 3, refused
    assert len(server.events("hello")) == 1  # only car-d ever said hello
    assert "uplink: connected to %s (tether.v1)" % server.url in ok.output()


@pytest.mark.slow
def test_malformed_messages_from_the_server_get_error_replies_and_the_car_keeps_running(
        kind, servers, tmp_path, start_micropython):
    server = servers(kind)
    car = start_car(start_micropython, tmp_path, server.url)
    synced(server)
    since = time.monotonic()
    bad = ["send {not json", "send [1,2]", 'send {"type":"fly"}', 'send {"speed":1}',
           'send {"type":"actuator","name":"laser","value":true}',
           'send {"type":"drive","throttle":0.5,"steer":0}', 'send {"type":"drive","throttle":0.5,"steer":0,"at":-60000}',
           "binary 00ff10", "send " + "x" * 600]
    for line in bad:
        server.command(line)
    server.wait_line(lambda t: t.startswith("car 1 reply") and "too_large" in t, 5, since)
    errors = [r for r in server.replies(1, since) if r["type"] == "error"]
    assert len(errors) == len(server.replies(1, since)), [r for r in server.replies(1, since) if r["type"] != "error"]
    got = [(r["code"], r["field"]) for r in errors]
    assert got == [("bad_json", None), ("bad_json", None), ("unknown_type", "type"), ("bad_field", "type"),
                   ("bad_field", "name"), ("bad_field", "at"), ("stale", "at"), ("bad_json", None),
                   ("too_large", None)], got
    texts = [r["message"] for r in errors]
    assert texts[0] == "not valid JSON" and "not binary" in texts[7], texts
    assert "a drive over the uplink carries the car's uptime_ms" in texts[5], texts[5]
    assert re.match(r"at: command is \d+ ms old \(limit 500 ms, the deadman\)", texts[6]), texts[6]

    async def main():
        w = await WsClient.connect(car)
        since = time.monotonic()
        server.command("ping")  # the link still works
        await in_thread(server.wait_line, lambda t: t.startswith("car 1 reply") and '"pong"' in t, 3, since)
        # Longer than the car's 1024-byte message limit: the connection closes
        # with 1009, as on /ws, and the uplink reconnects.
        server.command("send " + "y" * 2000)
        await in_thread(synced, server, 2, 10, since)
        await w.wait_for(lambda m: True, 1)  # the car carries on serving /ws
        assert all(stopped(m) for _, m in w.telemetry)  # nothing of that moved the car
        await w.close()
    run(main())
    assert page_ok(car) and car.poll() is None
    assert "connection closed (1009" in car.output(), car.output()


@pytest.mark.slow
def test_the_access_token_travels_in_the_command(servers, tmp_path, start_micropython):
    token = "uplink-secret-1"
    server = servers("python")
    car = start_car(start_micropython, tmp_path, server.url, access={"token": token})
    synced(server)

    async def main():
        w = await WsClient.connect(car)
        since = server.command("drive 0.5 0")
        await in_thread(server.wait_line, lambda t: '"forbidden"' in t, 3, since)
        server.command("token wrong-token")
        await in_thread(server.wait_line, lambda t: '"forbidden"' in t, 3, time.monotonic())
        await asyncio.sleep(0.3)
        assert all(stopped(m) for _, m in w.telemetry)
        server.command("token " + token)
        await w.wait_for(moving, 2)
        server.command("token")  # none: stop needs no token
        server.command("stop")
        await w.wait_for(stopped, 1)
        await w.close()
    run(main())
    forbidden = [r for r in server.replies(1) if r.get("code") == "forbidden"]
    assert forbidden[0]["field"] == "token", forbidden


@pytest.mark.slow
def test_a_server_that_stops_reading_never_delays_the_control_loop_or_local_clients(tmp_path,
                                                                                 start_micropython):
    # A scripted server on loopback: it completes the handshake with a tiny
    # receive buffer and never reads again, while the car sends 50 Hz telemetry.
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    held = []

    def accept():
        conn, _ = listener.accept()
        answer_upgrade(conn)
        held.append(conn)  # and never read
    threading.Thread(target=accept, daemon=True).start()
    url = "ws://127.0.0.1:%d/car" % listener.getsockname()[1]
    car = start_car(start_micropython, tmp_path, url, uplink={"telemetry_hz": 50})

    async def main():
        w = await WsClient.connect(car)
        await w.hold(0.5, 0.0, 4.0)
        assert await w.reply() == {"type": "role", "role": "driver"}
        rtt = await w.ping(7)
        times = [t for t, _ in w.telemetry]
        await w.close()
        return times, rtt
    times, rtt = run(main())
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert held, "the car never connected"
    # The car's side of the stalled connection really is full: what the kernel
    # could not deliver sits in the car's socket, the rest in the uplink's queue.
    car_port, server_port = held[0].getpeername()[1], listener.getsockname()[1]
    unsent = send_queue(car_port, server_port)
    print("stalled uplink server: %s bytes stuck in the car's socket; local telemetry %d frames in "
          "4 s, worst gap %.0f ms, ping %.1f ms" % (unsent, len(times), max(gaps) * 1000, rtt * 1000))
    assert unsent and unsent > 4096, unsent
    assert len(times) >= 160, len(times)
    # A car blocked on the uplink would stop for seconds; 0.3 s leaves room for
    # a shared machine's scheduling (quiet: worst gap 38 ms).
    assert max(gaps) < 0.3, max(gaps)
    assert rtt < 0.2, rtt
    assert page_ok(car) and car.poll() is None
    listener.close()


QUEUE_CODE = """
import sys
sys.path.insert(0, 'lib')
from car.uplink import Link

class Car:
    access = None
    limits = {"deadman_ms": 500}

link = Link(Car(), {"url": "ws://127.0.0.1:9/car", "headers": {}, "subprotocol": None, "telemetry_hz": 2})
link.send_nowait("lost")  # no connection: dropped
link.ws = object()
for text in ['{"type":"hello"}', '{"type":"telemetry","seq":1}', '{"type":"pong"}',
             '{"type":"telemetry","seq":2}', '{"type":"telemetry","seq":3}', '{"type":"error"}',
             '{"type":"role"}', '{"type":"telemetry","seq":4}', '{"type":"error","n":2}']:
    link.send_nowait(text)
print(link.queue)
print(link.dropped)
"""


def test_the_outgoing_queue_is_bounded_and_drops_the_oldest_telemetry_first():
    result = run_micropython(QUEUE_CODE)
    assert result.returncode == 0, result.stderr + result.stdout
    queue, dropped = result.stdout.splitlines()
    # 4 places: telemetry goes first, oldest first (1, 2, 3, then 4 for the last
    # error); the hello, with no telemetry left to drop, as the oldest of all.
    assert eval(queue) == ['{"type":"pong"}', '{"type":"error"}', '{"type":"role"}',
                           '{"type":"error","n":2}'], queue
    assert dropped == "5"


def test_uplink_config_errors_name_the_key():
    code = """
import json
from car.config import validate
cfg, errors = validate({"limits": {"telemetry_hz": 10},
    "uplink": {"url": "wss://cars.example:8443/in", "telemetry_hz": 20, "colour": 1, "subprotocol": "a,b",
               "ca": "certs/ca.crt.pem",
               "headers": {"Authorization": "Bearer x", "Bad Name": "1", "Host": "h", "X-Line": "a\\nb"}}})
print(json.dumps([cfg["uplink"], errors]))
cfg, errors = validate({"uplink": {"url": "http://b/"}})
print(json.dumps([cfg["uplink"], errors]))
cfg, errors = validate({"uplink": {"telemetry_hz": 1}})
print(json.dumps([cfg["uplink"], errors]))
cfg, errors = validate({})
print(json.dumps(cfg["uplink"]))
cfg, errors = validate({"uplink": {"url": "wss://b/x"}})
print(json.dumps([cfg["uplink"], errors]))
cfg, errors = validate({"uplink": {"url": "ws://b/x", "ca": 7}})
print(json.dumps([cfg["uplink"], errors]))
"""
    result = run_micropython("import sys; sys.path.insert(0, 'lib')\n" + code)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    uplink, errors = lines[0]
    assert uplink == {"url": "wss://cars.example:8443/in", "headers": {"Authorization": "Bearer x"},
                      "subprotocol": None, "telemetry_hz": 2, "ca": "certs/ca.crt.pem"}
    assert "uplink.colour: unknown key (ignored)" in errors
    assert "uplink.telemetry_hz: must be an int between 1 and 10 (at most limits.telemetry_hz)" in errors
    assert any(e.startswith("uplink.subprotocol: must be null or 1 to 64") for e in errors), errors
    assert any(e.startswith("uplink.headers.Bad Name: not a valid header name") for e in errors), errors
    assert "uplink.headers.Host: set by the WebSocket handshake itself (ignored)" in errors
    assert any(e.startswith("uplink.headers.X-Line: must be a string") for e in errors), errors
    assert lines[1][0] is None and lines[1][1][0].startswith(
        "uplink.url: WebSocket URL must start with ws:// or wss://"), lines[1]
    assert lines[2][0] is None and lines[2][1] == [
        "uplink.url: missing; ws://host[:port]/path or wss://host[:port]/path (uplink off)"]
    assert lines[3] is None
    assert lines[4] == [None, ["uplink.ca: needed for wss://: without it the server cannot be verified "
                               "(uplink off)"]]
    assert lines[5][0]["ca"] is None and lines[5][1] == [
        "uplink.ca: must be a file name of 1 to 128 characters (the server's CA certificate on the board)"]


def test_a_plain_car_does_not_import_the_uplink():
    result = run_micropython("import sys; sys.path.insert(0, 'lib')\nfrom car import app\n"
                             "print(sorted(m for m in sys.modules if 'wsclient' in m or 'uplink' in m "
                             "or 'remote' in m))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_uplink_config_checks_are_dropped_after_start_up(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"uplink": {"url": "ws://127.0.0.1:9/car"}}))
    result = run_micropython("import sys; sys.path.insert(0, 'lib')\nimport car\n"
                             "cfg, errors = car.load_config(%r)\n"
                             "print(cfg['uplink']['url'], errors, 'car.uplink_config' in sys.modules, "
                             "hasattr(car, 'uplink_config'))" % str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ws://127.0.0.1:9/car", "[]", "False", "False"]


class QuietServer:
    """A scripted uplink server on loopback: it completes each handshake,
    sends what the test gives it, records every frame the car sends (time,
    opcode, payload) and never answers a ping."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(2)
        self.connections = []  # [socket, opened at, [(time, opcode, payload)]]
        self.unmasked = []  # frames the car sent unmasked: (opcode, payload)
        threading.Thread(target=self.accept, daemon=True).start()

    @property
    def url(self):
        return "ws://127.0.0.1:%d/car" % self.listener.getsockname()[1]

    def accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            answer_upgrade(conn)
            frames = []
            self.connections.append([conn, time.monotonic(), frames])
            threading.Thread(target=self.read, args=(conn, frames), daemon=True).start()

    def read(self, conn, frames):
        def exactly(n):
            data = b""
            while len(data) < n:
                chunk = conn.recv(n - len(data))
                if not chunk:
                    raise EOFError
                data += chunk
            return data
        try:
            while True:
                b0, b1 = exactly(2)
                n = b1 & 0x7F
                if n == 126:
                    n = int.from_bytes(exactly(2), "big")
                elif n == 127:
                    n = int.from_bytes(exactly(8), "big")
                mask = exactly(4) if b1 & 0x80 else b"\0\0\0\0"
                payload = bytes(b ^ mask[i & 3] for i, b in enumerate(exactly(n)))
                frames.append((time.monotonic(), b0 & 0x0F, payload))
                if not b1 & 0x80:
                    self.unmasked.append((b0 & 0x0F, payload))
        except (EOFError, OSError):
            frames.append((time.monotonic(), None, b""))  # the car closed its end

    def send_text(self, index, text):
        self.send_frame(index, 0x81, text.encode())

    def send_frame(self, index, b0, payload, mask=None):
        # < 126 bytes; unmasked, as a server's frames must be, unless a mask is given
        if mask is None:
            frame = bytes((b0, len(payload))) + payload
        else:
            frame = bytes((b0, 0x80 | len(payload))) + mask + bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
        self.connections[index][0].sendall(frame)

    def wait(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = predicate()
            if found:
                return found
            time.sleep(0.02)
        raise AssertionError("timed out waiting for %s" % what)

    def close(self):
        self.listener.close()
        for conn, _, _ in self.connections:
            conn.close()


QUIET_MS, PONG_MS = 10000, 5000  # lib/car/uplink.py's _QUIET_MS and _PONG_MS (docs/protocol.md)


def test_the_cars_frames_are_masked_and_a_masked_frame_from_the_server_fails_the_link(
        tmp_path, start_micropython):
    # The uplink is the server's own connection code in the client role
    # (lib/wsclient/dialled.py): every frame it sends must be masked, pongs
    # and close frames included, and a masked frame from a server is a
    # protocol error (RFC 6455 §5.1), also where the server's code would take
    # a lone small text frame on its fast path.
    server = QuietServer()
    url = server.url
    car = start_car(start_micropython, tmp_path, url, uplink={"telemetry_hz": 5})
    try:
        server.wait(lambda: server.connections, 10, "the car to connect")
        first = server.connections[0][2]
        server.wait(lambda: len(first) >= 3, 5, "the hello and telemetry")
        server.send_frame(0, 0x89, b"are you there")  # a ping
        server.wait(lambda: any(op == 0xA and p == b"are you there" for t, op, p in first), 5, "the pong")
        server.send_text(0, '{"type":"ping","id":7}')
        server.wait(lambda: any(op == 1 and b'"pong"' in p for t, op, p in first), 5, "the pong message")
        server.send_frame(0, 0x81, b'{"type":"ping","id":8}', mask=b"\x01\x02\x03\x04")
        closes = server.wait(lambda: [p for t, op, p in first if op == 8], 5, "the car's close frame")
        server.wait(lambda: len(server.connections) >= 2, 5, "the car dialling again")
        log = car.output()
    finally:
        server.close()
    assert int.from_bytes(closes[0][:2], "big") == 1002, closes
    assert not any(b'"id":8' in p for t, op, p in first)  # the masked message was not acted on
    assert not server.unmasked, server.unmasked
    assert "uplink %s: connection closed (1002" % url in log, log
    assert car.poll() is None


@pytest.mark.slow
def test_a_quiet_server_is_pinged_and_an_unanswered_ping_ends_the_link_and_the_car_reconnects(
        tmp_path, start_micropython):
    server = QuietServer()
    car = start_car(start_micropython, tmp_path, server.url, uplink={"telemetry_hz": 1})
    try:
        server.wait(lambda: server.connections, 10, "the car to connect")
        first = server.connections[0][2]
        server.wait(lambda: first, 5, "the car's hello")
        assert json.loads(first[0][2])["type"] == "hello"
        # The server speaks once (a ping message, answered with a pong text),
        # then stays quiet: the car's quiet clock starts at that message.
        time.sleep(2)
        spoke = time.monotonic()
        server.send_text(0, '{"type":"ping","id":"q"}')
        server.wait(lambda: any(op == 1 and b'"pong"' in p for t, op, p in first), 5, "the pong")
        pings = lambda: [t for t, op, p in first if op == 0x9]
        pinged = server.wait(pings, QUIET_MS / 1000 + 3, "a WebSocket ping")[0] - spoke
        # Unanswered: the car ends this connection and dials again (backoff
        # after the first failure: 250-500 ms).
        server.wait(lambda: len(server.connections) >= 2, PONG_MS / 1000 + 3, "a second connection")
        redialled = server.connections[1][1] - (spoke + pinged)
        closed = [t for t, op, p in first if op in (0x8, None)]
        second = server.connections[1][2]
        server.wait(lambda: second, 5, "the second hello")
        assert json.loads(second[0][2])["type"] == "hello"
        log = car.output()
    finally:
        server.close()
    print("quiet server pinged %.2f s after its last message (quiet %d ms); unanswered, the car "
          "dialled again %.2f s after its ping (pong wait %d ms)" % (pinged, QUIET_MS, redialled, PONG_MS))
    assert QUIET_MS / 1000 - 0.1 <= pinged <= QUIET_MS / 1000 + 0.5, pinged
    assert closed and closed[0] - spoke - pinged >= PONG_MS / 1000 - 0.1, closed  # waited for the pong
    assert PONG_MS / 1000 <= redialled <= PONG_MS / 1000 + 0.5 + 0.5, redialled
    assert "no pong within %d ms" % PONG_MS in log, log
    assert car.poll() is None


@pytest.mark.slow
def test_wss_uplink_verifies_the_servers_certificate(servers, tmp_path, start_micropython):
    # The reference server on wss:// with a certificate for localhost from
    # tools/board/cert.py; uplink.ca given relative to the config's folder.
    conf = tmp_path / "conf"
    good = cert.make(str(conf / "certs"), "uplink", dns=["localhost"])
    cert.make(str(tmp_path / "other"), "uplink", dns=["localhost"])  # another CA, same names
    server = servers("python", args=["--cert", os.path.join(good, "cert.pem"),
                                     "--key", os.path.join(good, "key.pem")])
    assert server.lines[0][1].startswith("listening on wss://"), server.lines[0]
    url = "wss://localhost:%d/car" % server.port
    trusted = start_micropython("main.py", ["--config", car_config(
        conf, url, uplink={"ca": "certs/ca.crt.pem"}, name="car-good")])
    synced(server, 1, timeout=20)  # hello, and the pong to the server's ping
    hello = server.events("hello", 1)[0][1]
    assert hello["device"] == "car-good", hello
    wrong = start_micropython("main.py", ["--config", car_config(
        conf, url, uplink={"ca": str(tmp_path / "other" / "ca.crt.pem")}, name="car-wrong")])

    async def main():
        w = await WsClient.connect(trusted)
        server.command("drive 0.6 0")  # through TLS: the server drives the car
        await w.wait_for(moving, 3)
        server.command("stop")
        await w.wait_for(stopped, 2)
        await w.close()
    run(main())
    t0 = time.monotonic()
    time.sleep(2)
    rate = len(server.events("telemetry", 1, since=t0)) / (time.monotonic() - t0)
    assert 1.5 <= rate <= 2.5, rate
    # The car with the wrong CA is refused in the TLS handshake, says so, and retries.
    wait_until(lambda: len(retry_delays(wrong.output())) >= 2, 10, what="two retries of the wrong-CA car")
    refused = [line for line in wrong.output().splitlines() if line.startswith("uplink " + url)]
    print("wss uplink: trusted car's telemetry %.2f Hz; wrong CA: %s" % (rate, refused[:1]))
    assert len(refused) >= 2, wrong.output()
    assert all(line.endswith("ValueError: The certificate is not correctly signed by the trusted CA; "
                             "retrying in %s ms" % line.split()[-2]) for line in refused), refused
    assert "uplink: connected" not in wrong.output()
    assert not server.events("hello", 2)  # it never got as far as the WebSocket
    assert trusted.poll() is None and wrong.poll() is None
