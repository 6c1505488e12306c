# What each chip's GPIOs can do, for the config check: loaded by
# hardware.config only when the chip is known (on a board, or a config that
# names one), and dropped with it. Read from MicroPython v1.28.0:
#   ESP32/S3/C3: ports/esp32/machine_pin.h (which GPIOs the Pin class has),
#     machine_pin.c (GPIO_FIRST_NON_OUTPUT 34 on the ESP32: "pin can only be
#     input"), machine_adc.c (ADC1/ADC2 channels), the generic boards'
#     mpconfigboard.h (MICROPY_HW_ENABLE_UART_REPL: UART0 is the REPL; S3
#     19/20 and C3 18/19 are the native USB, left out of the Pin table then).
#   ESP8266: ports/esp8266/machine_pin.c (GPIO 0-5, 9, 10, 12-16),
#     esppwm.c (PWM only on 0, 2, 4, 5, 12-15, one frequency clamped to
#     1-1000 Hz), machine_adc.c (ADC(0) = A0).
#   Flash: the modules' SPI flash lines (ESP32 6-11, S3 26-32, C3 14-17,
#     ESP8266 6-11); driving one stops the board, though some are in the table.
# Chip names are found by their place in a long string, and the tables are
# const() bytes: names and short strings a module uses are interned for good.
try:
    from micropython import const
except ImportError:  # CPython
    def const(value):
        return value

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
_CHIPS = const(" esp32 esp32s3 esp32c3 esp8266 ")  # the place of " name ":
_AT_ESP32 = const(0)
_AT_ESP32S3 = const(6)
_AT_ESP32C3 = const(14)
_AT_ESP8266 = const(22)
_IN = const(2)  # kinds of use, as hardware.config: 0 out, 1 PWM, 2 in, 3 ADC
_ADC = const(3)


def check(chip, gpio, kind):
    """Why `gpio` cannot serve `kind` on `chip`; None if it can or the chip
    is not one we know."""
    at = _CHIPS.find(" " + chip + " ")
    if at == _AT_ESP8266:
        if kind == _ADC:
            return None if gpio == 0 else "the ESP8266 has one ADC input, A0: write 0"
        table = _ESP8266
    elif at == _AT_ESP32:
        table, adcs = _ESP32, _ESP32_ADC
    elif at == _AT_ESP32S3:
        table, adcs = _ESP32S3, _ESP32S3_ADC
    elif at == _AT_ESP32C3:
        table, adcs = _ESP32C3, _ESP32C3_ADC
    else:
        return None
    name = chip.upper()  # MicroPython's own MCU names: ESP32, ESP32S3, ...
    c = table[gpio] if gpio < len(table) else 45
    if c == 45:  # -
        return "GPIO %d does not exist on the %s" % (gpio, name)
    if c == 102:  # f
        return "GPIO %d is the %s's flash" % (gpio, name)
    if c == 117:  # u
        return "GPIO %d is the %s's UART0, the REPL that deploys use" % (gpio, name)
    if c == 85:  # U
        return "GPIO %d is the %s's USB" % (gpio, name)
    if kind < _IN and c == 105:  # i
        return "GPIO %d is input-only on the %s" % (gpio, name)
    if kind == 1 and c == 110:  # n
        return "GPIO %d has no PWM on the %s (PWM: GPIO 0, 2, 4, 5, 12-15)" % (gpio, name)
    if kind == _ADC:
        a = adcs[gpio] if gpio < len(adcs) else 45
        if a != 49:  # not ADC1 (a contiguous run on each chip)
            span = (gpio, name, adcs.find(b"1"), adcs.rfind(b"1"))
            if a == 50:
                return ("GPIO %d is on the %s's ADC2, which reads 0 while WiFi is on: "
                        "use ADC1 (GPIO %d-%d)" % span)
            return "GPIO %d is not an ADC pin on the %s (ADC1: GPIO %d-%d)" % span
    return None


def extra(chip, c, err):
    """The rules that are not about one pin (c: the merged config)."""
    if _CHIPS.find(" " + chip + " ") == _AT_ESP8266:
        f = c["pwm_freq"]
        if type(f) is int and f > 1000:  # esppwm.c clamps to 1-1000 Hz, silently
            err("pwm_freq", "the ESP8266's PWM runs at 1-1000 Hz")
        if c["servo"] is not None:
            err("servo", "the ESP8266 has one PWM frequency for all pins: a 50 Hz servo "
                "would retune the motors")
