# Real motor drivers. Each object drives ONE motor; drive(d) takes a signed
# duty fraction -1..1 that already has deadband and inversion applied.
from hardware.pwm import new_pwm, set_duty


class L298N:
    """L298N channel: ENA/ENB = PWM speed, IN1/IN2 = direction.
    IN1=1 IN2=0 forward, IN1=0 IN2=1 reverse, both 0 coast, both 1 brake."""

    def __init__(self, machine, en, in1, in2, freq):
        Pin = machine.Pin
        # Direction pins low first: with IN1=IN2=0 the bridge is off whatever EN does.
        self.in1 = Pin(in1, Pin.OUT, value=0)
        self.in2 = Pin(in2, Pin.OUT, value=0)
        self.en = new_pwm(machine, en, freq)

    def drive(self, d):
        self.in1.value(1 if d > 0 else 0)
        self.in2.value(1 if d < 0 else 0)
        set_duty(self.en, d if d > 0 else -d)

    def brake(self):
        self.in1.value(1)
        self.in2.value(1)
        set_duty(self.en, 1)


class TwoPwm:
    """DRV8833 / TB6612FNG channel driven by two PWM inputs (TB6612: PWMx tied
    high). Forward = PWM on IN1 with IN2 low, reverse = PWM on IN2 with IN1
    low (fast decay: the off-phase coasts). Both 0 coast, both full brake."""

    def __init__(self, machine, in1, in2, freq):
        self.a = new_pwm(machine, in1, freq)
        self.b = new_pwm(machine, in2, freq)

    def drive(self, d):
        # Zero the idle side first so the two inputs are never both driven.
        if d >= 0:
            set_duty(self.b, 0)
            set_duty(self.a, d)
        else:
            set_duty(self.a, 0)
            set_duty(self.b, -d)

    def brake(self):
        set_duty(self.a, 1)
        set_duty(self.b, 1)


def make_motors(machine, cfg):
    """(left, right) motor channels for cfg["driver"]."""
    pins = cfg["pins"]
    freq = cfg["pwm_freq"]
    Pin = machine.Pin
    if cfg["driver"] == "l298n":
        return (L298N(machine, pins["left_en"], pins["left_in1"], pins["left_in2"], freq),
                L298N(machine, pins["right_en"], pins["right_in1"], pins["right_in2"], freq))
    left = TwoPwm(machine, pins["left_in1"], pins["left_in2"], freq)
    right = TwoPwm(machine, pins["right_in1"], pins["right_in2"], freq)
    # Enable-type pins are held high: TB6612 STBY and PWMA/PWMB when wired to
    # GPIOs instead of VCC, DRV8833 nSLEEP (uses "stby"). Absent = not touched.
    keys = "left_en right_en stby" if cfg["driver"] == "tb6612" else "stby"
    for k in keys.split():  # one string, not a constant tuple kept in the heap
        if pins.get(k) is not None:
            Pin(pins[k], Pin.OUT, value=1)
    return left, right
