"""config.json checked once, by the tools: tools/board/stage.py (make deploy, make
image) runs the board's own checker (lib/car/config.py) under CPython, refuses a
bad config with its field-naming errors, and writes config.json.checked (the
sha256 of config.json's bytes, the board it is for and car.VERSION, then the
checked config).
A board whose config.json still matches boots without loading the checker
(car.load_config); one whose config.json was edited on it, or that is another
board, checks it itself, with the same errors."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from support import ROOT
from support.micropython import MicroPythonProcess, board_proxy, run_micropython
from support.processes import free_port
from support.tooling import VirtualBoard

sys.path.insert(0, ROOT)
from tools.board import stage  # noqa: E402

with open(os.path.join(ROOT, "lib", "car", "__init__.py")) as f:
    VERSION = re.search(r'^VERSION = "([^"]*)"', f.read(), re.M).group(1)

BAD = {"limits": {"deadman_ms": 10}, "wifi": {"hostname": "my car"}}
BAD_ERRORS = ["wifi.hostname: must contain only letters, digits and '-'",
              "limits.deadman_ms: must be an int between 50 and 5000"]

# What the board does with the staged tree: car.load_config with the checker
# replaced by a stand-in that fails when it is used (so a config read from its
# stamp never loaded it), the modules it loaded, and the config it boots with;
# then the real checker's result for the same file.
PROBE = """
import sys, json
sys.path.insert(0, "lib")
class Checker:
    def load(path):
        raise RuntimeError("the checker was loaded")
sys.modules["car.config"] = Checker
from car import load_config
try:
    found = load_config("config.json")
except RuntimeError:
    found = None
sys.modules.pop("car.config", None)  # load_config drops it itself once used
loaded = sorted(m for m in sys.modules if m.startswith("car") or m.startswith("hardware"))
import car.config
print(json.dumps({"stamp": found is not None, "loaded": loaded, "config": found[0] if found else None,
                  "errors": found[1] if found else None, "checked": car.config.load("config.json")}))
"""


def staged(tmp_path, config, march="x64", chip=None, name="board"):
    path = tmp_path / (name + ".json")
    path.write_text(json.dumps(config) if not isinstance(config, str) else config)
    cmd = [sys.executable, os.path.join(ROOT, "tools", "board", "stage.py"), "--march", march,
           "--out", str(tmp_path / name), "--config", str(path), "--no-romfs"]  # lib/ as .mpy files
    if chip:
        cmd += ["--chip", chip]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120), tmp_path / name


def probe(tree, micropython=None):
    assert (tree / "lib" / "car" / "__init__.mpy").exists()  # the staged modules, first on sys.path
    r = run_micropython(PROBE, cwd=str(tree), micropython=micropython)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def example():
    with open(os.path.join(ROOT, "config.example.json")) as f:
        return json.load(f)


def test_stage_refuses_a_bad_config_with_the_boards_field_naming_errors(tmp_path):
    r, tree = staged(tmp_path, BAD)
    assert r.returncode == 2, r.stdout + r.stderr
    for error in BAD_ERRORS:
        assert "  " + error + "\n" in r.stderr, r.stderr
    assert "config.json: 2 errors" in r.stderr
    assert not (tree / stage.CHECKED).exists()
    # Not valid JSON: the same words as the board's (car.config.load's salvage).
    r, _ = staged(tmp_path, '{"limits": {"deadman_ms": 500},', name="broken")
    assert r.returncode == 2 and "config.json: not valid JSON" in r.stderr, r.stderr


@pytest.mark.slow
def test_deploy_refuses_a_bad_config_before_it_copies_anything(tmp_path):
    # The virtual board (the Unix port behind a pty, as `make vboard`): nothing on it yet.
    board = VirtualBoard(tmp_path, main_args="--port %d --host 127.0.0.1" % free_port())
    try:
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(BAD))
        r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "board", "deploy.py"), "--port", board.tty,
                            "--config", str(bad)], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert r.returncode == 2, r.stdout + r.stderr
        assert "  " + BAD_ERRORS[1] + "\n" in r.stderr, r.stderr
        assert " copy " not in r.stdout, r.stdout
        left = [os.path.relpath(os.path.join(d, n), board.root) for d, _, names in os.walk(board.root) for n in names]
        assert "config.json" not in left and not [p for p in left if p.startswith("lib")], left
    finally:
        board.stop()


def test_stage_checks_pins_by_the_rules_of_the_chip_it_stages_for(tmp_path):
    # ESP8266 rules (lib/hardware/pins.py) on the computer: GPIO 16 has no PWM.
    cfg = {"hardware": {"driver": "drv8833", "pins": {"left_in1": 16, "left_in2": 17, "right_in1": 25,
                                                      "right_in2": 26}}}
    r, _ = staged(tmp_path, cfg, march="xtensa", chip="esp8266")
    assert r.returncode == 2
    assert "hardware.pins.left_in1: GPIO 16 has no PWM on the ESP8266" in r.stderr, r.stderr
    # The same config for an ESP32 passes, and its stamp names the board it is for.
    r, tree = staged(tmp_path, cfg, march="xtensawin", chip="esp32", name="esp32")
    assert r.returncode == 0, r.stdout + r.stderr
    digest, board, version = (tree / stage.CHECKED).read_text().split("\n")[0].split(" ")
    assert board == "esp32" and version == VERSION
    assert digest == hashlib.sha256((tree / "config.json").read_bytes()).hexdigest()


def test_an_unchanged_config_boots_without_the_checker_and_as_the_checker_gives_it(tmp_path):
    cfg = example()
    cfg["limits"]["max_speed"] = 0.5
    cfg["access"]["origins"] = ["http://Phone.local:8080"]  # the checker lowers it
    r, tree = staged(tmp_path, cfg)
    assert r.returncode == 0, r.stdout + r.stderr
    seen = probe(tree)
    assert seen["stamp"] is True and seen["errors"] == []
    assert "hardware.config" not in seen["loaded"]
    config, errors = seen["checked"]
    assert errors == []
    assert seen["config"] == config  # what the board's own checker makes of the same file
    assert config["access"]["origins"] == ["http://phone.local:8080"] and config["limits"]["max_speed"] == 0.5


# The hardware built as car.boot builds it, from the stamped config, with
# hardware.defaults replaced by a stand-in that fails when it is used: the
# checked section has every key already, so the defaults table (its names
# interned for good) is never loaded at boot.
NO_DEFAULTS = """
import sys, json
sys.path.insert(0, "lib")
class Defaults:
    def __getattr__(self, name):
        raise RuntimeError("hardware.defaults was used: " + name)
sys.modules["hardware.defaults"] = Defaults()
import hardware
from car import load_config
cfg, errors = load_config("config.json")
hw = hardware.create(cfg["hardware"], checked=True)
print(json.dumps({"errors": errors, "simulated": hw.simulated,
                  "loaded": sorted(m for m in sys.modules if m.startswith("hardware"))}))
"""


def test_a_car_from_its_stamp_builds_its_hardware_without_the_defaults_table(tmp_path):
    cfg = example()
    cfg["hardware"]["mode"] = "auto"  # the chip asked (hardware.chip), not the table
    r, tree = staged(tmp_path, cfg)
    assert r.returncode == 0, r.stdout + r.stderr
    r = run_micropython(NO_DEFAULTS, cwd=str(tree))
    assert r.returncode == 0, r.stdout + r.stderr
    seen = json.loads(r.stdout)
    assert seen["errors"] == [] and seen["simulated"] is True  # auto on a computer: the sim
    assert "hardware.chip" not in seen["loaded"]  # asked, then dropped


def test_a_link_cars_config_stages_and_boots_from_its_stamp(tmp_path):
    # A fleet link and an uplink: the checker's link-car path (its collection
    # threshold, a MicroPython call) runs under CPython when the tools check it.
    cfg = example()
    cfg["fleet"] = {"url": "mqtt://127.0.0.1:1883", "telemetry_hz": 1}
    cfg["uplink"] = {"url": "ws://127.0.0.1:8765/car"}
    r, tree = staged(tmp_path, cfg)
    assert r.returncode == 0, r.stdout + r.stderr
    seen = probe(tree)
    assert seen["stamp"] is True and seen["errors"] == []
    assert seen["config"] == seen["checked"][0]
    assert seen["config"]["fleet"]["telemetry_hz"] == 1
    assert seen["config"]["uplink"]["url"] == "ws://127.0.0.1:8765/car"


def test_a_config_edited_on_the_board_is_checked_there_with_the_same_errors(tmp_path):
    r, tree = staged(tmp_path, example())
    assert r.returncode == 0, r.stdout + r.stderr
    edited = example()
    edited["limits"]["deadman_ms"] = 10
    edited["wifi"]["hostname"] = "my car"
    (tree / "config.json").write_text(json.dumps(edited))  # as mpremote would put it
    seen = probe(tree)
    assert seen["stamp"] is False and seen["config"] is None
    config, errors = seen["checked"]
    assert errors == BAD_ERRORS
    assert config["limits"]["deadman_ms"] == 500  # the default in its place


def test_a_stamp_for_another_board_or_app_version_is_not_taken(tmp_path):
    # Staged for an ESP32 (xtensawin): the Unix port (on_board() None) checks it itself.
    r, tree = staged(tmp_path, example())
    r, other = staged(tmp_path, example(), march="xtensawin", chip="esp32", name="esp32")
    assert r.returncode == 0, r.stdout + r.stderr
    shutil.copy(other / stage.CHECKED, tree / stage.CHECKED)
    assert probe(tree)["stamp"] is False
    # The same config and board, another app (an update over the air brings its own checker).
    r, tree = staged(tmp_path, example(), name="again")
    first, rest = (tree / stage.CHECKED).read_text().split("\n", 1)
    assert probe(tree)["stamp"] is True
    (tree / stage.CHECKED).write_text(first.rsplit(" ", 1)[0] + " 0.0.9\n" + rest)
    assert probe(tree)["stamp"] is False
    (tree / stage.CHECKED).write_text("damaged")
    assert probe(tree)["stamp"] is False


@pytest.mark.parametrize("chip", ["esp32", "esp8266"])
def test_the_proxy_boots_the_staged_tree_from_its_stamp_and_reports_an_edited_one(tmp_path, chip):
    proxy = board_proxy(chip)
    r, tree = staged(tmp_path, example(), march="x86", chip=chip, name=chip)
    assert r.returncode == 0, r.stdout + r.stderr
    seen = probe(tree, proxy)
    assert seen["stamp"] is True and seen["config"] == seen["checked"][0]
    if chip == "esp8266":
        assert seen["config"]["server"]["max_clients"] == 2  # the chip's cap, checked as capped
    edited = json.loads((tree / "config.json").read_text())
    edited["limits"]["deadman_ms"] = 10
    (tree / "config.json").write_text(json.dumps(edited))
    car = MicroPythonProcess("main.py", ["--host", "127.0.0.1"], cwd=str(tree), micropython=proxy)
    try:
        out = car.output()
        assert "config error: limits.deadman_ms: must be an int between 50 and 5000" in out, out
    finally:
        car.stop()
