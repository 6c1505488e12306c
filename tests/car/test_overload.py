"""Overload against the real firmware (main.py, simulated car):

- a flood of connects, half-sent heads, handshakes past max_clients and page
  loads (from a separate process, so it really competes for the CPU) must not
  delay the driver's commands or the deadman, and the extra handshakes are
  refused quickly (503);
- a MemoryError inside one connection (a huge frame under `-X heapsize`)
  closes that connection with 1011 and leaves the server, the other clients
  and the motor safety (deadman) running.

Figures are printed (`-s`); asserts use bounds far from the measured values.
"""
import asyncio
import json
import multiprocessing
import os
import socket
import statistics
import time

import pytest

from support.micropython import ROOT
from support.car import Client, moving, run, stopped, write_config
from support.wsraw import close_code
from support.wsraw import open_socket as handshake
from support.wsraw import frame, read_head, read_to_eof

pytestmark = [pytest.mark.hardening]

DEADMAN_MS = 500
TICK_MS = 20
TELEMETRY_MS = 20  # FAST_LIMITS: 50 Hz


def config(tmp_path, max_clients):
    path = write_config(tmp_path)
    cfg = json.load(open(path))
    cfg["server"]["max_clients"] = max_clients
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path


# ------------------------------------------------------------------ the flood

def flood(port, seconds, out):
    """Runs in its own process: hammer the car with everything a LAN can
    throw at it; report counts and how fast extra handshakes were refused."""
    counts = {"connect_close": 0, "half_head": 0, "handshake_503_full": 0, "handshake_503_busy": 0,
              "handshake_408_evicted": 0, "handshake_other": 0, "page_200": 0, "page_other": 0, "errors": 0}
    refusal_ms = []
    other_heads = []
    held = []
    end = time.monotonic() + seconds
    i = 0
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    while time.monotonic() < end:
        i += 1
        kind = i % 4
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            if kind == 0:
                counts["connect_close"] += 1
            elif kind == 1:
                # Slowloris: half a head, then hold the socket open for a
                # while (6 held per process: together past max_pending=8).
                s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgr")
                counts["half_head"] += 1
                held.append(s)
                if len(held) > 6:
                    held.pop(0).close()
                continue
            elif kind == 2:
                t0 = time.monotonic()
                s.sendall(("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key).encode())
                head = read_head(s, size=400)
                if head.startswith(b"HTTP/1.1 503"):
                    # 503 from max_clients ("server full") or from the cap on
                    # connections still sending their head ("too many").
                    counts["handshake_503_full" if b"full" in head else "handshake_503_busy"] += 1
                    refusal_ms.append((time.monotonic() - t0) * 1000)
                elif head.startswith(b"HTTP/1.1 408"):
                    # Under this flood (~10,000 connections/s) a handshake can
                    # still be waiting for its first read when max_pending
                    # newer heads arrive: it is then the oldest pending one and
                    # is dropped with a 408, as docs/server.md says (seen once
                    # in a few hundred runs). Still a clear answer.
                    counts["handshake_408_evicted"] += 1
                else:
                    counts["handshake_other"] += 1
                    other_heads.append(head[:80])
            else:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
                data = read_to_eof(s)
                counts["page_200" if data.startswith(b"HTTP/1.1 200") else "page_other"] += 1
            s.close()
        except OSError:
            counts["errors"] += 1
    for s in held:
        s.close()
    counts["other_heads"] = other_heads[:5]
    out.put((counts, refusal_ms))


def start_flood(port, seconds, processes=1):
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=flood, args=(port, seconds, out), daemon=True) for _ in range(processes)]
    for p in procs:
        p.start()
    return procs, out


def collect_flood(procs, out):
    counts, refusals = {}, []
    for _ in procs:
        c, r = out.get(timeout=30)
        for k, v in c.items():
            counts[k] = counts.get(k, type(v)()) + v
        refusals += r
    for p in procs:
        p.join(5)
    return counts, refusals


# ------------------------------------------------------------------ driving

async def drive_and_measure(driver, seconds):
    """Drive at 10 Hz with a new throttle each time; latency from sending a
    drive to the first telemetry whose `motor` shows it."""
    latencies = []
    values = [0.3, 0.35, 0.4, 0.45]
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        throttle = values[i % len(values)]
        i += 1
        sent = await driver.drive(throttle)
        arrived, t = await driver.wait_for(lambda m: abs(m["motor"]["left"] - throttle) < 1e-6,
                                           timeout=2.0, since=sent)
        assert t["driver"] == driver.hello["id"], "lost control during the flood: %s" % t
        latencies.append((arrived - sent) * 1000)
        await asyncio.sleep(max(0.0, 0.1 - (time.monotonic() - sent)))
    return latencies


async def deadman_after(driver):
    """ms from the last drive to the stop in telemetry."""
    last = await driver.drive(0.4)
    await driver.wait_for(lambda m: abs(m["motor"]["left"] - 0.4) < 1e-6, since=last)
    stopped_at, t = await driver.wait_for(stopped, timeout=3.0, since=last)
    assert t["driver"] is None
    return (stopped_at - last) * 1000


def summary(values):
    values = sorted(values)
    return "n=%d p50=%.1f p95=%.1f max=%.1f ms" % (
        len(values), statistics.median(values), values[int(0.95 * (len(values) - 1))], values[-1])


@pytest.mark.slow
def test_flood_does_not_delay_driver_or_deadman(start_micropython, tmp_path):
    car = start_micropython("main.py", args=["--config", config(tmp_path, max_clients=3)])

    async def scenario():
        driver = await Client.connect(car)
        await driver.drive(0.3)
        assert (await driver.reply())["role"] == "driver"
        filler = await Client.connect(car)
        viewer = await Client.connect(car)  # now full: every flood handshake gets 503
        quiet = await drive_and_measure(driver, 1.5)
        quiet_deadman = await deadman_after(driver)
        await driver.drive(0.3)
        await driver.reply()  # driver again
        procs, out = start_flood(car.port, 4.0, processes=2)
        await asyncio.sleep(0.3)  # let the flood build up
        loaded = await drive_and_measure(driver, 2.5)
        loaded_deadman = await deadman_after(driver)
        counts, refusals = await asyncio.get_running_loop().run_in_executor(None, collect_flood, procs, out)
        # The viewer saw telemetry throughout.
        gaps = [b[0] - a[0] for a, b in zip(viewer.telemetry, viewer.telemetry[1:])]
        for c in (driver, filler, viewer):
            await c.close()
        return quiet, quiet_deadman, loaded, loaded_deadman, counts, refusals, max(gaps) * 1000

    quiet, quiet_deadman, loaded, loaded_deadman, counts, refusals, gap = run(scenario())
    print("\nflood: drive->telemetry quiet %s" % summary(quiet))
    print("flood: drive->telemetry during flood %s" % summary(loaded))
    print("flood: deadman %d ms: stop seen %.0f ms after the last drive (quiet), %.0f ms (flood)"
          % (DEADMAN_MS, quiet_deadman, loaded_deadman))
    print("flood: %s in ~4 s from 2 processes; 503 refusal %s; longest telemetry gap at a viewer %.0f ms"
          % (counts, summary(refusals) if refusals else "none", gap))
    # Far from the measured figures, close to what matters: the driver is
    # never starved into the deadman, the deadman is neither early nor late.
    assert max(loaded) < DEADMAN_MS / 2
    assert DEADMAN_MS * 0.95 <= loaded_deadman <= DEADMAN_MS + TICK_MS + TELEMETRY_MS + 150
    assert counts["handshake_503_full"] > 20
    assert counts["handshake_other"] == 0, counts["other_heads"]
    assert counts["page_200"] > 10
    assert statistics.median(refusals) < 100
    assert gap < DEADMAN_MS


# ------------------------------------------------------------------ MemoryError

BIG_FRAME_APP = """
import sys
sys.path.insert(0, %(lib)r)
import wsserver
from car import app


class BigMessages(wsserver.Server):
    # The firmware's own server, but allowing huge messages: one client can
    # then ask for an allocation the heap cannot give.
    def __init__(self, **kw):
        kw["max_message"] = 1 << 20
        super().__init__(**kw)


wsserver.Server = BigMessages  # car.boot, imported by app.run, builds the car's server from it
port = int(sys.argv[sys.argv.index("--port") + 1])
app.run(config_path=%(config)r, host="127.0.0.1", port=port, static_dir=%(web)r)
"""


@pytest.mark.slow
@pytest.mark.parametrize("heapsize", ["160K"])
def test_memory_error_in_one_connection_spares_the_rest(start_micropython, tmp_path, heapsize):
    script = tmp_path / "big_frames_car.py"
    script.write_text(BIG_FRAME_APP % {"lib": os.path.join(ROOT, "lib"), "web": os.path.join(ROOT, "web"),
                                       "config": config(tmp_path, max_clients=4)})
    car = start_micropython(str(script), heapsize=heapsize)

    async def scenario():
        driver = await Client.connect(car)
        viewer = await Client.connect(car)
        await driver.drive(0.4)
        await driver.reply()
        await driver.hold(0.4, 0, 0.3)
        before = (await viewer.latest())["heap_free"]
        # Another client announces a 900 KB frame: the codec allocates its
        # payload buffer up front -> MemoryError inside that connection only.
        loop = asyncio.get_running_loop()

        def greedy():
            s = handshake(car.port, "/ws")
            s.sendall(frame(2, b"", length=900_000)[:14] + b"x" * 100)
            code = close_code(s)
            s.close()
            return code
        code = await loop.run_in_executor(None, greedy)
        # The driver kept control and keeps driving meanwhile.
        await driver.hold(0.4, 0, 0.3)
        _, t = await viewer.wait_for(moving)
        assert t["driver"] == driver.hello["id"]
        after = (await viewer.latest())["heap_free"]
        # And the deadman still stops the car.
        deadman = await deadman_after(driver)
        # A new client is still served.
        late = await Client.connect(car)
        await late.ping(1)
        for c in (driver, viewer, late):
            await c.close()
        return code, before, after, deadman

    code, before, after, deadman = run(scenario())
    print("\nMemoryError (-X heapsize=%s): greedy connection closed with %s; heap_free %d before, %d after;"
          " deadman stop %.0f ms after the last drive" % (heapsize, code, before, after, deadman))
    assert code == 1011
    assert DEADMAN_MS * 0.95 <= deadman <= DEADMAN_MS + TICK_MS + TELEMETRY_MS + 150
    assert car.poll() is None, car.output()
