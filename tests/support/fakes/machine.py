# Stand-in for the ESP `machine` module, for testing lib/hardware/real.py on
# the Unix port. It records everything written (pin numbers, modes, values,
# PWM frequency and duty, ADC set-up) so a test can see a wrong pin or a
# reversed motor. Only for tests: prepend tests/support/fakes to MICROPYPATH.
#
# Test knobs: PULSE_US[0] (what time_pulse_us returns), ADC_VOLTS (volts at an
# ADC input, keyed by GPIO or 0 for the ESP8266 A0), and swapping the API
# generation: machine.PWM = machine.OldPWM, machine.ADC = machine.ADC8266 ...
#
# CHIP[0] picks whose rules every constructor enforces, as MicroPython
# v1.28.0 does on that chip (the source of each rule is cited where it is
# checked): which GPIOs exist, input-only and flash pins, where PWM works and
# at which frequencies, which pins have an ADC, ADC2 reading 0 with WiFi on,
# the WDT's arguments. Set it in code, or start with FAKE_CHIP=esp8266 etc.
# A flash pin raises FlashPinCrash: the real board does not raise, it hangs
# or resets when its flash lines are driven, so any test that gets there fails.
import os

PINS = {}  # GPIO -> Pin (latest object for that GPIO)
PWMS = {}  # GPIO -> PWM
ADCS = []  # every ADC made
TOUCHED = []  # every GPIO number any constructor received, in order
PULSES = []  # one dict per time_pulse_us call
PULSE_US = [1000]
ADC_VOLTS = {}
CHIP = [os.getenv("FAKE_CHIP") or "esp32"]  # esp32, esp32s3, esp32c3 or esp8266


def _span(a, b):
    return set(range(a, b + 1))


# ports/esp32/machine_pin.h (generic boards: no SPIRAM on the ESP32, USB CDC on
# the S3, USB Serial/JTAG on the C3) and ports/esp8266/machine_pin.c pyb_pin_obj[].
GPIOS = {
    "esp32": _span(0, 23) | _span(25, 27) | _span(32, 39),
    "esp32s3": _span(0, 18) | {21, 26} | _span(33, 48),
    "esp32c3": _span(0, 13) | {20, 21},
    "esp8266": _span(0, 5) | {9, 10} | _span(12, 16),
}
# Wired to the module's SPI flash although the Pin table has them.
FLASH = {"esp32": _span(6, 11), "esp32s3": {26}, "esp32c3": set(), "esp8266": {9, 10}}
# ports/esp32/machine_adc.c madc_obj[]: GPIO -> ADC unit
ADC_UNIT = {
    "esp32": dict([(g, 1) for g in _span(32, 39)] + [(g, 2) for g in (0, 2, 4, 12, 13, 14, 15, 25, 26, 27)]),
    "esp32s3": dict([(g, 1) for g in _span(1, 10)] + [(g, 2) for g in _span(11, 20)]),
    "esp32c3": dict([(g, 1) for g in _span(0, 4)] + [(5, 2)]),
}
PWM_8266 = {0, 2, 4, 5, 12, 13, 14, 15}  # ports/esp8266/esppwm.c pin_num[]
PWM_8266_FREQ = [500]  # one frequency for every channel (esppwm.c pwm_init: 500 Hz)


class FlashPinCrash(Exception):
    pass


def _wifi_on():
    try:
        import network
    except ImportError:
        return False
    return any(network.ACTIVE.values())


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1

    def __init__(self, id, mode=-1, pull=-1, value=None):
        if not isinstance(id, int) or isinstance(id, bool):
            raise TypeError("fake Pin wants an int GPIO, got %r" % (id,))
        chip = CHIP[0]
        if id not in GPIOS[chip]:  # machine_pin.c: mp_obj_get_pin_obj
            raise ValueError("invalid pin")
        if id in FLASH[chip]:
            raise FlashPinCrash("GPIO %d is the %s's flash: the real board stops here" % (id, chip))
        if chip == "esp32" and id >= 34 and mode in (Pin.OUT, Pin.OPEN_DRAIN):
            raise ValueError("pin can only be input")  # esp32 machine_pin.c GPIO_FIRST_NON_OUTPUT
        if chip == "esp8266" and id == 16 and pull not in (-1, None):
            raise ValueError("Pin(16) doesn't support pull")  # esp8266 machine_pin.c
        TOUCHED.append(id)
        self.id = id
        self.mode = mode
        self.pull = pull
        self._value = 0 if value is None else (1 if value else 0)
        self.history = [] if value is None else [self._value]
        PINS[id] = self

    def value(self, v=None):
        if v is None:
            return self._value
        self._value = 1 if v else 0
        self.history.append(self._value)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)


class _PWMBase:
    def __init__(self, pin, freq=None, duty=None, duty_u16=None):
        if not isinstance(pin, Pin):
            raise TypeError("PWM wants a Pin")
        if CHIP[0] == "esp8266" and pin.id not in PWM_8266:
            raise ValueError("PWM not supported on pin %d" % pin.id)  # esp8266 machine_pwm.c
        self.id = pin.id
        self.pin = pin
        self._freq = None
        if freq is not None:
            self.freq(freq)
        self.frac = 0.5  # real firmware may start at 50% if not told otherwise
        self.raw = None
        if duty_u16 is not None:
            self.duty_u16(duty_u16)
        elif duty is not None:
            self.duty(duty)
        self.initial = self.frac
        PWMS[pin.id] = self

    def freq(self, f=None):
        if CHIP[0] == "esp8266":
            # esppwm.c pwm_set_freq: one frequency for all pins, clamped to
            # 1..PWM_FREQ_MAX (1000), silently
            if f is None:
                return PWM_8266_FREQ[0]
            PWM_8266_FREQ[0] = max(1, min(1000, f))
            return
        if f is None:
            return self._freq
        if not 1 <= f <= 40000000:  # esp32 machine_pwm.c (40 MHz on the 80 MHz APB clock)
            raise ValueError("frequency must be from 1Hz to 40MHz")
        self._freq = f

    def duty(self, d=None):
        if d is None:
            return int(self.frac * 1023 + 0.5)
        if not 0 <= d <= 1023:
            raise ValueError("duty out of range: %r" % d)
        self.raw = d
        self.frac = d / 1023

    def deinit(self):
        self.frac = 0


class PWM(_PWMBase):
    """Current API: duty_u16 (0-65535) and the duty_u16= keyword."""

    def duty_u16(self, d=None):
        if d is None:
            return int(self.frac * 65535 + 0.5)
        if not 0 <= d <= 65535:
            raise ValueError("duty_u16 out of range: %r" % d)
        self.raw = d
        self.frac = d / 65535


class OldPWM(_PWMBase):
    """Older ESP8266 firmware: duty() 0-1023 only, no duty_u16 keyword."""

    def __init__(self, pin, freq=None, duty=None, **kw):
        if kw:
            raise TypeError("unexpected keyword argument")
        _PWMBase.__init__(self, pin, freq, duty)


class _ADCBase:
    FULL = 3.3
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3

    def __init__(self, src, atten=None):
        chip = CHIP[0]
        if chip == "esp8266":
            if src not in (0, 1):  # esp8266 machine_adc.c: 0 = A0, 1 = VDD
                raise ValueError("ADC(%s) doesn't exist" % (src,))
        elif not isinstance(src, Pin) or src.id not in ADC_UNIT[chip]:
            raise ValueError("invalid pin")  # esp32 machine_adc.c madc_search_helper
        self.src = src.id if isinstance(src, Pin) else src
        self._atten = atten
        ADCS.append(self)

    def atten(self, a):
        self._atten = a

    def _volts(self):
        if CHIP[0] != "esp8266" and ADC_UNIT[CHIP[0]][self.src] == 2 and _wifi_on():
            # The IDF's adc_oneshot_read fails on ADC2 while WiFi is on and
            # ports/esp32/adc.c returns its untouched 0.
            return 0.0
        return min(ADC_VOLTS.get(self.src, 0.0), self.FULL)


class ADC(_ADCBase):
    """ESP32 with calibrated read_uv()."""

    def read_uv(self):
        return int(self._volts() * 1e6)

    def read_u16(self):
        return int(self._volts() / self.FULL * 65535)


class ADCNoUV(_ADCBase):
    """ESP32 firmware before read_uv(): read_u16 over ~3.3 V."""

    def read_u16(self):
        return int(self._volts() / self.FULL * 65535)


class ADC8266(_ADCBase):
    """ESP8266 ADC(0): 0-1.0 V, read_u16() and read()."""
    FULL = 1.0

    def read_u16(self):
        return int(self._volts() / self.FULL * 65535)

    def read(self):
        return int(self._volts() / self.FULL * 1023)


class ADC8266Old(_ADCBase):
    """Old ESP8266 firmware: read() 0-1023 only."""
    FULL = 1.0

    def read(self):
        return int(self._volts() / self.FULL * 1023)


def time_pulse_us(pin, level, timeout_us=1000000):
    trig = [p for p in PINS.values() if p.mode == Pin.OUT and p.history]
    PULSES.append({"pin": pin.id, "mode": pin.mode, "level": level, "timeout": timeout_us,
                   "outputs": {str(p.id): p.history[-3:] for p in trig}})
    return PULSE_US[0]


def state():
    """Everything recorded, as plain JSON-able data."""
    return {
        "pins": {str(i): {"mode": p.mode, "value": p._value} for i, p in PINS.items()},
        "pwm": {str(i): {"freq": p.freq(), "frac": p.frac, "raw": p.raw, "initial": p.initial}
                for i, p in PWMS.items()},
        "adc": [{"src": a.src, "atten": a._atten} for a in ADCS],
        "touched": sorted(set(TOUCHED)),
        "pwm_freq_8266": PWM_8266_FREQ[0],
        "pulses": PULSES,
    }


class WDT:
    """machine.WDT(id=0, timeout=5000) (extmod/machine_wdt.c: 5000 is the
    keyword's default)."""

    def __init__(self, id=0, timeout=5000):
        if CHIP[0] == "esp8266" and timeout != 5000:
            # ports/esp8266/machine_wdt.c: "The timeout on ESP8266 is fixed"
            raise ValueError()
        if id != 0:
            raise ValueError()
        if timeout <= 0:  # ports/esp32/machine_wdt.c
            raise ValueError("WDT timeout too short")
        self.timeout_ms = timeout
        self.fed = 0

    def feed(self):
        self.fed += 1
