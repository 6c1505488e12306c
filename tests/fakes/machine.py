# Stand-in for the ESP `machine` module, for testing lib/hardware/real.py on
# the Unix port. It records everything written (pin numbers, modes, values,
# PWM frequency and duty, ADC set-up) so a test can see a wrong pin or a
# reversed motor. Only for tests: prepend tests/fakes to MICROPYPATH.
#
# Test knobs: PULSE_US[0] (what time_pulse_us returns), ADC_VOLTS (volts at an
# ADC input, keyed by GPIO or 0 for the ESP8266 A0), and swapping the API
# generation: machine.PWM = machine.OldPWM, machine.ADC = machine.ADC8266 ...

PINS = {}  # GPIO -> Pin (latest object for that GPIO)
PWMS = {}  # GPIO -> PWM
ADCS = []  # every ADC made
TOUCHED = []  # every GPIO number any constructor received, in order
PULSES = []  # one dict per time_pulse_us call
PULSE_US = [1000]
ADC_VOLTS = {}
CHIP = ["esp32"]  # whose rules the stand-ins follow: esp32, esp32s3, esp32c3, esp8266


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1

    def __init__(self, id, mode=-1, pull=-1, value=None):
        if not isinstance(id, int) or isinstance(id, bool):
            raise TypeError("fake Pin wants an int GPIO, got %r" % (id,))
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
        self.id = pin.id
        self.pin = pin
        self._freq = freq
        self.frac = 0.5  # real firmware may start at 50% if not told otherwise
        self.raw = None
        if duty_u16 is not None:
            self.duty_u16(duty_u16)
        elif duty is not None:
            self.duty(duty)
        self.initial = self.frac
        PWMS[pin.id] = self

    def freq(self, f=None):
        if f is None:
            return self._freq
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
        self.src = src.id if isinstance(src, Pin) else src
        self._atten = atten
        ADCS.append(self)

    def atten(self, a):
        self._atten = a

    def _volts(self):
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
        "pwm": {str(i): {"freq": p._freq, "frac": p.frac, "raw": p.raw, "initial": p.initial}
                for i, p in PWMS.items()},
        "adc": [{"src": a.src, "atten": a._atten} for a in ADCS],
        "touched": sorted(set(TOUCHED)),
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
