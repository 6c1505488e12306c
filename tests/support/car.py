"""Helpers for the car tests: a config file writer and a WebSocket client that
keeps reading in the background, so telemetry is timestamped on arrival and
replies (errors, pongs, roles) can be awaited separately."""
import asyncio
import base64
import fcntl
import json
import os
import socket
import struct
import termios
import time

import websockets

# Fast settings so timing tests stay short: 50 Hz telemetry matches the
# 50 Hz control loop, so a change shows up within one 20 ms period.
FAST_LIMITS = {"telemetry_hz": 50, "deadman_ms": 500, "slew": 100.0}


def write_config(tmp_path, limits=None, hardware=None, raw=None, name="config.json"):
    """A config file for one test; `raw` writes the text as is."""
    path = tmp_path / name
    if raw is not None:
        path.write_text(raw)
        return str(path)
    cfg = {"limits": dict(FAST_LIMITS, **(limits or {})), "server": {"max_clients": 6}}
    # min_duty 0: `applied` in telemetry then equals the ramped command (the
    # hardware otherwise lifts small values above the motors' dead band).
    cfg["hardware"] = {"mode": "sim", "min_duty": 0.0,
                       "sim": dict({"noise_cm": 0.0}, **(hardware or {}))}
    path.write_text(json.dumps(cfg))
    return str(path)


class Client:
    """One WebSocket connection to the car."""

    def __init__(self, ws):
        self.ws = ws
        self.hello = None
        self.telemetry = []  # (monotonic arrival time, message)
        self.replies = asyncio.Queue()  # everything that is not telemetry
        self.closed = asyncio.Event()
        self._new_telemetry = asyncio.Event()
        self._reader = None

    @classmethod
    async def connect(cls, proc, path="/ws"):
        ws = await websockets.connect(proc.ws_url + path, max_queue=None, ping_interval=None)
        client = cls(ws)
        client.hello = json.loads(await asyncio.wait_for(ws.recv(), 2))
        assert client.hello["type"] == "hello", client.hello
        client._reader = asyncio.ensure_future(client._read())
        return client

    async def _read(self):
        try:
            async for text in self.ws:
                msg = json.loads(text)
                if msg["type"] == "telemetry":
                    self.telemetry.append((time.monotonic(), msg))
                    self._new_telemetry.set()
                else:
                    await self.replies.put(msg)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed.set()

    async def send(self, message):
        """Send a dict as JSON, or a str/bytes exactly as given."""
        if isinstance(message, dict):
            message = json.dumps(message)
        await self.ws.send(message)
        return time.monotonic()

    async def drive(self, throttle, steer=0.0):
        return await self.send({"type": "drive", "throttle": throttle, "steer": steer})

    async def reply(self, timeout=2.0):
        return await asyncio.wait_for(self.replies.get(), timeout)

    async def ping(self, ident):
        """Round trip of a ping; the pong must echo the id."""
        start = time.monotonic()
        await self.send({"type": "ping", "id": ident})
        msg = await self.reply()
        assert msg == {"type": "pong", "id": ident}, msg
        return time.monotonic() - start

    async def latest(self, timeout=2.0):
        """The next telemetry message to arrive."""
        return (await self.wait_for(lambda m: True, timeout))[1]

    async def wait_for(self, predicate, timeout=2.0, since=None):
        """(arrival time, message) of the first telemetry arriving after
        `since` (default: now) that satisfies predicate."""
        since = time.monotonic() if since is None else since
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for arrived, msg in self.telemetry[seen:]:
                if arrived >= since and predicate(msg):
                    return arrived, msg
            seen = len(self.telemetry)
            left = deadline - time.monotonic()
            if left <= 0:
                last = self.telemetry[-1][1] if self.telemetry else None
                raise AssertionError("no matching telemetry within %.1f s; last: %s" % (timeout, last))
            self._new_telemetry.clear()
            try:
                await asyncio.wait_for(self._new_telemetry.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def hold(self, throttle, steer, seconds, every=0.1):
        """Keep driving (the deadman heartbeat) for `seconds`."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await self.drive(throttle, steer)
            await asyncio.sleep(every)

    async def close(self):
        await self.ws.close()
        if self._reader:
            await self._reader


def moving(msg):
    return msg["applied"]["left"] != 0 or msg["applied"]["right"] != 0


def stopped(msg):
    return msg["applied"]["left"] == 0 and msg["applied"]["right"] == 0


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


class RawWebSocket:
    """A client that completes the handshake and then never reads again."""

    def __init__(self, sock):
        self.sock = sock

    def send_text(self, text):
        payload = text.encode()
        assert len(payload) < 126
        mask = os.urandom(4)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + body)

    def send_ping_message(self):
        self.send_text('{"type":"ping","id":1}')

    def unread_bytes(self):
        """Bytes waiting in our receive buffer (Linux SIOCINQ)."""
        buf = fcntl.ioctl(self.sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
        return struct.unpack("i", buf)[0]

    def close(self):
        self.sock.close()


def raw_websocket(port, rcvbuf=1024, path="/ws"):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n" % (path, key)).encode())
    head = b""
    while b"\r\n\r\n" not in head:  # read the 101 byte by byte: nothing more
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return RawWebSocket(sock)


def send_queue(local_port, remote_port):
    """Bytes the kernel holds unsent/unacknowledged on the loopback socket
    local_port -> remote_port (Linux /proc/net/tcp tx_queue), or None."""
    want = (":%04X" % local_port, ":%04X" % remote_port)
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1].endswith(want[0]) and fields[2].endswith(want[1]):
                return int(fields[4].split(":")[0], 16)
    return None
