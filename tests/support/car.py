"""Helpers for the car tests: a config file writer and a WebSocket client that
keeps reading in the background, so telemetry is timestamped on arrival and
replies (errors, pongs, roles) can be awaited separately."""
import asyncio
import contextlib
import json
import time
import urllib.request

import websockets

from support.wsraw import RawWS

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


def run(coro, timeout=30):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def page_ok(car):
    """The car's page answers 200 with some HTML."""
    with urllib.request.urlopen(car.url + "/", timeout=3) as r:
        return r.status == 200 and b"<" in r.read()


@contextlib.asynccontextmanager
async def kept_driving(driver, throttle=0.5, every=0.05):
    """`async with kept_driving(driver) as start:` the driver sends drive(throttle)
    every `every` s; the block starts once the motors move (start: that
    monotonic time). Leaving it, the telemetry since start must show the
    motors moving throughout, frames at most 0.25 s apart."""
    stop = False

    async def keep_driving():
        while not stop:
            await driver.drive(throttle)
            await asyncio.sleep(every)
    task = asyncio.ensure_future(keep_driving())
    await driver.wait_for(moving)
    start = time.monotonic()
    try:
        yield start
    finally:
        stop = True
        await task
    seen = [m for t, m in driver.telemetry if t >= start]
    assert seen and all(moving(m) for m in seen)
    gaps = [b - a for (a, _), (b, _) in zip(driver.telemetry, driver.telemetry[1:]) if a >= start]
    assert max(gaps) < 0.25, max(gaps)  # 50 Hz telemetry; the bound allows a loaded 2-core machine


def raw_websocket(port, rcvbuf=1024, path="/ws"):
    """A car client that completes the handshake and then never reads again
    (support.wsraw.RawWS with a small receive buffer)."""
    ws = RawWS(port, path, rcvbuf=rcvbuf)
    assert ws.status == 101, ws.head
    return ws
