# Validation of the "hardware" section of config.json. Loaded only while
# hardware.validate() runs (see __init__.py): it is the biggest module here and
# the board needs it once, at boot. Names here are few on purpose: every name
# and short string a module uses is interned for good, even after it is dropped.
try:
    from micropython import const
except ImportError:  # CPython
    def const(value):
        return value

from hardware.defaults import DEFAULTS, chip_of, merged

DRIVERS = ("l298n", "tb6612", "drv8833")

# What each chip's GPIOs can do, read from MicroPython v1.28.0:
#   ESP32/S3/C3: ports/esp32/machine_pin.h (which GPIOs the Pin class has),
#     machine_pin.c (GPIO_FIRST_NON_OUTPUT 34 on the ESP32: "pin can only be
#     input"), machine_adc.c (ADC1/ADC2 channels), the generic boards'
#     mpconfigboard.h (MICROPY_HW_ENABLE_UART_REPL: UART0 is the REPL; S3
#     19/20 and C3 18/19 are the native USB, left out of the Pin table then).
#   ESP8266: ports/esp8266/machine_pin.c (GPIO 0-5, 9, 10, 12-16),
#     esppwm.c (PWM only on 0, 2, 4, 5, 12-15), machine_adc.c (ADC(0) = A0).
#   Flash: the modules' SPI flash lines (ESP32 6-11, S3 26-32, C3 14-17,
#     ESP8266 6-11); driving one stops the board, though some are in the table.
# One byte per GPIO (index = GPIO; past the end = absent):
#   o in/out/PWM  n in/out, no PWM  i input only  f flash  u UART0 (REPL)
#   U native USB  - not on this chip
_ESP32 = const(b"ououooffffffoooooooooooo-ooo----ooiiiiii")
_ESP32S3 = const(b"oooooooooooooooooooUUo----fffffffoooooooooouuoooo")
_ESP32C3 = const(b"ooooooooooooooffffUUuu")
_ESP8266 = const(b"ououooffffffoooon")
# ADC unit per GPIO: 1 ADC1, 2 ADC2 (reads 0 while WiFi is on: the IDF's
# adc_oneshot_read fails then, and ports/esp32/adc.c ignores its status).
_ESP32_ADC = const(b"2-2-2-------2222---------222----11111111")
_ESP32S3_ADC = const(b"-11111111112222222222")
_ESP32C3_ADC = const(b"111112")
_OUT = const(0)  # what a pin is used for
_PWM = const(1)
_IN = const(2)

# Motor pins each driver needs; the others in "pins" are optional or unused.
REQUIRED_PINS = {
    "l298n": ("left_en", "left_in1", "left_in2", "right_en", "right_in1", "right_in2"),
    "tb6612": ("left_in1", "left_in2", "right_in1", "right_in2"),
    "drv8833": ("left_in1", "left_in2", "right_in1", "right_in2"),
}
PIN_KEYS = ("left_en", "left_in1", "left_in2", "right_en", "right_in1", "right_in2", "stby")


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def validate(cfg, prefix="hardware"):
    """Return a list of (key, message); empty when cfg is usable.

    Keys are dotted paths such as "hardware.pins.left_in1"."""
    if not isinstance(cfg, dict):
        return [(prefix, "must be an object")]
    errors = []
    used = {}  # GPIO -> key, to catch one pin wired to two things
    chip = chip_of(cfg)  # the board's, or the one cfg names on a computer
    gpios = adcs = None  # the chip's tables; None: range checks only
    if chip == "esp32":
        gpios, adcs = _ESP32, _ESP32_ADC
    elif chip == "esp32s3":
        gpios, adcs = _ESP32S3, _ESP32S3_ADC
    elif chip == "esp32c3":
        gpios, adcs = _ESP32C3, _ESP32C3_ADC
    elif chip == "esp8266":
        gpios = _ESP8266
    name = chip.upper() if gpios else ""  # MicroPython's own MCU names: ESP32S3, ...

    def err(key, message):
        errors.append((prefix + "." + key, message))

    def unknown(section, allowed, key):
        for k in section:
            if k not in allowed:
                err(key + k, "unknown key")

    def check(value, kind):
        # Why GPIO `value` cannot serve `kind` (_OUT, _PWM, _IN) on this chip.
        c = gpios[value] if value < len(gpios) else 45
        if c == 45:  # -
            return "GPIO %d does not exist on the %s" % (value, name)
        if c == 102:  # f
            return "GPIO %d is the %s's flash" % (value, name)
        if c == 117:  # u
            return "GPIO %d is the %s's UART0, the REPL that deploys use" % (value, name)
        if c == 85:  # U
            return "GPIO %d is the %s's USB" % (value, name)
        if kind != _IN and c == 105:  # i
            return "GPIO %d is input-only on the %s" % (value, name)
        if kind == _PWM and c == 110:  # n
            return "GPIO %d has no PWM on the %s (PWM: GPIO 0, 2, 4, 5, 12-15)" % (value, name)
        return None

    def pin(key, value, optional, kind=_OUT):
        if value is None:
            if not optional:
                err(key, "pin is required")
            return
        if not _is_int(value) or not 0 <= value <= 48:
            err(key, "pin must be an int 0-48" + (" or null" if optional else ""))
        elif value in used:
            err(key, "GPIO %d is already used by %s" % (value, used[value]))
        else:
            why = gpios and check(value, kind)
            if why:
                err(key, why)
            else:
                used[value] = prefix + "." + key

    def number(key, value, lo, hi):
        if not _is_num(value) or not lo <= value <= hi:
            err(key, "must be a number %s-%s" % (lo, hi))

    def integer(key, value, lo, hi):
        if not _is_int(value) or not lo <= value <= hi:
            err(key, "must be an int %d-%d" % (lo, hi))

    def choice(key, value, options):
        if value not in options:
            err(key, "must be one of: " + ", ".join(options))

    def section(key, value, nullable):
        if value is None and nullable:
            return False
        if not isinstance(value, dict):
            err(key, "must be an object" + (" or null" if nullable else ""))
            return False
        unknown(value, DEFAULTS[key], key + ".")
        return True

    unknown(cfg, DEFAULTS, "")
    c = merged(cfg)
    choice("mode", c["mode"], ("auto", "real", "sim"))
    choice("chip", c["chip"], ("auto", "esp32", "esp32s3", "esp32c3", "esp8266"))
    if c["chip"] != "auto" and c["chip"] != chip:  # chip_of gave the board's own
        err("chip", "this board is an %s" % chip.upper())
    choice("driver", c["driver"], DRIVERS)
    pins = c["pins"]
    if pins is None:
        pass  # no motors (a config whose motor pins were wrong: the car keeps its page)
    elif not isinstance(pins, dict):
        err("pins", "must be an object")
    else:
        unknown(pins, PIN_KEYS, "pins.")
        needed = REQUIRED_PINS.get(c["driver"], ())
        for k in PIN_KEYS:
            if c["driver"] == "drv8833" and k in ("left_en", "right_en"):
                continue  # DRV8833 has no enable input: ignored, never driven
            # PWM: the L298N's enables, both inputs of the two-input drivers.
            pwm = k in needed and (c["driver"] != "l298n" or k == "left_en" or k == "right_en")
            pin("pins." + k, pins.get(k), k not in needed, _PWM if pwm else _OUT)
    integer("pwm_freq", c["pwm_freq"], 1, 40000)
    if chip == "esp8266" and _is_int(c["pwm_freq"]) and c["pwm_freq"] > 1000:
        # esppwm.c clamps to 1-1000 Hz, silently
        err("pwm_freq", "the ESP8266's PWM runs at 1-1000 Hz")
    number("min_duty", c["min_duty"], 0, 0.95)
    for k in ("invert_left", "invert_right"):
        if not isinstance(c[k], bool):
            err(k, "must be true or false")
    choice("stop_mode", c["stop_mode"], ("coast", "brake"))
    us = c["ultrasonic"]
    if section("ultrasonic", us, True):
        pin("ultrasonic.trig", us["trig"], False)
        pin("ultrasonic.echo", us["echo"], False, _IN)
        integer("ultrasonic.timeout_us", us["timeout_us"], 1000, 100000)
    bat = c["battery"]
    if section("battery", bat, True):
        # ESP8266 always reads A0 (write 0); it is not a GPIO, so not in `used`.
        if not _is_int(bat["pin"]) or not 0 <= bat["pin"] <= 48:
            err("battery.pin", "pin must be an int 0-48")
        elif chip == "esp8266":
            if bat["pin"]:
                err("battery.pin", "the ESP8266 has one ADC input, A0: write 0")
        elif gpios:
            g = bat["pin"]
            a = adcs[g] if g < len(adcs) else 45
            why = check(g, _IN)
            if not why and a != 49:  # not ADC1 (a contiguous run on each chip)
                span = (g, name, adcs.find(b"1"), adcs.rfind(b"1"))
                if a == 50:
                    why = ("GPIO %d is on the %s's ADC2, which reads 0 while WiFi is on: "
                           "use ADC1 (GPIO %d-%d)" % span)
                else:
                    why = "GPIO %d is not an ADC pin on the %s (ADC1: GPIO %d-%d)" % span
            if why:
                err("battery.pin", why)
        number("battery.divider", bat["divider"], 1, 100)
    pin("light", c["light"], True)
    pin("buzzer", c["buzzer"], True, _PWM if c["buzzer_freq"] else _OUT)
    pin("servo", c["servo"], True, _PWM)
    if chip == "esp8266" and c["servo"] is not None:
        # One PWM frequency for every pin (ports/esp8266/esppwm.c): a 50 Hz
        # servo would retune the motors.
        err("servo", "the ESP8266 has one PWM frequency for all pins: a 50 Hz servo "
            "would retune the motors")
    integer("buzzer_freq", c["buzzer_freq"], 0, 20000)
    sim = c["sim"]
    if section("sim", sim, False):
        integer("sim.seed", sim["seed"], 0, 0x7FFFFFFF)
        number("sim.width", sim["width"], 0.5, 100)
        number("sim.height", sim["height"], 0.5, 100)
        number("sim.max_speed", sim["max_speed"], 0.05, 10)
        number("sim.accel", sim["accel"], 0.1, 100)
        number("sim.wheel_base", sim["wheel_base"], 0.05, 2)
        number("sim.noise_cm", sim["noise_cm"], 0, 50)
    return errors
