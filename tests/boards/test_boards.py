"""What stock MicroPython v1.28.0 does differently on the boards,
each fact read from its sources and cited where it is tested:
- the firmware starts and drives under the esp8266 board proxy, which turns
  off the language features ports/esp8266/mpconfigport.h turns off
  (__file__, str.partition/rpartition, math.log10, ...);
- the viper fallback, the ESP8266's fixed watchdog and ticks wrapping."""
import json
import os
import shutil
import urllib.request

import pytest

from support.micropython import ROOT, MicroPythonProcess, board_proxy, run_micropython, run_test_module
from support.car import Client, run, write_config

LIB = os.path.join(ROOT, "lib")
from support import FAKES  # noqa: E402


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


@pytest.mark.slow
def test_firmware_starts_and_drives_on_the_esp8266_proxy(tmp_path):
    proxy = board_proxy("esp8266")
    cfg = write_config(tmp_path)
    car = MicroPythonProcess("main.py", ["--host", "127.0.0.1", "--config", cfg], micropython=proxy)
    try:
        # The page, with a query string and an ETag (http.py's request parsing and content types).
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


@pytest.mark.slow
def test_codec_suite_passes_on_the_esp8266_proxy():
    run_test_module("tests/codec/test_codec.py", micropython=board_proxy("esp8266"))  # every test_ in it


# --- item 4: viper out of iRAM ---------------------------------------------

def test_codec_falls_back_to_python_when_viper_code_does_not_fit(tmp_path):
    # ports/esp8266/modesp.c esp_native_code_commit raises MemoryError once the
    # spare iRAM area (~500 bytes) is full; _native needs ~1.5 KB for xtensa.
    lib = tmp_path / "lib"
    shutil.copytree(os.path.join(LIB, "wsserver"), lib / "wsserver")
    (lib / "wsserver" / "_native.py").write_text(
        "raise MemoryError('memory allocation failed, allocating 1520 bytes for native code')\n")
    got = mp("from wsserver import frames\n"
             "b = bytearray(b'abcdef')\nframes.unmask(b, 6, b'\\x01\\x02\\x03\\x04')\n"
             "from wsserver import _portable\n"
             "print(json.dumps([frames.unmask is _portable.unmask, frames.utf8_validate is _portable.utf8_validate,"
             " list(b), frames.utf8_validate(b'\\xc3\\xa9', 0, 2, 0) == 0, frames.utf8_validate(b'\\xc3', 0, 1, 0) == 0]))", path=str(lib))
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
now = car.up_s_at
HOUR = 3600000
for i in range(7 * 24):  # a week, an hour per tick (each ticks_diff stays small)
    now = ticks_add(now, HOUR)
    car.tick(now)
t = json.loads(car.telemetry(ticks_add(now, 250)))
print(json.dumps([t["uptime_ms"], car.up_s]))
"""


@pytest.mark.slow
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
ws._enqueue = lambda frame, droppable, closing=False: None  # no socket: the close frame goes nowhere
async def shutdown(): pass
ws._shutdown = shutdown

async def main():
    t0 = time.ticks_ms()
    await ws.close()
    return time.ticks_diff(time.ticks_ms(), t0)

print(json.dumps(asyncio.run(main())))
"""


@pytest.mark.slow
def test_close_waits_its_timeout_across_the_ticks_wrap():
    # ticks_ms() + timeout is past the ticks period (and not a small int on a
    # 32-bit board): ticks_diff of it is garbage and close() gave up at once.
    for proxy in (None, board_proxy("esp32")):
        waited = mp(CLOSE_NEAR_WRAP, proxy=proxy)
        assert 280 <= waited < 1000, (proxy, waited)


# --- items 5, 8: pins, PWM and ADC per chip ---------------------------------

CHIPS = ["esp32", "esp32s3", "esp32c3", "esp8266"]
ESP32_PINS = {"left_en": 13, "left_in1": 27, "left_in2": 26, "right_en": 33, "right_in1": 25,
              "right_in2": 32}


def validate(cfg):
    import sys
    sys.path.insert(0, LIB)
    try:
        import hardware
        return hardware.validate(cfg)
    finally:
        sys.path.remove(LIB)


@pytest.mark.parametrize("cfg, key, message", [
    ({"chip": "esp32", "pins": dict(ESP32_PINS, left_en=6)},
     "hardware.pins.left_en", "GPIO 6 is the ESP32's flash"),
    ({"chip": "esp32", "light": 34}, "hardware.light", "GPIO 34 is input-only on the ESP32"),
    ({"chip": "esp32", "pins": dict(ESP32_PINS, right_in2=24)},
     "hardware.pins.right_in2", "GPIO 24 does not exist on the ESP32"),
    ({"chip": "esp32", "battery": {"pin": 4}}, "hardware.battery.pin",
     "GPIO 4 is on the ESP32's ADC2, which reads 0 while WiFi is on: use ADC1 (GPIO 32-39)"),
    ({"chip": "esp32", "buzzer": 1}, "hardware.buzzer",
     "GPIO 1 is the ESP32's UART0, the REPL that deploys use"),
    ({"chip": "esp32s3", "light": 25}, "hardware.light", "GPIO 25 does not exist on the ESP32S3"),
    ({"chip": "esp32s3", "light": 27}, "hardware.light", "GPIO 27 is the ESP32S3's flash"),
    ({"chip": "esp32s3", "battery": {"pin": 35}}, "hardware.battery.pin",
     "GPIO 35 is not an ADC pin on the ESP32S3 (ADC1: GPIO 1-10)"),
    ({"chip": "esp32s3", "light": 19}, "hardware.light", "GPIO 19 is the ESP32S3's USB"),
    ({"chip": "esp32c3", "light": 16}, "hardware.light", "GPIO 16 is the ESP32C3's flash"),
    ({"chip": "esp32c3", "light": 22}, "hardware.light", "GPIO 22 does not exist on the ESP32C3"),
    ({"chip": "esp32c3", "battery": {"pin": 6}}, "hardware.battery.pin",
     "GPIO 6 is not an ADC pin on the ESP32C3 (ADC1: GPIO 0-4)"),
    ({"chip": "esp8266", "pins": {"left_in1": 16, "left_in2": 4, "right_in1": 14, "right_in2": 12}},
     "hardware.pins.left_in1", "GPIO 16 has no PWM on the ESP8266 (PWM: GPIO 0, 2, 4, 5, 12-15)"),
    ({"chip": "esp8266", "light": 7}, "hardware.light", "GPIO 7 is the ESP8266's flash"),
    ({"chip": "esp8266", "light": 17}, "hardware.light", "GPIO 17 does not exist on the ESP8266"),
    ({"chip": "esp8266", "servo": 2}, "hardware.servo",
     "the ESP8266 has one PWM frequency for all pins: a 50 Hz servo would retune the motors"),
    ({"chip": "esp8266", "pwm_freq": 20000}, "hardware.pwm_freq", "the ESP8266's PWM runs at 1-1000 Hz"),
    ({"chip": "esp8266", "battery": {"pin": 3}}, "hardware.battery.pin",
     "the ESP8266 has one ADC input, A0: write 0"),
    ({"chip": "esp99"}, "hardware.chip", "must be one of: auto, esp32, esp32s3, esp32c3, esp8266"),
])
def test_pin_rules_name_the_key_and_the_chip(cfg, key, message):
    assert validate(cfg) == [(key, message)]


@pytest.mark.parametrize("chip", CHIPS)
def test_each_chip_has_default_pins_that_exist(chip):
    assert validate({"chip": chip}) == []
    # ... and the board takes them: the stand-in machine enforces the chip's real rules.
    got = mp("import machine\nmachine.CHIP[0] = %r\nfrom hardware.real import RealHardware\n"
             "from hardware.defaults import merged\n"
             "hw = RealHardware(merged({'chip': %r}))\nhw.set_motors(1, -1)\n"
             "hw.set_light(1)\nhw.set_horn(1)\nd = hw.distance_cm()\nv = hw.battery_v()\n"
             "print(json.dumps([[p is not None for p in (hw._motors, hw._ultrasonic, hw._battery, hw._buzzer)],"
             " hw._light is not None, hw.applied(), v]))"
             % (chip, chip), path=FAKES + ":" + LIB)
    parts, light, applied, volts = got
    assert parts == [True, True, True, True] and applied == [1, -1]
    assert light == (chip != "esp8266")  # the ESP8266 has no pin to spare for it


def test_the_fakes_refuse_what_the_ports_refuse():
    got = mp(r"""
import machine, network
out = []
def refused(chip, make):
    machine.CHIP[0] = chip
    try:
        make()
        out.append(None)
    except Exception as e:
        out.append("%s: %s" % (type(e).__name__, e))
P = machine.Pin
refused("esp32", lambda: P(34, P.OUT))
refused("esp32", lambda: P(6, P.OUT))
refused("esp32", lambda: P(24))
refused("esp32s3", lambda: P(25, P.OUT))
refused("esp32s3", lambda: machine.ADC(P(35)))
refused("esp32c3", lambda: P(14, P.OUT))
refused("esp8266", lambda: machine.PWM(P(16, P.OUT), freq=1000))
refused("esp8266", lambda: P(8))
refused("esp8266", lambda: machine.ADC(2))
refused("esp8266", lambda: machine.WDT(timeout=8000))
refused("esp32", lambda: machine.WDT(timeout=8000))
# ESP8266: one frequency for all PWM pins, clamped to 1-1000 Hz
machine.CHIP[0] = "esp8266"
a = machine.PWM(P(5, P.OUT), freq=1000, duty_u16=0)
b = machine.PWM(P(4, P.OUT), freq=20000, duty_u16=0)
servo = machine.PWM(P(2, P.OUT), freq=50, duty_u16=0)
out.append([a.freq(), b.freq()])
# ESP32: ADC2 reads 0 while WiFi is on, ADC1 does not
machine.CHIP[0] = "esp32"
machine.ADC_VOLTS.update({4: 1.5, 35: 1.5})
adc2, adc1 = machine.ADC(P(4)), machine.ADC(P(35))
network.WLAN(network.STA_IF).active(True)
out.append([adc2.read_uv(), adc1.read_uv()])
print(json.dumps(out))
""", path=FAKES + ":" + LIB)
    assert got == [
        "ValueError: pin can only be input",
        "FlashPinCrash: GPIO 6 is the esp32's flash: the real board stops here",
        "ValueError: invalid pin",
        "ValueError: invalid pin",
        "ValueError: invalid pin",
        "ValueError: invalid pin",
        "ValueError: PWM not supported on pin 16",
        "ValueError: invalid pin",
        "ValueError: ADC(2) doesn't exist",
        "ValueError: ",
        None,
        [50, 50],
        [0, 1500000],
    ]


def test_a_part_the_board_refuses_is_left_out_not_a_crash():
    # ESP32 pins on an ESP32-S3 that skipped the config check (mode real, no chip
    # in the config): the motors and the battery are left out, the rest works.
    got = mp("import machine\nmachine.CHIP[0] = 'esp32s3'\nfrom hardware.real import RealHardware\n"
             "from hardware.defaults import merged\n"
             "hw = RealHardware(merged({'light': 4, 'buzzer': 40, 'battery': {'pin': 35}}))\n"
             "hw.set_motors(1, 1)\nhw.set_light(1)\nhw.stop()\n"
             "print(json.dumps([hw._motors, hw._battery, hw.battery_v(), hw.applied(),"
             " machine.PINS[4].value()]))", path=FAKES + ":" + LIB)
    assert got == [None, None, 0.0, [0.0, 0.0], 1]


def test_car_config_turns_a_part_with_a_bad_pin_off():
    import sys
    sys.path.insert(0, LIB)
    try:
        from car.config import validate as car_validate
        cfg, errors = car_validate({"hardware": {
            "chip": "esp32", "pins": dict(ESP32_PINS, left_en=6), "light": 34, "battery": {"pin": 4}}})
    finally:
        sys.path.remove(LIB)
    assert errors == [
        "hardware.pins.left_en: GPIO 6 is the ESP32's flash; motors off",
        "hardware.battery.pin: GPIO 4 is on the ESP32's ADC2, which reads 0 while WiFi is on: "
        "use ADC1 (GPIO 32-39); battery off",
        "hardware.light: GPIO 34 is input-only on the ESP32; light off"]
    hw = cfg["hardware"]
    assert hw["pins"] is None and hw["light"] is None and hw["battery"] is None
    assert hw["ultrasonic"] == {"trig": 18, "echo": 19, "timeout_us": 25000}


def test_firmware_with_a_bad_motor_pin_boots_without_motors_on_the_esp8266_proxy(tmp_path):
    # mode real on the stand-ins following the ESP8266's rules: the car comes up,
    # names the pin, keeps its motors off, and still serves its page and telemetry.
    proxy = board_proxy("esp8266")
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"limits": {"telemetry_hz": 50}, "hardware": {
        "mode": "real", "chip": "esp8266", "driver": "drv8833",
        "pins": {"left_in1": 16, "left_in2": 4, "right_in1": 14, "right_in2": 12}}}))
    car = MicroPythonProcess("main.py", ["--host", "127.0.0.1", "--config", str(cfg)], micropython=proxy,
                             env={"MICROPYPATH": FAKES + ":.frozen", "FAKE_CHIP": "esp8266"})
    try:
        async def main():
            c = await Client.connect(car)
            await c.drive(1, 0)
            await c.reply()
            await c.hold(1, 0, 0.3)
            t = await c.latest()
            await c.close()
            return c.hello, t

        hello, t = run(main())
        assert hello["simulated"] is False
        assert t["motor"]["left"] > 0 and t["applied"] == {"left": 0, "right": 0}
        assert t["battery_v"] == 0.0 and isinstance(t["distance_cm"], (int, float))
        out = car.output()
        assert ("config error: hardware.pins.left_in1: GPIO 16 has no PWM on the ESP8266 "
                "(PWM: GPIO 0, 2, 4, 5, 12-15); motors off") in out, out
        assert "Traceback" not in out, out
    finally:
        car.stop()


# --- items 6, 13: make image with a v1.28.0-like ESP32 firmware ---------------

# ports/esp32/partitions-4MiBplus.csv at v1.28.0: no vfs partition.
V128_PARTITIONS = [
    ("nvs", 0x01, 0x02, 0x9000, 0x6000),
    ("phy_init", 0x01, 0x01, 0xF000, 0x1000),
    ("factory", 0x00, 0x00, 0x10000, 0x1F0000),
]


def make_image(tmp_path, parts, *args):
    import subprocess
    import sys

    from support.tooling import synthetic_esp32_firmware

    fw, _, _ = synthetic_esp32_firmware(parts)
    fw_path = tmp_path / "ESP32_GENERIC-v1.28.0-like.bin"
    fw_path.write_bytes(fw)
    out = tmp_path / "tether.bin"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "board", "image.py"), "--chip", "esp32",
                        "--firmware", str(fw_path), "--out", str(out)] + list(args),
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    return r, fw, out


@pytest.mark.slow
@pytest.mark.parametrize("flash_size, fs_size", [("4MB", 0x200000), ("8MB", 0x600000)])
def test_image_puts_the_filesystem_where_a_v128_firmware_registers_vfs(tmp_path, flash_size, fs_size):
    # ports/esp32/main.c: no "vfs"/"ffat" partition -> "vfs" from the end of the last
    # partition (factory: 0x10000 + 0x1F0000 = 0x200000) to the end of the flash chip.
    from support.tooling import lfs_listing

    r, fw, out = make_image(tmp_path, V128_PARTITIONS, "--flash-size", flash_size)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "filesystem at 0x200000, %d KiB (after the last partition" % (fs_size // 1024) in r.stdout
    merged = out.read_bytes()
    base = 0x1000
    assert merged[:len(fw)] == fw and len(merged) == 0x200000 + fs_size - base
    listing = lfs_listing(tmp_path, out, 0x200000 - base, fs_size)
    assert "main.py" in listing and "boot.py" in listing and "lib/car/main.mpy" in listing


@pytest.mark.slow
def test_image_after_a_romfs_partition(tmp_path):
    # partitions-4MiB-romfs.csv: factory 0x1D0000 then romfs 0x1E0000 + 0x20000.
    parts = V128_PARTITIONS[:2] + [("factory", 0x00, 0x00, 0x10000, 0x1D0000),
                                   ("romfs", 0x01, 0x8F, 0x1E0000, 0x20000)]
    r, _, _ = make_image(tmp_path, parts)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "filesystem at 0x200000, 2048 KiB" in r.stdout


def test_image_refuses_a_flash_with_no_room_after_the_partitions(tmp_path):
    r, _, _ = make_image(tmp_path, V128_PARTITIONS, "--flash-size", "2MB")
    assert r.returncode == 2
    assert "no room for a filesystem: the partitions (nvs, phy_init, factory) end at 0x200000" in r.stderr


def test_manifest_pins_v128_with_the_esp8266_romfs_variant():
    import sys
    sys.path.insert(0, ROOT)
    from tools.board import fwstore

    manifest = fwstore.load_manifest(os.path.join(ROOT, "firmware", "firmware.json"))
    assert manifest["release"] == "v1.28.0"
    for chip in fwstore.CHIPS:
        entry = fwstore.chip_entry(manifest, chip)
        assert entry["file"].endswith("-v1.28.0.bin") and entry["url"].endswith("/" + entry["file"])
    romfs = fwstore.variant_entry(manifest, "esp8266", "FLASH_2M_ROMFS")
    assert romfs["file"] == "ESP8266_GENERIC-FLASH_2M_ROMFS-20260406-v1.28.0.bin"
    assert romfs["offset_int"] == 0 and romfs["march"] == "xtensa"
    # esp8266_2MiB_ROMFS.ld: FLASH_ROMFS org 0x402b0000 (flash mapped at 0x40200000), len 320K
    assert int(romfs["romfs"]["offset"], 0) == 0x402B0000 - 0x40200000 and romfs["romfs"]["size"] == 320 * 1024
    assert int(romfs["romfs"]["offset"], 0) + romfs["romfs"]["size"] == int(romfs["filesystem"]["offset"], 0)
    with pytest.raises(fwstore.FirmwareError, match="no esp8266 variant 'OTA'"):
        fwstore.variant_entry(manifest, "esp8266", "OTA")


WIFI_START = """
import network
from car import wifi

class EspPlatform:  # wifi.start asks sys.platform; the Unix port's is "linux"
    platform = "esp32"
    print_exception = None

network.CONNECTED[0] = %r
wifi.sys = EspPlatform
wifi.start(%r)
print(json.dumps(network.ACTIVE))
"""


@pytest.mark.slow
@pytest.mark.parametrize("joined", [True, False])
def test_local_url_only_where_mdns_answers(tmp_path, joined):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"wifi": {"networks": [{"ssid": "home", "password": "secret-pw"}],
                                        "timeout_s": 1}}))
    r = run_micropython("import sys, json\nsys.path[:0] = [%r, %r]\n" % (FAKES, LIB)
                        + WIFI_START % (joined, str(cfg)))
    assert r.returncode == 0, r.stdout + r.stderr
    if joined:
        assert "WiFi: connected, IP 192.168.1.50" in r.stdout
        assert "Tether: or http://tether-car.local/" in r.stdout
    else:
        assert "WiFi: access point 'tether-car' (WPA2), IP 192.168.4.1" in r.stdout
        assert "Tether: open http://192.168.4.1/" in r.stdout
        assert ".local" not in r.stdout, r.stdout


# --- item 11: make deploy gets in while boot.py joins WiFi --------------------

SLOW_NETWORK = '''# Test stand-in: a station that never connects, so boot.py's WiFi join takes
# wifi.timeout_s per configured network, as with unreachable networks on a board.
''' + open(os.path.join(FAKES, "network.py")).read().replace("CONNECTED = [True]", "CONNECTED = [False]")


@pytest.mark.slow
def test_deploy_gets_in_while_boot_py_joins_unreachable_networks(tmp_path):
    import subprocess
    import sys
    import time

    from support.processes import free_port
    from support.tooling import VirtualBoard

    http_port = free_port()
    board = VirtualBoard(tmp_path, main_args="--port %d --host 127.0.0.1" % http_port)
    try:
        config = tmp_path / "config.json"
        # Two unreachable networks, 8 s each: 16 s of boot.py on every soft reset.
        config.write_text(json.dumps({"wifi": {"timeout_s": 8, "networks": [
            {"ssid": "gone-1", "password": "password1"}, {"ssid": "gone-2", "password": "password2"}]}}))
        deploy = [sys.executable, os.path.join(ROOT, "tools", "board", "deploy.py"), "--port", board.tty,
                  "--config", str(config)]
        r = subprocess.run(deploy + ["--no-reset"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        with open(os.path.join(board.root, "network.py"), "w") as f:
            f.write(SLOW_NETWORK)  # from now on boot.py has WiFi to join
        # Boot the board: boot.py starts its 16 s of joining (not waited for: the app starts after).
        r = subprocess.run(deploy + ["--no-wait"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        deadline = time.monotonic() + 10
        while "WiFi: joining 'gone-1'" not in board.output():
            assert time.monotonic() < deadline, board.output()[-2000:]
            time.sleep(0.1)
        # A deploy now gets in at once: Ctrl-C stops boot.py, no soft reset runs it again.
        started = time.monotonic()
        r = subprocess.run(deploy + ["--no-reset", "--full"], capture_output=True, text=True, timeout=120)
        took = time.monotonic() - started
        assert r.returncode == 0, r.stdout + r.stderr + board.output()[-2000:]
        assert "copied" in r.stdout and took < 15, (took, r.stdout)
        assert "KeyboardInterrupt" in board.output()
    finally:
        board.stop()


def test_deploy_keeps_an_esp8266_watchdog_fed():
    # The deploy re-arms the app's watchdog to feed it; on the ESP8266 WDT(timeout=8000)
    # raises ValueError (ports/esp8266/machine_wdt.c), which left it unfed.
    import sys
    sys.path.insert(0, ROOT)
    from tools.board import deploy

    got = mp("import machine\nmachine.CHIP[0] = 'esp8266'\n" + deploy.WATCHDOG_SETUP
             + "\n_tw.feed()\nprint(json.dumps([_tw.timeout_ms, _tw.fed]))", path=FAKES + ":" + LIB)
    assert got == [5000, 1]


class RecordingTransport:
    def __init__(self):
        self.sent = []

    def exec_raw_no_follow(self, code):
        self.sent.append(code)


def test_deploy_ends_with_a_hard_reset_on_the_boards():
    # A soft reset leaves the app's watchdog armed (neither ports/esp32/main.c nor
    # ports/esp8266/main.c disarms it) while boot.py joins WiFi unfed.
    import sys
    sys.path.insert(0, ROOT)
    from tools.board import deploy

    for platform in ("esp32", "esp8266"):
        t = RecordingTransport()
        assert deploy.restart(t, platform) == "deploy: hard reset (machine.reset) -> boot.py, main.py"
        assert t.sent == ["import machine\nmachine.reset()"]


# --- item 7: TCP_NODELAY with the socket module's constants -------------------

NODELAY = """
import asyncio, socket
from wsserver import connection, server as server_mod

asked = []
class Lwip:  # extmod/modlwip.c's values: IP_PROTO_TCP 6, TCP_NODELAY = TF_NODELAY 0x40
    def __getattr__(self, name):
        asked.append(name)
        return {"IPPROTO_TCP": 6, "TCP_NODELAY": 0x40}[name]
connection.socket = Lwip() if %r else socket  # the stream adapter sets the option
srv = server_mod.Server()

@srv.websocket("/ws")
async def ws_route(ws):
    async for m in ws:
        pass

async def main():
    await srv.start("127.0.0.1", %d)
    r, w = await asyncio.open_connection("127.0.0.1", %d)
    w.write(b"GET /ws HTTP/1.1\\r\\nHost: x\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\nSec-WebSocket-Version: 13\\r\\n\\r\\n")
    await w.drain()
    return await r.readline()
line = asyncio.run(main())
print(json.dumps([asked, line.decode().strip(), hasattr(socket, "TCP_NODELAY")]))
"""


@pytest.mark.parametrize("lwip", [True, False])
def test_tcp_nodelay_uses_the_socket_modules_constants(lwip):
    # The handshake asks the socket module for IPPROTO_TCP and TCP_NODELAY (the
    # ESP8266's lwIP has TCP_NODELAY = 0x40; option 1 there is "not implemented").
    from support.processes import free_port

    port = free_port()
    asked, status, unix_has_it = mp(NODELAY % (lwip, port, port))
    assert status == "HTTP/1.1 101 Switching Protocols"
    assert asked == (["IPPROTO_TCP", "TCP_NODELAY"] if lwip else [])
    assert unix_has_it is False  # so the Unix port takes 6 and 1


# --- item 12: a short echo timeout on the ESP8266 -----------------------------

@pytest.mark.parametrize("chip, expected", [("esp8266", 12000), ("esp32", 25000)])
def test_echo_timeout_is_short_on_the_esp8266(chip, expected):
    # extmod/machine_pulse.c busy-waits up to the timeout twice; the ESP8266's hook
    # (esp_mphal.h) feeds only the soft WDT, so WiFi waits meanwhile.
    got = mp("import machine\nmachine.CHIP[0] = %r\nfrom hardware.real import RealHardware\n"
             "from hardware.defaults import merged\n"
             "hw = RealHardware(merged({'chip': %r, 'ultrasonic': {'timeout_us': 25000}}))\n"
             "hw.distance_cm()\nprint(json.dumps([p['timeout'] for p in machine.PULSES]))"
             % (chip, chip), path=FAKES + ":" + LIB)
    assert got == [expected]


# --- must show: the ROMFS layout on the esp8266 proxy --------------------------

@pytest.mark.slow
@pytest.mark.parametrize("heap_kb", [52])
def test_firmware_drives_from_a_romfs_image_on_the_esp8266_proxy(tmp_path, heap_kb):
    # lib/ as x86 .mpy in a ROMFS image executed in place (tools/measure/heap_report.py's
    # layout: main.py, config.json, web/ on the filesystem), the ESP8266's
    # language features off. The heap is the budget plus the image's own block
    # (the Unix port has no flash to map it from).
    import subprocess
    import sys

    sys.path.insert(0, ROOT)
    from tools.measure import heap_report

    proxy = board_proxy("esp8266")
    build = tmp_path / "board-x86"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "board", "stage.py"), "--march", "x86",
                        "--out", str(build)], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    image = heap_report.romfs_tree(str(build), str(run_dir))
    write_config(run_dir)  # the simulated car, fast telemetry
    car = MicroPythonProcess("romfs_boot.py", cwd=str(run_dir), micropython=proxy,
                             heapsize=heap_kb * 1024 + image + 4096)
    try:
        async def main():
            c = await Client.connect(car)
            start = (await c.latest())["pose"]
            await c.drive(0.6, 0)
            await c.reply()
            await c.hold(0.6, 0, 0.6)
            moved = await c.latest()
            await c.close()
            return start, moved

        start, moved = run(main())
        assert moved["pose"]["x"] > start["x"] + 0.05, (start, moved)
        out = car.output()
        assert out.startswith("ROMFS %d " % image) and "Traceback" not in out, out
    finally:
        car.stop()
