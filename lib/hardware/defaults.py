# The "hardware" section of config.json: defaults and merging. Kept apart
# from the validator (config.py) so the board only holds this small part.
# Every key is documented in docs/wiring.md.

from hardware.chip import on_board

# Reference build: ESP32 DevKit + L298N (see docs/wiring.md). Other chips
# change some of these (merged() below).
DEFAULTS = {
    "mode": "auto",  # auto: simulated twin on the Unix port, real parts on a board
    "chip": "auto",  # auto: the board's own (on_board()); on a computer, no pin rules
    "driver": "l298n",
    "pins": {
        "left_en": 13, "left_in1": 27, "left_in2": 26,
        "right_en": 33, "right_in1": 25, "right_in2": 32,
        "stby": None,
    },
    "pwm_freq": 1000,
    "min_duty": 0.25,
    "invert_left": False,
    "invert_right": False,
    "stop_mode": "coast",
    "ultrasonic": {"trig": 18, "echo": 19, "timeout_us": 25000},
    "battery": {"pin": 35, "divider": 4.03},
    "light": 4,
    "buzzer": 23,
    "buzzer_freq": 2000,
    "servo": None,
    "sim": {
        "seed": 1, "width": 4.0, "height": 3.0, "max_speed": 0.6,
        "accel": 2.0, "wheel_base": 0.15, "noise_cm": 1.0,
    },
}


def merged(cfg):
    """Defaults (the chip's: the board's own, else cfg["chip"]) overlaid with
    cfg (a dict or None). Does not validate."""
    cfg = cfg or {}
    chip = on_board() or cfg.get("chip")
    # Defaults that differ per chip: the ESP32's pins do not exist on the
    # others (docs/wiring.md gives the reasons; hardware.config the rules).
    # Built here, so only the board's own are ever made. The chip is found
    # by its place in a long string (see on_board).
    k = " esp32s3 esp32c3 esp8266 ".find(" " + chip + " ") if type(chip) is str else -1
    own = {}
    if k == 0:  # esp32s3
        own = {
            "pins": {"left_en": 4, "left_in1": 5, "left_in2": 6,
                     "right_en": 7, "right_in1": 15, "right_in2": 16, "stby": None},
            "ultrasonic": {"trig": 17, "echo": 18, "timeout_us": 25000},
            "battery": {"pin": 1, "divider": 4.03},
            "light": 39, "buzzer": 40,
        }
    elif k == 8:  # esp32c3: few free pins: a two-input driver, the DevKit's LED on 8
        own = {
            "driver": "drv8833",
            "pins": {"left_in1": 5, "left_in2": 6, "right_in1": 7, "right_in2": 10, "stby": None},
            "ultrasonic": {"trig": 3, "echo": 1, "timeout_us": 25000},
            "battery": {"pin": 4, "divider": 4.03},
            "light": 8, "buzzer": 0,
        }
    elif k == 16:  # esp8266: PWM on 0, 2, 4, 5, 12-15 only, one frequency; A0 reads 0-1 V
        own = {
            "driver": "drv8833",
            "pins": {"left_in1": 5, "left_in2": 4, "right_in1": 14, "right_in2": 12, "stby": None},
            "ultrasonic": {"trig": 16, "echo": 13, "timeout_us": 12000},  # see real.py
            "battery": {"pin": 0, "divider": 8.8},
            "light": None, "buzzer": 15,
        }
    out = {}
    for key in DEFAULTS:
        default = own.get(key, DEFAULTS[key])
        value = cfg.get(key, default)
        if isinstance(value, dict):  # copies: callers may not alter DEFAULTS
            # Sections merged key by key with the defaults. "pins" is deliberately
            # NOT merged: a pins table replaces the default one whole, so a pin
            # you leave out is never driven. (A tuple here, not a module name:
            # this module is boot-only, and a name would stay interned.)
            if key in ("ultrasonic", "battery", "sim") and isinstance(default, dict):
                section = dict(default)
                section.update(value)
                value = section
            else:
                value = dict(value)
        out[key] = value
    return out
