"""Pure car logic (mixing, ramp, guard, control ownership, message checks,
config validation), run under the real MicroPython Unix port."""
import json
import os

import pytest

from support.micropython import ROOT, board_proxy, run_micropython


def mp(code):
    """Run code under MicroPython (lib on the path); returns its last printed
    line parsed as JSON."""
    result = run_micropython("import json\n" + code)
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- drive -----------------------------------------------------------------

@pytest.mark.parametrize("throttle,steer,expected", [
    (1, 0, [1, 1]),
    (0, 1, [1, -1]),        # steer > 0: left wheel forward, right back = turn right
    (0.5, 0.5, [1, 0]),
    (1, 1, [1, 0]),         # normalised: |v| <= 1, ratio kept
    (-1, 0.5, [-0.333, -1]),
    (0, 0, [0, 0]),
])
def test_mix(throttle, steer, expected):
    got = mp("from car.drive import mix\nprint(json.dumps(mix(%r, %r)))" % (throttle, steer))
    assert [round(v, 3) for v in got] == expected


def test_speed_limits_scale_the_command():
    got = mp("""
from car.drive import Drive
d = Drive(max_speed=0.5)
d.command(1, 0)
a = list(d.target)
d.set_speed_limit(0.4)
print(json.dumps([a, list(d.target)]))""")
    assert got[0] == [0.5, 0.5]
    assert [round(v, 3) for v in got[1]] == [0.2, 0.2]


def test_ramp_moves_at_slew_rate_and_stop_is_immediate():
    got = mp("""
from car.drive import Drive
d = Drive(slew=5.0)          # 5 per second -> 0.1 per 20 ms tick
d.command(1, 0)
steps = [round(d.step(20, None)[0], 3) for _ in range(12)]
d.stop()
print(json.dumps([steps, list(d.output), list(d.target)]))""")
    steps, after_stop, command = got
    assert steps == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.0, 1.0]
    assert after_stop == [0, 0] and command == [0, 0]


def test_obstacle_guard_refuses_forward_but_allows_reverse_and_turning():
    got = mp("""
from car.drive import Drive
d = Drive(slew=100, stop_distance_cm=20)
out = {}
for name, t, s in (("forward", 1, 0), ("reverse", -1, 0), ("spin", 0, 1), ("arc", 0.5, 0.5)):
    d.stop(); d.command(t, s)
    out[name] = [round(v, 3) for v in d.step(20, 10.0)]   # 10 cm: blocked
d.stop(); d.command(1, 0)
out["clear"] = d.step(20, 50.0)
out["none"] = d.step(20, None)                           # no reading: no guard
out["wall_again"] = d.step(20, 5.0)                      # moving: stops at once
print(json.dumps(out))""")
    assert got["forward"] == [0, 0]
    assert got["reverse"] == [-1, -1]
    assert got["spin"] == [1, -1]
    assert got["arc"] == [0.5, -0.5]   # forward part dropped, turn kept
    assert got["clear"] == [1, 1] and got["none"] == [1, 1]
    assert got["wall_again"] == [0, 0]


# --- control ---------------------------------------------------------------

def test_one_driver_at_a_time_and_deadman():
    got = mp("""
from car.control import Control
class C:
    def __init__(self, i): self.id = i
a, b = C(1), C(2)
c = Control(deadman_ms=500)
r = [c.claim(a), c.claim(b), c.driver_id()]
c.heartbeat(1000)
r += [c.expired(1499), c.expired(1500)]
c.heartbeat(1400)  # each drive command restarts the deadman timer
r += [c.expired(1899), c.expired(1900)]
r += [c.release(b) is None, c.release(a) is a, c.driver_id(), c.expired(5000), c.claim(b), c.driver_id()]
print(json.dumps(r))""")
    assert got == [True, False, 1, False, True, False, True, True, True, None, False, True, 2]


def test_the_control_tick_reads_the_distance_on_the_first_tick_and_every_third():
    # An HC-SR04 needs >= 60 ms between pings: every 3rd 20 ms tick, starting
    # with the first so the guard has a reading at once.
    got = mp("""
from car.app import Car
from car import load_config

class Hw:
    simulated = False
    reads = []
    def tick(self, now): self.now = now
    def distance_cm(self): self.reads.append(self.now); return 50.0
    def set_motors(self, l, r): pass
    def stop(self): pass

cfg = load_config('/no/such/config.json')[0]
car = Car(cfg, Hw(), server=None)
for now in range(1000, 1200, 20):
    car.tick(now)
print(json.dumps([car.hw.reads, car.distance]))""")
    assert got == [[1000, 1060, 1120, 1180], 50.0]


# --- protocol --------------------------------------------------------------

BAD = [
    ("nope", "bad_json", None),
    ("[1]", "bad_json", None),
    ('{"throttle":1}', "bad_field", "type"),
    ('{"type":"fly"}', "unknown_type", "type"),
    ('{"type":"drive","steer":0}', "bad_field", "throttle"),
    ('{"type":"drive","throttle":0}', "bad_field", "steer"),
    ('{"type":"drive","throttle":2,"steer":0}', "bad_field", "throttle"),
    ('{"type":"drive","throttle":0,"steer":"x"}', "bad_field", "steer"),
    ('{"type":"drive","throttle":true,"steer":0}', "bad_field", "throttle"),
    ('{"type":"drive","throttle":NaN,"steer":0}', "bad_field", "throttle"),
    ('{"type":"drive","throttle":0,"steer":-Infinity}', "bad_field", "steer"),
    ('{"type":"drive","throttle":1e999,"steer":0}', "bad_field", "throttle"),
    ('{"type":"actuator","name":"laser","value":true}', "bad_field", "name"),
    ('{"type":"actuator","name":"light","value":1}', "bad_field", "value"),
    ('{"type":"actuator","name":"pan","value":91}', "bad_field", "value"),
    ('{"type":"speed_limit","value":0.05}', "bad_field", "value"),
    ('{"type":"speed_limit"}', "bad_field", "value"),
    ('{"type":"stop","latch":1}', "bad_field", "latch"),
    ('{"type":"resumed"}', "unknown_type", "type"),
    ('{"type":"ping","id":[1]}', "bad_field", "id"),
    ('{"type":"ping","id":"%s"}' % ("x" * 600), "too_large", None),
]


@pytest.mark.slow
@pytest.mark.parametrize("text,code,field", BAD)
def test_bad_messages_are_rejected_naming_the_field(text, code, field):
    got = mp("from car.protocol import parse\nprint(json.dumps(parse(%r)))" % text)
    msg, err = got
    assert msg is None
    assert err[0] == code and err[1] == field
    if field:
        assert err[2].startswith(field + ":")


@pytest.mark.parametrize("text", [
    '{"type":"drive","throttle":-1,"steer":1}',
    '{"type":"drive","throttle":0.25,"steer":0,"extra":"ignored"}',
    '{"type":"stop"}',
    '{"type":"stop","latch":false}',
    '{"type":"resume"}',
    '{"type":"actuator","name":"horn","value":false}',
    '{"type":"actuator","name":"pan","value":-90}',
    '{"type":"speed_limit","value":0.1}',
    '{"type":"ping","id":7}',
    '{"type":"ping"}',
])
def test_good_messages_parse(text):
    msg, err = mp("from car.protocol import parse\nprint(json.dumps(parse(%r)))" % text)
    assert err is None and msg == json.loads(text)


def test_telemetry_is_valid_json():
    got = mp("""
from car import protocol
print(protocol.telemetry(
    seq=3, uptime_ms=1234, motor=(0.5, -0.25), applied=(0.625, 0.0), distance_cm=None, battery_v=7.9,
    rssi=None, heap_free=1000, heap_alloc=2000, driver=None, stopped_by=4, speed_limit=1.0, light=True,
    horn=False, pose=(1.0, 2.0, -0.5)))""")
    assert got["type"] == "telemetry" and got["seq"] == 3
    assert got["motor"] == {"left": 0.5, "right": -0.25}
    assert got["distance_cm"] is None and got["rssi"] is None and got["driver"] is None
    assert got["stopped_by"] == 4
    assert got["light"] is True and got["horn"] is False
    assert got["pose"] == {"x": 1.0, "y": 2.0, "heading": -0.5}


def test_telemetry_takes_its_fields_by_name_only():
    # Fifteen values, several of one type: a positional call could swap two
    # (light and horn) without an error, so it is refused.
    got = mp("""
from car import protocol
try:
    protocol.telemetry(3, 1234, (0.5, -0.25), (0.625, 0.0), None, 7.9, None, 1000, 2000,
                       None, 4, 1.0, True, False, (1.0, 2.0, -0.5))
    print(json.dumps("accepted"))
except TypeError:
    print(json.dumps("TypeError"))""")
    assert got == "TypeError"


# --- config ----------------------------------------------------------------

def test_config_errors_name_the_key_and_fall_back_to_defaults():
    got = mp("""
from car.config import validate
cfg, errors = validate({
    "limits": {"deadman_ms": 10, "max_speed": 1.5, "telemetry_hz": True, "deadmen_ms": 1},
    "wifi": {"ap": {"password": "short"}, "networks": [{"ssid": "home", "password": "pw"}, {"ssid": ""}]},
    "server": {"max_clients": 0},
    "hardware": {"driver": "nope"},
})
print(json.dumps([cfg, errors]))""")
    cfg, errors = got
    assert "limits.deadman_ms: must be an int between 50 and 5000" in errors
    assert "limits.max_speed: must be a number between 0 and 1" in errors
    assert any(e.startswith("limits.telemetry_hz:") for e in errors)
    assert "limits.deadmen_ms: unknown key (ignored)" in errors
    assert any(e.startswith("wifi.ap.password:") for e in errors)
    assert any(e.startswith("wifi.networks[1].ssid:") for e in errors)
    assert any(e.startswith("server.max_clients:") for e in errors)
    assert any(e.startswith("hardware.driver:") for e in errors)
    assert cfg["limits"]["deadman_ms"] == 500 and cfg["limits"]["max_speed"] == 1.0
    assert cfg["limits"]["telemetry_hz"] == 20 and cfg["server"]["max_clients"] == 4
    assert cfg["wifi"]["ap"]["password"] == "tether-car"
    assert cfg["wifi"]["networks"] == [{"ssid": "home", "password": "pw"}]
    assert cfg["hardware"]["driver"] == "l298n"


def test_open_access_point_only_when_explicit():
    got = mp("""
from car.config import validate
a = validate({"wifi": {"ap": {"password": "", "open": True}}})
b = validate({"wifi": {"ap": {"password": "", "open": "yes"}}})
print(json.dumps([a, b]))""")
    (cfg_a, err_a), (cfg_b, err_b) = got
    assert err_a == [] and cfg_a["wifi"]["ap"]["open"] is True
    assert cfg_b["wifi"]["ap"] == {"ssid": "tether-car", "password": "tether-car", "open": False}
    assert any(e.startswith("wifi.ap.open:") for e in err_b)
    assert any(e.startswith("wifi.ap.password:") for e in err_b)


def test_unreadable_config_file_gives_defaults_and_names_the_file(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    got = mp("from car.config import load\nprint(json.dumps([load(%r)[1], load('/nonexistent.json')[1]]))"
             % str(bad))
    assert got[0][0] == str(bad) + ": not valid JSON, using defaults"
    # Nothing parsed, the WiFi section neither: it says so loudly (the AP password is the default).
    assert got[0][1].startswith("wifi: not read from %s: the access point uses the DEFAULT password 'tether-car'"
                                % bad)
    assert got[1] == ["/nonexistent.json: cannot be read, using defaults"]


# The config checker as it runs on an ESP8266 (sys.platform, as tools/board/stage.py
# sets it to check a config for a board), under CPython.
ON_ESP8266 = """
import json, sys
sys.platform = "esp8266"
sys.path.insert(0, sys.argv[1])
from car.config import load, validate
print(json.dumps([load(sys.argv[2])[0]["hardware"], validate([])[0]["hardware"], validate({})[0]["hardware"]]))
"""


def test_a_board_without_a_usable_config_gets_its_own_chips_pins(tmp_path):
    # No config.json, or one that is not an object: the ESP8266's defaults
    # (pins 0-16), never the ESP32's table (pins 25-33 do not exist there).
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-c", ON_ESP8266, os.path.join(ROOT, "lib"), str(tmp_path / "none.json")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    missing, not_object, empty = json.loads(r.stdout)
    assert empty["driver"] == "drv8833" and max(v for v in empty["pins"].values() if v is not None) <= 16
    assert missing == empty and not_object == empty


def test_invalid_json_keeps_the_sections_that_parse(tmp_path):
    """A typo in limits must not reset the access point to the public default password."""
    bad = tmp_path / "typo.json"
    bad.write_text('{\n  "wifi": {"ap": {"ssid": "my-car", "password": "a-long-secret"}, "hostname": "my-car"},\n'
                   '  "limits": {"max_speed": 0.5, "deadman_ms": 4OO},\n  "server": {"max_clients": 3}\n}\n')
    for micropython in (None, board_proxy("esp8266")):   # the ESP8266 lacks some str methods
        r = run_micropython("import json\nfrom car.config import load\nprint(json.dumps(load(%r)))" % str(bad),
                            micropython=micropython)
        assert r.returncode == 0, r.stderr + r.stdout
        cfg, errors = json.loads(r.stdout.strip().splitlines()[-1])
        assert cfg["wifi"]["ap"]["password"] == "a-long-secret" and cfg["wifi"]["hostname"] == "my-car"
        assert cfg["server"]["max_clients"] == 3 and cfg["limits"]["deadman_ms"] == 500
        assert errors == [str(bad) + ": not valid JSON, kept the sections that parse: wifi, server",
                          str(bad) + ': "limits" (from line 3) is not valid JSON, using its defaults']


def test_shipped_config_is_valid():
    # config.json is made from it on first use (test_tooling checks that copy too)
    got = mp("""
from car.config import load
print(json.dumps([load("config.example.json")[1]]))""")
    assert got == [[]]


def test_example_config_shows_every_key():
    """docs/getting-started.md calls config.example.json complete: every key of the
    defaults (hardware's too) is in it, and nothing else."""
    defaults = mp("from car.config import DEFAULTS\nprint(json.dumps(DEFAULTS))")
    with open(os.path.join(ROOT, "config.example.json")) as f:
        example = json.load(f)

    def keys(tree, prefix=""):
        out = set()
        for k, v in tree.items():
            out.add(prefix + k)
            # pins is a table of the user's own (replaced whole); the rest are sections
            if type(v) is dict and k != "pins":
                out |= keys(v, prefix + k + ".")
        return out

    assert keys(example) == keys(defaults), (keys(defaults) - keys(example), keys(example) - keys(defaults))
