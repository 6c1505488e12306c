"""What stock MicroPython v1.28.0 does differently on the boards (issue 17),
each fact read from its sources and cited where it is tested:
- the firmware starts and drives under the esp8266 board proxy, which turns
  off the language features ports/esp8266/mpconfigport.h turns off
  (__file__, str.partition/rpartition, math.log10, ...);
- the viper fallback, the ESP8266's fixed watchdog and ticks wrapping."""
import json
import os
import shutil
import urllib.request

from conftest import ROOT, MicroPythonProcess, board_proxy, run_micropython
from helpers_car import Client, run, write_config

LIB = os.path.join(ROOT, "lib")
FAKES = os.path.join(ROOT, "tests", "fakes")


def mp(code, proxy=None, path=LIB):
    """Run code under MicroPython (or a board proxy) with `path` as MICROPYPATH;
    returns the last printed line parsed as JSON."""
    env_path = path + ":.frozen"
    result = run_micropython("import sys\nsys.path[:0] = %r.split(':')\nimport json\n%s"
                             % (env_path, code), micropython=proxy)
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- item 1, 2: the firmware on the esp8266 proxy ---------------------------

def test_esp8266_proxy_lacks_what_the_esp8266_port_lacks():
    # The proxy is only a check if it really refuses these (ports/esp8266/mpconfigport.h:
    # MICROPY_MODULE___FILE__ 0, MICROPY_PY_BUILTINS_STR_PARTITION 0,
    # MICROPY_PY_MATH_SPECIAL_FUNCTIONS 0).
    r = run_micropython("import math\nprint(hasattr('', 'partition'), hasattr('', 'rpartition'),"
                        " hasattr(math, 'log10'), 'x'.find('x'))", micropython=board_proxy("esp8266"))
    assert r.stdout.split() == ["False", "False", "False", "0"], r.stdout + r.stderr


def test_firmware_starts_and_drives_on_the_esp8266_proxy(tmp_path):
    proxy = board_proxy("esp8266")
    cfg = write_config(tmp_path)
    car = MicroPythonProcess("main.py", ["--host", "127.0.0.1", "--config", cfg], micropython=proxy)
    try:
        # The page, with a query string and an ETag (http.py's request parsing, static.py's types).
        with urllib.request.urlopen(car.url + "/?token=x&y") as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")

        async def main():
            # An Origin header goes through origin.parse (no str.partition there either).
            c = await Client.connect(car)
            start = (await c.latest())["pose"]
            await c.drive(0.6, 0)
            assert await c.reply() == {"type": "role", "role": "driver"}
            await c.hold(0.6, 0, 0.6)
            moved = await c.latest()
            await c.send({"type": "stop"})
            stopped = (await c.wait_for(lambda m: m["applied"] == {"left": 0, "right": 0}))[1]
            await c.close()
            return start, moved, stopped

        start, moved, stopped = run(main())
        assert moved["pose"]["x"] > start["x"] + 0.05, (start, moved)
        assert moved["uptime_ms"] > 0 and isinstance(moved["rssi"], int)  # sim.rssi without log10
        assert stopped["motor"] == {"left": 0, "right": 0}
        assert "Traceback" not in car.output(), car.output()
    finally:
        car.stop()


def test_firmware_checks_origins_on_the_esp8266_proxy(tmp_path):
    import websockets

    proxy = board_proxy("esp8266")
    cfg = write_config(tmp_path)
    car = MicroPythonProcess("main.py", ["--host", "127.0.0.1", "--config", cfg], micropython=proxy)
    try:
        async def main():
            ok = await websockets.connect(car.ws_url + "/ws", origin="http://127.0.0.1:%d" % car.port)
            hello = json.loads(await ok.recv())
            await ok.close()
            try:
                await websockets.connect(car.ws_url + "/ws", origin="http://evil.example")
            except websockets.InvalidStatus as e:
                return hello, e.response.status_code
            return hello, None

        hello, refused = run(main())
        assert hello["type"] == "hello" and refused == 403
    finally:
        car.stop()


def test_codec_suite_passes_on_the_esp8266_proxy():
    r = run_micropython("tests/mp_runner.py", "tests/test_codec.py", micropython=board_proxy("esp8266"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert int(r.stdout.strip().splitlines()[-1].split()[1]) >= 11, r.stdout


# --- item 4: viper out of iRAM ---------------------------------------------

def test_codec_falls_back_to_python_when_viper_code_does_not_fit(tmp_path):
    # ports/esp8266/modesp.c esp_native_code_commit raises MemoryError once the
    # spare iRAM area (~500 bytes) is full; _native needs ~1.5 KB for xtensa.
    lib = tmp_path / "lib"
    shutil.copytree(os.path.join(LIB, "wsserver"), lib / "wsserver")
    (lib / "wsserver" / "_native.py").write_text(
        "raise MemoryError('memory allocation failed, allocating 1520 bytes for native code')\n")
    got = mp("from wsserver import mask, utf8\n"
             "b = bytearray(b'abcdef')\nmask.unmask(b, 6, b'\\x01\\x02\\x03\\x04')\n"
             "print(json.dumps([mask.unmask is mask._unmask_py, utf8.validate is utf8._validate_py,"
             " list(b), utf8.is_valid(b'\\xc3\\xa9'), utf8.is_valid(b'\\xc3')]))", path=str(lib))
    assert got == [True, True, [96, 96, 96, 96, 100, 100], True, False]


# --- item 3: the ESP8266's fixed watchdog -----------------------------------

def test_watchdog_on_esp8266_takes_its_fixed_timeout():
    # ports/esp8266/machine_wdt.c: ValueError unless timeout_ms == 5000.
    got = mp("import machine\nmachine.CHIP[0] = 'esp8266'\nfrom car.main import watchdog\n"
             "w = watchdog(3000)\nw.feed()\nprint(json.dumps([w.timeout_ms, w.fed]))",
             path=FAKES + ":" + LIB)
    assert got == [5000, 1]


def test_watchdog_on_esp32_takes_the_configured_timeout():
    got = mp("import machine\nmachine.CHIP[0] = 'esp32'\nfrom car.main import watchdog\n"
             "w = watchdog(3000)\nprint(json.dumps([w.timeout_ms, watchdog(0)]))",
             path=FAKES + ":" + LIB)
    assert got == [3000, None]


# --- item 10: ticks wrap every 2^30 ms --------------------------------------

UPTIME = """
from time import ticks_add, ticks_ms
from car.app import Car
from car import load_config

class Hw:
    simulated = False
    def tick(self, now): pass
    def distance_cm(self): return None
    def set_motors(self, l, r): pass
    def stop(self): pass
    def applied(self): return (0, 0)
    def battery_v(self): return 0.0
    def rssi(self): return None
    def pose(self): return None

cfg = load_config('/no/such/config.json')[0]
car = Car(cfg, Hw(), server=None)
now = car.last_tick
HOUR = 3600000
for i in range(7 * 24):  # a week, an hour per tick (each ticks_diff stays small)
    now = ticks_add(now, HOUR)
    car.tick(now)
t = json.loads(car.telemetry(ticks_add(now, 250)))
print(json.dumps([t["uptime_ms"], car.up_s]))
"""


def test_uptime_keeps_counting_past_the_ticks_wrap():
    for proxy in (None, board_proxy("esp8266")):
        got = mp(UPTIME, proxy=proxy)
        assert got == [7 * 24 * 3600000 + 250, 7 * 24 * 3600], proxy


CLOSE_NEAR_WRAP = """
import asyncio, time
from wsserver import connection

period = time.ticks_add(0, -1) + 1  # 2^30 on a 32-bit board (and its proxy)
offset = period - 100 - time.ticks_ms()  # ticks 100 ms before they wrap
connection.ticks_ms = lambda: (time.ticks_ms() + offset) % period

class Srv:
    close_timeout_ms = 300
    max_message = 1000

ws = connection.WebSocket(Srv(), None, None, None, 1)
ws._reader = object()  # another task is reading: close() polls for the peer's reply
ws._send_close = lambda code, reason="": None
async def shutdown(): pass
ws._shutdown = shutdown

async def main():
    t0 = time.ticks_ms()
    await ws.close()
    return time.ticks_diff(time.ticks_ms(), t0)

print(json.dumps(asyncio.run(main())))
"""


def test_close_waits_its_timeout_across_the_ticks_wrap():
    # ticks_ms() + timeout is past the ticks period (and not a small int on a
    # 32-bit board): ticks_diff of it is garbage and close() gave up at once.
    for proxy in (None, board_proxy("esp32")):
        waited = mp(CLOSE_NEAR_WRAP, proxy=proxy)
        assert 280 <= waited < 1000, (proxy, waited)
