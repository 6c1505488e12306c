# Real outputs: light (plain pin), buzzer (PWM tone or active-buzzer pin),
# pan servo (50 Hz PWM, 0.5-2.5 ms pulse for -90..+90 degrees).
from hardware.pwm import new_pwm, set_duty


class Light:
    def __init__(self, machine, gpio):
        Pin = machine.Pin
        self.pin = Pin(gpio, Pin.OUT, value=0)

    def set(self, on):
        self.pin.value(1 if on else 0)


class Buzzer:
    """freq > 0: passive buzzer, square wave at freq (50% duty).
    freq == 0: active buzzer, the pin just switches it on."""

    def __init__(self, machine, gpio, freq):
        if freq:
            self.pwm = new_pwm(machine, gpio, freq)
            self.pin = None
        else:
            Pin = machine.Pin
            self.pin = Pin(gpio, Pin.OUT, value=0)
            self.pwm = None

    def set(self, on):
        if self.pwm:
            set_duty(self.pwm, 0.5 if on else 0)
        else:
            self.pin.value(1 if on else 0)


def servo_frac(deg):
    """Duty fraction of a 20 ms period for deg -90..90 (0.5-2.5 ms pulse)."""
    return (1500 + deg * 1000 / 90) / 20000


class Servo:
    def __init__(self, machine, gpio):
        self.pwm = new_pwm(machine, gpio, 50)
        self.set(0)  # centre at start so the pan position is known

    def set(self, deg):
        set_duty(self.pwm, servo_frac(deg))
