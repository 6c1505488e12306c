# Validation of the "hardware" section of config.json. Loaded only while
# hardware.validate() runs (see __init__.py): it is the biggest module here and
# the board needs it once, at boot. Names here are few on purpose: every name
# and short string a module uses is interned for good, even after it is dropped.
try:
    from micropython import const
except ImportError:  # CPython
    def const(value):
        return value

from hardware import is_number
from hardware.chip import on_board
from hardware.defaults import DEFAULTS, merged

_OUT = const(0)  # what a pin is used for (hardware.pins checks it per chip)
_PWM = const(1)
_IN = const(2)
_ADC = const(3)
_CHIPS = const(" auto esp32 esp32s3 esp32c3 esp8266 ")

def validate(cfg, prefix="hardware"):
    """Return a list of (key, message); empty when cfg is usable.

    Keys are dotted paths such as "hardware.pins.left_in1"."""
    # Tables and helpers are locals, lambdas and parameter names that exist
    # already: a module-level or function name is interned for good.
    drivers = ("l298n", "tb6612", "drv8833")
    # Motor pins each driver needs; the others in "pins" are optional or unused.
    required_pins = {
        "l298n": ("left_en", "left_in1", "left_in2", "right_en", "right_in1", "right_in2"),
        "tb6612": ("left_in1", "left_in2", "right_in1", "right_in2"),
        "drv8833": ("left_in1", "left_in2", "right_in1", "right_in2"),
    }
    pin_keys = ("left_en", "left_in1", "left_in2", "right_en", "right_in1", "right_in2", "stby")
    is_int = lambda v: isinstance(v, int) and not isinstance(v, bool)  # noqa: E731
    if not isinstance(cfg, dict):
        return [(prefix, "must be an object")]
    errors = []
    used = {}  # GPIO -> key, to catch one pin wired to two things
    board = on_board()
    chip = board or (cfg.get("chip") if isinstance(cfg, dict) else None)
    rules = None  # the chip's pin rules (hardware.pins); None: range checks only
    if type(chip) is str and chip != "auto":
        from hardware import pins as rules

    def err(key, message):
        errors.append((prefix + "." + key, message))

    def unknown(section, allowed, key):
        for k in section:
            if k not in allowed:
                err(key + k, "unknown key")

    def pin(key, value, optional, kind=_OUT):
        if value is None:
            if not optional:
                err(key, "pin is required")
            return
        if not is_int(value) or not 0 <= value <= 48:
            err(key, "pin must be an int 0-48" + (" or null" if optional else ""))
        elif value in used:
            err(key, "GPIO %d is already used by %s" % (value, used[value]))
        else:
            why = rules and rules.check(chip, value, kind)
            if why:
                err(key, why)
            else:
                used[value] = prefix + "." + key

    def check(key, value, lo, hi, kind=float):  # kind int: an int in range, else a number
        if kind is int:
            if not is_int(value) or not lo <= value <= hi:
                err(key, "must be an int %d-%d" % (lo, hi))
        elif not is_number(value) or not lo <= value <= hi:
            err(key, "must be a number %s-%s" % (lo, hi))

    def choice(key, value, allowed):
        if value not in allowed:
            err(key, "must be one of: " + ", ".join(allowed))

    def section(key, value, optional):
        if value is None and optional:
            return False
        if not isinstance(value, dict):
            err(key, "must be an object" + (" or null" if optional else ""))
            return False
        unknown(value, DEFAULTS[key], key + ".")
        return True

    unknown(cfg, DEFAULTS, "")
    c = merged(cfg)
    choice("mode", c["mode"], ("auto", "real", "sim"))
    given = c["chip"]
    if type(given) is not str or " " in given or _CHIPS.find(" " + given + " ") < 0:
        err("chip", "must be one of: auto, esp32, esp32s3, esp32c3, esp8266")
    elif board and given != board and _CHIPS.find(" " + given + " ") > 0:
        err("chip", "this board is an %s" % board.upper())
    choice("driver", c["driver"], drivers)
    pins = c["pins"]
    if pins is None:
        pass  # no motors (a config whose motor pins were wrong: the car keeps its page)
    elif not isinstance(pins, dict):
        err("pins", "must be an object")
    else:
        unknown(pins, pin_keys, "pins.")
        needed = required_pins.get(c["driver"], ())
        for k in pin_keys:
            if c["driver"] == "drv8833" and k in ("left_en", "right_en"):
                continue  # DRV8833 has no enable input: ignored, never driven
            # PWM: the L298N's enables, both inputs of the two-input drivers.
            pwm = k in needed and (c["driver"] != "l298n" or k == "left_en" or k == "right_en")
            pin("pins." + k, pins.get(k), k not in needed, _PWM if pwm else _OUT)
    check("pwm_freq", c["pwm_freq"], 1, 40000, int)
    check("min_duty", c["min_duty"], 0, 0.95)
    for k in ("invert_left", "invert_right"):
        if not isinstance(c[k], bool):
            err(k, "must be true or false")
    choice("stop_mode", c["stop_mode"], ("coast", "brake"))
    us = c["ultrasonic"]
    if section("ultrasonic", us, True):
        pin("ultrasonic.trig", us["trig"], False)
        pin("ultrasonic.echo", us["echo"], False, _IN)
        check("ultrasonic.timeout_us", us["timeout_us"], 1000, 100000, int)
    bat = c["battery"]
    if section("battery", bat, True):
        # ESP8266 always reads A0 (write 0); it is not a GPIO, so not in `used`.
        if not is_int(bat["pin"]) or not 0 <= bat["pin"] <= 48:
            err("battery.pin", "pin must be an int 0-48")
        elif rules:
            why = rules.check(chip, bat["pin"], _ADC)
            if why:
                err("battery.pin", why)
        check("battery.divider", bat["divider"], 1, 100)
    pin("light", c["light"], True)
    pin("buzzer", c["buzzer"], True, _PWM if c["buzzer_freq"] else _OUT)
    pin("servo", c["servo"], True, _PWM)
    if rules:
        rules.extra(chip, c, err)
    check("buzzer_freq", c["buzzer_freq"], 0, 20000, int)
    sim = c["sim"]
    if section("sim", sim, False):
        # "sim." + key, not "sim.width" etc.: a short string constant is an
        # interned name, which stays in the qstr pool after this module is
        # dropped (docs/memory.md).
        for kind, key, lo, hi in [[int, "seed", 0, 0x7FFFFFFF], [float, "width", 0.5, 100],
                                   [float, "height", 0.5, 100], [float, "max_speed", 0.05, 10],
                                   [float, "accel", 0.1, 100], [float, "wheel_base", 0.05, 2],
                                   [float, "noise_cm", 0, 50]]:
            check("sim." + key, sim[key], lo, hi, kind)
    return errors
