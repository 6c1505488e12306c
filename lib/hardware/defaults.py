# The "hardware" section of config.json: defaults and merging. Kept apart
# from the validator (config.py) so the board only holds this small part.
# Every key is documented in docs/wiring.md.

# Reference build: ESP32 DevKit + L298N (see docs/wiring.md).
DEFAULTS = {
    "mode": "auto",  # auto: simulated twin on the Unix port, real parts on a board
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

# Sections merged key by key with the defaults. "pins" is deliberately NOT
# merged: a pins table replaces the default one whole, so a pin you leave out
# is never driven.
_MERGED = ("ultrasonic", "battery", "sim")


def merged(cfg):
    """Defaults overlaid with cfg (a dict or None). Does not validate."""
    cfg = cfg or {}
    out = {}
    for key in DEFAULTS:
        default = DEFAULTS[key]
        value = cfg.get(key, default)
        if isinstance(value, dict):  # copies: callers may not alter DEFAULTS
            if key in _MERGED and isinstance(default, dict):
                section = dict(default)
                section.update(value)
                value = section
            else:
                value = dict(value)
        out[key] = value
    return out


def on_board():
    """True on an ESP32/ESP8266 (a real `machine` and not the Unix port).
    Here, not in __init__, because only create() asks, once, at boot."""
    import sys

    if sys.platform in ("linux", "darwin", "win32"):
        return False
    try:
        import machine  # noqa: F401
    except ImportError:
        return False
    return True
